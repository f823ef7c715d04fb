import { WharfError } from '../core/errors.ts'
import { wholeMatch } from '../core/linear-regex.ts'

// Which tags a bulk delete (GitLab's DELETE .../registry/repositories/:id/tags) removes. Pure, so
// the rules are tested without a database.

export interface CleanupRules {
  /** Tags matching this (whole name) are candidates. */
  nameRegexDelete: string
  /** ...unless they match this. */
  nameRegexKeep?: string | undefined
  /** The newest N candidates stay. */
  keepN?: number | undefined
  /** Only candidates older than this go (GitLab's human form: 1h, 7d, 1month). */
  olderThan?: string | undefined
}

export interface TagAge {
  name: string
  /** When its manifest was created (GitLab orders by that, not by the tag push). */
  createdAt: string
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 7 * 86_400, month: 30 * 86_400, y: 365 * 86_400 }
const UNIT_NAMES: Record<string, string> = {
  sec: 's',
  second: 's',
  seconds: 's',
  min: 'm',
  minute: 'm',
  minutes: 'm',
  hour: 'h',
  hours: 'h',
  day: 'd',
  days: 'd',
  week: 'w',
  weeks: 'w',
  months: 'month',
  year: 'y',
  years: 'y',
}

/** GitLab's `older_than` ("1h", "7d", "14 days", "1month") in seconds; BAD_REQUEST otherwise. */
export function parseOlderThan(text: string): number {
  const m = /^\s*(\d{1,6})\s*([a-z]+)\s*$/i.exec(text)
  const unit = m && (UNIT_NAMES[m[2]!.toLowerCase()] ?? m[2]!.toLowerCase())
  if (!m || !unit || UNITS[unit] === undefined)
    throw new WharfError('BAD_REQUEST', 'older_than must be a number and a unit, such as 1h, 7d, 14d, 1month', { field: 'older_than' })
  return Number(m[1]) * UNITS[unit]
}

/**
 * The tags to delete, as GitLab's cleanup does: those matching name_regex_delete and not
 * name_regex_keep, never `latest`, minus the keep_n newest (by manifest creation), minus those
 * not older than older_than.
 */
export function tagsToDelete(tags: readonly TagAge[], rules: CleanupRules, now = Date.now()): string[] {
  const del = wholeMatch(rules.nameRegexDelete, 'name_regex_delete')
  const keep = rules.nameRegexKeep ? wholeMatch(rules.nameRegexKeep, 'name_regex_keep') : undefined
  const olderThan = rules.olderThan ? parseOlderThan(rules.olderThan) : undefined
  const candidates = tags
    .filter((t) => t.name !== 'latest' && del.test(t.name) && !keep?.test(t.name))
    .sort((a, b) => (a.createdAt === b.createdAt ? a.name.localeCompare(b.name) : a.createdAt < b.createdAt ? 1 : -1))
  const cutoff = olderThan === undefined ? undefined : new Date(now - olderThan * 1000).toISOString()
  return candidates
    .slice(rules.keepN ?? 0)
    .filter((t) => cutoff === undefined || t.createdAt < cutoff)
    .map((t) => t.name)
}
