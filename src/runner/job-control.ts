/**
 * A running job's link to the server and its stops: the log (trace.ts), the keep-alive
 * `PUT running` every few seconds, the job timeout and the runner's shutdown. A `Job-Status:
 * canceled` answer (to either), the server refusing the job, the timeout or the shutdown stop the
 * job: the running stage is aborted, and the stop decides the failure (job-failure.ts).
 */
import type { RunnerClient } from './client.ts'
import { stopFailure, type StageFailure, type StopReason } from './job-failure.ts'
import type { JobResponse } from './protocol.ts'
import { JobTrace, type TraceTransport } from './trace.ts'

export interface Logger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

export const JOB_TIMINGS = {
  /** Keep-alive `PUT running` interval (the server's heartbeat timeout must be well above it). */
  heartbeatMs: 5000,
  /** Final update: attempts and the pause cap between them. */
  finalUpdateAttempts: 20,
  finalUpdateMaxPauseMs: 5000,
} as const

/** The job timeout when the server sends none (GitLab's default, one hour). */
const DEFAULT_TIMEOUT_SECONDS = 3600

export interface JobControlOptions {
  /** The trace appends and the keep-alive go here. */
  client: TraceTransport & Pick<RunnerClient, 'updateJob'>
  log: Logger
  /** Bytes of log kept and sent (the runner's `output_limit`). */
  outputLimitBytes: number
  /** Aborted when the runner stops and running jobs must end now. */
  shutdown: AbortSignal
  heartbeatMs?: number
}

export class JobControl {
  readonly trace: JobTrace
  readonly timeoutSeconds: number
  readonly #abort = new AbortController()
  readonly #hardAbort = new AbortController()
  readonly #o: JobControlOptions
  readonly #timeoutTimer: NodeJS.Timeout
  readonly #heartbeat: NodeJS.Timeout
  readonly #onShutdown = () => this.stop('shutdown')
  #stopReason: StopReason | undefined

  constructor(o: JobControlOptions, job: JobResponse) {
    this.#o = o
    const onJobStatus = (status: string) => {
      if (status === 'canceled' || status === 'failed') this.stop('canceled')
      else if (status === 'canceling') this.stop('canceling')
    }
    this.trace = new JobTrace({
      transport: o.client,
      jobId: job.id,
      jobToken: job.token,
      secrets: [job.token, ...job.variables.filter((v) => v.masked && v.value).map((v) => v.value)],
      outputLimitBytes: o.outputLimitBytes,
      onJobStatus,
      onRejected: () => this.stop('rejected'),
      onError: (e) => o.log.warn({ job: job.id, err: (e as Error).message }, 'trace append failed'),
    })
    this.trace.start()

    o.shutdown.addEventListener('abort', this.#onShutdown, { once: true })
    if (o.shutdown.aborted) this.#onShutdown()
    this.timeoutSeconds = job.runner_info?.timeout > 0 ? job.runner_info.timeout : DEFAULT_TIMEOUT_SECONDS
    this.#timeoutTimer = setTimeout(() => this.stop('timeout'), this.timeoutSeconds * 1000)
    this.#timeoutTimer.unref()
    let busy = false
    this.#heartbeat = setInterval(() => {
      if (busy) return
      busy = true
      o.client
        .updateJob(job.id, { token: job.token, state: 'running', output: { checksum: this.trace.checksum, bytesize: this.trace.size } })
        .then((r) => {
          if (r.jobStatus) onJobStatus(r.jobStatus)
          if (r.status === 403 || r.status === 404) this.stop('rejected')
        })
        .catch((e: Error) => o.log.warn({ job: job.id, err: e.message }, 'keep-alive update failed'))
        .finally(() => (busy = false))
    }, o.heartbeatMs ?? JOB_TIMINGS.heartbeatMs)
    this.#heartbeat.unref()
  }

  /** Aborted by any stop: ends the running stage. */
  get signal(): AbortSignal {
    return this.#abort.signal
  }

  /** Aborted by a hard stop (cancel, shutdown, refusal), not by a graceful cancel or the timeout: also ends after_script. */
  get hardSignal(): AbortSignal {
    return this.#hardAbort.signal
  }

  get stopReason(): StopReason | undefined {
    return this.#stopReason
  }

  /** The first stop wins, except that a graceful cancel may become a hard one. */
  stop(reason: StopReason): void {
    if (this.#stopReason && !(this.#stopReason === 'canceling' && reason === 'canceled')) return
    this.#stopReason = reason
    if (!this.#abort.signal.aborted) this.#abort.abort()
    if (reason !== 'canceling' && reason !== 'timeout') this.#hardAbort.abort()
  }

  /** The failure the stop means, when the job was stopped. */
  stopFailure(): StageFailure | undefined {
    return this.#stopReason && stopFailure(this.#stopReason, this.timeoutSeconds)
  }

  /** Ends the job here when it was stopped. */
  throwIfStopped(): void {
    const f = this.stopFailure()
    if (f) throw f
  }

  /** Stops the timers and listeners (the trace is finished by the final update). */
  dispose(): void {
    clearTimeout(this.#timeoutTimer)
    clearInterval(this.#heartbeat)
    this.#o.shutdown.removeEventListener('abort', this.#onShutdown)
  }
}
