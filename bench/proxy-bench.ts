// The pull-through cache beside distribution's proxy mode, in one run, against one upstream.
//   node_modules/.bin/node bench/proxy-bench.ts [--layers 5] [--layer-mib 40] [--cold-rounds 3]
//     [--rounds 3] [--concurrency 1,8] [--crowd 100] [--crowd-layer-mib 4] [--crowd-rounds 3]
// Upstream: the proxy tests' stand-in Docker Hub (bench/proxy-hub.ts, its own process): Debian's
// docker-registry behind a shim with Docker Hub's token flow, ratelimit-* headers and blob GETs
// redirected to a "CDN" host; the shim counts every request it serves. Images are random bytes
// made here (a config blob, --layers layers of --layer-mib MiB, an OCI manifest) and pushed
// straight into the backing registry, past the shim's counters.
// Servers, all on loopback: Wharf (src/cli/main.ts serve with bin/wharf.js's V8 flag
// --initial-old-space-size=64, or WHARF_BENCH_LAUNCH_FLAGS instead; temp data dir, log level
// WHARF_BENCH_LOG_LEVEL or info, fsync on commit) with its mirror listener (anonymous) on the
// upstream, and distribution (`docker-registry serve`, log level error, no access log) with
// `proxy: { remoteurl: <upstream> }`. Wharf runs with --max-connections-per-address 0: every client
// here is 127.0.0.1, and distribution has no such cap.
// The client is a registry pull as docker does it: GET the manifest by tag, then its blobs, 3 at a
// time, each streamed through sha256 and checked against the manifest's digest and size (a
// mismatch fails the run); the token flow and the CDN redirect when pulling straight from the
// upstream. Phases:
//   1. cold: per round a fresh image, pulled once straight from the upstream, once through Wharf
//      and once through distribution (order rotated per round): wall time, ratio to straight.
//   2. warm: the round-1 image, cached by both now; per --concurrency level c, per round,
//      max(4, c) whole-image pulls by c clients: MB/s (10^6 B/s) and server CPU ms per MiB
//      (utime+stime of the server process from /proc/PID/stat over the phase, all threads).
//      These clients check each blob's size but not its sha256 (--warm-check digest does): the
//      bytes were verified when the cold phase pulled them, and a client hashing 200 MiB per pull
//      takes a core of the two, so it, not the server, set the MB/s (bench/RESULTS.md).
//   3. crowd: per round a fresh small image (--crowd-layer-mib layers), --crowd clients pulling it
//      at once through each proxy; the shim's counts of upstream GETs per blob and per manifest.
// Every figure in the summary is the median over rounds. Temp dirs are removed on exit.
// --phases picks some of cold,warm,crowd (warm without cold caches its image first, unmeasured).
// --timeline prints, per cold pull, when each blob was asked for, answered, started and finished:
// whether bytes reach the client as they arrive, and where a pull waits.
// --offload nginx adds a third warm target: Debian's nginx on deploy/nginx.conf (the shipped settings,
// pointed at the mirror listener, access log off as distribution's) in front of the same Wharf, started
// with --filesystem-accel-redirect: Wharf authorises each blob GET and answers X-Accel-Redirect, nginx
// sends the file with sendfile. Its server CPU is Wharf's plus every nginx process's (master and
// workers, /proc); the plain Wharf column (the mirror reached directly, so it streams) stays.
// --warm-client curl: the warm pulls' blobs are fetched by one `curl --parallel` process per pull
// (3 at a time, to /dev/null, sizes checked from its -w output) instead of the bench's Node client,
// which costs about 1.2-1.8 ms of CPU per MiB and so, on 2 cores, bounds every target's MB/s; the
// client CPU then includes the curl processes (the bench's reaped children, /proc/self/stat).
// WHARF_BENCH_PROF_DIR=<dir> starts Wharf with --cpu-prof into that directory (written when the
// bench stops it); WHARF_BENCH_NODE_ARGS adds node options to Wharf's command line (e.g. --trace-gc,
// whose output lands in the Wharf log, removed with the temp dir unless WHARF_BENCH_KEEP_LOG=<file>).
import { spawn, fork, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync, openSync, readdirSync, readFileSync } from 'node:fs'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir, cpus, loadavg } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    layers: { type: 'string', default: '5' },
    'layer-mib': { type: 'string', default: '40' },
    'cold-rounds': { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '1,8' },
    crowd: { type: 'string', default: '100' },
    'crowd-layer-mib': { type: 'string', default: '4' },
    'crowd-rounds': { type: 'string', default: '3' },
    phases: { type: 'string', default: 'cold,warm,crowd' },
    timeline: { type: 'boolean', default: false },
    'warm-check': { type: 'string', default: 'size' },
    offload: { type: 'string' },
    'warm-client': { type: 'string', default: 'node' },
  },
})
const LAYERS = Number(args.layers)
const LAYER_MIB = Number(args['layer-mib'])
const COLD_ROUNDS = Number(args['cold-rounds'])
const ROUNDS = Number(args.rounds)
const LEVELS = args.concurrency.split(',').map(Number)
const CROWD = Number(args.crowd)
const CROWD_MIB = Number(args['crowd-layer-mib'])
const CROWD_ROUNDS = Number(args['crowd-rounds'])
const PHASES = new Set(args.phases.split(','))
const WARM_CHECK = args['warm-check'] === 'digest' ? 'digest' : 'size'
if (args.offload !== undefined && args.offload !== 'nginx') throw new Error('--offload takes nginx')
const OFFLOAD = args.offload === 'nginx'
if (args['warm-client'] !== 'node' && args['warm-client'] !== 'curl') throw new Error('--warm-client takes node or curl')
const CURL_CLIENT = args['warm-client'] === 'curl'
/** nginx's internal location for the blob files (storage.filesystem.accelRedirect), as in deploy/nginx.conf. */
const ACCEL_PREFIX = '/_wharf_blobs/'
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const hz = 100 // USER_HZ
/** Blobs fetched at once by one pull (docker's max-concurrent-downloads default). */
const BLOB_PARALLEL = 3
/** No single request may take longer than this: a stuck server fails the run instead of hanging it. */
const REQUEST_TIMEOUT_MS = 120_000
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

