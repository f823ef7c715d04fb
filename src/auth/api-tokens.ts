import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Database, OAuthToken } from '../metadata/schema.ts'
import { PAT_PREFIX, type Credentials } from './credentials.ts'
import { LOGIN_SECRET_PREFIX, type DeviceLogins } from './device-logins.ts'
import type { Principal } from './principals.ts'
import * as q from './queries.ts'
import { PAT_SCOPES, type PatScope } from './roles.ts'
import { newSecret, secretDigest } from '../core/secrets.ts'

/** GitLab's OAuth access tokens live two hours. */
export const OAUTH_ACCESS_TTL_SECONDS = 7200
/** A refresh token outlives many access tokens; each refresh rotates both (the old pair dies). */
const OAUTH_REFRESH_TTL_DAYS = 90
/** PAT last-used times are written at most this often, so API traffic is not one write per request. */
const TOUCH_EVERY_MS = 60_000
/** What the password grant may ask for (GitLab: api, read_api, read_user, ...); registry scopes come through /jwt/auth. */
const OAUTH_SCOPES: readonly PatScope[] = ['api', 'read_api', 'read_user']

export interface IssuedOAuthToken {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  refresh_token: string
  scope: string
  created_at: number
}

/**
 * Credentials for the REST API: personal access tokens (PRIVATE-TOKEN or Bearer) and OAuth access
 * tokens issued by POST /oauth/token. Every request re-checks the token and its user, so a revoked
 * token or a blocked user stops working at once.
 */
export class ApiTokens {
  private readonly db: Kysely<Database>
  private readonly credentials: Credentials
  private readonly deviceLogins: DeviceLogins | undefined

  constructor(db: Kysely<Database>, credentials: Credentials, deviceLogins?: DeviceLogins) {
    this.db = db
    this.credentials = credentials
    this.deviceLogins = deviceLogins
  }

  /** The principal behind an API token; throws UNAUTHORIZED when it is unknown, revoked or expired. */
  async principalForToken(token: string): Promise<Principal> {
    // A device login's short-lived secret works as a Bearer token too (its scopes decide: `api` only if granted).
    const p = token.startsWith(PAT_PREFIX)
      ? await this.patPrincipal(token)
      : token.startsWith(LOGIN_SECRET_PREFIX) && this.deviceLogins
        ? await this.deviceLogins.principalForSecret(token)
        : await this.oauthPrincipal(token)
    if (!p) throw new WharfError('UNAUTHORIZED', 'invalid token: unknown, revoked or expired', {})
    return p
  }

  /** The running job behind a `JOB-TOKEN` header; UNAUTHORIZED otherwise (finished jobs' tokens are revoked). */
  async principalForJobToken(token: string): Promise<Principal> {
    const p = await this.credentials.resolveExtra('gitlab-ci-token', token)
    if (p?.kind !== 'job') throw new WharfError('UNAUTHORIZED', 'invalid job token: unknown, or the job is no longer running', {})
    return p
  }

  /** OAuth2 password grant. Only a real password is accepted: a PAT or deploy token would be widened to `api`. */
  async passwordGrant(username: string, password: string, address: string, scope: string | undefined): Promise<IssuedOAuthToken> {
    const scopes = parseOAuthScopes(scope)
    const p = await this.credentials.authenticate(username, password, address)
    if (p.kind !== 'user' || p.credential.kind !== 'password') {
      await this.credentials.audit(username, 'oauth.password_grant.refused', address, { reason: 'not a password' })
      throw new WharfError('UNAUTHORIZED', 'the password grant needs the account password, not a token', { oauth: 'invalid_grant' })
    }
    return this.issue(p.userId, scopes, p.username, address)
  }

