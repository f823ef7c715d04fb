import { evaluateExpression, patternFromString } from './expression.ts'
import { anyGlobMatches } from './glob.ts'
import {
  POST_STAGE,
  PRE_STAGE,
  type AutoCancelMode,
  type AutoCancelOnJobFailure,
  type CiArtifacts,
  type CiCache,
  type CiChanges,
  type CiConfig,
  type CiCrossNeed,
  type CiEnvironment,
  type CiRelease,
  type CiIdToken,
  type CiImage,
  type CiJob,
  type CiNeed,
  type CiPolicy,
  type CiRetry,
  type CiRule,
  type CiService,
  type CiTrigger,
  type CiVariable,
  type JobWhen,
} from './types.ts'
import { setKey } from './util.ts'
import { expandAllVariables, expandVariables } from './variables.ts'

// planPipeline: which jobs of a parsed config run for one push/web/api/... event, with
// GitLab's semantics: workflow:rules first, then each job's rules (first match wins) or
// only/except (default `only: [branches, tags]`), then needs checked against the jobs kept.

export const PIPELINE_SOURCES = ['push', 'web', 'api', 'trigger', 'schedule', 'pipeline', 'parent_pipeline'] as const
export type PipelineSource = (typeof PIPELINE_SOURCES)[number]

export interface PlanContext {
  source: PipelineSource
  refName: string
  refType: 'branch' | 'tag'
  sha: string
  beforeSha: string
  /** Paths changed by the push; undefined when unknown (new branch...): `changes` is then true, as on GitLab. */
  changedFiles: string[] | undefined
  /** Whether a file matching the glob exists at `sha` (see matchGlob). */
  fileExists(glob: string): boolean
  /** Predefined, project, group and trigger variables. They win over YAML variables. */
  variables: Record<string, string>
  /** Paths changed between `ref` and `sha`, for `changes:compare_to`; undefined when unknown. */
  changedFilesComparedTo?(ref: string): string[] | undefined
  /** Most jobs one pipeline may have (GitLab's ci_pipeline_size); unlimited when absent. */
  maxJobs?: number
}

export interface PlannedJob {
  name: string
  stage: string
  /** Index into the plan's `stages`. */
  stageIndex: number
  when: JobWhen
  allowFailure: boolean
  allowFailureExitCodes: number[] | null
  /** null: wait for earlier stages; []: start at once; otherwise the jobs to wait for. */
  needs: CiNeed[] | null
  /** `needs:pipeline:job` and `needs:project` (artifacts from outside this pipeline), as written. */
  crossNeeds: CiCrossNeed[]
  /** `dependencies:` kept in the pipeline, or null when not given. */
  dependencies: string[] | null
  /** Jobs whose artifacts this job downloads (dependencies, else needs, else earlier stages). */
  artifactsFrom: string[]
  /** Image and service names with known variables expanded. */
  image: CiImage | null
  services: CiService[]
  beforeScript: string[]
  script: string[]
  afterScript: string[]
  /** YAML variables, global < job < rule (raw: the runner expands them). */
  variables: Record<string, string>
  /** Names among `variables` declared `expand: false`. */
  rawVariables: string[]
  artifacts: CiArtifacts | null
  cache: CiCache[]
  retry: CiRetry | null
  timeout: number | null
  tags: string[]
  interruptible: boolean | null
  /** Seconds a `when: delayed` job waits once it could start; null for other jobs. */
  startIn: number | null
  /** `environment:` with `name` and `url` expanded. */
  environment: CiEnvironment | null
  /** `release:` as written: expanded with the job's variables when it succeeds and the server creates it. */
  release: CiRelease | null
  coverage: string | null
  /** `id_tokens:`, audiences as written (expanded when the job starts, with the job's variables). */
  idTokens: Record<string, CiIdToken> | null
  /** A bridge job's `trigger:` (`project` and `branch` with variables expanded); null for a job runners run. */
  trigger: CiTrigger | null
  /** `resource_group:` with variables expanded (GitLab allows `$CI_ENVIRONMENT_NAME` and the like). */
  resourceGroup: string | null
}

