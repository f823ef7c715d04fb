import type { ErrorCode } from '../core/errors.ts'

export interface OciError {
  status: number
  /** The wire code: a spec code, or the closest one for Wharf's own conditions. */
  code: string
  message: string
}

/** Wire code, status and spec message for every domain code (total, so a new code cannot fall through to a 500). */
export const OCI_ERRORS: Record<ErrorCode, OciError> = {
  BLOB_UNKNOWN: { status: 404, code: 'BLOB_UNKNOWN', message: 'blob unknown to registry' },
  BLOB_UPLOAD_INVALID: { status: 400, code: 'BLOB_UPLOAD_INVALID', message: 'blob upload invalid' },
  BLOB_UPLOAD_UNKNOWN: { status: 404, code: 'BLOB_UPLOAD_UNKNOWN', message: 'blob upload unknown to registry' },
  DIGEST_INVALID: { status: 400, code: 'DIGEST_INVALID', message: 'provided digest did not match uploaded content' },
  MANIFEST_BLOB_UNKNOWN: {
    status: 400,
    code: 'MANIFEST_BLOB_UNKNOWN',
    message: 'manifest references a manifest or blob unknown to registry',
  },
  MANIFEST_INVALID: { status: 400, code: 'MANIFEST_INVALID', message: 'manifest invalid' },
  MANIFEST_UNKNOWN: { status: 404, code: 'MANIFEST_UNKNOWN', message: 'manifest unknown to registry' },
  NAME_INVALID: { status: 400, code: 'NAME_INVALID', message: 'invalid repository name' },
  NAME_UNKNOWN: { status: 404, code: 'NAME_UNKNOWN', message: 'repository name not known to registry' },
  SIZE_INVALID: { status: 400, code: 'SIZE_INVALID', message: 'provided length did not match content length' },
  UNAUTHORIZED: { status: 401, code: 'UNAUTHORIZED', message: 'authentication required' },
  DENIED: { status: 403, code: 'DENIED', message: 'requested access to the resource is denied' },
  UNSUPPORTED: { status: 405, code: 'UNSUPPORTED', message: 'the operation is unsupported' },
  TOOMANYREQUESTS: { status: 429, code: 'TOOMANYREQUESTS', message: 'too many requests' },
  // Not in the spec; distribution's errcode.ErrorCodeUnavailable, which docker and containerd retry.
  UNAVAILABLE: { status: 503, code: 'UNAVAILABLE', message: 'service unavailable' },
  // Wharf conditions with their own status, reported with the closest spec code.
  RANGE_INVALID: { status: 416, code: 'BLOB_UPLOAD_INVALID', message: 'upload chunk out of order' },
  RANGE_NOT_SATISFIABLE: { status: 416, code: 'SIZE_INVALID', message: 'requested range not satisfiable' },
  MANIFEST_TOO_LARGE: { status: 413, code: 'MANIFEST_INVALID', message: 'manifest too large' },
  TOO_LARGE: { status: 413, code: 'SIZE_INVALID', message: 'content too large' },
  PAGINATION_INVALID: { status: 400, code: 'PAGINATION_NUMBER_INVALID', message: 'invalid number of results requested' },
  BAD_REQUEST: { status: 400, code: 'UNSUPPORTED', message: 'bad request' },
  NOT_FOUND: { status: 404, code: 'NAME_UNKNOWN', message: 'not found' },
  CONFLICT: { status: 409, code: 'UNSUPPORTED', message: 'conflict' },
  FORBIDDEN: { status: 403, code: 'DENIED', message: 'requested access to the resource is denied' },
  ROUTE_UNKNOWN: { status: 404, code: 'NOT_FOUND', message: 'no such registry endpoint' },
  // distribution's errcode.ErrorCodeUnavailable: the pull-through cache cannot reach its upstream.
  UPSTREAM_UNAVAILABLE: { status: 503, code: 'UNAVAILABLE', message: 'service unavailable' },
}

export interface OciErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>
}
