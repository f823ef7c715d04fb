// One upstream fetch of a blob, shared by every client that asks for it while it runs. The bytes
// go into a temp file through the registry's verify-then-commit path; each client follows at its
// own pace: at the tip from the chunks just received (kept in memory for a short window, so a
// client keeping up costs no file read and waits for no disk write), further behind from the
// growing file, so a slow client never slows the fetch. The last byte is held back until the
// digest is verified: a client can never complete a download of bytes that failed verification.
// (The commit — fsync and rename — then runs while the last bytes go out.)
import type { Writable } from 'node:stream'
import type { SlabPool } from '../core/slabs.ts'
import { PathNotFoundError, type BlobDriver, type PositionalReader } from '../storage/driver.ts'

/**
 * Read size when following the file: data arrives in upstream-sized pieces, and a hundred
 * clients following one flight each hold a buffer, so it is smaller than the registry's 1 MiB.
 */
const CHUNK = 256 << 10
/**
 * Bytes of the latest upstream chunks kept for followers at the tip. A few upstream reads (64 KiB
 * each) are enough to absorb a client's socket being briefly slower than the upstream; the chunks
 * are held in the ingest's slabs anyway, so this only delays their reuse, once per flight (not per
 * client).
 */
const WINDOW = 1 << 20

export class BlobFlight {
  /** The upstream's Content-Length, when it sent one. */
  size: number | undefined
  /** The temp file, once created. */
  path: string | undefined
  /** Bytes on disk so far. */
  written = 0
  /** Bytes received (and hashed) so far; at least `written`. */
  received = 0
  /** The latest chunks received, the first starting at `windowStart`. */
  private window: Buffer[] = []
  private windowStart = 0
  private windowBytes = 0
  state: 'running' | 'done' | 'failed' = 'running'
  /** The digest and size matched: every byte may be served, even before the commit finished. */
  verified = false
  error: Error | undefined
  /** Resolves once the upstream answered and the temp file exists (or the flight already ended). */
  readonly ready: Promise<void>
  private wakers: Array<() => void> = []
  private markReady!: () => void
  private failReady!: (e: Error) => void
  /** Where the chunks handed to `data` live: the window and followers' writes hold them there. */
  private readonly slabs: SlabPool

  constructor(slabs: SlabPool) {
    this.slabs = slabs
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

  /** A chunk received from the upstream (not yet on disk): followers at the tip send it from memory. */
  data(chunk: Buffer): void {
    this.slabs.hold(chunk)
    this.window.push(chunk)
    this.windowBytes += chunk.length
    this.received += chunk.length
    while (this.windowBytes - this.window[0]!.length >= WINDOW) this.drop()
    this.notify()
  }

  private drop(): void {
    const b = this.window.shift()!
    this.windowStart += b.length
    this.windowBytes -= b.length
    this.slabs.release(b)
  }

  verify(): void {
    this.verified = true
    this.notify()
  }

  succeed(): void {
    // Everything is on disk now: a follower still behind reads the rest from the file.
    while (this.window.length) this.drop()
    this.state = 'done'
    this.markReady()
    this.notify()
  }

  fail(e: Error): void {
    while (this.window.length) this.drop()
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

  /** The window's bytes from `pos` up to `limit`, as views of the received chunks (held until written, so never copied). */
  private windowFrom(pos: number, limit: number): Buffer[] {
    const pieces: Buffer[] = []
    let at = this.windowStart
    for (const b of this.window) {
      const from = Math.max(pos, at)
      const to = Math.min(at + b.length, limit)
      if (from < to) pieces.push(b.subarray(from - at, to - at))
      at += b.length
      if (at >= limit) break
    }
    return pieces
  }

  /** Resolves when the flight ends, either way. */
  async settled(): Promise<void> {
    while (this.state === 'running') await this.changed()
  }

  /**
   * Copies the blob to `dest` as it arrives; resolves once the last (verified) byte was handed
   * to `dest`, without waiting for the commit: a response held open through the fsync would hold
   * the client's next request on the same connection too. Returns false when the temp file was
   * already committed away: the caller serves the stored blob.
   */
  async follow(driver: BlobDriver, dest: Writable): Promise<boolean> {
    let reader: PositionalReader
    try {
      reader = await driver.openPositional(this.path!)
    } catch (e) {
      if (!(e instanceof PathNotFoundError)) throw e
      await this.settled()
      if (this.state === 'failed') throw this.error
      return false
    }
    const buf = Buffer.allocUnsafe(CHUNK)
    let pos = 0
    // An HTTP response whose client went away never calls back a write: its 'close' ends the wait.
    let onClose!: () => void
    const closed = new Promise<never>((_, ko) => (onClose = () => ko(new Error('the client went away'))))
    closed.catch(() => {})
    dest.once('close', onClose)
    // The window's pieces are held until `dest` took them; if it failed or went away first, their
    // slabs are spoiled (a socket may still be sending from them) rather than reused.
    const write = async (pieces: Buffer[]) => {
      for (const p of pieces) this.slabs.hold(p)
      try {
        await Promise.race([writeAll(dest, [...pieces]), closed])
      } catch (e) {
        for (const p of pieces) this.slabs.spoil(p)
        throw e
      }
      for (const p of pieces) this.slabs.release(p)
    }
    try {
      for (;;) {
        if (this.state === 'failed') throw this.error
        const complete = this.verified || this.state === 'done'
        // Until verified, one byte stays back, so no client sees a complete response of unverified bytes.
        const limit = complete ? this.received : this.received - 1
        if (pos >= this.windowStart && pos < limit) {
          await write(this.windowFrom(pos, limit))
          pos = limit
          continue
        }
        const end = Math.min(this.written, limit)
        if (pos < end) {
          const n = await reader.read(buf, Math.min(CHUNK, end - pos), pos)
          if (n === 0) throw new Error('cache temp file shorter than reported')
          // Awaited before the buffer is reused: the callback fires once the socket took the bytes.
          await write([buf.subarray(0, n)])
          pos += n
          continue
        }
        if (complete) break
        // Checked and registered in one synchronous step, so no progress event is missed.
        await this.changed()
      }
    } finally {
      dest.off('close', onClose)
      await reader.close()
    }
    return true
  }
}

/**
 * Writes the pieces in one corked batch (one writev on a socket), resolving once `dest` took them.
 * Only the last write takes a callback: a writable calls back in order, and on an error it fails
 * every write still pending, so the last callback reports either outcome.
 */
function writeAll(dest: Writable, pieces: Buffer[]): Promise<void> {
  const last = pieces.pop()!
  dest.cork()
  for (const p of pieces) dest.write(p)
  const written = new Promise<void>((ok, ko) => dest.write(last, (err) => (err ? ko(err) : ok())))
  dest.uncork()
  return written
}
