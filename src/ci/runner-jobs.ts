// The job side of the runner API: matching pending jobs to runners (long poll), claiming them
// atomically, building GitLab's job payload, state updates from the runner, trace appends, and
// the sweep that fails jobs whose runner went silent or that ran past their timeout.
import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Credentials } from '../auth/credentials.ts'
import { secretDigest } from '../auth/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { GitRepos } from '../git/repos.ts'
import { nowIso } from '../metadata/db.ts'
import type { CiJob, Database, Pipeline, Project, Runner } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import {
  FAILURE_REASONS,
  JOB_TOKEN_USERNAME,
  TOKEN_PREFIXES,
  type Artifact,
  type Cache,
  type Dependency,
  type Image,
  type JobResponse,
  type JobVariable as WireVariable,
  type Step,
  type UpdateJobRequest,
} from '../runner/protocol.ts'
import type { Artifacts } from './artifacts.ts'
import type { CiCache, CiImage, CiService } from './config/types.ts'
import { mintJobToken } from './job-tokens.ts'
import type { JobDefinition, Pipelines } from './pipelines.ts'
import { dependencyProxyServer, jobTokenVariables, registryHost, type JobVariable } from './predefined.ts'
import * as q from './queries.ts'
import * as rq from './runner-queries.ts'
import { runnerTags, type Runners } from './runners.ts'
import { TraceMasker, type AppendResult, type TraceStore } from './traces.ts'

/** Job timeout when the job sets none (GitLab's project default, 60 minutes). */
export const DEFAULT_JOB_TIMEOUT_SECONDS = 3600
/** A running job is failed this long after its timeout if its runner never reported (it enforces the timeout itself, then uploads). */
export const TIMEOUT_GRACE_SECONDS = 300
/** How long `POST /jobs/request` is held when there is no job (GitLab Workhorse's long poll is about as long). */
export const LONG_POLL_MS = 30_000
/** Pending jobs read per query while looking for one this runner may take. */
const MATCH_BATCH = 200
/** Heartbeats from trace appends are written at most this often per job. */
const HEARTBEAT_WRITE_MS = 5_000

export interface RunnerJobsDeps {
  db: Kysely<Database>
  pipelines: Pipelines
  runners: Runners
  traces: TraceStore
  artifacts: Artifacts
  repos: GitRepos
  credentials: Credentials
  publicUrl: string
  /** A running job whose runner sent nothing (state update or trace) this long is failed. */
  heartbeatTimeoutSeconds: number
  /** The clock (tests move it). */
  now?: () => number
}

export type UpdateOutcome = { code: 200 | 403; jobStatus: string }

export class RunnerJobs {
  private readonly d: RunnerJobsDeps
  private readonly now: () => number
  private readonly waiters = new Set<() => void>()
  private readonly maskers = new Map<number, TraceMasker>()
  private readonly heartbeats = new Map<number, number>()
  private readonly lastHeartbeatWrite = new Map<number, number>()
  private version = 0
  private closing = false

  constructor(deps: RunnerJobsDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
    this.version = this.now()
    deps.pipelines.onChange(() => this.wake())
  }

  /** The queue's version for `X-GitLab-Last-Update`: it changes whenever jobs may have become pending. */
  lastUpdate(): string {
    return String(this.version)
  }

  /** Ends every waiting long poll now (204) and lets no new one wait: the server is shutting down. */
  close(): void {
    this.closing = true
    this.wake()
  }

  /** Wakes every waiting long poll (jobs changed). */
  wake(): void {
    this.version++
    const ws = [...this.waiters]
    this.waiters.clear()
    for (const w of ws) w()
  }

