import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { Kysely } from 'kysely'
import { openTestDb } from '../../test/helpers/database.ts'
import type { Database } from '../metadata/schema.ts'
import { LoginThrottle, THROTTLE } from './throttle.ts'

async function database(t: TestContext): Promise<Kysely<Database>> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-throttle-'))
  const db = await openTestDb(dir)
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

async function clocked(t: TestContext) {
  let now = 1_000_000
  const throttle = new LoginThrottle(await database(t), 'sign-in', () => now)
  return { throttle, advance: (ms: number) => (now += ms) }
}

describe('LoginThrottle', () => {
  it(`allows ${THROTTLE.perAccountAddress - 1} failures, refuses after ${THROTTLE.perAccountAddress} from the same address`, async (t) => {
    const { throttle } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) {
      assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), 0, `before failure ${i + 1}`)
      await throttle.fail('alice', '10.0.0.1')
    }
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), THROTTLE.windowMs / 1000)
  })

  it('does not lock the account out from other addresses, nor other accounts from that address', async (t) => {
    const { throttle } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) await throttle.fail('alice', '10.0.0.1')
    assert.ok((await throttle.retryAfter('alice', '10.0.0.1')) > 0)
    assert.equal(await throttle.retryAfter('alice', '10.0.0.2'), 0)
    assert.equal(await throttle.retryAfter('bob', '10.0.0.1'), 0)
  })

  it('account names are case-insensitive', async (t) => {
    const { throttle } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) await throttle.fail(i % 2 ? 'Alice' : 'ALICE', '10.0.0.1')
    assert.ok((await throttle.retryAfter('alice', '10.0.0.1')) > 0)
  })

  it('Retry-After counts down and the window expires', async (t) => {
    const { throttle, advance } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) await throttle.fail('alice', '10.0.0.1')
    advance(60_000)
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), THROTTLE.windowMs / 1000 - 60)
    advance(THROTTLE.windowMs - 60_000 - 500)
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), 1, 'rounded up')
    advance(500)
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), 0)
    // A fresh window starts from one failure.
    await throttle.fail('alice', '10.0.0.1')
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), 0)
  })

  it('a success clears the account’s counter for that address only', async (t) => {
    const { throttle } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAccountAddress - 1; i++) {
      await throttle.fail('alice', '10.0.0.1')
      await throttle.fail('alice', '10.0.0.2')
    }
    await throttle.succeed('alice', '10.0.0.1')
    await throttle.fail('alice', '10.0.0.1')
    await throttle.fail('alice', '10.0.0.2')
    assert.equal(await throttle.retryAfter('alice', '10.0.0.1'), 0)
    assert.ok((await throttle.retryAfter('alice', '10.0.0.2')) > 0)
  })

  it(`one address failing for many accounts is refused after ${THROTTLE.perAddress} failures`, async (t) => {
    const { throttle } = await clocked(t)
    for (let i = 0; i < THROTTLE.perAddress; i++) await throttle.fail(`user${i}`, '10.6.6.6')
    assert.ok((await throttle.retryAfter('somebody-new', '10.6.6.6')) > 0)
    assert.equal(await throttle.retryAfter('somebody-new', '10.0.0.1'), 0)
    // A success does not reset the address's overall count.
    await throttle.succeed('user1', '10.6.6.6')
    assert.ok((await throttle.retryAfter('user1', '10.6.6.6')) > 0)
  })
})

describe('LoginThrottle across nodes', () => {
  it('counts the failures every node sees: two throttles on one database refuse after the shared limit', async (t) => {
    const db = await database(t)
    // Two nodes behind a round-robin balancer: failures alternate between them.
    const nodes = [new LoginThrottle(db, 'sign-in'), new LoginThrottle(db, 'sign-in')]
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) {
      assert.equal(await nodes[i % 2]!.retryAfter('alice', '10.0.0.1'), 0, `before failure ${i + 1}`)
      await nodes[i % 2]!.fail('alice', '10.0.0.1')
    }
    for (const node of nodes) assert.ok((await node.retryAfter('alice', '10.0.0.1')) > 0)
    // Concurrent failures are all counted (conditional increments, not read-modify-write).
    await Promise.all(Array.from({ length: THROTTLE.perAddress }, (_, i) => nodes[i % 2]!.fail(`user${i}`, '10.9.9.9')))
    assert.ok((await nodes[0]!.retryAfter('somebody-new', '10.9.9.9')) > 0)
    // A success on one node clears the account's counter for both.
    await nodes[1]!.succeed('alice', '10.0.0.1')
    assert.equal(await nodes[0]!.retryAfter('alice', '10.0.0.1'), 0)
  })

  it('keeps scopes apart: device-code guesses do not count as sign-in failures', async (t) => {
    const db = await database(t)
    const signIn = new LoginThrottle(db, 'sign-in')
    const codes = new LoginThrottle(db, 'device-code')
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) await codes.fail('alice', '10.0.0.1')
    assert.ok((await codes.retryAfter('alice', '10.0.0.1')) > 0)
    assert.equal(await signIn.retryAfter('alice', '10.0.0.1'), 0)
  })
})
