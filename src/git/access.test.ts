import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ProjectFacts } from '../auth/access.ts'
import { ANONYMOUS, type Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, type PatScope, type Visibility } from '../auth/roles.ts'
import { gitAccess } from './access.ts'

const facts = (visibility: Visibility, accessLevel?: number, deployTokenApplies = false): ProjectFacts => ({
  projectId: 1,
  visibility,
  accessLevel,
  deployTokenApplies,
})
const user = (scopes?: PatScope[], isAdmin = false): Principal => ({
  kind: 'user',
  userId: 2,
  username: 'u',
  isAdmin,
  credential: { kind: 'password', userId: 2 },
  ...(scopes ? { scopes } : {}),
})
const deploy = (scopes: Array<'read_repository' | 'read_registry'>): Principal => ({
  kind: 'deploy-token',
  tokenId: 1,
  username: 'gitlab+deploy-token-1',
  projectId: 1,
  namespaceId: null,
  scopes,
  credential: { kind: 'deploy-token', id: 1 },
})
const rw = (a: { read: boolean; write: boolean }) => `${a.read ? 'r' : '-'}${a.write ? 'w' : '-'}`

describe('gitAccess', () => {
  it('is the role × visibility matrix for password logins', () => {
    const { guest, reporter, developer, maintainer, owner } = ACCESS_LEVELS
    const table: Array<[Visibility, number | undefined, string]> = [
      ['public', undefined, 'r-'],
      ['internal', undefined, 'r-'],
      ['private', undefined, '--'],
      ['private', guest, '--'],
      ['private', reporter, 'r-'],
      ['private', developer, 'rw'],
      ['private', maintainer, 'rw'],
      ['private', owner, 'rw'],
      ['public', reporter, 'r-'],
      ['public', developer, 'rw'],
    ]
    for (const [vis, level, want] of table) assert.equal(rw(gitAccess(user(), facts(vis, level))), want, `${vis} level ${level}`)
  })

  it('lets anonymous callers read public projects only, never push', () => {
    assert.equal(rw(gitAccess(ANONYMOUS, facts('public'))), 'r-')
    assert.equal(rw(gitAccess(ANONYMOUS, facts('internal'))), '--')
    assert.equal(rw(gitAccess(ANONYMOUS, facts('private'))), '--')
  })

  it('narrows by PAT scope, with a reason when the project is visible', () => {
    const dev = facts('private', ACCESS_LEVELS.developer)
    assert.equal(rw(gitAccess(user(['read_repository']), dev)), 'r-')
    assert.match(gitAccess(user(['read_repository']), dev).denyWrite!, /write_repository/)
    assert.equal(rw(gitAccess(user(['write_repository']), dev)), 'rw')
    assert.equal(rw(gitAccess(user(['api']), dev)), 'rw')
    const none = gitAccess(user(['read_registry', 'read_api']), dev)
    assert.equal(rw(none), '--')
    assert.match(none.denyRead!, /read_repository/)
    // A token does not reveal a private project its owner cannot see.
    assert.equal(gitAccess(user(['read_api']), facts('private')).denyRead, undefined)
  })

  it('explains a reporter cannot push', () => {
    const a = gitAccess(user(), facts('private', ACCESS_LEVELS.reporter))
    assert.equal(rw(a), 'r-')
    assert.match(a.denyWrite!, /Developer/)
  })

  it('gives administrators everything, still within their token scopes', () => {
    assert.equal(rw(gitAccess(user(undefined, true), facts('private'))), 'rw')
    assert.equal(rw(gitAccess(user(['read_repository'], true), facts('private'))), 'r-')
  })

  it('lets deploy tokens clone their own project (read_repository), or public ones', () => {
    assert.equal(rw(gitAccess(deploy(['read_repository']), facts('private', undefined, true))), 'r-')
    assert.equal(rw(gitAccess(deploy(['read_repository']), facts('private', undefined, false))), '--')
    assert.equal(rw(gitAccess(deploy(['read_registry']), facts('private', undefined, true))), '--')
    assert.match(gitAccess(deploy(['read_registry']), facts('private', undefined, true)).denyRead!, /read_repository/)
    assert.equal(rw(gitAccess(deploy(['read_repository']), facts('public'))), 'r-')
  })

  it('denies everything without a project', () => {
    assert.equal(rw(gitAccess(user(undefined, true), undefined)), '--')
  })
})