  /**
   * Long poll: claims the first pending job this runner may take, waiting up to `waitMs` for one
   * to become pending. Undefined when none came (the route answers 204).
   */
  async request(runner: Runner, opts: { waitMs?: number; signal?: AbortSignal } = {}): Promise<JobResponse | undefined> {
    const deadline = Date.now() + (opts.waitMs ?? LONG_POLL_MS)
    for (;;) {
      let wake!: () => void
      const changed = new Promise<void>((r) => (wake = r))
      this.waiters.add(wake)
      try {
        const claimed = await this.claim(runner)
        if (claimed) return await this.start(claimed.job, claimed.token, runner)
        const remaining = deadline - Date.now()
        if (remaining <= 0 || opts.signal?.aborted || this.closing) return undefined
        let timer: NodeJS.Timeout | undefined
        const onAbort = () => wake()
        opts.signal?.addEventListener('abort', onAbort, { once: true })
        await Promise.race([changed, new Promise<void>((r) => (timer = setTimeout(r, remaining)))])
        clearTimeout(timer)
        opts.signal?.removeEventListener('abort', onAbort)
        if (opts.signal?.aborted || this.closing) return undefined
      } finally {
        this.waiters.delete(wake)
      }
    }
  }

  /** Takes the first matching pending job: the update only succeeds while it is still pending, so no job goes to two runners. */
  private async claim(runner: Runner): Promise<{ job: CiJob; token: string } | undefined> {
    if (runner.paused === 1) return undefined
    const scope = await this.d.runners.scopeProjectIds(runner)
    for (let after = 0; ; ) {
      const candidates = await rq.pendingJobs(this.d.db, scope, MATCH_BATCH, after)
      for (const job of candidates) {
        if (!(await this.matches(runner, job))) continue
        const token = mintJobToken()
        const now = new Date(this.now()).toISOString()
        const set = { status: 'running', runner_id: runner.id, started_at: now, heartbeat_at: now, token_digest: secretDigest(token) }
        if (await q.transitionJob(this.d.db, job.id, ['pending'], set)) return { job: { ...job, ...set }, token }
      }
      if (candidates.length < MATCH_BATCH) return undefined
      after = candidates.at(-1)!.id
    }
  }

  /** Tags: a tagged job needs a runner with every one of its tags; an untagged job needs run_untagged. */
  private async matches(runner: Runner, job: CiJob): Promise<boolean> {
    const def = JSON.parse(job.definition) as Partial<JobDefinition>
    const jobTags = def.tags ?? []
    const tags = runnerTags(runner)
    if (jobTags.length === 0 ? runner.run_untagged !== 1 : !jobTags.every((t) => tags.includes(t))) return false
    if (runner.access_level === 'ref_protected') {
      const pipeline = await q.findPipeline(this.d.db, job.pipeline_id)
      if (!pipeline || !(await this.protectedRef(pipeline))) return false
    }
    return true
  }

  private async protectedRef(p: Pipeline): Promise<boolean> {
    return this.d.pipelines.isProtectedRef(p.project_id, p.ref, p.tag === 1)
  }

  private async start(job: CiJob, token: string, runner: Runner): Promise<JobResponse> {
    try {
      const payload = await this.payload(job, token, runner)
      await this.d.pipelines.advance(job.pipeline_id)
      return payload
    } catch (err) {
      // The job was claimed but cannot be described: fail it rather than leave it running.
      await this.finish(job, 'failed', 'unknown_failure', null, `ERROR: Job failed: the server could not prepare the job (${(err as Error).message})`)
      throw err
    }
  }

