import type { FastifyReply, FastifyRequest } from 'fastify'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { ANONYMOUS, type Principal } from './principals.ts'
import { parseScopes, type RegistryAuth } from './registry-auth.ts'

export interface TokenRouteOptions {
  auth: RegistryAuth
}

type Params = Record<string, string | string[] | undefined>

const first = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v[0] : v)

/** Parses an `Authorization: Basic` header; undefined when absent or not Basic. */
export function basicCredentials(header: string | undefined): { username: string; password: string } | undefined {
  if (!header || !/^basic /i.test(header)) return undefined
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  const i = decoded.indexOf(':')
  if (i < 0) return undefined
  return { username: decoded.slice(0, i), password: decoded.slice(i + 1) }
}

/**
 * Docker token authentication (the "realm" of the registry's Bearer challenge).
 * GET: Basic credentials or none (anonymous). `offline_token=true` (what `docker login` sends) gets no
 *   refresh token, as with GitLab's registry: docker would store it in config.json as an
 *   `identitytoken`, a long-lived secret on disk that podman, buildah and skopeo refuse to log in
 *   over ("auth file contains an Identity token"); without it every client shares the file.
 * POST: the OAuth2 password and refresh_token grants, as containerd and podman use
 *   (`access_type=offline` asks for a refresh token).
 */
export async function tokenRoutes(app: TypedApp, opts: TokenRouteOptions): Promise<void> {
  const { auth } = opts
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: 64 << 10 }, (_req, body, done) => {
    const params: Params = {}
    for (const [k, v] of new URLSearchParams(body as string)) {
      const prev = params[k]
      params[k] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v]
    }
    done(null, params)
  })
  app.setErrorHandler((err: Error & { statusCode?: number }, req, reply) => tokenError(err, req, reply))

  app.get('/jwt/auth', async (req, reply) => {
    const query = req.query as Params
    checkService(first(query.service), auth.tokens.service)
    const basic = basicCredentials(req.headers.authorization)
    const principal: Principal = basic ? await auth.credentials.authenticate(basic.username, basic.password, req.ip) : ANONYMOUS
    const issued = await auth.issue(principal, parseScopes(query.scope), false)
    req.log.info({ sub: basic?.username ?? 'anonymous', granted: issued.access }, 'registry token issued')
    return reply.header('Cache-Control', 'no-store').send({
      token: issued.token,
      access_token: issued.token,
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
      ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
    })
  })

  app.post('/jwt/auth', async (req, reply) => {
    const body = (req.body ?? {}) as Params
    checkService(first(body.service), auth.tokens.service)
    const grant = first(body.grant_type)
    let principal: Principal
    let offline = first(body.access_type) === 'offline'
    if (grant === 'password') {
      const username = first(body.username)
      const password = first(body.password)
      if (!username || !password) throw new WharfError('BAD_REQUEST', 'username and password are required', { oauth: 'invalid_request' })
      principal = await auth.credentials.authenticate(username, password, req.ip)
    } else if (grant === 'refresh_token') {
      const token = first(body.refresh_token)
      if (!token) throw new WharfError('BAD_REQUEST', 'refresh_token is required', { oauth: 'invalid_request' })
      principal = await auth.refresh(token)
      offline = false // the client keeps using the refresh token it has
    } else {
      throw new WharfError('BAD_REQUEST', 'grant_type must be password or refresh_token', { oauth: 'unsupported_grant_type' })
    }
    const issued = await auth.issue(principal, parseScopes(body.scope), offline)
    return reply.header('Cache-Control', 'no-store').send({
      access_token: issued.token,
      token_type: 'Bearer',
      expires_in: issued.expiresIn,
      issued_at: issued.issuedAt,
      scope: issued.access.map((a) => `${a.type}:${a.name}:${a.actions.join(',')}`).join(' '),
      ...(issued.refreshToken ? { refresh_token: issued.refreshToken } : {}),
    })
  })
}

function checkService(service: string | undefined, expected: string): void {
  if (service !== undefined && service !== expected)
    throw new WharfError('BAD_REQUEST', `unknown service ${service}; this server is ${expected}`, { oauth: 'invalid_request' })
}

/** Errors in the shape clients of the token endpoint understand (`errors` for docker, `error` for OAuth2). */
function tokenError(err: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply) {
  if (err instanceof WharfError) {
    const status = err.code === 'UNAUTHORIZED' ? 401 : err.code === 'TOOMANYREQUESTS' ? 429 : err.code === 'UNAVAILABLE' ? 503 : 400
    if (status === 401) reply.header('WWW-Authenticate', 'Basic realm="Wharf"')
    if ((status === 429 || status === 503) && typeof err.detail.retryAfter === 'number')
      reply.header('Retry-After', String(err.detail.retryAfter))
    const oauth =
      (err.detail.oauth as string | undefined) ??
      (status === 401 ? 'invalid_grant' : status === 429 ? 'slow_down' : status === 503 ? 'temporarily_unavailable' : 'invalid_request')
    return reply.code(status).send({ error: oauth, error_description: err.message, errors: [{ code: err.code, message: err.message }] })
  }
  if (err.statusCode !== undefined && err.statusCode < 500)
    return reply.code(err.statusCode).send({ error: 'invalid_request', error_description: err.message })
  req.log.error({ err }, 'token request failed')
  return reply.code(500).send({ error: 'server_error', error_description: 'internal server error' })
}
