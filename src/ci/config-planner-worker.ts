// The worker side of ConfigPlanner (./config-planner.ts): parses and plans one file at a time,
// asking the main thread for the files `include:local` names.
import { parentPort } from 'node:worker_threads'
import { anyGlobMatches, isCiConfigError, parseCiConfig, planPipeline, type PipelinePlan } from './config/index.ts'
import { IncludeError } from './config/include.ts'
import type { FromWorker, PlanInput, ToWorker } from './config-planner.ts'

const port = parentPort!
const reads = new Map<string, Array<(m: Extract<ToWorker, { kind: 'file' }>) => void>>()

const readKey = (path: string, job: string | undefined) => `${job ?? ''}\0${path}`

function readFile(path: string, job?: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const answer = (m: Extract<ToWorker, { kind: 'file' }>) =>
      m.tooBig ? reject(new IncludeError(`\`${path}\`: The parsed YAML is too big`)) : resolve(m.content)
    const key = readKey(path, job)
    reads.set(key, [...(reads.get(key) ?? []), answer])
    port.postMessage({ kind: 'read', path, ...(job === undefined ? {} : { job }) } satisfies FromWorker)
  })
}

async function plan(text: string, input: PlanInput, artifacts: boolean): Promise<PipelinePlan> {
  const { files, ...ctx } = input
  try {
    const config = await parseCiConfig(text, {
      readFile: (path) => readFile(path),
      ...(artifacts ? { readArtifact: (job: string, path: string) => readFile(path, job) } : {}),
    })
    return planPipeline(config, { ...ctx, fileExists: (glob) => anyGlobMatches([glob], files) })
  } catch (e) {
    if (isCiConfigError(e)) return { status: 'failed', errors: [...e.errors] }
    throw e
  }
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'file') {
    const key = readKey(m.path, m.job)
    const waiting = reads.get(key)
    const resolve = waiting?.shift()
    if (waiting?.length === 0) reads.delete(key)
    resolve?.(m)
    return
  }
  port.postMessage({ kind: 'started' } satisfies FromWorker)
  plan(m.text, m.ctx, m.artifacts).then(
    (result) => port.postMessage({ kind: 'done', plan: result } satisfies FromWorker),
    (err: unknown) => port.postMessage({ kind: 'crash', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker),
  )
})
