// The BlobDriver over an S3-compatible object store (AWS S3, Swift's s3api, Ceph RGW, ...).
//
// Committed files are plain objects at `<prefix><path>`. A file written through `appender` (an
// upload's temp file, a job log, an artifact before its commit) is a small JSON manifest at its
// key, listing segment objects at `<prefix><path>~seg/<start offset>`: S3 cannot append to an
// object, nor read the parts of a multipart upload before it completes, so the bytes of an
// unfinished file are kept as ordinary objects that a later request (after a restart, or on
// another node) can read, hash again and continue. Every segment but the last is at least 5 MiB,
// S3's smallest multipart part: an appender that continues a file whose last segment is smaller
// reads that segment back and writes it again with the new bytes. `commit` then assembles the
// segments at the final key on the server: one CopyObject, or a multipart upload whose parts are
// UploadPartCopy requests, one per segment. No byte of a blob passes through Wharf twice.
//
// Several nodes may share the bucket: everything a file's next writer or reader needs is in it.
// The caller keeps two writers off one file (upload sessions: a claim in the database); the
// `live` and `moved` maps only serve this process's positional readers, and a multipart upload
// left by a process killed mid-commit is found by listing (`abortIncomplete`).
import { createHash } from 'node:crypto'
import { Readable, Writable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCopyCommand,
  type GetObjectCommandOutput,
} from '@aws-sdk/client-s3'
import { getSignedUrl } from '@aws-sdk/s3-request-presigner'
import { PathNotFoundError, type BlobDriver, type FileInfo, type PositionalReader } from './driver.ts'
import { isLoopback } from '../core/hosts.ts'

export interface S3DriverOptions {
  /** http(s)://host[:port] of an S3-compatible service; AWS's regional endpoint when unset. */
  endpoint?: string | undefined
  region: string
  bucket: string
  /** Key prefix every path is stored under ('' or ending in '/'). */
  prefix: string
  /** Both or neither; neither takes the SDK's default chain (AWS_* variables, instance roles). */
  accessKeyId?: string | undefined
  secretAccessKey?: string | undefined
  /** Bucket in the path (`http://host/bucket/key`), as most S3-compatible servers want. */
  forcePathStyle: boolean
  /** Seconds a presigned blob GET stays valid; presigned redirects are off when unset. */
  redirectSeconds?: number | undefined
  /** Segment (and so multipart part) size; at least 5 MiB. */
  partSize?: number | undefined
}

/** S3's smallest multipart part (every part but the last). */
const MIN_PART = 5 << 20
/** Larger segments mean fewer requests; 10,000 parts of 16 MiB allow blobs up to 156 GiB. */
const DEFAULT_PART = 16 << 20
/** S3's largest part and largest single CopyObject. */
const MAX_COPY = 5 * 1024 ** 3
/** Segments of one writer uploaded at once (each held in memory until stored). */
const UPLOADS_IN_FLIGHT = 3
/** Part copies of one commit run at once. */
const COPIES_IN_FLIGHT = 4
const SEG = '~seg/'
const MANIFEST_META = 'wharf-manifest'
const SIZE_META = 'wharf-size'
/** Committed temp paths remembered for positional readers opened before the commit. */
const MOVED_MAX = 1024
/** Tries of a segment upload (the SDK does not retry a streamed body). */
const UPLOAD_ATTEMPTS = 3

interface Segment {
  start: number
  size: number
}

interface Manifest {
  size: number
  segments: Segment[]
}

/** A file being written in this process: its segments, those not yet stored still in memory (the chunks as written). */
interface LiveFile {
  segments: Array<Segment & { data?: Buffer[] | undefined }>
  pending: Buffer[]
  pendingStart: number
}

