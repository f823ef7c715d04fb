import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { LoginThrottle, THROTTLE } from './throttle.ts'

function clocked() {
  let t = 1_000_000
  const throttle = new LoginThrottle(() => t)
  return { throttle, advance: (ms: number) => (t += ms) }
}

describe('LoginThrottle', () => {
  it(`allows ${THROTTLE.perAccountAddress - 1} failures, refuses after ${THROTTLE.perAccountAddress} from the same address`, () => {
    const { throttle } = clocked()
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) {
      assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0, `before failure ${i + 1}`)
      throttle.fail('alice', '10.0.0.1')
    }
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), THROTTLE.windowMs / 1000)
  })

  it('does not lock the account out from other addresses, nor other accounts from that address', () => {
    const { throttle } = clocked()
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) throttle.fail('alice', '10.0.0.1')
    assert.ok(throttle.retryAfter('alice', '10.0.0.1') > 0)
    assert.equal(throttle.retryAfter('alice', '10.0.0.2'), 0)
    assert.equal(throttle.retryAfter('bob', '10.0.0.1'), 0)
  })

  it('account names are case-insensitive', () => {
    const { throttle } = clocked()
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) throttle.fail(i % 2 ? 'Alice' : 'ALICE', '10.0.0.1')
    assert.ok(throttle.retryAfter('alice', '10.0.0.1') > 0)
  })

  it('Retry-After counts down and the window expires', () => {
    const { throttle, advance } = clocked()
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) throttle.fail('alice', '10.0.0.1')
    advance(60_000)
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), THROTTLE.windowMs / 1000 - 60)
    advance(THROTTLE.windowMs - 60_000 - 500)
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 1, 'rounded up')
    advance(500)
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0)
    // A fresh window starts from one failure.
    throttle.fail('alice', '10.0.0.1')
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0)
  })

  it('a success clears the account’s counter for that address only', () => {
    const { throttle } = clocked()
    for (let i = 0; i < THROTTLE.perAccountAddress - 1; i++) {
      throttle.fail('alice', '10.0.0.1')
      throttle.fail('alice', '10.0.0.2')
    }
    throttle.succeed('alice', '10.0.0.1')
    throttle.fail('alice', '10.0.0.1')
    throttle.fail('alice', '10.0.0.2')
    assert.equal(throttle.retryAfter('alice', '10.0.0.1'), 0)
    assert.ok(throttle.retryAfter('alice', '10.0.0.2') > 0)
  })

  it(`one address failing for many accounts is refused after ${THROTTLE.perAddress} failures`, () => {
    const { throttle } = clocked()
    for (let i = 0; i < THROTTLE.perAddress; i++) throttle.fail(`user${i}`, '10.6.6.6')
    assert.ok(throttle.retryAfter('somebody-new', '10.6.6.6') > 0)
    assert.equal(throttle.retryAfter('somebody-new', '10.0.0.1'), 0)
    // A success does not reset the address's overall count.
    throttle.succeed('user1', '10.6.6.6')
    assert.ok(throttle.retryAfter('user1', '10.6.6.6') > 0)
  })
})