  /** OAuth2 refresh_token grant: rotates the pair; the old access and refresh tokens stop working. */
  async refreshGrant(refreshToken: string, address: string): Promise<IssuedOAuthToken> {
    const row = await q.findOAuthTokenByRefresh(this.db, secretDigest(refreshToken))
    if (row?.revoked !== 0 || new Date(row.refresh_expires_at).getTime() <= Date.now()) {
      throw new WharfError('UNAUTHORIZED', 'the refresh token is invalid, expired or revoked', { oauth: 'invalid_grant' })
    }
    const p = await this.credentials.principalFor({ kind: 'password', userId: row.user_id })
    if (p?.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'the account is blocked or gone', { oauth: 'invalid_grant' })
    // Revoke first and check it changed, so one refresh token cannot be redeemed twice concurrently.
    if (!(await q.revokeOAuthToken(this.db, row.id)))
      throw new WharfError('UNAUTHORIZED', 'the refresh token was already used', { oauth: 'invalid_grant' })
    return this.issue(row.user_id, JSON.parse(row.scopes) as PatScope[], p.username, address)
  }

  /** RFC 7009 revocation: either secret of a pair revokes the pair; unknown tokens are not an error. */
  async revoke(token: string): Promise<void> {
    const digest = secretDigest(token)
    const row = (await q.findOAuthTokenByAccess(this.db, digest)) ?? (await q.findOAuthTokenByRefresh(this.db, digest))
    if (row) await q.revokeOAuthToken(this.db, row.id)
  }

  /** Revokes every OAuth token of a user (on block or password change). */
  async revokeAllFor(userId: number): Promise<void> {
    await q.revokeOAuthTokensOfUser(this.db, userId)
  }

  private async issue(userId: number, scopes: PatScope[], username: string, address: string): Promise<IssuedOAuthToken> {
    const access = newSecret('wharf-oat-')
    const refresh = newSecret('wharf-ort-')
    const now = Date.now()
    await q.insertOAuthToken(this.db, {
      userId,
      accessDigest: secretDigest(access),
      refreshDigest: secretDigest(refresh),
      scopes,
      expiresAt: new Date(now + OAUTH_ACCESS_TTL_SECONDS * 1000).toISOString(),
      refreshExpiresAt: new Date(now + OAUTH_REFRESH_TTL_DAYS * 86400_000).toISOString(),
    })
    await this.credentials.audit(username, 'oauth.token_issued', address, { scopes })
    return {
      access_token: access,
      token_type: 'Bearer',
      expires_in: OAUTH_ACCESS_TTL_SECONDS,
      refresh_token: refresh,
      scope: scopes.join(' '),
      created_at: Math.floor(now / 1000),
    }
  }

  private async patPrincipal(token: string): Promise<Principal | undefined> {
    const pat = await q.findPatByDigest(this.db, secretDigest(token))
    if (!pat) return undefined
    const p = await this.credentials.principalFor({ kind: 'pat', id: pat.id, userId: pat.user_id })
    if (p && (!pat.last_used_at || Date.now() - new Date(pat.last_used_at).getTime() > TOUCH_EVERY_MS)) await q.touchPat(this.db, pat.id)
    return p
  }

  private async oauthPrincipal(token: string): Promise<Principal | undefined> {
    const row: OAuthToken | undefined = await q.findOAuthTokenByAccess(this.db, secretDigest(token))
    if (row?.revoked !== 0 || new Date(row.expires_at).getTime() <= Date.now()) return undefined
    // The OAuth token stands for a password sign-in (credential 'password': the user must still be active),
    // narrowed to the scopes it was issued with.
    const p = await this.credentials.principalFor({ kind: 'password', userId: row.user_id })
    if (p?.kind !== 'user') return undefined
    return { ...p, scopes: JSON.parse(row.scopes) as PatScope[] }
  }
}

function parseOAuthScopes(scope: string | undefined): PatScope[] {
  if (scope === undefined || scope.trim() === '') return ['api']
  const wanted = [...new Set(scope.split(/[\s,]+/).filter(Boolean))]
  const bad = wanted.find((s) => !(OAUTH_SCOPES as readonly string[]).includes(s))
  if (bad !== undefined) {
    const known = (PAT_SCOPES as readonly string[]).includes(bad)
    throw new WharfError(
      'BAD_REQUEST',
      known ? `scope ${bad} cannot be granted here; use ${OAUTH_SCOPES.join(', ')}` : `unknown scope ${bad}`,
      { oauth: 'invalid_scope' },
    )
  }
  return wanted as PatScope[]
}
