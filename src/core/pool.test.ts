import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from './pool.ts'

describe('Pool', () => {
  it('runs at most `concurrency` at once, in arrival order', async () => {
    const pool = new Pool('test', { concurrency: 3, queue: 100 })
    let running = 0
    let peak = 0
    const started: number[] = []
    await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        pool.run(async () => {
          started.push(i)
          running++
          peak = Math.max(peak, running)
          await sleep(2)
          running--
        }),
      ),
    )
    assert.equal(peak, 3)
    assert.deepEqual(
      started,
      Array.from({ length: 40 }, (_, i) => i),
    )
    assert.equal(pool.active, 0)
    assert.equal(pool.waiting, 0)
  })

  it('refuses work past the queue bound with UNAVAILABLE and a retry hint, and takes work again once it drains', async () => {
    const pool = new Pool('git', { concurrency: 1, queue: 2 })
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const held = [pool.run(() => gate), pool.run(() => gate), pool.run(() => gate)]
    await assert.rejects(
      pool.run(async () => 'never'),
      (e: Error & { code?: string; detail?: { retryAfter?: number } }) => {
        assert.equal(e.code, 'UNAVAILABLE')
        assert.match(e.message, /too many git operations waiting/)
        assert.equal(typeof e.detail?.retryAfter, 'number')
        return true
      },
    )
    open()
    await Promise.all(held)
    assert.equal(await pool.run(async () => 'ok'), 'ok')
  })

  it('a waiter whose signal aborts leaves the queue at once and its slot goes to the next', async () => {
    const pool = new Pool('test', { concurrency: 1, queue: 10 })
    let open!: () => void
    const gate = new Promise<void>((r) => (open = r))
    const first = pool.run(() => gate)
    const ac = new AbortController()
    const aborted = pool.run(async () => assert.fail('must not run'), ac.signal)
    const third = pool.run(async () => 'third')
    ac.abort(new Error('client gone'))
    await assert.rejects(aborted, /client gone/)
    open()
    await first
    assert.equal(await third, 'third')
    assert.equal(pool.active, 0)
  })

  it('gives the slot back when the work throws, and release is idempotent', async () => {
    const pool = new Pool('test', { concurrency: 1, queue: 0 })
    await assert.rejects(
      pool.run(async () => Promise.reject(new Error('boom'))),
      /boom/,
    )
    const release = await pool.acquire()
    release()
    release()
    const again = await pool.acquire()
    // A double release must not have made room for a second holder.
    await assert.rejects(pool.acquire(), { code: 'UNAVAILABLE' })
    again()
  })

  it('a waiter that waited longer than maxWaitMs gets UNAVAILABLE instead of hanging', async () => {
    const pool = new Pool('git', { concurrency: 1, queue: 10, maxWaitMs: 50 })
    let open!: () => void
    const first = pool.run(() => new Promise<void>((r) => (open = r)))
    const started = Date.now()
    await assert.rejects(
      pool.run(async () => assert.fail('must not run')),
      (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /waited 50 ms for a git slot/.test(e.message),
    )
    assert.ok(Date.now() - started >= 45)
    open()
    await first
    assert.equal(await pool.run(async () => 'next'), 'next')
  })
})
