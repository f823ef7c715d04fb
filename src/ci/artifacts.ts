// Job artifacts: archives (and reports) a runner uploads for a job, streamed to
// `<ci>/artifacts/<job id>/<filename>` and recorded in `ci_job_artifacts` (one per job and type).
import { createHash, randomUUID } from 'node:crypto'
import { basename } from 'node:path'
import { PassThrough, Transform, type Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { createGunzip } from 'node:zlib'
import type { Kysely } from 'kysely'
import yauzl from 'yauzl'
import { WharfError } from '../core/errors.ts'
import { nowIso } from '../metadata/db.ts'
import type { CiJob, CiJobArtifact, Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import { artifactPath } from '../storage/paths.ts'
import { ARTIFACT_FORMATS } from '../runner/protocol.ts'
import { parseDuration } from './config/duration.ts'
import { DOTENV_LIMITS, DotenvError, parseDotenv } from './dotenv.ts'
import * as rq from './runner-queries.ts'

export const ARTIFACT_LIMITS = {
  /** Largest upload; GitLab's default is 100 MiB, raised because image build contexts pass through artifacts. */
  bytes: 1 << 30,
}

/** `expire_in` when neither the job nor the upload sets one (GitLab's instance default). */
export const DEFAULT_EXPIRE_SECONDS = 30 * 86_400

/** An artifacts upload over the limit (the route turns the multipart parser's own cut-off into this too). */
export function artifactsTooLarge(limit: number): WharfError {
  return new WharfError('TOO_LARGE', `artifacts are larger than the ${limit}-byte limit`, { limit })
}

/** A file name safe to use as one path segment. */
export function safeFilename(name: string | undefined, fallback: string): string {
  const base = basename((name ?? '').replaceAll('\\', '/'))
  const clean = base.replace(/[^A-Za-z0-9._+-]/g, '_').replace(/^\.+/, '')
  return clean.length > 0 && clean.length <= 255 ? clean : fallback
}

/** When an artifact expires: `expire_in` as GitLab reads it ('never' keeps it). */
export function expireAt(expireIn: string | undefined | null, now = Date.now()): string | null {
  if (expireIn === undefined || expireIn === null || expireIn.trim() === '')
    return new Date(now + DEFAULT_EXPIRE_SECONDS * 1000).toISOString()
  if (expireIn.trim().toLowerCase() === 'never') return null
  const s = parseDuration(expireIn)
  if (s === undefined) throw new WharfError('BAD_REQUEST', `expire_in is not a duration: ${expireIn}`, {})
  return new Date(now + s * 1000).toISOString()
}

export class Artifacts {
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  readonly maxBytes: number

  constructor(db: Kysely<Database>, driver: BlobDriver, maxBytes = ARTIFACT_LIMITS.bytes) {
    this.db = db
    this.driver = driver
    this.maxBytes = maxBytes
  }

  /** The artifact's path in storage. */
  path(a: Pick<CiJobArtifact, 'job_id' | 'filename'>): string {
    return artifactPath(a.job_id, a.filename)
  }

  /**
   * Streams an upload to storage (temp file, then commit), hashing as it goes; a stream that exceeds
   * the limit, or reports it was cut by the multipart parser, is discarded with TOO_LARGE.
   */
  async store(
    job: CiJob,
    input: {
      stream: Readable
      filename: string | undefined
      fileType: string | undefined
      format: string | undefined
      expireIn: string | undefined | null
      truncated?: () => boolean
    },
  ): Promise<CiJobArtifact> {
    const fileType = input.fileType && /^[a-z_]{1,64}$/.test(input.fileType) ? input.fileType : 'archive'
    const format = input.format ?? (fileType === 'archive' ? 'zip' : 'gzip')
    if (!(ARTIFACT_FORMATS as readonly string[]).includes(format))
      throw new WharfError('BAD_REQUEST', `artifact_format must be one of ${ARTIFACT_FORMATS.join(', ')}`, {})
    const expire = expireAt(input.expireIn)
    const fallback = fileType === 'archive' ? 'artifacts.zip' : `${fileType}.${format === 'gzip' ? 'gz' : format}`
    const filename = safeFilename(input.filename, fallback)
    const tmp = artifactPath(job.id, `.upload-${randomUUID()}`)
    const hash = createHash('sha256')
    let size = 0
    const limit = this.maxBytes
    const meter = new Transform({
      transform(chunk: Buffer, _enc, cb) {
        size += chunk.length
        if (size > limit) return cb(artifactsTooLarge(limit))
        hash.update(chunk)
        cb(null, chunk)
      },
    })
    try {
      await pipeline(input.stream, meter, await this.driver.appender(tmp, 0))
      if (input.truncated?.()) throw artifactsTooLarge(limit)
    } catch (e) {
      await this.driver.delete(tmp)
      throw e
    }
    // A new upload of the same type replaces the old one.
    const old = await rq.findArtifact(this.db, job.id, fileType)
    await this.driver.commit(tmp, this.path({ job_id: job.id, filename }))
    if (old && old.filename !== filename) await this.driver.delete(this.path(old))
    const row = await rq.insertArtifact(this.db, {
      job_id: job.id,
      project_id: job.project_id,
      file_type: fileType,
      file_format: format,
      filename,
      size,
      sha256: hash.digest('hex'),
      expire_at: expire,
    })
    // A dotenv report GitLab would refuse is refused at upload (the job fails), not when a later job needs it.
    if (fileType === 'dotenv') {
      try {
        await this.dotenv(row)
      } catch (e) {
        await rq.deleteArtifact(this.db, row.id)
        await this.driver.delete(this.path(row))
        throw e
      }
    }
    return row
  }

  /** The variables of a `dotenv` report (gzip or plain), read up to GitLab's size limit. BAD_REQUEST when GitLab would refuse it. */
  async dotenv(a: CiJobArtifact): Promise<Array<{ key: string; value: string }>> {
    const src = await this.open(a)
    const chunks: Buffer[] = []
    let size = 0
    try {
      for await (const chunk of (a.file_format === 'gzip' ? src.pipe(createGunzip()) : src) as AsyncIterable<Buffer>) {
        size += chunk.length
        chunks.push(chunk)
        if (size > DOTENV_LIMITS.bytes) break // enough to say it is too big
      }
      return parseDotenv(Buffer.concat(chunks).toString('utf8'))
    } catch (e) {
      if (e instanceof DotenvError) throw new WharfError('BAD_REQUEST', e.message, { fileType: 'dotenv' })
      if (String((e as NodeJS.ErrnoException).code).startsWith('Z_')) {
        throw new WharfError('BAD_REQUEST', 'Invalid Format: the dotenv report is not a readable gzip file', { fileType: 'dotenv' })
      }
      throw e
    } finally {
      src.destroy()
    }
  }

  find(jobId: number, fileType = 'archive'): Promise<CiJobArtifact | undefined> {
    return rq.findArtifact(this.db, jobId, fileType)
  }

  forJobs(jobIds: number[]): Promise<CiJobArtifact[]> {
    return rq.jobArtifacts(this.db, jobIds)
  }

  open(a: CiJobArtifact): Promise<Readable> {
    return this.driver.reader(this.path(a))
  }

  /**
   * One file inside a zip archive, streamed from the archive in storage (yauzl reads only its central
   * directory and that entry, through ranged reads). NOT_FOUND when the archive has no such file or is not a readable zip.
   */
  async entry(a: CiJobArtifact, path: string): Promise<{ stream: Readable; size: number; name: string }> {
    const wanted = path.replace(/^\/+/, '')
    const missing = () => new WharfError('NOT_FOUND', '404 Artifact Not Found', { path: wanted })
    if (a.file_format !== 'zip' || wanted === '' || wanted.endsWith('/')) throw missing()
    const zf = await new Promise<yauzl.ZipFile>((resolve, reject) =>
      yauzl.fromRandomAccessReader(
        new StorageRangeReader(this.driver, this.path(a)),
        a.size,
        { lazyEntries: true, autoClose: false },
        (err, z) => (err ? reject(missing()) : resolve(z!)),
      ),
    )
    try {
      const entry = await new Promise<yauzl.Entry | undefined>((resolve, reject) => {
        zf.on('entry', (e: yauzl.Entry) => (e.fileName.replaceAll('\\', '/') === wanted ? resolve(e) : zf.readEntry()))
        zf.on('end', () => resolve(undefined))
        zf.on('error', () => reject(missing()))
        zf.readEntry()
      })
      if (!entry) throw missing()
      const stream = await new Promise<Readable>((resolve, reject) =>
        zf.openReadStream(entry, (err, s) => (err ? reject(missing()) : resolve(s!))),
      )
      return { stream, size: entry.uncompressedSize, name: basename(wanted) }
    } finally {
      // The open entry stream keeps the file open until it ends; closing here releases it then.
      zf.close()
    }
  }

  /** Keeps a job's artifacts past their expiry. */
  keep(jobId: number): Promise<void> {
    return rq.keepArtifacts(this.db, jobId)
  }

  /** Deletes every artifact of a job (rows first, so nothing points at a removed file). */
  async removeAll(jobId: number): Promise<void> {
    for (const a of await rq.jobArtifacts(this.db, [jobId])) {
      await rq.deleteArtifact(this.db, a.id)
      await this.driver.delete(this.path(a))
    }
  }

  /** Deletes artifacts past their expiry; returns how many. */
  async sweepExpired(now = nowIso()): Promise<number> {
    const rows = await rq.expiredArtifacts(this.db, now)
    for (const a of rows) {
      await rq.deleteArtifact(this.db, a.id)
      await this.driver.delete(this.path(a))
    }
    return rows.length
  }
}

/** yauzl's reads of an archive, as ranged reads from storage. */
class StorageRangeReader extends yauzl.RandomAccessReader {
  private readonly driver: BlobDriver
  private readonly path: string

  constructor(driver: BlobDriver, path: string) {
    super()
    this.driver = driver
    this.path = path
  }

  override _readStreamForRange(start: number, end: number): Readable {
    // yauzl wants the stream at once; the storage read opens asynchronously.
    const out = new PassThrough()
    this.driver.reader(this.path, { offset: start, length: end - start }).then(
      (src) => pipeline(src, out).catch(() => {}),
      (e: Error) => out.destroy(e),
    )
    return out
  }
}
