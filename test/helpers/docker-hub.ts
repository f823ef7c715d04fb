// A stand-in Docker Hub for the pull-through cache tests: Debian's docker-registry (CNCF
// distribution) holds the images; a small HTTP shim in front of it speaks what Docker Hub does
// and a plain registry does not:
//   - token auth: a 401 with `Bearer realm=…/token,service="registry.docker.io"`, a token endpoint;
//   - `ratelimit-limit` / `ratelimit-remaining` headers; manifest GETs are counted per window and
//     past the limit answered `429 TOOMANYREQUESTS`; HEADs are free (as on Docker Hub);
//   - blob GETs are redirected to a "CDN" on another host name (localhost vs 127.0.0.1), which
//     refuses requests carrying the registry's Authorization header;
//   - every authorized request is counted per method and path (the coalescing assertions).
// Images are seeded straight into the backing registry with skopeo, bypassing the shim's counters.
import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { runOk } from './run.ts'
import { freePort } from './wharf.ts'

export interface DockerHub {
  /** http://127.0.0.1:PORT — the upstream URL to configure. */
  url: string
  port: number
  /** host:port of the backing registry (plain, no auth), for seeding and checks. */
  backend: string
  /** Requests seen, keyed "METHOD /v2/path" (token requests as "GET /token"). */
  counts: Map<string, number>
  count(method: string, pathPart: string): number
  /** Manifest GETs allowed per window; counting restarts with resetWindow(). */
  setLimit(limit: number): void
  resetWindow(): void
  resetCounts(): void
  /** Copies an image (skopeo reference) to `name:tag` in the backing registry. */
  seed(source: string, nameTag: string, opts?: { all?: boolean }): Promise<void>
  /** Stops answering (the port refuses connections), and starts again on the same port. */
  stop(): Promise<void>
  start(): Promise<void>
  close(): Promise<void>
}

const WINDOW_SECONDS = 21600

