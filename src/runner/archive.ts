/**
 * Files in and out of zip archives, for artifacts and the cache: path patterns as GitLab Runner
 * reads them (relative to the project directory; doublestar globs, see globMatcher; a directory
 * stands for everything below it; `exclude` patterns drop files or whole directories), zip creation with yazl and safe extraction with yauzl (no entry may land outside
 * the target directory).
 */
import { createWriteStream } from 'node:fs'
import { lstat, mkdir, readlink, readdir, rm, symlink } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import picomatch from 'picomatch'
import yauzl from 'yauzl'
import yazl from 'yazl'

// picomatch's extensions that doublestar lacks are off: a leading `!` and extglobs like `+(a)` stay
// literal. `posix` makes `[!a]` a negated class as in doublestar (picomatch reads `[^a]` either way).
const DOUBLESTAR = { dot: true, posix: true, noextglob: true, nonegate: true } as const

/**
 * A matcher for one glob over `/`-separated relative paths, with the doublestar semantics GitLab
 * Runner gives `artifacts:paths`, `artifacts:exclude` and `cache:paths`: `*` and `?` stay within a
 * segment, `**` as a whole segment spans zero or more directories (elsewhere it is a `*`),
 * `[a-c]`, `[!a]` and `[^a]` are classes, `{a,b}` alternatives, and wildcards match dotfiles.
 */
export function globMatcher(glob: string): (path: string) => boolean {
  return picomatch(glob, DOUBLESTAR)
}

