// Backup and restore of a data directory, while the server keeps serving it.
//
// A backup has the data directory's own layout (so a directory backup reads like a data dir):
//
//   wharf.db                          SQLite's online backup of the live database: one snapshot
//   storage/blobs/<alg>/<xx>/<hex>    every blob the snapshot's `blobs` table names, digest-checked
//   git/<id>.git/                     each snapshot project's repository, cloned with `--mirror`
//   ci/traces/, ci/artifacts/         job logs and artifacts
//   tls/                              `wharf tls init`'s CA and certificate, when present
//   wharf-backup.json                 written last: a backup without it is incomplete
//
// Order is what makes it consistent: the database first, then everything it points at. Blob
// files are immutable once committed, so every blob the snapshot lists is on disk; a blob, ref or
// log written after the snapshot is at most extra. A git clone reads the refs once and copies the
// objects they reach, so a repository is never half a push.
import { createHash, type Hash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { copyFile, mkdir, mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import { once } from 'node:events'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import type { Readable, Writable } from 'node:stream'
import { backup as sqliteBackup, DatabaseSync } from 'node:sqlite'
import tar from 'tar-stream'
import { ALGORITHMS, isAlgorithm, parseDigest } from '../core/digest.ts'
import { runGit } from '../git/exec.ts'
import { blobPath } from '../storage/paths.ts'

export const MANIFEST = 'wharf-backup.json'
const FORMAT = 'wharf-backup/1'
/** Pages per backup step: all of them, so the copy is one read transaction (one snapshot) instead of restarting whenever the server writes. */
const ALL_PAGES = 2 ** 31 - 1

/** A backup or restore that cannot go on; the message says why, for the command line. */
export class BackupError extends Error {}

export interface BackupSummary {
  format: string
  createdAt: string
  blobs: number
  blobBytes: number
  repositories: number
  files: number
}

/** Where a backup goes: a directory, or a tar stream. */
interface Sink {
  /** A local directory the database and repositories are written into before `addTree`. */
  staging: string
  /** Adds `size` bytes of the file at `src` as `name`, feeding them to `hash` on the way. */
  addFile(name: string, src: string, size: number, mode: number, hash?: Hash): Promise<void>
  /** Adds `staging/<rel>` (a file or a tree) under the same name. */
  addStaged(rel: string): Promise<void>
  addBytes(name: string, data: Buffer): Promise<void>
  close(): Promise<void>
}

async function emptyOrMissing(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).length === 0
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true
    throw e
  }
}

function readRange(src: string, size: number): Readable {
  // Exactly the size stated (a trace may grow while it is read; a tar header is written first).
  return size === 0 ? createReadStream(src, { start: 0, end: -1 }) : createReadStream(src, { start: 0, end: size - 1 })
}

async function copyCounted(input: Readable, out: Writable, size: number, hash: Hash | undefined, name: string): Promise<void> {
  let seen = 0
  for await (const chunk of input) {
    const b = chunk as Buffer
    seen += b.length
    hash?.update(b)
    if (!out.write(b)) await once(out, 'drain')
  }
  if (seen !== size) throw new BackupError(`${name}: read ${seen} bytes, expected ${size} (the file shrank during the backup)`)
}

async function dirSink(dir: string): Promise<Sink> {
  if (!(await emptyOrMissing(dir))) throw new BackupError(`${dir} is not empty: back up into a new directory`)
  await mkdir(dir, { recursive: true })
  return {
    staging: dir,
    async addFile(name, src, size, mode, hash) {
      const target = join(dir, name)
      await mkdir(dirname(target), { recursive: true })
      const out = createWriteStream(target, { mode })
      await copyCounted(readRange(src, size), out, size, hash, name)
      out.end()
      await once(out, 'close')
    },
    addStaged: async () => {},
    addBytes: (name, data) => writeFile(join(dir, name), data),
    close: async () => {},
  }
}

