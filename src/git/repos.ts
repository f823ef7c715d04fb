import { randomUUID } from 'node:crypto'
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { LRUCache } from 'lru-cache'
import { WharfError } from '../core/errors.ts'
import { runGit } from './exec.ts'
import { PRE_RECEIVE } from './protected-refs.ts'
import { checkRefName, checkSha, checkTreePath, isRefName, isSha, isZeroSha, type RefUpdate } from './refs.ts'

// Layout under the git root (`<data>/git`), known only to this file:
//
//   <id>.git/                one bare repository per project, named by its numeric id, so renaming
//                            or moving a project never touches the disk and no user input reaches a path
//   .wharf/hooks/{pre,post}-receive  Wharf's hooks, used through `-c core.hooksPath=` by the smart HTTP backend
//   .wharf/spool/<uuid>      per-push ref-update files the hook writes (and <uuid>.pusher.json: who pushed
//                            to which project); read and removed after the push, or at the next start
//   .wharf/tmp/              repositories being initialised, renamed into place when complete
//   .wharf/orphans/          repositories of deleted projects whose id was reused (kept, not served)
//   <id>.git/wharf-project   the owner stamp (`<id>:<created_at>`) checked before serving a repository

const OWNER_FILE = 'wharf-project'

/** The branch a new repository's HEAD names, as GitLab's default. */
export const INITIAL_BRANCH = 'main'

/** readFile refuses blobs larger than this unless told otherwise (a .gitlab-ci.yml is tiny). */
export const DEFAULT_MAX_FILE_BYTES = 10 << 20

/**
 * Leftovers in `.wharf/tmp/` older than this are removed at start. Several nodes may share the git
 * root, so a fresh entry may be another node's repository being made or its scratch index.
 */
const TMP_STALE_MS = 60 * 60 * 1000

/** The hook records what a push updated; Wharf reads the file once the push finished. */
const POST_RECEIVE = `#!/bin/sh
# Installed by Wharf (rewritten at every start): hands the updated refs to the server.
if [ -n "$WHARF_PUSH_LOG" ]; then exec cat > "$WHARF_PUSH_LOG"; fi
exec cat > /dev/null
`

export interface CommitInfo {
  id: string
  shortId: string
  treeId: string
  parentIds: string[]
  /** First line of the message. */
  title: string
  message: string
  authorName: string
  authorEmail: string
  /** ISO 8601 with the author's UTC offset, as GitLab shows it. */
  authoredDate: string
  committerName: string
  committerEmail: string
  committedDate: string
}

export interface BranchInfo {
  name: string
  commit: CommitInfo
  /** The branch HEAD names (the project's default branch). */
  default: boolean
}

export interface TagInfo {
  name: string
  /** What the ref points at: the tag object for annotated tags, else the commit. */
  target: string
  /** The peeled commit; undefined when the tag names a tree or blob. */
  commit: CommitInfo | undefined
  /** The annotation; null for a lightweight tag. */
  message: string | null
}

/** Bare repositories of projects, and the read operations CI needs, all through `git` subcommands. */
/** Which refs of a listing to return: a page, and for branches a name filter. */
export interface RefPage {
  search?: string | undefined
  limit: number
  offset: number
}
const ALL_REFS: RefPage = { limit: Number.MAX_SAFE_INTEGER, offset: 0 }

export class GitRepos {
  readonly root: string
  readonly hooksDir: string
  readonly spoolDir: string
  private readonly tmpDir: string
  private readonly orphansDir: string
  /** Repositories known to exist, with their owner stamp (bounded: a miss only costs a stat). */
  private readonly known = new LRUCache<number, string>({ max: 10_000 })
  private readonly creating = new Map<number, Promise<string>>()
  /** Stamps a repository with its project (see ensure). */
  static ownerOf(project: { id: number; created_at: string }): string {
    return `${project.id}:${project.created_at}`
  }

  constructor(root: string) {
    this.root = root
    this.hooksDir = join(root, '.wharf', 'hooks')
    this.spoolDir = join(root, '.wharf', 'spool')
    this.tmpDir = join(root, '.wharf', 'tmp')
    this.orphansDir = join(root, '.wharf', 'orphans')
  }

