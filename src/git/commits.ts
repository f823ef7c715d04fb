import { rm } from 'node:fs/promises'
import { WharfError } from '../core/errors.ts'
import { GitCommandError } from './exec.ts'
import { checkRefName, checkSha, checkTreePath, isSha, ZERO_SHA, type RefUpdate } from './refs.ts'
import type { GitRepos } from './repos.ts'

// Commits, branches and tags made without a work tree, with git's plumbing against the bare
// repository: blobs by hash-object, the tree in a temporary index (read-tree, update-index,
// write-tree), the commit by commit-tree, and the ref moved by update-ref with its old value, so
// a ref that moved meanwhile (a push, another API commit) is never overwritten. The files API,
// the commits API and the web editor share this; callers publish the returned ref update.

export const FILE_ACTIONS = ['create', 'update', 'delete', 'move', 'chmod'] as const
export type FileActionKind = (typeof FILE_ACTIONS)[number]

/** One change of a commit, as GitLab's commits API `actions[]`. */
export interface FileAction {
  action: FileActionKind
  filePath: string
  /** For move: the file being moved. */
  previousPath?: string | undefined
  /** create/update (and optionally move): the new content. */
  content?: Buffer | undefined
  /** Sets (true) or clears (false) the executable bit; left as it was when undefined. */
  executeFilemode?: boolean | undefined
  /** The commit the caller last saw the file at: refused if the file changed since. */
  lastCommitId?: string | undefined
}

export interface Identity {
  name: string
  email: string
}

export interface CommitRequest {
  branch: string
  /** A new branch starts here (GitLab's start_branch); defaults to the branch itself. */
  startBranch?: string | undefined
  /** A new branch starts at this commit (GitLab's start_sha). */
  startSha?: string | undefined
  message: string
  author: Identity
  committer: Identity
  actions: FileAction[]
  /** Replace the branch with a commit on top of start_branch/start_sha (GitLab's force). */
  force?: boolean | undefined
}

export interface CommitResult {
  sha: string
  update: RefUpdate
}

/** Actions of one commit (GitLab has no limit; each costs a git process or two). */
export const MAX_ACTIONS = 1000
/** Attempts when the branch moves between reading its head and updating it (concurrent commits). */
const REF_RACE_ATTEMPTS = 3

const FILE_MODE = '100644'
const EXEC_MODE = '100755'
const DIR_MODE = '040000'

type Entry = { mode: string; oid: string } | null

/** Builds a commit from `req.actions` on top of the branch (or its start point) and moves the branch to it. */
export async function commitFiles(repos: GitRepos, projectId: number, req: CommitRequest): Promise<CommitResult> {
  checkRefName(req.branch)
  if (req.startBranch !== undefined) checkRefName(req.startBranch)
  if (req.startSha !== undefined) checkSha(req.startSha, 'start_sha')
  if (req.startBranch !== undefined && req.startSha !== undefined)
    throw new WharfError('BAD_REQUEST', 'start_branch, start_sha are mutually exclusive', {})
  if (req.actions.length === 0) throw new WharfError('BAD_REQUEST', 'actions is empty', {})
  if (req.actions.length > MAX_ACTIONS)
    throw new WharfError('BAD_REQUEST', `at most ${MAX_ACTIONS} actions per commit`, { limit: MAX_ACTIONS })
  if (req.message.trim() === '') throw new WharfError('BAD_REQUEST', 'commit_message is empty', {})
  for (const id of [req.author, req.committer]) checkIdentity(id)
  for (const a of req.actions) {
    checkTreePath(a.filePath)
    if (a.action === 'move') {
      if (a.previousPath === undefined)
        throw new WharfError('BAD_REQUEST', `previous_path is missing for moving ${a.filePath}`, { file_path: a.filePath })
      checkTreePath(a.previousPath)
    }
    if ((a.action === 'create' || a.action === 'update') && a.content === undefined) a.content = Buffer.alloc(0)
    if (a.action === 'chmod' && a.executeFilemode === undefined)
      throw new WharfError('BAD_REQUEST', `execute_filemode is missing for chmod of ${a.filePath}`, { file_path: a.filePath })
    if (a.lastCommitId !== undefined) checkSha(a.lastCommitId, 'last_commit_id')
  }
  for (let attempt = 1; ; attempt++) {
    const { parent, old } = await startingPoint(repos, projectId, req)
    const sha = await buildCommit(repos, projectId, parent, req)
    const ref = `refs/heads/${req.branch}`
    try {
      await repos.git(projectId, ['update-ref', '-m', 'commit via API', ref, sha, old ?? ZERO_SHA])
    } catch (e) {
      if (!(e instanceof GitCommandError) || attempt >= REF_RACE_ATTEMPTS) throw refFailure(e, req.branch)
      continue // the branch moved: build again on its new head (the checks run again too)
    }
    return {
      sha,
      update: { ref, name: req.branch, type: 'branch', oldSha: old ?? ZERO_SHA, newSha: sha, action: old ? 'update' : 'create' },
    }
  }
}