  /** GitLab's job payload (gitlab-runner's JobResponse). */
  async payload(job: CiJob, token: string, runner: Runner): Promise<JobResponse> {
    const d = this.d
    const def = JSON.parse(job.definition) as JobDefinition
    const pipeline = (await q.findPipeline(d.db, job.pipeline_id))!
    const project = (await projectQueries.findProject(d.db, job.project_id))!
    const timeout = jobTimeout(def, runner)
    const variables = await this.variables(job, def, pipeline, project, token, runner, timeout)
    this.maskers.set(job.id, new TraceMasker([token, ...variables.filter((v) => v.masked).map((v) => v.value)]))
    const url = new URL(d.publicUrl)
    const registry = registryHost(d.publicUrl)
    const queued = job.queued_at ? (this.now() - new Date(job.queued_at).getTime()) / 1000 : 0
    const steps: Step[] = [{ name: 'script', script: [...def.beforeScript, ...def.script], timeout, when: 'on_success', allow_failure: false }]
    if (def.afterScript.length) steps.push({ name: 'after_script', script: def.afterScript, timeout, when: 'always', allow_failure: true })
    const ref = pipeline.tag === 1 ? `refs/tags/${pipeline.ref}` : `refs/heads/${pipeline.ref}`
    return {
      id: job.id,
      token,
      allow_git_fetch: true,
      job_info: {
        id: job.id,
        name: job.name,
        stage: job.stage,
        project_id: project.id,
        project_name: project.name,
        time_in_queue_seconds: Math.max(0, queued),
        project_jobs_running_on_instance_runners_count: '0',
      },
      git_info: {
        repo_url: `${url.protocol}//${JOB_TOKEN_USERNAME}:${token}@${url.host}/${project.full_path}.git`,
        repo_object_format: 'sha1',
        ref: pipeline.ref,
        sha: pipeline.sha,
        before_sha: pipeline.before_sha,
        ref_type: pipeline.tag === 1 ? 'tag' : 'branch',
        refspecs: [pipeline.tag === 1 ? `+${ref}:${ref}` : `+${ref}:refs/remotes/origin/${pipeline.ref}`],
        // GitLab's default shallow clone depth for new projects.
        depth: 20,
      },
      runner_info: { timeout, runner_session_url: null },
      variables,
      steps,
      image: def.image ? imageOf(def.image) : { name: '' },
      services: def.services.map(serviceOf),
      artifacts: artifactsOf(def),
      cache: await this.caches(def, project, pipeline, variables),
      // As GitLab: the registry's and, under its own name when that differs (the port written
      // out), the dependency proxy's, so job and service images on the group path pull with the job token.
      credentials: [...new Set([registry, dependencyProxyServer(d.publicUrl)])].map((url) => ({ type: 'registry', url, username: JOB_TOKEN_USERNAME, password: token })),
      dependencies: await this.dependencies(job, def, token),
      features: {
        trace_sections: true,
        token_mask_prefixes: [TOKEN_PREFIXES.job, TOKEN_PREFIXES.runner, 'glpat-', 'gldt-'],
        failure_reasons: [...FAILURE_REASONS],
      },
    }
  }

  /**
   * Predefined (stored with the job) < job token variables < YAML < group and project CI/CD
   * variables (protected ones only on protected refs) < pipeline variables (API, trigger):
   * later entries win in the runner, as in GitLab.
   */
  private async variables(job: CiJob, def: JobDefinition, pipeline: Pipeline, project: Project, token: string, runner: Runner, timeout: number): Promise<WireVariable[]> {
    const wire = (v: JobVariable, raw = false): WireVariable => ({ key: v.key, value: v.value, public: v.public, masked: v.masked ?? false, file: v.file ?? false, raw })
    const stored = (JSON.parse(job.variables) as JobVariable[]).map((v) => wire(v))
    const runnerVars: WireVariable[] = [
      { key: 'CI_RUNNER_ID', value: String(runner.id), public: true, masked: false, file: false, raw: false },
      { key: 'CI_RUNNER_DESCRIPTION', value: runner.description, public: true, masked: false, file: false, raw: true },
      { key: 'CI_RUNNER_TAGS', value: JSON.stringify(runnerTags(runner)), public: true, masked: false, file: false, raw: true },
      { key: 'CI_JOB_TIMEOUT', value: String(timeout), public: true, masked: false, file: false, raw: false },
      { key: 'CI_JOB_STARTED_AT', value: (job.started_at ?? nowIso()).replace(/\.\d{3}Z$/, 'Z'), public: true, masked: false, file: false, raw: false },
    ]
    const tokenVars = jobTokenVariables(token, this.d.publicUrl, project.full_path).map((v) => wire(v))
    const raw = new Set(def.rawVariables ?? [])
    const yaml = Object.entries(def.variables ?? {}).map(([key, value]) => ({ key, value, public: true, masked: false, file: false, raw: raw.has(key) }))
    const secrets = (await this.d.pipelines.projectVariables(project, await this.protectedRef(pipeline))).map((v) => wire(v))
    const given = (JSON.parse(pipeline.variables) as Array<{ key: string; value: string; variable_type?: string }>).map((v) => ({ key: v.key, value: v.value, public: false, masked: false, file: v.variable_type === 'file', raw: false }))
    return [...stored, ...runnerVars, ...tokenVars, ...yaml, ...secrets, ...given]
  }

