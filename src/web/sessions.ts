import { createHash } from 'node:crypto'
import type { FastifyRequest } from 'fastify'
import type { Kysely } from 'kysely'
import type { SessionAuth, SessionResolver } from '../auth/api-auth.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import { newSecret, secretDigest } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { Database } from '../metadata/schema.ts'
import * as q from './queries.ts'

export const SESSION_COOKIE = 'wharf_session'
/** A session ends a week after sign-in at the latest (signing out, blocking the user or a password change end it sooner). */
export const SESSION_TTL_SECONDS = 7 * 86400
/** Last-seen times are written at most this often, so browsing is not one write per request. */
const TOUCH_EVERY_MS = 60_000
const TOKEN_PREFIX = 'wharf-ses-'

/** Reads one cookie from a Cookie header (no dependency: the UI sets exactly one). */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (!header) return undefined
  for (const part of header.split(';')) {
    const i = part.indexOf('=')
    if (i > 0 && part.slice(0, i).trim() === name) return decodeURIComponent(part.slice(i + 1).trim())
  }
  return undefined
}

/**
 * The CSRF token of a session: derived from its secret (never stored), so a page that can read the
 * token through GET /-/session (same origin, cookie attached) proves it is not a cross-site request.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHash('sha256').update(`wharf-csrf\0${sessionToken}`).digest('base64url')
}

export interface StartedSession {
  token: string
  csrfToken: string
  principal: Principal & { kind: 'user' }
  maxAge: number
}

/**
 * Web UI sessions: a password sign-in through Credentials.authenticate (throttled and audited)
 * issues an opaque token for an HTTP-only cookie; the API auth hook resolves it on every request,
 * so a blocked user or an ended session stops working at once.
 */
export class Sessions implements SessionResolver {
  private readonly db: Kysely<Database>
  private readonly credentials: Credentials

  constructor(db: Kysely<Database>, credentials: Credentials) {
    this.db = db
    this.credentials = credentials
  }

  /** Signs in with a username and the account password (tokens are refused: they would widen to a full session). */
  async signIn(username: string, password: string, address: string, userAgent: string | undefined): Promise<StartedSession> {
    const p = await this.credentials.authenticate(username, password, address)
    if (p.kind !== 'user' || p.credential.kind !== 'password') {
      await this.credentials.audit(username, 'session.refused', address, { reason: 'not a password' })
      throw new WharfError('UNAUTHORIZED', 'sign in with your password; tokens are for the API and docker login', {})
    }
    return this.start(p, address, userAgent, 'password')
  }

  /**
   * A session for a user an identity provider vouched for (src/sso checked them): the same session
   * as a password sign-in, for as long; the sync and blocking end it like any other.
   */
  async startForUser(userId: number, address: string, userAgent: string | undefined, via: string): Promise<StartedSession> {
    const p = await this.credentials.principalFor({ kind: 'password', userId })
    if (p?.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'the account is blocked or no longer exists', {})
    return this.start(p, address, userAgent, via)
  }

  private async start(
    p: Principal & { kind: 'user' },
    address: string,
    userAgent: string | undefined,
    via: string,
  ): Promise<StartedSession> {
    const token = newSecret(TOKEN_PREFIX)
    await q.deleteExpiredSessions(this.db, new Date().toISOString())
    await q.insertSession(this.db, {
      userId: p.userId,
      digest: secretDigest(token),
      expiresAt: new Date(Date.now() + SESSION_TTL_SECONDS * 1000).toISOString(),
      ip: address,
      userAgent: userAgent?.slice(0, 255) ?? null,
    })
    await this.credentials.audit(p.username, 'session.created', address, via === 'password' ? null : { via })
    return { token, csrfToken: csrfTokenFor(token), principal: p, maxAge: SESSION_TTL_SECONDS }
  }

  /** The session named by a cookie value, if it is live and its user still active. */
  async resolve(token: string): Promise<SessionAuth | undefined> {
    if (!token.startsWith(TOKEN_PREFIX)) return undefined
    const row = await q.findSessionByDigest(this.db, secretDigest(token))
    if (!row || new Date(row.expires_at).getTime() <= Date.now()) return undefined
    const principal = await this.credentials.principalFor({ kind: 'password', userId: row.user_id })
    if (principal?.kind !== 'user') return undefined
    if (Date.now() - new Date(row.last_seen_at).getTime() > TOUCH_EVERY_MS) await q.touchSession(this.db, row.id)
    return { principal, csrfToken: csrfTokenFor(token) }
  }

  /** SessionResolver: the session behind the request's cookie. */
  async fromRequest(req: FastifyRequest): Promise<SessionAuth | undefined> {
    const token = readCookie(req.headers.cookie, SESSION_COOKIE)
    return token ? this.resolve(token) : undefined
  }

  /** Ends the session of a cookie value (unknown ones are not an error). */
  async signOut(token: string, address: string): Promise<void> {
    const row = await q.findSessionByDigest(this.db, secretDigest(token))
    if (!row) return
    await q.deleteSession(this.db, row.id)
    const p = await this.credentials.principalFor({ kind: 'password', userId: row.user_id })
    await this.credentials.audit(p && p.kind === 'user' ? p.username : String(row.user_id), 'session.ended', address, null)
  }
}
