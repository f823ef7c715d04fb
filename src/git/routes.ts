import { Readable } from 'node:stream'
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { bindPrincipal } from '../auth/actor.ts'
import { basicCredentials } from '../auth/token-routes.ts'
import { ANONYMOUS, principalName, type Principal } from '../auth/principals.ts'
import { isWharfError, unavailableFrom, WharfError, type ErrorCode } from '../core/errors.ts'
import { gitEnv, runGitCgi } from './exec.ts'
import { isClientDisconnect } from '../core/disconnect.ts'
import type { GitHosting } from './service.ts'

// Git's smart HTTP protocol at GitLab's URLs, served by `git http-backend` as a CGI:
//
//   GET  /<namespace…>/<project>.git/info/refs?service=git-upload-pack|git-receive-pack
//   POST /<namespace…>/<project>.git/git-upload-pack
//   POST /<namespace…>/<project>.git/git-receive-pack
//
// Project paths have any depth, which Fastify's router cannot express as a pattern; so the
// routes are `/*` wildcards behind a router constraint (`wharfGit`) derived from the URL. Only
// URLs of exactly these three shapes carry it: every other URL, `.git` or not, routes (or 404s)
// as if this plugin did not exist, and another plugin may still own `/*`.

export const GIT_ENDPOINTS = ['info/refs', 'git-upload-pack', 'git-receive-pack'] as const
export type GitEndpoint = (typeof GIT_ENDPOINTS)[number]
export const GIT_SERVICES = ['git-upload-pack', 'git-receive-pack'] as const
export type GitService = (typeof GIT_SERVICES)[number]

export interface GitUrl {
  /** `group/sub/project`, as written in the URL (lookup ignores letter case). */
  projectPath: string
  endpoint: GitEndpoint
  /** The raw query string, without `?`. */
  query: string
}

const GIT_URL = /^\/((?:[A-Za-z0-9][A-Za-z0-9._-]*\/)+[A-Za-z0-9][A-Za-z0-9._-]*)\.git\/(info\/refs|git-upload-pack|git-receive-pack)$/

/** Recognises a smart HTTP URL; undefined for anything else. Cheap: runs for every request's routing. */
export function parseGitUrl(url: string): GitUrl | undefined {
  if (!url.includes('.git/')) return undefined
  const q = url.indexOf('?')
  const path = q < 0 ? url : url.slice(0, q)
  const m = GIT_URL.exec(path)
  if (!m) return undefined
  const projectPath = m[1]!
  if (projectPath.split('/').some((s) => s.includes('..') || s.endsWith('.git'))) return undefined
  return { projectPath, endpoint: m[2] as GitEndpoint, query: q < 0 ? '' : url.slice(q + 1) }
}

/** Git sends `Git-Protocol: version=2` (colon-separated key=value pairs); anything else is dropped. */
export function gitProtocolHeader(v: string | string[] | undefined): string | undefined {
  const s = Array.isArray(v) ? v[0] : v
  return s && s.length <= 256 && /^[A-Za-z0-9._=:-]+$/.test(s) ? s : undefined
}

export const REALM = 'Wharf'

export interface GitRouteOptions {
  git: GitHosting
}

export async function gitRoutes(app: FastifyInstance, opts: GitRouteOptions): Promise<void> {
  const { git } = opts
  app.addHook('onClose', async () => git.close())
  app.addConstraintStrategy({
    name: 'wharfGit',
    mustMatchWhenDerived: false,
    storage() {
      const handlers = new Map<string, unknown>()
      return {
        get: (k: string) => (handlers.get(k) ?? null) as never,
        set: (k: string, v: unknown) => void handlers.set(k, v),
      }
    },
    deriveConstraint: (req: { url?: string }) => parseGitUrl(req.url ?? '')?.endpoint,
    validate(v: unknown) {
      if (!GIT_ENDPOINTS.includes(v as GitEndpoint)) throw new Error(`wharfGit constraint must be one of ${GIT_ENDPOINTS.join(', ')}`)
    },
  })
  // Pack bodies stream straight into http-backend: no parsing, no body limit.
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  app.setErrorHandler(gitErrorHandler)

  const handler = (req: FastifyRequest, reply: FastifyReply) => serve(git, req, reply)
  app.get('/*', { constraints: { wharfGit: 'info/refs' }, config: { routeTemplate: '/:project.git/info/refs' } }, handler)
  app.post('/*', { constraints: { wharfGit: 'git-upload-pack' }, config: { routeTemplate: '/:project.git/git-upload-pack' } }, handler)
  app.post('/*', { constraints: { wharfGit: 'git-receive-pack' }, config: { routeTemplate: '/:project.git/git-receive-pack' } }, handler)
}

