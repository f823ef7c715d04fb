// The periodic sweep of the runner API: fails running jobs whose runner went silent or that ran
// past their timeout, and expires old artifacts.
import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import type { Artifacts } from './artifacts.ts'
import { jobTimeout } from './job-payload.ts'
import type { JobUpdates } from './job-updates.ts'
import type { JobDefinition } from './pipelines.ts'
import * as rq from './runner-queries.ts'

/** A running job is failed this long after its timeout if its runner never reported (it enforces the timeout itself, then uploads). */
export const TIMEOUT_GRACE_SECONDS = 300

export interface JobSweeperDeps {
  db: Kysely<Database>
  updates: JobUpdates
  artifacts: Artifacts
  /** A running job whose runner sent nothing (state update or trace) this long is failed. */
  heartbeatTimeoutSeconds: number
  /** The clock (tests move it). */
  now?: () => number
}

export class JobSweeper {
  private readonly d: JobSweeperDeps
  private readonly now: () => number

  constructor(deps: JobSweeperDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
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
      const lastSign = Math.max(
        started,
        job.heartbeat_at ? new Date(job.heartbeat_at).getTime() : 0,
        this.d.updates.lastHeartbeat(job.id) ?? 0,
      )
      if (now - lastSign > limit * 1000) {
        const line = `ERROR: Job failed (system failure): the runner sent no update for ${limit} seconds (ci.jobHeartbeatTimeoutSeconds) and is presumed gone.`
        if (await this.d.updates.finish(job, 'failed', 'runner_system_failure', null, line)) stale.push(job.id)
        continue
      }
      const runner = job.runner_id === null ? undefined : await rq.findRunner(this.d.db, job.runner_id)
      const timeout = jobTimeout(JSON.parse(job.definition) as Partial<JobDefinition>, runner)
      if (now - started > (timeout + TIMEOUT_GRACE_SECONDS) * 1000) {
        const line = `ERROR: Job failed: execution took longer than ${timeout} seconds (the job's timeout) and the runner did not stop it.`
        if (await this.d.updates.finish(job, 'failed', 'job_execution_timeout', null, line)) timedOut.push(job.id)
      }
    }
    const expiredArtifacts = await this.d.artifacts.sweepExpired(new Date(now).toISOString())
    return { stale, timedOut, expiredArtifacts }
  }
}
