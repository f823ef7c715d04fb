// `wharf login [URL]` and `wharf logout [URL]`: sign this machine in to a Wharf server for docker,
// podman, buildah and skopeo without a secret in their config files. Login runs the OAuth 2.0
// device authorization grant (RFC 8628: a URL and a code to approve in the web UI) or takes a
// token (`--token`), keeps the credential in the helper's store (credential-store.ts), installs
// docker-credential-wharf and names it in `credHelpers` of Docker's config.json and containers'
// auth.json. Logout revokes the login on the server, forgets it and removes those entries.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { hostname, homedir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { revokeOnServer } from './credential-helper.ts'
import { CredentialStore, hostOf, writeFileAtomic, type StoreKind } from './credential-store.ts'

const CLIENT_ID = 'wharf-cli'
const DEVICE_CODE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
const HELPER_NAME = 'docker-credential-wharf'
/** What `credHelpers` names: clients run `docker-credential-<this>`. */
const HELPER_SUFFIX = 'wharf'
const DEFAULT_URL = 'http://127.0.0.1:5000'

const LOGIN_USAGE = `Usage: wharf login [URL] [options]

Signs this machine in to the Wharf server at URL (default ${DEFAULT_URL}) for docker, podman,
buildah and skopeo: prints a URL and a code to approve in the web UI, then stores the login in the
OS keyring (secret-tool) or a 0600 file under $XDG_CONFIG_HOME/wharf, installs ${HELPER_NAME}
and adds credHelpers entries to Docker's config.json and containers' auth.json (no secret in either).

Options:
  --token TOKEN     use a personal access token or deploy token instead of the browser ("-": read it from stdin)
  --username NAME   the token's username (deploy tokens; PATs without read_user need it too)
  --scope SCOPES    what the login may do: read_registry, write_registry, api (default "read_registry write_registry")
  --bin-dir DIR     where to install ${HELPER_NAME} (default: where it already is on PATH, else ~/.local/bin)
  --store KIND      auto (keyring when secret-tool works, else file), keyring or file
`

const LOGOUT_USAGE = `Usage: wharf logout [URL]

Revokes this machine's login on the server (a device login; a token stays valid: revoke it in the
web UI), forgets it and removes the credHelpers entries for its host. Without URL: the only login.
`

type Out = (line: string) => void

/** Docker's config.json: $DOCKER_CONFIG/config.json, else ~/.docker/config.json. */
export function dockerConfigFile(env: NodeJS.ProcessEnv): string {
  return path.join(env.DOCKER_CONFIG || path.join(env.HOME || homedir(), '.docker'), 'config.json')
}

/** containers' auth.json: $REGISTRY_AUTH_FILE, else ${XDG_RUNTIME_DIR}/containers/auth.json, else ~/.config/containers/auth.json. */
export function containersAuthFile(env: NodeJS.ProcessEnv): string {
  if (env.REGISTRY_AUTH_FILE) return env.REGISTRY_AUTH_FILE
  if (env.XDG_RUNTIME_DIR) return path.join(env.XDG_RUNTIME_DIR, 'containers', 'auth.json')
  return path.join(env.HOME || homedir(), '.config', 'containers', 'auth.json')
}

