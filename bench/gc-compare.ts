// Garbage collection beside distribution's, on the same content in one run (issue 13).
//   node_modules/.bin/node bench/gc-compare.ts [--manifests 10000] [--repos 100] [--concurrency 8] [--pushers 2]
// Both registries on loopback, temp data dirs (removed on exit): Wharf (src/cli/main.ts serve, token
// auth, fsync on commit, gc.graceSeconds 30 and gc.untaggedDelaySeconds 0, no schedule) and Debian's
// distribution (`docker-registry serve`, delete enabled, no auth). The same images are pushed to
// both: --manifests OCI images over --repos repositories, each with its own config (~200 B) and
// layer (4 KiB), and two of 20 shared layers (64 KiB each). Then half of the manifests (every
// other one) are deleted by digest through the API in both. Then:
//   distribution: the registry is stopped (its documented requirement: garbage-collect needs the
//     registry stopped or read-only), `docker-registry garbage-collect --delete-untagged` runs, the
//     registry is started again; the read-only window is stop → serving again.
//   Wharf: `wharf gc` runs beside the running server while --pushers clients keep pushing new
//     images (their own repositories, the shared layers uploaded again) and counting failures; no
//     window. (Their own repositories: a client that HEADed a blob in a repository being collected
//     and skipped its upload could lose the link to the sweep, until c005169 renewed links on HEAD.)
// Reported: wall time and CPU (user+sys of the collector process, from bash's `times`), bytes
// freed (du of the storage before and after; Wharf's minus what the concurrent pushes added, and
// its own freedBytes), the window, failed pushes during Wharf's run; then every kept image is
// pulled back from both (manifest and blobs, digests checked).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    manifests: { type: 'string', default: '10000' },
    repos: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '8' },
    pushers: { type: 'string', default: '2' },
  },
})
const MANIFESTS = Number(args.manifests)
const REPOS = Number(args.repos)
const CONCURRENCY = Number(args.concurrency)
const PUSHERS = Number(args.pushers)
const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const node = join(root, 'node_modules/.bin/node')
const PASSWORD = 'bench-root-password'
/**
 * Wharf's gc.graceSeconds: blob links no manifest references yet are kept this long, which is what
 * keeps a push's layers alive until its manifest lands. The run waits until the deleted images'
 * blobs are older than this before collecting.
 */
