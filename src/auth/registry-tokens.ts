import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  type CryptoKey,
  type JWK,
  type JWTPayload,
} from 'jose'
import type { Kysely } from 'kysely'
import { LRUCache } from 'lru-cache'
import { randomUUID } from 'node:crypto'
import { WharfError } from '../core/errors.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database } from '../metadata/schema.ts'
import type { Action } from './access.ts'
import type { Credential } from './principals.ts'

const ALG = 'ES256'
/** Verified tokens are remembered until they expire, so the registry's hot paths verify each token once. */
const VERIFIED_CACHE_MAX = 10_000
/** How far in the future a token's `iat` may be: the signer's clock (another replica, or this one before an NTP step) may run ahead. */
const CLOCK_SKEW_SECONDS = 60
/**
 * Keys are read again from the database when the last read is older than this, so a rotation or a
 * retirement on another node is honoured here within a second (one small query a second at most,
 * none while idle).
 */
const KEY_REFRESH_MS = 1000
/** The `aud` of device logins' short-lived secrets: never the registry's, never a job ID token's. */
const LOGIN_SECRET_AUDIENCE = 'wharf-device-login'

/** One entry of the Docker token spec's `access` claim. */
export interface AccessEntry {
  type: 'repository' | 'registry'
  name: string
  actions: string[]
}

export interface RegistryClaims {
  sub: string
  access: AccessEntry[]
  /** The credential behind the token, so a revoked PAT or deploy token stops working at once. */
  cred?: Credential
  exp: number
}

interface SigningKey {
  kid: string
  privateKey: CryptoKey
  publicKey: CryptoKey
  publicJwk: JWK
}

/** The claims of a job's OIDC ID token (`id_tokens:`) besides the registered ones the signer sets. */
export type IdTokenClaims = Record<string, string | number | boolean>

/**
 * Issues and verifies the short-lived registry JWTs of Docker's token authentication. The ES256
 * key is created at first start and kept in the database; rotation adds a new key and keeps the
 * old one verifying until its tokens have expired.
 */
export class RegistryTokens {
  private readonly db: Kysely<Database>
  readonly issuer: string
  readonly service: string
  readonly ttlSeconds: number
  private keys: SigningKey[] = []
  /** When the keys were last read (Date.now() at the start of that read). */
  private loadedAt = 0
  private refreshing: Promise<void> | undefined
  private readonly verified = new LRUCache<string, RegistryClaims>({ max: VERIFIED_CACHE_MAX })

  constructor(db: Kysely<Database>, opts: { issuer: string; service: string; ttlSeconds: number }) {
    this.db = db
    this.issuer = opts.issuer
    this.service = opts.service
    this.ttlSeconds = opts.ttlSeconds
  }

