import { randomUUID, type Hash } from 'node:crypto'
import { once } from 'node:events'
import { basename } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import type { Kysely } from 'kysely'
import { newHash, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { RepoName } from '../core/names.ts'
import type { Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import type { Metrics } from '../ops/metrics.ts'
import { blobPath, isUploadId, UPLOADS_DIR, uploadPath } from '../storage/paths.ts'
import { claimDigest } from './blobs.ts'
import * as q from './queries.ts'

/** The running digest of an open session, kept across PATCHes; rebuilt from the temp file after a restart. */
interface HashState {
  hash: Hash
  size: number
}

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
  private readonly hashes = new Map<string, HashState>()
  private readonly locks = new Map<string, Promise<unknown>>()
  private readonly metrics: Metrics | undefined

  constructor(db: Kysely<Database>, driver: BlobDriver, metrics?: Metrics) {
    this.db = db
    this.driver = driver
    this.metrics = metrics
  }

  async start(name: RepoName): Promise<string> {
    const id = randomUUID()
    // The temp file is created by the first chunk (or at finish for an empty blob).
    await this.db.transaction().execute(async (trx) => q.insertUpload(trx, id, await q.ensureRepository(trx, name)))
    this.hashes.set(id, { hash: newHash('sha256'), size: 0 })
    return id
  }

  /** Bytes received so far. */
  async status(name: RepoName, id: string): Promise<number> {
    return (await this.session(name, id)).size
  }

  async append(name: RepoName, id: string, body: Body): Promise<number> {
    return this.locked(id, async () => this.appendLocked(id, (await this.session(name, id)).size, body))
  }

  /** Completes an upload (spec: PUT ...?digest=), with an optional last chunk. */
  async finish(name: RepoName, id: string, d: ParsedDigest, body: Body | undefined, admit?: Admit): Promise<number> {
    return this.locked(id, async () => {
      let size = (await this.session(name, id)).size
      // A last chunk is written durably as it closes (no reopening for the fsync), and its size is not
      // recorded: the commit deletes the session, and a failed one leaves it at the previous chunk's end.
      if (body) size = await this.appendLocked(id, size, body, true)
      else if (size === 0) await this.driver.appender(uploadPath(id), 0).then(endWritable)
      const state = await this.hashState(id, size)
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
      await this.commit(name, uploadPath(id), d, size, id, body !== undefined)
      return size
    })
  }

  /** Single-request upload (spec: POST ...?digest= with the body). */
  async monolithic(name: RepoName, d: ParsedDigest, body: Body, admit?: Admit): Promise<number> {
    const id = randomUUID()
    const path = uploadPath(id)
    // Held under the session lock so a concurrent sweep never takes the temp file for an orphan.
    return this.locked(id, async () => {
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
   * commit makes them durable and visible in the store. `onData` sees each chunk as it arrives,
   * before it is on disk (readers at the tip take it from memory); it must not modify it.
   */
  async ingest(
    name: RepoName,
    d: ParsedDigest,
    source: Readable,
    opts: {
      expectedSize?: number | undefined
      onWrite(path: string, bytes: number): void
      onData?(chunk: Buffer): void
      onVerified?(): void
    },
  ): Promise<number> {
    const id = randomUUID()
    const path = uploadPath(id)
    return this.locked(id, async () => {
      try {
        const out = await this.driver.appender(path, 0)
        const hash = newHash(d.algorithm)
        let n = 0
        opts.onWrite(path, 0)
        try {
          // Writes are pipelined (back-pressure through 'drain'); each one's callback means its
          // bytes are in the file, and callbacks run in order, so followers may read up to there.
          for await (const chunk of source as AsyncIterable<Buffer>) {
            hash.update(chunk)
            n += chunk.length
            const upTo = n
            if (opts.expectedSize !== undefined && n > opts.expectedSize)
              throw new WharfError('SIZE_INVALID', 'provided length did not match content length', {
                expected: opts.expectedSize,
                received: n,
              })
            opts.onData?.(chunk)
            if (!out.write(chunk, (err) => err || opts.onWrite(path, upTo))) await once(out, 'drain')
          }
          await endWritable(out)
        } catch (e) {
          out.destroy()
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
    await this.locked(id, async () => {
      await this.session(name, id)
      await this.discard(id)
    })
  }

  /** Expires sessions idle for longer than ttl and removes temp files no session owns. */
  async sweep(ttlSeconds: number, now = Date.now()): Promise<{ expired: number; orphans: number }> {
    const before = new Date(now - ttlSeconds * 1000)
    const cutoff = before.toISOString()
    let expired = 0
    for (const id of await q.expiredUploads(this.db, cutoff)) {
      // Re-checked under the lock: a chunk may have arrived since the list was read.
      await this.locked(id, async () => {
        if (await q.uploadIdleSince(this.db, id, cutoff)) {
          await this.discard(id)
          expired++
        }
      })
    }
    const stale: string[] = []
    for await (const f of this.driver.list(UPLOADS_DIR)) {
      const id = basename(f.path)
      if (f.modified < before && isUploadId(id)) stale.push(id)
    }
    const live = await q.uploadIdsAmong(this.db, stale)
    const orphans = stale.filter((id) => !live.has(id) && !this.locks.has(id))
    for (const id of orphans) await this.driver.delete(uploadPath(id))
    return { expired, orphans: orphans.length }
  }

  private async session(name: RepoName, id: string) {
    const row = await q.findUpload(this.db, name, id)
    if (!row) throw new WharfError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id })
    return { size: Number(row.size) }
  }

  /** `last`: the chunk completes the upload (see finish). */
  private async appendLocked(id: string, size: number, body: Body, last = false): Promise<number> {
    if (body.rangeStart !== undefined && body.rangeStart !== size) {
      throw new WharfError('RANGE_INVALID', 'chunk out of order', { expectedStart: size, rangeStart: body.rangeStart })
    }
    if (
      body.rangeStart !== undefined &&
      body.rangeEnd !== undefined &&
      body.length !== undefined &&
      body.rangeEnd - body.rangeStart + 1 !== body.length
    ) {
      throw new WharfError('SIZE_INVALID', 'Content-Range does not match Content-Length', {})
    }
    const state = await this.hashState(id, size)
    let out: Writable | undefined
    try {
      out = await this.driver.appender(uploadPath(id), size, { durable: last })
      const received = await streamInto(body, out, state.hash)
      state.size += received
      this.metrics?.registryBytes.inc({ direction: 'in', kind: 'blob' }, received)
    } catch (e) {
      // The hash may have seen bytes that never reached the file; rebuild it from disk next time.
      this.hashes.delete(id)
      // A chunk refused for what it is (SIZE_INVALID) leaves nothing behind; one that broke off keeps its bytes.
      if (out && !(e instanceof WharfError)) await this.keepReceived(id, size, out)
      throw e
    }
    if (!last) await q.setUploadSize(this.db, id, state.size)
    return state.size
  }

  /**
   * A chunk that broke off (client gone, body idle, disk error) keeps the bytes that reached the temp file: the
   * session's offset becomes the file's size, so a client asking GET for the offset resumes there.
   */
  private async keepReceived(id: string, size: number, out: Writable): Promise<void> {
    // The destroyed writer may still be finishing a write; measure the file after it closed.
    if (!out.closed) await once(out, 'close').catch(() => {})
    const info = await this.driver.stat(uploadPath(id))
    if (info && info.size > size) await q.setUploadSize(this.db, id, info.size)
  }

  private async hashState(id: string, size: number): Promise<HashState> {
    const cached = this.hashes.get(id)
    if (cached && cached.size === size) return cached
    // After a restart (or a failed chunk) the running hash is rebuilt from the bytes already on disk.
    const hash = newHash('sha256')
    if (size > 0) {
      const info = await this.driver.stat(uploadPath(id))
      if (!info || info.size < size) throw new WharfError('BLOB_UPLOAD_INVALID', 'upload data lost; restart the upload', { uuid: id })
      const src = await this.driver.reader(uploadPath(id), { offset: 0, length: size })
      for await (const chunk of src) hash.update(chunk as Buffer)
    }
    const state = { hash, size }
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

  /** Serialises operations on one session: a second concurrent PATCH sees the first one's offset. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve()
    const run = prev.then(fn, fn)
    const tail = run.catch(() => {})
    this.locks.set(id, tail)
    try {
      return await run
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id)
    }
  }
}

/** Streams the body to `out`, feeding the hash; back-pressure comes from pipeline. Returns the byte count. */
async function streamInto(body: Body, out: Writable, hash: Hash): Promise<number> {
  let n = 0
  await pipeline(
    body.stream,
    async function* (src: AsyncIterable<Buffer>) {
      for await (const chunk of src) {
        hash.update(chunk)
        n += chunk.length
        yield chunk
      }
    },
    out,
  )
  if (body.length !== undefined && n !== body.length)
    throw new WharfError('SIZE_INVALID', 'provided length did not match content length', { expected: body.length, received: n })
  return n
}

function endWritable(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())))
}