export function createS3Driver(opts: S3DriverOptions): BlobDriver {
  const partSize = opts.partSize ?? DEFAULT_PART
  if (partSize < MIN_PART) throw new Error(`S3 part size must be at least ${MIN_PART} bytes`)
  // Bodies are hashed for the signature (a second pass over every byte) only where the signature is what protects
  // them: over plain http to another host, where the store then rejects bytes altered on the way. Over https TLS
  // protects them, and on loopback nothing lies between; the registry verified the content's digest before that.
  const endpoint = opts.endpoint ? new URL(opts.endpoint) : undefined
  const signPayload = endpoint?.protocol === 'http:' && !isLoopback(endpoint.hostname)
  const client = new S3Client({
    region: opts.region,
    forcePathStyle: opts.forcePathStyle,
    ...(opts.endpoint ? { endpoint: opts.endpoint } : {}),
    ...(opts.accessKeyId && opts.secretAccessKey
      ? { credentials: { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey } }
      : {}),
    // Checksums the service does not require cost a pass over every byte (and not every S3-compatible server takes them).
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    // The SDK sends `Expect: 100-continue` with bodies of 2 MB and more, and for such a request it opens a new
    // connection that is not kept alive (and then waits for the 100 before the body): a TCP connection, on https a
    // TLS handshake too, for every segment. Without it, segments go over the pooled keep-alive connections.
    expectContinueHeader: false,
  })
  client.middlewareStack.add(
    (next) => async (args) => {
      const req = args.request as { headers?: Record<string, string>; query?: Record<string, unknown>; body?: unknown }
      if (req.headers) {
        if (!signPayload && !req.headers['x-amz-content-sha256']) req.headers['x-amz-content-sha256'] = 'UNSIGNED-PAYLOAD'
        // Multi-object delete needs Content-MD5 on servers that predate S3's newer checksums.
        if (req.query && 'delete' in req.query && typeof req.body === 'string')
          req.headers['content-md5'] = createHash('md5').update(req.body).digest('base64')
      }
      return next(args)
    },
    { step: 'build', name: 'wharfPayloadHeaders' },
  )
  const Bucket = opts.bucket
  const live = new Map<string, LiveFile>()
  const moved = new Map<string, string>()
  // The manifest a durable writer of this process saved last, per path: a commit right after it (`synced`) needs no
  // GET to learn the segments. Any other writer, commit or delete of the path forgets it.
  const saved = new Map<string, Manifest>()

  // Paths come from storage/paths.ts; still, none may climb out of the prefix or name a segment.
  const key = (p: string, allowRoot = false): string => {
    if (p === '' && allowRoot) return opts.prefix
    if (p === '' || p.startsWith('/') || p.includes(SEG) || p.split('/').some((s) => s === '' || s === '.' || s === '..'))
      throw new Error(`path escapes the storage root: ${p}`)
    return opts.prefix + p
  }
  const segKey = (k: string, start: number) => `${k}${SEG}${String(start).padStart(16, '0')}`

  const head = async (k: string) => {
    try {
      return await client.send(new HeadObjectCommand({ Bucket, Key: k }))
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw e
    }
  }
  const get = async (k: string, range?: string): Promise<GetObjectCommandOutput | undefined> => {
    try {
      return await client.send(new GetObjectCommand({ Bucket, Key: k, ...(range ? { Range: range } : {}) }))
    } catch (e) {
      if (isNotFound(e)) return undefined
      throw e
    }
  }
  /** What is stored at a key: a manifest (an unfinished file), a plain object, or nothing. */
  const probe = async (k: string): Promise<{ manifest: Manifest } | { plain: number } | undefined> => {
    const res = await get(k)
    if (!res) return undefined
    if (!res.Metadata?.[MANIFEST_META]) {
      // Not read: only its existence and size matter here.
      ;(res.Body as Readable).destroy()
      return { plain: res.ContentLength ?? 0 }
    }
    return { manifest: JSON.parse(Buffer.from(await res.Body!.transformToByteArray()).toString('utf8')) as Manifest }
  }
  const readManifest = async (k: string): Promise<Manifest | undefined> => {
    const found = await probe(k)
    return found && 'manifest' in found ? found.manifest : undefined
  }
  const writeManifest = (k: string, m: Manifest) =>
    client.send(
      new PutObjectCommand({
        Bucket,
        Key: k,
        Body: JSON.stringify(m),
        ContentType: 'application/json',
        Metadata: { [MANIFEST_META]: '1', [SIZE_META]: String(m.size) },
      }),
    )
  /** Reads [offset, offset+length) of an object into `buf` (fewer bytes at its end). */
  const readRange = async (k: string, buf: Buffer, offset: number, length: number): Promise<number | undefined> => {
    let res: GetObjectCommandOutput | undefined
    try {
      res = await get(k, `bytes=${offset}-${offset + length - 1}`)
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 416) return 0
      throw e
    }
    if (!res) return undefined
    let n = 0
    for await (const c of res.Body as Readable) {
      const chunk = c as Buffer
      const take = Math.min(chunk.length, length - n)
      chunk.copy(buf, n, 0, take)
      n += take
    }
    return n
  }
  const deleteKeys = async (keys: string[]) => {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000)
      const res = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true } }))
      const failed = (res.Errors ?? []).filter((e) => e.Code !== 'NoSuchKey')
      if (failed.length) throw new Error(`S3 delete failed for ${failed[0]!.Key}: ${failed[0]!.Code} ${failed[0]!.Message ?? ''}`)
    }
  }
  async function* listKeys(prefix: string) {
    let token: string | undefined
    do {
      const res = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken: token }))
      for (const o of res.Contents ?? []) yield o
      token = res.IsTruncated ? res.NextContinuationToken : undefined
    } while (token)
  }
  const remember = (from: string, to: string) => {
    moved.set(from, to)
    if (moved.size > MOVED_MAX) moved.delete(moved.keys().next().value!)
  }

  /** A stream of a manifest's bytes [from, to), segment by segment. */
  const segmentStream = (k: string, m: Manifest, from: number, to: number): Readable =>
    Readable.from(
      (async function* () {
        for (const s of m.segments) {
          const a = Math.max(from, s.start)
          const b = Math.min(to, s.start + s.size)
          if (a >= b) continue
          const res = await get(segKey(k, s.start), `bytes=${a - s.start}-${b - s.start - 1}`)
          if (!res) throw new PathNotFoundError(k.slice(opts.prefix.length))
          yield* res.Body as Readable
        }
      })(),
      { objectMode: false },
    )

  /** Whole file or a range: one GET for a plain object; a manifest is read and its segments streamed. */
  const open = async (p: string, range?: { offset: number; length?: number | undefined }): Promise<Readable> => {
    const k = key(p)
    const from = range?.offset ?? 0
    if (range?.length === 0) {
      if (!(await head(k))) throw new PathNotFoundError(p)
      return Readable.from([])
    }
    const spec = range ? `bytes=${from}-${range.length !== undefined ? from + range.length - 1 : ''}` : undefined
    let res: GetObjectCommandOutput | undefined
    try {
      res = await get(k, spec)
    } catch (e) {
      if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode !== 416) throw e
      // A start at or past the end of the object: nothing to send (as a file read there), unless the
      // object is a manifest, whose file is longer than the manifest itself.
      const found = await probe(k)
      if (!found) throw new PathNotFoundError(p)
      if ('plain' in found) return Readable.from([])
      const to = range?.length !== undefined ? Math.min(found.manifest.size, from + range.length) : found.manifest.size
      return segmentStream(k, found.manifest, from, to)
    }
    if (!res) throw new PathNotFoundError(p)
    if (!res.Metadata?.[MANIFEST_META]) return res.Body as Readable
    ;(res.Body as Readable).destroy()
    const m = await readManifest(k)
    if (!m) throw new PathNotFoundError(p)
    const to = range?.length !== undefined ? Math.min(m.size, from + range.length) : m.size
    return segmentStream(k, m, from, to)
  }

  return {
    kind: 's3',
    appenderWritesThrough: false,
    async stat(p) {
      const h = await head(key(p))
      if (!h) return undefined
      const logical = h.Metadata?.[MANIFEST_META] ? Number(h.Metadata[SIZE_META]) : (h.ContentLength ?? 0)
      return { path: p, size: logical, modified: h.LastModified ?? new Date(0) }
    },
    reader: (p, range) => open(p, range),
    async openForSend(p, range) {
      const src = await open(p, range)
      return (dest) => sendTo(src, dest)
    },
    async openPositional(p) {
      const k = key(p)
      let m: Manifest | undefined
      let plain = false
      if (!live.has(p)) {
        const found = await probe(k)
        if (!found) throw new PathNotFoundError(p)
        if ('manifest' in found) m = found.manifest
        else plain = true
      }
      return {
        async read(buffer, length, position) {
          for (let attempt = 0; attempt < 5; attempt++) {
            const target = moved.get(p)
            if (plain || target !== undefined)
              return (await readRange(target !== undefined ? key(target) : k, buffer, position, length)) ?? 0
            const f = live.get(p)
            if (f) {
              const s = f.segments.find((x) => position >= x.start && position < x.start + x.size)
              if (s) {
                const n = Math.min(length, s.start + s.size - position)
                if (s.data) return copyFrom(s.data, position - s.start, buffer, n)
                const got = await readRange(segKey(k, s.start), buffer, position - s.start, n)
                if (got !== undefined) return got
                continue
              }
              let at = f.pendingStart
              for (const b of f.pending) {
                if (position >= at && position < at + b.length)
                  return b.copy(buffer, 0, position - at, Math.min(b.length, position - at + length))
                at += b.length
              }
              return 0
            }
            // Past the manifest read last: its writer may have stored more since.
            if (!m || position >= m.size) {
              const found = await probe(k)
              if (!found) {
                if (moved.has(p)) continue
                return 0
              }
              if ('plain' in found) {
                plain = true
                continue
              }
              m = found.manifest
              if (position >= m.size) return 0
            }
            const s = m.segments.find((x) => position >= x.start && position < x.start + x.size)!
            const got = await readRange(segKey(k, s.start), buffer, position - s.start, Math.min(length, s.start + s.size - position))
            if (got !== undefined) return got
            // The segment went away: the file was committed (or started over) meanwhile.
            m = undefined
          }
          throw new Error(`${p} changed while it was read`)
        },
        close: async () => {},
      } satisfies PositionalReader
    },
    async appender(p, offset, opts) {
      const k = key(p)
      const m = (await readManifest(k)) ?? { size: 0, segments: [] }
      const keep = m.segments.filter((s) => s.start + s.size <= offset)
      const cut = m.segments.find((s) => s.start < offset && s.start + s.size > offset)
      const dropped = m.segments.filter((s) => s !== cut && !keep.includes(s))
      const pending: Buffer[] = []
      let pendingStart = keep.reduce((n, s) => n + s.size, 0)
      // A partly kept segment, or a last one too small to be a part, is taken back into memory and rewritten.
      const last = keep.at(-1)
      if (cut) {
        const res = await get(segKey(k, cut.start), `bytes=0-${offset - cut.start - 1}`)
        if (!res) throw new Error(`a segment of ${p} is missing`)
        pending.push(Buffer.from(await res.Body!.transformToByteArray()))
        pendingStart = cut.start
      } else if (last && last.size < MIN_PART && last.start + last.size === offset) {
        const res = await get(segKey(k, last.start))
        if (!res) throw new Error(`a segment of ${p} is missing`)
        pending.push(Buffer.from(await res.Body!.transformToByteArray()))
        keep.pop()
        pendingStart = last.start
      }
      if (offset > pendingStart + pending.reduce((n, b) => n + b.length, 0))
        throw new Error(`cannot append to ${p} at ${offset}: it holds fewer bytes`)
      // Segments past the offset start at other offsets than the new ones may: removed now, not overwritten.
      if (dropped.length) await deleteKeys(dropped.map((s) => segKey(k, s.start)))
      const file: LiveFile = { segments: keep.map((s) => ({ ...s })), pending, pendingStart }
      live.set(p, file)
      saved.delete(p)
      return new SegmentWriter(file, partSize, {
        async upload(start, chunks, size) {
          // A signed payload is hashed by the SDK, which takes only a buffer for that (and then retries by itself).
          if (signPayload) {
            await client.send(
              new PutObjectCommand({ Bucket, Key: segKey(k, start), Body: Buffer.concat(chunks, size), ContentLength: size }),
            )
            return
          }
          // The chunks go out as they arrived: gathering them into one buffer cost a copy of every byte and a large
          // allocation per segment (each one more push towards a full garbage collection).
          for (let attempt = 1; ; attempt++) {
            try {
              await client.send(
                new PutObjectCommand({
                  Bucket,
                  Key: segKey(k, start),
                  Body: Readable.from(chunks, { objectMode: false }),
                  ContentLength: size,
                }),
              )
              return
            } catch (e) {
              const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode
              if (attempt >= UPLOAD_ATTEMPTS || (status !== undefined && status < 500 && status !== 408 && status !== 429)) throw e
              await sleep(100 * 2 ** attempt)
            }
          }
        },
        async save(segments) {
          const m = { size: segments.reduce((n, s) => n + s.size, 0), segments }
          await writeManifest(k, m)
          if (!opts?.durable) return
          saved.delete(p)
          saved.set(p, m)
          if (saved.size > MOVED_MAX) saved.delete(saved.keys().next().value!)
        },
        closed: () => {
          if (live.get(p) === file) live.delete(p)
        },
      })
    },
    async commit(from, to, opts) {
      const src = key(from)
      const dst = key(to)
      const mine = opts?.synced ? saved.get(from) : undefined
      saved.delete(from)
      const found = mine ? { manifest: mine } : await probe(src)
      if (!found) throw new PathNotFoundError(from)
      if ('manifest' in found) {
        const segs = found.manifest.segments
        if (segs.length === 0) await client.send(new PutObjectCommand({ Bucket, Key: dst, Body: Buffer.alloc(0) }))
        else if (segs.length === 1)
          await client.send(new CopyObjectCommand({ Bucket, Key: dst, CopySource: copySource(Bucket, segKey(src, segs[0]!.start)) }))
        else
          await multipartCopy(
            dst,
            segs.map((s) => ({ key: segKey(src, s.start), offset: 0, size: s.size })),
          )
        await deleteKeys([src, ...segs.map((s) => segKey(src, s.start))])
      } else {
        const size = found.plain
        if (size <= MAX_COPY) await client.send(new CopyObjectCommand({ Bucket, Key: dst, CopySource: copySource(Bucket, src) }))
        else {
          const parts = []
          for (let o = 0; o < size; o += MAX_COPY) parts.push({ key: src, offset: o, size: Math.min(MAX_COPY, size - o) })
          await multipartCopy(dst, parts)
        }
        await deleteKeys([src])
      }
      remember(from, to)
    },
    async delete(p) {
      const k = key(p)
      saved.delete(p)
      const doomed: string[] = []
      for await (const o of listKeys(k)) {
        const ok = o.Key!
        if (ok === k || ok.startsWith(`${k}/`) || ok.startsWith(`${k}${SEG}`)) doomed.push(ok)
      }
      await deleteKeys(doomed)
    },
    async *list(prefix) {
      const base = key(prefix, true)
      // Keys come in order, a file's segments right after its manifest. Segments without a manifest
      // (a writer that died before its first one) are listed as their file, so sweeps find and delete them.
      // A file's time is its newest key's: a writer on another node adds segments long before its manifest.
      let current: FileInfo | undefined
      for await (const o of listKeys(prefix === '' ? base : `${base}/`)) {
        const k = o.Key!
        const seg = k.indexOf(SEG)
        const path = (seg < 0 ? k : k.slice(0, seg)).slice(opts.prefix.length)
        const modified = o.LastModified ?? new Date(0)
        if (current?.path === path) {
          if (modified > current.modified) current.modified = modified
          continue
        }
        if (current) yield current
        current = { path, size: seg < 0 ? (o.Size ?? 0) : 0, modified }
      }
      if (current) yield current
    },
    async abortIncomplete(before) {
      let n = 0
      let keyMarker: string | undefined
      let uploadIdMarker: string | undefined
      do {
        const res = await client.send(
          new ListMultipartUploadsCommand({ Bucket, Prefix: opts.prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        )
        for (const u of res.Uploads ?? []) {
          if (!u.Key || !u.UploadId || !u.Initiated || u.Initiated >= before) continue
          await client.send(new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId })).catch((e) => {
            // Completed or aborted meanwhile (by the commit that started it, or a sweep on another node).
            if (!isNotFound(e) && (e as { name?: string }).name !== 'NoSuchUpload') throw e
          })
          n++
        }
        keyMarker = res.IsTruncated ? res.NextKeyMarker : undefined
        uploadIdMarker = res.IsTruncated ? res.NextUploadIdMarker : undefined
      } while (keyMarker)
      return n
    },
    async redirectUrl(p) {
      if (opts.redirectSeconds === undefined) return undefined
      return getSignedUrl(client, new GetObjectCommand({ Bucket, Key: key(p) }), { expiresIn: opts.redirectSeconds })
    },
  }

  /** Assembles `dst` on the server from ranges of stored objects (every range but the last ≥ 5 MiB). */
  async function multipartCopy(dst: string, parts: Array<{ key: string; offset: number; size: number }>): Promise<void> {
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: dst }))
    try {
      const etags: string[] = new Array(parts.length)
      let next = 0
      const worker = async () => {
        while (next < parts.length) {
          const i = next++
          const part = parts[i]!
          const res = await client.send(
            new UploadPartCopyCommand({
              Bucket,
              Key: dst,
              UploadId,
              PartNumber: i + 1,
              CopySource: copySource(Bucket, part.key),
              CopySourceRange: `bytes=${part.offset}-${part.offset + part.size - 1}`,
            }),
          )
          etags[i] = res.CopyPartResult!.ETag!
        }
      }
      await Promise.all(Array.from({ length: Math.min(COPIES_IN_FLIGHT, parts.length) }, worker))
      await client.send(
        new CompleteMultipartUploadCommand({
          Bucket,
          Key: dst,
          UploadId,
          MultipartUpload: { Parts: etags.map((ETag, i) => ({ ETag, PartNumber: i + 1 })) },
        }),
      )
    } catch (e) {
      await client.send(new AbortMultipartUploadCommand({ Bucket, Key: dst, UploadId })).catch(() => {})
      throw e
    }
  }
}

