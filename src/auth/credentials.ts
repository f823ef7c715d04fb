import { createHmac, randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import { LRUCache } from 'lru-cache'
import { WharfError } from '../core/errors.ts'
import type { Database, DeployToken, DeviceLogin, PersonalAccessToken, User } from '../metadata/schema.ts'
import type { Credential, Principal } from './principals.ts'
import * as q from './queries.ts'
import type { DeployTokenScope, PatScope } from './roles.ts'
import { secretDigest, verifyPassword } from '../core/secrets.ts'
import type { LoginThrottle } from './throttle.ts'

export const PAT_PREFIX = 'glpat-'
export const DEPLOY_TOKEN_PREFIX = 'gldt-'

/** A pluggable way to turn a username and secret into a principal (the CI job token plugs in here). */
export interface CredentialVerifier {
  /** undefined: not this kind of credential, try the next verifier. */
  verify(username: string, secret: string): Promise<Principal | undefined>
  /** Rebuilds the principal behind a credential kind this verifier owns (e.g. `job`), if still valid. */
  principalFor?(cred: Credential): Promise<Principal | undefined>
  /**
   * A username that belongs to this verifier's machine tokens (`gitlab-ci-token`): only this verifier
   * decides for it, and since its secrets are long random tokens, failures are audited but not
   * throttled (every job on a runner host shares the name; one stale token must not lock out the rest).
   */
  readonly reservedUsername?: string
}

/**
 * The accounts passwords and tokens belong to. users/ provides it (Users); auth/ sits below users/
 * and names only what it reads.
 */
export interface Accounts {
  findUserById(id: number): Promise<User | undefined>
  findUserByUsername(username: string): Promise<User | undefined>
}

/** How long "is this credential still valid" answers are reused; revocation through Wharf clears them at once. */
const ACTIVE_CACHE_MS = 1000

/** Whether local passwords sign in (config auth.passwordSignIn / auth.passwordBreakGlass). */
export interface PasswordPolicy {
  signIn: boolean
  /** With signIn off, administrators' passwords still work (the way back in when the identity provider is down). */
  breakGlass: boolean
  /** Directory (LDAP) passwords are accepted whatever signIn says: a refusal must not tell their users that passwords are off. */
  directoryPasswords?: boolean
}
const PASSWORDS_ENABLED: PasswordPolicy = { signIn: true, breakGlass: true }
const PASSWORDS_DISABLED_MESSAGE =
  'password sign-in is disabled on this instance: sign in through your identity provider, and use a personal access token for git and docker login'

/**
 * How long a successful password check is reused. A password costs a scrypt (~100 ms of CPU, on
 * purpose); docker, skopeo and containerd send it again on every token request, so a CI fleet
 * would otherwise keep a core busy hashing the same few passwords.
 */
const PASSWORD_CACHE_MS = 5 * 60_000
const PASSWORD_CACHE_MAX = 10_000

export class Credentials {
  private readonly db: Kysely<Database>
  private readonly throttle: LoginThrottle
  private readonly accounts: Accounts
  private readonly verifiers: CredentialVerifier[]
  private readonly active = new LRUCache<string, boolean>({ max: 50_000, ttl: ACTIVE_CACHE_MS })
  /**
   * Successful password checks: HMAC(process key, user id, stored hash, password). Never the
   * password itself, never a failure; a changed password changes the stored hash (so the record no
   * longer matches), and a blocked or deleted account is checked on every request regardless.
   */
  private readonly verified = new LRUCache<string, true>({ max: PASSWORD_CACHE_MAX, ttl: PASSWORD_CACHE_MS })
  private readonly verifiedKey = randomBytes(32)
  private readonly passwords: PasswordPolicy

  constructor(db: Kysely<Database>, throttle: LoginThrottle, accounts: Accounts, passwords: PasswordPolicy = PASSWORDS_ENABLED) {
    this.db = db
    this.throttle = throttle
    this.accounts = accounts
    this.passwords = passwords
    this.verifiers = [{ verify: (u, s) => this.verifyToken(u, s) }, { verify: (u, s) => this.verifyPassword(u, s) }]
  }

  /** Adds a verifier tried before tokens and passwords (the CI job token registers itself here). */
  addVerifier(v: CredentialVerifier): void {
    this.verifiers.unshift(v)
  }

  /**
   * The principal for a username and secret from the pluggable verifiers only (no passwords, no
   * throttle, no audit): for per-request tokens such as the `JOB-TOKEN` header of the API.
   */
  async resolveExtra(username: string, secret: string): Promise<Principal | undefined> {
    for (const v of this.verifiers) {
      if (!v.principalFor) continue
      const p = await v.verify(username, secret)
      if (p && p.kind !== 'anonymous') return p
    }
    return undefined
  }

  /** Checks a username and secret (password, PAT or deploy token). Throws UNAUTHORIZED or TOOMANYREQUESTS. */
  async authenticate(username: string, secret: string, address: string): Promise<Principal> {
    const owner = this.verifiers.find((v) => v.reservedUsername === username)
    if (owner) {
      const p = await owner.verify(username, secret)
      if (p && p.kind !== 'anonymous') return p
      await this.audit(username, 'login.failure', address, null)
      throw new WharfError('UNAUTHORIZED', `invalid ${username} credentials: the token is unknown, or its job has finished`, {})
    }
    const wait = await this.throttle.retryAfter(username, address)
    if (wait > 0) {
      await this.audit(username, 'login.throttled', address, { retryAfter: wait })
      throw new WharfError('TOOMANYREQUESTS', `too many failed sign-in attempts; retry in ${wait} s`, { retryAfter: wait })
    }
    for (const v of this.verifiers) {
      const p = await v.verify(username, secret)
      if (p && p.kind !== 'anonymous') {
        await this.throttle.succeed(username, address)
        await this.audit(p.username, 'login.success', address, { via: p.kind === 'user' ? p.credential.kind : p.kind })
        return p
      }
    }
    await this.throttle.fail(username, address)
    await this.audit(username, 'login.failure', address, null)
    throw new WharfError(
      'UNAUTHORIZED',
      this.passwords.signIn
        ? 'invalid username or password (or token)'
        : this.passwords.directoryPasswords
          ? 'invalid username, directory password or token (local passwords are disabled on this instance)'
          : `invalid username or token (${PASSWORDS_DISABLED_MESSAGE})`,
      {},
    )
  }

  /** Local passwords sign in while enabled; when disabled, only administrators' do, and only with the break-glass setting on. */
  passwordAllowed(isAdmin: boolean): boolean {
    return this.passwords.signIn || (this.passwords.breakGlass && isAdmin)
  }

  /** Rebuilds the principal behind a credential, if it is still valid (used for refresh tokens and API tokens). */
  async principalFor(cred: Credential): Promise<Principal | undefined> {
    switch (cred.kind) {
      case 'password': {
        const user = await this.accounts.findUserById(cred.userId)
        return user && user.state === 'active' ? userPrincipal(user, cred, undefined) : undefined
      }
      case 'pat': {
        const pat = await q.findPat(this.db, cred.id)
        if (!pat || !patUsable(pat)) return undefined
        const user = await this.accounts.findUserById(pat.user_id)
        return user && user.state === 'active' ? userPrincipal(user, cred, JSON.parse(pat.scopes) as PatScope[]) : undefined
      }
      case 'deploy-token': {
        const t = await q.findDeployToken(this.db, cred.id)
        return t && tokenUsable(t) ? deployPrincipal(t) : undefined
      }
      case 'device-login': {
        const login = await q.findDeviceLogin(this.db, cred.id)
        if (!login || !deviceLoginUsable(login) || login.user_id !== cred.userId) return undefined
        const user = await this.accounts.findUserById(cred.userId)
        return user && user.state === 'active' ? userPrincipal(user, cred, JSON.parse(login.scopes) as PatScope[]) : undefined
      }
      case 'job':
        for (const v of this.verifiers) {
          const p = await v.principalFor?.(cred)
          if (p) return p
        }
        return undefined
    }
  }

  /** True while the credential behind a registry token is valid; a revoked or expired one stops working at once. */
  async isActive(cred: Credential): Promise<boolean> {
    const key = credentialKey(cred)
    const hit = this.active.get(key)
    if (hit !== undefined) return hit
    const ok = (await this.principalFor(cred)) !== undefined
    this.active.set(key, ok)
    return ok
  }

  forget(cred: Credential): void {
    this.active.delete(credentialKey(cred))
  }

  async audit(actor: string, action: string, address: string | null, detail: Record<string, unknown> | null, target = ''): Promise<void> {
    await q.insertAudit(this.db, { actor, action, target, ip: address, detail })
  }

  private async verifyToken(username: string, secret: string): Promise<Principal | undefined> {
    if (secret.startsWith(PAT_PREFIX)) {
      const pat = await q.findPatByDigest(this.db, secretDigest(secret))
      if (!pat || !patUsable(pat)) return undefined
      const user = await this.accounts.findUserById(pat.user_id)
      // The username must be the token owner's, as GitLab requires for registry logins.
      if (user?.state !== 'active' || user.username_lower !== username.toLowerCase()) return undefined
      await q.touchPat(this.db, pat.id)
      return userPrincipal(user, { kind: 'pat', id: pat.id, userId: user.id }, JSON.parse(pat.scopes) as PatScope[])
    }
    if (secret.startsWith(DEPLOY_TOKEN_PREFIX)) {
      const t = await q.findDeployTokenByDigest(this.db, secretDigest(secret))
      if (!t || !tokenUsable(t) || t.username !== username) return undefined
      await q.touchDeployToken(this.db, t.id)
      return deployPrincipal(t)
    }
    return undefined
  }

  private async verifyPassword(username: string, secret: string): Promise<Principal | undefined> {
    const user = await this.accounts.findUserByUsername(username)
    const key = user?.password_hash
      ? createHmac('sha256', this.verifiedKey).update(`${user.id}\0${user.password_hash}\0${secret}`).digest('base64')
      : undefined
    if (key !== undefined && this.verified.has(key)) {
      return user!.state === 'active' ? await this.localPassword(user!) : undefined
    }
    // Hash anyway when the user is unknown, so timing does not reveal which usernames exist.
    const ok = await verifyPassword(secret, user?.password_hash ?? DUMMY_HASH)
    if (!user?.password_hash || !ok || user.state !== 'active') return undefined
    this.verified.set(key!, true)
    return this.localPassword(user)
  }

  /** A correct local password signs in unless the instance disabled them (directory passwords are not local: their verifier decides). */
  private async localPassword(user: User): Promise<Principal> {
    if (!this.passwordAllowed(user.is_admin === 1)) {
      await this.audit(user.username, 'login.password_disabled', null, null)
      throw new WharfError('UNAUTHORIZED', PASSWORDS_DISABLED_MESSAGE, {})
    }
    return userPrincipal(user, { kind: 'password', userId: user.id }, undefined)
  }
}

const DUMMY_HASH = 'scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='

function credentialKey(c: Credential): string {
  return c.kind === 'password' ? `password:${c.userId}` : `${c.kind}:${c.id}`
}

function expired(expiresAt: string | null): boolean {
  return expiresAt !== null && new Date(expiresAt).getTime() <= Date.now()
}

export function patUsable(t: PersonalAccessToken): boolean {
  return t.revoked === 0 && !expired(t.expires_at)
}

/** An active device login whose sliding expiry has not passed. */
export function deviceLoginUsable(l: DeviceLogin): boolean {
  return l.status === 'active' && !expired(l.expires_at)
}

export function tokenUsable(t: DeployToken): boolean {
  return t.revoked === 0 && !expired(t.expires_at)
}

export function userPrincipal(user: User, credential: Credential, scopes: PatScope[] | undefined): Principal {
  const p: Principal = { kind: 'user', userId: user.id, username: user.username, isAdmin: user.is_admin === 1, credential }
  if (scopes) p.scopes = scopes
  return p
}

function deployPrincipal(t: DeployToken): Principal {
  return {
    kind: 'deploy-token',
    tokenId: t.id,
    username: t.username,
    projectId: t.project_id,
    namespaceId: t.namespace_id,
    scopes: JSON.parse(t.scopes) as DeployTokenScope[],
    credential: { kind: 'deploy-token', id: t.id },
  }
}
