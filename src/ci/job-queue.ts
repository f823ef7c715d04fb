// The runner API's job queue: matching pending jobs to a runner (tags, protected refs, paused),
// claiming one atomically, and the `POST /jobs/request` long poll that waits for one.
import type { Kysely } from 'kysely'
import { secretDigest } from '../core/secrets.ts'
import type { GitRepos } from '../git/repos.ts'
import type { CiJob, Database, Runner } from '../metadata/schema.ts'
import { signalsFor, type Signals } from '../metadata/signals.ts'
import type { JobResponse } from '../runner/protocol.ts'
import { isProtectedRef, type JobPayloads } from './job-payload.ts'
import { mintJobToken } from './job-tokens.ts'
import type { JobUpdates } from './job-updates.ts'
import type { JobDefinition, Pipelines } from './pipelines.ts'
import * as q from './queries.ts'
import * as rq from './runner-queries.ts'
import { runnerTags, type Runners } from './runners.ts'

/** How long `POST /jobs/request` is held when there is no job (GitLab Workhorse's long poll is about as long). */
export const LONG_POLL_MS = 30_000
/** Pending jobs read per query while looking for one this runner may take. */
const MATCH_BATCH = 200
/** The signal every node's long polls wake on: jobs may have become pending (or their pipeline changed). */
export const JOBS_CHANGED = 'wharf_jobs_changed'

export interface JobQueueDeps {
  db: Kysely<Database>
  pipelines: Pipelines
  runners: Runners
  repos: GitRepos
  payloads: JobPayloads
  /** Fails a claimed job that cannot be described, and masks the log of one that can. */
  updates: JobUpdates
  /** The clock (tests move it). */
  now?: () => number
}

export class JobQueue {
  private readonly d: JobQueueDeps
  private readonly now: () => number
  private readonly waiters = new Set<() => void>()
  private version = 0
  private closing = false
  private readonly signals: Signals
  /** Listening for other nodes' changes: from the first long poll until close. */
  private unsubscribe: (() => void) | undefined

  constructor(deps: JobQueueDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
    this.version = this.now()
    // A change made on this node wakes its long polls at once and every other node's through the database.
    this.signals = signalsFor(deps.db)
    deps.pipelines.onChange(() => void this.signals.signal(JOBS_CHANGED))
  }

  /** The queue's version for `X-GitLab-Last-Update`: it changes whenever jobs may have become pending. */
  lastUpdate(): string {
    return String(this.version)
  }

  /** Ends every waiting long poll now (204) and lets no new one wait: the server is shutting down. */
  close(): void {
    this.closing = true
    this.unsubscribe?.()
    this.unsubscribe = undefined
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
    // Subscribed on first use, so that a process that never serves runners (a CLI command) opens no listening connection.
    if (!this.unsubscribe && !this.closing) this.unsubscribe = this.signals.subscribe(JOBS_CHANGED, () => this.wake())
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
      if (!pipeline || !(await isProtectedRef(this.d.repos, this.d.pipelines, pipeline))) return false
    }
    return true
  }

  private async start(job: CiJob, token: string, runner: Runner): Promise<JobResponse> {
    try {
      const payload = await this.d.payloads.build(job, token, runner)
      // The job's log hides its masked variables from the first line on (and its token, as every job token).
      await this.d.updates.maskLog(
        job.id,
        payload.variables.filter((v) => v.masked).map((v) => v.value),
      )
      await this.d.pipelines.advance(job.pipeline_id)
      return payload
    } catch (err) {
      // The job was claimed but cannot be described: fail it rather than leave it running.
      await this.d.updates.finish(
        job,
        'failed',
        'unknown_failure',
        null,
        `ERROR: Job failed: the server could not prepare the job (${(err as Error).message})`,
      )
      throw err
    }
  }
}
