import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ApiTokens } from './api-tokens.ts'
import { ANONYMOUS, type Principal } from './principals.ts'
import { bindPrincipal } from './actor.ts'
import type { PatScope } from './roles.ts'
import { constantTimeEqual } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'

/** A signed-in browser: the session's user (as a password sign-in) and the CSRF token its state-changing requests must echo. */
export interface SessionAuth {
  principal: Principal & { kind: 'user' }
  csrfToken: string
}

/** Resolves the web UI's session cookie (src/web/sessions.ts), decorated on the root instance as `wharfSessions`. */
export interface SessionResolver {
  fromRequest(req: FastifyRequest): Promise<SessionAuth | undefined>
}

declare module 'fastify' {
  interface FastifyInstance {
    wharfSessions?: SessionResolver
  }
  interface FastifyRequest {
    /** Who is calling the API; set by the API plugin's auth hook (anonymous when no token was sent). */
    principal: Principal
  }
  interface FastifyContextConfig {
    /** Token scopes besides `api` (and `read_api` for reads) that suffice for this route, e.g. read_user. */
    scopes?: readonly PatScope[]
  }
}

/** The header a cookie-authenticated state-changing request carries (the value GET /-/session returns). */
export const CSRF_HEADER = 'x-csrf-token'

/** The token of an API request: `PRIVATE-TOKEN: <pat>` or `Authorization: Bearer <pat or OAuth token>`. */
export function apiToken(req: FastifyRequest): string | undefined {
  const priv = req.headers['private-token']
  if (typeof priv === 'string' && priv.trim()) return priv.trim()
  const auth = req.headers.authorization
  if (auth && /^bearer\s+/i.test(auth)) return auth.replace(/^bearer\s+/i, '').trim() || undefined
  return undefined
}

const READ_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Without a token, the web UI's session cookie (when the UI is served): a live session is its user;
 * a state-changing request must also echo the session's CSRF token, else 403. An unknown or ended
 * session is anonymous, so public reads still work and the UI can ask the user to sign in again.
 */
async function sessionPrincipal(req: FastifyRequest): Promise<Principal> {
  const sessions = req.server.wharfSessions
  const session = sessions ? await sessions.fromRequest(req) : undefined
  if (!session) return ANONYMOUS
  if (!READ_METHODS.has(req.method)) {
    const sent = req.headers[CSRF_HEADER]
    if (typeof sent !== 'string' || !constantTimeEqual(sent, session.csrfToken)) {
      throw new WharfError(
        'FORBIDDEN',
        'missing or invalid CSRF token: a signed-in browser must send the X-CSRF-Token header from GET /-/session',
        {},
      )
    }
  }
  return session.principal
}

/**
 * The API plugin's onRequest hook: resolves the caller, then applies GitLab's rules. A bad token is
 * always 401 (never silently anonymous); anonymous callers reach only routes marked `public`; a token
 * needs the `api` scope, or `read_api` for reads (or a route's extra read scope such as read_user).
 */
export function apiAuthHook(apiTokens: ApiTokens) {
  return async (req: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const token = apiToken(req)
    const config = req.routeOptions.config
    const jobToken = req.headers['job-token']
    // A CI job token (`JOB-TOKEN` header) only on routes that accept it (artifact downloads...).
    const principal: Principal = token
      ? await apiTokens.principalForToken(token)
      : typeof jobToken === 'string' && jobToken.trim() && config.jobToken
        ? await apiTokens.principalForJobToken(jobToken.trim())
        : await sessionPrincipal(req)
    req.principal = principal
    bindPrincipal(req, principal)
    if (principal.kind === 'job') return
    if (principal.kind === 'anonymous') {
      if (!config.public) throw new WharfError('UNAUTHORIZED', 'authentication required: send PRIVATE-TOKEN or Authorization: Bearer', {})
      return
    }
    if (principal.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'deploy tokens cannot use the API', {})
    if (principal.scopes === undefined) return
    const read = READ_METHODS.has(req.method)
    const ok =
      principal.scopes.includes('api') ||
      (read && (principal.scopes.includes('read_api') || (config.scopes ?? []).some((s) => principal.scopes!.includes(s))))
    if (!ok)
      throw new WharfError('FORBIDDEN', `insufficient_scope: this request needs the api scope${read ? ' or read_api' : ''}`, {
        needs: 'api',
      })
  }
}
