import { randomInt } from 'node:crypto'
import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { newSecret, secretDigest } from '../core/secrets.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database, DeviceLogin } from '../metadata/schema.ts'
import { deviceLoginUsable, type Credentials } from './credentials.ts'
import type { Credential, Principal } from './principals.ts'
import * as q from './queries.ts'
import type { RegistryTokens } from './registry-tokens.ts'
import type { PatScope } from './roles.ts'
import { countInWindow, LoginThrottle } from './throttle.ts'

/** RFC 8628's grant type for the device's token requests. */
export const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
/** The refresh credential `wharf login` keeps in the helper's store (GitLab-style prefix, so secret scanners find leaks). */
export const DEVICE_LOGIN_PREFIX = 'wharf-dl-'
/** The short-lived secret docker-credential-wharf hands to docker, podman, skopeo and buildah. */
export const LOGIN_SECRET_PREFIX = 'wharf-ls-'

/** RFC 8628 §3.2 suggests minutes: long enough to find the browser and sign in. */
const DEVICE_CODE_TTL_SECONDS = 600
/** RFC 8628 §3.5's default polling interval; `slow_down` adds 5 s each time. */
const POLL_INTERVAL_SECONDS = 5
/** A login nobody used for this long ends (each refresh moves it on), like an unused refresh token. */
const LOGIN_IDLE_DAYS = 90
/** RFC 8628 §6.1: consonants only (no vowels: no words; no 0/O, 1/I), case-insensitive, 8 characters shown as XXXX-XXXX. */
const USER_CODE_ALPHABET = 'BCDFGHJKLMNPQRSTVWXZ'
const USER_CODE_LENGTH = 8
/** Device authorization requests one address may start per window (each is a row until it expires). */
const AUTHORIZE_PER_ADDRESS = 30
const AUTHORIZE_WINDOW_MS = 10 * 60_000

/** The OAuth clients that may use the grant (Wharf has no application registry; its CLI is the one client). */
export const DEVICE_CLIENTS: Readonly<Record<string, string>> = { 'wharf-cli': 'Wharf CLI (wharf login)' }
/** What a device login may be granted: the registry, and optionally the API. */
export const DEVICE_SCOPES = ['read_registry', 'write_registry', 'api'] as const satisfies readonly PatScope[]
const DEFAULT_DEVICE_SCOPES: PatScope[] = ['read_registry', 'write_registry']

export interface DeviceAuthorization {
  device_code: string
  user_code: string
  verification_uri: string
  verification_uri_complete: string
  expires_in: number
  interval: number
}

/** A token response (RFC 6749 §5.1) plus `username`, which the credential helper hands to docker with the secret. */
export interface LoginTokens {
  access_token: string
  token_type: 'Bearer'
  expires_in: number
  scope: string
  username: string
  refresh_token?: string
  created_at: number
}

/** What the approval page shows before a person approves a code. */
export interface PendingDevice {
  user_code: string
  client_id: string
  client_name: string
  device_name: string
  scopes: string[]
  expires_at: string
}

export interface DeviceLoginOptions {
  /** Public base URL, no trailing slash: the verification URI is `<publicUrl>/-/device`. */
  publicUrl: string
  /** Lifetime of the short-lived secrets minted from a login (config auth.loginSecretTtlSeconds). */
  secretTtlSeconds: number
}

/**
 * `wharf login`: the OAuth 2.0 device authorization grant (RFC 8628) and the logins it creates. A
 * login is a refresh credential that only mints short-lived secrets (never a registry password
 * itself); every secret and every registry token minted from it names the login, so revoking it
 * stops the next request at once.
 */
export class DeviceLogins {
  private readonly db: Kysely<Database>
  private readonly credentials: Credentials
  private readonly tokens: RegistryTokens
  private readonly opts: DeviceLoginOptions
  /** Wrong user codes, per person and address: a code is short, so guessing must be slow. */
  private readonly codeThrottle: LoginThrottle

