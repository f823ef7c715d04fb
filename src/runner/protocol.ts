/**
 * The runner protocol: GitLab's runner API as Wharf serves it, shared by the server routes
 * (src/ci/runner-routes.ts) and Wharf's own client (`wharf runner`). Field names are GitLab's
 * (gitlab-runner `common/network.go`, GitLab `lib/api/ci/runner.rb`) so an unmodified
 * `gitlab-runner` can talk to Wharf. This module imports only TypeBox: it ships with the runner.
 *
 * Endpoints (all under `/api/v4`):
 *
 * | call | auth | answers |
 * |------|------|---------|
 * | `POST /runners/verify` {@link VerifyRunnerRequest} | runner token in body | 200 {@link VerifyRunnerResponse}, 403 |
 * | `DELETE /runners` {@link UnregisterRunnerRequest} | runner token in body | 204, 403 |
 * | `DELETE /runners/managers` {token, system_id} | runner token in body | 204 (no-op), 403 |
 * | `POST /runners/reset_authentication_token` {token} | runner token in body | 201 {token, token_expires_at}, 403 |
 * | `POST /jobs/request` {@link JobRequest} | runner token in body | 201 {@link JobResponse}, 204 (none; `X-GitLab-Last-Update`), 403 |
 * | `PUT /jobs/:id` {@link UpdateJobRequest} | job token in body | 200 (`Job-Status`), 403 (job not running / bad token), 404 |
 * | `PATCH /jobs/:id/trace` raw bytes | `JOB-TOKEN` header, `Content-Range: <start>-<end>` | 202 (`Range`, `Job-Status`), 416 (`Range`), 403 |
 * | `POST /jobs/:id/artifacts/authorize` | `JOB-TOKEN` | 200 {@link ArtifactsAuthorizeResponse}, 413 |
 * | `POST /jobs/:id/artifacts?artifact_format=&artifact_type=&expire_in=` multipart `file` | `JOB-TOKEN` | 201, 413, 403 |
 * | `GET /jobs/:id/artifacts` | `JOB-TOKEN` (of the job that depends on it) | 200 bytes, 404, 403 |
 *
 * Registration of new runners is `POST /api/v4/user/runners` (an authenticated user, not a
 * runner): it answers {@link RegisterRunnerResponse} with the `glrt-` token shown once.
 */
import { Type, type Static } from '@sinclair/typebox'

/** Header names, exactly as GitLab spells them. */
export const HEADERS = {
  /** Job token on trace/artifact calls. */
  jobToken: 'JOB-TOKEN',
  /** Server's job status on PUT/PATCH answers; `canceled` (or `failed`) tells the runner to abort. */
  jobStatus: 'Job-Status',
  /** On 204 from /jobs/request; echoed back by the runner as `last_update`. */
  lastUpdate: 'X-GitLab-Last-Update',
  /** Trace append request: `<start>-<end>` (end inclusive, byte offsets of this chunk). */
  contentRange: 'Content-Range',
  /** Trace append answer: `0-<stored size>`: the size is the offset of the next chunk. */
  range: 'Range',
  /** Trace append answer: seconds the runner should wait between trace updates. */
  traceUpdateInterval: 'X-GitLab-Trace-Update-Interval',
} as const

/** Prefixes of the two token kinds (GitLab's). */
export const TOKEN_PREFIXES = { runner: 'glrt-', job: 'glcbt-' } as const

/** The username that goes with a job token for registry and git basic auth. */
export const JOB_TOKEN_USERNAME = 'gitlab-ci-token'

// ---------------------------------------------------------------------------------------------
// Runner identity

/** What a runner says about itself on every request (gitlab-runner's VersionInfo). */
export const FeaturesInfo = Type.Record(Type.String(), Type.Boolean(), {
  description: 'variables, image, services, artifacts, cache, masking, trace_checksum, cancelable, ... (all booleans)',
})
export type FeaturesInfo = Static<typeof FeaturesInfo>

export const VersionInfo = Type.Object({
  name: Type.Optional(Type.String()),
  version: Type.Optional(Type.String()),
  revision: Type.Optional(Type.String()),
  platform: Type.Optional(Type.String()),
  architecture: Type.Optional(Type.String()),
  executor: Type.Optional(Type.String()),
  shell: Type.Optional(Type.String()),
  features: Type.Optional(FeaturesInfo),
})
export type VersionInfo = Static<typeof VersionInfo>

export const RUNNER_TYPES = ['instance_type', 'group_type', 'project_type'] as const
export type RunnerType = (typeof RUNNER_TYPES)[number]

/**
 * Body of `POST /api/v4/user/runners` (a user creating a runner, GitLab 16+ flow). A user-facing
 * write, so only these attributes: anything else is refused (400), as on every /api/v4 write.
 */
