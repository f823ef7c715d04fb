import pLimit, { type LimitFunction } from 'p-limit'
import { RETRY_AFTER_SECONDS, WharfError } from './errors.ts'

export interface PoolLimits {
  /** Work items running at once. */
  concurrency: number
  /** Work items allowed to wait for a slot; one more fails at once with UNAVAILABLE. */
  queue: number
  /** How long one may wait for a slot before failing with UNAVAILABLE (default MAX_WAIT_MS). */
  maxWaitMs?: number
}

/**
 * Slots can be held for long (a clone streams to a slow client): a request that waited this long
 * is answered 503 rather than left hanging, so a few slow clients cannot stall everyone's git work.
 */
export const MAX_WAIT_MS = 30_000

/**
 * A fixed number of slots for a scarce resource (child processes, and with them file
 * descriptors): work waits in a FIFO queue for a slot instead of fanning out, and the queue is
 * bounded too, so a flood is refused (UNAVAILABLE, answered 503 with Retry-After) instead of
 * growing memory and latency without end.
 */
export class Pool {
  readonly name: string
  private readonly limit: LimitFunction
  private queue: number
  private maxWaitMs: number
  /** Slots handed out and not yet given back (p-limit's own count trails a release by a tick). */
  private held = 0
  /** Callers waiting for a slot (p-limit starts even a free slot's work a tick later). */
  private waiters = 0

  constructor(name: string, limits: PoolLimits) {
    this.name = name
    this.limit = pLimit(limits.concurrency)
    this.queue = limits.queue
    this.maxWaitMs = limits.maxWaitMs ?? MAX_WAIT_MS
  }

  /** Changes the limits (at start-up, from the configuration); running work is not interrupted. */
  configure(limits: PoolLimits): void {
    this.limit.concurrency = limits.concurrency
    this.queue = limits.queue
    this.maxWaitMs = limits.maxWaitMs ?? MAX_WAIT_MS
  }

  get active(): number {
    return this.held
  }

  get waiting(): number {
    return this.waiters
  }

  /**
   * Waits for a slot and returns the function that gives it back (idempotent). Rejects with
   * UNAVAILABLE when the queue is full or the wait exceeds maxWaitMs, and with the signal's reason
   * when it aborts while waiting.
   */
  acquire(signal?: AbortSignal): Promise<() => void> {
    if (signal?.aborted) return Promise.reject(signal.reason)
    if (this.held + this.waiters >= this.limit.concurrency + this.queue) {
      return Promise.reject(
        new WharfError('UNAVAILABLE', `too many ${this.name} operations waiting; retry later`, {
          retryAfter: RETRY_AFTER_SECONDS,
          queue: this.queue,
        }),
      )
    }
    return new Promise((resolve, reject) => {
      let gaveUp = false
      this.waiters++
      const giveUp = (reason: unknown) => {
        gaveUp = true
        this.waiters--
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
        reject(reason)
      }
      const onAbort = () => giveUp(signal!.reason)
      signal?.addEventListener('abort', onAbort, { once: true })
      const timer = setTimeout(
        () =>
          giveUp(
            new WharfError('UNAVAILABLE', `waited ${this.maxWaitMs} ms for a ${this.name} slot; retry later`, {
              retryAfter: RETRY_AFTER_SECONDS,
            }),
          ),
        this.maxWaitMs,
      )
      void this.limit(
        () =>
          new Promise<void>((release) => {
            signal?.removeEventListener('abort', onAbort)
            clearTimeout(timer)
            // Aborted while waiting: the slot goes straight to the next in line.
            if (gaveUp) return release()
            this.waiters--
            this.held++
            let released = false
            resolve(() => {
              if (released) return
              released = true
              this.held--
              release()
            })
          }),
      )
    })
  }

  /** Runs `fn` in a slot, given back when its promise settles. */
  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const release = await this.acquire(signal)
    try {
      return await fn()
    } finally {
      release()
    }
  }
}
