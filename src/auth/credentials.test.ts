import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { WharfError } from '../core/errors.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import { Users } from '../users/index.ts'
import { Credentials, type CredentialVerifier } from './credentials.ts'
import type { Principal } from './principals.ts'
import { LoginThrottle, THROTTLE } from './throttle.ts'

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-cred-'))
  const db = await openTestDb(dir)
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  const users = new Users(db)
  const alice = await users.createUser({ username: 'alice', password: 'alice-password' })
  const credentials = new Credentials(db, new LoginThrottle(db, 'sign-in'), users)
  // A machine-token verifier like the CI job token's: it owns one username.
  const token: Principal = {
    kind: 'user',
    userId: 0,
    username: 'gitlab-ci-token',
    isAdmin: false,
    credential: { kind: 'password', userId: 0 },
  }
  const verifier: CredentialVerifier = {
    reservedUsername: 'gitlab-ci-token',
    verify: async (u, s) => (u === 'gitlab-ci-token' && s === 'glcbt-valid' ? token : undefined),
  }
  credentials.addVerifier(verifier)
  return Object.assign(credentials, { users, alice })
}

const code = async (p: Promise<unknown>) =>
  p.then(
    () => 'ok',
    (e: WharfError) => e.code,
  )

describe('Credentials.authenticate', () => {
  it('stale machine tokens are refused but never throttle the shared CI username', async (t) => {
    const c = await setup(t)
    for (let i = 0; i < THROTTLE.perAccountAddress * 2; i++)
      assert.equal(await code(c.authenticate('gitlab-ci-token', `glcbt-stale-${i}`, '10.0.0.9')), 'UNAUTHORIZED')
    assert.equal(await code(c.authenticate('gitlab-ci-token', 'glcbt-valid', '10.0.0.9')), 'ok')
    // No password is ever tried for the reserved name.
    assert.equal(await code(c.authenticate('gitlab-ci-token', 'alice-password', '10.0.0.9')), 'UNAUTHORIZED')
  })

  it('people are throttled per account and address, and the real user elsewhere still signs in', async (t) => {
    const c = await setup(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++)
      assert.equal(await code(c.authenticate('alice', 'wrong', '10.0.0.1')), 'UNAUTHORIZED')
    assert.equal(await code(c.authenticate('alice', 'alice-password', '10.0.0.1')), 'TOOMANYREQUESTS')
    assert.equal(await code(c.authenticate('alice', 'alice-password', '10.0.0.2')), 'ok')
  })
})

describe('password checks', () => {
  it('a repeated correct password skips the scrypt; a changed password, a block or a wrong one is never served from it', async (t) => {
    const c = await setup(t)
    const timed = async (secret: string) => {
      const t0 = performance.now()
      const r = await code(c.authenticate('alice', secret, '10.0.0.1'))
      return { r, ms: performance.now() - t0 }
    }
    const first = await timed('alice-password')
    assert.equal(first.r, 'ok')
    const again = [await timed('alice-password'), await timed('alice-password'), await timed('alice-password')]
    assert.deepEqual(
      again.map((x) => x.r),
      ['ok', 'ok', 'ok'],
    )
    const fastest = Math.min(...again.map((x) => x.ms))
    assert.ok(fastest * 5 < first.ms, `cached check ${fastest.toFixed(1)} ms vs scrypt ${first.ms.toFixed(1)} ms`)
    assert.equal((await timed('alice-passwordx')).r, 'UNAUTHORIZED', 'a wrong password is checked, not matched to the record')

    await c.users.setPassword(c.alice.id, 'alice-new-password')
    assert.equal((await timed('alice-password')).r, 'UNAUTHORIZED', 'the old password stops at once')
    assert.equal((await timed('alice-new-password')).r, 'ok')
    await c.users.setUserState(c.alice.id, 'blocked')
    assert.equal((await timed('alice-new-password')).r, 'UNAUTHORIZED', 'a blocked account stops at once')
  })
})
