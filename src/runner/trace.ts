/**
 * A job's log as the runner streams it: output is masked, kept (up to the output limit) and
 * appended to the server's copy with `PATCH /jobs/:id/trace` every second or every 64 KiB,
 * whichever comes first. Offsets come from the server: a 202 or 416 answer's `Range: 0-<n>` says
 * how much it has stored, and the next patch starts there (a 416 means resend from that offset).
 * Patches never overlap in time. `Job-Status` answers are handed to `onJobStatus` (cancel).
 */
import { crc32 } from 'node:zlib'
import { Masker } from './mask.ts'
import type { PatchTraceResult } from './client.ts'

export const TRACE_LIMITS = {
  /** Send at least this often while output is waiting (gitlab-runner sends every 3 s; a live log wants less). */
  flushMs: 1000,
  /** Send at once when this much is waiting. */
  flushBytes: 64 * 1024,
  /** Largest single PATCH body. */
  maxPatchBytes: 256 * 1024,
  /** Consecutive 416 answers before giving up on this round (the next tick retries). */
  maxResyncs: 5,
} as const

export const ANSI = {
  reset: '\x1b[0;m',
  boldGreen: '\x1b[32;1m',
  boldRed: '\x1b[31;1m',
  yellow: '\x1b[0;33m',
  boldYellow: '\x1b[33;1m',
  clear: '\x1b[0K',
} as const

export interface TraceTransport {
  patchTrace(jobId: number, jobToken: string, start: number, bytes: Uint8Array): Promise<PatchTraceResult>
}

export interface JobTraceOptions {
  transport: TraceTransport
  jobId: number
  jobToken: string
  /** Values replaced by [MASKED] (masked variables, the job token). */
  secrets: Iterable<string>
  outputLimitBytes: number
  /** Called with every `Job-Status` answer. */
  onJobStatus?: (status: string) => void
  /** The server refused the trace for good (403/404: job gone, token revoked). */
  onRejected?: (status: number) => void
  /** Transport problems, for the runner's own log. */
  onError?: (err: unknown) => void
  flushMs?: number
  flushBytes?: number
  maxPatchBytes?: number
}

export class JobTrace {
  readonly #o: JobTraceOptions
  readonly #masker: Masker
  #buf = Buffer.alloc(64 * 1024)
  #size = 0
  #sent = 0
  #truncated = false
  #timer: NodeJS.Timeout | undefined
  #sending: Promise<void> | undefined
  #again = false
  #closed = false
  #rejected = false
  #failures = 0

  constructor(opts: JobTraceOptions) {
    this.#o = opts
    this.#masker = new Masker(opts.secrets)
  }

  /** Bytes of log kept so far (what the server will have after the final flush). */
  get size(): number {
    return this.#size
  }

  /** Bytes the server has acknowledged. */
  get sent(): number {
    return this.#sent
  }

  /** `crc32:<hex>` of the whole log, GitLab's trace checksum format. */
  get checksum(): string {
    return `crc32:${crc32(this.#buf.subarray(0, this.#size)).toString(16).padStart(8, '0')}`
  }

  /** The log as kept (masked). */
  text(): string {
    return this.#buf.subarray(0, this.#size).toString('utf8')
  }

  start(): void {
    // A held-back partial secret stays back until more output or the end: releasing it on a
    // timer would leak the start of a secret printed in two pieces.
    this.#timer ??= setInterval(() => void this.flush(), this.#o.flushMs ?? TRACE_LIMITS.flushMs)
    this.#timer.unref()
  }

