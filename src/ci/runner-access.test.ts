import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { permittedActions, type ProjectFacts } from '../auth/access.ts'
import { gitAccess } from '../git/access.ts'
import { ACCESS_LEVELS, type Visibility } from '../auth/roles.ts'
import { jobPrincipal } from './job-tokens.ts'
import type { CiJob } from '../metadata/schema.ts'

// What a CI job token may do on a project's registry and repository (pure rules, no I/O):
// own project pull+push; elsewhere pull only with the job user's read access AND the allowlist
// (public projects like anyone); never delete; git: clone its own project (and public ones), never push.

const job = jobPrincipal({ id: 7, project_id: 1, pipeline_id: 3, user_id: 42 } as CiJob)

function facts(o: { projectId?: number; visibility?: Visibility; level?: number; allowlisted?: boolean; admin?: boolean }): ProjectFacts {
  const own = (o.projectId ?? 1) === 1
  return {
    projectId: o.projectId ?? 1,
    visibility: o.visibility ?? 'private',
    accessLevel: o.level,
    deployTokenApplies: false,
    job: { ownProject: own, allowlisted: own || (o.allowlisted ?? false), userIsAdmin: o.admin ?? false, userSignedIn: true },
  }
}

describe('job token permissions', () => {
  it('own project: pull and push, never delete', () => {
    assert.deepEqual(permittedActions(job, facts({})), ['pull', 'push'])
    assert.deepEqual(permittedActions(job, facts({ level: ACCESS_LEVELS.owner })), ['pull', 'push'])
  })

  const cases: Array<[string, Parameters<typeof facts>[0], string[]]> = [
    ['private, user reporter, not allow-listed', { projectId: 2, level: ACCESS_LEVELS.reporter }, []],
    ['private, user reporter, allow-listed', { projectId: 2, level: ACCESS_LEVELS.reporter, allowlisted: true }, ['pull']],
    [
      'private, user maintainer, allow-listed: still pull only',
      { projectId: 2, level: ACCESS_LEVELS.maintainer, allowlisted: true },
      ['pull'],
    ],
    ['private, user guest, allow-listed', { projectId: 2, level: ACCESS_LEVELS.guest, allowlisted: true }, []],
    ['private, no access, allow-listed', { projectId: 2, allowlisted: true }, []],
    ['private, admin user, allow-listed', { projectId: 2, admin: true, allowlisted: true }, ['pull']],
    ['internal, signed-in user, allow-listed', { projectId: 2, visibility: 'internal', allowlisted: true }, ['pull']],
    ['internal, not allow-listed', { projectId: 2, visibility: 'internal' }, []],
    ['public, not allow-listed (as anyone)', { projectId: 2, visibility: 'public' }, ['pull']],
  ]
  for (const [what, f, want] of cases) {
    it(`other project: ${what} → ${want.join('+') || 'nothing'}`, () => assert.deepEqual(permittedActions(job, facts(f)), want))
  }

  it('no facts (a CI resolver that is not wired) gives nothing', () => {
    assert.deepEqual(permittedActions(job, { projectId: 2, visibility: 'public', accessLevel: undefined, deployTokenApplies: false }), [])
  })

  it('git: clones its own project and public ones, never pushes', () => {
    assert.deepEqual(gitAccess(job, facts({})), { read: true, write: false, denyWrite: 'CI job tokens cannot push to repositories' })
    assert.equal(gitAccess(job, facts({ projectId: 2, level: ACCESS_LEVELS.owner, allowlisted: true })).read, false)
    assert.equal(gitAccess(job, facts({ projectId: 2, visibility: 'public' })).read, true)
  })
})
