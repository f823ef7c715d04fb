import type { Kysely } from 'kysely'
import type { CredentialVerifier, Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS } from '../auth/roles.ts'
import type { LdapServerConfig, OidcProviderConfig } from '../config/schema.ts'
import { WharfError } from '../core/errors.ts'
import { validateSegment } from '../core/path-segments.ts'
import type { Sealer } from '../core/sealing.ts'
import type { Database, Identity, User } from '../metadata/schema.ts'
import type { Groups, Members } from '../projects/index.ts'
import type { Users } from '../users/index.ts'
import { type DirectoryUser, LdapDirectory } from './ldap.ts'
import { type Claims, OidcProvider, type ProviderStatus, type SsoFailure, ssoError, ssoReason } from './oidc.ts'
import * as q from './queries.ts'

/** The browser has this long between leaving for the provider and coming back. */
export const SIGN_IN_TTL_SECONDS = 600
/** Identities checked per provider and sync run, so one run stays short; the rest wait for the next. */
const SYNC_BATCH = 500

/** What the state cookie carries between the start of a sign-in and its callback (sealed: the browser cannot read or change it). */
interface PendingSignIn {
  provider: string
  state: string
  nonce: string
  verifier: string
  returnTo: string
  /** Set when a signed-in user links this provider to their account. */
  linkUserId: number | null
  expiresAt: number
}

export interface SsoDeps {
  db: Kysely<Database>
  users: Users
  groups: Groups
  members: Members
  /** For the audit log. */
  credentials: Credentials
  /** Seals the state cookie and stored refresh tokens. */
  sealer: Sealer
  providers: readonly OidcProviderConfig[]
  /** LDAP directories users sign in with by username and directory password. */
  directories?: readonly LdapServerConfig[]
  publicUrl: string
}

export interface SyncResult {
  checked: number
  blocked: number
  failed: number
}

interface Log {
  info(o: object, msg: string): void
  warn(o: object, msg: string): void
}

/** A path inside Wharf to return to after signing in (never another origin). */
export function safeReturnTo(value: unknown): string {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\')
    ? value.slice(0, 2000)
    : '/'
}

/** A username from a claim value: an email's local part, invalid characters turned into '-', at most 60 characters. */
export function usernameFrom(value: unknown): string {
  const raw = typeof value === 'string' ? value.split('@', 1)[0]! : ''
  const cleaned = raw
    .replace(/[^A-Za-z0-9._-]+/g, '-')
    .replace(/[._-]{2,}/g, '-')
    .replace(/^[._-]+|[._-]+$/g, '')
    .slice(0, 60)
    .replace(/[._-]+$/, '')
  return cleaned || 'user'
}

/**
 * Single sign-on through OpenID Connect: starts and completes sign-ins (creating or linking the
 * account as the provider's settings allow, and setting its mapped group memberships), and the
 * periodic sync that blocks users their provider no longer knows. Every sign-in, link, creation,
 * failure and block is written to the audit log.
 */
export class Sso {
  private readonly deps: SsoDeps
  private readonly oidc: Map<string, OidcProvider>
  private readonly ldap: LdapDirectory[]

  constructor(deps: SsoDeps) {
    this.deps = deps
    this.oidc = new Map(deps.providers.map((p) => [p.id, new OidcProvider(p)]))
    this.ldap = (deps.directories ?? []).map((d) => new LdapDirectory(d))
  }

  /** The directories whose passwords the sign-in form (and git, docker login) accept. */
  directories(): Array<{ id: string; label: string }> {
    return this.ldap.map((d) => ({ id: d.id, label: d.settings.label }))
  }

