// Helpers shared by this folder's tests: fixtures, a plan context built like the push
// handler's, and a compact view of a plan's job graph.
import { readFile } from 'node:fs/promises'
import { parseCiConfig } from './parse.ts'
import { anyGlobMatches } from './glob.ts'
import type { PipelinePlan, PlanContext } from './plan.ts'
import type { CiConfig } from './types.ts'

export const FIXTURES = new URL('./fixtures/', import.meta.url)

export function fixture(name: string): Promise<string> {
  return readFile(new URL(name, FIXTURES), 'utf8')
}

/** A readFile callback over an in-memory repository. */
export function files(tree: Record<string, string>): { readFile(path: string): Promise<string | undefined> } {
  return { readFile: async (path) => (Object.hasOwn(tree, path) ? tree[path] : undefined) }
}

/** A readFile callback over a folder of fixtures. */
export function folder(dir: string): { readFile(path: string): Promise<string | undefined> } {
  return {
    readFile: async (path) => {
      try {
        return await readFile(new URL(path, new URL(dir.endsWith('/') ? dir : `${dir}/`, FIXTURES)), 'utf8')
      } catch {
        return undefined
      }
    },
  }
}

export const noFiles = files({})

export function parse(text: string, tree: Record<string, string> = {}): Promise<CiConfig> {
  return parseCiConfig(text, files(tree))
}

export interface Event {
  ref?: string
  tag?: boolean
  source?: PlanContext['source']
  changed?: string[] | undefined
  repoFiles?: string[]
  vars?: Record<string, string>
}

/** A context as the push handler builds it, with the predefined variables rules read. */
export function event(e: Event = {}): PlanContext {
  const ref = e.ref ?? 'main'
  const tag = e.tag ?? false
  const source = e.source ?? 'push'
  const repoFiles = e.repoFiles ?? ['.gitlab-ci.yml', 'README.md', 'src/index.ts']
  const variables: Record<string, string> = {
    CI: 'true',
    GITLAB_CI: 'true',
    CI_PIPELINE_SOURCE: source,
    CI_COMMIT_REF_NAME: ref,
    CI_COMMIT_REF_SLUG: ref.toLowerCase().replace(/[^a-z0-9]/g, '-'),
    CI_DEFAULT_BRANCH: 'main',
    CI_COMMIT_SHA: 'c0ffee',
    CI_PROJECT_PATH: 'group/app',
    CI_REGISTRY: 'wharf.example.com',
    CI_REGISTRY_IMAGE: 'wharf.example.com/group/app',
    ...(tag ? { CI_COMMIT_TAG: ref } : { CI_COMMIT_BRANCH: ref }),
    ...e.vars,
  }
  return {
    source,
    refName: ref,
    refType: tag ? 'tag' : 'branch',
    sha: 'c0ffee',
    beforeSha: 'decaf',
    changedFiles: 'changed' in e ? e.changed : ['src/index.ts'],
    fileExists: (glob) => anyGlobMatches([glob], repoFiles),
    variables,
  }
}

export interface GraphJob {
  name: string
  stage: string
  when: string
  allowFailure?: true
  needs?: string[]
}

/** The plan's job graph in a form tests can compare whole. */
export function graph(plan: PipelinePlan): GraphJob[] | string {
  if (plan.status === 'filtered') return `filtered: ${plan.reason}`
  if (plan.status === 'failed') return `failed: ${plan.errors.join(' | ')}`
  return plan.jobs.map((j) => ({
    name: j.name,
    stage: j.stage,
    when: j.when,
    ...(j.allowFailure ? { allowFailure: true as const } : {}),
    ...(j.needs ? { needs: j.needs.map((n) => n.job) } : {}),
  }))
}

export function created(plan: PipelinePlan): Extract<PipelinePlan, { status: 'created' }> {
  if (plan.status !== 'created') throw new Error(`expected a pipeline, got ${JSON.stringify(plan)}`)
  return plan
}
