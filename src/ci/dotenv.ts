// `artifacts:reports:dotenv`: a job's KEY=VALUE file, whose variables reach the jobs that take its
// artifacts (dependencies, needs, later stages), as GitLab's Ci::ParseDotenvArtifactService reads it.

export const DOTENV_LIMITS = {
  /** GitLab's plan limits dotenv_size (5 KB) and dotenv_variables (20). */
  bytes: 5 * 1024,
  variables: 20,
} as const

/** A dotenv file GitLab would refuse; the message is GitLab's. */
export class DotenvError extends Error {
  override name = 'DotenvError'
}

const KEY = /^[a-zA-Z0-9_]+$/

/**
 * The variables of a dotenv file, later lines winning. One `KEY=VALUE` per line, both trimmed; as
 * on GitLab, blank lines and comments are errors, quotes are kept and nothing is expanded.
 */
export function parseDotenv(text: string): Array<{ key: string; value: string }> {
  if (Buffer.byteLength(text) > DOTENV_LIMITS.bytes) {
    throw new DotenvError(`Dotenv Artifact Too Big. Maximum Allowable Size: ${DOTENV_LIMITS.bytes / 1024} KB`)
  }
  const lines = text.split('\n')
  if (lines.at(-1) === '') lines.pop()
  const out = new Map<string, string>()
  for (const line of lines) {
    const eq = line.indexOf('=')
    if (eq < 0) throw new DotenvError('Invalid Format')
    const key = line.slice(0, eq).trim()
    if (!KEY.test(key)) throw new DotenvError(`Invalid Key: ${key === '' ? '(empty)' : key}`)
    out.delete(key)
    out.set(key, line.slice(eq + 1).trim())
  }
  if (out.size > DOTENV_LIMITS.variables) {
    throw new DotenvError(`Dotenv files cannot have more than ${DOTENV_LIMITS.variables} variables`)
  }
  return [...out].map(([key, value]) => ({ key, value }))
}
