/**
 * The runner process: verifies each configured runner's token, then long-polls
 * `POST /jobs/request` for each and runs up to `concurrent` jobs at once (and `limit` per runner),
 * backing off on errors. `stop()` stops asking for jobs, gives running jobs `shutdown_timeout`
 * seconds to finish, then ends them (failed, runner_system_failure, "the runner was stopped");
 * a second `stop()` ends them at once.
 */
import { randomBytes } from 'node:crypto'
import { RunnerClient, runnerInfo } from './client.ts'
import type { RunnerConfig, RunnerEntry } from './config.ts'
import { DockerExecutor } from './docker-executor.ts'
import type { Executor } from './executor.ts'
import type { Logger } from './job-control.ts'
import { runJob, type JobOutcome } from './job.ts'
import { ShellExecutor } from './shell-executor.ts'

export const POLL_BACKOFF = {
  firstMs: 1000,
  maxMs: 60_000,
} as const

export class RunnerStartError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RunnerStartError'
  }
}

export type ExecutorFactory = (runner: RunnerEntry) => Executor

export const defaultExecutorFactory: ExecutorFactory = (runner) =>
  runner.executor === 'docker' ? new DockerExecutor(runner) : new ShellExecutor(runner)

export interface RunnerProcessOptions {
  config: RunnerConfig
  log: Logger
  executorFactory?: ExecutorFactory
  /** Called after each job (tests, metrics). */
  onJobFinished?: (outcome: JobOutcome) => void
}

interface Slot {
  runner: RunnerEntry
  client: RunnerClient
  id: number
  running: number
}

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve()
    const t = setTimeout(done, ms)
    function done() {
      clearTimeout(t)
      signal.removeEventListener('abort', done)
      resolve()
    }
    signal.addEventListener('abort', done, { once: true })
  })

export class RunnerProcess {
  readonly #o: RunnerProcessOptions
  readonly #systemId = `r_${randomBytes(6).toString('hex')}`
  readonly #polling = new AbortController()
  readonly #shutdown = new AbortController()
  readonly #jobs = new Set<Promise<void>>()
  #running = 0
  #wake: (() => void) | undefined
  #loops: Promise<void>[] = []
  #stopping: Promise<void> | undefined

  constructor(opts: RunnerProcessOptions) {
    this.#o = opts
  }

  get runningJobs(): number {
    return this.#running
  }

  /** Verifies every runner (throws RunnerStartError when the server refuses a token), then polls. */
  async start(): Promise<void> {
    const slots: Slot[] = []
    for (const runner of this.#o.config.runners) {
      const executor = this.#o.executorFactory?.(runner) ?? defaultExecutorFactory(runner)
      const client = new RunnerClient(runner.url, runnerInfo(runner.executor, executor.shell))
      const id = await this.#verify(runner, client)
      if (id === undefined) return // stopped while verifying
      slots.push({ runner, client, id, running: 0 })
      this.#o.log.info({ runner: runner.name, id, url: runner.url, executor: runner.executor, tags: runner.tags }, 'runner verified')
    }
    this.#loops = slots.map((s) => this.#poll(s))
  }

  async #verify(runner: RunnerEntry, client: RunnerClient): Promise<number | undefined> {
    let pause: number = POLL_BACKOFF.firstMs
    for (;;) {
      if (this.#polling.signal.aborted) return undefined
      try {
        const r = await client.verify(runner.token, this.#systemId, this.#polling.signal)
        if (r.status === 200) return r.runner?.id ?? 0
        if (r.status === 401 || r.status === 403)
          throw new RunnerStartError(
            `runner ${runner.name}: the server at ${runner.url} rejected the token (${r.status}); create a runner and use its glrt- token`,
          )
        if (r.status === 404)
          throw new RunnerStartError(`runner ${runner.name}: ${runner.url} has no runner API (POST /api/v4/runners/verify answered 404)`)
        this.#o.log.warn({ runner: runner.name, status: r.status }, 'runner verification failed; retrying')
      } catch (e) {
        if (e instanceof RunnerStartError) throw e
        if (this.#polling.signal.aborted) return undefined
        this.#o.log.warn({ runner: runner.name, url: runner.url, err: (e as Error).message }, 'cannot reach the server; retrying')
      }
      await sleep(pause, this.#polling.signal)
      pause = Math.min(pause * 2, POLL_BACKOFF.maxMs)
    }
  }

  #hasRoom(s: Slot): boolean {
    return this.#running < this.#o.config.concurrent && (s.runner.limit === 0 || s.running < s.runner.limit)
  }

  async #waitForRoom(s: Slot): Promise<void> {
    while (!this.#hasRoom(s) && !this.#polling.signal.aborted) {
      await new Promise<void>((resolve) => {
        const signal = this.#polling.signal
        const done = () => {
          signal.removeEventListener('abort', done)
          resolve()
        }
        const prev = this.#wake
        this.#wake = () => {
          prev?.()
          done()
        }
        signal.addEventListener('abort', done, { once: true })
      })
    }
  }