  constructor(db: Kysely<Database>, credentials: Credentials, tokens: RegistryTokens, opts: DeviceLoginOptions) {
    this.db = db
    this.credentials = credentials
    this.tokens = tokens
    this.opts = opts
    this.codeThrottle = new LoginThrottle(db, 'device-code')
    // The short-lived secret works wherever a password or token does for registry logins (/jwt/auth).
    credentials.addVerifier({
      verify: (username, secret) =>
        secret.startsWith(LOGIN_SECRET_PREFIX) ? this.principalForSecret(secret, username) : Promise.resolve(undefined),
    })
  }

  get secretTtlSeconds(): number {
    return this.opts.secretTtlSeconds
  }

  /** RFC 8628 §3.1–3.2: a new device code and user code. */
  async authorize(
    input: { clientId: string | undefined; scope: string | undefined; deviceName: string | undefined },
    address: string,
  ): Promise<DeviceAuthorization> {
    const clientId = input.clientId ?? ''
    if (!DEVICE_CLIENTS[clientId])
      throw new WharfError(
        'BAD_REQUEST',
        `unknown client_id ${JSON.stringify(clientId)}; this server knows ${Object.keys(DEVICE_CLIENTS).join(', ')}`,
        { oauth: 'invalid_client' },
      )
    const scopes = parseDeviceScopes(input.scope)
    // Counted in the database, so requests spread over several nodes share the one allowance.
    const { count, resetAt } = await countInWindow(this.db, `device-authorize|${address}`, AUTHORIZE_WINDOW_MS)
    if (count > AUTHORIZE_PER_ADDRESS) {
      throw new WharfError('TOOMANYREQUESTS', 'too many device authorization requests from this address; retry later', {
        retryAfter: Math.max(1, Math.ceil((resetAt - Date.now()) / 1000)),
      })
    }
    const now = Date.now()
    await q.deleteStaleDeviceFlows(this.db, new Date(now).toISOString())
    const deviceCode = newSecret('wharf-dc-')
    const deviceName =
      (input.deviceName ?? '')
        .replace(/[\p{Cc}\p{Cf}]/gu, '')
        .trim()
        .slice(0, 100) || 'an unnamed device'
    // A user code clashing with a live one (1 in 2.5·10¹⁰ per pair) is drawn again.
    for (let attempt = 0; ; attempt++) {
      const userCode = newUserCode()
      try {
        await q.insertDeviceLogin(this.db, {
          deviceCodeDigest: secretDigest(deviceCode),
          userCodeDigest: secretDigest(userCode),
          clientId,
          deviceName,
          scopes,
          expiresAt: new Date(now + DEVICE_CODE_TTL_SECONDS * 1000).toISOString(),
          intervalSeconds: POLL_INTERVAL_SECONDS,
        })
      } catch (e) {
        if (attempt < 3 && /unique|duplicate/i.test(String((e as Error).message))) continue
        throw e
      }
      const shown = `${userCode.slice(0, 4)}-${userCode.slice(4)}`
      const uri = `${this.opts.publicUrl}/-/device`
      return {
        device_code: deviceCode,
        user_code: shown,
        verification_uri: uri,
        verification_uri_complete: `${uri}?user_code=${shown}`,
        expires_in: DEVICE_CODE_TTL_SECONDS,
        interval: POLL_INTERVAL_SECONDS,
      }
    }
  }