  /**
   * Directory passwords as a credential: plugged into Credentials (tried before local passwords),
   * so the sign-in form, git and docker login accept them, throttled and audited there. A
   * directory that cannot be used is skipped (a local account may still match); when none of
   * the others knows the user and no local password could match, the user is told the directory
   * cannot check their password (503) rather than that it is wrong.
   */
  ldapVerifier(): CredentialVerifier {
    return {
      verify: async (username, secret) => {
        // Wharf's own tokens (glpat-, gldt-, glcbt-, wharf-ls- for the credential helper, …) are never directory passwords: they must not reach the directory.
        if (!this.ldap.length || !secret || /^(gl[a-z]+-|wharf-)/.test(secret)) return undefined
        const failed: Array<{ d: LdapDirectory; reason: string }> = []
        let known = false
        for (const d of this.ldap) {
          let found: DirectoryUser | 'wrong-password' | undefined
          try {
            found = await d.authenticate(username, secret)
          } catch (e) {
            // The administrator's detail is on the admin page (LdapDirectory.report) and in the audit entry below.
            failed.push({ d, reason: ssoReason(e) ?? 'unreachable' })
            continue
          }
          if (found === 'wrong-password') known = true
          else if (found) return this.ldapSignIn(d, found)
        }
        if (!failed.length || known) return undefined
        // An administrator's local password (the break-glass path) must work while the directory is down.
        if ((await this.deps.users.findUserByUsername(username))?.password_hash) return undefined
        for (const { d, reason } of failed) await this.deps.credentials.audit(username, 'sso.failure', null, { provider: d.id, reason })
        throw new WharfError(
          'UNAVAILABLE',
          `${failed.map(({ d }) => d.settings.label).join(', ')} cannot check your password right now. Try again later; if it persists, tell an administrator (Admin › Settings shows why).`,
          { sso: failed[0]!.reason, retryAfter: 30 },
        )
      },
    }
  }

  private async ldapSignIn(d: LdapDirectory, found: DirectoryUser): Promise<Principal> {
    const { users, db } = this.deps
    const subject = found.dn.toLowerCase()
    let user: User | undefined
    const existing = await q.findIdentity(db, d.id, subject)
    if (existing) {
      user = await users.findUserById(existing.user_id)
      if (!user)
        throw await this.ldapRefused(d, found, 'not_allowed', 'the Wharf account linked to your directory account no longer exists')
      if (user.state !== 'active') {
        // A block the sync made is lifted when the directory lists the user again; an administrator's block stays.
        if (existing.blocked_at === null)
          throw await this.ldapRefused(d, found, 'blocked', 'your Wharf account is blocked; ask an administrator')
        await users.setUserState(user.id, 'active')
        await this.deps.credentials.audit(user.username, 'sso.unblocked', null, { provider: d.id })
      }
      await q.recordSignIn(db, existing.id, found.email, null)
    } else {
      user = await this.ldapAccount(d, found, subject)
    }
    await this.applyGroups(d.id, d.settings.groups ?? [], (from) => found.groups.has(from.toLowerCase()), user, null)
    await this.deps.credentials.audit(user.username, 'sso.sign_in', null, { provider: d.id, subject })
    return {
      kind: 'user',
      userId: user.id,
      username: user.username,
      isAdmin: user.is_admin === 1,
      credential: { kind: 'password', userId: user.id },
    }
  }

  /** The account a first directory sign-in gets: the one with the entry's email (linkByEmail), else a new one (autoCreate), else refused. */
  private async ldapAccount(d: LdapDirectory, found: DirectoryUser, subject: string): Promise<User> {
    const { users, db } = this.deps
    const matches = d.settings.linkByEmail && found.email ? await users.findUsersByEmail(found.email) : []
    if (matches.length === 1) {
      const user = matches[0]!
      if (user.state !== 'active') throw await this.ldapRefused(d, found, 'blocked', 'your Wharf account is blocked; ask an administrator')
      if (await q.findIdentityOfUser(db, d.id, user.id))
        throw await this.ldapRefused(
          d,
          found,
          'not_allowed',
          `the Wharf account with your email is already linked to another ${d.settings.label} entry; ask an administrator`,
        )
      await q.insertIdentity(db, { userId: user.id, kind: 'ldap', provider: d.id, subject, email: found.email, refreshToken: null })
      await this.deps.credentials.audit(user.username, 'sso.linked', null, { provider: d.id, subject, how: 'email' })
      return user
    }
    if (!(d.settings.autoCreate ?? true))
      throw await this.ldapRefused(
        d,
        found,
        'not_allowed',
        'no Wharf account is linked to your directory account, and accounts are not created at sign-in; ask an administrator',
      )
    const user = await this.createNamed(usernameFrom(found.username), found.name, found.email)
    await q.insertIdentity(db, { userId: user.id, kind: 'ldap', provider: d.id, subject, email: found.email, refreshToken: null })
    await this.deps.credentials.audit(user.username, 'sso.created', null, { provider: d.id, subject })
    return user
  }

