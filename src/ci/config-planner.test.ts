import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ConfigPlanner, tooMuchMemory, tooSlow, type FileAnswer, type FileRequest, type PlanInput } from './config-planner.ts'

const ctx: PlanInput = {
  source: 'push',
  refName: 'main',
  refType: 'branch',
  sha: 'c0ffee',
  beforeSha: 'decaf',
  changedFiles: undefined,
  files: ['.gitlab-ci.yml', 'Dockerfile'],
  variables: { CI_COMMIT_BRANCH: 'main' },
}
const noFiles = async (): Promise<FileAnswer> => ({ content: undefined })
const manyJobs = (n: number): string => Array.from({ length: n }, (_, i) => `job${i}:\n  script: echo ${i}\n`).join('')

test('plans in a worker: includes are read by the caller, exists: sees the file list, limits apply', async (t) => {
  const planner = new ConfigPlanner()
  t.after(() => planner.close())
  const reads: string[] = []
  const plan = await planner.plan(
    'include: ci/build.yml\ntest:\n  script: make test\n  rules:\n    - exists: [Dockerfile]\n',
    ctx,
    async ({ path }) => {
      reads.push(path)
      return { content: path === 'ci/build.yml' ? 'build:\n  stage: build\n  script: make\n' : undefined }
    },
  )
  assert.equal(plan.status, 'created')
  assert.deepEqual(plan.status === 'created' && plan.jobs.map((j) => j.name), ['build', 'test'])
  assert.deepEqual(reads, ['ci/build.yml'])
  assert.deepEqual(await planner.plan('a:\n  script: x\n  scirpt: y\n', ctx, noFiles), {
    status: 'failed',
    errors: ['jobs:a config contains unknown keys: scirpt'],
  })
  assert.deepEqual(await planner.plan(manyJobs(4), { ...ctx, maxJobs: 3 }, noFiles), {
    status: 'failed',
    errors: ['The number of jobs has exceeded the limit of 3.'],
  })
})

test('a file over the time budget fails naming the limit, and the planner goes on', async (t) => {
  const planner = new ConfigPlanner({ timeMs: 200, workers: 1 })
  t.after(() => planner.close())
  assert.deepEqual(await planner.plan(manyJobs(30_000), ctx, noFiles), { status: 'failed', errors: [tooSlow(200)] })
  assert.equal((await planner.plan(manyJobs(1), ctx, noFiles)).status, 'created')
})

test('a file that needs more memory than the worker has fails naming the limit, and the planner goes on', async (t) => {
  const planner = new ConfigPlanner({ heapMb: 16, workers: 1 })
  t.after(() => planner.close())
  assert.deepEqual(await planner.plan(manyJobs(40_000), ctx, noFiles), { status: 'failed', errors: [tooMuchMemory(16)] })
  assert.equal((await planner.plan(manyJobs(1), ctx, noFiles)).status, 'created')
})

test('the event loop stays free while a hostile file is planned', async (t) => {
  const planner = new ConfigPlanner()
  t.after(() => planner.close())
  await planner.plan(manyJobs(1), ctx, noFiles) // worker started
  let worst = 0
  let last = performance.now()
  const tick = setInterval(() => {
    const now = performance.now()
    worst = Math.max(worst, now - last)
    last = now
  }, 5)
  const plan = await planner.plan(manyJobs(10_000), { ...ctx, maxJobs: 500 }, noFiles)
  clearInterval(tick)
  assert.deepEqual(plan, { status: 'failed', errors: ['The number of jobs has exceeded the limit of 500.'] })
  // Parsing 10,000 jobs on the main thread held it for 1 to 3 s; off it, the gaps left are the
  // scheduler's on a loaded machine (tens of milliseconds, rarely more).
  assert.ok(worst < 500, `the event loop was held for ${Math.round(worst)} ms`)
})

test('past its queue bound the planner refuses as UNAVAILABLE instead of queueing without end, then recovers', async (t) => {
  const planner = new ConfigPlanner({ workers: 1, queue: 2 })
  t.after(() => planner.close())
  // One file occupies the only worker (it waits on its include), two wait, the fourth is refused.
  let release!: (answer: FileAnswer) => void
  const held = new Promise<FileAnswer>((resolve) => {
    release = resolve
  })
  const first = planner.plan('include: slow.yml\n', ctx, () => held)
  const waiting = [planner.plan(manyJobs(1), ctx, noFiles), planner.plan(manyJobs(2), ctx, noFiles)]
  await assert.rejects(
    planner.plan(manyJobs(1), ctx, noFiles),
    (e: Error & { code?: string }) => e.code === 'UNAVAILABLE' && /retry later/.test(e.message),
  )
  release({ content: 'a:\n  script: x\n' })
  assert.equal((await first).status, 'created')
  assert.deepEqual(
    (await Promise.all(waiting)).map((p) => p.status),
    ['created', 'created'],
  )
  assert.equal((await planner.plan(manyJobs(1), ctx, noFiles)).status, 'created')
})

test('changes:compare_to: the caller answers the paths changed since each ref, once; a ref that names nothing fails the pipeline', async (t) => {
  const planner = new ConfigPlanner()
  t.after(() => planner.close())
  const asked: string[] = []
  const answer = async (req: FileRequest): Promise<FileAnswer> => {
    if (!('compareTo' in req)) return { content: undefined }
    asked.push(req.compareTo)
    return req.compareTo === 'main' ? { content: undefined, changed: ['docs/a.md'] } : { content: undefined, missing: 'ref' }
  }
  const text = (ref: string) =>
    `docs:\n  script: x\n  rules:\n    - changes: {paths: ['docs/**/*'], compare_to: ${ref}}\n` +
    `code:\n  script: x\n  rules:\n    - changes: {paths: ['src/**/*'], compare_to: ${ref}}\n`
  const plan = await planner.plan(text('main'), ctx, answer)
  assert.deepEqual(plan.status === 'created' && plan.jobs.map((j) => j.name), ['docs'])
  assert.deepEqual(asked, ['main'])
  assert.deepEqual(await planner.plan(text('nope'), ctx, answer), {
    status: 'failed',
    errors: ['rules:changes:compare_to is not a valid ref: nope'],
  })
})
