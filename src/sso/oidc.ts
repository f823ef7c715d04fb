import * as client from 'openid-client'
import type { OidcProviderConfig } from '../config/schema.ts'
import { WharfError } from '../core/errors.ts'

/** Why an external sign-in failed, as the sign-in page tells the user (the detail goes to the audit log and the admin page). */
export const SSO_FAILURES = ['unreachable', 'misconfigured', 'denied', 'not_allowed', 'blocked', 'expired'] as const
export type SsoFailure = (typeof SSO_FAILURES)[number]

export function ssoError(reason: SsoFailure, message: string, cause?: unknown): WharfError {
  const code = reason === 'unreachable' || reason === 'misconfigured' ? 'UNAVAILABLE' : 'FORBIDDEN'
  return new WharfError(code, message, { sso: reason }, cause === undefined ? undefined : { cause })
}

export function ssoReason(e: unknown): SsoFailure | undefined {
  const r = e instanceof WharfError ? e.detail.sso : undefined
  return typeof r === 'string' && (SSO_FAILURES as readonly string[]).includes(r) ? (r as SsoFailure) : undefined
}

/** A provider's requests (discovery, token, userinfo) give up after this long: the user is waiting on the callback. */
const REQUEST_TIMEOUT_SECONDS = 10
/** A failed discovery is remembered this long, so a provider that is down is not asked on every click. */
const RETRY_DISCOVERY_MS = 15_000

/** What the administrator page shows for each provider. */
export interface ProviderStatus {
  id: string
  label: string
  issuer: string
  /** null until Wharf first talked to the provider. */
  ok: boolean | null
  /** The last failure, worded for an administrator. */
  error: string | null
  checked_at: string | null
}

/** The claims Wharf reads, from the ID token and userinfo together. */
export type Claims = Record<string, unknown> & { sub: string }

export interface CodeFlowChecks {
  state: string
  nonce: string
  verifier: string
}

/**
 * One configured OpenID Connect provider, through openid-client: discovery (cached; a failure is
 * kept for a few seconds and reported), the authorization code flow with PKCE, state and nonce,
 * userinfo, and refresh-token grants for the sync. Every failure becomes a WharfError whose
 * `detail.sso` says which kind it is, with a message for the administrator.
 */
export class OidcProvider {
  readonly settings: OidcProviderConfig
  private discovered: Promise<client.Configuration> | undefined
  private failedAt = 0
  private status: Omit<ProviderStatus, 'id' | 'label' | 'issuer'> = { ok: null, error: null, checked_at: null }

  constructor(settings: OidcProviderConfig) {
    this.settings = settings
  }

  get id(): string {
    return this.settings.id
  }

  get scopes(): string {
    const scopes = new Set(['openid', ...(this.settings.scopes ?? ['profile', 'email'])])
    return [...scopes].join(' ')
  }

  report(): ProviderStatus {
    return { id: this.settings.id, label: this.settings.label, issuer: this.settings.issuer, ...this.status }
  }

  /** Records how the last exchange with the provider went, for the administrator page. */
  private note(error: string | null): void {
    this.status = { ok: error === null, error, checked_at: new Date().toISOString() }
  }

  /** Runs one exchange with the provider, turning its failures into WharfErrors and noting the outcome. */
  private async exchange<T>(what: string, run: () => Promise<T>): Promise<T> {
    try {
      const result = await run()
      this.note(null)
      return result
    } catch (e) {
      const err = this.classify(what, e)
      // A user's own refusal or a stale code says nothing about the provider's health.
      if (ssoReason(err) === 'unreachable' || ssoReason(err) === 'misconfigured') this.note(err.message)
      throw err
    }
  }

  /** The provider's metadata, discovered once (again after a failure, at most every RETRY_DISCOVERY_MS). */
  async configuration(): Promise<client.Configuration> {
    if (this.discovered && this.failedAt && Date.now() - this.failedAt > RETRY_DISCOVERY_MS) this.discovered = undefined
    this.discovered ??= this.exchange('discovery', () =>
      client.discovery(
        new URL(this.settings.issuer),
        this.settings.clientId,
        undefined,
        client.ClientSecretBasic(this.settings.clientSecret),
        {
          timeout: REQUEST_TIMEOUT_SECONDS,
          // Only loopback issuers may be plain http (config/load.ts refuses others).
          ...(this.settings.issuer.startsWith('http:') ? { execute: [client.allowInsecureRequests] } : {}),
        },
      ),
    ).then(
      (c) => {
        this.failedAt = 0
        return c
      },
      (e: unknown) => {
        this.failedAt = Date.now()
        throw e
      },
    )
    return this.discovered
  }