async function tarSink(out: Writable): Promise<Sink> {
  const pack = tar.pack()
  const done = pipeline(pack, out)
  // Awaited in close(); when the backup fails first, its error is the one reported.
  done.catch(() => {})
  const staging = await mkdtemp(join(tmpdir(), 'wharf-backup-'))
  const entry = (header: Partial<tar.Header> & { name: string }) =>
    new Promise<{ stream: Writable; written: Promise<void> }>((resolve) => {
      let stream!: Writable
      const written = new Promise<void>((ok, fail) => {
        stream = pack.entry(header, (err) => (err ? fail(err) : ok())) as unknown as Writable
      })
      resolve({ stream, written })
    })
  const addFile = async (name: string, src: string, size: number, mode: number, hash?: Hash) => {
    const { stream, written } = await entry({ name, size, mode, type: 'file' })
    await copyCounted(readRange(src, size), stream, size, hash, name)
    stream.end()
    await written
  }
  const addTree = async (rel: string): Promise<void> => {
    const abs = join(staging, rel)
    const st = await stat(abs)
    if (st.isDirectory()) {
      // Empty directories matter: git does not recognise a repository without refs/.
      const { stream, written } = await entry({ name: rel, mode: st.mode & 0o777, type: 'directory' })
      stream.end()
      await written
      for (const n of (await readdir(abs)).sort()) await addTree(`${rel}/${n}`)
    } else if (st.isFile()) {
      await addFile(rel, abs, st.size, st.mode & 0o777)
    }
  }
  return {
    staging,
    addFile,
    async addStaged(rel) {
      await addTree(rel)
      await rm(join(staging, rel), { recursive: true, force: true })
    },
    async addBytes(name, data) {
      const { stream, written } = await entry({ name, size: data.length, mode: 0o644, type: 'file' })
      stream.end(data)
      await written
    },
    async close() {
      pack.finalize()
      await done
      await rm(staging, { recursive: true, force: true })
    },
  }
}

/** Regular files (and with `dirs`, directories first) under `root`, as paths relative to it, sorted; a missing root has none. */
async function walk(root: string, skip: (name: string) => boolean = () => false, dirs = false): Promise<string[]> {
  const out: string[] = []
  const go = async (rel: string) => {
    let names: string[]
    try {
      names = (await readdir(join(root, rel))).sort()
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
      throw e
    }
    for (const n of names) {
      if (skip(n)) continue
      const r = rel ? `${rel}/${n}` : n
      const st = await stat(join(root, r)).catch(() => undefined)
      if (st?.isDirectory()) {
        if (dirs) out.push(`${r}/`)
        await go(r)
      } else if (st?.isFile()) out.push(r)
    }
  }
  await go('')
  return out
}

export interface CreateOptions {
  data: string
  /** A new (or empty) directory, or a stream the tar archive is written to. */
  to: { dir: string } | { tar: Writable }
  log?: (line: string) => void
}

/** Backs up the data directory `data` while a server may be writing to it. */
export async function createBackup(opts: CreateOptions): Promise<BackupSummary> {
  const { data } = opts
  const log = opts.log ?? (() => {})
  const dbPath = join(data, 'wharf.db')
  if (!(await stat(dbPath).catch(() => undefined))?.isFile())
    throw new BackupError(`${data} has no wharf.db: is it a Wharf data directory?`)
  const sink = 'dir' in opts.to ? await dirSink(opts.to.dir) : await tarSink(opts.to.tar)
  let ok = false
  try {
    // 1. The database, in one read transaction of the live file.
    const live = new DatabaseSync(dbPath, { readOnly: true, timeout: 30_000 })
    try {
      await sqliteBackup(live, join(sink.staging, 'wharf.db'), { rate: ALL_PAGES })
    } finally {
      live.close()
    }
    const createdAt = new Date().toISOString()
    log(`database snapshot at ${createdAt}`)
    const snap = new DatabaseSync(join(sink.staging, 'wharf.db'))
    let blobs: Array<{ digest: string; size: number }>
    let projectIds: number[]
    try {
      // The copy inherits WAL mode; a single file is what a backup should hold (the server turns WAL back on).
      snap.exec('PRAGMA journal_mode = DELETE')
      blobs = snap.prepare('SELECT digest, size FROM blobs ORDER BY digest').all() as Array<{ digest: string; size: number }>
      projectIds = (snap.prepare('SELECT id FROM projects ORDER BY id').all() as Array<{ id: number }>).map((r) => r.id)
    } finally {
      snap.close()
    }
    await sink.addStaged('wharf.db')

    // 2. Every blob the snapshot knows, each checked against its digest while copied.
    let blobBytes = 0
    for (const b of blobs) {
      const d = parseDigest(b.digest)
      const rel = `storage/${blobPath(d)}`
      const src = join(data, rel)
      const st = await stat(src).catch(() => undefined)
      if (!st?.isFile())
        throw new BackupError(`blob ${b.digest} is in the database but not on disk (deleted during the backup?); run the backup again`)
      if (st.size !== b.size) throw new BackupError(`blob ${b.digest} is ${st.size} bytes on disk, ${b.size} in the database`)
      const hash = createHash(d.algorithm)
      await sink.addFile(rel, src, b.size, 0o644, hash)
      if (hash.digest('hex') !== d.hex)
        throw new BackupError(`blob ${b.digest} on disk does not match its digest: the data directory is damaged`)
      blobBytes += b.size
    }
    log(`${blobs.length} blobs (${blobBytes} bytes)`)

    // 3. Repositories: a mirror clone through git's own transport is consistent with its refs.
    let repositories = 0
    for (const id of projectIds) {
      const src = join(data, 'git', `${id}.git`)
      if (!(await stat(join(src, 'HEAD')).catch(() => undefined))) continue
      const rel = `git/${id}.git`
      const dst = join(sink.staging, rel)
      await mkdir(dirname(dst), { recursive: true })
      await runGit(['clone', '--quiet', '--mirror', '--no-local', '--template=', src, dst])
      await runGit(['config', '--remove-section', 'remote.origin'], { gitDir: dst })
      await runGit(['config', 'core.logAllRefUpdates', 'true'], { gitDir: dst })
      // HEAD as the project set it (an empty repository's unborn branch included), and the owner stamp.
      await copyFile(join(src, 'HEAD'), join(dst, 'HEAD'))
      await copyFile(join(src, 'wharf-project'), join(dst, 'wharf-project')).catch((e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e
      })
      await sink.addStaged(rel)
      repositories++
    }
    log(`${repositories} git repositories`)

    // 4. CI logs and artifacts (not the uploads in progress), the TLS files and the sealing key
    // (without it, sealed secrets such as webhook tokens could not be read after a restore).
    let files = 0
    for (const sub of ['ci/traces', 'ci/artifacts', 'tls', 'secrets']) {
      for (const rel of await walk(join(data, sub), (n) => n.startsWith('.upload-'))) {
        const src = join(data, sub, rel)
        const st = await stat(src).catch(() => undefined)
        if (!st?.isFile()) continue // a job deleted meanwhile
        await sink.addFile(`${sub}/${rel}`, src, st.size, st.mode & 0o777)
        files++
      }
    }
    log(`${files} CI and TLS files`)

    const summary: BackupSummary = { format: FORMAT, createdAt, blobs: blobs.length, blobBytes, repositories, files }
    await sink.addBytes(MANIFEST, Buffer.from(`${JSON.stringify(summary, null, 2)}\n`))
    await sink.close()
    ok = true
    return summary
  } finally {
    if (!ok && 'tar' in opts.to) await rm(sink.staging, { recursive: true, force: true })
  }
}

