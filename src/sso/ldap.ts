import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { type ConnectionOptions, connect as tlsConnect } from 'node:tls'
import {
  Client,
  ConfidentialityRequiredError,
  EqualityFilter,
  InvalidCredentialsError,
  NoSuchObjectError,
  ResultCodeError,
  StrongAuthRequiredError,
} from 'ldapts'
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

/** Node's codes for a server certificate the configured CA does not vouch for, or one issued for another name. */
const UNTRUSTED_CERTIFICATE = new Set([
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_UNTRUSTED',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
])
const WRONG_NAME = 'ERR_TLS_CERT_ALTNAME_INVALID'

const first = (v: unknown): string | null => {
  const x = Array.isArray(v) ? v[0] : v
  return x === undefined || x === null ? null : String(x)
}

/**
 * One LDAP directory through ldapts: a service bind (or anonymous) to search for the user by the
 * username attribute, a bind as the user's DN to check the password, and a search of the group
 * base for the groups listing the user (member, uniqueMember or memberUid). TLS through ldaps://
 * or StartTLS on ldap://, the certificate verified (against caFile when set) for the URL's host.
 * Failures to reach it become `unreachable`; a certificate Wharf cannot trust, a refused StartTLS
 * or a directory that demands TLS Wharf does not use become `misconfigured`.
 */
export class LdapDirectory {
  readonly settings: LdapServerConfig
  private readonly ca: Buffer | undefined
  /** The URL's host, which the server's certificate must name. */
  private readonly host: string
  private status: Omit<ProviderStatus, 'id' | 'label' | 'issuer'> = { ok: null, error: null, checked_at: null }

  constructor(settings: LdapServerConfig) {
    this.settings = settings
    this.ca = settings.caFile ? readFileSync(settings.caFile) : undefined
    this.host = new URL(settings.url).hostname.replace(/^\[|\]$/g, '')
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

  /** TLS settings for a new connection (a fresh object each time: ldapts' startTLS writes the socket into it). */
  private tlsOptions(): ConnectionOptions {
    return {
      ...(this.ca ? { ca: this.ca } : {}),
      // StartTLS upgrades an existing socket, where Node would check the certificate against "localhost".
      host: this.host,
      // SNI takes host names only.
      ...(isIP(this.host) ? {} : { servername: this.host }),
    }
  }

  /**
   * A connected client: over TLS from the start for ldaps://, upgraded with StartTLS before anything
   * else is sent when `startTls` is set. ldapts speaks TLS at once whenever it is given TLS options,
   * so an ldap:// client gets none (the options go to startTLS instead): this was why StartTLS
   * failed (slapd reset a TLS handshake sent to its plain port).
   */
  private async connect(): Promise<Client> {
    const ldaps = this.settings.url.startsWith('ldaps:')
    const client = new Client({
      url: this.settings.url,
      timeout: OPERATION_TIMEOUT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
      ...(ldaps ? { tlsOptions: this.tlsOptions() } : {}),
      // ldapts bounds the connection but not StartTLS's handshake: a server that stalls it must not hold a sign-in.
      createSecureConnection: ((...args: Parameters<typeof tlsConnect>) => {
        const socket = (tlsConnect as (...a: unknown[]) => ReturnType<typeof tlsConnect>)(...args)
        const timer = setTimeout(
          () => socket.destroy(Object.assign(new Error('TLS handshake timed out'), { code: 'ETIMEDOUT' })),
          CONNECT_TIMEOUT_MS,
        )
        socket.once('secureConnect', () => clearTimeout(timer))
        socket.once('close', () => clearTimeout(timer))
        return socket
      }) as typeof tlsConnect,
    })
    if (this.settings.startTls) {
      try {
        await client.startTLS(this.tlsOptions())
      } catch (e) {
        await client.unbind().catch(() => undefined)
        if (e instanceof ResultCodeError)
          throw ssoError(
            'misconfigured',
            `${this.settings.id}: the directory at ${this.settings.url} refused StartTLS (${e.message}); it needs a TLS certificate, or use ldaps://`,
            e,
          )
        throw e
      }
    }
    return client
  }

  private async session<T>(run: (client: Client) => Promise<T>): Promise<T> {
    let client: Client | undefined
    try {
      client = await this.connect()
      const result = await run(client)
      this.note(null)
      return result
    } catch (e) {
      const err = (e as { detail?: { sso?: unknown } }).detail?.sso ? (e as WharfError) : this.failure(e)
      this.note(err.message)
      throw err
    } finally {
      await client?.unbind().catch(() => undefined)
    }
  }

  /** A failure worded for the administrator: what is wrong, and the setting that fixes it. */
  private failure(e: unknown): WharfError {
    const { id, url } = this.settings
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code))
      return ssoError(
        'misconfigured',
        `${id}: the TLS certificate of ${url} is not trusted (${code}: ${(e as Error).message}); set caFile to the CA that issued it`,
        e,
      )
    if (code === WRONG_NAME)
      return ssoError(
        'misconfigured',
        `${id}: the TLS certificate of ${url} is not issued for ${this.host} (${(e as Error).message}); use a host name the certificate holds in url`,
        e,
      )
    if (e instanceof ConfidentialityRequiredError || e instanceof StrongAuthRequiredError)
      return ssoError('misconfigured', `${id}: the directory at ${url} requires TLS (${e.message}); use ldaps:// or startTls: true`, e)
    const cause = typeof code === 'string' ? code : (e as Error).message
    return ssoError('unreachable', `${id}: cannot use the directory at ${url} (${cause})`, e)
  }

  private async serviceBind(client: Client): Promise<void> {
    if (!this.settings.bindDn) return
    try {
      await client.bind(this.settings.bindDn, this.settings.bindPassword ?? '')
    } catch (e) {
      // Not the user's wrong password: Wharf's own, on every sign-in and sync until fixed.
      if (e instanceof InvalidCredentialsError)
        throw ssoError('misconfigured', `${this.settings.id}: the directory refused bindDn/bindPassword`, e)
      throw e
    }
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

  /** The user whose password this is; 'wrong-password' when the directory has the user but not with this password; undefined: no such user. */
  async authenticate(username: string, password: string): Promise<DirectoryUser | 'wrong-password' | undefined> {
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
      const check = await this.connect()
      try {
        await check.bind(entry.dn, password)
      } catch (e) {
        if (e instanceof InvalidCredentialsError) return 'wrong-password'
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
      await this.serviceBind(client)
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
