// Reused memory for streamed bytes that several holders keep for a while (the pull-through cache:
// the temp file's writes, the window followers at the tip send from, their socket writes). Node
// allocates a new ArrayBuffer per socket read and per HTTP body piece; V8 counts them as external
// memory and returns them only with a full mark-compact, so bytes merely passing through started one
// every ~100 ms on a cold pull. Copied into slabs, the pieces can be released at once, and a slab is
// reused once its last holder is done with it.

/** Slab size: 16 upstream reads; a piece straddling two slabs is copied as two views. */
const SLAB_BYTES = 1 << 20
/** Free slabs kept for reuse; more are left to the garbage collector (idle memory stays bounded). */
const FREE_KEPT = 8

interface Slab {
  readonly buf: Buffer
  /** Bytes handed out so far; the rest is free for the next copies. */
  filled: number
  /** Holders not yet done (the pool's own while the slab is the one being filled). */
  holds: number
  /** A holder may still be using its bytes after giving up on them: never reused. */
  spoiled: boolean
}

export class SlabPool {
  /** Slabs being held, by their memory (a view's `.buffer`); free and spoiled ones are not in it. */
  private readonly held = new Map<ArrayBufferLike, Slab>()
  private readonly free: Slab[] = []
  private current: Slab | undefined
  private readonly slabBytes: number

  constructor(opts: { slabBytes?: number } = {}) {
    this.slabBytes = opts.slabBytes ?? SLAB_BYTES
  }

  /** Copies `chunk` into the pool: views of it (two when it straddles slabs), each held once for the caller. */
  copy(chunk: Buffer): Buffer[] {
    const views: Buffer[] = []
    for (let off = 0; off < chunk.length; ) {
      const s = this.current && this.current.filled < this.current.buf.length ? this.current : this.next()
      const n = Math.min(chunk.length - off, s.buf.length - s.filled)
      chunk.copy(s.buf, s.filled, off, off + n)
      views.push(s.buf.subarray(s.filled, s.filled + n))
      s.filled += n
      s.holds++
      off += n
    }
    return views
  }

  /** One more holder of the view's bytes. A view from elsewhere (not the pool's) is ignored, as by `release` and `spoil`. */
  hold(view: Buffer): void {
    const s = this.held.get(view.buffer)
    if (s) s.holds++
  }

  /** A holder is done with the bytes (a write called back without error): the slab may be reused once nobody holds it. */
  release(view: Buffer): void {
    const s = this.held.get(view.buffer)
    if (s) this.unhold(s)
  }

  /**
   * A holder gave up on the bytes without knowing whether they are still in use (a write failed, or its
   * destination went away before calling back): the slab is never reused, only collected.
   */
  spoil(view: Buffer): void {
    const s = this.held.get(view.buffer)
    if (!s) return
    s.spoiled = true
    this.held.delete(s.buf.buffer)
  }

  private next(): Slab {
    const full = this.current
    this.current = undefined
    if (full) this.unhold(full)
    const s = this.free.pop() ?? { buf: Buffer.allocUnsafeSlow(this.slabBytes), filled: 0, holds: 0, spoiled: false }
    s.filled = 0
    s.holds = 1
    this.held.set(s.buf.buffer, s)
    this.current = s
    return s
  }

  private unhold(s: Slab): void {
    if (--s.holds > 0 || s === this.current) return
    this.held.delete(s.buf.buffer)
    if (!s.spoiled && this.free.length < FREE_KEPT) this.free.push(s)
  }
}

/**
 * Frees a chunk's memory now rather than at the next full garbage collection, by detaching its
 * ArrayBuffer. Only a chunk that is its whole ArrayBuffer (as Node allocates socket reads and HTTP
 * body pieces) is detached: a view into shared memory (Buffer's 8 KiB pool) would take its
 * neighbours' bytes with it. Never throws (it runs in stream listeners, where a throw would take the
 * process down): an already detached or non-detachable buffer is left to the collector.
 * The caller must be the chunk's last user.
 */
export function freeNow(chunk: Buffer): void {
  const b = chunk.buffer
  if (!(b instanceof ArrayBuffer) || b.detached || chunk.byteOffset !== 0 || chunk.byteLength !== b.byteLength) return
  try {
    b.transfer(0)
  } catch {
    // non-detachable (e.g. memory Node does not own): the garbage collector takes it
  }
}