// ---- restore ----

const TOP = new Set(['wharf.db', MANIFEST, 'storage', 'git', 'ci', 'tls', 'secrets'])
const BLOB = /^storage\/blobs\/([a-z0-9]+)\/([0-9a-f]{2})\/([0-9a-f]+)$/

/** A backup's entry name, checked: relative, no `..`, under a known top-level name. */
function checkName(name: string): string {
  const clean = name.replace(/\/+$/, '')
  const parts = clean.split('/')
  if (clean === '' || parts.some((p) => p === '' || p === '.' || p === '..') || !TOP.has(parts[0]!)) {
    throw new BackupError(`unexpected entry ${JSON.stringify(name)} in the backup`)
  }
  return clean
}

/** The digest a blob entry must hash to, or undefined for other files. */
function blobDigest(name: string): { algorithm: 'sha256' | 'sha512'; hex: string } | undefined {
  if (!name.startsWith('storage/')) return undefined
  const m = BLOB.exec(name)
  if (!m || !isAlgorithm(m[1]!) || m[3]!.length !== ALGORITHMS[m[1]!] || !m[3]!.startsWith(m[2]!)) {
    throw new BackupError(`unexpected entry ${JSON.stringify(name)} in the backup`)
  }
  return { algorithm: m[1]!, hex: m[3]! }
}

export interface RestoreOptions {
  /** An empty (or missing) data directory. */
  data: string
  from: { dir: string } | { tar: Readable }
  log?: (line: string) => void
}

/**
 * Restores a backup into an empty data directory: every blob is checked against its digest, and
 * the result must be complete (the manifest present, every blob the database lists on disk,
 * the database intact). On failure the data directory is emptied again.
 */
