// The worker side of ConfigPlanner (./config-planner.ts): parses and plans one file at a time,
// asking the main thread for the files `include:local` names.
import { parentPort } from 'node:worker_threads'
import { anyGlobMatches, isCiConfigError, parseCiConfig, planPipeline, type PipelinePlan } from './config/index.ts'
import { IncludeError } from './config/include.ts'
import type { FromWorker, PlanInput, ToWorker } from './config-planner.ts'

const port = parentPort!
const reads = new Map<string, Array<(m: Extract<ToWorker, { kind: 'file' }>) => void>>()

function readFile(path: string): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const answer = (m: Extract<ToWorker, { kind: 'file' }>) =>
      m.tooBig ? reject(new IncludeError(`\`${path}\`: The parsed YAML is too big`)) : resolve(m.content)
    reads.set(path, [...(reads.get(path) ?? []), answer])
    port.postMessage({ kind: 'read', path } satisfies FromWorker)
  })
}

async function plan(text: string, input: PlanInput): Promise<PipelinePlan> {
  const { files, ...ctx } = input
  try {
    const config = await parseCiConfig(text, { readFile })
    return planPipeline(config, { ...ctx, fileExists: (glob) => anyGlobMatches([glob], files) })
  } catch (e) {
    if (isCiConfigError(e)) return { status: 'failed', errors: [...e.errors] }
    throw e
  }
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'file') {
    const waiting = reads.get(m.path)
    const resolve = waiting?.shift()
    if (waiting?.length === 0) reads.delete(m.path)
    resolve?.(m)
    return
  }
  port.postMessage({ kind: 'started' } satisfies FromWorker)
  plan(m.text, m.ctx).then(
    (result) => port.postMessage({ kind: 'done', plan: result } satisfies FromWorker),
    (err: unknown) => port.postMessage({ kind: 'crash', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker),
  )
})
