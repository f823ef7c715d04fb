// The worker side of ConfigPlanner (./config-planner.ts): parses and plans one file at a time,
// asking the main thread for the files `include:` names; built-in templates are read here.
import { parentPort } from 'node:worker_threads'
import { stringify } from 'yaml'
import { ciTemplateFile } from './ci-templates.ts'
import { anyGlobMatches, isCiConfigError, parseCiConfig, planPipeline, type PipelinePlan } from './config/index.ts'
import { IncludeError, type ProjectFile, type RemoteFile } from './config/include.ts'
import type { FileAnswer, FileRequest, FromWorker, PlanInput, PlanOptions, ToWorker } from './config-planner.ts'

const port = parentPort!
const reads = new Map<number, (m: Extract<ToWorker, { kind: 'file' }>) => void>()
let nextRead = 0

function read(request: FileRequest): Promise<FileAnswer> {
  return new Promise((resolve, reject) => {
    const id = ++nextRead
    reads.set(id, (m) => (m.tooBig ? reject(new IncludeError(`\`${request.path}\`: The parsed YAML is too big`)) : resolve(m)))
    port.postMessage({ kind: 'read', id, request } satisfies FromWorker)
  })
}

async function plan(text: string, input: PlanInput, options: PlanOptions): Promise<{ plan: PipelinePlan; mergedYaml?: string }> {
  const { files, ...ctx } = input
  const fileExists = (glob: string) => anyGlobMatches([glob], files)
  let mergedYaml: string | undefined
  const onExpanded = options.merged ? (root: object) => (mergedYaml = stringify(root, { aliasDuplicateObjects: false })) : undefined
  try {
    const config = await parseCiConfig(text, {
      readFile: async (path) => (await read({ path })).content,
      readProjectFile: async (project, ref, path): Promise<ProjectFile> => {
        const answer = await read({ path, project, ref })
        return answer.content === undefined ? { missing: answer.missing ?? 'file' } : { content: answer.content }
      },
      readRemote: async (url: string): Promise<RemoteFile> => {
        const answer = await read({ path: url, remote: url })
        return answer.content === undefined
          ? { error: answer.error ?? `Remote file \`${url}\` could not be fetched` }
          : { content: answer.content }
      },
      ...(options.artifacts ? { readArtifact: async (job: string, path: string) => (await read({ path, job })).content } : {}),
      readTemplate: ciTemplateFile,
      variables: ctx.variables,
      fileExists,
      onExpanded,
    })
    return { plan: planPipeline(config, { ...ctx, fileExists }), mergedYaml }
  } catch (e) {
    if (isCiConfigError(e)) return { plan: { status: 'failed', errors: [...e.errors] }, mergedYaml }
    throw e
  }
}

port.on('message', (m: ToWorker) => {
  if (m.kind === 'file') {
    const answer = reads.get(m.id)
    reads.delete(m.id)
    answer?.(m)
    return
  }
  port.postMessage({ kind: 'started' } satisfies FromWorker)
  plan(m.text, m.ctx, m.options).then(
    (result) => port.postMessage({ kind: 'done', ...result } satisfies FromWorker),
    (err: unknown) => port.postMessage({ kind: 'crash', message: err instanceof Error ? err.message : String(err) } satisfies FromWorker),
  )
})