export const CreateRunnerRequest = Type.Object(
  {
    runner_type: Type.Union(RUNNER_TYPES.map((t) => Type.Literal(t))),
    group_id: Type.Optional(Type.Integer()),
    project_id: Type.Optional(Type.Integer()),
    description: Type.Optional(Type.String({ maxLength: 1024 })),
    paused: Type.Optional(Type.Boolean()),
    locked: Type.Optional(Type.Boolean()),
    run_untagged: Type.Optional(Type.Boolean()),
    /** A comma-separated string or an array, as GitLab accepts (string first: ajv would coerce it into a one-element array). */
    tag_list: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
    access_level: Type.Optional(Type.Union([Type.Literal('not_protected'), Type.Literal('ref_protected')])),
    maximum_timeout: Type.Optional(Type.Integer({ minimum: 600 })),
    maintenance_note: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
)
export type CreateRunnerRequest = Static<typeof CreateRunnerRequest>

/** Answer to runner creation and verification: the `glrt-` token (creation shows it once). */
export const RegisterRunnerResponse = Type.Object({
  id: Type.Integer(),
  token: Type.String(),
  /** ISO 8601, or null when the token does not expire. */
  token_expires_at: Type.Union([Type.String(), Type.Null()]),
})
export type RegisterRunnerResponse = Static<typeof RegisterRunnerResponse>

export const VerifyRunnerRequest = Type.Object({
  token: Type.String(),
  system_id: Type.Optional(Type.String()),
})
export type VerifyRunnerRequest = Static<typeof VerifyRunnerRequest>

export const VerifyRunnerResponse = RegisterRunnerResponse
export type VerifyRunnerResponse = RegisterRunnerResponse

export const UnregisterRunnerRequest = Type.Object({ token: Type.String() })
export type UnregisterRunnerRequest = Static<typeof UnregisterRunnerRequest>

// ---------------------------------------------------------------------------------------------
// Job request (long poll)

/** Body of `POST /api/v4/jobs/request`. The server holds the request up to ~30 s. */
export const JobRequest = Type.Object({
  token: Type.String(),
  info: Type.Optional(VersionInfo),
  system_id: Type.Optional(Type.String()),
  /** The last `X-GitLab-Last-Update` this runner saw. */
  last_update: Type.Optional(Type.String()),
})
export type JobRequest = Static<typeof JobRequest>

export const JobInfo = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  stage: Type.String(),
  project_id: Type.Integer(),
  project_name: Type.String(),
  time_in_queue_seconds: Type.Number(),
  /** A string in GitLab ("+Inf" style counters); Wharf sends a decimal string. */
  project_jobs_running_on_instance_runners_count: Type.String(),
})
export type JobInfo = Static<typeof JobInfo>

export const GitInfo = Type.Object({
  /** `<scheme>://gitlab-ci-token:<job token>@<host>/<path>.git` */
  repo_url: Type.String(),
  repo_object_format: Type.Optional(Type.String()),
  ref: Type.String(),
  sha: Type.String(),
  before_sha: Type.String(),
  ref_type: Type.Union([Type.Literal('branch'), Type.Literal('tag')]),
  refspecs: Type.Array(Type.String()),
  /** 0 = full clone. */
  depth: Type.Integer(),
})
export type GitInfo = Static<typeof GitInfo>

export const RunnerInfo = Type.Object({
  /** Job timeout in seconds. */
  timeout: Type.Integer(),
  runner_session_url: Type.Optional(Type.Union([Type.String(), Type.Null()])),
})
export type RunnerInfo = Static<typeof RunnerInfo>

export const JobVariable = Type.Object({
  key: Type.String(),
  value: Type.String(),
  public: Type.Boolean(),
  masked: Type.Boolean(),
  /** Written to a temp file whose path becomes the variable's value. */
  file: Type.Boolean(),
  /** Not expanded (`$OTHER` stays literal). */
  raw: Type.Boolean(),
  internal: Type.Optional(Type.Boolean()),
})
export type JobVariable = Static<typeof JobVariable>

export const STEP_NAMES = ['script', 'after_script', 'release', 'run'] as const
export const STEP_WHENS = ['on_success', 'on_failure', 'always'] as const

export const Step = Type.Object({
  name: Type.Union(STEP_NAMES.map((n) => Type.Literal(n))),
  script: Type.Array(Type.String()),
  /** Seconds. */
  timeout: Type.Integer(),
  when: Type.Union(STEP_WHENS.map((w) => Type.Literal(w))),
  allow_failure: Type.Boolean(),
})
export type Step = Static<typeof Step>