export type PipelinePlan =
  | {
      status: 'created'
      /** `workflow:name`, expanded. */
      name: string | null
      stages: string[]
      jobs: PlannedJob[]
      /** Global YAML variables after `workflow:rules:variables`. */
      variables: Record<string, string>
      /** `workflow:auto_cancel:on_new_commit` (GitLab's default: conservative). */
      autoCancelOnNewCommit: AutoCancelMode
      /** `workflow:auto_cancel:on_job_failure` (GitLab's default: none). */
      autoCancelOnJobFailure: AutoCancelOnJobFailure
    }
  /** No pipeline is created (workflow:rules, or no job left). */
  | { status: 'filtered'; reason: string }
  /** The pipeline is created failed, with these errors (GitLab's "yaml invalid"). */
  | { status: 'failed'; errors: string[] }

/** GitLab's words when a pipeline would have more jobs than ci_pipeline_size allows. */
export function tooManyJobs(limit: number): string {
  return `The number of jobs has exceeded the limit of ${limit}.`
}

export const FILTERED_BY_WORKFLOW = 'Pipeline filtered out by workflow rules.'
export const NO_JOBS =
  'Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline.'

const DEFAULT_ONLY: CiPolicy = { refs: ['branches', 'tags'], variables: null, changes: null, kubernetes: null }

/** Pipeline sources each `only/except` keyword stands for. */
const SOURCE_KEYWORDS: Readonly<Record<string, PipelineSource | null>> = {
  api: 'api',
  pushes: 'push',
  triggers: 'trigger',
  web: 'web',
  schedules: 'schedule',
  pipelines: 'pipeline',
  merge_requests: null,
  external: null,
  external_pull_requests: null,
  chat: null,
}

type Lookup = (name: string) => string | undefined

/** Variable lookup for conditions: context variables first, then YAML ones expanded. */
function lookupFor(yaml: Readonly<Record<string, CiVariable>>, ctx: PlanContext): Lookup {
  const expanded = expandAllVariables(yaml, ctx.variables)
  return (name) => (Object.hasOwn(ctx.variables, name) ? ctx.variables[name] : Object.hasOwn(expanded, name) ? expanded[name] : undefined)
}

function changesMatch(changes: CiChanges, lookup: Lookup, ctx: PlanContext): boolean {
  const paths = changes.paths.map((p) => expandVariables(p, lookup))
  if (changes.compareTo !== null) {
    const files = ctx.changedFilesComparedTo?.(expandVariables(changes.compareTo, lookup))
    return files === undefined || anyGlobMatches(paths, files)
  }
  // GitLab: without a push event to diff (tags, web, schedules...) or a known "before", changes are true.
  if (ctx.source !== 'push' || ctx.refType === 'tag' || ctx.changedFiles === undefined) return true
  return anyGlobMatches(paths, ctx.changedFiles)
}

function existsMatch(paths: string[], lookup: Lookup, ctx: PlanContext): boolean {
  return paths.some((p) => ctx.fileExists(expandVariables(p, lookup)))
}

function ruleMatches(rule: CiRule, lookup: Lookup, ctx: PlanContext): boolean {
  if (rule.if !== null && !evaluateExpression(rule.if, lookup)) return false
  if (rule.changes && !changesMatch(rule.changes, lookup, ctx)) return false
  if (rule.exists && !existsMatch(rule.exists, lookup, ctx)) return false
  return true
}

function firstMatch(rules: CiRule[], lookup: Lookup, ctx: PlanContext): CiRule | undefined {
  return rules.find((r) => ruleMatches(r, lookup, ctx))
}

function refMatches(pattern: string, ctx: PlanContext): boolean {
  if (pattern === 'branches') return ctx.refType === 'branch'
  if (pattern === 'tags') return ctx.refType === 'tag'
  if (Object.hasOwn(SOURCE_KEYWORDS, pattern)) return SOURCE_KEYWORDS[pattern] === ctx.source
  const re = patternFromString(pattern)
  if (re) return re.test(ctx.refName)
  const at = pattern.lastIndexOf('@')
  if (at > 0 && re === undefined) {
    // "ref@group/project": only in that project (forks do not run it).
    const project = ctx.variables.CI_PROJECT_PATH
    if (project === undefined || pattern.slice(at + 1).toLowerCase() !== project.toLowerCase()) return false
    return refMatches(pattern.slice(0, at), ctx)
  }
  return pattern === ctx.refName
}