  private async caches(def: JobDefinition, project: Project, pipeline: Pipeline, variables: WireVariable[]): Promise<Cache[]> {
    const protectedRef = await this.protectedRef(pipeline)
    const out: Cache[] = []
    for (const c of def.cache ?? []) out.push(await this.cacheOf(c, project, pipeline, protectedRef, variables))
    return out
  }

  private async cacheOf(c: CiCache, project: Project, pipeline: Pipeline, protectedRef: boolean, variables: WireVariable[]): Promise<Cache> {
    let key: string
    if (typeof c.key === 'string') key = c.key || 'default'
    else {
      // `key: files:`: a digest of those files at the commit (GitLab uses their last commit), after the prefix.
      const h = createHash('sha256')
      for (const f of c.key.files) h.update(f).update('\0').update((await this.d.repos.readFile(project.id, pipeline.sha, f)) ?? Buffer.alloc(0)).update('\0')
      key = `${c.key.prefix ? `${c.key.prefix}-` : ''}${h.digest('hex').slice(0, 40)}`
    }
    // Caches of protected refs stay apart from the rest unless `unprotect: true` (GitLab 15.0+).
    if (!c.unprotect) key += protectedRef ? '-protected' : '-non_protected'
    let policy = c.policy
    if (policy.startsWith('$')) policy = variables.findLast((v) => v.key === policy.replace(/^\$\{?|\}$/g, ''))?.value ?? 'pull-push'
    const policies = ['pull-push', 'pull', 'push'] as const
    return {
      key,
      untracked: c.untracked,
      policy: (policies as readonly string[]).includes(policy) ? (policy as Cache['policy']) : 'pull-push',
      paths: c.paths,
      when: c.when,
      fallback_keys: c.fallbackKeys,
    }
  }

  /** Jobs whose artifacts this job downloads, each with the current job's token (as GitLab sends it). */
  private async dependencies(job: CiJob, def: JobDefinition, token: string): Promise<Dependency[]> {
    const names = new Set(def.artifactsFrom ?? [])
    if (names.size === 0) return []
    const jobs = (await q.pipelineJobs(this.d.db, job.pipeline_id)).filter((j) => names.has(j.name) && j.id !== job.id)
    const archives = new Map((await this.d.artifacts.forJobs(jobs.map((j) => j.id))).filter((a) => a.file_type === 'archive').map((a) => [a.job_id, a]))
    return jobs.flatMap((j) => {
      const a = archives.get(j.id)
      return a ? [{ id: j.id, name: j.name, token, artifacts_file: { filename: a.filename, size: a.size } }] : []
    })
  }

  /** The job a job token speaks for: NOT_FOUND for no such job, FORBIDDEN for a wrong or revoked token. */
  async jobForToken(jobId: number, token: string | undefined): Promise<CiJob> {
    const job = await q.findJob(this.d.db, jobId)
    if (!job) throw new WharfError('NOT_FOUND', 'Job Not Found', {})
    if (!token || job.token_digest === null || secretDigest(token) !== job.token_digest) {
      throw new WharfError('FORBIDDEN', job.status === 'running' ? 'invalid job token' : `Job is not running (${job.status})`, { jobStatus: job.status })
    }
    return job
  }

  /**
   * `PUT /jobs/:id`: `running` is a keep-alive; `success`/`failed` finish the job (its token is
   * revoked). A job canceled meanwhile answers 200 with `Job-Status: canceled` so the runner stops.
   */
  async update(job: CiJob, body: UpdateJobRequest): Promise<UpdateOutcome> {
    if (job.status === 'canceled' || job.status === 'canceling') {
      // The runner's final word on a canceled job: keep its exit code, revoke the token.
      if (body.state === 'success' || body.state === 'failed') {
        await q.updateJob(this.d.db, job.id, { token_digest: null, exit_code: body.exit_code ?? null })
        this.d.credentials.forget({ kind: 'job', id: job.id })
        await this.d.traces.finish(job.id, await this.masker(job))
        this.maskers.delete(job.id)
      }
      return { code: 200, jobStatus: 'canceled' }
    }
    if (job.status !== 'running') return { code: 403, jobStatus: job.status }
    switch (body.state) {
      case 'success':
      case 'failed': {
        const reason = body.state === 'failed' ? failureReason(body.failure_reason) : null
        const done = await this.finish(job, body.state, reason, body.exit_code ?? null)
        const after = (await q.findJob(this.d.db, job.id))!
        return { code: done || after.status === body.state ? 200 : 403, jobStatus: after.status }
      }
      default:
        await this.heartbeat(job.id, true)
        return { code: 200, jobStatus: 'running' }
    }
  }