  /**
   * Creates the layout, (re)writes the hooks and clears old leftovers of earlier runs. Call once at
   * start. Spooled ref updates stay: a crash may have left a push's unread (GitHosting.recoverSpooled).
   * Safe while other nodes serve the same root: hooks are replaced by a rename (a push running one
   * never reads half a file), and only stale scratch entries are removed.
   */
  async init(): Promise<void> {
    await mkdir(this.hooksDir, { recursive: true })
    await mkdir(this.spoolDir, { recursive: true })
    await mkdir(this.tmpDir, { recursive: true })
    const now = Date.now()
    for (const name of await readdir(this.tmpDir)) {
      const path = join(this.tmpDir, name)
      const st = await stat(path).catch(() => undefined)
      if (st && now - st.mtimeMs > TMP_STALE_MS) await rm(path, { recursive: true, force: true })
    }
    await this.writeHook('post-receive', POST_RECEIVE)
    await this.writeHook('pre-receive', PRE_RECEIVE)
  }

  private async writeHook(name: string, text: string): Promise<void> {
    const hook = join(this.hooksDir, name)
    if ((await readFile(hook, 'utf8').catch(() => undefined)) === text && ((await stat(hook)).mode & 0o111) !== 0) return
    const tmp = join(this.tmpDir, `hook-${randomUUID()}`)
    await writeFile(tmp, text)
    await chmod(tmp, 0o755)
    await rename(tmp, hook)
  }

  /** The repository's directory. Only a positive integer id ever becomes part of a path. */
  pathFor(projectId: number): string {
    return join(this.root, repoDirName(projectId))
  }

  /** The repository relative to the root, as the smart HTTP backend's PATH_INFO prefix wants it: `/<id>.git`. */
  pathInfoFor(projectId: number): string {
    return `/${repoDirName(projectId)}`
  }

  /** A fresh path for a short-lived file (a temporary index); `init` clears what a crash left. */
  scratchFile(): string {
    return join(this.tmpDir, `scratch-${randomUUID()}`)
  }

  /** A fresh file name for one push's ref updates (the hook writes it; the caller reads and removes it). */
  spoolFile(): string {
    return join(this.spoolDir, randomUUID())
  }

  /**
   * Creates the bare repository unless it exists; safe to call concurrently. Returns its directory.
   *
   * `owner` identifies the project beyond its id (e.g. `<id>:<created_at>`): SQLite may hand a
   * deleted project's id to a new project, so a repository stamped for another owner is moved
   * to `.wharf/orphans/` and a fresh one created, and a new project never sees old code.
   */
  async ensure(projectId: number, owner?: string): Promise<string> {
    const dir = this.pathFor(projectId)
    const known = this.known.get(projectId)
    if (known !== undefined && (owner === undefined || known === owner)) return dir
    const pending = this.creating.get(projectId)
    if (pending) {
      await pending
      return this.ensure(projectId, owner)
    }
    const p = this.create(projectId, dir, owner).finally(() => this.creating.delete(projectId))
    this.creating.set(projectId, p)
    return p
  }

  private async create(projectId: number, dir: string, owner: string | undefined): Promise<string> {
    const stampFile = join(dir, OWNER_FILE)
    if (await isDir(dir)) {
      const stamp = (await readFile(stampFile, 'utf8').catch(() => '')).trim()
      if (owner === undefined || stamp === owner) {
        this.known.set(projectId, stamp)
        return dir
      }
      if (stamp !== '') {
        await mkdir(this.orphansDir, { recursive: true })
        // Another node may have moved it first (ENOENT): either way it is gone from the id's place.
        await rename(dir, join(this.orphansDir, `${projectId}-${randomUUID()}.git`)).catch((e: NodeJS.ErrnoException) => {
          if (e.code !== 'ENOENT') throw e
        })
      } else {
        // Made before stamps existed (or by hand): adopt it.
        await writeFile(stampFile, `${owner}\n`)
        this.known.set(projectId, owner)
        return dir
      }
    }
    // Initialise aside and rename into place: a crash never leaves a half-made repository.
    const tmp = join(this.tmpDir, `${projectId}-${randomUUID()}.git`)
    await runGit(['init', '--quiet', '--bare', `--initial-branch=${INITIAL_BRANCH}`, tmp])
    // Reflogs let an administrator recover from a bad force push.
    await runGit(['config', 'core.logAllRefUpdates', 'true'], { gitDir: tmp })
    await writeFile(join(tmp, OWNER_FILE), `${owner ?? ''}\n`)
    try {
      await rename(tmp, dir)
    } catch (e) {
      await rm(tmp, { recursive: true, force: true })
      if (!(await isDir(dir))) throw e
      return this.create(projectId, dir, owner)
    }
    this.known.set(projectId, owner ?? '')
    return dir
  }

