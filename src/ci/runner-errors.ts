import type { ErrorCode } from '../core/errors.ts'

/**
 * The runner API's statuses (RFC 9457 problem bodies, as the rest of /api/v4), total over the domain
 * codes. gitlab-runner acts on the status alone: 403 and 404 on a job update or trace append stop
 * the job (its token is revoked or the job is gone), 416 on a trace append resends from the offset
 * in the `Range` header, 413 on an artifacts upload gives up, 429 and 5xx are retried.
 */
export const RUNNER_ERRORS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  SIZE_INVALID: 400,
  RANGE_INVALID: 400,
  PAGINATION_INVALID: 400,
  BLOB_UPLOAD_INVALID: 400,
  UNAUTHORIZED: 401,
  // A wrong runner or job token, or a job that is no longer running (with its `Job-Status`).
  DENIED: 403,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  NAME_UNKNOWN: 404,
  MANIFEST_UNKNOWN: 404,
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_UNKNOWN: 404,
  MANIFEST_BLOB_UNKNOWN: 404,
  ROUTE_UNKNOWN: 404,
  CONFLICT: 409,
  MANIFEST_TOO_LARGE: 413,
  TOO_LARGE: 413,
  // A trace append that does not start where the stored log ends.
  RANGE_NOT_SATISFIABLE: 416,
  TOOMANYREQUESTS: 429,
  UNSUPPORTED: 501,
  UNAVAILABLE: 503,
  UPSTREAM_UNAVAILABLE: 503,
}
