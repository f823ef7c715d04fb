import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { WharfError } from '../core/errors.ts'
import { migrate, openDb } from '../metadata/db.ts'
import { Projects } from '../projects/service.ts'
import { Credentials, type CredentialVerifier } from './credentials.ts'
import type { Principal } from './principals.ts'
import { LoginThrottle, THROTTLE } from './throttle.ts'

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-cred-'))
  const db = openDb({ kind: 'sqlite', path: join(dir, 'wharf.db') })
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  await migrate(db, 'sqlite')
  await new Projects(db).createUser({ username: 'alice', password: 'alice-password' })
  const credentials = new Credentials(db, new LoginThrottle())
  // A machine-token verifier like the CI job token's: it owns one username.
  const token: Principal = { kind: 'user', userId: 0, username: 'gitlab-ci-token', isAdmin: false, credential: { kind: 'password', userId: 0 } }
  const verifier: CredentialVerifier = {
    reservedUsername: 'gitlab-ci-token',
    verify: async (u, s) => (u === 'gitlab-ci-token' && s === 'glcbt-valid' ? token : undefined),
  }
  credentials.addVerifier(verifier)
  return credentials
}

const code = async (p: Promise<unknown>) => p.then(() => 'ok', (e: WharfError) => e.code)

describe('Credentials.authenticate', () => {
  it('stale machine tokens are refused but never throttle the shared CI username', async (t) => {
    const c = await setup(t)
    for (let i = 0; i < THROTTLE.perAccountAddress * 2; i++) assert.equal(await code(c.authenticate('gitlab-ci-token', `glcbt-stale-${i}`, '10.0.0.9')), 'UNAUTHORIZED')
    assert.equal(await code(c.authenticate('gitlab-ci-token', 'glcbt-valid', '10.0.0.9')), 'ok')
    // No password is ever tried for the reserved name.
    assert.equal(await code(c.authenticate('gitlab-ci-token', 'alice-password', '10.0.0.9')), 'UNAUTHORIZED')
  })

  it('people are throttled per account and address, and the real user elsewhere still signs in', async (t) => {
    const c = await setup(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) assert.equal(await code(c.authenticate('alice', 'wrong', '10.0.0.1')), 'UNAUTHORIZED')
    assert.equal(await code(c.authenticate('alice', 'alice-password', '10.0.0.1')), 'TOOMANYREQUESTS')
    assert.equal(await code(c.authenticate('alice', 'alice-password', '10.0.0.2')), 'ok')
  })
})