/**
 * The appender's stream: bytes gather in memory and go out as segments of `partSize`, a few
 * uploads at once (a write waits only when that many are in flight). On end, the rest becomes the
 * last segment and the manifest is written: only then do other requests see the new bytes. A
 * writer destroyed midway (the client went away) still stores what it received, as a chunk that
 * broke off keeps its bytes on a disk.
 */
class SegmentWriter extends Writable {
  private readonly file: LiveFile
  private readonly partSize: number
  private readonly io: {
    upload(start: number, chunks: Buffer[], size: number): Promise<void>
    save(segments: Segment[]): Promise<void>
    closed(): void
  }
  private pendingBytes: number
  private readonly inflight = new Set<Promise<void>>()
  private failure: Error | undefined
  private saved = false

  constructor(file: LiveFile, partSize: number, io: SegmentWriter['io']) {
    super({ highWaterMark: 1 << 20 })
    this.file = file
    this.partSize = partSize
    this.io = io
    this.pendingBytes = file.pending.reduce((n, b) => n + b.length, 0)
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (this.failure) {
      cb(this.failure)
      return
    }
    this.file.pending.push(chunk)
    this.pendingBytes += chunk.length
    while (this.pendingBytes >= this.partSize) this.seal(this.partSize)
    if (this.inflight.size < UPLOADS_IN_FLIGHT) {
      cb()
      return
    }
    Promise.race(this.inflight).then(
      () => cb(this.failure),
      () => cb(this.failure),
    )
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.flush().then(
      () => cb(),
      (e: Error) => cb(e),
    )
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const done = () => {
      this.io.closed()
      cb(err)
    }
    // Aborted: the caller no longer owns the file (driver.ts: appender), so neither the rest nor a manifest is stored.
    if (this.saved || this.failure || err?.name === 'AbortError') done()
    else this.flush().then(done, done)
  }

