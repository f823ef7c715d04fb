import { WharfError } from '../core/errors.ts'

// Grammar for what reaches git's command line: object names, ref names and paths inside a tree.
// Everything is checked here first, so no argument can be mistaken for an option.

/** SHA-1 (40) or SHA-256 (64) object names, lower-case hex as git prints them. */
const SHA = /^(?:[0-9a-f]{40}|[0-9a-f]{64})$/

export const ZERO_SHA = '0000000000000000000000000000000000000000'

export function isSha(s: string): boolean {
  return SHA.test(s)
}

export function isZeroSha(s: string): boolean {
  return /^0+$/.test(s)
}

export function checkSha(s: string, what = 'commit'): string {
  if (!isSha(s)) throw new WharfError('BAD_REQUEST', `${what} must be a full hexadecimal object name`, { value: s.slice(0, 80) })
  return s
}

/**
 * git check-ref-format's rules, for a full (`refs/heads/x`) or short (`x`, `feature/y`) name:
 * no control characters, space, `~ ^ : ? * [ \`, no `..`, `@{`, `//`, no component starting
 * with `.` or ending with `.lock`, not `@`, not starting with `-` or `/`, not ending with `/` or `.`.
 */
export function isRefName(s: string): boolean {
  if (s.length === 0 || s.length > 1024 || s === '@') return false
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x20\x7f~^:?*[\\]/.test(s)) return false
  if (s.includes('..') || s.includes('@{') || s.includes('//')) return false
  if (s.startsWith('-') || s.startsWith('/') || s.endsWith('/') || s.endsWith('.')) return false
  return s.split('/').every((c) => c.length > 0 && !c.startsWith('.') && !c.endsWith('.lock'))
}

export function checkRefName(s: string): string {
  if (!isRefName(s)) throw new WharfError('BAD_REQUEST', 'invalid ref name', { ref: s.slice(0, 200) })
  return s
}

/** A path inside a tree: relative, `/`-separated, no empty, `.` or `..` segments. */
export function checkTreePath(p: string): string {
  // eslint-disable-next-line no-control-regex
  if (p.length === 0 || p.length > 4096 || /[\x00\n]/.test(p) || p.split('/').some((s) => s === '' || s === '.' || s === '..')) {
    throw new WharfError('BAD_REQUEST', 'invalid file path', { path: p.slice(0, 200) })
  }
  return p
}

export type RefType = 'branch' | 'tag' | 'other'
export type RefAction = 'create' | 'update' | 'delete'

/** One ref a push changed, as post-receive reports it (`<old> <new> <ref>`). */
export interface RefUpdate {
  /** Full ref name, e.g. `refs/heads/main`. */
  ref: string
  /** Short name: `main` for `refs/heads/main`, `v1.0` for `refs/tags/v1.0`, else the full name. */
  name: string
  type: RefType
  /** Before the push; all zeros when the ref was created (as GitLab's CI_COMMIT_BEFORE_SHA). */
  oldSha: string
  /** After the push; all zeros when the ref was deleted. */
  newSha: string
  action: RefAction
}

export function classifyRef(ref: string): { type: RefType; name: string } {
  if (ref.startsWith('refs/heads/')) return { type: 'branch', name: ref.slice('refs/heads/'.length) }
  if (ref.startsWith('refs/tags/')) return { type: 'tag', name: ref.slice('refs/tags/'.length) }
  return { type: 'other', name: ref }
}

/**
 * Parses post-receive's standard input: one `<old-sha> SP <new-sha> SP <ref-name> LF` per updated ref.
 * Malformed lines are skipped (and returned, so the caller can log them); they cannot come from git.
 */
export function parseRefUpdates(text: string): { updates: RefUpdate[]; rejected: string[] } {
  const updates: RefUpdate[] = []
  const rejected: string[] = []
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue
    const m = /^([0-9a-f]{40}|[0-9a-f]{64}) ([0-9a-f]{40}|[0-9a-f]{64}) (refs\/\S+)$/.exec(line.replace(/\r$/, ''))
    if (!m || !isRefName(m[3]!)) {
      rejected.push(line.slice(0, 300))
      continue
    }
    const [, oldSha, newSha, ref] = m as unknown as [string, string, string, string]
    const created = isZeroSha(oldSha)
    const deleted = isZeroSha(newSha)
    if (created && deleted) {
      rejected.push(line.slice(0, 300))
      continue
    }
    updates.push({ ref, ...classifyRef(ref), oldSha, newSha, action: created ? 'create' : deleted ? 'delete' : 'update' })
  }
  return { updates, rejected }
}