  /** Deletes a project's repository (when the project is deleted). */
  async remove(projectId: number): Promise<void> {
    this.known.delete(projectId)
    await rm(this.pathFor(projectId), { recursive: true, force: true })
  }

  /** Project ids that have a repository on disk. */
  async list(): Promise<number[]> {
    const names = await readdir(this.root).catch(() => [] as string[])
    return names.flatMap((n) => (/^[1-9][0-9]*\.git$/.test(n) ? [Number(n.slice(0, -4))] : []))
  }

  /** Runs git in the project's repository (created on first use). */
  async git(projectId: number, args: readonly string[], opts: Parameters<typeof runGit>[1] = {}) {
    return runGit(args, { ...opts, gitDir: await this.ensure(projectId) })
  }

  /**
   * The commit a ref names, or undefined. Accepts a full object name, a full ref (`refs/heads/x`) or a
   * short name, tried as a branch first and then as a tag.
   */
  async resolveRef(projectId: number, ref: string): Promise<string | undefined> {
    const candidates = isSha(ref)
      ? [ref]
      : ref.startsWith('refs/')
        ? [checkRefName(ref)]
        : [`refs/heads/${checkRefName(ref)}`, `refs/tags/${ref}`]
    const found = await this.batchCheck(
      projectId,
      candidates.map((c) => `${c}^{commit}`),
    )
    return found.find((f) => f !== undefined)?.oid
  }

  /** The branch HEAD names, if that branch exists (an empty repository has none). */
  async defaultBranch(projectId: number): Promise<string | undefined> {
    const head = await this.headRef(projectId)
    if (!head) return undefined
    return (await this.resolveRef(projectId, head)) ? head.slice('refs/heads/'.length) : undefined
  }

  /** Points HEAD at a branch (which need not exist yet). */
  async setDefaultBranch(projectId: number, branch: string): Promise<void> {
    await this.git(projectId, ['symbolic-ref', 'HEAD', `refs/heads/${checkRefName(branch)}`])
  }

  /**
   * After a push into a repository whose HEAD names a missing branch (the first push did not
   * create `main`), HEAD moves to a branch that exists, as GitLab does: so clones check something out.
   */
  async repairDefaultBranch(projectId: number, updates: readonly RefUpdate[]): Promise<string | undefined> {
    if (await this.defaultBranch(projectId)) return undefined
    const created = updates.filter((u) => u.type === 'branch' && u.action !== 'delete').map((u) => u.name)
    const existing = created.length ? created : (await this.refs(projectId, 'refs/heads/')).map((r) => r.ref.slice('refs/heads/'.length))
    const pick = existing.find((n) => n === INITIAL_BRANCH) ?? existing.find((n) => n === 'master') ?? existing[0]
    if (pick) await this.setDefaultBranch(projectId, pick)
    return pick
  }

  /** The blob at `path` in commit `sha`; undefined when there is no file there (absent, or a directory). */
  async readFile(projectId: number, sha: string, path: string, maxBytes = DEFAULT_MAX_FILE_BYTES): Promise<Buffer | undefined> {
    checkSha(sha)
    checkTreePath(path)
    const [hit] = await this.batchCheck(projectId, [`${sha}:${path}`])
    if (hit?.type !== 'blob') return undefined
    if (hit.size > maxBytes)
      throw new WharfError('BAD_REQUEST', `${path} is larger than ${maxBytes} bytes`, { path, size: hit.size, limit: maxBytes })
    return (await this.git(projectId, ['cat-file', 'blob', hit.oid], { maxOutput: maxBytes })).stdout
  }

  /** Every file (blob or symlink) in a commit's tree, recursively, sorted as git sorts them. */
  async listFiles(projectId: number, sha: string): Promise<string[]> {
    checkSha(sha)
    const out = await this.git(projectId, ['ls-tree', '-r', '-z', '--full-tree', sha])
    const files: string[] = []
    for (const entry of out.stdout.toString('utf8').split('\0')) {
      const tab = entry.indexOf('\t')
      if (tab < 0) continue
      const [, type] = entry.slice(0, tab).split(' ')
      if (type === 'blob') files.push(entry.slice(tab + 1))
    }
    return files
  }