  private async flush(): Promise<void> {
    if (this.pendingBytes > 0) this.seal(this.pendingBytes)
    while (this.inflight.size) await Promise.allSettled(this.inflight)
    if (this.failure) throw this.failure
    await this.io.save(this.file.segments.map(({ start, size }) => ({ start, size })))
    this.saved = true
    this.io.closed()
  }

  /** Cuts the first `n` pending bytes into a segment (their chunks, split at most once, not copied) and starts its upload. */
  private seal(n: number): void {
    const data: Buffer[] = []
    let filled = 0
    while (filled < n) {
      const b = this.file.pending[0]!
      const take = Math.min(b.length, n - filled)
      data.push(take === b.length ? b : b.subarray(0, take))
      filled += take
      if (take === b.length) this.file.pending.shift()
      else this.file.pending[0] = b.subarray(take)
    }
    this.pendingBytes -= n
    const seg = { start: this.file.pendingStart, size: n, data: data as Buffer[] | undefined }
    this.file.pendingStart += n
    this.file.segments.push(seg)
    const up: Promise<void> = this.io.upload(seg.start, data, n).then(
      () => {
        seg.data = undefined
        this.inflight.delete(up)
      },
      (e: Error) => {
        this.failure ??= e
        this.inflight.delete(up)
      },
    )
    this.inflight.add(up)
  }
}

