// The running job's side of the runner API: the job token, state updates from the runner
// (`PUT /jobs/:id`), trace appends with their masking, heartbeats, and finishing a job (token
// revoked, log flushed, then a retry or the pipeline moves on).
import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import { LRUCache } from 'lru-cache'
import type { Credentials } from '../auth/credentials.ts'
import { secretDigest } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { GitRepos } from '../git/repos.ts'
import type { CiJob, Database } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import { FAILURE_REASONS, type UpdateJobRequest } from '../runner/protocol.ts'
import { isProtectedRef } from './job-payload.ts'
import type { JobDefinition, Pipelines } from './pipelines.ts'
import { COVERAGE_LIMITS, extractCoverage } from './coverage.ts'
import * as q from './queries.ts'
import type { Releases } from './releases.ts'
import * as rq from './runner-queries.ts'
import { TraceMasker, type AppendResult, type TraceStore } from './traces.ts'

/** Heartbeats from trace appends are written at most this often per job. */
const HEARTBEAT_WRITE_MS = 5_000
/**
 * Running jobs this process keeps a masker and heartbeat times for. Bounded: with several nodes a
 * job may finish on another node, which cannot tell this one to forget it; a miss only costs a read.
 */
const CACHED_JOBS = 10_000

export interface JobUpdatesDeps {
  db: Kysely<Database>
  pipelines: Pipelines
  traces: TraceStore
  repos: GitRepos
  credentials: Credentials
  /** Creates the release of a succeeding job's `release:`. */
  releases?: Releases
  /** The clock (tests move it). */
  now?: () => number
}

export class JobUpdates {
  private readonly d: JobUpdatesDeps
  private readonly now: () => number
  private readonly maskers = new LRUCache<number, TraceMasker>({ max: CACHED_JOBS })
  private readonly heartbeats = new LRUCache<number, number>({ max: CACHED_JOBS })
  private readonly lastHeartbeatWrite = new LRUCache<number, number>({ max: CACHED_JOBS })

  constructor(deps: JobUpdatesDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
  }

  /**
   * Masks these values (its masked variables and ID tokens) in the log of a job that just started.
   * They are stored with the log while the job runs, so that whichever node takes an append masks
   * the same (ID tokens cannot be made again elsewhere); the job token needs no entry: its pattern is masked in every log.
   */
  async maskLog(jobId: number, secrets: readonly string[]): Promise<void> {
    const values = [...new Set(secrets.filter((s) => s.length > 0))]
    await this.d.traces.saveMasks(jobId, values)
    this.maskers.set(jobId, new TraceMasker(values))
  }

  /** When this process last heard from the job's runner (its heartbeats are written to the database less often). */
  lastHeartbeat(jobId: number): number | undefined {
    return this.heartbeats.get(jobId)
  }

  /** The job a job token speaks for: NOT_FOUND for no such job, FORBIDDEN for a wrong or revoked token. */
  async jobForToken(jobId: number, token: string | undefined): Promise<CiJob> {
    const job = await q.findJob(this.d.db, jobId)
    if (!job) throw new WharfError('NOT_FOUND', 'Job Not Found', {})
    if (!token || job.token_digest === null || secretDigest(token) !== job.token_digest) {
      throw new WharfError('FORBIDDEN', job.status === 'running' ? 'invalid job token' : `Job is not running (${job.status})`, {
        jobStatus: job.status,
      })
    }
    return job
  }

