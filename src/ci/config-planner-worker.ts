// The worker side of ConfigPlanner (./config-planner.ts): parses and plans one file at a time,
// asking the main thread for the files `include:local` names; built-in templates are read here.
import { parentPort } from 'node:worker_threads'
import { stringify } from 'yaml'
import { ciTemplateFile } from './ci-templates.ts'
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

async function plan(text: string, input: PlanInput, merged: boolean): Promise<{ plan: PipelinePlan; mergedYaml?: string }> {
  const { files, ...ctx } = input
  let mergedYaml: string | undefined
  const onExpanded = merged ? (root: object) => (mergedYaml = stringify(root, { aliasDuplicateObjects: false })) : undefined
  try {
    const config = await parseCiConfig(text, { readFile, readTemplate: ciTemplateFile, onExpanded })
    return { plan: planPipeline(config, { ...ctx, fileExists: (glob) => anyGlobMatches([glob], files) }), mergedYaml }
  } catch (e) {
    if (isCiConfigError(e)) return { plan: { status: 'failed', errors: [...e.errors] }, mergedYaml }
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
  plan(m.text, m.ctx, m.merged === true).then(
    (result) => port.postMessage({ kind: 'done', ...result } satisfies FromWorker),
    (err: unknown) => port.postMessage({ kind: 'crash', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker),
  )
})