  async load(): Promise<void> {
    const started = Date.now()
    let rows = await this.db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').execute()
    if (rows.length === 0) {
      await this.rotate()
      rows = await this.db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).orderBy('created_at', 'desc').execute()
    }
    // A retired key's tokens must stop verifying, cached or not.
    this.verified.clear()
    this.keys = await Promise.all(
      rows.map(async (r) => ({
        kid: r.kid,
        privateKey: (await importJWK(JSON.parse(r.private_jwk) as JWK, ALG)) as CryptoKey,
        publicKey: (await importJWK(JSON.parse(r.public_jwk) as JWK, ALG)) as CryptoKey,
        publicJwk: JSON.parse(r.public_jwk) as JWK,
      })),
    )
    this.loadedAt = started
  }

  /** The keys as the database has them now, give or take KEY_REFRESH_MS (one read shared by concurrent callers). */
  private async current(): Promise<SigningKey[]> {
    if (Date.now() - this.loadedAt >= KEY_REFRESH_MS) {
      this.refreshing ??= this.refresh().finally(() => (this.refreshing = undefined))
      await this.refreshing
    }
    return this.keys
  }

  /** Rereads the active kids; keys are imported again only when another node rotated or retired one. */
  private async refresh(): Promise<void> {
    const started = Date.now()
    const rows = await this.db
      .selectFrom('signing_keys')
      .select('kid')
      .where('retired_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute()
    const same = rows.length === this.keys.length && rows.every((r, i) => r.kid === this.keys[i]!.kid)
    if (same && rows.length > 0) this.loadedAt = started
    else await this.load()
  }

  /** Adds a new signing key; older keys keep verifying (retire them after the token TTL). */
  async rotate(): Promise<string> {
    const { privateKey, publicKey } = await generateKeyPair(ALG, { extractable: true })
    const publicJwk = await exportJWK(publicKey)
    const kid = await calculateJwkThumbprint(publicJwk)
    await this.db
      .insertInto('signing_keys')
      .values({
        kid,
        private_jwk: JSON.stringify(await exportJWK(privateKey)),
        public_jwk: JSON.stringify(publicJwk),
        created_at: nowIso(),
        retired_at: null,
      })
      .execute()
    if (this.keys.length > 0) await this.load()
    return kid
  }

  /** Retires every key but the newest; returns how many. Tokens they signed stop verifying. */
  async retireOldKeys(): Promise<number> {
    const rows = await this.db
      .selectFrom('signing_keys')
      .select('kid')
      .where('retired_at', 'is', null)
      .orderBy('created_at', 'desc')
      .execute()
    const old = rows.slice(1).map((r) => r.kid)
    if (old.length) await this.db.updateTable('signing_keys').set({ retired_at: nowIso() }).where('kid', 'in', old).execute()
    await this.load()
    return old.length
  }

  async issue(
    sub: string,
    access: AccessEntry[],
    cred: Credential | undefined,
    notAfter?: Date,
  ): Promise<{ token: string; expiresIn: number; issuedAt: string }> {
    const key = (await this.current())[0]
    if (!key) throw new Error('registry token keys not loaded')
    const now = Math.floor(Date.now() / 1000)
    let exp = now + this.ttlSeconds
    if (notAfter) exp = Math.min(exp, Math.floor(notAfter.getTime() / 1000))
    const payload: JWTPayload & { access: AccessEntry[]; cred?: Credential } = { access }
    if (cred) payload.cred = cred
    const token = await new SignJWT(payload)
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(this.service)
      .setSubject(sub)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key.privateKey)
    return { token, expiresIn: Math.max(0, exp - now), issuedAt: new Date(now * 1000).toISOString() }
  }

  /**
   * The public keys of every key that is not retired (the JWKS at /oauth/discovery/keys): what an
   * OIDC relying party needs to verify job ID tokens, current and from before a rotation.
   */
  async jwks(): Promise<{ keys: JWK[] }> {
    return {
      keys: (await this.current()).map((k) => ({
        kty: k.publicJwk.kty,
        crv: k.publicJwk.crv,
        x: k.publicJwk.x,
        y: k.publicJwk.y,
        kid: k.kid,
        use: 'sig',
        alg: ALG,
      })),
    }
  }

  /** The ID tokens' `iss`: the public URL without a trailing slash, so `<iss>/.well-known/openid-configuration` is the discovery URL. */
  get oidcIssuer(): string {
    return this.issuer.replace(/\/$/, '')
  }

  /** The ID tokens' signing algorithm, for the discovery document. */
  get algorithm(): string {
    return ALG
  }

  /**
   * Signs a job's OIDC ID token (GitLab's `id_tokens:`): same issuer and keys as registry tokens,
   * valid from `nbf` (5 s back, as GitLab) for `lifetimeSeconds`. The registry's own audience is
   * refused, so an ID token can never pass as a registry token.
   */
  async signIdToken(
    claims: IdTokenClaims,
    audience: string | string[],
    lifetimeSeconds: number,
  ): Promise<{ token: string; jti: string; exp: number }> {
    const key = (await this.current())[0]
    if (!key) throw new Error('registry token keys not loaded')
    const audiences = typeof audience === 'string' ? [audience] : audience
    if (
      audiences.length === 0 ||
      audiences.includes(this.service) ||
      audiences.includes(LOGIN_SECRET_AUDIENCE) ||
      audiences.some((a) => a === '')
    ) {
      throw new WharfError(
        'BAD_REQUEST',
        `an ID token's aud must be non-empty and must not be "${this.service}" (the registry's own audience)`,
        {
          aud: audience,
        },
      )
    }
    const now = Math.floor(Date.now() / 1000)
    const exp = now + lifetimeSeconds
    const jti = randomUUID()
    const token = await new SignJWT({ ...claims })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.oidcIssuer)
      .setAudience(audience)
      .setIssuedAt(now)
      .setNotBefore(now - 5)
      .setExpirationTime(exp)
      .setJti(jti)
      .sign(key.privateKey)
    return { token, jti, exp }
  }

  /**
   * Signs a device login's short-lived secret (what docker-credential-wharf hands to docker): the
   * login and its user, for `lifetimeSeconds`. Its own audience, so it never passes as a registry
   * token or an ID token; signed with the registry's keys so it survives a restart and a rotation.
   */
  async signLoginSecret(loginId: number, userId: number, lifetimeSeconds: number): Promise<{ token: string; exp: number }> {
    const key = (await this.current())[0]
    if (!key) throw new Error('registry token keys not loaded')
    const now = Math.floor(Date.now() / 1000)
    const exp = now + lifetimeSeconds
    const token = await new SignJWT({ uid: userId })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer)
      .setAudience(LOGIN_SECRET_AUDIENCE)
      .setSubject(String(loginId))
      .setIssuedAt(now)
      .setExpirationTime(exp)
      .sign(key.privateKey)
    return { token, exp }
  }

  /** The login and user a login secret names, if its signature, audience and expiry hold (not whether the login still does). */
  async verifyLoginSecret(token: string, maxLifetimeSeconds: number): Promise<{ loginId: number; userId: number } | undefined> {
    try {
      const keys = await this.current()
      const { payload } = await jwtVerify(
        token,
        async (header) => {
          const key = keys.find((k) => k.kid === header.kid)
          if (!key) throw new Error('unknown signing key')
          return key.publicKey
        },
        { issuer: this.issuer, audience: LOGIN_SECRET_AUDIENCE, algorithms: [ALG], requiredClaims: ['exp', 'iat', 'sub'] },
      )
      const { exp, iat, uid } = payload as { exp: number; iat: number; uid: unknown }
      const loginId = Number(payload.sub)
      if (exp - iat > maxLifetimeSeconds || !Number.isSafeInteger(loginId) || typeof uid !== 'number') return undefined
      return { loginId, userId: uid }
    } catch {
      return undefined
    }
  }

  /**
   * Checks signature, issuer, audience and expiry, and that the token is one this server would
   * issue: `exp` and `iat` present, `iat` not in the future and a lifetime no longer than the
   * configured TTL (so a token signed without `exp`, or for ten years, never verifies). Throws
   * UNAUTHORIZED.
   */
  async verify(token: string): Promise<RegistryClaims> {
    // First: a refresh that finds a key retired (here or on another node) empties the cache.
    const keys = await this.current()
    const cached = this.verified.get(token)
    if (cached) {
      if (cached.exp * 1000 > Date.now()) return cached
      this.verified.delete(token)
    }
    let payload: JWTPayload
    try {
      ;({ payload } = await jwtVerify(
        token,
        async (header) => {
          const key = keys.find((k) => k.kid === header.kid)
          if (!key) throw new Error('unknown signing key')
          return key.publicKey
        },
        { issuer: this.issuer, audience: this.service, algorithms: [ALG], requiredClaims: ['exp', 'iat'] },
      ))
      const { exp, iat } = payload as { exp: number; iat: number }
      if (iat > Math.floor(Date.now() / 1000) + CLOCK_SKEW_SECONDS) throw new Error('issued in the future')
      if (exp - iat > this.ttlSeconds) throw new Error('lifetime longer than the token TTL')
    } catch {
      throw new WharfError('UNAUTHORIZED', 'authentication required: the registry token is invalid or expired', {})
    }
    const claims: RegistryClaims = {
      sub: String(payload.sub ?? ''),
      access: Array.isArray(payload.access) ? (payload.access as AccessEntry[]) : [],
      exp: payload.exp!,
    }
    if (payload.cred) claims.cred = payload.cred as Credential
    this.verified.set(token, claims)
    return claims
  }
}

/** True when the claims grant `action` on repository `name` (exact name, exact action or `*`). */
export function grants(claims: RegistryClaims, name: string, action: Action): boolean {
  return claims.access.some((a) => a.type === 'repository' && a.name === name && (a.actions.includes(action) || a.actions.includes('*')))
}