  /**
   * RFC 8628 §3.4–3.5: the device's poll. Pending: authorization_pending (slow_down when it polls
   * faster than its interval); denied: access_denied; expired: expired_token; approved: the login,
   * once (a second redemption is invalid_grant).
   */
  async redeem(deviceCode: string, clientId: string | undefined, address: string): Promise<LoginTokens> {
    const row = await q.findDeviceLoginByDeviceCode(this.db, secretDigest(deviceCode))
    if (!row || row.client_id !== clientId || row.status === 'active' || row.status === 'revoked') {
      throw new WharfError('BAD_REQUEST', 'the device code is unknown, was issued to another client, or was already used', {
        oauth: 'invalid_grant',
      })
    }
    const now = Date.now()
    if (new Date(row.expires_at).getTime() <= now)
      throw new WharfError('BAD_REQUEST', 'the device code has expired; start again', { oauth: 'expired_token' })
    if (row.status === 'denied') throw new WharfError('BAD_REQUEST', 'the request was denied', { oauth: 'access_denied' })
    if (row.status === 'pending') {
      const early = row.last_poll_at !== null && now - new Date(row.last_poll_at).getTime() < row.interval_seconds * 1000
      await q.touchDevicePoll(this.db, row.id, new Date(now).toISOString(), early ? row.interval_seconds + 5 : row.interval_seconds)
      if (early)
        throw new WharfError('BAD_REQUEST', `polling too fast: wait ${row.interval_seconds + 5} s between requests`, { oauth: 'slow_down' })
      throw new WharfError('BAD_REQUEST', 'the request has not been approved yet', { oauth: 'authorization_pending' })
    }
    const refresh = newSecret(DEVICE_LOGIN_PREFIX)
    if (!(await q.activateDeviceLogin(this.db, row.id, secretDigest(refresh), loginExpiry(now)))) {
      throw new WharfError('BAD_REQUEST', 'the device code was already used', { oauth: 'invalid_grant' })
    }
    const user = row.user_id === null ? undefined : await this.credentials.principalFor({ kind: 'password', userId: row.user_id })
    if (user?.kind !== 'user')
      throw new WharfError('UNAUTHORIZED', 'the account that approved the request is blocked or gone', { oauth: 'invalid_grant' })
    await this.credentials.audit(user.username, 'device_login.created', address, { id: row.id, device: row.device_name })
    return { ...(await this.mint(row, user.username)), refresh_token: refresh }
  }

  /** The refresh grant for a login: a new short-lived secret (the refresh credential stays: helpers on one machine share it). */
  async refresh(refreshCredential: string): Promise<LoginTokens> {
    const row = await q.findDeviceLoginByRefresh(this.db, secretDigest(refreshCredential))
    const p = row && deviceLoginUsable(row) && row.user_id !== null ? await this.credentials.principalFor(loginCredential(row)) : undefined
    if (!row || p?.kind !== 'user')
      throw new WharfError('UNAUTHORIZED', 'the login is unknown, revoked or expired; run wharf login again', { oauth: 'invalid_grant' })
    await q.touchDeviceLogin(this.db, row.id, loginExpiry(Date.now()))
    return this.mint(row, p.username)
  }

  /** The principal behind a short-lived secret while its login is active (and `username`, when given, is its user's). */
  async principalForSecret(secret: string, username?: string): Promise<Principal | undefined> {
    const claims = await this.tokens.verifyLoginSecret(secret.slice(LOGIN_SECRET_PREFIX.length), this.opts.secretTtlSeconds)
    if (!claims) return undefined
    const p = await this.credentials.principalFor({ kind: 'device-login', id: claims.loginId, userId: claims.userId })
    if (p?.kind !== 'user' || (username !== undefined && p.username.toLowerCase() !== username.toLowerCase())) return undefined
    return p
  }

  /** A pending code, for the approval page. NOT_FOUND (throttled) when unknown, expired or already decided. */
  async pending(userCode: string, who: Principal, address: string): Promise<PendingDevice> {
    const row = await this.pendingRow(userCode, who, address)
    return {
      user_code: formatUserCode(normalizeUserCode(userCode)),
      client_id: row.client_id,
      client_name: DEVICE_CLIENTS[row.client_id] ?? row.client_id,
      device_name: row.device_name,
      scopes: JSON.parse(row.scopes) as string[],
      expires_at: row.expires_at,
    }
  }

  /** A signed-in person approves or denies a code. */
  async decide(userCode: string, who: Principal, approve: boolean, address: string): Promise<void> {
    const row = await this.pendingRow(userCode, who, address)
    if (who.kind !== 'user' || !(await q.decideDeviceLogin(this.db, row.id, who.userId, approve))) {
      throw new WharfError('NOT_FOUND', 'unknown or expired code, or it was already used', {})
    }
    await this.credentials.audit(who.username, approve ? 'device_login.approved' : 'device_login.denied', address, {
      id: row.id,
      device: row.device_name,
    })
  }

  /** A user's active logins, newest first, and the total. */
  async list(userId: number, page: { limit: number; offset: number }): Promise<{ rows: DeviceLogin[]; total: number }> {
    return q.pageDeviceLogins(this.db, userId, nowIso(), page)
  }

