// Where `wharf login` keeps what docker-credential-wharf needs, per registry host. Node built-ins
// only: the helper loads this on every docker pull, so it must start fast.
//
//   $XDG_CONFIG_HOME/wharf/logins.json   which hosts, their URL, username and kind (nothing secret)
//   the OS keyring (secret-tool), or     the refresh credential (device login) or token, one per host
//     $XDG_CONFIG_HOME/wharf/secrets.json  (0600) when there is no keyring
//   $XDG_CONFIG_HOME/wharf/cache.json    (0600) the current short-lived secret per host and its expiry
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { homedir } from 'node:os'
import path from 'node:path'

/** `device`: a refresh credential from the device flow; `token`: a PAT, deploy token or password used as is. */
export type LoginKind = 'device' | 'token'
export type StoreKind = 'keyring' | 'file'

export interface LoginEntry {
  /** The server's base URL (http(s)://host[:port]), where the helper refreshes. */
  url: string
  username: string
  kind: LoginKind
  store: StoreKind
}

export interface CachedSecret {
  secret: string
  /** Epoch ms. */
  expiresAt: number
  /** Epoch ms, to refresh when a fraction of the lifetime is left whatever the TTL. */
  issuedAt: number
}

const KEYRING_SERVICE = 'wharf'
/** secret-tool talks to the session's secret service over D-Bus; a stuck one must not hang docker. */
const KEYRING_TIMEOUT_MS = 10_000

export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || path.join(env.HOME || homedir(), '.config')
  return path.join(base, 'wharf')
}

/** The registry host a client names (docker sends `host:port`, others a URL), as the store keys it. */
export function hostOf(serverUrl: string): string {
  const s = serverUrl.trim()
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return new URL(s).host.toLowerCase()
  } catch {
    // not a URL: fall through to the host[:port][/path] form
  }
  return (s.split('/')[0] ?? '').toLowerCase()
}

function readJson<T>(file: string, fallback: T): T {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as T
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return fallback
    throw new Error(`cannot read ${file}: ${(e as Error).message}`)
  }
}

/** Writes through a temp file and a rename, so a reader never sees half a file; 0600 in a 0700 directory. */
export function writeFileAtomic(file: string, text: string, mode = 0o600): void {
  mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 })
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`
  writeFileSync(tmp, text, { mode })
  chmodSync(tmp, mode)
  renameSync(tmp, file)
}

function keyringAvailable(): boolean {
  const r = spawnSync('secret-tool', ['--version'], { stdio: 'ignore', timeout: KEYRING_TIMEOUT_MS })
  return r.error === undefined
}

export class CredentialStore {
  readonly dir: string

  constructor(env: NodeJS.ProcessEnv = process.env) {
    this.dir = configDir(env)
  }

  private get loginsFile() {
    return path.join(this.dir, 'logins.json')
  }
  private get secretsFile() {
    return path.join(this.dir, 'secrets.json')
  }
  private get cacheFile() {
    return path.join(this.dir, 'cache.json')
  }

  logins(): Record<string, LoginEntry> {
    return readJson<{ logins?: Record<string, LoginEntry> }>(this.loginsFile, {}).logins ?? {}
  }

  login(host: string): LoginEntry | undefined {
    return this.logins()[host]
  }

  /**
   * Saves a login and its secret: in the keyring when `secret-tool` works (unless `prefer` is
   * `file`), else in the 0600 file. Returns where the secret went.
   */
  save(host: string, entry: Omit<LoginEntry, 'store'>, secret: string, prefer: StoreKind | 'auto' = 'auto'): StoreKind {
    this.forget(host)
    let store: StoreKind = 'file'
    if (prefer !== 'file' && keyringAvailable()) {
      const r = spawnSync('secret-tool', ['store', `--label=Wharf login for ${host}`, 'service', KEYRING_SERVICE, 'host', host], {
        input: secret,
        timeout: KEYRING_TIMEOUT_MS,
        stdio: ['pipe', 'ignore', 'pipe'],
      })
      if (r.status === 0) store = 'keyring'
      else if (prefer === 'keyring') throw new Error(`secret-tool could not store the secret: ${String(r.stderr ?? r.error).trim()}`)
    } else if (prefer === 'keyring') {
      throw new Error('secret-tool is not installed (Debian: libsecret-tools)')
    }
    if (store === 'file') {
      const secrets = readJson<Record<string, string>>(this.secretsFile, {})
      secrets[host] = secret
      writeFileAtomic(this.secretsFile, `${JSON.stringify(secrets, null, 2)}\n`)
    }
    const logins = this.logins()
    logins[host] = { ...entry, store }
    writeFileAtomic(this.loginsFile, `${JSON.stringify({ logins }, null, 2)}\n`)
    return store
  }

  secret(host: string): string | undefined {
    const entry = this.login(host)
    if (!entry) return undefined
    if (entry.store === 'keyring') {
      const r = spawnSync('secret-tool', ['lookup', 'service', KEYRING_SERVICE, 'host', host], {
        encoding: 'utf8',
        timeout: KEYRING_TIMEOUT_MS,
        stdio: ['ignore', 'pipe', 'ignore'],
      })
      return r.status === 0 && r.stdout ? r.stdout : undefined
    }
    return readJson<Record<string, string>>(this.secretsFile, {})[host]
  }

  /** Forgets a host's login, secret and cached secret (wherever they are). */
  forget(host: string): void {
    const logins = this.logins()
    const entry = logins[host]
    if (entry?.store === 'keyring') {
      spawnSync('secret-tool', ['clear', 'service', KEYRING_SERVICE, 'host', host], { stdio: 'ignore', timeout: KEYRING_TIMEOUT_MS })
    }
    const secrets = readJson<Record<string, string>>(this.secretsFile, {})
    if (host in secrets) {
      delete secrets[host]
      writeFileAtomic(this.secretsFile, `${JSON.stringify(secrets, null, 2)}\n`)
    }
    this.uncache(host)
    if (entry) {
      delete logins[host]
      writeFileAtomic(this.loginsFile, `${JSON.stringify({ logins }, null, 2)}\n`)
    }
  }

  cached(host: string): CachedSecret | undefined {
    return readJson<Record<string, CachedSecret>>(this.cacheFile, {})[host]
  }

  cache(host: string, value: CachedSecret): void {
    const all = readJson<Record<string, CachedSecret>>(this.cacheFile, {})
    all[host] = value
    writeFileAtomic(this.cacheFile, `${JSON.stringify(all)}\n`)
  }

  uncache(host: string): void {
    const all = readJson<Record<string, CachedSecret>>(this.cacheFile, {})
    if (!(host in all)) return
    delete all[host]
    writeFileAtomic(this.cacheFile, `${JSON.stringify(all)}\n`)
  }
}
