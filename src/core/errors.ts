// Domain errors carry a stable code and never an HTTP status: each protocol edge (registry /v2,
// REST API, runner API, git smart HTTP) maps codes to its own wire format in one table, a
// `Record<ErrorCode, …>` so that a new code does not compile until every edge has chosen its answer.

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
  /** A request body over a configured limit (an artifacts upload). */
  'TOO_LARGE',
  'PAGINATION_INVALID',
  'ROUTE_UNKNOWN',
  /** The pull-through cache's upstream is unreachable, failing or timed out, and nothing is cached. */
  'UPSTREAM_UNAVAILABLE',
  // API conditions (RFC 9457 problems on /api)
  'BAD_REQUEST',
  'NOT_FOUND',
  'CONFLICT',
  'FORBIDDEN',
  // The server is out of a resource (file descriptors, processes, its git queue): retry later.
  'UNAVAILABLE',
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

/** errno codes that mean "the process or machine is out of something", not "this request is wrong". */
const EXHAUSTED = new Set(['EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM'])

/** Seconds a client is told to wait (Retry-After) when the server is out of a resource. */
export const RETRY_AFTER_SECONDS = 5

/**
 * The UNAVAILABLE error for an errno error that means exhaustion (EMFILE: out of file descriptors,
 * ENFILE, EAGAIN for processes, ENOMEM), looked for along the `cause` chain; undefined for any other.
 */
export function unavailableFrom(e: unknown, what = 'the server'): WharfError | undefined {
  for (let c = e, depth = 0; c instanceof Error && depth < 5; c = c.cause, depth++) {
    if (c instanceof WharfError) return c.code === 'UNAVAILABLE' ? c : undefined
    const code = (c as NodeJS.ErrnoException).code
    if (typeof code === 'string' && EXHAUSTED.has(code)) {
      return new WharfError(
        'UNAVAILABLE',
        `${what} is out of resources (${code}); retry later`,
        { retryAfter: RETRY_AFTER_SECONDS, errno: code },
        { cause: c },
      )
    }
  }
  return undefined
}
