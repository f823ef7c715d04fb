import { setFlagsFromString } from 'node:v8'
import { WharfError } from './errors.ts'

// Patterns from users (GitLab's name_regex_*) must not be able to stall the event loop with
// catastrophic backtracking. V8's non-backtracking engine (the `l` flag) runs in linear time and,
// like the RE2 GitLab uses, refuses backreferences and lookarounds. It is behind a flag that only
// has to be set before the first `l` pattern is compiled.
setFlagsFromString('--enable-experimental-regexp-engine')

/** Longest pattern accepted (GitLab's own fields take short patterns). */
export const MAX_PATTERN_LENGTH = 255

/** Compiles a user's pattern to match whole strings (GitLab's `\A(...)\z`) in linear time; BAD_REQUEST naming the field otherwise. */
export function wholeMatch(pattern: string, field: string): RegExp {
  if (pattern.length > MAX_PATTERN_LENGTH)
    throw new WharfError('BAD_REQUEST', `${field} is longer than ${MAX_PATTERN_LENGTH} characters`, { field })
  try {
    return new RegExp(`^(?:${pattern})$`, 'l')
  } catch (e) {
    throw new WharfError(
      'BAD_REQUEST',
      `${field} is not a valid regular expression (RE2 syntax: no backreferences or lookarounds): ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`,
      { field },
    )
  }
}
