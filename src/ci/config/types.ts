// The parsed `.gitlab-ci.yml`: plain JSON-serializable data, defaults and `extends` already
// applied to every job, names in GitLab's terms.

/** `when:` of a job; `delayed` waits `start_in` before it is queued. */
export const JOB_WHEN = ['on_success', 'on_failure', 'always', 'manual', 'delayed'] as const
export type JobWhen = (typeof JOB_WHEN)[number]

/** `when:` of a job rule: a job's values, plus `never`. */
export const RULE_WHEN = ['on_success', 'on_failure', 'always', 'manual', 'delayed', 'never'] as const
export type RuleWhen = (typeof RULE_WHEN)[number]

/** `workflow:auto_cancel:on_new_commit`: what a new pipeline on a branch cancels in older ones. */
export const AUTO_CANCEL_MODES = ['conservative', 'interruptible', 'none'] as const
export type AutoCancelMode = (typeof AUTO_CANCEL_MODES)[number]

/** `workflow:auto_cancel:on_job_failure`: whether a failed job cancels the rest of its pipeline. */
export const AUTO_CANCEL_ON_JOB_FAILURE = ['none', 'all'] as const
export type AutoCancelOnJobFailure = (typeof AUTO_CANCEL_ON_JOB_FAILURE)[number]

/** `when:` of a `workflow:rules` rule. */
export const WORKFLOW_WHEN = ['always', 'never'] as const

export const PULL_POLICIES = ['always', 'if-not-present', 'never'] as const
export type PullPolicy = (typeof PULL_POLICIES)[number]

export const ARTIFACTS_WHEN = ['on_success', 'on_failure', 'always'] as const
export type ArtifactsWhen = (typeof ARTIFACTS_WHEN)[number]

export const ARTIFACTS_ACCESS = ['none', 'developer', 'all'] as const

/** Failure reasons `retry:when` accepts (GitLab's Ci::Build failure reasons, plus `always`). */
export const RETRY_WHEN = [
  'always',
  'unknown_failure',
  'script_failure',
  'api_failure',
  'stuck_or_timeout_failure',
  'runner_system_failure',
  'runner_unsupported',
  'stale_schedule',
  'job_execution_timeout',
  'archived_failure',
  'unmet_prerequisites',
  'scheduler_failure',
  'data_integrity_failure',
] as const

/** The stages every pipeline has, before and after the configured ones. */
export const PRE_STAGE = '.pre'
export const POST_STAGE = '.post'
export const DEFAULT_STAGES = ['build', 'test', 'deploy'] as const
export const DEFAULT_JOB_STAGE = 'test'

export interface CiVariable {
  value: string
  /** false for `expand: false`: passed on verbatim, no `$VAR` expansion. */
  expand: boolean
  /** `description:` of a global variable (shown when running a pipeline by hand). */
  description: string | null
}

export interface CiImage {
  name: string
  entrypoint: string[] | null
  pullPolicy: PullPolicy[] | null
  /** `docker:` executor options (`platform`, `user`). */
  docker: { platform?: string; user?: string } | null
}

export interface CiService extends CiImage {
  alias: string | null
  command: string[] | null
  variables: Record<string, string>
}

export interface CiChanges {
  paths: string[]
  compareTo: string | null
}

export interface CiNeed {
  job: string
  /** Download the needed job's artifacts (default true). */
  artifacts: boolean
  /** Absent from the pipeline (excluded by rules/only/except) is fine. */
  optional: boolean
  /** `parallel:matrix`: only these combinations of a matrix job (resolved to names by ./parallel.ts). */
  matrix?: MatrixEntry[]
}

/**
 * A need outside this pipeline, for its artifacts (and dotenv variables): `needs:pipeline:job` (a job
 * of an upstream pipeline of this project, `pipeline` usually `$PARENT_PIPELINE_ID`) or
 * `needs:project` (a job of the newest successful pipeline of `ref` in another project). Values are
 * expanded when the job starts, with its variables.
 */
export type CiCrossNeed =
  | { job: string; artifacts: boolean; pipeline: string }
  | { job: string; artifacts: boolean; project: string; ref: string }

/** One `parallel:matrix` entry: each variable's values (a single value is a one-element list). */
export type MatrixEntry = Record<string, string[]>

/** Which instance of a `parallel:` job this is (CI_NODE_INDEX / CI_NODE_TOTAL). */
export interface CiParallel {
  /** The job's name as written, before expansion. */
  group: string
  index: number
  total: number
  /** The matrix variables of this instance, or null for `parallel: N`. */
  matrix: Record<string, string> | null
}

export interface CiRule {
  if: string | null
  changes: CiChanges | null
  exists: string[] | null
  when: RuleWhen | null
  allowFailure: boolean | null
  variables: Record<string, string> | null
  needs: CiNeed[] | null
  interruptible: boolean | null
  /** Seconds a `when: delayed` rule waits (`start_in`). */
  startIn: number | null
  /** `workflow:rules:auto_cancel`: overrides `workflow:auto_cancel` when this rule matches. */
  autoCancel?: CiAutoCancel
}

/** `workflow:auto_cancel` (and a workflow rule's): null where it says nothing. */
export interface CiAutoCancel {
  onNewCommit: AutoCancelMode | null
  onJobFailure: AutoCancelOnJobFailure | null
}

/** `only:` / `except:`: every present key must have a matching condition. */
export interface CiPolicy {
  refs: string[] | null
  variables: string[] | null
  changes: CiChanges | null
  kubernetes: 'active' | null
}

