import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat, truncate } from 'node:fs/promises'
import { dirname, join, relative, resolve, sep } from 'node:path'
import type { Readable, Writable } from 'node:stream'
import { PathNotFoundError, type BlobDriver, type FileInfo } from './driver.ts'

/** Large buffers keep syscalls and per-chunk overhead low when streaming layers. */
const STREAM_CHUNK = 1 << 20

export function createFsDriver(rootDir: string): BlobDriver {
  const root = resolve(rootDir)
  const full = (p: string): string => {
    const f = resolve(root, p)
    // Defence in depth: paths.ts only builds safe paths, but never leave the root.
    if (f !== root && !f.startsWith(root + sep)) throw new Error(`path escapes storage root: ${p}`)
    return f
  }
  const notFound = (e: unknown, p: string): never => {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new PathNotFoundError(p)
    throw e
  }

  return {
    kind: 'fs',
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
    async appender(p, offset) {
      const f = full(p)
      await mkdir(dirname(f), { recursive: true })
      const existing = await stat(f).catch(() => undefined)
      if (existing && existing.size !== offset) await truncate(f, offset)
      return createWriteStream(f, { flags: 'a', highWaterMark: STREAM_CHUNK }) as Writable
    },
    async commit(from, to) {
      const src = full(from)
      const fh = await open(src, 'r+').catch((e) => notFound(e, from))
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
      const dst = full(to)
      await mkdir(dirname(dst), { recursive: true })
      await rename(src, dst)
    },
    async delete(p) {
      await rm(full(p), { force: true, recursive: true })
    },
    async *list(prefix) {
      const base = full(prefix)
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
