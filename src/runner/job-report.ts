/**
 * The end of a job: the closing lines of its log (timings, the verdict), and the final
 * `PUT /jobs/:id` with the state, the failure reason and the exit code, retried until the server
 * answers it.
 */
import type { RunnerClient } from './client.ts'
import { JOB_TIMINGS, type Logger } from './job-control.ts'
import type { StageFailure } from './job-failure.ts'
import type { FailureReason, JobResponse } from './protocol.ts'
import type { JobTrace } from './trace.ts'

export interface JobTimings {
  queueWaitSeconds: number
  pullMs: number
  scriptMs: number
  totalMs: number
}

const secs = (ms: number) => (ms / 1000).toFixed(2)

/** The log's last lines: the timings, then success or the failure's message. */
export function closeLog(trace: JobTrace, t: JobTimings, failure: StageFailure | undefined): void {
  trace.line()
  trace.line(
    `Timing: queued ${t.queueWaitSeconds.toFixed(2)} s, image pull ${secs(t.pullMs)} s, script ${secs(t.scriptMs)} s, total ${secs(t.totalMs)} s`,
  )
  if (!failure) trace.info('Job succeeded')
  else if (failure.reason === 'runner_system_failure') trace.error(`Job failed (system failure): ${failure.message}`)
  else trace.error(`Job failed: ${failure.message}`)
}

/** The reason as the server understands it: one it did not list in `features.failure_reasons` is sent as unknown_failure. */
export function reportedReason(job: JobResponse, failure: StageFailure | undefined): FailureReason | undefined {
  if (!failure) return undefined
  const supported = job.features?.failure_reasons ?? []
  return supported.length && !supported.includes(failure.reason) ? 'unknown_failure' : failure.reason
}

/** Flushes the log and sends the final state; 403/404 (the job is over or gone) end the attempts too. */
export async function finalUpdate(
  deps: { client: RunnerClient; log: Logger },
  job: JobResponse,
  trace: JobTrace,
  state: 'success' | 'failed',
  reason: string | undefined,
  exitCode: number | undefined,
): Promise<void> {
  await trace.finish()
  for (let i = 0; i < JOB_TIMINGS.finalUpdateAttempts; i++) {
    if (trace.sent < trace.size && !trace.rejected) await trace.flush()
    try {
      const r = await deps.client.updateJob(job.id, {
        token: job.token,
        state,
        ...(state === 'failed' && reason ? { failure_reason: reason } : {}),
        ...(exitCode !== undefined ? { exit_code: exitCode } : {}),
        checksum: trace.checksum,
        output: { checksum: trace.checksum, bytesize: trace.size },
      })
      if (r.status === 200 || r.status === 403 || r.status === 404) {
        if (r.status !== 200) deps.log.warn({ job: job.id, status: r.status }, 'final job update refused')
        return
      }
      deps.log.warn({ job: job.id, status: r.status }, 'final job update not accepted yet')
    } catch (e) {
      deps.log.warn({ job: job.id, err: (e as Error).message }, 'final job update failed')
    }
    await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** i, JOB_TIMINGS.finalUpdateMaxPauseMs)))
  }
  deps.log.error({ job: job.id }, 'gave up sending the final job update')
}