  /** The directory vouched for the password but Wharf refuses the account: audited, and said to the user (who proved the password). */
  private async ldapRefused(d: LdapDirectory, found: DirectoryUser, reason: SsoFailure, message: string): Promise<WharfError> {
    await this.deps.credentials.audit(found.username, 'sso.failure', null, { provider: d.id, reason, subject: found.dn.toLowerCase() })
    return new WharfError('UNAUTHORIZED', message, { sso: reason })
  }

  /** The sign-in page's buttons. */
  providers(): Array<{ id: string; label: string }> {
    return [...this.oidc.values()].map((p) => ({ id: p.id, label: p.settings.label }))
  }

  status(): ProviderStatus[] {
    return [...[...this.oidc.values()].map((p) => p.report()), ...this.ldap.map((d) => d.report())]
  }

  /** Start-up check: discovers every provider, so a wrong issuer or an unreachable provider is logged at once and shown to administrators. */
  async check(log: Log & { error(o: object, msg: string): void }): Promise<void> {
    const checks: Array<[string, Promise<unknown>]> = [
      ...[...this.oidc.values()].map((p): [string, Promise<unknown>] => [p.id, p.configuration()]),
      ...this.ldap.map((d): [string, Promise<unknown>] => [d.id, d.probe()]),
    ]
    await Promise.all(
      checks.map(([id, check]) =>
        check.then(
          () => log.info({ provider: id }, 'sso provider reachable'),
          (err: unknown) => log.error({ provider: id, reason: ssoReason(err), error: (err as Error).message }, 'sso provider unusable'),
        ),
      ),
    )
  }

  redirectUri(providerId: string): string {
    return `${this.deps.publicUrl}/-/auth/oidc/${providerId}/callback`
  }

  private provider(id: string): OidcProvider {
    const p = this.oidc.get(id)
    if (!p) throw new WharfError('NOT_FOUND', `no sign-in provider ${id}`, {})
    return p
  }

  /**
   * Starts a sign-in: the provider's authorization URL, and the sealed value of the state cookie
   * binding it to this browser. A provider that cannot be used (discovery failed) is audited as a
   * failed sign-in, like one that fails at the callback.
   */
  async begin(
    providerId: string,
    opts: { returnTo: unknown; linkUserId: number | null; address: string },
  ): Promise<{ url: string; cookie: string }> {
    const p = this.provider(providerId)
    let started: Awaited<ReturnType<OidcProvider['begin']>>
    try {
      started = await p.begin(this.redirectUri(providerId))
    } catch (e) {
      const reason = ssoReason(e) ?? 'misconfigured'
      await this.deps.credentials.audit('', 'sso.failure', opts.address, { provider: providerId, reason, error: (e as Error).message })
      throw e
    }
    const { url, checks } = started
    const pending: PendingSignIn = {
      provider: providerId,
      ...checks,
      returnTo: safeReturnTo(opts.returnTo),
      linkUserId: opts.linkUserId,
      expiresAt: Date.now() + SIGN_IN_TTL_SECONDS * 1000,
    }
    return { url: url.href, cookie: this.deps.sealer.seal(JSON.stringify(pending)) }
  }

