import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Kysely } from 'kysely'
import type { Writable } from 'node:stream'
import { parseDigest, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { RepoName } from '../core/names.ts'
import type { Database } from '../metadata/schema.ts'
import { PathNotFoundError, type BlobDriver } from '../storage/driver.ts'
import { blobPath, blobPathInBlobsDir } from '../storage/paths.ts'
import * as q from './queries.ts'

export type ByteRange = { start: number; end: number }

/** Reading, linking and unlinking committed blobs. A blob is visible in a repository only through its link. */
export class Blobs {
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  private readonly renewAfterMs: number
  private readonly accelRedirect: string | undefined
  /**
   * `graceSeconds`: garbage collection's (gc.graceSeconds), which links found here are kept clear of.
   * `accelRedirect`: the reverse proxy's internal location serving the `blobs/` directory (storage.filesystem.accelRedirect).
   */
  constructor(db: Kysely<Database>, driver: BlobDriver, opts: { graceSeconds: number; accelRedirect?: string | undefined }) {
    this.db = db
    this.driver = driver
    this.renewAfterMs = (opts.graceSeconds * 1000) / RENEW_FRACTION
    this.accelRedirect = opts.accelRedirect
  }

  /**
   * Size of a blob readable in this repository; BLOB_UNKNOWN otherwise. A link found older than a
   * tenth of the grace is renewed before the answer: a client that found the blob here skips its
   * upload and names it in a manifest later, so garbage collection must not take the link in
   * between (src/gc/README.md). Younger links cost no write, so a hot blob costs none.
   */
  async stat(name: RepoName, d: ParsedDigest): Promise<number> {
    const link = await q.linkedBlob(this.db, name, d.digest)
    if (link === undefined) throw new WharfError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest })
    const renewBefore = new Date(Date.now() - this.renewAfterMs).toISOString()
    if (link.linkedAt >= renewBefore || (await q.renewLink(this.db, link.repositoryId, d.digest, renewBefore))) return link.size
    // Not renewed: another request did it first (the link is fresh) or the collector deleted it (the client must upload).
    const size = await q.linkedBlobSize(this.db, name, d.digest)
    if (size === undefined) throw new WharfError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest })
    return size
  }

  /** Opens a blob for sending (BLOB_UNKNOWN if its file is missing); the result copies it to a writable. */
  async open(d: ParsedDigest, range?: ByteRange): Promise<(dest: Writable) => Promise<void>> {
    try {
      return await this.driver.openForSend(blobPath(d), range && { offset: range.start, length: range.end - range.start + 1 })
    } catch (e) {
      if (e instanceof PathNotFoundError) throw new WharfError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest })
      throw e
    }
  }

  /** A URL the client may download the blob from directly (storage.s3.redirect), if storage offers one. */
  async redirectUrl(d: ParsedDigest): Promise<string | undefined> {
    return this.driver.redirectUrl?.(blobPath(d))
  }

  /**
   * The URI of the blob's file in the reverse proxy's internal location, for an X-Accel-Redirect
   * answer; undefined unless storage.filesystem.accelRedirect is set. Built from the digest alone.
   */
  internalUri(d: ParsedDigest): string | undefined {
    return this.accelRedirect === undefined ? undefined : this.accelRedirect + blobPathInBlobsDir(d)
  }

  /** Cross-repository mount: links the blob into `name` only if it is linked in `from`. */
  async mount(name: RepoName, from: RepoName, d: ParsedDigest): Promise<boolean> {
    // The check and the link in one transaction: GC removing the source link at the same moment
    // either comes first (no mount; the client uploads) or sees the new link.
    return this.db.transaction().execute(async (trx) => {
      const repositoryId = await q.ensureRepository(trx, name)
      if ((await q.linkedBlobSize(trx, from, d.digest)) === undefined) return false
      await q.linkBlob(trx, repositoryId, d.digest)
      return true
    })
  }

  /** Repositories the blob is linked in (at most `limit`), those nearest `name` first: the candidates for a mount without `from`. */
  async holders(d: ParsedDigest, name: RepoName, limit: number): Promise<RepoName[]> {
    return (await q.repositoriesHoldingBlob(this.db, d.digest, name, limit)) as RepoName[]
  }

  /**
   * Links a blob that is already in the store into `name` (the pull-through cache, once it knows
   * the upstream image references it); false if the store does not hold it.
   */
  async linkStored(name: RepoName, d: ParsedDigest): Promise<boolean> {
    if (!(await this.driver.stat(blobPath(d)))) return false
    // The row is checked where it is linked: GC deleting it at the same moment comes first or sees the link.
    return this.db.transaction().execute(async (trx) => {
      const repositoryId = await q.ensureRepository(trx, name)
      if ((await q.blobSize(trx, d.digest)) === undefined) return false
      await q.linkBlob(trx, repositoryId, d.digest)
      return true
    })
  }

  /** Removes the blob from this repository; the bytes stay for other repositories until garbage collection. */
  async unlink(name: RepoName, d: ParsedDigest): Promise<void> {
    if (!(await q.unlinkBlob(this.db, name, d.digest)))
      throw new WharfError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest })
  }

  /**
   * Deletes blobs no repository links and no push claims (rows first, in batches, then their
   * files); `digests` limits it to those (a cache purge). Returns what was deleted.
   */
  async deleteUnreferenced(
    c: Omit<q.BlobCandidates, 'limit' | 'claimsBefore'>,
    opts: { batch?: number } = {},
  ): Promise<Array<{ digest: string; size: number }>> {
    const claimsBefore = claimsExpiredBefore()
    const out: Array<{ digest: string; size: number }> = []
    const batch = opts.batch ?? DELETE_BATCH
    for (let i = 0; c.digests === undefined || i < c.digests.length; i += batch) {
      const only = c.digests?.slice(i, i + batch)
      if (only?.length === 0) break
      // The first statement writes, so the transaction holds the write lock from its start.
      const rows = await this.db.transaction().execute(async (trx) => {
        await q.markUnreferencedBlobs(trx, { ...c, ...(only ? { digests: only } : {}), claimsBefore, limit: batch })
        return q.deleteMarkedBlobRows(trx, c.owner)
      })
      await this.removeFiles(
        c.owner,
        rows.map((r) => r.digest),
      )
      out.push(...rows)
      if (c.digests === undefined && rows.length < batch) break
    }
    return out
  }

  /** Removes a file whose digest has no row (a crash between a push's rename and its commit); false if a push claimed it meanwhile. */
  async deleteOrphanFile(owner: string, digest: string): Promise<boolean> {
    if (!(await q.markOrphanFile(this.db, owner, digest, claimsExpiredBefore()))) return false
    await this.removeFiles(owner, [digest])
    return true
  }

  /** Which of these digests have a blob row. */
  knownDigests(digests: string[]): Promise<Set<string>> {
    return q.blobDigestsAmong(this.db, digests)
  }

  /** Finishes deletions a stopped collector left marked before `before` (their files may still be there) and drops crashed pushes' claims. */
  async recover(owner: string, before: string): Promise<void> {
    await this.removeFiles(owner, await q.takeOverStaleDeletions(this.db, owner, before))
    await q.deleteStaleClaims(this.db, claimsExpiredBefore())
  }

  /** Removes the marked digests' files (a few at a time), then their marks in one statement. */
  private async removeFiles(owner: string, digests: string[]): Promise<void> {
    let next = 0
    const worker = async () => {
      while (next < digests.length) await this.driver.delete(blobPath(parseDigest(digests[next++]!)))
    }
    await Promise.all(Array.from({ length: Math.min(FILE_DELETES_AT_ONCE, digests.length) }, worker))
    await q.finishBlobDeletions(this.db, owner, digests)
  }
}