export async function startDockerHub(opts: { limit?: number } = {}): Promise<DockerHub> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-hub-'))
  const backendPort = await freePort()
  const backend = `127.0.0.1:${backendPort}`
  const config = path.join(dir, 'registry.yml')
  await writeFile(
    config,
    [
      'version: 0.1',
      'log: { level: warn }',
      `storage: { filesystem: { rootdirectory: ${JSON.stringify(path.join(dir, 'data'))} }, delete: { enabled: true } }`,
      `http: { addr: "${backend}" }`,
      '',
    ].join('\n'),
  )
  const registry: ChildProcess = spawn('docker-registry', ['serve', config], { stdio: 'ignore' })
  const deadline = Date.now() + 20_000
  for (;;) {
    try {
      const r = await fetch(`http://${backend}/v2/`, { signal: AbortSignal.timeout(1000) })
      await r.arrayBuffer()
      break
    } catch {
      if (Date.now() > deadline || registry.exitCode !== null) throw new Error('docker-registry did not start')
      await new Promise((r) => setTimeout(r, 100))
    }
  }

  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const tokens = new Set<string>()
  const counts = new Map<string, number>()
  let limit = opts.limit ?? 1_000_000
  let manifestGets = 0

  const bump = (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1)
  const rateHeaders = (res: ServerResponse) => {
    res.setHeader('ratelimit-limit', `${limit};w=${WINDOW_SECONDS}`)
    res.setHeader('ratelimit-remaining', `${Math.max(0, limit - manifestGets)};w=${WINDOW_SECONDS}`)
  }
  const forward = (req: IncomingMessage, res: ServerResponse, target: string) => {
    const headers: Record<string, string> = {}
    for (const h of ['accept', 'range']) if (typeof req.headers[h] === 'string') headers[h] = req.headers[h] as string
    const up = request(`http://${backend}${target}`, { method: req.method, headers }, (r) => {
      for (const [k, v] of Object.entries(r.headers)) if (v !== undefined && k !== 'connection' && k !== 'location') res.setHeader(k, v)
      res.writeHead(r.statusCode ?? 502)
      r.pipe(res)
    })
    up.on('error', () => res.destroy())
    up.end()
  }

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const u = new URL(req.url ?? '/', url)
    // Requests refused for want of a token are not counted: they serve nothing (nor does Docker Hub count them).
    if (!u.pathname.startsWith('/v2/')) bump(`${req.method} ${u.pathname}`)
    if (u.pathname === '/token') {
      const token = `hub-${randomBytes(12).toString('hex')}`
      tokens.add(token)
      res.setHeader('content-type', 'application/json')
      res.end(JSON.stringify({ token, expires_in: 300, issued_at: new Date().toISOString() }))
      return
    }
    if (u.pathname.startsWith('/cdn/')) {
      // The CDN takes signed URLs, not the registry's token (Docker Hub's CDN rejects it).
      if (req.headers.authorization) {
        res.writeHead(400).end('the CDN must not receive registry credentials')
        return
      }
      forward(req, res, u.pathname.slice('/cdn'.length))
      return
    }
    if (!u.pathname.startsWith('/v2/')) {
      res.writeHead(404).end()
      return
    }
    const auth = req.headers.authorization
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(u.pathname)
    if (!auth || !tokens.has(auth.replace(/^Bearer /, ''))) {
      const scope = m ? `,scope="repository:${m[1]}:pull"` : ''
      res.writeHead(401, {
        'www-authenticate': `Bearer realm="${url}/token",service="registry.docker.io"${scope}`,
        'content-type': 'application/json',
      })
      res.end(JSON.stringify({ errors: [{ code: 'UNAUTHORIZED', message: 'authentication required' }] }))
      return
    }
    bump(`${req.method} ${u.pathname}`)
    if (m?.[2] === 'manifests') {
      rateHeaders(res)
      if (req.method === 'GET') {
        if (manifestGets >= limit) {
          // A short Retry-After keeps clients that honour it (containers/image backs off otherwise) quick in tests.
          res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '1' })
          res.end(JSON.stringify({ errors: [{ code: 'TOOMANYREQUESTS', message: 'You have reached your pull rate limit.' }] }))
          return
        }
        manifestGets++
        rateHeaders(res)
      }
    }
    if (m?.[2] === 'blobs' && req.method === 'GET') {
      // Docker Hub answers blob GETs with a redirect to its CDN (another host).
      res.writeHead(307, { location: `http://localhost:${port}/cdn${u.pathname}` }).end()
      return
    }
    forward(req, res, u.pathname)
  }

  let server: Server | undefined
  const sockets = new Set<import('node:net').Socket>()
  const start = () =>
    new Promise<void>((resolve, reject) => {
      server = createServer(handle)
      server.on('connection', (s) => {
        sockets.add(s)
        s.on('close', () => sockets.delete(s))
      })
      server.once('error', reject)
      server.listen(port, '127.0.0.1', () => resolve())
    })
  const stop = () =>
    new Promise<void>((resolve) => {
      if (!server) return resolve()
      server.close(() => resolve())
      for (const s of sockets) s.destroy()
      server = undefined
    })
  await start()

  return {
    url,
    port,
    backend,
    counts,
    count: (method, pathPart) => counts.get(`${method} ${pathPart}`) ?? 0,
    setLimit(n) {
      limit = n
    },
    resetWindow() {
      manifestGets = 0
    },
    resetCounts() {
      counts.clear()
    },
    async seed(source, nameTag, o = {}) {
      await runOk(
        'skopeo',
        ['copy', '--quiet', ...(o.all ? ['--all'] : []), '--dest-tls-verify=false', source, `docker://${backend}/${nameTag}`],
        { timeoutMs: 120_000 },
      )
    },
    stop,
    start,
    async close() {
      await stop()
      registry.kill('SIGTERM')
      await rm(dir, { recursive: true, force: true })
    },
  }
}
