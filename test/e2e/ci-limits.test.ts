// End-to-end: hostile `.gitlab-ci.yml` files pushed with the real git CLI give failed pipelines
// whose yaml_errors name the limit, while the registry keeps answering (`GET /v2/` is timed all
// along); and a server killed between a push and its pipeline creates the pipeline after the
// restart, exactly once.
import { after, before, describe, it, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, type RunResult } from '../helpers/run.ts'
import { gitClient, type Creds, type GitClient } from '../helpers/git.ts'

let wharf: Wharf
let client: GitClient
let projectId: number
let dir: string

const root = (): Creds => ({ username: 'root', password: wharf.rootPassword })

async function git(args: string[], creds?: Creds): Promise<RunResult> {
  return client.git(args, { cwd: dir, ...(creds ? { creds } : {}) })
}
async function gitOk(args: string[], creds?: Creds): Promise<RunResult> {
  const r = await git(args, creds)
  assert.equal(r.code, 0, `git failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return r
}

interface PipelineJson {
  id: number
  sha: string
  status: string
  yaml_errors: string | null
}

async function pipelinesFor(sha: string): Promise<PipelineJson[]> {
  const r = await wharf.api('GET', `/api/v4/projects/${projectId}/pipelines?sha=${sha}&per_page=100`)
  assert.equal(r.status, 200, r.describe)
  return Promise.all(
    (r.json as PipelineJson[]).map(
      async (p) => (await wharf.api('GET', `/api/v4/projects/${projectId}/pipelines/${p.id}`)).json as PipelineJson,
    ),
  )
}

async function waitFor<T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> {
  const until = Date.now() + ms
  for (;;) {
    const v = await f()
    if (v !== undefined) return v
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}\n--- server log ---\n${await wharf.logTail(30)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Times `GET /v2/` one request after another until stopped: what a registry client sees meanwhile. */
interface Latency {
  count: number
  p50: number
  p95: number
  max: number
}

function probeV2(): { stop(): Promise<Latency> } {
  const times: number[] = []
  let running = true
  const loop = (async () => {
    while (running) {
      const started = performance.now()
      const r = await fetch(`${wharf.url}/v2/`)
      await r.arrayBuffer()
      assert.ok(r.status === 200 || r.status === 401, `GET /v2/ -> ${r.status}`)
      times.push(performance.now() - started)
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  })()
  return {
    async stop() {
      running = false
      await loop
      const sorted = [...times].sort((a, b) => a - b)
      const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))] ?? 0
      return { count: sorted.length, p50: at(0.5), p95: at(0.95), max: sorted.at(-1) ?? 0 }
    },
  }
}

const show = (l: Latency) => `GET /v2/ x${l.count}: p50 ${l.p50.toFixed(1)} ms, p95 ${l.p95.toFixed(1)} ms, max ${l.max.toFixed(1)} ms`

/**
 * While a hostile file is processed, 95% of `GET /v2/` answer within 100 ms and none takes half a
 * second. Processing on the event loop held every request for seconds (7 to 11 s for 10,000 jobs);
 * off it, answers take a few milliseconds, but on a loaded two-core machine (git's processes, the
 * planner and other work share the cores) a single answer now and then waits for the scheduler.
 */
const V2_P95_MS = 100
const V2_MAX_MS = 500

async function pushHostile(t: TestContext, name: string, yaml: string, expected: string): Promise<void> {
  await writeFile(path.join(dir, '.gitlab-ci.yml'), yaml)
  await gitOk(['add', '.'])
  await gitOk(['commit', '-q', '-m', name])
  const sha = (await gitOk(['rev-parse', 'HEAD'])).stdout.trim()
  const probe = probeV2()
  const started = performance.now()
  let pushMs: number
  let found: PipelineJson[]
  let v2: Latency
  try {
    await gitOk(['push', '-q', 'origin', 'main'], root())
    pushMs = performance.now() - started
    // A client that finished pushing finds the pipeline.
    found = await pipelinesFor(sha)
  } finally {
    v2 = await probe.stop() // also when the push failed: no request outlives the test
  }
  const [p, ...more] = found
  t.diagnostic(`${name}: push ${Math.round(pushMs)} ms; ${show(v2)}`)
  assert.ok(p, 'a pipeline once the push returned')
  assert.equal(more.length, 0)
  assert.equal(p.status, 'failed')
  assert.equal(p.yaml_errors, expected)
  assert.ok(v2.count >= 5, `only ${v2.count} /v2/ answers`)
  assert.ok(v2.p95 < V2_P95_MS && v2.max < V2_MAX_MS, `while ${name} was processed, ${show(v2)}`)
}

before(async () => {
  client = await gitClient('wharf-e2e-ci-limits-')
  wharf = await startWharf()
  projectId = await wharf.createProject('e2e-limits/app', 'private')
  dir = path.join(client.work, 'app')
  const r = await client.git(['clone', '-q', `${wharf.url}/e2e-limits/app.git`, dir], { creds: root() })
  assert.equal(r.code, 0, describeResult(r))
})

after(async () => {
  await wharf?.stop()
  await client?.dispose()
})

describe('hostile pipelines', { timeout: 180_000 }, () => {
  it('10,000 jobs, and a 10,000-long extends chain: failed pipelines naming the limit, /v2 answering throughout', async (t) => {
    const quiet = probeV2()
    await new Promise((r) => setTimeout(r, 2_000))
    t.diagnostic(`no push: ${show(await quiet.stop())}`)
    const jobs = Array.from({ length: 10_000 }, (_, i) => `job${i}:\n  script: echo ${i}\n`).join('')
    await pushHostile(t, '10,000 jobs', jobs, 'The number of jobs has exceeded the limit of 500.')
    const chain = `j0:\n  script: x\n${Array.from({ length: 9_999 }, (_, i) => `j${i + 1}:\n  extends: j${i}\n`).join('')}`
    await pushHostile(t, 'a 10,000-long extends chain', chain, 'j12: nesting too deep in `extends`')
  })

  it('a server killed after a push was recorded creates its pipeline after the restart, exactly once', async () => {
    // Big enough that planning takes a while (the window to kill the server in), small enough to store.
    await writeFile(path.join(dir, '.gitlab-ci.yml'), Array.from({ length: 20_000 }, (_, i) => `job${i}:\n  script: echo ${i}\n`).join(''))
    await gitOk(['add', '.'])
    await gitOk(['commit', '-q', '-m', 'crash'])
    const sha = (await gitOk(['rev-parse', 'HEAD'])).stdout.trim()
    const db = new DatabaseSync(path.join(wharf.dataDir, 'wharf.db'), { readOnly: true })
    const pushing = git(['push', '-q', 'origin', 'main'], root())
    try {
      // The event is recorded and its pipeline not yet stored: kill the server there.
      await waitFor(
        'the push event',
        async () => {
          const row = db.prepare('select handled, done_at from push_events order by id desc limit 1').get() as
            | { handled: number; done_at: string | null }
            | undefined
          const stored = db.prepare('select count(*) as n from pipelines where sha = ?').get(sha) as { n: number }
          if (row && row.handled === 0 && row.done_at === null && stored.n === 0) return true
          if (stored.n > 0) throw new Error('the pipeline was stored before the server could be killed')
          return undefined
        },
        30_000,
      )
      process.kill(wharf.pid, 'SIGKILL')
    } finally {
      db.close()
    }
    const pushed = await pushing
    assert.notEqual(pushed.code, 0, 'the push saw the server die')
    assert.equal((await git(['ls-remote', 'origin', 'refs/heads/main'], root())).code, 128, 'server down')

    await wharf.restart()
    // The refs were updated before the crash; the pipeline comes from the recorded event.
    assert.match((await gitOk(['ls-remote', 'origin', 'refs/heads/main'], root())).stdout, new RegExp(`^${sha}\\s`))
    const [p] = await waitFor('the pipeline after the restart', async () => {
      const list = await pipelinesFor(sha)
      return list.length ? list : undefined
    })
    assert.equal(p!.status, 'failed')
    assert.equal(p!.yaml_errors, 'The number of jobs has exceeded the limit of 500.')
    // Later sweeps, and another restart, never add a second one.
    await wharf.restart()
    await new Promise((r) => setTimeout(r, 1_000))
    assert.equal((await pipelinesFor(sha)).length, 1)
  })
})
