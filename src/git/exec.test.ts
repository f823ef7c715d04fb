import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { after, describe, it } from 'node:test'
import { GIT_POOL_DEFAULTS, gitPool, runGit } from './exec.ts'

/** Live child processes of this process that run git (read from /proc, not from the pool). */
function gitChildren(): number {
  let pids: string[]
  try {
    pids = readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)
  } catch {
    return 0
  }
  let n = 0
  for (const pid of pids) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'git') n++
    } catch {
      /* exited meanwhile */
    }
  }
  return n
}

describe('runGit and the git pool', () => {
  after(() => gitPool.configure(GIT_POOL_DEFAULTS))

  it('a burst of 1,000 runGit calls never has more than the pool size of git processes running', async () => {
    const size = 8
    gitPool.configure({ concurrency: size, queue: 1000, maxWaitMs: 120_000 })
    let peak = 0
    let samples = 0
    const sampler = setInterval(() => {
      peak = Math.max(peak, gitChildren())
      samples++
    }, 1)
    try {
      // Each git lives ~10 ms (an alias that sleeps), so the sampler sees the ones running.
      const results = await Promise.all(Array.from({ length: 1000 }, () => runGit(['wait'], { config: { 'alias.wait': '!sleep 0.01' } })))
      assert.equal(results.length, 1000)
      assert.ok(results.every((r) => r.code === 0))
    } finally {
      clearInterval(sampler)
    }
    assert.ok(samples > 50, `sampled ${samples} times`)
    assert.ok(peak >= 2, `the sampler saw git processes (peak ${peak})`)
    assert.ok(peak <= size, `at most ${size} git processes at once, saw ${peak}`)
    assert.equal(gitPool.active, 0)
    assert.equal(gitPool.waiting, 0)
  })

  it('past the queue bound a call fails fast with UNAVAILABLE (answered 503) and the rest still run', async () => {
    gitPool.configure({ concurrency: 2, queue: 10 })
    const results = await Promise.allSettled(
      Array.from({ length: 30 }, () => runGit(['wait'], { config: { 'alias.wait': '!sleep 0.05' } })),
    )
    const refused = results.filter((r) => r.status === 'rejected')
    assert.equal(refused.length, 18)
    for (const r of refused) assert.equal((r.reason as { code?: string }).code, 'UNAVAILABLE')
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 12)
  })
})
