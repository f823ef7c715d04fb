// Start a Wharf server (a child process) on 127.0.0.1 for end-to-end tests.
//
// Set WHARF_E2E_TARGET=reference to run the same tests against Debian's
// reference registry (docker-registry, distribution 2.8) instead: that tells a
// server bug from a test bug. Set WHARF_E2E_KEEP=1 to keep the temp dirs.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import { request as httpsRequest } from 'node:https'
import { createServer } from 'node:net'
import { mkdir, mkdtemp, readFile, rm, writeFile, open } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { registerCredentials } from './registry.ts'
import { testDatabaseUrl } from './database.ts'

export const repoRoot = path.resolve(import.meta.dirname, '..', '..')
export const projectNode = path.join(repoRoot, 'node_modules', '.bin', 'node')

export interface StartWharfOptions {
  /** Reuse this data dir (default: a fresh temp dir). */
  dataDir?: string
  /** Extra arguments after `serve ...`. */
  extraArgs?: string[]
  /** Extra environment for the server (WHARF_* from the parent never leak). */
  env?: Record<string, string>
  /** How long to wait for /v2/ to answer; default 30 s. */
  startTimeoutMs?: number
  /** root's password (WHARF_ROOT_PASSWORD); default: a random one. */
  rootPassword?: string
  /** Serve HTTPS with these PEM files (url becomes https://); `ca` verifies the start-up probe. */
  tls?: { cert: string; key: string; ca: string }
  /** Listen on this port (default: a free one), for tests that must name Wharf's URL before it starts (an OIDC redirect URI). */
  port?: number
}

export interface Wharf {
  /** http://127.0.0.1:PORT (https:// with the tls option) */
  url: string
  /** 127.0.0.1:PORT, for image references */
  host: string
  port: number
  dataDir: string
  /** Temp dir holding the data dir and the server log. */
  tmpDir: string
  logFile: string
  pid: number
  /** Which server this is: 'wharf' or 'reference' (docker-registry). */
  kind: 'wharf' | 'reference'
  /** The administrator's password (the reference registry has no accounts and ignores it). */
  rootPassword: string
  /** A REST API call (/api/v4/... or /oauth/...) as root (an OAuth password-grant token) unless `token` is given. */
  api(method: string, apiPath: string, body?: unknown, opts?: { token?: string | null }): Promise<ApiResult>
  /**
   * Creates the project `<group>[/<subgroup>...]/<project>` as root through the REST API, with its
   * groups if missing (no-op for the reference registry). Returns the project's id.
   */
  createProject(fullPath: string, visibility?: 'private' | 'internal' | 'public'): Promise<number>
  stop(): Promise<void>
  /** Kill the server and start it again on the same port with the same data dir. */
  restart(): Promise<void>
  /** Last lines of the server's log. */
  logTail(lines?: number): Promise<string>
}

export interface ApiResult {
  status: number
  /** Parsed JSON body (undefined when not JSON). */
  json: any
  text: string
  headers: Record<string, string | string[] | undefined>
  /** "METHOD PATH -> STATUS body", for assertion messages. */
  describe: string
}