  /**
   * Paths added, modified or deleted between two commits (renames as delete + add). With no `before`
   * (all zeros: a new branch) or a `before` no longer in the repository, every file of `after`.
   */
  async changedFiles(projectId: number, before: string | null, after: string): Promise<string[]> {
    checkSha(after)
    if (before === null || isZeroSha(before)) return this.listFiles(projectId, after)
    checkSha(before, 'before')
    const [found] = await this.batchCheck(projectId, [`${before}^{commit}`])
    if (!found) return this.listFiles(projectId, after)
    const out = await this.git(projectId, ['diff-tree', '-r', '-z', '--name-only', '--no-renames', '--no-commit-id', before, after])
    return out.stdout
      .toString('utf8')
      .split('\0')
      .filter((s) => s.length > 0)
  }

  /**
   * Paths changed on `sha` since its merge base with `ref` (a branch, tag or commit), as GitLab's
   * `changes:compare_to` diffs; undefined when `ref` names nothing. No common history: every file of `sha`.
   */
  async changedSince(projectId: number, ref: string, sha: string): Promise<string[] | undefined> {
    const other = await this.resolveRef(projectId, ref).catch(() => undefined)
    if (!other) return undefined
    const out = await this.git(projectId, ['merge-base', other, sha], { okCodes: [1] })
    const base = out.stdout.toString('utf8').trim()
    return this.changedFiles(projectId, isSha(base) ? base : null, sha)
  }

  /**
   * Message, author, committer and dates of a commit; undefined when it is not in the repository.
   * An annotated tag's object name peels to its commit (`id` is then the commit's), as CI_COMMIT_SHA wants.
   */
  async commitInfo(projectId: number, sha: string): Promise<CommitInfo | undefined> {
    checkSha(sha)
    const [c] = await this.readCommits(projectId, [`${sha}^{commit}`])
    return c
  }

  /**
   * commitInfo for many commits with one `git cat-file --batch` (a page of CI jobs shares a few),
   * keyed by the sha asked for; missing ones are left out.
   */
  async commitInfos(projectId: number, shas: readonly string[]): Promise<Map<string, CommitInfo>> {
    const unique = [...new Set(shas)]
    for (const sha of unique) checkSha(sha)
    const commits = await this.readCommits(
      projectId,
      unique.map((sha) => `${sha}^{commit}`),
    )
    const out = new Map<string, CommitInfo>()
    for (const [i, sha] of unique.entries()) {
      const commit = commits[i]
      if (commit) out.set(sha, commit)
    }
    return out
  }

  /** How many commits a ref update brought that no other ref already had (0 for deletions). */
  async commitCount(projectId: number, u: RefUpdate, limit = 10_000): Promise<number> {
    if (u.action === 'delete') return 0
    checkSha(u.newSha)
    const args = ['rev-list', '--count', `--max-count=${limit}`, u.newSha]
    if (u.action === 'update') args.push(`^${checkSha(u.oldSha)}`)
    else args.push('--not', `--exclude=${checkRefName(u.ref)}`, '--glob=refs/*') // not --all: HEAD names the new branch too
    const out = await this.git(projectId, args)
    return Number(out.stdout.toString('utf8').trim()) || 0
  }

  /** The newest commits (at most `limit`) a ref update brought that no other ref had, newest first (webhook payloads). */
  async newCommits(projectId: number, u: RefUpdate, limit = 20): Promise<CommitInfo[]> {
    if (u.action === 'delete') return []
    checkSha(u.newSha)
    const args = ['rev-list', `--max-count=${limit}`, u.newSha]
    if (u.action === 'update') args.push(`^${checkSha(u.oldSha)}`)
    else args.push('--not', `--exclude=${checkRefName(u.ref)}`, '--glob=refs/*')
    const out = await this.git(projectId, args)
    const shas = out.stdout
      .toString('utf8')
      .split('\n')
      .filter((l) => l.length > 0)
    return (await this.readCommits(projectId, shas)).filter((c): c is CommitInfo => c !== undefined)
  }

  /**
   * A page of branches by name (those containing `search`, case-insensitively, when given) and the
   * total. Listing the refs is one for-each-ref (names and ids only); the head commits are read for
   * the page alone.
   */
  async branches(projectId: number, page: RefPage = ALL_REFS): Promise<{ rows: BranchInfo[]; total: number }> {
    const search = page.search?.toLowerCase()
    // for-each-ref sorts by refname (byte order), which is the order wanted.
    const refs = (await this.refs(projectId, 'refs/heads/')).filter(
      (r) => !search || r.ref.slice('refs/heads/'.length).toLowerCase().includes(search),
    )
    const shown = refs.slice(page.offset, page.offset + page.limit)
    const [head, commits] = await Promise.all([
      this.headRef(projectId),
      this.readCommits(
        projectId,
        shown.map((r) => r.oid),
      ),
    ])
    const rows = shown.flatMap((r, i) =>
      commits[i] ? [{ name: r.ref.slice('refs/heads/'.length), commit: commits[i], default: r.ref === head }] : [],
    )
    return { rows, total: refs.length }
  }