  /**
   * `PUT /jobs/:id`: `running` is a keep-alive; `success`/`failed` finish the job (its token is
   * revoked). Returns the job's status after it, for `Job-Status`: a job canceled meanwhile answers
   * `canceled` so the runner stops. FORBIDDEN (with `jobStatus`) when the job is over.
   */
  async update(job: CiJob, body: UpdateJobRequest, log: FastifyBaseLogger): Promise<string> {
    if (job.status === 'canceled' || job.status === 'canceling') {
      // The runner's final word on a canceled job: keep its exit code, revoke the token.
      if (body.state === 'success' || body.state === 'failed') {
        await q.updateJob(this.d.db, job.id, { token_digest: null, exit_code: body.exit_code ?? null })
        this.d.credentials.forget({ kind: 'job', id: job.id })
        await this.endLog(job)
      }
      return 'canceled'
    }
    if (job.status !== 'running') throw notRunning(job.status)
    switch (body.state) {
      case 'success':
      case 'failed': {
        const reason = body.state === 'failed' ? failureReason(body.failure_reason) : null
        const done = await this.finish(job, body.state, reason, body.exit_code ?? null, undefined, log)
        const after = (await q.findJob(this.d.db, job.id))!
        if (!done && after.status !== body.state) throw notRunning(after.status)
        return after.status
      }
      default:
        await this.heartbeat(job.id, true)
        return 'running'
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
   * A succeeding job's `release:` is created first (`log` hears the tag push it may make); if it
   * cannot be, the job fails with the reason in its log, as release-cli would fail it.
   */
  async finish(
    job: CiJob,
    state: 'success' | 'failed',
    reason: string | null,
    exitCode: number | null,
    line?: string,
    log?: FastifyBaseLogger,
  ): Promise<boolean> {
    const def = JSON.parse(job.definition) as Partial<JobDefinition>
    if (state === 'success' && def.release && this.d.releases && log) {
      const user = job.user_id === null ? undefined : await this.d.credentials.principalFor({ kind: 'password', userId: job.user_id })
      const outcome = await this.d.releases.fromJob(job, user, log)
      if (outcome) {
        line = line ? `${line}\n${outcome.line}` : outcome.line
        if (!outcome.ok) {
          state = 'failed'
          reason = 'script_failure'
        }
      }
    }
    const set: Partial<CiJob> = {
      status: state,
      finished_at: new Date(this.now()).toISOString(),
      failure_reason: state === 'failed' ? (reason ?? 'unknown_failure') : null,
      exit_code: exitCode,
      token_digest: null,
    }
    // `allow_failure: exit_codes:` makes this failure an allowed one.
    if (state === 'failed' && exitCode !== null && def.allowFailureExitCodes?.includes(exitCode)) set.allow_failure = 1
    if (!(await q.transitionJob(this.d.db, job.id, ['running'], set))) return false
    this.d.credentials.forget({ kind: 'job', id: job.id })
    this.heartbeats.delete(job.id)
    this.lastHeartbeatWrite.delete(job.id)
    await this.endLog(job, line)
    if (def.coverage) await this.recordCoverage(job.id, def.coverage)
    const finished = (await q.findJob(this.d.db, job.id))!
    if (state === 'failed' && (await this.shouldRetry(finished, def))) await this.d.pipelines.retryJob(finished)
    else {
      await this.d.pipelines.advance(job.pipeline_id)
      // `workflow:auto_cancel:on_job_failure: all`: a failure that is not allowed cancels the rest of the pipeline.
      if (state === 'failed' && finished.allow_failure === 0) {
        const pipeline = await this.d.pipelines.findPipeline(job.pipeline_id)
        if (pipeline?.auto_cancel_on_job_failure === 'all') await this.d.pipelines.cancel(job.pipeline_id)
      }
    }
    return true
  }

  /** `retry:` allows another attempt for this failure (reason and exit code both match, attempts left). */
  /** `coverage:`: the percentage its regular expression finds in the tail of the finished job's log. */
  private async recordCoverage(jobId: number, pattern: string): Promise<void> {
    const size = await this.d.traces.size(jobId)
    const { stream } = await this.d.traces.read(jobId, Math.max(0, size - COVERAGE_LIMITS.tailBytes))
    if (!stream) return
    const chunks: Buffer[] = []
    for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk)
    const coverage = extractCoverage(Buffer.concat(chunks).toString('utf8'), pattern)
    if (coverage !== null) await q.updateJob(this.d.db, jobId, { coverage })
  }

  private async shouldRetry(job: CiJob, def: Partial<JobDefinition>): Promise<boolean> {
    const r = def.retry
    if (!r || r.max <= 0) return false
    if ((await rq.retriedAttempts(this.d.db, job.pipeline_id, job.name)) >= r.max) return false
    const reason = job.failure_reason ?? 'unknown_failure'
    const whenOk = r.when.includes('always') || r.when.includes(reason)
    const codeOk = r.exitCodes.length === 0 || (job.exit_code !== null && r.exitCodes.includes(job.exit_code))
    return whenOk && codeOk
  }

  /** Flushes the log's held-back tail (and adds `line`); the job's masked values are no longer kept. */
  private async endLog(job: CiJob, line?: string): Promise<void> {
    await this.d.traces.finish(job.id, await this.masker(job), line)
    await this.d.traces.saveMasks(job.id, null)
    this.maskers.delete(job.id)
  }

  /**
   * The masker of a job's log: the masked values stored when it started (the same on every node),
   * else (a job started before they were stored, or over) its project's masked variables now.
   */
  async masker(job: CiJob): Promise<TraceMasker> {
    const known = this.maskers.get(job.id)
    if (known) return known
    const values = (await this.d.traces.masks(job.id)) ?? (await this.currentMasks(job))
    const m = new TraceMasker(values)
    if (job.status === 'running') this.maskers.set(job.id, m)
    return m
  }

  private async currentMasks(job: CiJob): Promise<string[]> {
    const project = await projectQueries.findProject(this.d.db, job.project_id)
    const pipeline = await q.findPipeline(this.d.db, job.pipeline_id)
    if (!project || !pipeline) return []
    return (await this.d.pipelines.projectVariables(project, await isProtectedRef(this.d.repos, this.d.pipelines, pipeline)))
      .filter((v) => v.masked)
      .map((v) => v.value)
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

/** A job update or trace append for a job that is over: the runner stops it on the 403 and its `Job-Status`. */
export function notRunning(status: string): WharfError {
  return new WharfError('FORBIDDEN', `Job is not running (${status})`, { jobStatus: status })
}

function failureReason(r: string | undefined): string {
  return r && (FAILURE_REASONS as readonly string[]).includes(r) ? r : 'unknown_failure'
}