  /** Output from the job (masked here). */
  write(data: Buffer | string): void {
    if (this.#closed) return
    this.#append(this.#masker.write(data))
  }

  /** A line of the runner's own (e.g. `Running with wharf-runner`). */
  line(text = ''): void {
    this.write(`${text}\n`)
  }

  info(text: string): void {
    this.line(`${ANSI.boldGreen}${text}${ANSI.reset}`)
  }

  warn(text: string): void {
    this.line(`${ANSI.boldYellow}WARNING: ${text}${ANSI.reset}`)
  }

  error(text: string): void {
    this.line(`${ANSI.boldRed}ERROR: ${text}${ANSI.reset}`)
  }

  /** GitLab's collapsible section markers. */
  sectionStart(name: string, header: string): void {
    this.write(`section_start:${Math.floor(Date.now() / 1000)}:${name}\r${ANSI.clear}${ANSI.boldGreen}${header}${ANSI.reset}\n`)
  }

  sectionEnd(name: string): void {
    this.write(`section_end:${Math.floor(Date.now() / 1000)}:${name}\r${ANSI.clear}`)
  }

  #append(bytes: Buffer): void {
    if (bytes.length === 0 || this.#truncated) return
    const limit = this.#o.outputLimitBytes
    let chunk = bytes
    if (this.#size + chunk.length > limit) {
      chunk = chunk.subarray(0, Math.max(0, limit - this.#size))
      this.#truncated = true
    }
    this.#put(chunk)
    if (this.#truncated) {
      this.#put(
        Buffer.from(
          `\n${ANSI.boldYellow}Job's log exceeded limit of ${limit} bytes.\nJob execution will continue but no more output will be collected.${ANSI.reset}\n`,
        ),
      )
    }
    if (this.#size - this.#sent >= (this.#o.flushBytes ?? TRACE_LIMITS.flushBytes)) void this.flush()
  }

  #put(chunk: Buffer): void {
    if (this.#size + chunk.length > this.#buf.length) {
      const grown = Buffer.alloc(Math.max(this.#buf.length * 2, this.#size + chunk.length))
      this.#buf.copy(grown, 0, 0, this.#size)
      this.#buf = grown
    }
    chunk.copy(this.#buf, this.#size)
    this.#size += chunk.length
  }

  /** Sends what is waiting; concurrent callers share one round (and trigger one more if needed). */
  flush(): Promise<void> {
    if (this.#sending) {
      this.#again = true
      return this.#sending
    }
    this.#sending = (async () => {
      try {
        do {
          this.#again = false
          await this.#sendAll()
        } while (this.#again && !this.#rejected)
      } finally {
        this.#sending = undefined
      }
    })()
    return this.#sending
  }

  async #sendAll(): Promise<void> {
    let resyncs = 0
    while (this.#sent < this.#size && !this.#rejected) {
      const end = Math.min(this.#size, this.#sent + (this.#o.maxPatchBytes ?? TRACE_LIMITS.maxPatchBytes))
      const body = Buffer.from(this.#buf.subarray(this.#sent, end))
      let r: PatchTraceResult
      try {
        r = await this.#o.transport.patchTrace(this.#o.jobId, this.#o.jobToken, this.#sent, body)
      } catch (e) {
        this.#failures++
        this.#o.onError?.(e)
        return
      }
      if (r.jobStatus) this.#o.onJobStatus?.(r.jobStatus)
      if (r.status === 202) {
        this.#failures = 0
        // The server's stored size is authoritative; without it, assume the chunk landed.
        const before = this.#sent
        this.#sent = Math.min(this.#size, r.stored ?? end)
        if (this.#sent <= before && ++resyncs >= TRACE_LIMITS.maxResyncs) return
        if (this.#sent > before) resyncs = 0
      } else if (r.status === 416) {
        resyncs++
        this.#sent = Math.min(this.#size, r.stored ?? 0)
        if (resyncs >= TRACE_LIMITS.maxResyncs) return
      } else if (r.status === 403 || r.status === 404) {
        this.#rejected = true
        this.#o.onRejected?.(r.status)
        return
      } else {
        this.#failures++
        this.#o.onError?.(new Error(`trace append answered ${r.status}`))
        return
      }
    }
  }

  /**
   * Ends the stream: releases held-back bytes and sends everything, retrying a few times with
   * a pause. Resolves whether or not the server took it all (see `sent`).
   */
  async finish(attempts = 5): Promise<void> {
    if (this.#timer) clearInterval(this.#timer)
    this.#timer = undefined
    this.#append(this.#masker.flush())
    this.#closed = true
    for (let i = 0; i < attempts && this.#sent < this.#size && !this.#rejected; i++) {
      await this.flush()
      if (this.#sent < this.#size && !this.#rejected) await new Promise((r) => setTimeout(r, Math.min(1000 * 2 ** i, 5000)))
    }
  }

  /** True once the server refused the trace (403/404). */
  get rejected(): boolean {
    return this.#rejected
  }

  get failures(): number {
    return this.#failures
  }
}
