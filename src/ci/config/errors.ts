import { WharfError } from '../../core/errors.ts'

/**
 * An invalid `.gitlab-ci.yml`: every problem found, each naming the job and key the way GitLab
 * words it (`jobs:build config contains unknown keys: scirpt`). Raised by `parseCiConfig`; the
 * pipeline is then created as failed with these messages (GitLab's "yaml invalid").
 */
export class CiConfigError extends WharfError {
  readonly errors: readonly string[]
  constructor(errors: readonly string[]) {
    super('BAD_REQUEST', errors.length === 1 ? (errors[0] ?? '') : errors.join('\n'), { errors: [...errors] })
    this.name = 'CiConfigError'
    this.errors = errors
  }
}

export function isCiConfigError(e: unknown): e is CiConfigError {
  return e instanceof CiConfigError
}