/**
 * Pipes `src` into `dest` with back-pressure (stream.pipe: no per-chunk promise), resolving once the
 * last byte was handed to `dest`; rejects, and stops reading, when `dest` closes first or `src` fails.
 */
function sendTo(src: Readable, dest: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (err?: Error) => {
      src.off('end', onEnd)
      src.off('error', settle)
      dest.off('close', onClose)
      src.unpipe(dest)
      if (err) {
        src.destroy()
        reject(err)
      } else resolve()
    }
    const onEnd = () => settle()
    const onClose = () => settle(new Error('destination closed'))
    src.once('end', onEnd)
    src.once('error', settle)
    dest.once('close', onClose)
    src.pipe(dest, { end: false })
  })
}

/** Copies up to `n` bytes from `offset` of the concatenated `chunks` into `dest`; returns the count. */
function copyFrom(chunks: Buffer[], offset: number, dest: Buffer, n: number): number {
  let at = 0
  let copied = 0
  for (const c of chunks) {
    if (copied === n) break
    if (offset + copied < at + c.length) copied += c.copy(dest, copied, offset + copied - at, Math.min(c.length, offset + n - at))
    at += c.length
  }
  return copied
}

function copySource(bucket: string, k: string): string {
  return `${bucket}/${k.split('/').map(encodeURIComponent).join('/')}`
}

function isNotFound(e: unknown): boolean {
  const err = e as { name?: string; $metadata?: { httpStatusCode?: number } }
  return err.name === 'NoSuchKey' || err.name === 'NotFound' || err.$metadata?.httpStatusCode === 404
}