/**
 * A link is renewed once older than grace / RENEW_FRACTION: at most one write per link that often,
 * and a link found by a HEAD or GET has nine tenths of the grace left for the manifest naming it.
 */
const RENEW_FRACTION = 10
/** Blob files removed at once: unlinks are cheap, but one at a time a large sweep waits on each. */
const FILE_DELETES_AT_ONCE = 16
/** Blob rows deleted per transaction: a short hold on the write lock, so pushes wait milliseconds. */
const DELETE_BATCH = 500
/**
 * A claim lives from just before a push renames its file into place to the commit that links it
 * (milliseconds); one this old was left by a crashed process and no longer protects its digest.
 */
export const CLAIM_TTL_MS = 60 * 60 * 1000
const claimsExpiredBefore = () => new Date(Date.now() - CLAIM_TTL_MS).toISOString()
/** How long a push waits for a deletion of the same digest to finish removing the file. */
const CLAIM_WAIT_MS = 30_000
const CLAIM_POLL_MS = 20

/**
 * Claims a digest before a push puts its file in place, waiting while a deletion of that digest
 * removes the old file (otherwise it could remove the new one). Release it in the transaction
 * that inserts the blob's row and link (`q.releaseClaim`).
 */
export async function claimDigest(db: Kysely<Database>, digest: string): Promise<string> {
  const id = randomUUID()
  const deadline = Date.now() + CLAIM_WAIT_MS
  while (!(await q.claimBlob(db, id, digest))) {
    if (Date.now() > deadline)
      throw new WharfError('UNAVAILABLE', 'the blob is being deleted by garbage collection; retry the upload', { digest, retryAfter: 5 })
    await sleep(CLAIM_POLL_MS)
  }
  return id
}

/** Parses a single `Range: bytes=...` header against a size. Undefined means "whole blob". */
export function parseRange(header: string | undefined, size: number): ByteRange | undefined {
  if (header === undefined) return undefined
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim())
  const unsatisfiable = () => new WharfError('RANGE_NOT_SATISFIABLE', 'requested range not satisfiable', { range: header, size })
  if (!m || (m[1] === '' && m[2] === '')) throw unsatisfiable()
  let start: number
  let end: number
  if (m[1] === '') {
    const suffix = Number(m[2])
    if (suffix === 0) throw unsatisfiable()
    start = Math.max(0, size - suffix)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
  }
  if (start > end || start >= size) throw unsatisfiable()
  return { start, end }
}