/** The parent of the new commit and the branch's current head (undefined: the branch is new). */
async function startingPoint(
  repos: GitRepos,
  projectId: number,
  req: CommitRequest,
): Promise<{ parent: string | undefined; old: string | undefined }> {
  const [head] = await repos.batchCheck(projectId, [`refs/heads/${req.branch}^{commit}`])
  const startGiven = req.startSha !== undefined || (req.startBranch !== undefined && req.startBranch !== req.branch)
  if (head && !(req.force && startGiven)) {
    if (startGiven && !req.force)
      throw new WharfError(
        'BAD_REQUEST',
        `A branch called '${req.branch}' already exists. Switch to that branch in order to make changes`,
        { branch: req.branch },
      )
    return { parent: head.oid, old: head.oid }
  }
  if (req.startSha !== undefined) {
    const [c] = await repos.batchCheck(projectId, [`${req.startSha}^{commit}`])
    if (!c) throw new WharfError('BAD_REQUEST', `Invalid start_sha: ${req.startSha}`, { start_sha: req.startSha })
    return { parent: c.oid, old: head?.oid }
  }
  if (req.startBranch !== undefined && req.startBranch !== req.branch) {
    const [c] = await repos.batchCheck(projectId, [`refs/heads/${req.startBranch}^{commit}`])
    if (!c) throw new WharfError('BAD_REQUEST', `Invalid reference name: ${req.startBranch}`, { start_branch: req.startBranch })
    return { parent: c.oid, old: head?.oid }
  }
  // A missing branch with no start point is a root commit only in a repository without branches (the first commit).
  const branches = await repos.git(projectId, ['for-each-ref', '--count=1', '--format=%(refname)', 'refs/heads/'])
  if (branches.stdout.length > 0)
    throw new WharfError('BAD_REQUEST', 'You can only create or edit files when you are on a branch', { branch: req.branch })
  return { parent: undefined, old: undefined }
}