const GRACE_SECONDS = 30
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY + PUSHERS + 2 })
const work = await mkdtemp(join(tmpdir(), 'gc-compare-'))
const children: ChildProcess[] = []
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
})

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const freePort = () =>
  new Promise<number>((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
  })

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}
function send(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${path}`,
      { method, agent, headers: { ...headers, ...(body ? { 'content-length': body.length } : {}) } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

async function waitHttp(url: string) {
  for (let i = 0; i < 200; i++) {
    try {
      await send(url, 'GET', '/v2/')
      return
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  throw new Error(`no answer from ${url}`)
}

/** A registry client: Wharf's needs a bearer token per repository (fetched on 401), distribution's none. */
class Client {
  private readonly tokens = new Map<string, string>()
  readonly base: string
  private readonly auth: boolean
  constructor(base: string, auth: boolean) {
    this.base = base
    this.auth = auth
  }
  req(method: string, name: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
    return this.raw(method, name, `/v2/${name}/${path}`, body, headers)
  }
  /** A request for repository `name` at a full path (an upload's Location), with its token, fetched again on a 401. */
  async raw(method: string, name: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
    for (let attempt = 0; ; attempt++) {
      const token = this.tokens.get(name)
      const res = await send(this.base, method, path, body, token ? { ...headers, authorization: `Bearer ${token}` } : headers)
      if (res.status !== 401 || !this.auth || attempt > 0) return res
      const basic = Buffer.from(`root:${PASSWORD}`).toString('base64')
      const t = await send(this.base, 'GET', `/jwt/auth?service=container_registry&scope=repository:${name}:pull,push,delete`, undefined, {
        authorization: `Basic ${basic}`,
      })
      this.tokens.set(name, (JSON.parse(t.body.toString()) as { token: string }).token)
    }
  }
  async pushBlob(name: string, blob: Buffer): Promise<void> {
    const d = sha(blob)
    if ((await this.req('HEAD', name, `blobs/${d}`)).status === 200) return
    // distribution 2.8 has no monolithic POST: POST then PUT; Wharf takes the same two steps.
    const start = await this.req('POST', name, 'blobs/uploads/')
    if (start.status !== 202) throw new Error(`${this.base} POST upload: ${start.status} ${start.body}`)
    const loc = new URL(String(start.headers.location), this.base)
    const put = await this.raw('PUT', name, `${loc.pathname}${loc.search}${loc.search ? '&' : '?'}digest=${d}`, blob, {
      'content-type': 'application/octet-stream',
    })
    if (put.status !== 201) throw new Error(`${this.base} PUT blob: ${put.status} ${put.body}`)
  }
  async pushImage(name: string, tag: string, blobs: { config: Buffer; layers: Buffer[] }): Promise<string> {
    for (const b of [...blobs.layers, blobs.config]) await this.pushBlob(name, b)
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(blobs.config), size: blobs.config.length },
        layers: blobs.layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha(l), size: l.length })),
      }),
    )
    const res = await this.req('PUT', name, `manifests/${tag}`, manifest, { 'content-type': 'application/vnd.oci.image.manifest.v1+json' })
    if (res.status !== 201) throw new Error(`${this.base} PUT manifest: ${res.status} ${res.body}`)
    return sha(manifest)
  }
  /** GET the manifest by tag and each blob, checking digests. */
  async pull(name: string, tag: string): Promise<void> {
    const m = await this.req('GET', name, `manifests/${tag}`, undefined, { accept: 'application/vnd.oci.image.manifest.v1+json' })
    if (m.status !== 200) throw new Error(`${this.base} pull ${name}:${tag}: ${m.status}`)
    const doc = JSON.parse(m.body.toString()) as { config: { digest: string }; layers: Array<{ digest: string }> }
    for (const d of [doc.config.digest, ...doc.layers.map((l) => l.digest)]) {
      const b = await this.req('GET', name, `blobs/${d}`)
      if (b.status === 307 || b.status === 302) throw new Error('redirects are not expected on loopback')
      if (b.status !== 200 || sha(b.body) !== d) throw new Error(`${this.base} blob ${d} of ${name}:${tag}: ${b.status}`)
    }
  }
}

async function pool<T>(items: T[], n: number, fn: (item: T) => Promise<void>) {
  let next = 0
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!)
    }),
  )
}

/** Bytes of the regular files below `dir` (directories' own sizes left out: the stores lay them out differently). */
const du = (dir: string) =>
  execFileSync('find', [dir, '-type', 'f', '-printf', '%s\\n'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .reduce((n, s) => n + Number(s), 0)

/** Runs a command under bash and returns its wall time and the children's user+sys CPU (bash's `times`). */
function timed(cmd: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ wallMs: number; cpuMs: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const script = `"$@" >"${work}/collector.out" 2>&1; rc=$?; times; exit $rc`
    const start = performance.now()
    const p = spawn('bash', ['-c', script, 'bash', ...cmd], { env, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (c: Buffer) => (out += c))
    p.on('exit', async (code) => {
      const wallMs = performance.now() - start
      const { readFile } = await import('node:fs/promises')
      const stdout = await readFile(join(work, 'collector.out'), 'utf8')
      if (code !== 0) return reject(new Error(`${cmd.join(' ')} exited ${code}: ${stdout.slice(-2000)}`))
      // `times` prints the shell's then its children's "XmY.YYYs XmY.YYYs" (user sys).
      const line = out.trim().split('\n').at(-1)!
      const secs = [...line.matchAll(/(\d+)m([\d.]+)s/g)].map((m) => Number(m[1]) * 60 + Number(m[2]))
      resolve({ wallMs, cpuMs: (secs[0]! + secs[1]!) * 1000, stdout })
    })
    p.on('error', reject)
  })
}

// ---- start both ----
const [wport, dport] = [await freePort(), await freePort()]
const wdata = join(work, 'wharf')
const wenv = {
  ...process.env,
  WHARF_ROOT_PASSWORD: PASSWORD,
  WHARF_AUTH_TOKEN_TTL_SECONDS: '3600',
  WHARF_GC_GRACE_SECONDS: String(GRACE_SECONDS),
  WHARF_GC_UNTAGGED_DELAY_SECONDS: '0',
  WHARF_GC_INTERVAL_MINUTES: '0',
  WHARF_LOG_LEVEL: process.env.WHARF_BENCH_LOG_LEVEL ?? 'warn',
}
const wharfCli = [join(root, 'src/cli/main.ts')]
execFileSync(node, [...wharfCli, 'admin', 'group', 'create', '--path', 'bench', '--data', wdata], { env: wenv, stdio: 'ignore' })
execFileSync(node, [...wharfCli, 'admin', 'project', 'create', '--path', 'bench/gc', '--data', wdata], { env: wenv, stdio: 'ignore' })
const { openSync } = await import('node:fs')
const wharfLog = process.env.WHARF_BENCH_KEEP_LOG ?? join(work, 'wharf.log')
const wharf = spawn(node, [...wharfCli, 'serve', '--listen', `127.0.0.1:${wport}`, '--data', wdata], {
  env: wenv,
  stdio: ['ignore', openSync(wharfLog, 'w'), openSync(wharfLog, 'a')],
})
children.push(wharf)
const ddata = join(work, 'dist')
const dconfig = join(work, 'dist.yml')
await writeFile(
  dconfig,
  `version: 0.1\nlog: { level: error, accesslog: { disabled: true } }\nstorage: { filesystem: { rootdirectory: ${ddata} }, delete: { enabled: true } }\nhttp: { addr: 127.0.0.1:${dport} }\n`,
)
const startDist = () => {
  const p = spawn('docker-registry', ['serve', dconfig], { stdio: 'ignore' })
  children.push(p)
  return p
}
let dist = startDist()
const W = new Client(`http://127.0.0.1:${wport}`, true)
const D = new Client(`http://127.0.0.1:${dport}`, false)
await Promise.all([waitHttp(W.base), waitHttp(D.base)])
const distVersion = execFileSync('docker-registry', ['--version'], { encoding: 'utf8' }).trim()
console.log(`gc-compare: ${MANIFESTS} manifests in ${REPOS} repositories; ${distVersion}; node ${process.version}`)

// ---- the same content in both ----
const shared = Array.from({ length: 20 }, (_, i) => Buffer.concat([Buffer.from(`shared-${i}`), randomBytes(64 * 1024)]))
const image = (i: number) => ({
  config: Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Labels: { n: String(i), pad: 'x'.repeat(120) } } })),
  layers: [shared[i % 20]!, shared[(i + 7) % 20]!, Buffer.concat([Buffer.from(`own-${i}`), randomBytes(4096)])],
})
const images = Array.from({ length: MANIFESTS }, (_, i) => ({ i, name: `bench/gc/r${i % REPOS}`, tag: `t${i}`, blobs: image(i) }))
const digests = new Map<number, string>()
let wharfPushedAt = 0
for (const [label, c] of [
  ['wharf', W],
  ['distribution', D],
] as const) {
  const start = performance.now()
  await pool(images, CONCURRENCY, async (im) => {
    const d = await c.pushImage(im.name, im.tag, im.blobs)
    const prev = digests.get(im.i)
    if (prev && prev !== d) throw new Error('the same image has two digests')
    digests.set(im.i, d)
  })
  console.log(`pushed to ${label}: ${((performance.now() - start) / 1000).toFixed(1)} s`)
  if (label === 'wharf') wharfPushedAt = Date.now()
}
// Every other image goes (deleted by digest: distribution 2.8 deletes no tag by name).
const gone = images.filter((im) => im.i % 2 === 1)
const kept = images.filter((im) => im.i % 2 === 0)
for (const c of [W, D])
  await pool(gone, CONCURRENCY, async (im) => {
    const r = await c.req('DELETE', im.name, `manifests/${digests.get(im.i)}`)
    if (r.status !== 202) throw new Error(`${c.base} DELETE manifest: ${r.status} ${r.body}`)
  })