  /**
   * Completes a sign-in at the callback: the state cookie must be this browser's for this provider;
   * then the code exchange, the account (linked, created or refused) and its group memberships.
   * Failures are audited and thrown with `detail.sso` saying which kind.
   */
  async complete(
    providerId: string,
    callbackUrl: URL,
    cookie: string | undefined,
    address: string,
  ): Promise<{ user: User; returnTo: string; linked: boolean }> {
    const p = this.provider(providerId)
    try {
      const pending = this.openPending(cookie, providerId)
      const { claims, refreshToken } = await p.complete(callbackUrl, pending)
      const sealedRefresh = refreshToken ? this.deps.sealer.seal(refreshToken) : null
      const { user, linked } = await this.accountFor(p, claims, sealedRefresh, pending.linkUserId, address)
      await this.syncGroups(p, user, claims, address)
      await this.deps.credentials.audit(user.username, 'sso.sign_in', address, { provider: providerId, subject: claims.sub })
      return { user, returnTo: pending.returnTo, linked }
    } catch (e) {
      const reason = ssoReason(e) ?? 'misconfigured'
      await this.deps.credentials.audit('', 'sso.failure', address, { provider: providerId, reason, error: (e as Error).message })
      if (ssoReason(e)) throw e
      throw ssoError('misconfigured', `${providerId}: ${(e as Error).message}`, e)
    }
  }

  private openPending(cookie: string | undefined, providerId: string): PendingSignIn {
    if (!cookie) throw ssoError('expired', 'no sign-in in progress in this browser (the state cookie is missing)')
    let pending: PendingSignIn
    try {
      pending = JSON.parse(this.deps.sealer.open(cookie)) as PendingSignIn
    } catch {
      throw ssoError('expired', 'the state cookie is not one Wharf sealed')
    }
    if (pending.provider !== providerId) throw ssoError('expired', `the sign-in in progress is with ${pending.provider}, not ${providerId}`)
    if (pending.expiresAt < Date.now()) throw ssoError('expired', 'the sign-in took longer than 10 minutes')
    return pending
  }

  /** The account an identity signs in as: already linked; linked now (by the signed-in user, or by verified email); created; or refused. */
  private async accountFor(
    p: OidcProvider,
    claims: Claims,
    sealedRefresh: string | null,
    linkUserId: number | null,
    address: string,
  ): Promise<{ user: User; linked: boolean }> {
    const { users, db } = this.deps
    const s = p.settings
    const email = typeof claims.email === 'string' ? claims.email : null
    const emailVerified = email !== null && (claims.email_verified === true || claims.email_verified === 'true')
    const allowed = s.allowedDomains ?? []
    if (allowed.length) {
      const domain = email?.split('@').pop()?.toLowerCase()
      if (!emailVerified || !domain || !allowed.includes(domain))
        throw ssoError('not_allowed', `${p.id}: ${email ?? 'a user without an email'} is not in an allowed domain (${allowed.join(', ')})`)
    }
    const existing = await q.findIdentity(db, p.id, claims.sub)
    if (existing) {
      if (linkUserId !== null && existing.user_id !== linkUserId)
        throw ssoError('not_allowed', `${p.id}: this identity is already linked to another account`)
      const user = await users.findUserById(existing.user_id)
      if (!user) throw ssoError('not_allowed', `${p.id}: the linked account no longer exists`)
      if (user.state !== 'active') {
        // A block the sync made is lifted when the provider lets the user in again; an administrator's block stays.
        if (existing.blocked_at === null) throw ssoError('blocked', `${user.username} is blocked in Wharf`)
        await users.setUserState(user.id, 'active')
        await this.deps.credentials.audit(user.username, 'sso.unblocked', address, { provider: p.id })
      }
      await q.recordSignIn(db, existing.id, email, sealedRefresh)
      return { user: { ...user, state: 'active' }, linked: false }
    }
    const link = async (user: User, how: string): Promise<{ user: User; linked: boolean }> => {
      if (user.state !== 'active') throw ssoError('blocked', `${user.username} is blocked in Wharf`)
      if (await q.findIdentityOfUser(db, p.id, user.id))
        throw ssoError('not_allowed', `${p.id}: ${user.username} is already linked to another ${s.label} identity`)
      await q.insertIdentity(db, { userId: user.id, kind: 'oidc', provider: p.id, subject: claims.sub, email, refreshToken: sealedRefresh })
      await this.deps.credentials.audit(user.username, 'sso.linked', address, { provider: p.id, subject: claims.sub, how })
      return { user, linked: true }
    }
    if (linkUserId !== null) {
      const user = await users.findUserById(linkUserId)
      if (!user) throw ssoError('not_allowed', 'the account to link no longer exists')
      return link(user, 'signed-in user')
    }
    if (s.linkByVerifiedEmail && emailVerified) {
      const matches = await users.findUsersByEmail(email!)
      if (matches.length === 1) return link(matches[0]!, 'verified email')
    }
    if (!(s.autoCreate ?? true))
      throw ssoError(
        'not_allowed',
        `${p.id}: no Wharf account is linked to ${email ?? claims.sub}, and accounts are not created at sign-in`,
      )
    const user = await this.createAccount(p, claims, email)
    await q.insertIdentity(db, { userId: user.id, kind: 'oidc', provider: p.id, subject: claims.sub, email, refreshToken: sealedRefresh })
    await this.deps.credentials.audit(user.username, 'sso.created', address, { provider: p.id, subject: claims.sub })
    return { user, linked: true }
  }