/** Applies the actions to the parent's tree in a temporary index and writes the commit object (no ref moves). */
async function buildCommit(repos: GitRepos, projectId: number, parent: string | undefined, req: CommitRequest): Promise<string> {
  // What each touched path holds, in the parent and then as the actions apply one after another.
  const touched = [...new Set(req.actions.flatMap((a) => [a.filePath, ...(a.previousPath !== undefined ? [a.previousPath] : [])]))]
  // Their directories too: a file cannot be added below a file (git's index would take it, making a broken tree).
  const paths = [...new Set(touched.flatMap((p) => [...ancestors(p), p]))]
  const state = new Map<string, Entry>()
  const found = parent
    ? await repos.batchCheck(
        projectId,
        paths.map((p) => `${parent}:${p}`),
      )
    : []
  const modes = parent ? await treeModes(repos, projectId, parent, paths) : new Map<string, string>()
  paths.forEach((p, i) => {
    const f = found[i]
    state.set(p, f ? { mode: modes.get(p) ?? (f.type === 'tree' ? DIR_MODE : FILE_MODE), oid: f.oid } : null)
  })
  const missing = (p: string) => new WharfError('BAD_REQUEST', `A file with this name doesn't exist: ${p}`, { file_path: p })
  const exists = (p: string) => new WharfError('BAD_REQUEST', `A file with this name already exists: ${p}`, { file_path: p })
  const fileAt = (p: string) => {
    const e = state.get(p)
    if (!e || e.mode === DIR_MODE || e.mode === '160000') throw missing(p)
    return e
  }
  /** A file may be added at `p` when nothing is there and no directory above it is a file. */
  const place = (p: string) => {
    if (state.get(p)) throw exists(p)
    for (const dir of ancestors(p)) {
      const e = state.get(dir)
      if (e && e.mode !== DIR_MODE) throw exists(dir)
      if (!e) state.set(dir, { mode: DIR_MODE, oid: '' })
    }
  }
  for (const a of req.actions) {
    if (a.lastCommitId !== undefined && parent && a.action !== 'create') {
      const last = await lastCommitFor(repos, projectId, parent, a.previousPath ?? a.filePath)
      if (last !== a.lastCommitId)
        throw new WharfError('BAD_REQUEST', `The file has changed since you started editing it: ${a.filePath}`, {
          file_path: a.filePath,
          last_commit_id: last ?? null,
        })
    }
    const modeFor = (was: Entry) => (a.executeFilemode === undefined ? (was?.mode ?? FILE_MODE) : a.executeFilemode ? EXEC_MODE : FILE_MODE)
    switch (a.action) {
      case 'create':
        place(a.filePath)
        state.set(a.filePath, { mode: modeFor(null), oid: await writeBlob(repos, projectId, a.content!) })
        break
      case 'update': {
        const was = fileAt(a.filePath)
        state.set(a.filePath, { mode: modeFor(was), oid: await writeBlob(repos, projectId, a.content!) })
        break
      }
      case 'delete':
        fileAt(a.filePath)
        state.set(a.filePath, null)
        break
      case 'move': {
        const was = fileAt(a.previousPath!)
        const oid = a.content !== undefined ? await writeBlob(repos, projectId, a.content) : was.oid
        state.set(a.previousPath!, null)
        place(a.filePath)
        state.set(a.filePath, { mode: modeFor(was), oid })
        break
      }
      case 'chmod': {
        const was = fileAt(a.filePath)
        if (was.mode === '120000') throw new WharfError('BAD_REQUEST', `${a.filePath} is a symbolic link`, { file_path: a.filePath })
        state.set(a.filePath, { mode: modeFor(was), oid: was.oid })
        break
      }
    }
  }

  const index = repos.scratchFile()
  const env = { GIT_INDEX_FILE: index }
  try {
    await repos.git(projectId, parent ? ['read-tree', parent] : ['read-tree', '--empty'], { env })
    // Removals first, so a path can change between file and directory within one commit.
    const lines = [...state]
    const removals = lines.filter(([, e]) => e === null).map(([p]) => `0 ${ZERO_SHA}\t${p}\0`)
    const additions = lines.filter(([, e]) => e !== null && e.mode !== DIR_MODE).map(([p, e]) => `${e!.mode} ${e!.oid}\t${p}\0`)
    try {
      await repos.git(projectId, ['update-index', '-z', '--index-info'], { env, input: removals.join('') })
      await repos.git(projectId, ['update-index', '-z', '--add', '--index-info'], { env, input: additions.join('') })
      // A file where a directory is (or the reverse) is refused by write-tree as a broken index.
      const tree = (await repos.git(projectId, ['write-tree'], { env })).stdout.toString('utf8').trim()
      const args = ['commit-tree', tree, ...(parent ? ['-p', parent] : []), '-F', '-']
      const when = `${Math.floor(Date.now() / 1000)} +0000`
      const identity = {
        GIT_AUTHOR_NAME: req.author.name,
        GIT_AUTHOR_EMAIL: req.author.email,
        GIT_AUTHOR_DATE: when,
        GIT_COMMITTER_NAME: req.committer.name,
        GIT_COMMITTER_EMAIL: req.committer.email,
        GIT_COMMITTER_DATE: when,
      }
      const message = req.message.endsWith('\n') ? req.message : `${req.message}\n`
      return (await repos.git(projectId, args, { env: { ...env, ...identity }, input: message })).stdout.toString('utf8').trim()
    } catch (e) {
      if (e instanceof GitCommandError)
        throw new WharfError(
          'BAD_REQUEST',
          `the changes do not make a valid tree: ${e.stderr.trim().split('\n')[0] ?? ''}`,
          {},
          { cause: e },
        )
      throw e
    }
  } finally {
    await rm(index, { force: true })
    await rm(`${index}.lock`, { force: true })
  }
}

/** Modes of paths in a commit's tree (ls-tree prints them; cat-file does not). */
async function treeModes(repos: GitRepos, projectId: number, commit: string, paths: readonly string[]): Promise<Map<string, string>> {
  const out = await repos.git(projectId, ['ls-tree', '-z', '--full-tree', commit, '--', ...paths.map(literal)])
  const modes = new Map<string, string>()
  for (const entry of out.stdout.toString('utf8').split('\0')) {
    const tab = entry.indexOf('\t')
    if (tab > 0) modes.set(entry.slice(tab + 1), entry.split(' ')[0]!)
  }
  return modes
}