// What GC should free in both: each deleted image's own config and layer (the shared layers stay in use).
const expectedFreed = gone.reduce((n, im) => n + im.blobs.config.length + im.blobs.layers[2]!.length, 0)

// ---- distribution: offline ----
const distBefore = du(ddata)
const windowStart = performance.now()
dist.kill('SIGTERM')
await new Promise((r) => dist.once('exit', r))
const dgc = await timed(['docker-registry', 'garbage-collect', '--delete-untagged', dconfig])
dist = startDist()
await waitHttp(D.base)
const windowMs = performance.now() - windowStart
const distFreed = distBefore - du(ddata)

// ---- Wharf: online, with pushes running ----
await new Promise((r) => setTimeout(r, Math.max(0, wharfPushedAt + GRACE_SECONDS * 1000 + 1000 - Date.now())))
const wstore = join(wdata, 'storage')
const wharfBefore = du(wstore)
let running = true
let pushed = 0
let failed = 0
let addedBytes = 0
const pushers = Array.from({ length: PUSHERS }, async (_, p) => {
  for (let n = 0; running; n++) {
    const i = MANIFESTS + p * 1_000_000 + n
    const blobs = image(i)
    try {
      await W.pushImage(`bench/gc/live${p}`, `during-${n}`, blobs)
      pushed++
      addedBytes += blobs.config.length + blobs.layers[2]!.length
    } catch (e) {
      failed++
      console.error(`push during GC failed: ${(e as Error).message}`)
    }
  }
})
const wgc = await timed([node, ...wharfCli, 'gc', '--json', '--data', wdata], wenv)
running = false
await Promise.all(pushers)
const report = JSON.parse(wgc.stdout) as { freedBytes: number; counts: Record<string, number>; durationMs: number }
const wharfFreed = wharfBefore + addedBytes - du(wstore)