  async #poll(s: Slot): Promise<void> {
    const log = this.#o.log
    let lastUpdate: string | undefined
    let pause: number = POLL_BACKOFF.firstMs
    const signal = this.#polling.signal
    while (!signal.aborted) {
      await this.#waitForRoom(s)
      if (signal.aborted) break
      const asked = performance.now()
      let r
      try {
        r = await s.client.requestJob(s.runner.token, this.#systemId, lastUpdate, signal)
      } catch (e) {
        if (signal.aborted) break
        log.warn({ runner: s.runner.name, err: (e as Error).message, retry_ms: pause }, 'job request failed')
        await sleep(pause, signal)
        pause = Math.min(pause * 2, POLL_BACKOFF.maxMs)
        continue
      }
      if (r.status === 201 && r.job) {
        pause = POLL_BACKOFF.firstMs
        this.#startJob(s, r.job)
        continue
      }
      if (r.status === 204) {
        pause = POLL_BACKOFF.firstMs
        if (r.lastUpdate) lastUpdate = r.lastUpdate
        // A server that answers at once (no long poll) is asked again after check_interval.
        if (performance.now() - asked < 1000) await sleep(this.#o.config.checkIntervalSeconds * 1000, signal)
        continue
      }
      if (r.status === 403 || r.status === 401)
        log.error({ runner: s.runner.name, status: r.status }, 'the server rejected the runner token')
      else log.warn({ runner: s.runner.name, status: r.status, body: r.text.slice(0, 200), retry_ms: pause }, 'job request failed')
      await sleep(pause, signal)
      pause = Math.min(pause * 2, POLL_BACKOFF.maxMs)
    }
  }

  #startJob(s: Slot, job: Parameters<typeof runJob>[1]): void {
    this.#running++
    s.running++
    const log = this.#o.log
    log.info(
      {
        runner: s.runner.name,
        job: job.id,
        name: job.job_info?.name,
        project: job.job_info?.project_name,
        queue_wait_s: job.job_info?.time_in_queue_seconds,
      },
      'job received',
    )
    const executor = this.#o.executorFactory?.(s.runner) ?? defaultExecutorFactory(s.runner)
    const p = runJob({ client: s.client, runner: s.runner, runnerId: s.id, executor, log, shutdown: this.#shutdown.signal }, job)
      .then((outcome) => this.#o.onJobFinished?.(outcome))
      .catch((e: Error) => log.error({ job: job.id, err: e.stack }, 'job crashed in the runner'))
      .finally(() => {
        this.#running--
        s.running--
        this.#jobs.delete(p)
        const wake = this.#wake
        this.#wake = undefined
        wake?.()
      })
    this.#jobs.add(p)
  }

  /**
   * Stops polling; running jobs get `shutdown_timeout` seconds, then are ended. A second call
   * ends them at once. Resolves when every job has sent its final update.
   */
  stop(): Promise<void> {
    if (this.#stopping) {
      this.#shutdown.abort()
      return this.#stopping
    }
    this.#polling.abort()
    this.#stopping = (async () => {
      await Promise.allSettled(this.#loops)
      if (this.#jobs.size) {
        this.#o.log.info({ jobs: this.#jobs.size, timeout_s: this.#o.config.shutdownTimeoutSeconds }, 'waiting for running jobs to finish')
        const all = Promise.allSettled([...this.#jobs])
        const timer = sleep(this.#o.config.shutdownTimeoutSeconds * 1000, this.#shutdown.signal)
        await Promise.race([all, timer])
        if (this.#jobs.size) {
          this.#o.log.warn({ jobs: this.#jobs.size }, 'ending running jobs: the runner is stopping')
          this.#shutdown.abort()
        }
        await Promise.allSettled([...this.#jobs])
      }
    })()
    return this.#stopping
  }

  /** Resolves when the poll loops end (after stop()). */
  async done(): Promise<void> {
    await Promise.allSettled(this.#loops)
    await Promise.allSettled([...this.#jobs])
  }
}
