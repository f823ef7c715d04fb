// The worker side of ConfigPlanner (./config-planner.ts): parses and plans one file at a time,
// asking the main thread for the files `include:` names; built-in templates are read here.
import { parentPort } from 'node:worker_threads'
import { stringify } from 'yaml'
import { ciTemplateFile } from './ci-templates.ts'
import {
  anyGlobMatches,
  CiConfigError,
  expandVariables,
  isCiConfigError,
  parseCiConfig,
  planPipeline,
  type CiChanges,
  type CiConfig,
  type PipelinePlan,
} from './config/index.ts'
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
  const { files, masked, ...ctx } = input
  const fileExists = (glob: string) => anyGlobMatches([glob], files)
  // `changes:compare_to`: each ref's changed paths are asked for once, for includes and jobs alike.
  const compared = new Map<string, Promise<string[] | null>>()
  const changedSince = (ref: string): Promise<string[] | null> => {
    let got = compared.get(ref)
    if (!got) {
      got = read({ path: ref, compareTo: ref }).then((a) => a.changed ?? null)
      compared.set(ref, got)
    }
    return got
  }
  const changedFiles = async (compareTo: string | null): Promise<string[] | undefined> => {
    if (compareTo === null) return ctx.source === 'push' && ctx.refType === 'branch' ? ctx.changedFiles : undefined
    const changed = await changedSince(compareTo)
    if (changed === null) throw new IncludeError(`include rule changes:compare_to is not a valid ref: ${compareTo}`)
    return changed
  }
  let mergedYaml: string | undefined
  const onExpanded = options.merged ? (root: object) => (mergedYaml = stringify(root, { aliasDuplicateObjects: false })) : undefined
  try {
    const config = await parseCiConfig(text, {
      readFile: async (path) => (await read({ path })).content,
      readProjectFile: async (project, ref, path): Promise<ProjectFile> => {
        const answer = await read({ path, project, ref })
        return answer.content === undefined ? { missing: answer.missing ?? 'file' } : { content: answer.content }
      },
      projectTags: async (project: string) => {
        const answer = await read({ path: project, tagsOf: project })
        return answer.tags ?? { missing: 'project' }
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
      ...(masked ? { maskedVariables: masked } : {}),
      fileExists,
      changedFiles,
      onExpanded,
    })
    // planPipeline is synchronous: the refs its rules compare to are read before it runs.
    const refs = compareToRefs(config).map((ref) => expandVariables(ref, ctx.variables, { keepUnknown: true }))
    const known = new Map<string, string[] | null>()
    for (const ref of new Set(refs)) known.set(ref, await changedSince(ref))
    const changedFilesComparedTo = (ref: string): string[] | undefined => {
      const changed = known.get(ref)
      if (changed === null) throw new CiConfigError([`rules:changes:compare_to is not a valid ref: ${ref}`])
      return changed
    }
    return { plan: planPipeline(config, { ...ctx, fileExists, changedFilesComparedTo }), mergedYaml }
  } catch (e) {
    if (isCiConfigError(e)) return { plan: { status: 'failed', errors: [...e.errors] }, mergedYaml }
    throw e
  }
}

/** Every `changes:compare_to` of the workflow's and the jobs' rules, only and except. */
function compareToRefs(config: CiConfig): string[] {
  const changes: Array<CiChanges | null> = [...(config.workflow.rules ?? []).map((r) => r.changes)]
  for (const job of config.jobs) {
    changes.push(...(job.rules ?? []).map((r) => r.changes), job.only?.changes ?? null, job.except?.changes ?? null)
  }
  return changes.flatMap((c) => (c?.compareTo ? [c.compareTo] : []))
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
