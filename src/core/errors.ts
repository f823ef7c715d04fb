// Domain errors carry a stable code and never an HTTP status: each protocol edge
// (registry /v2, REST API) maps codes to its own wire format in one table.

export const ERROR_CODES = [
  // OCI Distribution Spec error codes (wire values, see registry/oci-errors.ts)
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  // Wharf-specific conditions
  'RANGE_INVALID',
  'RANGE_NOT_SATISFIABLE',
  'MANIFEST_TOO_LARGE',
  'PAGINATION_INVALID',
  'ROUTE_UNKNOWN',
  /** The pull-through cache's upstream is unreachable, failing or timed out, and nothing is cached. */
  'UPSTREAM_UNAVAILABLE',
  // API conditions (problem+json on /api)
  'BAD_REQUEST',
  'NOT_FOUND',
  'CONFLICT',
  'FORBIDDEN',
] as const

export type ErrorCode = (typeof ERROR_CODES)[number]

export class WharfError extends Error {
  readonly code: ErrorCode
  readonly detail: Record<string, unknown>
  constructor(code: ErrorCode, message: string, detail: Record<string, unknown> = {}, opts?: ErrorOptions) {
    super(message, opts)
    this.name = 'WharfError'
    this.code = code
    this.detail = detail
  }
}

export function isWharfError(e: unknown): e is WharfError {
  return e instanceof WharfError
}