/** One HTTP(S) request with an optional CA, for the REST API (fetch cannot take a private CA). */
function request(url: string, method: string, headers: Record<string, string>, body: string | undefined, ca: string | undefined) {
  return new Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }>((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest
    const req = send(url, { method, headers, timeout: 30_000, ...(ca ? { ca } : {}) }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }))
      res.on('error', reject)
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timeout`)))
    req.on('error', reject)
    req.end(body)
  })
}

export function targetKind(): 'wharf' | 'reference' {
  const t = process.env.WHARF_E2E_TARGET ?? 'wharf'
  if (t !== 'wharf' && t !== 'reference') {
    throw new Error(`WHARF_E2E_TARGET must be "wharf" or "reference", not ${JSON.stringify(t)}`)
  }
  return t
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      if (addr === null || typeof addr === 'string') {
        srv.close()
        reject(new Error('no port'))
        return
      }
      const { port } = addr
      srv.close(() => resolve(port))
    })
  })
}

function childEnv(extra: Record<string, string> | undefined): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('WHARF_')) continue
    if (k === 'NODE_TEST_CONTEXT') continue
    env[k] = v
  }
  return { ...env, ...extra }
}

/** Resolves on any HTTP answer from GET /v2/; over HTTPS only if the certificate verifies with `ca`. */
async function probe(url: string, ca: string | undefined): Promise<void> {
  if (!ca) {
    const res = await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) })
    await res.arrayBuffer()
    return
  }
  await new Promise<void>((resolve, reject) => {
    const req = httpsRequest(`${url}/v2/`, { ca, timeout: 2000 }, (res) => {
      res.resume()
      res.on('end', resolve)
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', reject)
    req.end()
  })
}

async function tail(file: string, lines = 60): Promise<string> {
  try {
    const text = await readFile(file, 'utf8')
    return text.split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

const live = new Set<ChildProcess>()
process.on('exit', () => {
  for (const c of live) {
    try {
      c.kill('SIGKILL')
    } catch {
      /* already gone */
    }
  }
})

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true)
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms)
    child.once('exit', () => {
      clearTimeout(t)
      resolve(true)
    })
  })
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    child.kill('SIGTERM')
    if (!(await waitExit(child, 5000))) {
      child.kill('SIGKILL')
      await waitExit(child, 5000)
    }
  }
  live.delete(child)
}

/** Root's REST API client for a server (or a balancer in front of several): `api` and `createProject` of {@link Wharf}. */
export function restClient(url: string, kind: Wharf['kind'], rootPassword: string, ca?: string): Pick<Wharf, 'api' | 'createProject'> {
  let rootToken: Promise<string> | undefined
  const api = async (method: string, apiPath: string, body?: unknown, o: { token?: string | null } = {}): Promise<ApiResult> => {
    const headers: Record<string, string> = { accept: 'application/json' }
    let token = o.token
    if (token === undefined) {
      rootToken ??= (async () => {
        const r = await api('POST', '/oauth/token', { grant_type: 'password', username: 'root', password: rootPassword }, { token: null })
        if (r.status !== 200 || typeof r.json?.access_token !== 'string') throw new Error(`cannot get root's OAuth token: ${r.describe}`)
        return r.json.access_token as string
      })()
      rootToken.catch(() => (rootToken = undefined))
      token = await rootToken
    }
    if (token) headers.authorization = `Bearer ${token}`
    let payload: string | undefined
    if (body !== undefined) {
      payload = JSON.stringify(body)
      headers['content-type'] = 'application/json'
    }
    const r = await request(`${url}${apiPath}`, method, headers, payload, ca)
    let json: unknown
    try {
      json = JSON.parse(r.text)
    } catch {
      json = undefined
    }
    return { ...r, json, describe: `${method} ${apiPath} -> ${r.status} ${r.text.slice(0, 2000)}` }
  }

  const createProject = async (fullPath: string, visibility: 'private' | 'internal' | 'public' = 'private'): Promise<number> => {
    if (kind === 'reference') return 0
    const parts = fullPath.split('/')
    if (parts.length < 2) throw new Error(`a project lives in a group: ${fullPath}`)
    let parentId: number | null = null
    for (let i = 1; i < parts.length; i++) {
      const groupPath = parts.slice(0, i).join('/')
      const got = await api('GET', `/api/v4/groups/${encodeURIComponent(groupPath)}`)
      if (got.status === 200) {
        parentId = got.json.id as number
        continue
      }
      // Groups are public so that a public project inside one is reachable anonymously.
      const made = await api('POST', '/api/v4/groups', {
        path: parts[i - 1],
        name: parts[i - 1],
        visibility: 'public',
        ...(parentId === null ? {} : { parent_id: parentId }),
      })
      if (made.status !== 201) throw new Error(`cannot create group ${groupPath}: ${made.describe}`)
      parentId = made.json.id as number
    }
    const made = await api('POST', '/api/v4/projects', { path: parts.at(-1), name: parts.at(-1), namespace_id: parentId, visibility })
    if (made.status !== 201) throw new Error(`cannot create project ${fullPath}: ${made.describe}`)
    return made.json.id as number
  }

  return { api, createProject }
}