// ---- every kept image still pulls, from both ----
for (const c of [W, D]) await pool(kept, CONCURRENCY, (im) => c.pull(im.name, im.tag))

const row = (k: string, a: string, b: string) => console.log(`| ${k} | ${a} | ${b} |`)
console.log(`\nexpected to be freed (own config + layer of ${gone.length} deleted images): ${expectedFreed} B`)
console.log('\n| | Wharf `wharf gc` (online) | distribution `garbage-collect --delete-untagged` (offline) |\n|---|---|---|')
row(
  'wall time',
  `${(wgc.wallMs / 1000).toFixed(2)} s (collector's own: ${(report.durationMs / 1000).toFixed(2)} s)`,
  `${(dgc.wallMs / 1000).toFixed(2)} s`,
)
row('CPU (user+sys)', `${(wgc.cpuMs / 1000).toFixed(2)} s`, `${(dgc.cpuMs / 1000).toFixed(2)} s`)
row('bytes freed (du)', `${wharfFreed} (report: ${report.freedBytes}; ${JSON.stringify(report.counts)})`, `${distFreed}`)
row('read-only window', 'none', `${(windowMs / 1000).toFixed(2)} s (stopped → serving again)`)
row('pushes during the collection', `${pushed} ok, ${failed} failed`, 'refused (stopped)')
console.log(`\nall ${kept.length} kept images pulled back byte-identical from both`)
await rm(work, { recursive: true, force: true })
process.exit(failed === 0 ? 0 : 1)