  /** One branch with its head commit, or undefined. */
  async branch(projectId: number, name: string): Promise<BranchInfo | undefined> {
    const ref = `refs/heads/${name}`
    if (!isRefName(ref)) return undefined
    const [head, [commit]] = await Promise.all([this.headRef(projectId), this.readCommits(projectId, [`${ref}^{commit}`])])
    return commit && { name, commit, default: ref === head }
  }

  /**
   * A page of tags, newest commit first (then by name), and the total. One for-each-ref lists them
   * with their commit dates; the commits and annotations are read for the page alone.
   */
  async tags(projectId: number, page: RefPage = ALL_REFS): Promise<{ rows: TagInfo[]; total: number }> {
    const out = await this.git(projectId, [
      'for-each-ref',
      '--format=%(objectname) %(objecttype) %(refname) %(*committerdate:unix) %(committerdate:unix)',
      'refs/tags/',
    ])
    const refs = out.stdout
      .toString('utf8')
      .split('\n')
      .flatMap((line) => {
        // An annotated tag has its commit's date in the 4th field; a lightweight one in the 5th.
        const [oid, type, ref, peeled, own] = line.split(' ')
        return oid && type && ref && isSha(oid) && isRefName(ref) ? [{ oid, type, ref, when: Number(peeled || own || 0) }] : []
      })
      .sort((a, b) => (a.when === b.when ? (a.ref < b.ref ? -1 : 1) : b.when - a.when))
    const shown = refs.slice(page.offset, page.offset + page.limit)
    const commits = await this.readCommits(
      projectId,
      shown.map((r) => `${r.oid}^{commit}`),
    )
    const annotated = shown.filter((r) => r.type === 'tag')
    const objects = await this.batch(
      projectId,
      annotated.map((r) => r.oid),
    )
    const messages = new Map<string, string>()
    annotated.forEach((r, i) => {
      const o = objects[i]
      if (o) messages.set(r.oid, parseObject(o.body).message)
    })
    const rows = shown.map((r, i) => ({
      name: r.ref.slice('refs/tags/'.length),
      target: r.oid,
      commit: commits[i],
      message: messages.get(r.oid) ?? null,
    }))
    return { rows, total: refs.length }
  }

  /** Every tag's name, unordered: one for-each-ref, no commits read (CI component versions). */
  async tagNames(projectId: number): Promise<string[]> {
    return (await this.refs(projectId, 'refs/tags/')).map((r) => r.ref.slice('refs/tags/'.length))
  }

  /** One tag with its commit and annotation, or undefined. */
  async tag(projectId: number, name: string): Promise<TagInfo | undefined> {
    const ref = `refs/tags/${name}`
    if (!isRefName(ref)) return undefined
    const [obj] = await this.batch(projectId, [ref])
    if (!obj) return undefined
    const [commit] = await this.readCommits(projectId, [`${obj.oid}^{commit}`])
    return { name, target: obj.oid, commit, message: obj.type === 'tag' ? parseObject(obj.body).message : null }
  }

  private async headRef(projectId: number): Promise<string | undefined> {
    const out = await this.git(projectId, ['symbolic-ref', '--quiet', 'HEAD'], { okCodes: [1] })
    const ref = out.stdout.toString('utf8').trim()
    return ref.startsWith('refs/heads/') ? ref : undefined
  }

  private async refs(projectId: number, prefix: 'refs/heads/' | 'refs/tags/'): Promise<Array<{ oid: string; type: string; ref: string }>> {
    const out = await this.git(projectId, ['for-each-ref', '--format=%(objectname) %(objecttype) %(refname)', prefix])
    return out.stdout
      .toString('utf8')
      .split('\n')
      .flatMap((line) => {
        const [oid, type, ref] = line.split(' ')
        return oid && type && ref && isSha(oid) && isRefName(ref) ? [{ oid, type, ref }] : []
      })
  }