const log = (s: string) => process.stderr.write(`[proxy-bench] ${s}\n`)
const out = (s: string) => console.log(s)

// ---------- processes and /proc ----------

function cpuSeconds(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / hz
}
/** CPU seconds per thread name (live threads; /proc/PID/task/TID/stat), to split a phase's server CPU. */
function threadCpu(pid: number): Map<string, number> {
  const m = new Map<string, number>()
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let s: string
    try {
      s = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
    } catch {
      continue
    }
    const name = s.slice(s.indexOf('(') + 1, s.lastIndexOf(')')).replace(/ /g, '_')
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
    m.set(name, (m.get(name) ?? 0) + (Number(f[11]) + Number(f[12])) / hz)
  }
  return m
}
function threadSplit(before: Map<string, number>, after: Map<string, number>, mib: number): string {
  return [...after]
    .map(([k, v]) => [k, v - (before.get(k) ?? 0)] as const)
    .filter(([, d]) => d > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, d]) => `${k} ${fmt(d)} s (${fmt((d * 1000) / mib)} ms/MiB)`)
    .join(', ')
}
/** Resident and peak resident memory of a process, MiB (/proc/PID/status VmRSS, VmHWM). */
function memory(pid: number): string {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kib = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN)
  return `rss ${fmt(kib('VmRSS') / 1024, 0)} MiB (peak ${fmt(kib('VmHWM') / 1024, 0)})`
}
/** A process and its children (nginx's master and workers): their pids, from /proc. */
function withChildren(pid: number): number[] {
  const kids: number[] = []
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue
    try {
      const s = readFileSync(`/proc/${e}/stat`, 'utf8')
      if (Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === pid) kids.push(Number(e))
    } catch {
      // gone meanwhile
    }
  }
  return [pid, ...kids]
}
/** CPU seconds of this process and of its children it has reaped (the curl clients). */
function clientCpu(): number {
  const s = readFileSync('/proc/self/stat', 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / hz
}
function machineBusy(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number)
  return (f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!) / hz
}
/** Waits (at most 10 s) for a second in which the machine was busy less than half a core. */
async function quiesce(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    const b0 = machineBusy()
    await sleep(1000)
    if (machineBusy() - b0 < 0.5) return
  }
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