export const PULL_POLICIES = ['always', 'if-not-present', 'never'] as const

export const Port = Type.Object({
  number: Type.Integer(),
  protocol: Type.Optional(Type.String()),
  name: Type.Optional(Type.String()),
})

/** The job image, and each service (services carry `alias`). */
export const Image = Type.Object({
  name: Type.String(),
  alias: Type.Optional(Type.String()),
  command: Type.Optional(Type.Array(Type.String())),
  entrypoint: Type.Optional(Type.Array(Type.String())),
  ports: Type.Optional(Type.Array(Port)),
  variables: Type.Optional(Type.Array(JobVariable)),
  pull_policy: Type.Optional(Type.Array(Type.Union(PULL_POLICIES.map((p) => Type.Literal(p))))),
})
export type Image = Static<typeof Image>

export const ARTIFACT_FORMATS = ['zip', 'gzip', 'raw', 'zipzstd', 'tarzstd'] as const

export const Artifact = Type.Object({
  name: Type.String(),
  untracked: Type.Boolean(),
  paths: Type.Array(Type.String()),
  exclude: Type.Array(Type.String()),
  when: Type.Union(STEP_WHENS.map((w) => Type.Literal(w))),
  /** `archive` for the job's main archive; report types otherwise (`junit`, `dotenv`...). */
  artifact_type: Type.String(),
  artifact_format: Type.Union(ARTIFACT_FORMATS.map((f) => Type.Literal(f))),
  expire_in: Type.Union([Type.String(), Type.Null()]),
})
export type Artifact = Static<typeof Artifact>

export const CACHE_POLICIES = ['pull-push', 'pull', 'push'] as const

export const Cache = Type.Object({
  key: Type.String(),
  untracked: Type.Boolean(),
  policy: Type.Union(CACHE_POLICIES.map((p) => Type.Literal(p))),
  paths: Type.Array(Type.String()),
  when: Type.Union(STEP_WHENS.map((w) => Type.Literal(w))),
  fallback_keys: Type.Array(Type.String()),
})
export type Cache = Static<typeof Cache>

/** Registry credentials the runner uses to pull the job/service images (Wharf's own registry). */
export const Credentials = Type.Object({
  type: Type.Literal('registry'),
  /** Registry host[:port], as in image names. */
  url: Type.String(),
  username: Type.String(),
  password: Type.String(),
})
export type Credentials = Static<typeof Credentials>

/** A job whose artifacts this job downloads (`GET /jobs/<id>/artifacts` with `token` as JOB-TOKEN). */
export const Dependency = Type.Object({
  id: Type.Integer(),
  name: Type.String(),
  /** The CURRENT job's token (GitLab sends the requesting job's token here). */
  token: Type.String(),
  artifacts_file: Type.Object({ filename: Type.String(), size: Type.Integer() }),
})
export type Dependency = Static<typeof Dependency>

export const GitlabFeatures = Type.Object({
  trace_sections: Type.Boolean(),
  /** Prefixes of tokens the runner masks wherever they appear (`glcbt-`, `glrt-`, `glpat-`...). */
  token_mask_prefixes: Type.Array(Type.String()),
  /** Failure reasons this server understands in `PUT /jobs/:id`. */
  failure_reasons: Type.Array(Type.String()),
})
export type GitlabFeatures = Static<typeof GitlabFeatures>

/** 201 body of `POST /api/v4/jobs/request` (gitlab-runner's JobResponse). */
export const JobResponse = Type.Object({
  id: Type.Integer(),
  /** The job token (`glcbt-…`); valid while the job runs; also `CI_JOB_TOKEN` in `variables`. */
  token: Type.String(),
  allow_git_fetch: Type.Boolean(),
  job_info: JobInfo,
  git_info: GitInfo,
  runner_info: RunnerInfo,
  variables: Type.Array(JobVariable),
  steps: Type.Array(Step),
  /** `name` is empty when the job names no image (the runner's default applies). */
  image: Image,
  services: Type.Array(Image),
  artifacts: Type.Array(Artifact),
  cache: Type.Array(Cache),
  credentials: Type.Array(Credentials),
  dependencies: Type.Array(Dependency),
  features: GitlabFeatures,
})
export type JobResponse = Static<typeof JobResponse>

// ---------------------------------------------------------------------------------------------
// Job update

export const JOB_STATES = ['pending', 'running', 'success', 'failed'] as const
export type JobState = (typeof JOB_STATES)[number]

