import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { PathNotFoundError, type BlobDriver, type FileInfo } from './driver.ts'

/** Large buffers keep syscalls and per-chunk overhead low when streaming layers. */
const STREAM_CHUNK = 1 << 20
/** Send buffers kept for reuse; each transfer holds two while it runs. */
const POOL_MAX = 32
const pool: Buffer[] = []
const takeBuffer = () => pool.pop() ?? Buffer.allocUnsafeSlow(STREAM_CHUNK)
const giveBuffer = (b: Buffer) => void (pool.length < POOL_MAX && pool.push(b))

export function createFsDriver(rootDir: string): BlobDriver {
  const root = resolve(rootDir)
  // Defence in depth: paths.ts only builds safe paths, but nothing may leave the root, and
  // only listing may address the root itself (deleting '' would remove everything).
  const full = (p: string, allowRoot = false): string => {
    const f = resolve(root, p)
    if (!(f.startsWith(root + sep) || (allowRoot && f === root))) throw new Error(`path escapes the storage root: ${p}`)
    return f
  }
  // Blob fan-out directories are few and never removed while running: skip mkdir once seen.
  const knownDirs = new Set<string>()
  const ensureDir = async (dir: string) => {
    if (knownDirs.has(dir)) return
    await mkdir(dir, { recursive: true })
    knownDirs.add(dir)
  }
  const notFound = (e: unknown, p: string): never => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new PathNotFoundError(p)
    throw e
  }

  return {
    kind: 'fs',
    appenderWritesThrough: true,
    async stat(p) {
      try {
        const s = await stat(full(p))
        return { path: p, size: s.size, modified: s.mtime }
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
        throw e
      }
    },
    async reader(p, range) {
      const fh = await open(full(p), 'r').catch((e) => notFound(e, p))
      const start = range?.offset ?? 0
      const end = range?.length !== undefined ? start + range.length - 1 : undefined
      // Opened first so a missing file is an error before any response header is sent.
      return createReadStream('', { fd: fh, start, end, highWaterMark: STREAM_CHUNK, autoClose: true }) as Readable
    },
    async openForSend(p, range) {
      const fh = await open(full(p), 'r').catch((e) => notFound(e, p))
      const start = range?.offset ?? 0
      const end = range ? start + range.length : (await fh.stat()).size
      // Reads go into two pooled buffers, alternating with the socket write they overlap:
      // no per-chunk allocation, so no garbage-collection churn while layers stream out.
      return async (dest) => {
        const bufs = [takeBuffer(), takeBuffer()] as const
        let onClose!: () => void
        const closed = new Promise<never>((_, ko) => (onClose = () => ko(new Error('destination closed'))))
        closed.catch(() => {})
        dest.once('close', onClose)
        let pending: Promise<unknown> | undefined
        let aborted = false
        const readInto = (turn: number, pos: number) => fh.read(bufs[turn]!, 0, Math.min(STREAM_CHUNK, end - pos), pos)
        try {
          let pos = start
          let turn = 0
          let next = readInto(turn, pos)
          while (pos < end) {
            pending = next
            const { bytesRead } = await Promise.race([next, closed])
            if (bytesRead === 0) throw new Error(`blob file shorter than expected: ${p}`)
            const chunk = bufs[turn]!.subarray(0, bytesRead)
            pos += bytesRead
            const written = new Promise<void>((ok, ko) => dest.write(chunk, (err) => (err ? ko(err) : ok())))
            turn ^= 1
            if (pos < end) pending = next = readInto(turn, pos)
            await Promise.race([written, closed])
          }
        } catch (e) {
          aborted = true
          throw e
        } finally {
          dest.off('close', onClose)
          await pending?.catch(() => {})
          await fh.close()
          // After an aborted write the socket may still hold a reference: let GC have those buffers.
          if (!aborted) bufs.forEach(giveBuffer)
        }
      }
    },
    async openPositional(p) {
      const fh = await open(full(p), 'r').catch((e) => notFound(e, p))
      return {
        read: async (buffer, length, position) => (await fh.read(buffer, 0, length, position)).bytesRead,
        close: () => fh.close(),
      }
    },
    async appender(p, offset, opts) {
      const f = full(p)
      await ensureDir(dirname(f))
      // At offset 0 the file starts empty ('w' truncates), which spares the stat a resumed upload needs.
      const flags = offset === 0 ? 'w' : 'a'
      const fh = await open(f, flags).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e
        knownDirs.clear() // a directory was removed under us: create it again
        await mkdir(dirname(f), { recursive: true })
        return open(f, flags)
      })
      // Bytes past `offset` were left by an interrupted chunk: drop them.
      if (offset !== 0 && (await fh.stat()).size !== offset) await fh.truncate(offset)
      // `flush`: fsync before the stream closes its handle; stream/promises' pipeline resolves only after 'close'.
      return createWriteStream('', { fd: fh, highWaterMark: STREAM_CHUNK, flush: opts?.durable === true }) as Writable
    },
    async commit(from, to, opts) {
      const src = full(from)
      if (!opts?.synced) {
        const fh = await open(src, 'r+').catch((e) => notFound(e, from))
        try {
          await fh.sync()
        } finally {
          await fh.close()
        }
      }
      const dst = full(to)
      await ensureDir(dirname(dst))
      await rename(src, dst).catch(async (e: NodeJS.ErrnoException) => {
        if (e.code !== 'ENOENT') throw e
        knownDirs.clear() // someone removed a directory under us (or the source is gone): create it again
        await mkdir(dirname(dst), { recursive: true })
        await rename(src, dst).catch((e2) => notFound(e2, from))
      })
    },
    async delete(p) {
      await rm(full(p), { force: true, recursive: true })
    },
    async *list(prefix) {
      const base = full(prefix, true)
      const walk = async function* (dir: string): AsyncGenerator<FileInfo> {
        let entries
        try {
          entries = await readdir(dir, { withFileTypes: true })
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOENT') return
          throw e
        }
        for (const ent of entries) {
          const p = join(dir, ent.name)
          if (ent.isDirectory()) yield* walk(p)
          else {
            const s = await stat(p).catch(() => undefined)
            if (s) yield { path: relative(root, p), size: s.size, modified: s.mtime }
          }
        }
      }
      yield* walk(base)
    },
  }
}