function readConfig(file: string): Record<string, unknown> {
  if (!existsSync(file)) return {}
  const text = readFileSync(file, 'utf8')
  if (text.trim() === '') return {}
  const parsed = JSON.parse(text) as unknown
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${file} is not a JSON object`)
  return parsed as Record<string, unknown>
}

function modeOf(file: string): number {
  return existsSync(file) ? statSync(file).mode & 0o777 : 0o600
}

/**
 * Names the helper for `host` in a client config, and drops a stored `auths` entry for the host
 * (credentials a previous `docker login` left on disk). Returns whether a secret was removed.
 */
export function addCredHelper(file: string, host: string): boolean {
  const config = readConfig(file)
  const helpers = (config.credHelpers ?? {}) as Record<string, string>
  helpers[host] = HELPER_SUFFIX
  config.credHelpers = helpers
  const auths = config.auths as Record<string, unknown> | undefined
  const removed = auths !== undefined && host in auths
  if (removed) delete auths[host]
  writeFileAtomic(file, `${JSON.stringify(config, null, '\t')}\n`, modeOf(file))
  return removed
}

/** Removes our `credHelpers` entry for `host` (only if it names this helper). */
export function removeCredHelper(file: string, host: string): void {
  if (!existsSync(file)) return
  const config = readConfig(file)
  const helpers = config.credHelpers as Record<string, string> | undefined
  if (helpers?.[host] !== HELPER_SUFFIX) return
  delete helpers[host]
  writeFileAtomic(file, `${JSON.stringify(config, null, '\t')}\n`, modeOf(file))
}

/** The first line after the shebang of the launcher `wharf login` writes, to find it again on PATH. */
const LAUNCHER_MARK = '# Installed by wharf login.'

/**
 * Writes the helper's launcher (this Node and this package's entry, so it works whatever `node` PATH
 * finds) into `binDir`, else where an earlier login put it on PATH, else ~/.local/bin. Not into
 * any directory that merely has a `docker-credential-wharf`: npx's temporary bin directory has one.
 */
function installHelper(binDir: string | undefined, env: NodeJS.ProcessEnv, out: Out): string {
  const entry = new URL('../../bin/docker-credential-wharf.js', import.meta.url).pathname
  const pathDirs = (env.PATH ?? '').split(path.delimiter).filter((d) => path.isAbsolute(d))
  const ours = (dir: string) => {
    try {
      return readFileSync(path.join(dir, HELPER_NAME), 'utf8').includes(LAUNCHER_MARK)
    } catch {
      return false
    }
  }
  const dir = binDir ? path.resolve(binDir) : (pathDirs.find(ours) ?? path.join(env.HOME || homedir(), '.local', 'bin'))
  const target = path.join(dir, HELPER_NAME)
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`
  writeFileAtomic(target, `#!/bin/sh\n${LAUNCHER_MARK}\nexec ${quote(process.execPath)} ${quote(entry)} "$@"\n`, 0o755)
  if (!pathDirs.includes(dir)) out(`note: ${dir} is not on PATH; add it so docker and podman find ${HELPER_NAME}`)
  return target
}

function baseUrl(raw: string | undefined): string {
  const text = raw ?? DEFAULT_URL
  const url = new URL(/^https?:\/\//.test(text) ? text : `https://${text}`)
  return url.origin
}

async function postForm(url: string, form: Record<string, string>): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams(form).toString(),
    signal: AbortSignal.timeout(30_000),
  })
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** RFC 8628: start, show the code, poll until approved, denied or expired. Returns the login's tokens. */
async function deviceFlow(url: string, scope: string, out: Out) {
  const started = await postForm(`${url}/oauth/authorize_device`, { client_id: CLIENT_ID, scope, device_name: hostname() })
  if (started.status !== 200) throw new Error(`${url} refused the sign-in: ${String(started.body.error_description ?? started.status)}`)
  const s = started.body as {
    device_code: string
    user_code: string
    verification_uri: string
    verification_uri_complete: string
    interval: number
    expires_in: number
  }
  out(`To sign in, open ${s.verification_uri} and enter the code ${s.user_code}`)
  out(`  (or open ${s.verification_uri_complete})`)
  out('Waiting for approval...')
  let interval = s.interval
  const deadline = Date.now() + s.expires_in * 1000
  while (Date.now() < deadline) {
    await sleep(interval * 1000)
    const got = await postForm(`${url}/oauth/token`, { grant_type: DEVICE_CODE_GRANT, device_code: s.device_code, client_id: CLIENT_ID })
    if (got.status === 200)
      return got.body as { access_token: string; refresh_token: string; expires_in: number; username: string; scope: string }
    const error = got.body.error
    if (error === 'authorization_pending') continue
    if (error === 'slow_down') {
      interval += 5
      continue
    }
    if (error === 'access_denied') throw new Error('the sign-in was denied')
    if (error === 'expired_token') break
    throw new Error(`${url}/oauth/token answered ${got.status}: ${String(got.body.error_description ?? error)}`)
  }
  throw new Error('the code expired before it was approved; run wharf login again')
}

/** The username a token belongs to, from /api/v4/user (needs read_user or api); undefined when the token cannot read it. */
async function tokenUsername(url: string, token: string): Promise<string | undefined> {
  const res = await fetch(`${url}/api/v4/user`, { headers: { 'private-token': token }, signal: AbortSignal.timeout(30_000) })
  const body = (await res.json().catch(() => ({}))) as { username?: string }
  return res.ok ? body.username : undefined
}

