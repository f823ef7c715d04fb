import { readFileSync } from 'node:fs'
import type { ConnectionOptions } from 'node:tls'
import { Client, EqualityFilter, InvalidCredentialsError, NoSuchObjectError } from 'ldapts'
import type { LdapServerConfig } from '../config/schema.ts'
import type { WharfError } from '../core/errors.ts'
import { type ProviderStatus, ssoError } from './oidc.ts'

/** A user as the directory describes them. */
export interface DirectoryUser {
  dn: string
  username: string
  email: string | null
  name: string
  /** The cn and the DN of every group the user is a member of, lowercased. */
  groups: Set<string>
}

/** An operation the directory has not answered in this long fails (the user is waiting on the sign-in form). */
const OPERATION_TIMEOUT_MS = 10_000
const CONNECT_TIMEOUT_MS = 5_000

const first = (v: unknown): string | null => {
  const x = Array.isArray(v) ? v[0] : v
  return x === undefined || x === null ? null : String(x)
}

/**
 * One LDAP directory through ldapts: a service bind (or anonymous) to search for the user by the
 * username attribute, a bind as the user's DN to check the password, and a search of the group
 * base for the groups listing the user (member, uniqueMember or memberUid). TLS through ldaps://,
 * verified with the configured CA. Failures to reach it become `unreachable`.
 */
export class LdapDirectory {
  readonly settings: LdapServerConfig
  private readonly tls: ConnectionOptions | undefined
  private status: Omit<ProviderStatus, 'id' | 'label' | 'issuer'> = { ok: null, error: null, checked_at: null }

  constructor(settings: LdapServerConfig) {
    this.settings = settings
    this.tls = settings.caFile ? { ca: readFileSync(settings.caFile) } : undefined
  }

  get id(): string {
    return this.settings.id
  }

  report(): ProviderStatus {
    return { id: this.settings.id, label: this.settings.label, issuer: this.settings.url, ...this.status }
  }

  private note(error: string | null): void {
    this.status = { ok: error === null, error, checked_at: new Date().toISOString() }
  }

  private async session<T>(run: (client: Client) => Promise<T>): Promise<T> {
    const client = new Client({
      url: this.settings.url,
      timeout: OPERATION_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      ...(this.tls ? { tlsOptions: this.tls } : {}),
    })
    try {
      const result = await run(client)
      this.note(null)
      return result
    } catch (e) {
      if (e instanceof InvalidCredentialsError) throw e
      const err = (e as { detail?: { sso?: unknown } }).detail?.sso ? (e as WharfError) : this.unreachable(e)
      this.note(err.message)
      throw err
    } finally {
      await client.unbind().catch(() => undefined)
    }
  }

  private unreachable(e: unknown): WharfError {
    const cause = (e as { code?: string }).code ?? (e as Error).message
    return ssoError('unreachable', `${this.settings.id}: cannot use the directory at ${this.settings.url} (${cause})`, e)
  }

  private async serviceBind(client: Client): Promise<void> {
    if (this.settings.bindDn) await client.bind(this.settings.bindDn, this.settings.bindPassword ?? '')
  }

  private async describe(client: Client, entry: Record<string, unknown> & { dn: string }): Promise<DirectoryUser> {
    const attr = this.settings.usernameAttribute ?? 'uid'
    const username = first(entry[attr]) ?? ''
    const groups = new Set<string>()
    if (this.settings.groupBaseDn) {
      const filter = `(|${new EqualityFilter({ attribute: 'member', value: entry.dn }).toString()}${new EqualityFilter({ attribute: 'uniqueMember', value: entry.dn }).toString()}${new EqualityFilter({ attribute: 'memberUid', value: username }).toString()})`
      const { searchEntries } = await client.search(this.settings.groupBaseDn, { scope: 'sub', filter, attributes: ['cn'] })
      for (const g of searchEntries) {
        groups.add(g.dn.toLowerCase())
        const cn = first(g.cn)
        if (cn) groups.add(cn.toLowerCase())
      }
    }
    return { dn: entry.dn, username, email: first(entry.mail), name: first(entry.cn) ?? first(entry.displayName) ?? username, groups }
  }

  private userFilter(username: string): string {
    const attr = this.settings.usernameAttribute ?? 'uid'
    return `(&${this.settings.userFilter ?? '(objectClass=inetOrgPerson)'}${new EqualityFilter({ attribute: attr, value: username }).toString()})`
  }

  private attributes(): string[] {
    return [this.settings.usernameAttribute ?? 'uid', 'mail', 'cn', 'displayName']
  }

  /** The user whose password this is, or undefined (no such user, or a wrong password). */
  async authenticate(username: string, password: string): Promise<DirectoryUser | undefined> {
    // An empty password would be an unauthenticated bind, which many servers accept.
    if (!password) return undefined
    return this.session(async (client) => {
      await this.serviceBind(client)
      const { searchEntries } = await client.search(this.settings.baseDn, {
        scope: 'sub',
        filter: this.userFilter(username),
        attributes: this.attributes(),
        sizeLimit: 2,
      })
      if (searchEntries.length !== 1) return undefined
      const entry = searchEntries[0]!
      const check = new Client({
        url: this.settings.url,
        timeout: OPERATION_TIMEOUT_MS,
        connectTimeout: CONNECT_TIMEOUT_MS,
        ...(this.tls ? { tlsOptions: this.tls } : {}),
      })
      try {
        await check.bind(entry.dn, password)
      } catch (e) {
        if (e instanceof InvalidCredentialsError) return undefined
        throw e
      } finally {
        await check.unbind().catch(() => undefined)
      }
      return this.describe(client, entry)
    })
  }

  /** Start-up check: connects, binds as the service account and reads the base DN. */
  async probe(): Promise<void> {
    await this.session(async (client) => {
      try {
        await this.serviceBind(client)
      } catch (e) {
        if (e instanceof InvalidCredentialsError)
          throw ssoError('misconfigured', `${this.settings.id}: the directory refused bindDn/bindPassword`, e)
        throw e
      }
      await client.search(this.settings.baseDn, { scope: 'base', attributes: ['dn'] })
    })
  }

  /** The user at this DN if the directory still lists them as a user (the sync's question). */
  async lookup(dn: string): Promise<DirectoryUser | undefined> {
    return this.session(async (client) => {
      await this.serviceBind(client)
      try {
        const { searchEntries } = await client.search(dn, {
          scope: 'base',
          filter: this.settings.userFilter ?? '(objectClass=inetOrgPerson)',
          attributes: this.attributes(),
        })
        return searchEntries[0] ? this.describe(client, searchEntries[0]) : undefined
      } catch (e) {
        if (e instanceof NoSuchObjectError) return undefined
        throw e
      }
    })
  }
}