  /** Appends to a job's log (see TraceStore.append); counts as a heartbeat. */
  async appendTrace(job: CiJob, start: number, body: AsyncIterable<Buffer | string>): Promise<AppendResult> {
    const r = await this.d.traces.append(job.id, start, body, await this.masker(job))
    if (job.status === 'running') await this.heartbeat(job.id, false)
    return r
  }

  /**
   * Ends a running job: status, reason, exit code, token revoked, log tail flushed (and `line`
   * added), then a retry (`retry:`) or the pipeline moves on. False when it was no longer running.
   */
  async finish(job: CiJob, state: 'success' | 'failed', reason: string | null, exitCode: number | null, line?: string): Promise<boolean> {
    const def = JSON.parse(job.definition) as Partial<JobDefinition>
    const set: Partial<CiJob> = { status: state, finished_at: new Date(this.now()).toISOString(), failure_reason: state === 'failed' ? (reason ?? 'unknown_failure') : null, exit_code: exitCode, token_digest: null }
    // `allow_failure: exit_codes:` makes this failure an allowed one.
    if (state === 'failed' && exitCode !== null && def.allowFailureExitCodes?.includes(exitCode)) set.allow_failure = 1
    if (!(await q.transitionJob(this.d.db, job.id, ['running'], set))) return false
    this.d.credentials.forget({ kind: 'job', id: job.id })
    this.heartbeats.delete(job.id)
    await this.d.traces.finish(job.id, await this.masker(job), line)
    this.maskers.delete(job.id)
    const finished = (await q.findJob(this.d.db, job.id))!
    if (state === 'failed' && (await this.shouldRetry(finished, def))) await this.d.pipelines.retryJob(finished)
    else await this.d.pipelines.advance(job.pipeline_id)
    return true
  }

  /** `retry:` allows another attempt for this failure (reason and exit code both match, attempts left). */
  private async shouldRetry(job: CiJob, def: Partial<JobDefinition>): Promise<boolean> {
    const r = def.retry
    if (!r || r.max <= 0) return false
    if ((await rq.retriedAttempts(this.d.db, job.pipeline_id, job.name)) >= r.max) return false
    const reason = job.failure_reason ?? 'unknown_failure'
    const whenOk = r.when.includes('always') || r.when.includes(reason)
    const codeOk = r.exitCodes.length === 0 || (job.exit_code !== null && r.exitCodes.includes(job.exit_code))
    return whenOk && codeOk
  }

  /**
   * Fails running jobs whose runner has been silent longer than the heartbeat timeout
   * (`runner_system_failure`) or that ran past their timeout plus a grace (`job_execution_timeout`),
   * each with a line in the log saying why; then expires old artifacts.
   */
  async sweep(): Promise<{ stale: number[]; timedOut: number[]; expiredArtifacts: number }> {
    const now = this.now()
    const stale: number[] = []
    const timedOut: number[] = []
    const limit = this.d.heartbeatTimeoutSeconds
    for (const job of await rq.runningJobs(this.d.db)) {
      const started = job.started_at ? new Date(job.started_at).getTime() : now
      const lastSign = Math.max(started, job.heartbeat_at ? new Date(job.heartbeat_at).getTime() : 0, this.heartbeats.get(job.id) ?? 0)
      if (now - lastSign > limit * 1000) {
        const line = `ERROR: Job failed (system failure): the runner sent no update for ${limit} seconds (ci.jobHeartbeatTimeoutSeconds) and is presumed gone.`
        if (await this.finish(job, 'failed', 'runner_system_failure', null, line)) stale.push(job.id)
        continue
      }
      const runner = job.runner_id === null ? undefined : await rq.findRunner(this.d.db, job.runner_id)
      const timeout = jobTimeout(JSON.parse(job.definition) as Partial<JobDefinition>, runner)
      if (now - started > (timeout + TIMEOUT_GRACE_SECONDS) * 1000) {
        const line = `ERROR: Job failed: execution took longer than ${timeout} seconds (the job's timeout) and the runner did not stop it.`
        if (await this.finish(job, 'failed', 'job_execution_timeout', null, line)) timedOut.push(job.id)
      }
    }
    const expiredArtifacts = await this.d.artifacts.sweepExpired(new Date(now).toISOString())
    return { stale, timedOut, expiredArtifacts }
  }

