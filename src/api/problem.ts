import type { FastifyReply, FastifyRequest } from 'fastify'
import { unavailableFrom, WharfError, type ErrorCode } from '../core/errors.ts'
import { isClientDisconnect } from '../core/disconnect.ts'

/**
 * The REST API's error table: every domain code maps to an HTTP status here and nowhere else.
 * Bodies are RFC 9457 problem details plus GitLab's `message`, which GitLab clients print.
 */
export const API_ERRORS: Record<ErrorCode, number> = {
  BAD_REQUEST: 400,
  NAME_INVALID: 400,
  DIGEST_INVALID: 400,
  MANIFEST_INVALID: 400,
  SIZE_INVALID: 400,
  RANGE_INVALID: 400,
  PAGINATION_INVALID: 400,
  BLOB_UPLOAD_INVALID: 400,
  UNAUTHORIZED: 401,
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
  RANGE_NOT_SATISFIABLE: 416,
  TOOMANYREQUESTS: 429,
  UNSUPPORTED: 501,
  UNAVAILABLE: 503,
  UPSTREAM_UNAVAILABLE: 503,
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  416: 'Range Not Satisfiable',
  429: 'Too Many Requests',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
}

export interface Problem {
  type: string
  title: string
  status: number
  detail: string
  /** GitLab's error field: clients such as python-gitlab and the gitlab CLI show it. */
  message: string
  code?: string
}

export function problem(status: number, detail: string, code?: string): Problem {
  const title = TITLES[status] ?? 'Error'
  return { type: 'about:blank', title, status, detail, message: `${status} ${detail}`, ...(code ? { code } : {}) }
}

/**
 * GitLab answers errors as `application/json`, and clients key on that type: gitbeaker parses an
 * error body (and shows its `message`) only when the type contains `application/json`, else it
 * shows the raw text. So the body is RFC 9457's, but it is labelled `application/problem+json` only
 * for a client whose Accept asks for that type.
 */
export function problemType(accept: string | undefined): 'application/json' | 'application/problem+json' {
  return accept?.toLowerCase().includes('application/problem+json') ? 'application/problem+json' : 'application/json'
}

export function sendProblem(reply: FastifyReply, p: Problem): FastifyReply {
  return reply.code(p.status).type(problemType(reply.request.headers.accept)).send(p)
}

/**
 * The API plugin's error handler: domain errors by table, framework 4xx as they are, anything else
 * a bare 500. `statuses` is another problem+json edge's own table (the runner API's).
 */
export function apiErrorHandler(
  error: Error & { statusCode?: number; validation?: unknown },
  req: FastifyRequest,
  reply: FastifyReply,
  statuses: Readonly<Record<ErrorCode, number>> = API_ERRORS,
): FastifyReply {
  // Out of descriptors or processes (opening a file, starting git): the server is busy, not broken.
  const err = unavailableFrom(error) ?? error
  if (err instanceof WharfError) {
    const status = statuses[err.code]
    if (status === 401) reply.header('WWW-Authenticate', 'Bearer realm="api"')
    if ((status === 429 || status === 503) && typeof err.detail.retryAfter === 'number')
      reply.header('Retry-After', String(err.detail.retryAfter))
    if (status === 503) req.log.warn({ err }, 'api request refused: server busy')
    else if (status >= 500) req.log.error({ err }, 'api request failed')
    return sendProblem(reply, problem(status, err.message, err.code))
  }
  if (err.validation)
    return sendProblem(reply, problem(400, validationDetail(err as Error & { validation: ValidationIssue[] }), 'BAD_REQUEST'))
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500)
    return sendProblem(reply, problem(err.statusCode, err.message))
  if (isClientDisconnect(err)) req.log.info({ method: req.method, url: req.url, err: err.message }, 'client disconnected')
  else req.log.error({ err }, 'api request failed')
  return sendProblem(reply, problem(500, 'internal server error'))
}

interface ValidationIssue {
  keyword: string
  instancePath: string
  params: { additionalProperty?: string }
}

/**
 * ajv's message for a forbidden property ("must NOT have additional properties") does not say which;
 * GitLab clients show `message`, so name it: `unknown attribute: creator_id` (`variables.0.foo` when nested).
 */
function validationDetail(err: Error & { validation: ValidationIssue[] }): string {
  const extra = err.validation.find((v) => v.keyword === 'additionalProperties' && v.params.additionalProperty !== undefined)
  if (!extra) return err.message
  const at = extra.instancePath.split('/').filter(Boolean)
  return `unknown attribute: ${[...at, extra.params.additionalProperty].join('.')}`
}