/** `a/b/c` → `a`, `a/b`. */
function ancestors(path: string): string[] {
  const parts = path.split('/')
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join('/'))
}

/** The last commit up to `from` that changed `path`, as GitLab's last_commit_id. */
export async function lastCommitFor(repos: GitRepos, projectId: number, from: string, path: string): Promise<string | undefined> {
  const out = await repos.git(projectId, ['rev-list', '-1', from, '--', literal(path)])
  return out.stdout.toString('utf8').trim() || undefined
}

/** A pathspec that matches this path only (no globbing, no magic). */
export function literal(path: string): string {
  return `:(literal)${path}`
}

async function writeBlob(repos: GitRepos, projectId: number, content: Buffer): Promise<string> {
  return (await repos.git(projectId, ['hash-object', '-w', '--stdin'], { input: content })).stdout.toString('utf8').trim()
}

function checkIdentity(id: Identity): void {
  // git writes `name <email>` verbatim: these would forge the header or break it.
  // eslint-disable-next-line no-control-regex
  if (/[<>\n\0]/.test(id.name) || /[<>\n\0\s]/.test(id.email) || id.name.trim() === '') {
    throw new WharfError('BAD_REQUEST', 'author_name and author_email must be a plain name and address', {})
  }
}

function refFailure(e: unknown, name: string): Error {
  if (e instanceof GitCommandError)
    return new WharfError('CONFLICT', `${name} was updated by someone else meanwhile; try again`, { ref: name }, { cause: e })
  return e as Error
}

/** Creates `refs/heads/<name>` or `refs/tags/<name>` at `target`; refuses an existing one. */
export async function createRef(
  repos: GitRepos,
  projectId: number,
  kind: 'branch' | 'tag',
  name: string,
  target: string,
): Promise<RefUpdate> {
  checkRefName(name)
  if (!isSha(target)) throw new WharfError('BAD_REQUEST', 'invalid target', {})
  const ref = `refs/${kind === 'branch' ? 'heads' : 'tags'}/${name}`
  try {
    await repos.git(projectId, ['update-ref', '-m', `${kind} created via API`, ref, target, ZERO_SHA])
  } catch (e) {
    if (!(e instanceof GitCommandError)) throw e
    const [existing] = await repos.batchCheck(projectId, [ref])
    if (existing) throw new WharfError('BAD_REQUEST', kind === 'branch' ? 'Branch already exists' : `Tag ${name} already exists`, { name })
    // e.g. `a/b` while a branch `a` exists (or the reverse): git keeps refs as files.
    throw new WharfError('BAD_REQUEST', kind === 'branch' ? 'Branch name is invalid' : 'Tag name invalid', { name }, { cause: e })
  }
  return { ref, name, type: kind, oldSha: ZERO_SHA, newSha: target, action: 'create' }
}

/** Deletes a branch or tag, only if it still points where it did when read (no lost update). */
export async function deleteRef(repos: GitRepos, projectId: number, kind: 'branch' | 'tag', name: string): Promise<RefUpdate | undefined> {
  checkRefName(name)
  const ref = `refs/${kind === 'branch' ? 'heads' : 'tags'}/${name}`
  const [found] = await repos.batchCheck(projectId, [ref])
  if (!found) return undefined
  try {
    await repos.git(projectId, ['update-ref', '-m', `${kind} deleted via API`, '-d', ref, found.oid])
  } catch (e) {
    throw refFailure(e, name)
  }
  return { ref, name, type: kind, oldSha: found.oid, newSha: ZERO_SHA, action: 'delete' }
}

/** An annotated tag object (`git mktag`) naming `commit`; returns its object name. */
export async function writeTagObject(
  repos: GitRepos,
  projectId: number,
  name: string,
  commit: string,
  message: string,
  tagger: Identity,
): Promise<string> {
  checkRefName(name)
  checkSha(commit)
  checkIdentity(tagger)
  const body = `object ${commit}\ntype commit\ntag ${name}\ntagger ${tagger.name} <${tagger.email}> ${Math.floor(Date.now() / 1000)} +0000\n\n${message.endsWith('\n') ? message : `${message}\n`}`
  return (await repos.git(projectId, ['mktag'], { input: body })).stdout.toString('utf8').trim()
}
