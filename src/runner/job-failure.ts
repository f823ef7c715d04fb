/**
 * Why a job failed, as GitLab's `failure_reason` plus the log's message: the one place that turns
 * a stop (cancel, timeout, shutdown, the server's refusal) or a stage's error into a failure.
 */
import { ArtifactsError } from './artifacts.ts'
import { PrepareError } from './executor.ts'
import type { FailureReason } from './protocol.ts'
import { SourcesError } from './sources.ts'

/**
 * What stopped a running job: `canceled` (the server's hard cancel, or the job failed there),
 * `canceling` (graceful: after_script still runs), `timeout` (the job's own), `shutdown` (the
 * runner is stopping), `rejected` (the server no longer accepts updates for the job).
 */
export type StopReason = 'canceled' | 'canceling' | 'timeout' | 'shutdown' | 'rejected'

export class StageFailure extends Error {
  readonly reason: FailureReason
  readonly exitCode: number | undefined
  constructor(message: string, reason: FailureReason, exitCode?: number) {
    super(message)
    this.name = 'StageFailure'
    this.reason = reason
    this.exitCode = exitCode
  }
}

/** `3723` → `1h2m3s`, as Go prints durations. */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`
}

/** The failure a stop means; it overrides whatever a stage reported because of it. */
export function stopFailure(reason: StopReason, timeoutSeconds: number): StageFailure {
  switch (reason) {
    case 'timeout':
      return new StageFailure(`execution took longer than ${formatDuration(timeoutSeconds)} seconds`, 'job_execution_timeout')
    case 'canceled':
    case 'canceling':
      return new StageFailure('canceled', 'job_canceled')
    case 'shutdown':
      return new StageFailure('the runner was stopped', 'runner_system_failure')
    case 'rejected':
      return new StageFailure('the server no longer accepts updates for this job', 'runner_system_failure')
  }
}

/**
 * The failure a stage's error means: the reason the stage gave (sources: the user's repository or
 * ref, so `script_failure` with git's exit code), else the runner's own (`runner_system_failure`;
 * `expected` false so the caller logs the stack).
 */
export function failureOf(e: unknown): { failure: StageFailure; expected: boolean } {
  if (e instanceof StageFailure) return { failure: e, expected: true }
  if (e instanceof SourcesError) return { failure: new StageFailure(e.message, 'script_failure', e.exitCode), expected: true }
  if (e instanceof PrepareError || e instanceof ArtifactsError)
    return { failure: new StageFailure(e.message, e.reason as FailureReason), expected: true }
  return { failure: new StageFailure((e as Error).message, 'runner_system_failure'), expected: false }
}
