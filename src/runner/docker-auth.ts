/**
 * Registry credentials for image pulls, resolved as gitlab-runner does
 * (helpers/docker/auth): sources in order — the job's `DOCKER_AUTH_CONFIG` variable, the
 * runner's `docker.auth_config`, the runner user's `~/.docker/config.json` (or `$DOCKER_CONFIG`),
 * then the job payload's `credentials` (Wharf's registry with the job token). The first source
 * that names a registry path wins it; an image uses the entry with the longest path that
 * prefixes it. Docker config files may carry `auths` (base64 `auth`, or `username`/`password`,
 * or `identitytoken`), `credHelpers` (per registry) and `credsStore` (all registries): helpers
 * run as `docker-credential-<name> get` (and `list` for the store).
 */
import { readFile } from 'node:fs/promises'
import { homedir } from 'node:os'
import path from 'node:path'
import { startProcess } from '../core/spawn.ts'
import type { Credentials } from './protocol.ts'

export const DEFAULT_REGISTRY = 'docker.io'

/** What the Docker Engine API takes as X-Registry-Auth. */
export interface RegistryAuth {
  username?: string
  password?: string
  identitytoken?: string
  serveraddress: string
}

export interface AuthEntry {
  /** Normalized registry path (`host[:port][/path]`, host lower-cased). */
  path: string
  /** Where it came from, for the job log (never the secret). */
  source: string
  /** Resolves the credentials (helpers run only when the entry is used). */
  get: () => Promise<RegistryAuth>
}

function lowerHost(p: string): string {
  const i = p.indexOf('/')
  return i === -1 ? p.toLowerCase() : `${p.slice(0, i).toLowerCase()}${p.slice(i)}`
}

/** gitlab-runner's convertToRegistryPath: the registry path a config key names. */
export function registryPath(serverAddress: string): string {
  const proto = /^https?:\/\//i
  if (proto.test(serverAddress)) {
    const host = serverAddress.replace(proto, '').split('/')[0]!.toLowerCase()
    return host === `index.${DEFAULT_REGISTRY}` ? DEFAULT_REGISTRY : host
  }
  let p = serverAddress.replace(/\/+$/, '')
  const tag = p.lastIndexOf(':')
  const slash = p.lastIndexOf('/')
  if (slash !== -1 && tag > slash) p = p.slice(0, tag)
  p = lowerHost(p)
  return p === `index.${DEFAULT_REGISTRY}` ? DEFAULT_REGISTRY : p
}

/** gitlab-runner's normalizeImageRef: `nginx:1` → `docker.io/nginx`, tag and digest cut off. */
export function normalizeImageRef(image: string): string {
  let ref = image.split('@')[0]!
  const slash = ref.lastIndexOf('/')
  const colon = ref.lastIndexOf(':')
  if (colon > slash) ref = ref.slice(0, colon)
  const [first, ...rest] = ref.split('/')
  const isHub = rest.length === 0 || (!first!.includes('.') && !first!.includes(':') && first!.toLowerCase() !== 'localhost')
  if (isHub) ref = `${DEFAULT_REGISTRY}/${ref}`
  else if (first!.toLowerCase() === `index.${DEFAULT_REGISTRY}`) ref = `${DEFAULT_REGISTRY}/${rest.join('/')}`
  return lowerHost(ref)
}

/** The registry host of an image (`docker.io` for Docker Hub images). */
export function imageRegistry(image: string): string {
  return normalizeImageRef(image).split('/')[0]!
}

export type HelperRunner = (helper: string, action: 'get' | 'list', input: string) => Promise<string>

/** Runs `docker-credential-<helper> <action>` with `input` on stdin; rejects on a non-zero exit. */
export const runCredentialHelper: HelperRunner = async (helper, action, input) => {
  if (helper !== path.basename(helper) || helper === '' || helper.includes('..'))
    throw new Error(`invalid credential helper name ${JSON.stringify(helper)}`)
  const child = await startProcess(`docker-credential-${helper}`, [action], { stdio: ['pipe', 'pipe', 'pipe'] }).catch(
    (e: NodeJS.ErrnoException) => {
      throw new Error(`docker-credential-${helper}: ${e.code ?? e.message}`)
    },
  )
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    const err: Buffer[] = []
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('close', (code) => {
      clearTimeout(timer)
      const stdout = Buffer.concat(out).toString('utf8')
      if (code === 0) resolve(stdout)
      else
        reject(
          new Error(
            `docker-credential-${helper} ${action} exited ${code}: ${(Buffer.concat(err).toString('utf8') || stdout).trim().slice(0, 200)}`,
          ),
        )
    })
    child.stdin.end(input)
  })
}

