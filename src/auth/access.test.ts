import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { permittedActions, type Action, type ProjectFacts } from './access.ts'
import type { Principal } from './principals.ts'
import { ACCESS_LEVELS, type PatScope, type Visibility } from './roles.ts'

// The permission matrix of the registry: role × visibility × principal kind → pull/push/delete.
// Cells are written out by hand ('r' pull, 'w' push, 'd' delete) so the table is the spec.

const ROLE_COLUMNS = ['none', 'guest', 'reporter', 'developer', 'maintainer', 'owner', 'admin'] as const
type RoleColumn = (typeof ROLE_COLUMNS)[number]
type Row = Record<Visibility, readonly [string, string, string, string, string, string, string]>

/** Users, by how they authenticated. Columns: none guest reporter developer maintainer owner admin(no membership). */
const USERS: Record<string, { scopes: PatScope[] | undefined; row: Row }> = {
  password: {
    scopes: undefined,
    row: {
      public: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      internal: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      private: ['', '', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
    },
  },
  'PAT read_registry': {
    scopes: ['read_registry'],
    row: {
      public: ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
      internal: ['r', 'r', 'r', 'r', 'r', 'r', 'r'],
      private: ['', '', 'r', 'r', 'r', 'r', 'r'],
    },
  },
  'PAT write_registry': {
    scopes: ['write_registry'],
    row: {
      public: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      internal: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      private: ['', '', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
    },
  },
  'PAT read_registry+write_registry': {
    scopes: ['read_registry', 'write_registry'],
    row: {
      public: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      internal: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      private: ['', '', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
    },
  },
  'PAT api': {
    scopes: ['api'],
    row: {
      public: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      internal: ['r', 'r', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
      private: ['', '', 'r', 'rw', 'rwd', 'rwd', 'rwd'],
    },
  },
  'PAT read_api+read_user+read_repository+write_repository': {
    scopes: ['read_api', 'read_user', 'read_repository', 'write_repository'],
    row: {
      public: ['', '', '', '', '', '', ''],
      internal: ['', '', '', '', '', '', ''],
      private: ['', '', '', '', '', '', ''],
    },
  },
}

/** Principals without roles: anonymous and deploy tokens (of this project or of another one). */
const OTHERS: Record<string, { principal: Principal; applies: boolean; cells: Record<Visibility, string> }> = {
  anonymous: { principal: { kind: 'anonymous' }, applies: false, cells: { public: 'r', internal: '', private: '' } },
  'deploy token read_registry, this project': {
    principal: deploy(['read_registry']),
    applies: true,
    cells: { public: 'r', internal: 'r', private: 'r' },
  },
  'deploy token write_registry, this project': {
    principal: deploy(['write_registry']),
    applies: true,
    cells: { public: 'rw', internal: 'rw', private: 'rw' },
  },
  'deploy token read+write_registry, this project': {
    principal: deploy(['read_registry', 'write_registry']),
    applies: true,
    cells: { public: 'rw', internal: 'rw', private: 'rw' },
  },
  'deploy token read_repository, this project': {
    principal: deploy(['read_repository']),
    applies: true,
    cells: { public: '', internal: '', private: '' },
  },
  'deploy token read_registry, another project': {
    principal: deploy(['read_registry']),
    applies: false,
    cells: { public: 'r', internal: '', private: '' },
  },
  'deploy token write_registry, another project': {
    principal: deploy(['write_registry']),
    applies: false,
    cells: { public: 'r', internal: '', private: '' },
  },
  'deploy token read_repository, another project': {
    principal: deploy(['read_repository']),
    applies: false,
    cells: { public: '', internal: '', private: '' },
  },
}

function deploy(scopes: Array<'read_registry' | 'write_registry' | 'read_repository'>): Principal {
  return {
    kind: 'deploy-token',
    tokenId: 7,
    username: 'gitlab+deploy-token-7',
    projectId: 1,
    namespaceId: null,
    scopes,
    credential: { kind: 'deploy-token', id: 7 },
  }
}

function user(role: RoleColumn, scopes: PatScope[] | undefined): Principal {
  const p: Principal = {
    kind: 'user',
    userId: 3,
    username: 'u',
    isAdmin: role === 'admin',
    credential: scopes ? { kind: 'pat', id: 9, userId: 3 } : { kind: 'password', userId: 3 },
  }
  if (scopes) p.scopes = scopes
  return p
}

function facts(visibility: Visibility, role: RoleColumn, deployTokenApplies = false): ProjectFacts {
  const accessLevel = role === 'none' || role === 'admin' ? undefined : ACCESS_LEVELS[role]
  return { projectId: 1, visibility, accessLevel, deployTokenApplies }
}

const letters = (actions: Action[]) => actions.map((a) => ({ pull: 'r', push: 'w', delete: 'd' })[a]).join('')

const VISIBILITIES: Visibility[] = ['public', 'internal', 'private']

describe('permittedActions: the permission matrix', () => {
  for (const [kind, { scopes, row }] of Object.entries(USERS)) {
    it(`user via ${kind}: role × visibility`, () => {
      for (const visibility of VISIBILITIES) {
        ROLE_COLUMNS.forEach((role, i) => {
          const got = letters(permittedActions(user(role, scopes), facts(visibility, role)))
          assert.equal(got, row[visibility][i], `${kind}, ${role}, ${visibility}`)
        })
      }
    })
  }

  for (const [kind, { principal, applies, cells }] of Object.entries(OTHERS)) {
    it(`${kind}: visibility`, () => {
      for (const visibility of VISIBILITIES) {
        // Roles never matter for these principals; try every access level to be sure.
        for (const role of ROLE_COLUMNS) {
          const got = letters(permittedActions(principal, facts(visibility, role, applies)))
          assert.equal(got, cells[visibility], `${kind}, ${visibility}, level of ${role}`)
        }
      }
    })
  }

  it('a path that belongs to no project: nothing, for everyone (admins too)', () => {
    const everyone: Principal[] = [
      { kind: 'anonymous' },
      user('admin', undefined),
      user('owner', ['api']),
      deploy(['read_registry', 'write_registry']),
    ]
    for (const p of everyone) assert.deepEqual(permittedActions(p, undefined), [], p.kind)
  })

  it('actions come out in the fixed order pull, push, delete', () => {
    assert.deepEqual(permittedActions(user('owner', undefined), facts('private', 'owner')), ['pull', 'push', 'delete'])
  })

  it('a level between two roles counts as the lower role (GitLab numeric levels)', () => {
    const p = user('none', undefined)
    assert.deepEqual(
      permittedActions(p, { projectId: 1, visibility: 'private', accessLevel: ACCESS_LEVELS.developer - 1, deployTokenApplies: false }),
      ['pull'],
    )
    assert.deepEqual(
      permittedActions(p, { projectId: 1, visibility: 'private', accessLevel: ACCESS_LEVELS.maintainer + 5, deployTokenApplies: false }),
      ['pull', 'push', 'delete'],
    )
  })
})