/** A policy holds when each key it has holds (GitLab: conditions are ANDed across keys). */
function policyMatches(policy: CiPolicy, lookup: Lookup, ctx: PlanContext): boolean {
  if (policy.refs && !policy.refs.some((r) => refMatches(r, ctx))) return false
  if (policy.variables && !policy.variables.some((v) => evaluateExpression(v, lookup))) return false
  if (policy.changes && !changesMatch(policy.changes, lookup, ctx)) return false
  if (policy.kubernetes) return false // no Kubernetes integration: never active
  return true
}

function inheritedGlobals(globals: Record<string, CiVariable>, inherit: boolean | string[]): Record<string, CiVariable> {
  if (inherit === true) return { ...globals }
  const out: Record<string, CiVariable> = {}
  if (inherit === false) return out
  for (const name of inherit) if (Object.hasOwn(globals, name)) setKey(out, name, globals[name] as CiVariable)
  return out
}

function asVariables(vars: Record<string, string>): Record<string, CiVariable> {
  const out: Record<string, CiVariable> = {}
  for (const [k, value] of Object.entries(vars)) setKey(out, k, { value, expand: true, description: null })
  return out
}

function expandImage<T extends CiImage>(image: T, lookup: Lookup): T {
  return { ...image, name: expandVariables(image.name, lookup, { keepUnknown: true }) }
}

function expandService(service: CiService, lookup: Lookup): CiService {
  return {
    ...expandImage(service, lookup),
    alias: service.alias === null ? null : expandVariables(service.alias, lookup, { keepUnknown: true }),
  }
}

interface Selected {
  job: CiJob
  when: JobWhen
  allowFailure: boolean
  needs: CiNeed[] | null
  interruptible: boolean | null
  startIn: number | null
  variables: Record<string, CiVariable>
}