async function waitHttp(url: string, child: ChildProcess, name: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode})`)
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(1000) })
      await r.arrayBuffer()
      return
    } catch {
      await sleep(100)
    }
  }
  throw new Error(`${name} did not answer at ${url}`)
}

// ---------- HTTP client ----------

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

class Target {
  readonly agent = new http.Agent({ keepAlive: true, maxSockets: Infinity })
  private token: string | undefined
  readonly name: string
  readonly base: string
  constructor(name: string, base: string) {
    this.name = name
    this.base = base
  }

  /** A request with Docker's token flow on a 401 and redirects followed (credentials kept to the same host). */
  async request(path: string, headers: Record<string, string>, sink?: (res: http.IncomingMessage) => Promise<void>): Promise<Res> {
    const auth = () => (this.token ? { ...headers, authorization: `Bearer ${this.token}` } : headers)
    let url = new URL(path, this.base)
    let hdrs = auth()
    let retried = false
    for (let hop = 0; hop < 5; hop++) {
      const res = await send(this.agent, url, hdrs, sink)
      if (res.status === 401 && !retried) {
        // No token yet, or it expired: one fresh token, one retry.
        retried = true
        await this.fetchToken(String(res.headers['www-authenticate'] ?? ''))
        hdrs = auth()
        continue
      }
      if (res.status >= 300 && res.status < 400 && res.headers.location) {
        const next = new URL(res.headers.location, url)
        if (next.host !== url.host) {
          const { authorization: _dropped, ...rest } = hdrs
          hdrs = rest
        }
        url = next
        continue
      }
      return res
    }
    throw new Error(`${this.name}: too many hops for ${path}`)
  }

  private async fetchToken(challenge: string): Promise<void> {
    const p = Object.fromEntries([...challenge.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]))
    if (!p.realm) throw new Error(`${this.name}: 401 without a Bearer challenge: ${challenge}`)
    const u = new URL(p.realm)
    if (p.service) u.searchParams.set('service', p.service)
    if (p.scope) u.searchParams.set('scope', p.scope)
    const res = await send(this.agent, u, {})
    if (res.status !== 200) throw new Error(`${this.name}: token endpoint answered ${res.status}`)
    this.token = (JSON.parse(res.body.toString()) as { token: string }).token
  }
}

/** One HTTP exchange; with `sink` a 200 body goes to it instead of being buffered. */
function send(
  agent: http.Agent,
  url: URL,
  headers: Record<string, string>,
  sink?: (res: http.IncomingMessage) => Promise<void>,
  body?: Buffer,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      { method: body ? 'PUT' : 'GET', agent, headers: body ? { ...headers, 'content-length': String(body.length) } : headers },
      (res) => {
        res.on('error', reject)
        if (sink && res.statusCode === 200) {
          sink(res).then(() => resolve({ status: 200, headers: res.headers, body: Buffer.alloc(0) }), reject)
          return
        }
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      },
    )
    req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error(`no progress for ${REQUEST_TIMEOUT_MS / 1000} s: ${url}`)))
    req.on('error', reject)
    req.end(body)
  })
}

interface Descriptor {
  digest: string
  size: number
}
interface Image {
  name: string
  tag: string
  manifestDigest: string
  blobs: Descriptor[]
  bytes: number
}

const TIMELINE = args.timeline
/** With --timeline: when each blob of the last pulls was asked for, answered, started and finished (ms since the timeline's start). */
const timeline: string[] = []
let timelineStart = 0
const ms = (t: number) => (t - timelineStart).toFixed(0)

/**
 * Pulls the image as a client does, verifying every byte (`check: 'size'`: the manifest's digest,
 * every blob's size and nothing more, for warm pulls of bytes already verified); returns the bytes received.
 */
async function pull(t: Target, img: Image, check: 'digest' | 'size' = 'digest', client: 'node' | 'curl' = 'node'): Promise<number> {
  const m = await t.request(`/v2/${img.name}/manifests/${img.tag}`, { accept: OCI_MANIFEST })
  if (m.status !== 200) throw new Error(`${t.name}: manifest ${img.name}:${img.tag}: HTTP ${m.status} ${m.body.toString().slice(0, 300)}`)
  const md = `sha256:${createHash('sha256').update(m.body).digest('hex')}`
  if (md !== img.manifestDigest) throw new Error(`${t.name}: manifest digest ${md}, want ${img.manifestDigest}`)
  const manifest = JSON.parse(m.body.toString()) as { config: Descriptor; layers: Descriptor[] }
  const queue = [manifest.config, ...manifest.layers]
  let bytes = m.body.length
  if (client === 'curl') return bytes + (await curlBlobs(t, img, queue))
  const worker = async () => {
    for (let d = queue.shift(); d; d = queue.shift()) {
      const want = d
      const hash = check === 'digest' ? createHash('sha256') : undefined
      let n = 0
      const asked = performance.now()
      let first = 0
      const r = await t.request(`/v2/${img.name}/blobs/${want.digest}`, {}, async (res) => {
        const headers = performance.now()
        await new Promise<void>((resolve, reject) => {
          res.on('data', (chunk: Buffer) => {
            if (!first) first = performance.now()
            hash?.update(chunk)
            n += chunk.length
          })
          res.on('end', resolve)
          res.on('error', reject)
        })
        if (TIMELINE)
          timeline.push(
            `${t.name} ${want.digest.slice(7, 15)} ${(want.size / MIB).toFixed(1)} MiB: asked +${ms(asked)}, headers +${ms(headers)}, first byte +${ms(first)}, last byte +${ms(performance.now())} ms`,
          )
      })
      if (r.status !== 200) throw new Error(`${t.name}: blob ${want.digest}: HTTP ${r.status} ${r.body.toString().slice(0, 300)}`)
      const got = hash ? `sha256:${hash.digest('hex')}` : want.digest
      if (got !== want.digest || n !== want.size)
        throw new Error(`${t.name}: blob ${want.digest}: got ${got}, ${n} bytes, want ${want.size}`)
      bytes += n
    }
  }
  await Promise.all(Array.from({ length: BLOB_PARALLEL }, worker))
  return bytes
}

/** Fetches the blobs with one curl process, BLOB_PARALLEL at a time, checking each answer's status and size; returns the bytes. */
async function curlBlobs(t: Target, img: Image, blobs: Descriptor[]): Promise<number> {
  const args = [
    '-sS',
    '--no-progress-meter',
    '--parallel',
    '--parallel-max',
    String(BLOB_PARALLEL),
    '-w',
    '%{http_code} %{size_download} %{url}\\n',
  ]
  for (const b of blobs) args.push('-o', '/dev/null', new URL(`/v2/${img.name}/blobs/${b.digest}`, t.base).href)
  const child = spawn('curl', args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let text = ''
  let errors = ''
  child.stdout!.on('data', (b: Buffer) => (text += b.toString()))
  child.stderr!.on('data', (b: Buffer) => (errors += b.toString()))
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject)
    child.once('close', resolve)
  })
  if (code !== 0) throw new Error(`${t.name}: curl exited ${code}: ${errors.slice(0, 300)}`)
  let bytes = 0
  for (const b of blobs) {
    const line = text.split('\n').find((l) => l.endsWith(`/blobs/${b.digest}`))
    const [status, size] = line?.split(' ') ?? []
    if (status !== '200' || Number(size) !== b.size)
      throw new Error(`${t.name}: blob ${b.digest}: curl got ${line ?? 'nothing'}, want 200 ${b.size}`)
    bytes += b.size
  }
  return bytes
}

// ---------- seeding the upstream ----------

const MIB = 1 << 20

/** Pushes a blob of `chunks` into the backing registry: POST, one streamed PATCH, PUT ?digest=. */
async function pushBlob(backend: string, name: string, make: (write: (b: Buffer) => Promise<void>) => Promise<void>): Promise<Descriptor> {
  const agent = new http.Agent({ keepAlive: false })
  const post = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(`http://${backend}/v2/${name}/blobs/uploads/`, { method: 'POST', agent }, resolve)
    req.on('error', reject)
    req.end()
  })
  post.resume()
  if (post.statusCode !== 202) throw new Error(`seed POST: ${post.statusCode}`)
  const loc = new URL(post.headers.location!, `http://${backend}`)
  const hash = createHash('sha256')
  let size = 0
  const patched = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request(loc, { method: 'PATCH', agent, headers: { 'content-type': 'application/octet-stream' } }, resolve)
    req.on('error', reject)
    make(
      (b) =>
        new Promise<void>((ok, ko) => {
          hash.update(b)
          size += b.length
          req.write(b, (e) => (e ? ko(e) : ok()))
        }),
    ).then(() => req.end(), reject)
  })
  patched.resume()
  if (patched.statusCode !== 202) throw new Error(`seed PATCH: ${patched.statusCode}`)
  const digest = `sha256:${hash.digest('hex')}`
  const put = new URL(patched.headers.location!, `http://${backend}`)
  put.searchParams.set('digest', digest)
  const done = await send(agent, put, {}, undefined, Buffer.alloc(0))
  if (done.status !== 201) throw new Error(`seed PUT: ${done.status} ${done.body}`)
  return { digest, size }
}