export async function restoreBackup(opts: RestoreOptions): Promise<BackupSummary> {
  const { data } = opts
  const log = opts.log ?? (() => {})
  if (!(await emptyOrMissing(data))) throw new BackupError(`${data} is not empty: restore into a new data directory`)
  await mkdir(data, { recursive: true })
  let ok = false
  try {
    let manifest: Buffer | undefined
    const write = async (rawName: string, input: Readable, mode: number) => {
      const name = checkName(rawName)
      if (name === MANIFEST) {
        const chunks: Buffer[] = []
        for await (const c of input) chunks.push(c as Buffer)
        manifest = Buffer.concat(chunks)
        return
      }
      const want = blobDigest(name)
      const target = join(data, name)
      await mkdir(dirname(target), { recursive: true })
      const hash = want ? createHash(want.algorithm) : undefined
      const out = createWriteStream(target, { mode: mode & 0o777 || 0o644, flags: 'wx' })
      try {
        await pipeline(
          input,
          async function* (src: AsyncIterable<Buffer>) {
            for await (const c of src) {
              hash?.update(c)
              yield c
            }
          },
          out,
        )
      } catch (e) {
        // The file may still be opening: let it close, or it reappears after the clean-up below.
        if (!out.closed) await new Promise<void>((resolve) => out.once('close', () => resolve()))
        throw e
      }
      if (want && hash!.digest('hex') !== want.hex)
        throw new BackupError(`blob ${want.algorithm}:${want.hex} in the backup does not match its digest`)
    }

    if ('dir' in opts.from) {
      const dir = opts.from.dir
      if (!(await stat(join(dir, MANIFEST)).catch(() => undefined)))
        throw new BackupError(`${dir} has no ${MANIFEST}: not a backup, or an incomplete one`)
      for (const rel of await walk(dir, () => false, true)) {
        if (rel.endsWith('/')) await mkdir(join(data, checkName(rel)), { recursive: true })
        else await write(rel, createReadStream(join(dir, rel)), (await stat(join(dir, rel))).mode)
      }
    } else {
      // Piped by hand: node's pipeline() throws asynchronously when tar-stream's extractor is destroyed early.
      const input = opts.from.tar
      const extract = tar.extract()
      input.on('error', (err) => extract.destroy(err))
      // A truncated or non-tar stream fails in the extractor, possibly after its last entry.
      let broken: Error | undefined
      const ended = new Promise<void>((resolve) => {
        extract.on('error', (err: Error) => {
          broken ??= err
          resolve()
        })
        extract.on('close', () => resolve())
      })
      input.pipe(extract as unknown as Writable)
      try {
        for await (const e of extract) {
          // Leaving the loop early destroys the entry: its error is the failure already being reported.
          e.on('error', () => {})
          const h = e.header
          if (h.type === 'directory') {
            await mkdir(join(data, checkName(h.name)), { recursive: true })
            e.resume()
            continue
          }
          if (h.type !== 'file') throw new BackupError(`unexpected ${h.type} entry ${JSON.stringify(h.name)} in the backup`)
          await write(h.name, e as unknown as Readable, h.mode ?? 0o644)
        }
        await ended
        if (broken) throw broken
      } catch (e) {
        if (e instanceof BackupError) throw e
        const err = (broken ?? e) as NodeJS.ErrnoException
        if (err.syscall) throw err // the disk's error, not the archive's
        throw new BackupError(`the backup is not a complete tar stream: ${err.message}`)
      } finally {
        input.destroy()
      }
    }

    if (!manifest) throw new BackupError(`the backup has no ${MANIFEST}: it is incomplete`)
    let summary: BackupSummary
    try {
      summary = JSON.parse(manifest.toString('utf8')) as BackupSummary
    } catch {
      throw new BackupError(`the backup's ${MANIFEST} is not JSON`)
    }
    if (summary.format !== FORMAT) throw new BackupError(`unsupported backup format ${JSON.stringify(summary.format)} (expected ${FORMAT})`)

    // The database must be intact and every blob it lists present.
    const dbPath = join(data, 'wharf.db')
    if (!(await stat(dbPath).catch(() => undefined))) throw new BackupError('the backup has no wharf.db')
    const db = new DatabaseSync(dbPath)
    try {
      const check = db.prepare('PRAGMA integrity_check').all() as Array<{ integrity_check: string }>
      if (check[0]?.integrity_check !== 'ok')
        throw new BackupError(`the backup's database is damaged: ${check.map((r) => r.integrity_check).join('; ')}`)
      for (const b of db.prepare('SELECT digest, size FROM blobs').iterate() as Iterable<{ digest: string; size: number }>) {
        const st = await stat(join(data, 'storage', blobPath(parseDigest(b.digest)))).catch(() => undefined)
        if (st?.size !== b.size)
          throw new BackupError(`blob ${b.digest} is in the database but ${st ? `${st.size} bytes` : 'missing'} in the backup`)
      }
    } finally {
      db.close()
    }
    await writeFile(join(data, MANIFEST), manifest)
    log(`restored the backup of ${summary.createdAt}: ${summary.blobs} blobs, ${summary.repositories} repositories, ${summary.files} files`)
    ok = true
    return summary
  } finally {
    if (!ok) for (const n of await readdir(data).catch(() => [] as string[])) await rm(join(data, n), { recursive: true, force: true })
  }
}