  /** `cat-file --batch-check` over object expressions: type, size and id of each, undefined when missing. */
  async batchCheck(projectId: number, exprs: readonly string[]): Promise<Array<{ oid: string; type: string; size: number } | undefined>> {
    if (exprs.length === 0) return []
    for (const e of exprs) if (/[\n\0]/.test(e)) throw new WharfError('BAD_REQUEST', 'invalid object name', {})
    const out = await this.git(projectId, ['cat-file', '--batch-check'], { input: `${exprs.join('\n')}\n` })
    const lines = out.stdout.toString('utf8').split('\n')
    return exprs.map((_, i) => {
      const [oid, type, size] = (lines[i] ?? '').split(' ')
      return oid && type && size && isSha(oid) ? { oid, type, size: Number(size) } : undefined
    })
  }

  /** `cat-file --batch`: the content of each object expression, undefined when missing. */
  async batch(projectId: number, exprs: readonly string[]): Promise<Array<{ oid: string; type: string; body: Buffer } | undefined>> {
    if (exprs.length === 0) return []
    for (const e of exprs) if (/[\n\0]/.test(e)) throw new WharfError('BAD_REQUEST', 'invalid object name', {})
    const out = (await this.git(projectId, ['cat-file', '--batch'], { input: `${exprs.join('\n')}\n` })).stdout
    const result: Array<{ oid: string; type: string; body: Buffer } | undefined> = []
    let pos = 0
    for (let i = 0; i < exprs.length; i++) {
      const nl = out.indexOf(0x0a, pos)
      if (nl < 0) break
      const [oid, type, size] = out.subarray(pos, nl).toString('utf8').split(' ')
      pos = nl + 1
      if (!oid || !type || !size || !isSha(oid)) {
        result.push(undefined) // "<expr> missing" / "ambiguous"
        continue
      }
      const n = Number(size)
      result.push({ oid, type, body: out.subarray(pos, pos + n) })
      pos += n + 1 // the content is followed by a newline
    }
    while (result.length < exprs.length) result.push(undefined)
    return result
  }

  async readCommits(projectId: number, exprs: readonly string[]): Promise<Array<CommitInfo | undefined>> {
    const objects = await this.batch(projectId, exprs)
    return objects.map((o) => (o && o.type === 'commit' ? parseCommit(o.oid, o.body) : undefined))
  }
}

function repoDirName(projectId: number): string {
  if (!Number.isSafeInteger(projectId) || projectId <= 0) throw new WharfError('BAD_REQUEST', 'invalid project id', { projectId })
  return `${projectId}.git`
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory()
  } catch {
    return false
  }
}

/** Splits a raw commit or tag object into its header fields (continuation lines folded) and message. */
export function parseObject(body: Buffer): { headers: Array<[string, string]>; message: string } {
  const text = body.toString('utf8')
  const end = text.indexOf('\n\n')
  const head = end < 0 ? text : text.slice(0, end)
  const message = end < 0 ? '' : text.slice(end + 2)
  const headers: Array<[string, string]> = []
  for (const line of head.split('\n')) {
    if (line.startsWith(' ') && headers.length) headers[headers.length - 1]![1] += `\n${line.slice(1)}`
    else {
      const sp = line.indexOf(' ')
      if (sp > 0) headers.push([line.slice(0, sp), line.slice(sp + 1)])
    }
  }
  return { headers, message }
}

/** `Name <email> 1700000000 +0130` → its parts, the date in ISO 8601 with that offset. */
export function parseIdent(s: string): { name: string; email: string; date: string } {
  const m = /^(.*?) ?<([^>]*)> (\d+) ([+-])(\d{2})(\d{2})$/.exec(s)
  if (!m) return { name: s, email: '', date: new Date(0).toISOString() }
  const [, name, email, secs, sign, hh, mm] = m as unknown as [string, string, string, string, string, string, string]
  const offsetMin = (sign === '-' ? -1 : 1) * (Number(hh) * 60 + Number(mm))
  const local = new Date((Number(secs) + offsetMin * 60) * 1000).toISOString().slice(0, -1)
  return { name, email, date: `${local}${sign}${hh}:${mm}` }
}

export function parseCommit(id: string, body: Buffer): CommitInfo {
  const { headers, message } = parseObject(body)
  const get = (k: string) => headers.find(([h]) => h === k)?.[1] ?? ''
  const author = parseIdent(get('author'))
  const committer = parseIdent(get('committer'))
  return {
    id,
    shortId: id.slice(0, 8),
    treeId: get('tree'),
    parentIds: headers.filter(([h]) => h === 'parent').map(([, v]) => v),
    title: message.split('\n', 1)[0] ?? '',
    message,
    authorName: author.name,
    authorEmail: author.email,
    authoredDate: author.date,
    committerName: committer.name,
    committerEmail: committer.email,
    committedDate: committer.date,
  }
}