/** Failure reasons a runner may report (gitlab-runner's JobFailureReason values Wharf knows). */
export const FAILURE_REASONS = [
  'unknown_failure',
  'script_failure',
  'api_failure',
  'stuck_or_timeout_failure',
  'runner_system_failure',
  'missing_dependency_failure',
  'runner_unsupported',
  'job_execution_timeout',
  'archived_failure',
  'unmet_prerequisites',
  'data_integrity_failure',
  'image_pull_failure',
  'configuration_error',
  'job_canceled',
] as const
export type FailureReason = (typeof FAILURE_REASONS)[number]

export const JobTraceOutput = Type.Object({
  /** `crc32:<hex>` of the whole log as the runner sent it. */
  checksum: Type.Optional(Type.String()),
  bytesize: Type.Optional(Type.Integer()),
})

/**
 * Body of `PUT /api/v4/jobs/:id`. `running` is a keep-alive; `success`/`failed` finish the job
 * and revoke its token. The answer is 200 with `Job-Status: <server status>`; when the job was
 * canceled meanwhile that header says `canceled` and the runner must stop.
 */
export const UpdateJobRequest = Type.Object({
  token: Type.String(),
  state: Type.Optional(Type.Union(JOB_STATES.map((s) => Type.Literal(s)))),
  /** Free string on the wire (newer runners send reasons older servers don't know). */
  failure_reason: Type.Optional(Type.String()),
  exit_code: Type.Optional(Type.Integer()),
  /** Deprecated: use output.checksum. */
  checksum: Type.Optional(Type.String()),
  output: Type.Optional(JobTraceOutput),
  info: Type.Optional(VersionInfo),
})
export type UpdateJobRequest = Static<typeof UpdateJobRequest>

// ---------------------------------------------------------------------------------------------
// Trace append

/**
 * `PATCH /api/v4/jobs/:id/trace`: the body is the raw bytes of the log from offset `start`;
 * `Content-Range: <start>-<end>` with `end` = start + body length - 1 (inclusive). The server
 * accepts the chunk only when `start` equals the size it stored (a chunk that re-sends bytes it
 * already has is accepted and only its new tail appended, so retries are idempotent):
 *   202 + `Range: 0-<stored size>` + `Job-Status: <status>`;
 *   416 + `Range: 0-<stored size>` when `start` is past the stored size: resend from that offset.
 * `Job-Status: canceled` (or `failed`) or a 403 tells the runner to abort the job.
 */
export function formatContentRange(start: number, byteLength: number): string {
  return `${start}-${start + Math.max(byteLength, 1) - 1}`
}

/** The stored size from a `Range: 0-<n>` answer header, or undefined if absent/malformed. */
export function parseRangeHeader(value: string | null | undefined): number | undefined {
  if (!value) return undefined
  const m = /^\s*(?:bytes[= ])?0-(\d+)\s*$/.exec(value)
  return m ? Number(m[1]) : undefined
}

/** `Content-Range: <start>-<end>`; undefined if malformed. */
export function parseContentRange(value: string | null | undefined): { start: number; end: number } | undefined {
  if (!value) return undefined
  const m = /^\s*(?:bytes[= ])?(\d+)-(\d+)(?:\/(?:\d+|\*))?\s*$/.exec(value)
  if (!m) return undefined
  const start = Number(m[1])
  const end = Number(m[2])
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || end < start - 1) return undefined
  return { start, end }
}

/** Job statuses that mean "stop running": the runner aborts when it sees one in `Job-Status`. */
export const ABORT_STATUSES = ['canceled', 'canceling', 'failed'] as const

export function isAbortStatus(status: string | null | undefined): boolean {
  return status !== undefined && status !== null && (ABORT_STATUSES as readonly string[]).includes(status)
}

// ---------------------------------------------------------------------------------------------
// Artifacts

/** 200 body of `POST /jobs/:id/artifacts/authorize` (GitLab Workhorse's pre-check). */
export const ArtifactsAuthorizeResponse = Type.Object({
  /** Largest accepted upload in bytes. */
  MaximumSize: Type.Integer(),
  TempPath: Type.Optional(Type.String()),
})
export type ArtifactsAuthorizeResponse = Static<typeof ArtifactsAuthorizeResponse>

/** Query/fields of `POST /jobs/:id/artifacts` (multipart field `file` carries the bytes). */
export const ArtifactsUploadParams = Type.Object({
  artifact_format: Type.Optional(Type.Union(ARTIFACT_FORMATS.map((f) => Type.Literal(f)))),
  artifact_type: Type.Optional(Type.String()),
  /** `1 week`, `30 days`, `never`... */
  expire_in: Type.Optional(Type.String()),
})
export type ArtifactsUploadParams = Static<typeof ArtifactsUploadParams>

/** Long-poll bound on `/jobs/request`; runners should use a client timeout above it. */
export const JOB_REQUEST_LONG_POLL_SECONDS = 30
