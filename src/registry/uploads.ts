import { randomUUID, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { basename } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { finished } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Kysely } from 'kysely'
import { LRUCache } from 'lru-cache'
import { newHash, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { RepoName } from '../core/names.ts'
import { freeNow, type SlabPool } from '../core/slabs.ts'
import type { Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import type { Metrics } from '../ops/metrics.ts'
import { blobPath, isUploadId, UPLOADS_DIR, uploadPath } from '../storage/paths.ts'
import { claimDigest } from './blobs.ts'
import * as q from './queries.ts'

/**
 * The running digest of an open session, kept across PATCHes by the node that wrote them; valid only
 * while the session is as this node left it (same size, same last writer), else rebuilt from the
 * stored bytes (a restart, or a chunk that went to another node).
 */
interface HashState {
  hash: Hash
  size: number
  writer: string
}

/**
 * A session claimed by one request (a PATCH, PUT or DELETE) on this node: the database row says
 * so (`writer`, `writer_until`), so requests on other nodes wait for it or take it over once a
 * dead node's claim ran out. `lost` aborts when the claim may have passed to someone else.
 */
interface Claim {
  id: string
  token: string
  /** Bytes the session held when claimed. */
  size: number
  /** The writer before this one, which a cached digest must match. */
  previous: string
  lost: AbortSignal
  stop(): void
}

/**
 * How long a claim lasts unless renewed. A node killed mid-chunk holds its sessions this long at
 * most: a client that retries on another node waits that long, once.
 */
const CLAIM_MS = 20_000
/** A live claim is renewed this often (each renewal also keeps the session from expiring). */
const CLAIM_RENEW_MS = 4_000
/** How much longer than a claim lasts a request waits for another one holding the session before it is answered 416. */
const CLAIM_WAIT_EXTRA_MS = 5_000
const CLAIM_POLL_MIN_MS = 10
const CLAIM_POLL_MAX_MS = 250
/** Running digests kept; one per session this node wrote the last chunk of (a few hundred bytes each). */
const HASHES_KEPT = 10_000

/** Asked with a verified upload's size just before it is committed; throws to refuse it (quotas). */
export type Admit = (size: number) => Promise<void>

export interface Body {
  stream: Readable
  /** Content-Length, when the client sent one. */
  length?: number
  /** Start offset from Content-Range, when the client sent one. */
  rangeStart?: number
  rangeEnd?: number
}

/**
 * Blob upload sessions (spec: #pushing-blobs). Bytes stream from the socket through a
 * sha256 into a temp file; only a verified digest is moved into the content-addressed
 * store, atomically, so a crash never leaves a visible partial blob.
 */
export class Uploads {
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  // Sessions whose last chunk went to another node leave their entry here until it is evicted.
  private readonly hashes = new LRUCache<string, HashState>({ max: HASHES_KEPT })
  /** Temp files of monolithic uploads and cache fills being written here (they have no session row). */
  private readonly writing = new Set<string>()
  private readonly metrics: Metrics | undefined
  private readonly claimMs: number

  /** `claimMs`: how long a claim lasts unrenewed (CLAIM_MS; tests shorten it). */
  constructor(db: Kysely<Database>, driver: BlobDriver, metrics?: Metrics, opts: { claimMs?: number } = {}) {
    this.db = db
    this.driver = driver
    this.metrics = metrics
    this.claimMs = opts.claimMs ?? CLAIM_MS
  }

  async start(name: RepoName): Promise<string> {
    const id = randomUUID()
    // The temp file is created by the first chunk (or at finish for an empty blob).
    await this.db.transaction().execute(async (trx) => q.insertUpload(trx, id, await q.ensureRepository(trx, name)))
    this.hashes.set(id, { hash: newHash('sha256'), size: 0, writer: '' })
    return id
  }

  /** Bytes received so far. */
  async status(name: RepoName, id: string): Promise<number> {
    return (await this.session(name, id)).size
  }

  async append(name: RepoName, id: string, body: Body): Promise<number> {
    return this.claimed(name, id, body.rangeStart, async (c) => {
      const size = await this.write(c, body)
      await this.release(c, size)
      return size
    })
  }

  /** Completes an upload (spec: PUT ...?digest=), with an optional last chunk. */
  async finish(name: RepoName, id: string, d: ParsedDigest, body: Body | undefined, admit?: Admit): Promise<number> {
    return this.claimed(name, id, body?.rangeStart, async (c) => {
      let size = c.size
      // A last chunk is written durably as it closes (no reopening for the fsync), and its size is not
      // recorded: the commit deletes the session, and a failed one leaves it at the previous chunk's end.
      if (body) size = await this.write(c, body, true)
      else if (size === 0) await this.driver.appender(uploadPath(id), 0).then(endWritable)
      const state = await this.hashState(c, size)
      this.hashes.delete(id)
      const actual = d.algorithm === 'sha256' ? state.hash.digest('hex') : await this.rehash(uploadPath(id), d)
      if (actual !== d.hex) {
        await this.discard(id)
        throw new WharfError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: d.digest })
      }
      if (admit) {
        try {
          await admit(size)
        } catch (e) {
          // Refused (a quota): the bytes never become a blob, and the session cannot be finished any more.
          await this.discard(id)
          throw e
        }
      }
      // The claim must still hold: a node that lost it (cut off from the database) may no longer move the file.
      c.lost.throwIfAborted()
      await this.commit(name, uploadPath(id), d, size, id, body !== undefined)
      return size
    })
  }

  /** Single-request upload (spec: POST ...?digest= with the body). */
  async monolithic(name: RepoName, d: ParsedDigest, body: Body, admit?: Admit): Promise<number> {
    const id = randomUUID()
    const path = uploadPath(id)
    // Marked as written here so this node's sweep never takes the temp file for an orphan.
    return this.writingTo(id, async () => {
      try {
        const out = await this.driver.appender(path, 0, { durable: true })
        const hash = newHash(d.algorithm)
        const size = await streamInto(body, out, hash)
        this.metrics?.registryBytes.inc({ direction: 'in', kind: 'blob' }, size)
        if (hash.digest('hex') !== d.hex)
          throw new WharfError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: d.digest })
        if (admit) await admit(size)
        await this.commit(name, path, d, size, undefined, true)
        return size
      } catch (e) {
        await this.driver.delete(path)
        throw e
      }
    })
  }

  /**
   * The pull-through cache's write path: the same one a monolithic push takes (hash while
   * streaming into a temp file, verify the digest and size, commit atomically, link into `name`).
   * `onWrite` reports the temp file and the bytes on disk so concurrent readers can follow the
   * growing file; `onVerified` says the bytes are the blob (digest and size matched), before the
   * commit makes them durable and visible in the store. Where the driver's writes go through
   * (`appenderWritesThrough`), each chunk of `source` is copied into `slabs` and then released
   * (detached), so `source` must hand out chunks nobody else holds, as an upstream response does
   * (Node's HTTP parser copies every body piece out of the socket read). `onData` sees each chunk
   * (copy) as it arrives, before it is on disk (readers at the tip take it from memory); it must not
   * modify it, and holds it through `slabs` for as long as it keeps it.
   */
  async ingest(
    name: RepoName,
    d: ParsedDigest,
    source: Readable,
    opts: {
      expectedSize?: number | undefined
      slabs: SlabPool
      onWrite(path: string, bytes: number): void
      onData?(chunk: Buffer): void
      onVerified?(): void
    },
  ): Promise<number> {
    const id = randomUUID()
    const path = uploadPath(id)
    const { slabs } = opts
    // Copied only where a write's callback means the bytes are stored: only then can a slab be reused.
    const pooled = this.driver.appenderWritesThrough
    return this.writingTo(id, async () => {
      try {
        const out = await this.driver.appender(path, 0)
        const hash = newHash(d.algorithm)
        let n = 0
        opts.onWrite(path, 0)
        try {
          // A 'data' handler rather than an async iterator: no promise per chunk. Writes are pipelined
          // (back-pressure pauses the source until 'drain'); each one's callback means its bytes are in
          // the file, and callbacks run in order, so followers may read up to there.
          await new Promise<void>((resolve, reject) => {
            let failed = false
            const fail = (e: Error) => {
              if (failed) return
              failed = true
              source.off('data', onData)
              reject(e)
            }
            const onData = (chunk: Buffer) => {
              if (failed) return
              n += chunk.length
              if (opts.expectedSize !== undefined && n > opts.expectedSize)
                return fail(
                  new WharfError('SIZE_INVALID', 'provided length did not match content length', {
                    expected: opts.expectedSize,
                    received: n,
                  }),
                )
              let upTo = n - chunk.length
              let more = true
              for (const view of pooled ? slabs.copy(chunk) : [chunk]) {
                hash.update(view)
                opts.onData?.(view)
                upTo += view.length
                const bytes = upTo
                // A failed write may be cut off with the file system still reading the bytes: never reused.
                more = out.write(view, (err) => {
                  if (err) return slabs.spoil(view)
                  slabs.release(view)
                  opts.onWrite(path, bytes)
                })
              }
              // Copied: the chunk's own memory goes back now instead of at the next full garbage collection.
              if (pooled) freeNow(chunk)
              if (!more) {
                source.pause()
                out.once('drain', () => source.resume())
              }
            }
            out.on('error', fail)
            source.on('data', onData)
            finished(source, (err) => (err ? fail(err) : failed || resolve()))
          })
          await endWritable(out)
        } catch (e) {
          out.destroy()
          source.destroy()
          throw e
        }
        if (opts.expectedSize !== undefined && n !== opts.expectedSize)
          throw new WharfError('SIZE_INVALID', 'provided length did not match content length', { expected: opts.expectedSize, received: n })
        if (hash.digest('hex') !== d.hex)
          throw new WharfError('DIGEST_INVALID', 'provided digest did not match uploaded content', { digest: d.digest })
        opts.onVerified?.()
        await this.commit(name, path, d, n, undefined)
        return n
      } catch (e) {
        await this.driver.delete(path)
        throw e
      }
    })
  }

  async cancel(name: RepoName, id: string): Promise<void> {
    await this.claimed(name, id, undefined, (c) => this.discard(c.id))
  }

  /**
   * Expires sessions idle for longer than ttl and removes temp files no session owns (the temp
   * files of uploads being written on another node are fresh: every write touches them). Safe on
   * every node at once: each removal is one conditional statement.
   */
  async sweep(ttlSeconds: number, now = Date.now()): Promise<{ expired: number; orphans: number }> {
    const before = new Date(now - ttlSeconds * 1000)
    const cutoff = before.toISOString()
    let expired = 0
    for (const id of await q.expiredUploads(this.db, cutoff)) {
      // Re-checked where it is deleted: a chunk may have arrived (and claimed the session) since the list was read.
      if (await q.deleteIdleUpload(this.db, id, cutoff, new Date(now).toISOString())) {
        this.hashes.delete(id)
        await this.driver.delete(uploadPath(id))
        expired++
      }
    }
    const stale: string[] = []
    for await (const f of this.driver.list(UPLOADS_DIR)) {
      const id = basename(f.path)
      if (f.modified < before && isUploadId(id)) stale.push(id)
    }
    const live = await q.uploadIdsAmong(this.db, stale)
    const orphans = stale.filter((id) => !live.has(id) && !this.writing.has(id))
    for (const id of orphans) await this.driver.delete(uploadPath(id))
    // Multipart uploads a node killed mid-commit left behind (S3): invisible to listings, but stored.
    await this.driver.abortIncomplete?.(before)
    return { expired, orphans: orphans.length }
  }

  private async session(name: RepoName, id: string) {
    const row = await q.findUpload(this.db, name, id)
    if (!row) throw new WharfError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id })
    return { size: Number(row.size), writer: row.writer, writerUntil: row.writer_until }
  }

  /**
   * Runs `fn` holding the session's claim. A request that finds the session claimed waits for the
   * claim to end (or, its node dead, to run out), then checks its chunk's start again: two chunks
   * sent for one offset to two nodes, one is stored and the other answered 416 (RANGE_INVALID).
   */
  private async claimed<T>(name: RepoName, id: string, rangeStart: number | undefined, fn: (c: Claim) => Promise<T>): Promise<T> {
    const c = await this.claim(name, id, rangeStart)
    try {
      return await fn(c)
    } catch (e) {
      // Free the session at once (its size unchanged), not when the claim runs out; a no-op when another
      // request took it over (the release is conditional on this one's claim).
      await q.releaseUploadClaim(this.db, id, c.token, c.size).catch(() => {})
      throw e
    } finally {
      c.stop()
    }
  }

  private async claim(name: RepoName, id: string, rangeStart: number | undefined): Promise<Claim> {
    const token = randomUUID()
    const deadline = Date.now() + this.claimMs + CLAIM_WAIT_EXTRA_MS
    let pause = CLAIM_POLL_MIN_MS
    for (;;) {
      const s = await this.session(name, id)
      if (rangeStart !== undefined && rangeStart !== s.size) throw outOfOrder(s.size, rangeStart)
      const now = Date.now()
      if (s.writerUntil === null || s.writerUntil < new Date(now).toISOString()) {
        const claimed = await q.claimUpload(this.db, {
          id,
          size: s.size,
          previous: s.writer,
          writer: token,
          until: new Date(now + this.claimMs).toISOString(),
          now: new Date(now).toISOString(),
        })
        if (claimed) return this.hold(id, token, s.size, s.writer)
        // Another request claimed it between the read and the update: read it again.
        continue
      }
      // Held for longer than a dead node's claim lasts: its writer is alive and busy with a long chunk.
      if (now > deadline) throw outOfOrder(s.size, rangeStart)
      await sleep(pause)
      pause = Math.min(pause * 2, CLAIM_POLL_MAX_MS)
    }
  }

  /** Keeps a claim alive while its request runs; `lost` fires once it cannot be sure it still holds it. */
  private hold(id: string, token: string, size: number, previous: string): Claim {
    const ac = new AbortController()
    let renewedAt = performance.now()
    let renewing = false
    const lose = (why: string) => {
      this.hashes.delete(id)
      ac.abort(new WharfError('BLOB_UPLOAD_INVALID', `upload claim lost (${why}); check the offset and resume`, { uuid: id }))
    }
    const timer = setInterval(
      () => {
        if (ac.signal.aborted) return
        // Other nodes take the claim over once it ran out by their own clocks: stopping at half of it
        // leaves room for clock skew between nodes and for writes already on their way to storage.
        if (performance.now() - renewedAt > this.claimMs / 2) return lose('not renewed in time')
        if (renewing) return
        renewing = true
        const started = performance.now()
        q.renewUploadClaim(this.db, id, token, new Date(Date.now() + this.claimMs).toISOString()).then(
          (held) => {
            renewing = false
            if (held) renewedAt = started
            else lose('taken over or finished elsewhere')
          },
          // The database is unreachable: the next tick decides by the time since the last renewal.
          () => {
            renewing = false
          },
        )
      },
      Math.min(CLAIM_RENEW_MS, this.claimMs / 5),
    )
    timer.unref()
    return { id, token, size, previous, lost: ac.signal, stop: () => clearInterval(timer) }
  }

  /** Ends the claim with the session's new size; a claim lost meanwhile fails the request (the client asks the offset again). */
  private async release(c: Claim, size: number): Promise<void> {
    if (c.lost.aborted || !(await q.releaseUploadClaim(this.db, c.id, c.token, size))) {
      this.hashes.delete(c.id)
      throw c.lost.reason ?? new WharfError('BLOB_UPLOAD_INVALID', 'upload claim lost; check the offset and resume', { uuid: c.id })
    }
  }

  /** Appends a chunk at the claimed offset. `last`: the chunk completes the upload (see finish). */
  private async write(c: Claim, body: Body, last = false): Promise<number> {
    const { id, size } = c
    if (
      body.rangeStart !== undefined &&
      body.rangeEnd !== undefined &&
      body.length !== undefined &&
      body.rangeEnd - body.rangeStart + 1 !== body.length
    ) {
      throw new WharfError('SIZE_INVALID', 'Content-Range does not match Content-Length', {})
    }
    const state = await this.hashState(c, size)
    let out: Writable | undefined
    try {
      out = await this.driver.appender(uploadPath(id), size, { durable: last })
      const received = await streamInto(body, out, state.hash, c.lost)
      state.size += received
      this.metrics?.registryBytes.inc({ direction: 'in', kind: 'blob' }, received)
    } catch (e) {
      // The hash may have seen bytes that never reached the file; rebuild it from storage next time.
      this.hashes.delete(id)
      // A chunk refused for what it is (SIZE_INVALID) leaves nothing behind; one that broke off keeps its bytes,
      // unless the claim was lost: then they are no longer this request's to keep.
      if (out && !(e instanceof WharfError) && !c.lost.aborted) await this.keepReceived(c, out)
      throw c.lost.aborted ? c.lost.reason : e
    }
    return state.size
  }

  /**
   * A chunk that broke off (client gone, body idle, disk error) keeps the bytes that reached the temp file: the
   * session's offset becomes the file's size, so a client asking GET for the offset resumes there.
   */
  private async keepReceived(c: Claim, out: Writable): Promise<void> {
    // The destroyed writer may still be finishing a write; measure the file after it closed.
    if (!out.closed) await once(out, 'close').catch(() => {})
    const info = await this.driver.stat(uploadPath(c.id))
    if (info && info.size > c.size && (await q.releaseUploadClaim(this.db, c.id, c.token, info.size))) c.size = info.size
  }

  /** The running digest of the session's first `size` bytes: this node's, if it wrote the last chunk, else read back. */
  private async hashState(c: Claim, size: number): Promise<HashState> {
    const { id } = c
    const cached = this.hashes.get(id)
    if (cached && cached.size === size && (cached.writer === c.previous || cached.writer === c.token)) {
      cached.writer = c.token
      return cached
    }
    // After a restart, a failed chunk or a chunk stored by another node, the hash is rebuilt from the stored bytes.
    const hash = newHash('sha256')
    if (size > 0) {
      const info = await this.driver.stat(uploadPath(id))
      if (!info || info.size < size) throw new WharfError('BLOB_UPLOAD_INVALID', 'upload data lost; restart the upload', { uuid: id })
      const src = await this.driver.reader(uploadPath(id), { offset: 0, length: size })
      for await (const chunk of src) hash.update(chunk as Buffer)
    }
    const state = { hash, size, writer: c.token }
    this.hashes.set(id, state)
    return state
  }

  private async rehash(path: string, d: ParsedDigest): Promise<string> {
    const hash = newHash(d.algorithm)
    for await (const chunk of await this.driver.reader(path)) hash.update(chunk as Buffer)
    return hash.digest('hex')
  }

  /** `synced`: the temp file's writer already fsynced it. */
  private async commit(
    name: RepoName,
    tempPath: string,
    d: ParsedDigest,
    size: number,
    uploadId: string | undefined,
    synced = false,
  ): Promise<void> {
    // Claimed first: garbage collection (here or in `wharf gc`) never removes a file a push is putting in place.
    const claim = await claimDigest(this.db, d.digest)
    try {
      await this.driver.commit(tempPath, blobPath(d), { synced })
      await this.db.transaction().execute(async (trx) => {
        const repositoryId = await q.ensureRepository(trx, name)
        await q.insertBlob(trx, d.digest, size)
        await q.linkBlob(trx, repositoryId, d.digest)
        await q.releaseClaim(trx, claim)
        if (uploadId) await q.deleteUpload(trx, uploadId)
      })
    } catch (e) {
      // A claim that cannot be released expires (CLAIM_TTL_MS); the push's own error is the one to report.
      await q.releaseClaim(this.db, claim).catch(() => {})
      throw e
    }
  }

  private async discard(id: string): Promise<void> {
    this.hashes.delete(id)
    await q.deleteUpload(this.db, id)
    await this.driver.delete(uploadPath(id))
  }

  /** Marks a temp file with no session row (a monolithic upload, a cache fill) as being written here. */
  private async writingTo<T>(id: string, fn: () => Promise<T>): Promise<T> {
    this.writing.add(id)
    try {
      return await fn()
    } finally {
      this.writing.delete(id)
    }
  }
}

function outOfOrder(size: number, rangeStart: number | undefined): WharfError {
  return new WharfError('RANGE_INVALID', 'chunk out of order', { expectedStart: size, ...(rangeStart === undefined ? {} : { rangeStart }) })
}

/** Streams the body to `out`, feeding the hash; back-pressure comes from pipeline. Returns the byte count. */
async function streamInto(body: Body, out: Writable, hash: Hash, signal?: AbortSignal): Promise<number> {
  let n = 0
  const streams = [
    body.stream,
    async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        hash.update(chunk)
        n += chunk.length
        yield chunk
      }
    },
    out,
  ] as const
  // An abort (the claim was lost) destroys the writer with an AbortError: it then stores nothing more.
  await (signal ? pipeline(...streams, { signal }) : pipeline(...streams))
  if (body.length !== undefined && n !== body.length)
    throw new WharfError('SIZE_INVALID', 'provided length did not match content length', { expected: body.length, received: n })
  return n
}

function endWritable(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())))
}