/** The registry's token endpoint accepts the pair (the check `docker login` makes). */
async function checkToken(url: string, username: string, token: string): Promise<void> {
  const res = await fetch(`${url}/jwt/auth?service=container_registry`, {
    headers: { authorization: `Basic ${Buffer.from(`${username}:${token}`).toString('base64')}` },
    signal: AbortSignal.timeout(30_000),
  })
  await res.arrayBuffer()
  if (res.status !== 200) throw new Error(`${url} does not accept this token for ${username} (HTTP ${res.status})`)
}

async function readStdin(): Promise<string> {
  let text = ''
  for await (const chunk of process.stdin) text += String(chunk)
  return text.trim()
}

export async function loginCommand(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  out: Out = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      token: { type: 'string' },
      username: { type: 'string' },
      scope: { type: 'string', default: 'read_registry write_registry' },
      'bin-dir': { type: 'string' },
      store: { type: 'string', default: 'auto' },
      help: { type: 'boolean', short: 'h' },
    },
  })
  if (values.help) {
    out(LOGIN_USAGE)
    return 0
  }
  if (positionals.length > 1) throw new Error('wharf login takes one URL')
  const storeKind = values.store
  if (storeKind !== 'auto' && storeKind !== 'keyring' && storeKind !== 'file') throw new Error('--store must be auto, keyring or file')
  const url = baseUrl(positionals[0])
  const host = hostOf(url)
  const store = new CredentialStore(env)
  let where: StoreKind
  let username: string
  if (values.token !== undefined) {
    const token = values.token === '-' ? await readStdin() : values.token
    if (!token) throw new Error('--token is empty')
    const name = values.username ?? (await tokenUsername(url, token))
    if (!name) throw new Error('cannot tell whose token this is (it has no read_user or api scope): pass --username')
    await checkToken(url, name, token)
    username = name
    where = store.save(host, { url, username, kind: 'token' }, token, storeKind)
  } else {
    const tokens = await deviceFlow(url, values.scope, out)
    username = tokens.username
    where = store.save(host, { url, username, kind: 'device' }, tokens.refresh_token, storeKind)
    const now = Date.now()
    store.cache(host, { secret: tokens.access_token, issuedAt: now, expiresAt: now + tokens.expires_in * 1000 })
  }
  const helper = installHelper(values['bin-dir'], env, out)
  for (const file of [dockerConfigFile(env), containersAuthFile(env)]) {
    if (addCredHelper(file, host)) out(`removed the credentials a previous login stored for ${host} in ${file}`)
  }
  out(`Logged in to ${host} as ${username}${values.token === undefined ? ` (${values.scope})` : ''}.`)
  out(`  credential: ${where === 'keyring' ? 'the OS keyring (secret-tool)' : path.join(store.dir, 'secrets.json')}`)
  out(`  helper:     ${helper}`)
  out(`  credHelpers["${host}"] = "${HELPER_SUFFIX}" in ${dockerConfigFile(env)} and ${containersAuthFile(env)}`)
  return 0
}

export async function logoutCommand(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
  out: Out = (l) => process.stdout.write(`${l}\n`),
): Promise<number> {
  const { positionals, values } = parseArgs({ args, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } })
  if (values.help) {
    out(LOGOUT_USAGE)
    return 0
  }
  const store = new CredentialStore(env)
  let host: string
  if (positionals[0] !== undefined) host = hostOf(baseUrl(positionals[0]))
  else {
    const hosts = Object.keys(store.logins())
    if (hosts.length !== 1) throw new Error(hosts.length === 0 ? 'not logged in anywhere' : `logged in to ${hosts.join(', ')}: name one`)
    host = hosts[0]!
  }
  const login = store.login(host)
  if (!login) throw new Error(`not logged in to ${host}`)
  const secret = store.secret(host)
  if (login.kind === 'device' && secret) {
    if (await revokeOnServer(login.url, secret)) out(`Revoked the login on ${login.url}.`)
    else out(`warning: could not reach ${login.url} to revoke the login; revoke it in the web UI (Access tokens)`)
  } else if (login.kind === 'token') out('The token stays valid on the server: revoke it in the web UI if it should stop working.')
  store.forget(host)
  for (const file of [dockerConfigFile(env), containersAuthFile(env)]) removeCredHelper(file, host)
  out(`Logged out of ${host}.`)
  return 0
}