async function seedImage(backend: string, name: string, layers: number, layerMib: number): Promise<Image> {
  const descs: Descriptor[] = []
  for (let i = 0; i < layers; i++) {
    descs.push(
      await pushBlob(backend, name, async (write) => {
        for (let left = layerMib * MIB; left > 0; left -= 4 * MIB) await write(randomBytes(Math.min(4 * MIB, left)))
      }),
    )
  }
  const cfgJson = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: descs.map((d) => d.digest) }, config: {} }),
  )
  const config = await pushBlob(backend, name, (write) => write(cfgJson))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: descs.map((d) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...d })),
    }),
  )
  const put = await send(
    new http.Agent(),
    new URL(`http://${backend}/v2/${name}/manifests/latest`),
    { 'content-type': OCI_MANIFEST },
    undefined,
    manifest,
  )
  if (put.status !== 201) throw new Error(`seed manifest: ${put.status} ${put.body}`)
  const blobs = [config, ...descs]
  return {
    name,
    tag: 'latest',
    manifestDigest: `sha256:${createHash('sha256').update(manifest).digest('hex')}`,
    blobs,
    bytes: manifest.length + blobs.reduce((a, b) => a + b.size, 0),
  }
}

// ---------- the hub (upstream) ----------

interface Hub {
  url: string
  backend: string
  pid: number
  counts(): Promise<Map<string, number>>
  reset(): Promise<void>
}