  /** The masker of a job's log: its token and masked variables (rebuilt after a restart, token by pattern). */
  async masker(job: CiJob): Promise<TraceMasker> {
    const known = this.maskers.get(job.id)
    if (known) return known
    const project = await projectQueries.findProject(this.d.db, job.project_id)
    const pipeline = await q.findPipeline(this.d.db, job.pipeline_id)
    const values = project && pipeline ? (await this.d.pipelines.projectVariables(project, await this.protectedRef(pipeline))).filter((v) => v.masked).map((v) => v.value) : []
    const m = new TraceMasker(values)
    if (job.status === 'running') this.maskers.set(job.id, m)
    return m
  }

  private async heartbeat(jobId: number, force: boolean): Promise<void> {
    const now = this.now()
    this.heartbeats.set(jobId, now)
    const last = this.lastHeartbeatWrite.get(jobId) ?? 0
    if (!force && now - last < HEARTBEAT_WRITE_MS) return
    this.lastHeartbeatWrite.set(jobId, now)
    await q.updateJob(this.d.db, jobId, { heartbeat_at: new Date(now).toISOString() })
  }

}

export function jobTimeout(def: Partial<JobDefinition>, runner: Pick<Runner, 'maximum_timeout'> | undefined): number {
  const t = def.timeout ?? DEFAULT_JOB_TIMEOUT_SECONDS
  return runner?.maximum_timeout ? Math.min(t, runner.maximum_timeout) : t
}

function failureReason(r: string | undefined): string {
  return r && (FAILURE_REASONS as readonly string[]).includes(r) ? r : 'unknown_failure'
}

function imageOf(i: CiImage): Image {
  const out: Image = { name: i.name }
  if (i.entrypoint) out.entrypoint = i.entrypoint
  if (i.pullPolicy) out.pull_policy = i.pullPolicy as NonNullable<Image['pull_policy']>
  return out
}

function serviceOf(s: CiService): Image {
  const out = imageOf(s)
  if (s.alias) out.alias = s.alias
  if (s.command) out.command = s.command
  const vars = Object.entries(s.variables ?? {})
  if (vars.length) out.variables = vars.map(([key, value]) => ({ key, value, public: true, masked: false, file: false, raw: false }))
  return out
}

/** Report types GitLab uploads gzipped; other reports go as they are. */
const GZIP_REPORTS = new Set(['junit', 'dotenv', 'cobertura', 'coverage_report', 'metrics', 'lsif', 'cyclonedx', 'annotations'])

function artifactsOf(def: JobDefinition): Artifact[] {
  const a = def.artifacts
  if (!a) return []
  const expire = a.expireIn === null ? null : a.expireIn === 'never' ? 'never' : `${a.expireIn} seconds`
  const out: Artifact[] = []
  if (a.paths.length || a.untracked) {
    out.push({ name: a.name ?? 'artifacts', untracked: a.untracked, paths: a.paths, exclude: a.exclude, when: a.when, artifact_type: 'archive', artifact_format: 'zip', expire_in: expire })
  }
  for (const [type, spec] of Object.entries(a.reports ?? {})) {
    const paths = typeof spec === 'string' ? [spec] : Array.isArray(spec) ? spec.filter((p): p is string => typeof p === 'string') : []
    if (!paths.length) continue
    out.push({ name: type, untracked: false, paths, exclude: [], when: 'always', artifact_type: type, artifact_format: GZIP_REPORTS.has(type) ? 'gzip' : 'raw', expire_in: expire })
  }
  return out
}