  async find(id: number): Promise<DeviceLogin | undefined> {
    return q.findDeviceLogin(this.db, id)
  }

  /** Revokes a login: its secrets and the registry tokens minted from them stop at the next request. */
  async revoke(row: DeviceLogin, actor: string, address: string | null): Promise<void> {
    if (!(await q.revokeDeviceLogin(this.db, row.id))) return
    if (row.user_id !== null) this.credentials.forget(loginCredential(row))
    await this.credentials.audit(actor, 'device_login.revoked', address, { id: row.id, device: row.device_name })
  }

  /** RFC 7009 for a login's refresh credential (`wharf logout`); false when it is not one. */
  async revokeByRefresh(refreshCredential: string, address: string | null): Promise<boolean> {
    if (!refreshCredential.startsWith(DEVICE_LOGIN_PREFIX)) return false
    const row = await q.findDeviceLoginByRefresh(this.db, secretDigest(refreshCredential))
    if (row) await this.revoke(row, 'device login', address)
    return true
  }

  private async pendingRow(userCode: string, who: Principal, address: string): Promise<DeviceLogin> {
    if (who.kind !== 'user' || who.credential.kind !== 'password') {
      throw new WharfError(
        'FORBIDDEN',
        'approving a device sign-in needs a person signed in with their password (the web UI), not a token',
        {},
      )
    }
    const wait = await this.codeThrottle.retryAfter(who.username, address)
    if (wait > 0) throw new WharfError('TOOMANYREQUESTS', `too many wrong codes; retry in ${wait} s`, { retryAfter: wait })
    const code = normalizeUserCode(userCode)
    const row = code.length === USER_CODE_LENGTH ? await q.findDeviceLoginByUserCode(this.db, secretDigest(code)) : undefined
    if (row?.status !== 'pending' || new Date(row.expires_at).getTime() <= Date.now()) {
      await this.codeThrottle.fail(who.username, address)
      throw new WharfError('NOT_FOUND', 'unknown or expired code, or it was already used', {})
    }
    return row
  }

  private async mint(row: DeviceLogin, username: string): Promise<LoginTokens> {
    const ttl = this.opts.secretTtlSeconds
    const { token } = await this.tokens.signLoginSecret(row.id, row.user_id!, ttl)
    return {
      access_token: `${LOGIN_SECRET_PREFIX}${token}`,
      token_type: 'Bearer',
      expires_in: ttl,
      scope: (JSON.parse(row.scopes) as string[]).join(' '),
      username,
      created_at: Math.floor(Date.now() / 1000),
    }
  }
}

function loginCredential(row: DeviceLogin): Credential {
  return { kind: 'device-login', id: row.id, userId: row.user_id ?? 0 }
}

function loginExpiry(now: number): string {
  return new Date(now + LOGIN_IDLE_DAYS * 86400_000).toISOString()
}

function newUserCode(): string {
  let code = ''
  for (let i = 0; i < USER_CODE_LENGTH; i++) code += USER_CODE_ALPHABET[randomInt(USER_CODE_ALPHABET.length)]
  return code
}

/** What a person typed, as stored: upper case, without the dash, spaces or anything outside the alphabet. */
export function normalizeUserCode(input: string): string {
  return input.toUpperCase().replace(/[^A-Z]/g, '')
}

function formatUserCode(code: string): string {
  return `${code.slice(0, 4)}-${code.slice(4)}`
}

function parseDeviceScopes(scope: string | undefined): PatScope[] {
  if (scope === undefined || scope.trim() === '') return DEFAULT_DEVICE_SCOPES
  const wanted = [...new Set(scope.split(/[\s,]+/).filter(Boolean))]
  const bad = wanted.find((s) => !(DEVICE_SCOPES as readonly string[]).includes(s))
  if (bad !== undefined)
    throw new WharfError('BAD_REQUEST', `scope ${bad} cannot be granted to a device; use ${DEVICE_SCOPES.join(', ')}`, {
      oauth: 'invalid_scope',
    })
  return wanted as PatScope[]
}
