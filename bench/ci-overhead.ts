// The overhead Wharf adds to a trivial CI job (`script: [true]`), shell executor.
//   node_modules/.bin/node bench/ci-overhead.ts [--pipelines 20] [--poll-ms 20]
// Starts Wharf (temp data dir, free port, through test/helpers/wharf.ts), creates a private project,
// creates an instance runner as root (POST /api/v4/user/runners), starts
// `wharf runner --executor shell --check-interval 1` (test/helpers/runner.ts), pushes a repository
// whose .gitlab-ci.yml is one job `script: ["true"]` (quoted: a bare YAML `true` is a boolean) and waits for that push's pipeline (warm-up, not
// counted). Then it runs --pipelines pipelines one after another with POST /api/v4/projects/:id/pipeline
// and, per job, reports:
//   created→running   job.started_at − job.created_at (server clock: queue wait as the server sees it)
//   running→finished  job.finished_at − job.started_at (server clock: checkout, script, log, final update)
//   end-to-end        POST /pipeline sent → GET /pipelines/:id answers "success" (client clock; the
//                     client polls every --poll-ms, so this includes up to that much polling slack)
//   runner Timing     the `Timing: queued … s, image pull … s, script … s, total … s` line the runner
//                     ends each job log with (runner clock)
// as min / median / p95 / max. Everything runs on this machine; the runner reaches Wharf over HTTP.
import { execFileSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { CiProject, plainLog, startRunner, type JobJson } from '../test/helpers/runner.ts'
import { startWharf } from '../test/helpers/wharf.ts'

const { values: args } = parseArgs({
  options: {
    pipelines: { type: 'string', default: '20' },
    'poll-ms': { type: 'string', default: '20' },
  },
})
const N = Number(args.pipelines)
const POLL_MS = Number(args['poll-ms'])

interface JobTimes extends JobJson {
  created_at: string
  started_at: string | null
  finished_at: string | null
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const ms = (from: string | null, to: string | null) => (from && to ? new Date(to).getTime() - new Date(from).getTime() : NaN)

function stats(values: number[]): string {
  const v = [...values].sort((a, b) => a - b)
  const at = (q: number) => v[Math.min(v.length - 1, Math.ceil(q * v.length) - 1)]!
  const f = (x: number) => x.toFixed(0).padStart(6)
  return `min ${f(v[0]!)}  median ${f(at(0.5))}  p95 ${f(at(0.95))}  max ${f(v.at(-1)!)}  (ms, n=${v.length})`
}

const wharf = await startWharf({ env: { WHARF_LOG_LEVEL: process.env.WHARF_BENCH_LOG_LEVEL ?? 'info' } })
let project: CiProject | undefined
let runner: Awaited<ReturnType<typeof startRunner>> | undefined
try {
  project = await CiProject.create(wharf, 'bench/ci-overhead')
  runner = await startRunner(wharf, ['--executor', 'shell', '--name', 'bench-shell'])
  const rev = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim()
    } catch {
      return '?'
    }
  })()
  console.log(`# ci-overhead: ${N} sequential pipelines of one \`script: ["true"]\` job, shell executor, commit ${rev}`)
  console.log(
    `# wharf ${wharf.url} pid ${wharf.pid}, node ${process.version}, load average ${(await import('node:os'))
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )

  const warm = await project.push({ '.gitlab-ci.yml': 'trivial:\n  script: ["true"]\n' }, 'trivial job')
  const w = await project.wait(warm.id, 60_000)
  if (w.pipeline.status !== 'success')
    throw new Error(`warm-up pipeline: ${JSON.stringify(await project.api('GET', `/projects/${project.id}/pipelines/${warm.id}`))}`)

  const queue: number[] = []
  const run: number[] = []
  const e2e: number[] = []
  const rq: number[] = []
  const rscript: number[] = []
  const rtotal: number[] = []
  for (let i = 0; i < N; i++) {
    const t0 = performance.now()
    const p = await project.api<{ id: number }>('POST', `/projects/${project.id}/pipeline`, { ref: 'main' })
    let status = ''
    while (status !== 'success') {
      status = (await project.api<{ status: string }>('GET', `/projects/${project.id}/pipelines/${p.id}`)).status
      if (status === 'failed' || status === 'canceled') throw new Error(`pipeline ${p.id} ${status}`)
      if (status !== 'success') await sleep(POLL_MS)
    }
    e2e.push(performance.now() - t0)
    const [job] = (await project.jobs(p.id)) as JobTimes[]
    queue.push(ms(job!.created_at, job!.started_at))
    run.push(ms(job!.started_at, job!.finished_at))
    const timing = /Timing: queued ([\d.]+) s, image pull ([\d.]+) s, script ([\d.]+) s, total ([\d.]+) s/.exec(
      plainLog(await project.trace(job!.id)),
    )
    if (!timing) throw new Error(`no Timing line in job ${job!.id}'s log`)
    rq.push(Number(timing[1]) * 1000)
    rscript.push(Number(timing[3]) * 1000)
    rtotal.push(Number(timing[4]) * 1000)
  }
  console.log(`server  created→running   ${stats(queue)}`)
  console.log(`server  running→finished  ${stats(run)}`)
  console.log(`client  end-to-end        ${stats(e2e)}`)
  console.log(`runner  queued            ${stats(rq)}`)
  console.log(`runner  script            ${stats(rscript)}`)
  console.log(`runner  total             ${stats(rtotal)}`)
} finally {
  await runner?.stop()
  await project?.dispose()
  await wharf.stop()
}