  /** A new account without a password, named after the username claim (a number appended when the name is taken). */
  private async createAccount(p: OidcProvider, claims: Claims, email: string | null): Promise<User> {
    const claim = p.settings.usernameClaim ?? 'preferred_username'
    const base = usernameFrom(claims[claim] ?? email)
    const name = typeof claims.name === 'string' && claims.name.trim() ? claims.name.trim().slice(0, 255) : base
    return this.createNamed(base, name, email)
  }

  /** An account without a password named `base`, or `base2`, `base3`… when taken. */
  private async createNamed(base: string, name: string, email: string | null): Promise<User> {
    try {
      validateSegment(base, 'username')
    } catch {
      base = `user-${base}`.slice(0, 60)
    }
    for (let n = 1; n <= 100; n++) {
      const username = n === 1 ? base : `${base}${n}`
      try {
        return await this.deps.users.createUser({ username, name, email, password: null })
      } catch (e) {
        if (!(e instanceof WharfError && e.code === 'CONFLICT')) throw e
      }
    }
    throw ssoError('not_allowed', `no free username like ${base}`)
  }

  /** OIDC: the groups claim's values are the provider groups. */
  private async syncGroups(p: OidcProvider, user: User, claims: Claims, address: string | null): Promise<void> {
    if (!p.settings.groupsClaim) return
    const value = claims[p.settings.groupsClaim]
    const has = new Set(Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [])
    await this.applyGroups(p.id, p.settings.groups ?? [], (from) => has.has(from), user, address)
  }

  /** Sets the user's membership of every mapped group to the highest role their provider groups give (none: removed). */
  private async applyGroups(
    provider: string,
    mappings: ReadonlyArray<{ from: string; group: string; role: keyof typeof ACCESS_LEVELS }>,
    member: (from: string) => boolean,
    user: User,
    address: string | null,
  ): Promise<void> {
    const levels = new Map<string, number | null>()
    for (const m of mappings) {
      const level = member(m.from) ? ACCESS_LEVELS[m.role] : null
      const cur = levels.get(m.group)
      levels.set(m.group, cur === undefined || cur === null ? level : level === null ? cur : Math.max(cur, level))
    }
    for (const [path, level] of levels) {
      const group = await this.deps.groups.findGroupByPath(path)
      if (!group) {
        await this.deps.credentials.audit(user.username, 'sso.group_missing', address, { provider, group: path })
        continue
      }
      if (await this.deps.members.syncGroupMember(group.id, user.id, level))
        await this.deps.credentials.audit(user.username, 'sso.group_sync', address, { provider, group: path, access_level: level }, path)
    }
  }