export function planPipeline(config: CiConfig, ctx: PlanContext): PipelinePlan {
  const globals: Record<string, CiVariable> = { ...config.variables }
  let autoCancelOnNewCommit = config.workflow.autoCancelOnNewCommit
  let autoCancelOnJobFailure = config.workflow.autoCancelOnJobFailure
  if (config.workflow.rules) {
    const rule = firstMatch(config.workflow.rules, lookupFor(globals, ctx), ctx)
    if (!rule || rule.when === 'never') return { status: 'filtered', reason: FILTERED_BY_WORKFLOW }
    for (const [k, v] of Object.entries(rule.variables ?? {})) setKey(globals, k, { value: v, expand: true, description: null })
    // workflow:rules:auto_cancel overrides workflow:auto_cancel, setting by setting.
    autoCancelOnNewCommit = rule.autoCancel?.onNewCommit ?? autoCancelOnNewCommit
    autoCancelOnJobFailure = rule.autoCancel?.onJobFailure ?? autoCancelOnJobFailure
  }

  const selected: Selected[] = []
  for (const job of config.jobs) {
    const yaml = { ...inheritedGlobals(globals, job.inherit.variables), ...job.variables }
    const lookup = lookupFor(yaml, ctx)
    if (job.rules) {
      const rule = firstMatch(job.rules, lookup, ctx)
      if (!rule || rule.when === 'never') continue
      selected.push({
        job,
        when: rule.when ?? job.when,
        // GitLab: `when: manual` inside rules does not imply allow_failure; a job-level one does.
        allowFailure: rule.allowFailure ?? job.allowFailure,
        needs: rule.needs ?? job.needs,
        interruptible: rule.interruptible ?? job.interruptible,
        startIn: (rule.when ?? job.when) === 'delayed' ? (rule.startIn ?? job.startIn ?? 0) : null,
        variables: { ...yaml, ...asVariables(rule.variables ?? {}) },
      })
      continue
    }
    // GitLab drops the default `only` when workflow:rules exist.
    const only = job.only ?? (config.workflow.rules ? null : DEFAULT_ONLY)
    if (only && !policyMatches(only, lookup, ctx)) continue
    if (job.except && policyMatches(job.except, lookup, ctx)) continue
    selected.push({
      job,
      when: job.when,
      allowFailure: job.allowFailure,
      needs: job.needs,
      interruptible: job.interruptible,
      startIn: job.when === 'delayed' ? job.startIn : null,
      variables: yaml,
    })
  }

  // Checked before anything per job is built: a huge file costs no more than this count.
  if (ctx.maxJobs !== undefined && selected.length > ctx.maxJobs) return { status: 'failed', errors: [tooManyJobs(ctx.maxJobs)] }

  const kept = new Set(selected.map((s) => s.job.name))
  const errors: string[] = []
  for (const s of selected) {
    if (!s.needs) continue
    const needs: CiNeed[] = []
    for (const need of s.needs) {
      if (kept.has(need.job)) needs.push(need)
      else if (!need.optional) {
        errors.push(
          `'${s.job.name}' job needs '${need.job}' job, but '${need.job}' does not exist in the pipeline. ` +
            'This might be because of the only, except, or rules keywords. ' +
            'To need a job that sometimes does not exist in the pipeline, use needs:optional.',
        )
      }
    }
    s.needs = needs
  }
  if (errors.length) return { status: 'failed', errors }
  if (selected.every((s) => s.job.stage === PRE_STAGE || s.job.stage === POST_STAGE)) {
    return { status: 'filtered', reason: NO_JOBS }
  }

  const stages = config.stages.filter((stage) => selected.some((s) => s.job.stage === stage))
  // Jobs of all earlier stages (in file order), per stage: computed once, not once per job.
  const stageIndexOf = new Map(stages.map((stage, i) => [stage, i]))
  const earlier = stages.map((_, i) => selected.filter((o) => (stageIndexOf.get(o.job.stage) ?? 0) < i).map((o) => o.job.name))
  const jobs = selected
    .map((s): PlannedJob => {
      const { job } = s
      const stageIndex = stageIndexOf.get(job.stage) ?? -1
      const lookup = lookupFor(s.variables, ctx)
      const dependencies = job.dependencies?.filter((d) => kept.has(d)) ?? null
      const artifactsFrom =
        dependencies ?? (s.needs ? s.needs.filter((n) => n.artifacts).map((n) => n.job) : [...(earlier[stageIndex] ?? [])])
      const variables: Record<string, string> = {}
      for (const [k, v] of Object.entries(s.variables)) setKey(variables, k, v.value)
      return {
        name: job.name,
        stage: job.stage,
        stageIndex,
        when: s.when,
        allowFailure: s.allowFailure,
        allowFailureExitCodes: job.allowFailureExitCodes,
        needs: s.needs,
        crossNeeds: job.crossNeeds,
        dependencies,
        artifactsFrom,
        image: job.image && expandImage(job.image, lookup),
        services: job.services.map((svc) => expandService(svc, lookup)),
        beforeScript: job.beforeScript,
        script: job.script,
        afterScript: job.afterScript,
        variables,
        rawVariables: Object.entries(s.variables)
          .filter(([, v]) => !v.expand)
          .map(([k]) => k),
        artifacts: job.artifacts,
        cache: job.cache,
        retry: job.retry,
        timeout: job.timeout,
        tags: job.tags,
        interruptible: s.interruptible,
        startIn: s.startIn,
        environment: job.environment && {
          ...job.environment,
          name: expandVariables(job.environment.name, lookup),
          url: job.environment.url === null ? null : expandVariables(job.environment.url, lookup),
        },
        release: job.release,
        coverage: job.coverage,
        idTokens: job.idTokens,
        resourceGroup: job.resourceGroup === null ? null : expandVariables(job.resourceGroup, lookup) || null,
        trigger: job.trigger && {
          ...job.trigger,
          project: job.trigger.project === null ? null : expandVariables(job.trigger.project, lookup),
          branch: job.trigger.branch === null ? null : expandVariables(job.trigger.branch, lookup),
        },
      }
    })
    .sort((a, b) => a.stageIndex - b.stageIndex)

  const globalValues: Record<string, string> = {}
  for (const [k, v] of Object.entries(globals)) setKey(globalValues, k, v.value)
  const name = config.workflow.name === null ? null : expandVariables(config.workflow.name, lookupFor(globals, ctx))
  return {
    status: 'created',
    name,
    stages,
    jobs,
    variables: globalValues,
    autoCancelOnNewCommit: autoCancelOnNewCommit ?? 'conservative',
    autoCancelOnJobFailure: autoCancelOnJobFailure ?? 'none',
  }
}
