// docker-credential-wharf: Docker's credential helper protocol (docker-credential-helpers), which
// docker, podman, buildah and skopeo run for the hosts `credHelpers` names. `get` reads a server
// URL on stdin and prints {"ServerURL","Username","Secret"}; `store` reads that object; `erase`
// reads a server URL; `list` prints {"<server>":"<username>"}; `version`. Errors go to stdout with
// exit status 1, and a host without a login answers "credentials not found in native keychain",
// which clients take as "no credentials" (anonymous). For a `wharf login` the secret is a
// short-lived one minted from the stored refresh credential, cached until near its expiry and
// renewed here, so the client never sees a refresh and nothing long-lived reaches its config.
// Built-ins and credential-store.ts only: this runs on every pull.
import { readFileSync } from 'node:fs'
import { CredentialStore, hostOf, type CachedSecret } from './credential-store.ts'

/** The server's prefix of the short-lived secrets it mints from a device login (auth/device-logins.ts). */
const LOGIN_SECRET_PREFIX = 'wharf-ls-'
/** The exact message the helper protocol's clients recognise as "no credentials for this server". */
export const NOT_FOUND = 'credentials not found in native keychain'
/** Renew when less than this much of a secret's life is left (and at most this long before it ends). */
const RENEW_FRACTION = 1 / 3
const RENEW_MAX_MS = 60_000
/** The server answers a refresh in milliseconds; a dead one must not stall docker for long. */
const REFRESH_TIMEOUT_MS = 15_000

export interface HelperIo {
  stdin: AsyncIterable<Buffer | string>
  write(text: string): void
  env: NodeJS.ProcessEnv
}

class HelperError extends Error {}

async function readAll(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  let text = ''
  for await (const chunk of stdin) text += typeof chunk === 'string' ? chunk : chunk.toString('utf8')
  return text
}

/** True while a cached secret has more than a third of its life (and more than a minute, for long TTLs) left. */
export function stillFresh(c: CachedSecret, now = Date.now()): boolean {
  const margin = Math.min(RENEW_MAX_MS, (c.expiresAt - c.issuedAt) * RENEW_FRACTION)
  return c.expiresAt - margin > now
}

/** A new short-lived secret from the refresh credential (the refresh grant of POST /oauth/token). */
export async function mintSecret(url: string, refresh: string): Promise<{ secret: string; username: string; cached: CachedSecret }> {
  let res: Response
  try {
    res = await fetch(`${url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: refresh }).toString(),
      signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
    })
  } catch (e) {
    throw new HelperError(`cannot reach ${url}: ${(e as Error).message}`)
  }
  const body = (await res.json().catch(() => ({}))) as Record<string, unknown>
  if (res.status === 400 && body.error === 'invalid_grant') {
    throw new HelperError(`the Wharf login for ${new URL(url).host} was revoked or has expired; run: wharf login ${url}`)
  }
  if (!res.ok || typeof body.access_token !== 'string' || typeof body.expires_in !== 'number') {
    throw new HelperError(`${url}/oauth/token answered ${res.status}: ${String(body.error_description ?? body.error ?? 'no token')}`)
  }
  const now = Date.now()
  return {
    secret: body.access_token,
    username: String(body.username ?? ''),
    cached: { secret: body.access_token, issuedAt: now, expiresAt: now + body.expires_in * 1000 },
  }
}

async function get(store: CredentialStore, serverUrl: string): Promise<{ ServerURL: string; Username: string; Secret: string }> {
  const host = hostOf(serverUrl)
  const login = host ? store.login(host) : undefined
  if (!login) throw new HelperError(NOT_FOUND)
  // The cache first: a fresh secret needs no keyring lookup.
  const cached = login.kind === 'device' ? store.cached(host) : undefined
  if (cached && stillFresh(cached)) return { ServerURL: serverUrl, Username: login.username, Secret: cached.secret }
  const stored = store.secret(host)
  if (!stored) throw new HelperError(NOT_FOUND)
  if (login.kind === 'token') return { ServerURL: serverUrl, Username: login.username, Secret: stored }
  const minted = await mintSecret(login.url, stored)
  store.cache(host, minted.cached)
  return { ServerURL: serverUrl, Username: minted.username || login.username, Secret: minted.secret }
}

/** Revokes a device login on its server (RFC 7009); best effort: forgetting it locally must not depend on the server. */
export async function revokeOnServer(url: string, refresh: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token: refresh }).toString(),
      signal: AbortSignal.timeout(REFRESH_TIMEOUT_MS),
    })
    await res.arrayBuffer()
    return res.ok
  } catch {
    return false
  }
}

/** Runs one helper command; returns the exit status. */
export async function credentialHelper(argv: string[], io: HelperIo): Promise<number> {
  const store = new CredentialStore(io.env)
  const command = argv[0]
  try {
    switch (command) {
      case 'get': {
        const serverUrl = (await readAll(io.stdin)).trim()
        io.write(`${JSON.stringify(await get(store, serverUrl))}\n`)
        return 0
      }
      case 'store': {
        let creds: { ServerURL?: unknown; Username?: unknown; Secret?: unknown }
        try {
          creds = JSON.parse(await readAll(io.stdin)) as typeof creds
        } catch {
          throw new HelperError('store expects {"ServerURL","Username","Secret"} on stdin')
        }
        if (typeof creds.ServerURL !== 'string' || typeof creds.Username !== 'string' || typeof creds.Secret !== 'string')
          throw new HelperError('store expects {"ServerURL","Username","Secret"} on stdin')
        const host = hostOf(creds.ServerURL)
        const current = store.login(host)
        if (current?.kind === 'device') {
          // `docker login` without arguments logs in with what `get` gave it and then stores that:
          // a secret minted here, which must not replace the login it came from.
          if (creds.Secret.startsWith(LOGIN_SECRET_PREFIX)) return 0
          // Another credential replaces the device login: end it on the server too.
          const refresh = store.secret(host)
          if (refresh) await revokeOnServer(current.url, refresh)
        }
        const url = /^https?:\/\//.test(creds.ServerURL) ? new URL(creds.ServerURL).origin : `https://${host}`
        store.save(host, { url, username: creds.Username, kind: 'token' }, creds.Secret)
        return 0
      }
      case 'erase': {
        const host = hostOf((await readAll(io.stdin)).trim())
        const login = store.login(host)
        if (!login) throw new HelperError(NOT_FOUND)
        const stored = store.secret(host)
        if (login.kind === 'device' && stored) await revokeOnServer(login.url, stored)
        store.forget(host)
        return 0
      }
      case 'list': {
        const out: Record<string, string> = {}
        for (const [host, login] of Object.entries(store.logins())) out[host] = login.username
        io.write(`${JSON.stringify(out)}\n`)
        return 0
      }
      case 'version': {
        const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
        io.write(`docker-credential-wharf ${pkg.version}\n`)
        return 0
      }
      default:
        io.write(`Usage: docker-credential-wharf <get|store|erase|list|version>\n`)
        return 1
    }
  } catch (e) {
    // The protocol: the error message on stdout, exit status 1.
    io.write(`${e instanceof HelperError ? e.message : `docker-credential-wharf: ${(e as Error).message}`}\n`)
    return 1
  }
}