export async function startWharf(opts: StartWharfOptions = {}): Promise<Wharf> {
  const kind = targetKind()
  const tmpDir = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-'))
  const dataDir = opts.dataDir ?? path.join(tmpDir, 'data')
  await mkdir(dataDir, { recursive: true })
  const logFile = path.join(tmpDir, 'server.log')
  const port = opts.port ?? (await freePort())
  const host = `127.0.0.1:${port}`
  const url = `${opts.tls ? 'https' : 'http'}://${host}`
  const ca = opts.tls ? await readFile(opts.tls.ca, 'utf8') : undefined
  const startTimeoutMs = opts.startTimeoutMs ?? 30_000
  const rootPassword = opts.rootPassword ?? `root-${randomBytes(12).toString('base64url')}`
  // The database of the test run's dialect (test/helpers/database.ts); a test's own env may override it.
  const database: Record<string, string> = kind === 'wharf' ? { WHARF_DATABASE_URL: await testDatabaseUrl(dataDir) } : {}
  const env = { WHARF_ROOT_PASSWORD: rootPassword, ...database, ...opts.env }

  let cmd: string
  let args: string[]
  if (kind === 'reference') {
    const config = path.join(tmpDir, 'registry.yml')
    await writeFile(
      config,
      [
        'version: 0.1',
        'log: { level: info }',
        `storage: { filesystem: { rootdirectory: ${JSON.stringify(dataDir)} }, delete: { enabled: true } }`,
        `http: { addr: "${host}"${opts.tls ? `, tls: { certificate: ${JSON.stringify(opts.tls.cert)}, key: ${JSON.stringify(opts.tls.key)} }` : ''} }`,
        '',
      ].join('\n'),
    )
    cmd = 'docker-registry'
    args = ['serve', config]
  } else {
    cmd = projectNode
    args = [
      path.join('src', 'cli', 'main.ts'),
      'serve',
      '--listen',
      host,
      '--data',
      dataDir,
      '--public-url',
      url,
      ...(opts.tls ? ['--tls-cert', opts.tls.cert, '--tls-key', opts.tls.key] : []),
      ...(opts.extraArgs ?? []),
    ]
  }

  let child: ChildProcess

  const launch = async (): Promise<void> => {
    const log = await open(logFile, 'a')
    await log.write(`\n=== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`)
    try {
      child = spawn(cmd, args, {
        cwd: repoRoot,
        env: childEnv(env),
        stdio: ['ignore', log.fd, log.fd],
      })
    } finally {
      await log.close()
    }
    live.add(child)
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve))
    const deadline = Date.now() + startTimeoutMs
    for (;;) {
      const failure = await Promise.race([spawnError, new Promise<null>((r) => setTimeout(() => r(null), 100))])
      if (failure) throw new Error(`cannot start ${cmd}: ${failure.message}`)
      if (child.exitCode !== null || child.signalCode !== null) {
        live.delete(child)
        throw new Error(
          `server exited during startup (code ${child.exitCode}, signal ${child.signalCode}); log ${logFile}:\n${await tail(logFile)}`,
        )
      }
      try {
        await probe(url, ca)
        return
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) {
        await kill(child)
        throw new Error(`server did not answer GET ${url}/v2/ within ${startTimeoutMs} ms; log ${logFile}:\n${await tail(logFile)}`)
      }
    }
  }

  await launch()
  if (kind === 'wharf') registerCredentials(url, { username: 'root', password: rootPassword })

  const { api, createProject } = restClient(url, kind, rootPassword, ca)

  const wharf: Wharf = {
    url,
    host,
    port,
    dataDir,
    tmpDir,
    logFile,
    kind,
    rootPassword,
    api,
    createProject,
    get pid() {
      return child.pid ?? -1
    },
    async stop() {
      await kill(child)
      if (process.env.WHARF_E2E_KEEP !== '1') {
        await rm(tmpDir, { recursive: true, force: true })
      } else {
        process.stderr.write(`# WHARF_E2E_KEEP=1: kept ${tmpDir}\n`)
      }
    },
    async restart() {
      await kill(child)
      await launch()
    },
    logTail(lines?: number) {
      return tail(logFile, lines)
    },
  }
  return wharf
}