async function helperGet(run: HelperRunner, helper: string, server: string): Promise<RegistryAuth> {
  const parsed = JSON.parse(await run(helper, 'get', server)) as { ServerURL?: string; Username?: string; Secret?: string }
  if (parsed.Username === '<token>') return { identitytoken: parsed.Secret ?? '', serveraddress: server }
  return { username: parsed.Username ?? '', password: parsed.Secret ?? '', serveraddress: server }
}

export class DockerAuthConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'DockerAuthConfigError'
  }
}

/**
 * Parses a Docker client config (DOCKER_AUTH_CONFIG's JSON). Throws DockerAuthConfigError on bad
 * JSON or a bad `auth` field; helpers are listed here but run only when used.
 */
export async function parseDockerAuthConfig(json: string, source: string, run: HelperRunner = runCredentialHelper): Promise<AuthEntry[]> {
  let cfg: unknown
  try {
    cfg = JSON.parse(json)
  } catch (e) {
    throw new DockerAuthConfigError(`${source}: not valid JSON (${(e as Error).message})`)
  }
  if (cfg === null || typeof cfg !== 'object' || Array.isArray(cfg)) throw new DockerAuthConfigError(`${source}: expected a JSON object`)
  const c = cfg as { auths?: Record<string, Record<string, unknown>>; credHelpers?: Record<string, string>; credsStore?: string }
  const byPath = new Map<string, AuthEntry>()
  for (const [server, entry] of Object.entries(c.auths ?? {})) {
    if (!entry || typeof entry !== 'object') continue
    let username = typeof entry.username === 'string' ? entry.username : undefined
    let password = typeof entry.password === 'string' ? entry.password : undefined
    if (typeof entry.auth === 'string' && entry.auth !== '') {
      const decoded = Buffer.from(entry.auth, 'base64').toString('utf8')
      const i = decoded.indexOf(':')
      if (i < 0) throw new DockerAuthConfigError(`${source}: auths.${server}.auth is not base64 of "username:password"`)
      username = decoded.slice(0, i)
      password = decoded.slice(i + 1)
    }
    const identitytoken = typeof entry.identitytoken === 'string' && entry.identitytoken ? entry.identitytoken : undefined
    if (!identitytoken && username === undefined) continue // an empty entry (the store holds it)
    const auth: RegistryAuth = identitytoken
      ? { identitytoken, serveraddress: server }
      : { username: username ?? '', password: password ?? '', serveraddress: server }
    byPath.set(registryPath(server), { path: registryPath(server), source, get: async () => auth })
  }
  if (typeof c.credsStore === 'string' && c.credsStore) {
    const store = c.credsStore
    let listed: Record<string, string> = {}
    try {
      listed = JSON.parse(await run(store, 'list', '')) as Record<string, string>
    } catch (e) {
      throw new DockerAuthConfigError(`${source}: credsStore ${store}: ${(e as Error).message}`)
    }
    for (const server of Object.keys(listed)) {
      byPath.set(registryPath(server), {
        path: registryPath(server),
        source: `${source} (credsStore ${store})`,
        get: () => helperGet(run, store, server),
      })
    }
  }
  for (const [server, helper] of Object.entries(c.credHelpers ?? {})) {
    if (typeof helper !== 'string' || !helper) continue
    byPath.set(registryPath(server), {
      path: registryPath(server),
      source: `${source} (credHelper ${helper})`,
      get: () => helperGet(run, helper, server),
    })
  }
  return [...byPath.values()].sort((a, b) => a.path.localeCompare(b.path))
}

export function credentialsEntries(credentials: readonly Credentials[]): AuthEntry[] {
  return credentials
    .filter((c) => c.type === 'registry')
    .map((c) => ({
      path: registryPath(c.url),
      source: 'job payload (Wharf registry)',
      get: async () => ({ username: c.username, password: c.password, serveraddress: c.url }),
    }))
}

/** The runner user's docker config (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`), if any. */
export async function homeDockerConfig(env: NodeJS.ProcessEnv = process.env): Promise<{ file: string; text: string } | undefined> {
  const dir = env.DOCKER_CONFIG || path.join(homedir(), '.docker')
  const file = path.join(dir, 'config.json')
  try {
    return { file, text: await readFile(file, 'utf8') }
  } catch {
    return undefined
  }
}

/** Merges sources in precedence order: the first one to name a path keeps it. */
export function mergeAuthSources(sources: readonly AuthEntry[][]): AuthEntry[] {
  const seen = new Map<string, AuthEntry>()
  for (const list of sources) for (const e of list) if (!seen.has(e.path)) seen.set(e.path, e)
  return [...seen.values()]
}

/** The entry for an image: the longest registry path that is the image path or a parent of it. */
export function authForImage(image: string, entries: readonly AuthEntry[]): AuthEntry | undefined {
  const byPath = new Map(entries.map((e) => [e.path, e]))
  for (let p = normalizeImageRef(image); p !== ''; p = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '') {
    const e = byPath.get(p)
    if (e) return e
  }
  return undefined
}
