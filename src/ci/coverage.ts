import { patternFromString } from './config/expression.ts'

// `coverage:`: the percentage a job reports in its log, found as GitLab's Trace#extract_coverage
// does: the last line the regular expression matches, its last match (or last capture group),
// and the first number in that text.

export const COVERAGE_LIMITS = {
  /** Only the log's tail is searched: the summary comes at the end, and a huge log costs no more. */
  tailBytes: 1 << 20,
} as const

/** The coverage `pattern` (`/.../`, as written in the YAML) finds in `log`, or null. */
export function extractCoverage(log: string, pattern: string): number | null {
  const re = patternFromString(pattern)
  if (!re) return null
  const global = new RegExp(re.source, re.flags.includes('g') ? re.flags : `${re.flags}g`)
  const lines = log.split('\n')
  for (let i = lines.length - 1; i >= 0; i--) {
    const matches = [...(lines[i] as string).replace(/\r$/, '').matchAll(global)]
    const last = matches.at(-1)
    if (!last) continue
    const text = last.length > 1 ? (last.slice(1).findLast((g) => g !== undefined) ?? '') : last[0]
    const number = /\d+(\.\d+)?/.exec(text)
    if (number) return Number(number[0])
  }
  return null
}
