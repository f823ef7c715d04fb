import type { Readable } from 'node:stream'
import { WharfError } from '../core/errors.ts'
import { lastCommitFor, literal } from './commits.ts'
import { streamGit } from './exec.ts'
import { checkSha, checkTreePath } from './refs.ts'
import type { CommitInfo, GitRepos } from './repos.ts'

// Reading a repository the way GitLab's repository API shows it: trees, files, history, compare
// and archives. Every object name reaching git here came from resolveRef or checkSha, and every
// path from checkTreePath, passed after `--` as a literal pathspec.

export interface TreeEntry {
  id: string
  name: string
  type: 'tree' | 'blob' | 'commit'
  path: string
  mode: string
}

export interface FileInfo {
  fileName: string
  filePath: string
  size: number
  blobId: string
  commitId: string
  lastCommitId: string
  executeFilemode: boolean
}

export interface DiffEntry {
  oldPath: string
  newPath: string
  aMode: string
  bMode: string
  diff: string
  newFile: boolean
  renamedFile: boolean
  deletedFile: boolean
}

export interface CommitStats {
  additions: number
  deletions: number
  total: number
}

/** Paths and commits listed for one page come from a whole listing (git has no offsets into a tree). */
export interface Page {
  limit: number
  offset: number
}

/** Archive formats `git archive` writes itself (no external compressor configured). */
export const ARCHIVE_FORMATS = {
  'tar.gz': 'application/gzip',
  tgz: 'application/gzip',
  tar: 'application/x-tar',
  zip: 'application/zip',
} as const
export type ArchiveFormat = keyof typeof ARCHIVE_FORMATS

/** Commits a compare lists, and the diff's size, at most (GitLab caps them too). */
export const COMPARE_LIMITS = { commits: 1000, diffBytes: 16 << 20 } as const

/**
 * Entries of the tree at `path` in `commit` (the root when empty): directories first, then files,
 * each group by name, as GitLab lists them. Recursive lists every entry below, directories included.
 * Undefined when there is no directory at `path`.
 */
