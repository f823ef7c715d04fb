// One upstream fetch of a blob, shared by every client that asks for it while it runs. The bytes
// go into a temp file through the registry's verify-then-commit path; each client follows the
// growing file at its own pace, so the first byte reaches clients as soon as it is on disk and a
// slow client never slows the fetch. The last byte is held back until the digest is verified and
// the blob committed: a client can never complete a download of bytes that failed verification.
import type { Writable } from 'node:stream'
import { PathNotFoundError, type BlobDriver, type PositionalReader } from '../storage/driver.ts'

/**
 * Read size when following the file: data arrives in upstream-sized pieces, and a hundred
 * clients following one flight each hold a buffer, so it is smaller than the registry's 1 MiB.
 */
const CHUNK = 256 << 10

export class BlobFlight {
  /** The upstream's Content-Length, when it sent one. */
  size: number | undefined
  /** The temp file, once created. */
  path: string | undefined
  /** Bytes on disk so far. */
  written = 0
  state: 'running' | 'done' | 'failed' = 'running'
  error: Error | undefined
  /** Resolves once the upstream answered and the temp file exists (or the flight already ended). */
  readonly ready: Promise<void>
  private wakers: Array<() => void> = []
  private markReady!: () => void
  private failReady!: (e: Error) => void

  constructor() {
    this.ready = new Promise<void>((ok, ko) => {
      this.markReady = ok
      this.failReady = ko
    })
    this.ready.catch(() => {})
  }

  progress(path: string, bytes: number): void {
    this.path = path
    this.written = bytes
    this.markReady()
    this.notify()
  }

  succeed(): void {
    this.state = 'done'
    this.markReady()
    this.notify()
  }

  fail(e: Error): void {
    this.state = 'failed'
    this.error = e
    this.failReady(e)
    this.notify()
  }

  private notify(): void {
    const w = this.wakers
    this.wakers = []
    for (const f of w) f()
  }

  private changed(): Promise<void> {
    return new Promise((resolve) => this.wakers.push(resolve))
  }

  /** Resolves when the flight ends, either way. */
  async settled(): Promise<void> {
    while (this.state === 'running') await this.changed()
  }

  /**
   * Copies the blob to `dest` as it arrives. `beforeLastBytes` runs once the blob is committed,
   * before the held-back tail is sent (the caller links the blob into its repository there).
   * Returns false when the temp file was already committed away: the caller serves the stored blob.
   */
  async follow(driver: BlobDriver, dest: Writable, beforeLastBytes: () => Promise<void>): Promise<boolean> {
    let reader: PositionalReader
    try {
      reader = await driver.openPositional(this.path!)
    } catch (e) {
      if (!(e instanceof PathNotFoundError)) throw e
      await this.settled()
      if (this.state === 'failed') throw this.error
      await beforeLastBytes()
      return false
    }
    const buf = Buffer.allocUnsafe(CHUNK)
    let pos = 0
    let linked = false
    try {
      for (;;) {
        if (this.state === 'failed') throw this.error
        if (this.state === 'done' && !linked) {
          await beforeLastBytes()
          linked = true
        }
        // Until verified, one byte stays back, so no client sees a complete response of unverified bytes.
        const end = this.state === 'done' ? this.written : this.written - 1
        if (pos < end) {
          const n = await reader.read(buf, Math.min(CHUNK, end - pos), pos)
          if (n === 0) throw new Error('cache temp file shorter than reported')
          // Awaited before the buffer is reused: the callback fires once the socket took the bytes.
          await new Promise<void>((ok, ko) => dest.write(buf.subarray(0, n), (err) => (err ? ko(err) : ok())))
          pos += n
          continue
        }
        if (this.state === 'done') return true
        // Checked and registered in one synchronous step, so no progress event is missed.
        await this.changed()
      }
    } finally {
      await reader.close()
    }
  }
}
