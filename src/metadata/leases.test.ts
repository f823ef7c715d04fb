import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { Kysely } from 'kysely'
import { openTestDb } from '../../test/helpers/database.ts'
import { LEASE_TTL_MS, LeasedTask, Leases } from './leases.ts'
import type { Database } from './schema.ts'

async function database(t: TestContext): Promise<Kysely<Database>> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-leases-'))
  const db = await openTestDb(dir)
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

describe('Leases', () => {
  it('one holder at a time: the holder renews, the other is refused until it is released', async (t) => {
    const db = await database(t)
    const a = new Leases(db, 'node-a')
    const b = new Leases(db, 'node-b')
    assert.equal(await a.hold('uploads.sweep'), true)
    assert.equal(await b.hold('uploads.sweep'), false)
    assert.equal(await a.hold('uploads.sweep'), true, 'renewed')
    assert.equal(await b.hold('ci.schedules'), true, 'leases are per task')
    assert.equal(await b.holder('uploads.sweep'), 'node-a')
    await b.release('uploads.sweep')
    assert.equal(await a.holder('uploads.sweep'), 'node-a', 'only the holder releases')
    await a.release('uploads.sweep')
    assert.equal(await b.hold('uploads.sweep'), true)
    assert.equal(await a.hold('uploads.sweep'), false)
  })

  it('a lease its holder stopped renewing (the node died) is taken over once expired', async (t) => {
    const db = await database(t)
    let now = Date.parse('2026-12-03T12:00:00Z')
    const a = new Leases(db, 'node-a', () => now)
    const b = new Leases(db, 'node-b', () => now)
    assert.equal(await a.hold('gc'), true)
    now += LEASE_TTL_MS - 1
    assert.equal(await b.hold('gc'), false, 'not yet expired')
    now += 1
    assert.equal(await b.hold('gc'), true, 'expired: node b takes it')
    assert.equal(await a.hold('gc'), false, 'node a, back, does not take it back while b renews')
  })

  it('concurrent takers: exactly one wins', async (t) => {
    const db = await database(t)
    const nodes = Array.from({ length: 6 }, (_, i) => new Leases(db, `node-${i}`))
    const won = await Promise.all(nodes.map((n) => n.hold('ci.job-sweep')))
    assert.equal(won.filter(Boolean).length, 1)
  })
})

describe('LeasedTask', () => {
  it('runs on one node only; when that node stops, the other runs it', async (t) => {
    const db = await database(t)
    const runs = { a: 0, b: 0 }
    const task = (node: 'a' | 'b') =>
      new LeasedTask(new Leases(db, `node-${node}`), {
        name: 'registry.cleanup-policies',
        periodMs: 40,
        work: async () => {
          runs[node]++
        },
        onError: (err) => assert.fail(err as Error),
      })
    const a = task('a').start()
    await sleep(20)
    const b = task('b').start()
    await sleep(500)
    assert.ok(runs.a >= 1, `node a ran ${runs.a} times`)
    assert.equal(runs.b, 0, 'node b never ran the task node a holds')
    await a.stop()
    const before = runs.a
    await sleep(500)
    assert.equal(runs.a, before)
    assert.ok(runs.b >= 1, `node b took over (${runs.b} runs)`)
    await b.stop()
  })

  it('runNow runs only on the holder', async (t) => {
    const db = await database(t)
    let ran = 0
    const opts = { name: 'uploads.sweep', periodMs: 60_000, work: async () => void ran++, onError: () => undefined }
    const a = new LeasedTask(new Leases(db, 'node-a'), opts)
    const b = new LeasedTask(new Leases(db, 'node-b'), opts)
    assert.equal(await a.runNow(), true)
    assert.equal(await b.runNow(), false)
    assert.equal(ran, 1)
    await Promise.all([a.stop(), b.stop()])
  })
})
