import type { Kysely } from 'kysely'
import type { Writable } from 'node:stream'
import type { ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { RepoName } from '../core/names.ts'
import type { Database } from '../metadata/schema.ts'
import { PathNotFoundError, type BlobDriver } from '../storage/driver.ts'
import { blobPath } from '../storage/paths.ts'
import * as q from './queries.ts'

export type ByteRange = { start: number; end: number }

/** Reading, linking and unlinking committed blobs. A blob is visible in a repository only through its link. */
export class Blobs {
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  constructor(db: Kysely<Database>, driver: BlobDriver) {
    this.db = db
    this.driver = driver
  }

  /** Size of a blob readable in this repository; BLOB_UNKNOWN otherwise. */
  async stat(name: RepoName, d: ParsedDigest): Promise<number> {
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

  /** Cross-repository mount: links the blob into `name` only if it is linked in `from`. */
  async mount(name: RepoName, from: RepoName, d: ParsedDigest): Promise<boolean> {
    if ((await q.linkedBlobSize(this.db, from, d.digest)) === undefined) return false
    await this.db.transaction().execute(async (trx) => {
      const repositoryId = await q.ensureRepository(trx, name)
      await q.linkBlob(trx, repositoryId, d.digest)
    })
    return true
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
    if ((await q.blobSize(this.db, d.digest)) === undefined || !(await this.driver.stat(blobPath(d)))) return false
    await this.db.transaction().execute(async (trx) => q.linkBlob(trx, await q.ensureRepository(trx, name), d.digest))
    return true
  }

  /** Removes the blob from this repository; the bytes stay for other repositories until garbage collection. */
  async unlink(name: RepoName, d: ParsedDigest): Promise<void> {
    if (!(await q.unlinkBlob(this.db, name, d.digest))) throw new WharfError('BLOB_UNKNOWN', 'blob unknown to registry', { digest: d.digest })
  }
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