export interface CiArtifacts {
  name: string | null
  paths: string[]
  exclude: string[]
  /** Seconds; 'never'; null when not set (the instance default applies). */
  expireIn: number | 'never' | null
  when: ArtifactsWhen
  untracked: boolean
  /** `reports:` as written (junit, dotenv, ...): uploaded like other artifacts. */
  reports: Record<string, unknown> | null
  exposeAs: string | null
  public: boolean | null
  access: (typeof ARTIFACTS_ACCESS)[number] | null
}

export interface CiCache {
  key: string | { files: string[]; prefix: string | null }
  paths: string[]
  /** pull, push, pull-push, or a `$VARIABLE` resolved when the job runs. */
  policy: string
  when: ArtifactsWhen
  untracked: boolean
  unprotect: boolean
  fallbackKeys: string[]
}

export interface CiRetry {
  max: number
  when: string[]
  exitCodes: number[]
}

export interface CiEnvironment {
  name: string
  url: string | null
  action: 'start' | 'stop' | 'prepare' | 'verify' | 'access'
  onStop: string | null
  autoStopIn: string | null
  deploymentTier: string | null
}

/** `link_type` of a release's asset link. */
export const RELEASE_LINK_TYPES = ['other', 'runbook', 'image', 'package'] as const
export type ReleaseLinkType = (typeof RELEASE_LINK_TYPES)[number]

/** One `release:assets:links` entry. */
export interface CiReleaseLink {
  name: string
  url: string
  /** `filepath` / `direct_asset_path`: the asset's permanent path under the release. */
  directAssetPath: string | null
  linkType: ReleaseLinkType
}

/** `release:` of a job: the release the server creates when the job succeeds (variables expanded when planned). */
export interface CiRelease {
  tagName: string
  /** Message of the annotated tag created when `tag_name` does not exist yet. */
  tagMessage: string | null
  name: string | null
  description: string
  /** Where a missing tag is created (a branch, tag or commit); the pipeline's commit when null. */
  ref: string | null
  /** ISO 8601; now when null. */
  releasedAt: string | null
  links: CiReleaseLink[]
}

/**
 * One entry of a child pipeline's configuration (`trigger:include`), as written: `local`, `artifact`
 * with `job`, `project` with `file` (and `ref`), `template`, `component` or `remote`, each with
 * optional `inputs`. The child pipeline expands it as an `include:` of its own.
 */
export type CiTriggerInclude = Record<string, unknown>

/** `trigger:` of a bridge job: a child pipeline (`include`) or a multi-project one (`project`). */
export interface CiTrigger {
  /** Full path of the downstream project, or null for a child pipeline. */
  project: string | null
  /** Branch of the downstream project (its default branch when null). */
  branch: string | null
  /** The child pipeline's configuration files; null for a multi-project trigger. */
  include: CiTriggerInclude[] | null
  /** `strategy: depend`: the bridge's status follows the downstream pipeline's. */
  depend: boolean
  /** `forward:`: which variables the downstream pipeline receives. */
  forward: { yamlVariables: boolean; pipelineVariables: boolean }
}

/** One `id_tokens:` entry: the audience(s) of the OIDC ID token the job receives in a variable of its name. */
export interface CiIdToken {
  /** As written; `$VARIABLES` are expanded when the job starts, as on GitLab. */
  aud: string | string[]
}

export interface CiInherit {
  /** Inherit `default:` keywords: all, none, or the listed ones. */
  default: boolean | string[]
  /** Inherit global `variables:`: all, none, or the listed ones. */
  variables: boolean | string[]
}

export interface CiJob {
  name: string
  stage: string
  extends: string[]
  image: CiImage | null
  services: CiService[]
  beforeScript: string[]
  script: string[]
  afterScript: string[]
  /** The job's own `variables:` (global ones are merged in by planPipeline, per `inherit`). */
  variables: Record<string, CiVariable>
  inherit: CiInherit
  rules: CiRule[] | null
  only: CiPolicy | null
  except: CiPolicy | null
  /** null: wait for earlier stages; []: start at once. */
  needs: CiNeed[] | null
  /** `needs:pipeline:job` and `needs:project`: artifacts from outside this pipeline (no wait). */
  crossNeeds: CiCrossNeed[]
  dependencies: string[] | null
  artifacts: CiArtifacts | null
  cache: CiCache[]
  when: JobWhen
  /** `allow_failure:`, or true for a job-level `when: manual` without it (GitLab's default). */
  allowFailure: boolean
  allowFailureExitCodes: number[] | null
  retry: CiRetry | null
  /** Seconds. */
  timeout: number | null
  tags: string[]
  interruptible: boolean | null
  /** Seconds a `when: delayed` job waits before it is queued (`start_in`). */
  startIn: number | null
  environment: CiEnvironment | null
  release: CiRelease | null
  coverage: string | null
  /** `id_tokens:` by variable name (the job's own, else `default:`'s), or null. */
  idTokens: Record<string, CiIdToken> | null
  /** Set on each instance of a `parallel:` job. */
  parallel: CiParallel | null
  /** Set on a bridge job (`trigger:`), which no runner runs; its `script` is empty. */
  trigger: CiTrigger | null
  /** `resource_group:`: one job of the group runs at a time in the project. */
  resourceGroup: string | null
}

export interface CiConfig {
  /** Every stage, `.pre` first and `.post` last. */
  stages: string[]
  /** Global `variables:`. */
  variables: Record<string, CiVariable>
  workflow: {
    name: string | null
    rules: CiRule[] | null
    autoCancelOnNewCommit: AutoCancelMode | null
    autoCancelOnJobFailure: AutoCancelOnJobFailure | null
  }
  /** Visible jobs in file order (hidden `.jobs` are templates only). */
  jobs: CiJob[]
  /** Local files pulled in by `include`, in load order. */
  includes: string[]
}