export async function listTree(
  repos: GitRepos,
  projectId: number,
  commit: string,
  path: string,
  recursive: boolean,
  page: Page,
): Promise<{ rows: TreeEntry[]; total: number } | undefined> {
  checkSha(commit)
  let treeish = commit
  if (path !== '') {
    checkTreePath(path)
    const [hit] = await repos.batchCheck(projectId, [`${commit}:${path}`])
    if (hit?.type !== 'tree') return undefined
    treeish = hit.oid
  }
  const out = await repos.git(projectId, ['ls-tree', '-z', ...(recursive ? ['-r', '-t'] : []), treeish])
  const prefix = path === '' ? '' : `${path}/`
  const entries: TreeEntry[] = []
  for (const line of out.stdout.toString('utf8').split('\0')) {
    const tab = line.indexOf('\t')
    if (tab < 0) continue
    const [mode, type, id] = line.slice(0, tab).split(' ') as [string, TreeEntry['type'], string]
    const rel = line.slice(tab + 1)
    entries.push({ id, name: rel.slice(rel.lastIndexOf('/') + 1), type, path: `${prefix}${rel}`, mode })
  }
  // A recursive listing stays in git's order (depth-first), which keeps a directory beside its contents.
  const rank = { tree: 0, blob: 1, commit: 2 }
  const sorted = recursive
    ? entries
    : entries.sort((a, b) => rank[a.type] - rank[b.type] || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  return { rows: sorted.slice(page.offset, page.offset + page.limit), total: sorted.length }
}

/** A file's metadata at `commit`, or undefined when `path` is not a file there. */
export async function fileInfo(repos: GitRepos, projectId: number, commit: string, path: string): Promise<FileInfo | undefined> {
  checkSha(commit)
  checkTreePath(path)
  const [hit] = await repos.batchCheck(projectId, [`${commit}:${path}`])
  if (hit?.type !== 'blob') return undefined
  const [modeOut, last] = await Promise.all([
    repos.git(projectId, ['ls-tree', '-z', '--full-tree', commit, '--', literal(path)]),
    lastCommitFor(repos, projectId, commit, path),
  ])
  const mode = modeOut.stdout.toString('utf8').split(' ')[0]
  return {
    fileName: path.slice(path.lastIndexOf('/') + 1),
    filePath: path,
    size: hit.size,
    blobId: hit.oid,
    commitId: commit,
    lastCommitId: last ?? commit,
    executeFilemode: mode === '100755',
  }
}

/** A blob's bytes as a stream (through the git pool); the caller resolved and checked the blob id. */
export async function streamBlob(repos: GitRepos, projectId: number, blobId: string, signal?: AbortSignal): Promise<Readable> {
  checkSha(blobId, 'blob')
  return streamGit(['cat-file', 'blob', blobId], { gitDir: await repos.ensure(projectId), signal })
}

export interface LogQuery {
  /** Commits reachable from here (a resolved commit). */
  from: string
  /** Only commits touching this path. */
  path?: string | undefined
  /** ISO 8601 bounds on the committer date. */
  since?: string | undefined
  until?: string | undefined
  firstParent?: boolean | undefined
}

/** A page of history, newest first (git log's order), and how many commits match. */
export async function logPage(repos: GitRepos, projectId: number, q: LogQuery, page: Page): Promise<{ rows: CommitInfo[]; total: number }> {
  checkSha(q.from)
  const filters = [
    ...(q.since ? [`--since=${isoDate(q.since, 'since')}`] : []),
    ...(q.until ? [`--until=${isoDate(q.until, 'until')}`] : []),
    ...(q.firstParent ? ['--first-parent'] : []),
  ]
  const tail = [q.from, '--', ...(q.path ? [literal(checkTreePath(q.path))] : [])]
  const [count, list] = await Promise.all([
    repos.git(projectId, ['rev-list', '--count', ...filters, ...tail]),
    repos.git(projectId, ['rev-list', `--max-count=${page.limit}`, `--skip=${page.offset}`, ...filters, ...tail]),
  ])
  const shas = list.stdout
    .toString('utf8')
    .split('\n')
    .filter((s) => s.length > 0)
  const rows = (await repos.readCommits(projectId, shas)).filter((c): c is CommitInfo => c !== undefined)
  return { rows, total: Number(count.stdout.toString('utf8').trim()) || 0 }
}

/** Lines added and removed by a commit against its first parent (or the empty tree for a root commit). */
export async function commitStats(repos: GitRepos, projectId: number, commit: string): Promise<CommitStats> {
  checkSha(commit)
  const out = await repos.git(projectId, ['diff-tree', '-r', '-M', '--root', '--no-commit-id', '--numstat', '-z', commit])
  let additions = 0
  let deletions = 0
  for (const field of out.stdout.toString('utf8').split('\0')) {
    // `<added>\t<deleted>\t` before each path ('-' for binary files).
    const m = /^(\d+|-)\t(\d+|-)\t/.exec(field)
    if (!m) continue
    additions += Number(m[1]) || 0
    deletions += Number(m[2]) || 0
  }
  return { additions, deletions, total: additions + deletions }
}

/**
 * GitLab's compare: the commits in `to` and not in `from`, oldest first, and the diff between
 * them, from their merge base unless `straight` (then from `from` itself).
 */
export async function compare(
  repos: GitRepos,
  projectId: number,
  from: string,
  to: string,
  straight: boolean,
): Promise<{ commits: CommitInfo[]; diffs: DiffEntry[]; base: string | undefined }> {
  checkSha(from)
  checkSha(to)
  let base: string | undefined = from
  if (!straight) {
    const mb = await repos.git(projectId, ['merge-base', from, to], { okCodes: [1] })
    base = mb.stdout.toString('utf8').trim() || undefined
  }
  const range = await repos.git(projectId, ['rev-list', '--reverse', `--max-count=${COMPARE_LIMITS.commits}`, to, `^${from}`])
  const shas = range.stdout
    .toString('utf8')
    .split('\n')
    .filter((s) => s.length > 0)
  const commits = (await repos.readCommits(projectId, shas)).filter((c): c is CommitInfo => c !== undefined)
  const diffs = base ? await diff(repos, projectId, base, to) : []
  return { commits, diffs, base }
}

/** The per-file diff between two commits, renames detected, each patch without its header lines. */
export async function diff(repos: GitRepos, projectId: number, from: string, to: string): Promise<DiffEntry[]> {
  const out = await repos.git(projectId, ['diff-tree', '-r', '-M', '-z', '--raw', '-p', '--no-color', '--full-index', from, to], {
    maxOutput: COMPARE_LIMITS.diffBytes,
  })
  return parseRawPatch(out.stdout)
}

/**
 * Parses `diff-tree -z --raw -p`: the raw records (`:<a_mode> <b_mode> <a_sha> <b_sha> <status>\0<path>\0[<path>\0]`)
 * come first, then each file's patch (`diff --git …`) in the same order.
 */
export function parseRawPatch(buf: Buffer): DiffEntry[] {
  const text = buf.toString('utf8')
  const records: Array<Omit<DiffEntry, 'diff'>> = []
  let pos = 0
  while (text[pos] === ':') {
    const headEnd = text.indexOf('\0', pos)
    const [aMode, bMode, , , status] = text.slice(pos + 1, headEnd).split(' ') as [string, string, string, string, string]
    let next = text.indexOf('\0', headEnd + 1)
    const first = text.slice(headEnd + 1, next)
    let second = first
    if (status.startsWith('R') || status.startsWith('C')) {
      const after = text.indexOf('\0', next + 1)
      second = text.slice(next + 1, after)
      next = after
    }
    pos = next + 1
    records.push({
      oldPath: first,
      newPath: second,
      aMode,
      bMode,
      newFile: status === 'A',
      deletedFile: status === 'D',
      renamedFile: status.startsWith('R'),
    })
  }
  const patchText = text.slice(pos).replace(/^\0?\n?/, '')
  const patches = patchText.length ? patchText.split(/^(?=diff --git )/m) : []
  return records.map((r, i) => {
    const p = patches[i] ?? ''
    const hunk = p.search(/^(@@|Binary files)/m)
    return { ...r, diff: hunk < 0 ? '' : p.slice(hunk) }
  })
}

/** `git archive` of a commit (or of one directory of it) as a stream, through the git pool. */
export async function archive(
  repos: GitRepos,
  projectId: number,
  commit: string,
  format: ArchiveFormat,
  prefix: string,
  path: string | undefined,
  signal?: AbortSignal,
): Promise<Readable> {
  checkSha(commit)
  if (path !== undefined) checkTreePath(path)
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f]|\.\./.test(prefix)) throw new WharfError('BAD_REQUEST', 'invalid archive prefix', {})
  const fmt = format === 'tgz' ? 'tar.gz' : format
  return streamGit(['archive', `--format=${fmt}`, `--prefix=${prefix}/`, commit, ...(path !== undefined ? ['--', literal(path)] : [])], {
    gitDir: await repos.ensure(projectId),
    signal,
  })
}

function isoDate(s: string, what: string): string {
  const t = Date.parse(s)
  if (Number.isNaN(t)) throw new WharfError('BAD_REQUEST', `${what} is invalid`, { [what]: s.slice(0, 64) })
  return new Date(t).toISOString()
}