const hasGlob = (p: string) => /[*?[{]/.test(p)

/** Normalizes a user path pattern: `./a//b/` → `a/b`; throws when it leaves the base directory. */
export function normalizePattern(pattern: string): string {
  const p = path.posix.normalize(pattern.replaceAll('\\', '/')).replace(/\/+$/, '')
  if (p === '.' || p === '') return '.'
  if (p.startsWith('/') || p === '..' || p.startsWith('../')) throw new Error(`${pattern}: not a subpath of the project directory`)
  return p.replace(/^\.\//, '')
}

export interface CollectResult {
  /** Relative `/`-separated paths of files, symlinks and (empty or matched) directories, sorted. */
  entries: string[]
  /** Patterns that matched nothing (for the "no matching files" warnings). */
  unmatched: string[]
  /** Patterns rejected (outside the project). */
  invalid: string[]
  /** Paths each pattern selected (before exclusions), in pattern order. */
  counts: [string, number][]
}

async function walk(base: string, rel: string, out: Set<string>): Promise<void> {
  const st = await lstat(path.join(base, rel)).catch(() => undefined)
  if (!st) return
  out.add(rel)
  if (!st.isDirectory()) return
  const names = await readdir(path.join(base, rel))
  for (const n of names) await walk(base, rel === '.' ? n : `${rel}/${n}`, out)
}

/** Every path below `base` (not `.` itself). */
async function allPaths(base: string): Promise<string[]> {
  const out = new Set<string>()
  await walk(base, '.', out)
  out.delete('.')
  return [...out]
}

/** The files that `paths` select below `base`, minus `exclude` (plus `extra`, e.g. untracked files). */
export async function collectPaths(
  base: string,
  paths: readonly string[],
  exclude: readonly string[] = [],
  extra: readonly string[] = [],
): Promise<CollectResult> {
  const selected = new Set<string>()
  const unmatched: string[] = []
  const invalid: string[] = []
  const counts: [string, number][] = []
  let everything: string[] | undefined
  for (const raw of paths) {
    let p: string
    try {
      p = normalizePattern(raw)
    } catch {
      invalid.push(raw)
      continue
    }
    const found = new Set<string>()
    if (!hasGlob(p)) {
      await walk(base, p, found)
    } else {
      everything ??= await allPaths(base)
      const matches = globMatcher(p)
      for (const e of everything) if (matches(e)) await walk(base, e, found)
    }
    found.delete('.')
    for (const f of found) selected.add(f)
    if (found.size === 0) unmatched.push(raw)
    else counts.push([raw, found.size])
  }
  for (const e of extra) selected.add(e)
  const excludes = exclude.flatMap((x) => {
    try {
      return [globMatcher(normalizePattern(x))]
    } catch {
      return []
    }
  })
  const isExcluded = (rel: string): boolean => {
    const parts = rel.split('/')
    for (let i = 1; i <= parts.length; i++) {
      const prefix = parts.slice(0, i).join('/')
      if (excludes.some((matches) => matches(prefix))) return true
    }
    return false
  }
  const entries = [...selected].filter((e) => !isExcluded(e)).sort()
  return { entries, unmatched, invalid, counts }
}

/** Writes `entries` (relative to `base`) into a zip at `dest`. Returns the number of files. */
export async function createZip(base: string, entries: readonly string[], dest: string): Promise<number> {
  const zip = new yazl.ZipFile()
  const done = pipeline(zip.outputStream, createWriteStream(dest))
  let files = 0
  try {
    for (const rel of entries) {
      const full = path.join(base, rel)
      const st = await lstat(full).catch(() => undefined)
      if (!st) continue
      if (st.isDirectory()) zip.addEmptyDirectory(rel, { mtime: st.mtime, mode: st.mode })
      else if (st.isSymbolicLink()) {
        zip.addBuffer(Buffer.from(await readlink(full)), rel, { mtime: st.mtime, mode: 0o120777 })
        files++
      } else if (st.isFile()) {
        zip.addFile(full, rel, { mtime: st.mtime, mode: st.mode })
        files++
      }
    }
  } finally {
    zip.end()
  }
  await done
  return files
}

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(file, { lazyEntries: true, autoClose: true }, (err, zf) => (err ? reject(err) : resolve(zf!))),
  )
}

/** Extracts a zip into `dest`, overwriting files. Entries that would land outside `dest` are refused. */
export async function extractZip(file: string, dest: string): Promise<number> {
  const zf = await openZip(file)
  const root = path.resolve(dest)
  let count = 0
  await new Promise<void>((resolve, reject) => {
    const fail = (e: unknown) => {
      zf.close()
      reject(e)
    }
    zf.on('error', fail)
    zf.on('end', () => resolve())
    zf.on('entry', (entry: yauzl.Entry) => {
      void (async () => {
        const name = entry.fileName.replaceAll('\\', '/')
        const target = path.resolve(root, name)
        if (name.startsWith('/') || (target !== root && !target.startsWith(`${root}${path.sep}`)))
          throw new Error(`zip entry ${JSON.stringify(name)} is outside the target directory`)
        const mode = (entry.externalFileAttributes >>> 16) & 0xffff
        const type = mode & 0o170000
        if (name.endsWith('/') || type === 0o040000) {
          await mkdir(target, { recursive: true })
        } else {
          await mkdir(path.dirname(target), { recursive: true })
          const stream = await new Promise<NodeJS.ReadableStream>((res, rej) =>
            zf.openReadStream(entry, (err, s) => (err ? rej(err) : res(s!))),
          )
          await rm(target, { force: true, recursive: true })
          if (type === 0o120000) {
            const chunks: Buffer[] = []
            for await (const c of stream) chunks.push(c as Buffer)
            const link = Buffer.concat(chunks).toString('utf8')
            const resolved = path.resolve(path.dirname(target), link)
            if (path.isAbsolute(link) || (resolved !== root && !resolved.startsWith(`${root}${path.sep}`))) {
              throw new Error(`zip entry ${JSON.stringify(name)} links outside the target directory`)
            }
            await symlink(link, target)
          } else {
            await pipeline(stream, createWriteStream(target, { mode: mode & 0o777 || 0o644 }))
          }
          count++
        }
        zf.readEntry()
      })().catch(fail)
    })
    zf.readEntry()
  })
  return count
}