  /**
   * Asks each provider about the identities not checked for `olderThanSeconds`: a refused refresh
   * token blocks the user and revokes their tokens and sessions at once; a provider that cannot be
   * reached blocks nobody. Identities without a refresh token cannot be asked (the provider gave
   * none: request offline_access) and are left to their next sign-in.
   */
  async sync(olderThanSeconds: number, log: Log): Promise<SyncResult> {
    const result: SyncResult = { checked: 0, blocked: 0, failed: 0 }
    const before = new Date(Date.now() - olderThanSeconds * 1000).toISOString()
    for (const p of this.oidc.values()) {
      for (const identity of await q.identitiesToCheck(this.deps.db, p.id, before, SYNC_BATCH)) {
        if (!identity.refresh_token_sealed) continue
        result.checked++
        try {
          if (await this.recheck(p, identity, log)) result.blocked++
        } catch (e) {
          result.failed++
          log.warn({ provider: p.id, userId: identity.user_id, error: (e as Error).message }, 'sso check failed')
          await this.deps.credentials.audit(String(identity.user_id), 'sso.check_failed', null, {
            provider: p.id,
            error: (e as Error).message,
          })
          // An unreachable provider is unreachable for everyone: try again at the next run.
          if (ssoReason(e) === 'unreachable' || ssoReason(e) === 'misconfigured') break
        }
      }
    }
    for (const d of this.ldap) {
      for (const identity of await q.identitiesToCheck(this.deps.db, d.id, before, SYNC_BATCH)) {
        result.checked++
        let found: DirectoryUser | undefined
        try {
          found = await d.lookup(identity.subject)
        } catch (e) {
          result.failed++
          log.warn({ provider: d.id, error: (e as Error).message }, 'sso check failed')
          await this.deps.credentials.audit(String(identity.user_id), 'sso.check_failed', null, {
            provider: d.id,
            error: (e as Error).message,
          })
          break
        }
        const user = await this.deps.users.findUserById(identity.user_id)
        if (!user) continue
        if (!found) {
          await this.block(d.id, identity, user, log)
          result.blocked++
          continue
        }
        await q.recordCheck(this.deps.db, identity.id, null)
        await this.applyGroups(d.id, d.settings.groups ?? [], (from) => found.groups.has(from.toLowerCase()), user, null)
      }
    }
    return result
  }

  /** Blocks a user their provider no longer knows, revoking their tokens and sessions. */
  private async block(provider: string, identity: Identity, user: User, log: Log): Promise<void> {
    await this.deps.users.deprovision(user.id)
    await q.markBlocked(this.deps.db, identity.id)
    log.info({ provider, username: user.username }, 'sso user blocked: the provider no longer knows them')
    await this.deps.credentials.audit(user.username, 'sso.blocked', null, { provider, subject: identity.subject })
  }

  /** True when the provider refused the user and they were blocked. */
  private async recheck(p: OidcProvider, identity: Identity, log: Log): Promise<boolean> {
    const answer = await p.recheck(this.deps.sealer.open(identity.refresh_token_sealed!))
    const user = await this.deps.users.findUserById(identity.user_id)
    if (!user) return false
    if (answer.gone) {
      await this.block(p.id, identity, user, log)
      return true
    }
    await q.recordCheck(this.deps.db, identity.id, answer.refreshToken ? this.deps.sealer.seal(answer.refreshToken) : null)
    if (answer.claims) await this.syncGroups(p, user, answer.claims, null)
    return false
  }

  /** The identities linked to an account (its Account page). */
  async identitiesOf(userId: number): Promise<Array<{ provider: string; label: string; linked_at: string }>> {
    return (await q.identitiesOfUser(this.deps.db, userId)).map((i) => ({
      provider: i.provider,
      label: this.oidc.get(i.provider)?.settings.label ?? this.ldap.find((d) => d.id === i.provider)?.settings.label ?? i.provider,
      linked_at: i.created_at,
    }))
  }
}