async function startHub(children: ChildProcess[]): Promise<Hub> {
  const child = fork(join(root, 'bench/proxy-hub.ts'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  children.push(child)
  const reply = (type: string) =>
    new Promise<{ type: string; [k: string]: unknown }>((resolve, reject) => {
      const onMsg = (m: { type: string }) => {
        if (m.type !== type) return
        child.off('message', onMsg)
        child.off('exit', onExit)
        resolve(m)
      }
      const onExit = () => reject(new Error('the stand-in hub exited'))
      child.on('message', onMsg)
      child.once('exit', onExit)
    })
  const ready = (await reply('ready')) as unknown as { url: string; backend: string; pid: number }
  return {
    url: ready.url,
    backend: ready.backend,
    pid: ready.pid,
    async counts() {
      const r = reply('counts')
      child.send({ type: 'counts' })
      return new Map((await r).counts as [string, number][])
    },
    async reset() {
      const r = reply('reset')
      child.send({ type: 'reset' })
      await r
    },
  }
}

// ---------- statistics ----------

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2
}
const fmt = (x: number, d = 2) => (Number.isFinite(x) ? x.toFixed(d) : '-')

/** Upstream traffic of one image from the shim's counts: GETs per blob (redirects and CDN bytes) and per manifest. */
function upstreamFor(counts: Map<string, number>, img: Image) {
  const c = (k: string) => counts.get(k) ?? 0
  const blobGets = img.blobs.map((b) => c(`GET /v2/${img.name}/blobs/${b.digest}`))
  const cdnGets = img.blobs.map((b) => c(`GET /cdn/v2/${img.name}/blobs/${b.digest}`))
  return {
    blobGets,
    cdnGets,
    manifestGets: c(`GET /v2/${img.name}/manifests/${img.tag}`) + c(`GET /v2/${img.name}/manifests/${img.manifestDigest}`),
    manifestHeads: c(`HEAD /v2/${img.name}/manifests/${img.tag}`) + c(`HEAD /v2/${img.name}/manifests/${img.manifestDigest}`),
    tokens: c('GET /token'),
  }
}

// ---------- nginx in front (--offload nginx) ----------

/**
 * Debian's nginx on the shipped deploy/nginx.conf, edited only to run here: the mirror listener as the
 * one node, a loopback port, Wharf's data directory for the internal location, files under `dir`,
 * no access log (distribution runs without one). As root its workers stay root (`nobody` cannot read
 * the temp data directory).
 */
async function startNginx(dir: string, port: number, mirrorPort: number, dataDir: string): Promise<ChildProcess> {
  await mkdir(join(dir, 'tmp'), { recursive: true })
  let conf = readFileSync(join(root, 'deploy/nginx.conf'), 'utf8')
  const edits: Array<[RegExp, string]> = [
    [/server wharf-a:\d+/, `server 127.0.0.1:${mirrorPort}`],
    [/\n\s*server wharf-b:[^\n]*/, ''],
    [/listen 80;/, `listen 127.0.0.1:${port};`],
    [/alias \/var\/lib\/wharf\/storage\/blobs\/;/, `alias ${dataDir}/storage/blobs/;`],
    [
      /http \{/,
      `http {\n  access_log off;\n${['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((t) => `  ${t}_temp_path ${dir}/tmp/${t};`).join('\n')}`,
    ],
  ]
  for (const [from, to] of edits) {
    if (!from.test(conf)) throw new Error(`deploy/nginx.conf no longer has ${from}`)
    conf = conf.replace(from, to)
  }
  if (!conf.includes(`location ${ACCEL_PREFIX}`)) throw new Error(`deploy/nginx.conf has no location ${ACCEL_PREFIX}`)
  await writeFile(join(dir, 'nginx.conf'), `${process.getuid?.() === 0 ? 'user root;\n' : ''}${conf}`)
  const bin = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((b) => existsSync(b)) ?? 'nginx'
  const child = spawn(
    bin,
    ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', `daemon off; pid ${dir}/nginx.pid;`],
    { stdio: ['ignore', 'ignore', 'inherit'] },
  )
  children.push(child)
  await waitHttp(`http://127.0.0.1:${port}/v2/`, child, 'nginx')
  return child
}

// ---------- main ----------

const children: ChildProcess[] = []
const dirs: string[] = []
let exitCode = 0
try {
  const work = await mkdtemp(join(tmpdir(), 'wharf-proxybench-'))
  dirs.push(work)
  const hub = await startHub(children)

  // Wharf, with its mirror listener on the hub.
  const [wport, mport, dport] = [await freePort(), await freePort(), await freePort()]
  const env = { ...process.env, WHARF_ROOT_PASSWORD: 'bench-root-password' }
  const level = process.env.WHARF_BENCH_LOG_LEVEL ?? 'info'
  const wharfLogPath = join(work, 'wharf.log')
  const wharfLog = openSync(wharfLogPath, 'w')
  // The V8 flag bin/wharf.js and `npm start` start the server with (see bin/wharf.js for why);
  // WHARF_BENCH_LAUNCH_FLAGS='' measures without it.
  const launch = (process.env.WHARF_BENCH_LAUNCH_FLAGS ?? '--initial-old-space-size=64').split(' ').filter(Boolean)
  const prof = [
    ...launch,
    ...(process.env.WHARF_BENCH_PROF_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.WHARF_BENCH_PROF_DIR}`] : []),
    ...(process.env.WHARF_BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? []),
  ]
  const wharf = spawn(
    process.execPath,
    [
      ...prof,
      join(root, 'src/cli/main.ts'),
      'serve',
      '--listen',
      `127.0.0.1:${wport}`,
      '--mirror-listen',
      `127.0.0.1:${mport}`,
      '--data',
      join(work, 'wharf'),
      '--log-level',
      level,
      '--max-connections-per-address',
      '0',
      '--proxy-upstreams',
      JSON.stringify([{ host: 'docker.io', url: hub.url }]),
      // Only requests carrying nginx's X-Sendfile-Type are offloaded: the mirror reached directly streams.
      ...(OFFLOAD ? ['--filesystem-accel-redirect', ACCEL_PREFIX] : []),
    ],
    { env, stdio: ['ignore', wharfLog, wharfLog] },
  )
  children.push(wharf)

  // distribution in proxy mode on the same hub.
  await mkdir(join(work, 'dist'))
  await writeFile(
    join(work, 'dist.yml'),
    `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage: { filesystem: { rootdirectory: ${join(work, 'dist')} } }\nhttp: { addr: 127.0.0.1:${dport} }\nproxy: { remoteurl: ${hub.url} }\n`,
  )
  const distLogPath = join(work, 'dist.log')
  const distLog = openSync(distLogPath, 'w')
  const dist = spawn('docker-registry', ['serve', join(work, 'dist.yml')], { stdio: ['ignore', distLog, distLog] })
  children.push(dist)
  try {
    await waitHttp(`http://127.0.0.1:${mport}/v2/`, wharf, 'wharf')
  } catch (e) {
    process.stderr.write(readFileSync(wharfLogPath, 'utf8').slice(-4000))
    throw e
  }
  await waitHttp(`http://127.0.0.1:${dport}/v2/`, dist, 'distribution')
  const nport = OFFLOAD ? await freePort() : 0
  const nginx = OFFLOAD ? await startNginx(join(work, 'nginx'), nport, mport, join(work, 'wharf')) : undefined

  const straight = new Target('upstream', hub.url)
  const targets = {
    wharf: new Target('wharf', `http://127.0.0.1:${mport}`),
    dist: new Target('distribution', `http://127.0.0.1:${dport}`),
    offload: new Target('wharf+nginx', `http://127.0.0.1:${nport}`),
  }
  const pids = { wharf: wharf.pid!, dist: dist.pid! }
  /** Server CPU seconds so far: Wharf's, distribution's, or for the offload Wharf's plus every nginx process's (and nginx's alone). */
  const serverCpu = (who: 'wharf' | 'dist' | 'offload') => {
    if (who !== 'offload') return { total: cpuSeconds(pids[who]), nginx: 0 }
    const n = withChildren(nginx!.pid!).reduce((a, p) => a + cpuSeconds(p), 0)
    return { total: cpuSeconds(pids.wharf) + n, nginx: n }
  }
  out(
    `# proxy-bench: ${LAYERS} layers x ${LAYER_MIB} MiB, cold rounds ${COLD_ROUNDS}, warm rounds ${ROUNDS} at concurrency ${LEVELS.join(',')}, crowd ${CROWD} x (${LAYERS} x ${CROWD_MIB} MiB) x ${CROWD_ROUNDS}`,
  )
  out(
    `# ${cpus().length} cpus, node ${process.version}, ${readFileSync('/proc/version', 'utf8').split(' ')[2]}, load average at start ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}`,
  )
  out(
    `# upstream (stand-in hub) ${hub.url} pid ${hub.pid}, backend ${hub.backend}; wharf mirror :${mport} pid ${pids.wharf} (log ${level}${prof.length ? `, node ${prof.join(' ')}` : ''}); distribution proxy :${dport} pid ${pids.dist}${nginx ? `; nginx (deploy/nginx.conf, offload ${ACCEL_PREFIX}) :${nport} pids ${withChildren(nginx.pid!).join(',')}` : ''}`,
  )
  const memoryLine = (when: string) => out(`# memory ${when}: wharf ${memory(pids.wharf)}, distribution ${memory(pids.dist)}`)
  memoryLine('idle after start')

  // 1. cold pulls
  const coldRounds = PHASES.has('cold') ? COLD_ROUNDS : PHASES.has('warm') ? 1 : 0
  log(`seeding ${coldRounds} images of ${LAYERS} x ${LAYER_MIB} MiB`)
  const coldImages: Image[] = []
  for (let r = 0; r < coldRounds; r++) coldImages.push(await seedImage(hub.backend, `bench/cold${r + 1}`, LAYERS, LAYER_MIB))
  const order = ['straight', 'wharf', 'dist'] as const
  const cold: Record<(typeof order)[number], { s: number[]; cpu: number[] }> = {
    straight: { s: [], cpu: [] },
    wharf: { s: [], cpu: [] },
    dist: { s: [], cpu: [] },
  }
  const wharfThreads: string[] = []
  if (PHASES.has('cold'))
    out(`\n== cold pull: ${(coldImages[0]!.bytes / MIB).toFixed(1)} MiB image (${LAYERS + 1} blobs), fresh per round, one client`)
  else if (PHASES.has('warm')) for (const t of [targets.wharf, targets.dist]) await pull(t, coldImages[0]!)
  for (let r = 0; r < (PHASES.has('cold') ? COLD_ROUNDS : 0); r++) {
    const img = coldImages[r]!
    const line: string[] = []
    for (let k = 0; k < order.length; k++) {
      const who = order[(k + r) % order.length]!
      const t = who === 'straight' ? straight : targets[who]
      await quiesce()
      await hub.reset()
      const c0 = who === 'straight' ? 0 : cpuSeconds(pids[who])
      const th0 = who === 'wharf' ? threadCpu(pids.wharf) : undefined
      const t0 = performance.now()
      timelineStart = t0
      timeline.length = 0
      await pull(t, img)
      const s = (performance.now() - t0) / 1000
      if (TIMELINE) out(timeline.map((l) => `    ${l}`).join('\n'))
      const cpu = who === 'straight' ? NaN : cpuSeconds(pids[who]) - c0
      if (th0) wharfThreads.push(threadSplit(th0, threadCpu(pids.wharf), img.bytes / MIB))
      cold[who].s.push(s)
      cold[who].cpu.push(cpu)
      const up = upstreamFor(await hub.counts(), img)
      line.push(
        `${who} ${s.toFixed(2)} s${who === 'straight' ? '' : ` (cpu ${cpu.toFixed(2)} s, upstream blob GETs ${up.cdnGets.reduce((a, b) => a + b, 0)})`}`,
      )
    }
    out(`round ${r + 1}: ${line.join(';  ')}`)
    out(`    wharf threads: ${wharfThreads.at(-1)}`)
  }
  if (PHASES.has('cold')) memoryLine('after the cold phase')
  const coldMed = { straight: median(cold.straight.s), wharf: median(cold.wharf.s), dist: median(cold.dist.s) }
  out(
    `median: straight ${fmt(coldMed.straight)} s, wharf ${fmt(coldMed.wharf)} s (${fmt(coldMed.wharf / coldMed.straight)}x straight), distribution ${fmt(coldMed.dist)} s (${fmt(coldMed.dist / coldMed.straight)}x straight)`,
  )

  // 2. warm pulls (round-1 image, cached by both)
  const warmImg = coldImages[0]!
  type WarmWho = 'wharf' | 'dist' | 'offload'
  const warmWho: WarmWho[] = OFFLOAD ? ['wharf', 'offload', 'dist'] : ['wharf', 'dist']
  const warm: Record<number, Record<WarmWho, { mbs: number[]; cpuPerMib: number[]; clientCpu: number[]; nginxPerMib: number[] }>> = {}
  for (const c of PHASES.has('warm') ? LEVELS : []) {
    const pulls = Math.max(4, c)
    const none = () => ({ mbs: [], cpuPerMib: [], clientCpu: [], nginxPerMib: [] })
    warm[c] = { wharf: none(), dist: none(), offload: none() }
    out(`\n== warm pull: ${(warmImg.bytes / MIB).toFixed(1)} MiB image, ${pulls} pulls by ${c} client(s) per round`)
    for (let r = 0; r < ROUNDS; r++) {
      const line: string[] = []
      let warmThreads = ''
      // Rotated per round, so no target always runs first or last.
      for (const who of warmWho.map((_, k) => warmWho[(k + r) % warmWho.length]!)) {
        await quiesce()
        await hub.reset()
        let left = pulls
        let bytes = 0
        const u0 = clientCpu()
        const c0 = serverCpu(who)
        const th0 = who === 'wharf' ? threadCpu(pids.wharf) : undefined
        const t0 = performance.now()
        await Promise.all(
          Array.from({ length: c }, async () => {
            while (left > 0) {
              left--
              const n = await pull(targets[who], warmImg, WARM_CHECK, CURL_CLIENT ? 'curl' : 'node')
              bytes += n
            }
          }),
        )
        const s = (performance.now() - t0) / 1000
        const c1 = serverCpu(who)
        const cpu = c1.total - c0.total
        const nginxCpu = c1.nginx - c0.nginx
        const u = clientCpu() - u0
        const split = th0 && threadSplit(th0, threadCpu(pids.wharf), bytes / MIB)
        const up = upstreamFor(await hub.counts(), warmImg)
        const mbs = bytes / 1e6 / s
        const perMib = (cpu * 1000) / (bytes / MIB)
        warm[c][who].mbs.push(mbs)
        warm[c][who].cpuPerMib.push(perMib)
        warm[c][who].clientCpu.push(u)
        warm[c][who].nginxPerMib.push((nginxCpu * 1000) / (bytes / MIB))
        if (split) warmThreads = split
        const of = who === 'offload' ? ` (wharf ${fmt(cpu - nginxCpu)} s, nginx ${fmt(nginxCpu)} s)` : ''
        line.push(
          `${targets[who].name} ${fmt(mbs, 0)} MB/s, cpu ${fmt(cpu)} s${of} = ${fmt(perMib, 3)} ms/MiB, client cpu ${fmt(u)} s, upstream manifest HEAD/GET ${up.manifestHeads}/${up.manifestGets}, blob GETs ${up.cdnGets.reduce((a, b) => a + b, 0)}`,
        )
      }
      out(`round ${r + 1}: ${line.join(';  ')}`)
      out(`    wharf threads: ${warmThreads}`)
    }
  }

  if (PHASES.has('warm')) memoryLine('after the warm phase')
  if (nginx) out(`# nginx after the warm phase: ${withChildren(nginx.pid!).map(memory).join('; ')}`)

  // 3. crowd: concurrent cold pulls of a fresh small image
  const crowdRounds = PHASES.has('crowd') ? CROWD_ROUNDS : 0
  log(`seeding ${crowdRounds} crowd images of ${LAYERS} x ${CROWD_MIB} MiB`)
  const crowdImages: Image[] = []
  for (let r = 0; r < crowdRounds; r++) crowdImages.push(await seedImage(hub.backend, `bench/crowd${r + 1}`, LAYERS, CROWD_MIB))
  const crowd: Record<
    'wharf' | 'dist',
    { perBlob: number[]; maxBlob: number[]; manifestGets: number[]; manifestHeads: number[]; s: number[]; errors: number[] }
  > = {
    wharf: { perBlob: [], maxBlob: [], manifestGets: [], manifestHeads: [], s: [], errors: [] },
    dist: { perBlob: [], maxBlob: [], manifestGets: [], manifestHeads: [], s: [], errors: [] },
  }
  if (crowdRounds)
    out(
      `\n== crowd: ${CROWD} concurrent cold pulls of a ${(crowdImages[0]!.bytes / MIB).toFixed(1)} MiB image (${LAYERS + 1} blobs), fresh per round; upstream requests counted at the shim`,
    )
  for (let r = 0; r < crowdRounds; r++) {
    const img = crowdImages[r]!
    for (const who of r % 2 ? (['dist', 'wharf'] as const) : (['wharf', 'dist'] as const)) {
      await quiesce()
      await hub.reset()
      const t0 = performance.now()
      const results = await Promise.allSettled(Array.from({ length: CROWD }, () => pull(targets[who], img)))
      const s = (performance.now() - t0) / 1000
      const failed = results.filter((x) => x.status === 'rejected') as PromiseRejectedResult[]
      const up = upstreamFor(await hub.counts(), img)
      const total = up.cdnGets.reduce((a, b) => a + b, 0)
      crowd[who].perBlob.push(total / img.blobs.length)
      crowd[who].maxBlob.push(Math.max(...up.cdnGets))
      crowd[who].manifestGets.push(up.manifestGets)
      crowd[who].manifestHeads.push(up.manifestHeads)
      crowd[who].s.push(s)
      crowd[who].errors.push(failed.length)
      out(
        `round ${r + 1} ${who.padEnd(5)}: ${CROWD - failed.length}/${CROWD} pulls ok in ${fmt(s)} s; upstream GETs per blob ${up.cdnGets.join(' ')} (total ${total} for ${img.blobs.length} blobs; redirecting registry GETs ${up.blobGets.join(' ')}); manifest GETs ${up.manifestGets}, HEADs ${up.manifestHeads}; token GETs ${up.tokens}`,
      )
      if (failed.length) out(`    first error: ${(failed[0]!.reason as Error).message.slice(0, 300)}`)
    }
  }

  if (crowdRounds) memoryLine('after the crowd phase')

  // summary
  const W = (k: WarmWho, c: number, f: 'mbs' | 'cpuPerMib' | 'clientCpu' | 'nginxPerMib') => median(warm[c]![k][f])
  out(`\n== summary (medians; ratio = Wharf / distribution)`)
  out(`| measure | Wharf | distribution proxy | ratio | straight from upstream |`)
  out(`|---|---|---|---|---|`)
  if (PHASES.has('cold'))
    out(
      `| cold pull ${(coldImages[0]!.bytes / MIB).toFixed(0)} MiB, s | ${fmt(coldMed.wharf)} (${fmt(coldMed.wharf / coldMed.straight)}x straight) | ${fmt(coldMed.dist)} (${fmt(coldMed.dist / coldMed.straight)}x straight) | ${fmt(coldMed.wharf / coldMed.dist)} | ${fmt(coldMed.straight)} |`,
    )
  if (PHASES.has('cold'))
    out(
      `| cold pull server CPU, ms/MiB | ${fmt((median(cold.wharf.cpu) * 1000 * MIB) / coldImages[0]!.bytes)} | ${fmt((median(cold.dist.cpu) * 1000 * MIB) / coldImages[0]!.bytes)} | ${fmt(median(cold.wharf.cpu) / median(cold.dist.cpu))} | - |`,
    )
  for (const c of PHASES.has('warm') ? LEVELS : []) {
    out(
      `| warm pull MB/s, ${c} client(s) | ${fmt(W('wharf', c, 'mbs'), 0)} | ${fmt(W('dist', c, 'mbs'), 0)} | ${fmt(W('wharf', c, 'mbs') / W('dist', c, 'mbs'))} | - |`,
    )
    out(
      `| warm pull server CPU ms/MiB, ${c} client(s) | ${fmt(W('wharf', c, 'cpuPerMib'), 3)} | ${fmt(W('dist', c, 'cpuPerMib'), 3)} | ${fmt(W('wharf', c, 'cpuPerMib') / W('dist', c, 'cpuPerMib'))} | - |`,
    )
    if (OFFLOAD) {
      out(
        `| warm pull MB/s, ${c} client(s), Wharf + nginx offload | ${fmt(W('offload', c, 'mbs'), 0)} | ${fmt(W('dist', c, 'mbs'), 0)} | ${fmt(W('offload', c, 'mbs') / W('dist', c, 'mbs'))} | - |`,
      )
      out(
        `| warm pull server CPU ms/MiB, ${c} client(s), Wharf + nginx offload (nginx alone) | ${fmt(W('offload', c, 'cpuPerMib'), 3)} (${fmt(W('offload', c, 'nginxPerMib'), 3)}) | ${fmt(W('dist', c, 'cpuPerMib'), 3)} | ${fmt(W('offload', c, 'cpuPerMib') / W('dist', c, 'cpuPerMib'))} | - |`,
      )
    }
    // The client shares the two cores: near a full core of CPU per second, it rather than the server bounds the MB/s.
    out(
      `| warm pull client CPU s, ${c} client(s): Wharf${OFFLOAD ? ' / Wharf + nginx' : ''} / distribution | ${fmt(W('wharf', c, 'clientCpu'))}${OFFLOAD ? ` / ${fmt(W('offload', c, 'clientCpu'))}` : ''} | ${fmt(W('dist', c, 'clientCpu'))} | - | - |`,
    )
  }
  if (crowdRounds)
    out(
      `| ${CROWD} concurrent cold pulls: upstream GETs per blob (max over blobs) | ${fmt(median(crowd.wharf.perBlob))} (${median(crowd.wharf.maxBlob)}) | ${fmt(median(crowd.dist.perBlob))} (${median(crowd.dist.maxBlob)}) | - | - |`,
    )
  if (crowdRounds)
    out(
      `| ${CROWD} concurrent cold pulls: upstream manifest GETs / HEADs | ${median(crowd.wharf.manifestGets)} / ${median(crowd.wharf.manifestHeads)} | ${median(crowd.dist.manifestGets)} / ${median(crowd.dist.manifestHeads)} | - | - |`,
    )
  if (crowdRounds)
    out(
      `| ${CROWD} concurrent cold pulls: wall s, failed pulls | ${fmt(median(crowd.wharf.s))}, ${crowd.wharf.errors.reduce((a, b) => a + b, 0)} | ${fmt(median(crowd.dist.s))}, ${crowd.dist.errors.reduce((a, b) => a + b, 0)} | ${fmt(median(crowd.wharf.s) / median(crowd.dist.s))} | - |`,
    )
  const wlog = readFileSync(wharfLogPath, 'utf8')
  if (process.env.WHARF_BENCH_KEEP_LOG) await writeFile(process.env.WHARF_BENCH_KEEP_LOG, wlog)
  const dlog = readFileSync(distLogPath, 'utf8')
  out(
    `# load average at end ${loadavg()
      .map((l) => l.toFixed(2))
      .join(
        ' ',
      )}; wharf log ${wlog.split('\n').length - 1} lines, ${(wlog.match(/"level":[56]0/g) ?? []).length} at error level, ${(wlog.match(/"level":40/g) ?? []).length} at warn; distribution log ${(dlog.match(/level=error/g) ?? []).length} error lines`,
  )
} catch (e) {
  exitCode = 1
  process.stderr.write(`proxy-bench failed: ${(e as Error).stack}\n`)
} finally {
  for (const c of children.reverse()) c.kill('SIGTERM')
  await sleep(500)
  for (const d of dirs) await rm(d, { recursive: true, force: true })
  process.exit(exitCode)
}