async function serve(git: GitHosting, req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
  const target = parseGitUrl(req.url)
  if (!target) throw new WharfError('NOT_FOUND', 'not found', {})
  let service: GitService
  if (target.endpoint === 'info/refs') {
    const s = new URLSearchParams(target.query).get('service')
    // Dumb HTTP would need the repository served as static files; every git since 1.6.6 speaks smart HTTP.
    if (!GIT_SERVICES.includes(s as GitService))
      throw new WharfError('FORBIDDEN', 'only the smart HTTP protocol is supported: use a git client newer than 1.6.6', {})
    service = s as GitService
  } else {
    service = target.endpoint as GitService
  }
  const push = service === 'git-receive-pack'

  const basic = basicCredentials(req.headers.authorization)
  const principal: Principal = basic ? await git.authenticate(basic.username, basic.password, req.ip) : ANONYMOUS
  bindPrincipal(req, principal)
  const project = await git.findProject(target.projectPath)
  const access = await git.access(principal, project)
  // Anonymous callers are asked to sign in rather than told whether a project exists; signed-in
  // ones get the same 404 for a project they cannot see as for one that does not exist.
  if (!access.read) {
    if (access.denyRead) throw new WharfError('FORBIDDEN', access.denyRead, {})
    if (principal.kind === 'anonymous') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
    throw new WharfError('NOT_FOUND', 'the project you were looking for could not be found, or you are not allowed to see it', {})
  }
  if (push && !access.write) {
    if (principal.kind === 'anonymous') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
    throw new WharfError('FORBIDDEN', access.denyWrite ?? 'you are not allowed to push to this project', {})
  }
  const p = project!
  await git.repository(p)

  const spool = push && req.method === 'POST' ? await git.pushSpool(p, principal) : undefined
  const header = (n: string) => {
    const v = req.headers[n]
    return Array.isArray(v) ? v[0] : v
  }
  const env = gitEnv({
    GIT_PROJECT_ROOT: git.repos.root,
    GIT_HTTP_EXPORT_ALL: '1',
    PATH_INFO: `${git.repos.pathInfoFor(p.id)}/${target.endpoint}`,
    REQUEST_METHOD: req.method,
    QUERY_STRING: target.query,
    REMOTE_ADDR: req.ip,
    // Without a content length http-backend reads to end of input (chunked pushes).
    ...(header('content-length') ? { CONTENT_LENGTH: header('content-length')! } : {}),
    ...(header('content-type') ? { CONTENT_TYPE: header('content-type')! } : {}),
    ...(principal.kind !== 'anonymous' ? { REMOTE_USER: principalName(principal) } : {}),
    ...(gitProtocolHeader(req.headers['git-protocol']) ? { GIT_PROTOCOL: gitProtocolHeader(req.headers['git-protocol'])! } : {}),
    ...(/^(x-)?gzip$/i.test(header('content-encoding') ?? '') ? { HTTP_CONTENT_ENCODING: header('content-encoding')! } : {}),
    ...(spool ? { WHARF_PUSH_LOG: spool, WHARF_PUSH_RULES: git.pushRulesFile(spool) } : {}),
  })
  const config = {
    'core.hooksPath': git.repos.hooksDir,
    // Authorization happened above; http-backend's own REMOTE_USER rule is replaced by it.
    'http.receivepack': String(push),
    'http.uploadpack': 'true',
    'uploadpack.allowFilter': 'true',
    'uploadpack.allowReachableSHA1InWant': 'true',
  }

  const abort = new AbortController()
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) abort.abort()
  })
  const cgi = await runGitCgi({
    command: 'git',
    args: [...Object.entries(config).flatMap(([k, v]) => ['-c', `${k}=${v}`]), 'http-backend'],
    env,
    body: req.method === 'POST' ? req.raw : null,
    signal: abort.signal,
  }).catch(async (e: unknown) => {
    // No backend ran (no slot, no process): the push's spool files go (completePush finds no updates).
    if (spool) await git.completePush(p, principal, spool, req.ip, req.log)
    throw e
  })
  const finished = cgi.done.then(async (r) => {
    if (r.code !== 0 && !abort.signal.aborted)
      req.log.warn({ code: r.code, signal: r.signal, stderr: r.stderr.slice(0, 2000) }, 'git http-backend failed')
    // The refs are updated even when the client went away: the event is still delivered.
    if (spool) await git.completePush(p, principal, spool, req.ip, req.log)
  })
  async function* body(): AsyncGenerator<Buffer> {
    for await (const c of cgi.body) yield c as Buffer
    // The response ends once the push is recorded, so a client that saw its push succeed finds it.
    await finished
  }
  reply.code(cgi.status)
  for (const [name, value] of cgi.headers) {
    const prev = reply.getHeader(name)
    reply.header(name, prev === undefined ? value : [...(Array.isArray(prev) ? prev : [String(prev)]), value])
  }
  if (principal.kind !== 'anonymous') req.log.debug({ user: principalName(principal), project: p.full_path, service }, 'git request')
  return reply.send(Readable.from(body(), { objectMode: false }))
}

/**
 * Smart HTTP's statuses, total over the domain codes: git prints a 4xx's text as `remote: …`
 * (401 makes it ask for credentials), and retries nothing, so every code gets its plain meaning.
 */
export const GIT_ERRORS: Record<ErrorCode, number> = {
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

/** Errors as git shows them: plain text (git prints it as `remote: …`), 401 with a Basic challenge. */
export function gitErrorHandler(error: FastifyError | Error, req: FastifyRequest, reply: FastifyReply): void {
  if (reply.sent || reply.raw.headersSent) return
  // Out of descriptors or processes (opening a file, starting git): the server is busy, not broken.
  const err = unavailableFrom(error) ?? error
  const status = isWharfError(err)
    ? GIT_ERRORS[err.code]
    : 'statusCode' in err && typeof err.statusCode === 'number' && err.statusCode < 500
      ? err.statusCode
      : 500
  if (status === 503) req.log.warn({ err }, 'git request refused: server busy')
  else if (status >= 500 && isClientDisconnect(err))
    req.log.info({ method: req.method, url: req.url, err: err.message }, 'client disconnected')
  else if (status >= 500) req.log.error({ err }, 'git request failed')
  if (status === 401) void reply.header('WWW-Authenticate', `Basic realm="${REALM}"`)
  if ((status === 429 || status === 503) && isWharfError(err) && typeof err.detail.retryAfter === 'number')
    void reply.header('Retry-After', String(err.detail.retryAfter))
  const message =
    status === 401 ? 'HTTP Basic: Access denied' : status === 503 ? err.message : status >= 500 ? 'internal server error' : err.message
  void reply.code(status).type('text/plain; charset=utf-8').send(`${message}\n`)
}