  /** Where to send the browser, with fresh state, nonce and PKCE verifier to keep for the callback. */
  async begin(redirectUri: string): Promise<{ url: URL; checks: CodeFlowChecks }> {
    const config = await this.configuration()
    const checks = { state: client.randomState(), nonce: client.randomNonce(), verifier: client.randomPKCECodeVerifier() }
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: redirectUri,
      scope: this.scopes,
      state: checks.state,
      nonce: checks.nonce,
      code_challenge: await client.calculatePKCECodeChallenge(checks.verifier),
      code_challenge_method: 'S256',
    })
    return { url, checks }
  }

  /** The callback: checks state, exchanges the code (PKCE), verifies the ID token and its nonce, reads userinfo. */
  async complete(callbackUrl: URL, checks: CodeFlowChecks): Promise<{ claims: Claims; refreshToken: string | null }> {
    const config = await this.configuration()
    const tokens = await this.exchange('token', () =>
      client.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: checks.verifier,
        expectedState: checks.state,
        expectedNonce: checks.nonce,
        idTokenExpected: true,
      }),
    )
    const idClaims = tokens.claims()!
    // Providers differ in what they put in the ID token; userinfo has the rest (groups, email).
    const userinfo = config.serverMetadata().userinfo_endpoint
      ? await this.exchange('userinfo', () => client.fetchUserInfo(config, tokens.access_token, idClaims.sub))
      : {}
    return { claims: { ...idClaims, ...userinfo, sub: idClaims.sub }, refreshToken: tokens.refresh_token ?? null }
  }

  /**
   * Asks the provider whether the user behind a refresh token may still sign in: `gone` when it
   * refuses the grant (user disabled or deleted, consent or session revoked); throws when the
   * provider cannot be asked, which must not block anyone.
   */
  async recheck(refreshToken: string): Promise<{ gone: true } | { gone: false; claims: Claims | undefined; refreshToken: string | null }> {
    const config = await this.configuration()
    try {
      const tokens = await this.exchange('refresh', () => client.refreshTokenGrant(config, refreshToken))
      const sub = tokens.claims()?.sub
      const userinfo =
        sub && config.serverMetadata().userinfo_endpoint
          ? await this.exchange('userinfo', () => client.fetchUserInfo(config, tokens.access_token, sub))
          : undefined
      return {
        gone: false,
        claims: userinfo ? { ...tokens.claims(), ...userinfo, sub: sub! } : undefined,
        refreshToken: tokens.refresh_token ?? null,
      }
    } catch (e) {
      if (ssoReason(e) === 'denied') return { gone: true }
      throw e
    }
  }

  private classify(what: string, e: unknown): WharfError {
    const issuer = this.settings.issuer
    const id = this.settings.id
    if (e instanceof client.AuthorizationResponseError) {
      return ssoError('denied', `${id}: the provider answered ${e.error}${e.error_description ? `: ${e.error_description}` : ''}`, e)
    }
    if (e instanceof client.ResponseBodyError) {
      if (e.error === 'invalid_client' || e.error === 'unauthorized_client')
        return ssoError(
          'misconfigured',
          `${id}: ${issuer} refused Wharf's client credentials (${e.error}): check clientId and clientSecret`,
          e,
        )
      if (e.error === 'invalid_grant' || e.error === 'access_denied')
        return ssoError(
          'denied',
          `${id}: ${issuer} refused the ${what} grant (${e.error}${e.error_description ? `: ${e.error_description}` : ''})`,
          e,
        )
      return ssoError('misconfigured', `${id}: ${issuer} answered the ${what} request with ${e.error} (HTTP ${e.status})`, e)
    }
    if (e instanceof client.WWWAuthenticateChallengeError) {
      // A 401 with a challenge: at the token endpoint the client's credentials were refused; at userinfo the token was.
      const error = e.cause[0]?.parameters.error ?? `HTTP ${e.status}`
      if (what === 'userinfo' && error === 'invalid_token')
        return ssoError('denied', `${id}: ${issuer} refused the access token at userinfo`, e)
      return ssoError('misconfigured', `${id}: ${issuer} refused Wharf's client credentials (${error}): check clientId and clientSecret`, e)
    }
    const code = (e as { code?: unknown }).code
    if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' && what === 'discovery') {
      const named = (e as { cause?: { body?: { issuer?: unknown } } }).cause?.body?.issuer
      return ssoError(
        'misconfigured',
        `${id}: the OpenID configuration at ${issuer} names another issuer${typeof named === 'string' ? ` (${named})` : ''}: set issuer to exactly what the provider says`,
        e,
      )
    }
    if (code === 'OAUTH_JSON_ATTRIBUTE_COMPARISON_FAILED' || code === 'OAUTH_JWT_CLAIM_COMPARISON_FAILED') {
      // A state or nonce that does not match is a stale or forged callback, not a provider fault.
      return ssoError('expired', `${id}: the sign-in response did not match this browser's sign-in (${(e as Error).message})`, e)
    }
    if (code === 'OAUTH_RESPONSE_IS_NOT_CONFORM' || code === 'OAUTH_RESPONSE_IS_NOT_JSON' || code === 'OAUTH_INVALID_RESPONSE') {
      return ssoError('misconfigured', `${id}: ${issuer} gave no valid ${what} response (${(e as Error).message}): check the issuer URL`, e)
    }
    if (e instanceof TypeError || (e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError'))) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause
      return ssoError('unreachable', `${id}: cannot reach ${issuer} (${cause?.code ?? cause?.message ?? e.message})`, e)
    }
    return ssoError('misconfigured', `${id}: ${what} with ${issuer} failed: ${(e as Error).message ?? String(e)}`, e)
  }
}
