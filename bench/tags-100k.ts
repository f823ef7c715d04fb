// tags/list of a repository with 100,000 tags: time per page, order and completeness.
//   node_modules/.bin/node bench/tags-100k.ts [--tags 100000] [--concurrency 8] [--url http://127.0.0.1:PORT --pid PID]
// Without --url it starts Wharf itself (temp data dir, free port, log level WHARF_BENCH_LOG_LEVEL or
// info) and removes the data dir afterwards. It pushes one small image (config + layer blobs, one
// OCI manifest), PUTs that manifest under every tag (keep-alive agent, --concurrency requests in
// flight), then walks GET /v2/<name>/tags/list?n=1000 and ?n=100 by their Link headers, checking that
// the union is every tag, once, in lexical (byte) order. It also times the last page fetched
// directly with last=, and the default page (no n). Page times are client-side (request written to
// body fully read) over one keep-alive connection, one request at a time. WHARF_TREE (default: this
// checkout) is the source tree whose src/cli/main.ts is started. The registry must accept anonymous
// pushes (no auth flow here).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { openSync, readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    tags: { type: 'string', default: '100000' },
    concurrency: { type: 'string', default: '8' },
    url: { type: 'string' },
    pid: { type: 'string' },
    repo: { type: 'string', default: 'bench/tags100k' },
  },
})
const TAGS = Number(args.tags)
const CONCURRENCY = Number(args.concurrency)
const REPO = args.repo
const root = process.env.WHARF_TREE ?? join(dirname(fileURLToPath(import.meta.url)), '..')
const agent = new http.Agent({ keepAlive: true, maxSockets: CONCURRENCY })
const hz = 100 // USER_HZ; /proc reports ticks in it on every Linux architecture node runs on

interface Res {
  status: number
  headers: http.IncomingHttpHeaders
  body: Buffer
}

const ROOT_PASSWORD = 'bench-root-password'
/** Wharf's registry wants a bearer token from /jwt/auth; fetched on the first 401 and again when it expires. */
let bearer: string | undefined

async function fetchToken(base: string): Promise<void> {
  const basic = Buffer.from(`root:${ROOT_PASSWORD}`).toString('base64')
  const res = await send(
    base,
    'GET',
    `/jwt/auth?service=container_registry&scope=${encodeURIComponent(`repository:${REPO}:pull,push`)}`,
    undefined,
    { authorization: `Basic ${basic}` },
  )
  bearer = (JSON.parse(res.body.toString()) as { token: string }).token
}

async function request(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
  const withAuth = () => (bearer ? { ...headers, authorization: `Bearer ${bearer}` } : headers)
  const res = await send(base, method, path, body, withAuth())
  if (res.status !== 401 || path === '/v2/') return res
  await fetchToken(base)
  return send(base, method, path, body, withAuth())
}

function send(base: string, method: string, path: string, body?: Buffer, headers: Record<string, string> = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      new URL(path, base),
      { method, agent, headers: body ? { 'content-length': String(body.length), ...headers } : headers },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

function expect(res: Res, status: number, what: string): Res {
  if (res.status !== status) throw new Error(`${what}: HTTP ${res.status}, want ${status}: ${res.body.toString().slice(0, 300)}`)
  return res
}

const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo
      s.close(() => resolve(port))
    })
    s.on('error', reject)
  })
}

async function startWharf(): Promise<{ url: string; pid: number; child: ChildProcess; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-tags.'))
  const port = await freePort()
  const level = process.env.WHARF_BENCH_LOG_LEVEL ?? 'info'
  const log = openSync(join(dir, 'wharf.log'), 'w')
  // The registry's repositories live in projects: create the one holding REPO offline first.
  const env = { ...process.env, WHARF_ROOT_PASSWORD: ROOT_PASSWORD }
  const [group, project] = REPO.split('/')
  execFileSync(
    process.execPath,
    [join(root, 'src/cli/main.ts'), 'admin', 'group', 'create', '--path', group!, '--data', join(dir, 'data')],
    { env, stdio: 'ignore' },
  )
  execFileSync(
    process.execPath,
    [join(root, 'src/cli/main.ts'), 'admin', 'project', 'create', '--path', `${group}/${project}`, '--data', join(dir, 'data')],
    { env, stdio: 'ignore' },
  )
  const child = spawn(
    process.execPath,
    [join(root, 'src/cli/main.ts'), 'serve', '--listen', `127.0.0.1:${port}`, '--data', join(dir, 'data'), '--log-level', level],
    {
      stdio: ['ignore', log, log],
      env,
    },
  )
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 100; i++) {
    const status = await request(url, 'GET', '/v2/').then(
      (r) => r.status,
      () => 0,
    )
    if (status === 200 || status === 401) return { url, pid: child.pid!, child, dir }
    await new Promise((r) => setTimeout(r, 100))
  }
  child.kill()
  throw new Error(`wharf did not start: ${readFileSync(join(dir, 'wharf.log'), 'utf8').slice(-2000)}`)
}

function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return (Number(f[11]) + Number(f[12])) / hz
}

function statusKiB(pid: number | undefined, key: string): number {
  if (pid === undefined) return NaN
  const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : NaN
}

function stats(ms: number[]): string {
  const s = [...ms].sort((a, b) => a - b)
  const at = (p: number) => s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!
  const f = (x: number) => x.toFixed(2)
  return `pages ${s.length}: min ${f(s[0]!)}  median ${f(at(50))}  p95 ${f(at(95))}  max ${f(s[s.length - 1]!)} ms`
}

/** Follows Link: <...>; rel="next" from `first`; returns every tag and the time of each page. */
async function walk(base: string, first: string): Promise<{ tags: string[]; ms: number[] }> {
  const tags: string[] = []
  const ms: number[] = []
  let next: string | undefined = first
  while (next) {
    const t0 = performance.now()
    const res = expect(await request(base, 'GET', next), 200, `GET ${next}`)
    ms.push(performance.now() - t0)
    const page = JSON.parse(res.body.toString()) as { name: string; tags: string[] }
    if (page.name !== REPO) throw new Error(`page name ${page.name}, want ${REPO}`)
    tags.push(...page.tags)
    const link = res.headers.link as string | undefined
    const m = link ? /<([^>]+)>;\s*rel="next"/.exec(link) : null
    next = m ? m[1] : undefined
  }
  return { tags, ms }
}

function check(label: string, got: string[], want: string[]): void {
  if (got.length !== want.length) throw new Error(`${label}: ${got.length} tags, want ${want.length}`)
  for (let i = 0; i < want.length; i++) {
    if (got[i] !== want[i]) throw new Error(`${label}: tag #${i} is ${got[i]}, want ${want[i]} (lexical order)`)
  }
}

/** Tag names mixing cases, digits and punctuation, so lexical and numeric order differ. */
function tagName(i: number): string {
  switch (i % 4) {
    case 0:
      return `v${i}`
    case 1:
      return `V${i}.0`
    case 2:
      return `r-${i.toString(36)}`
    default:
      return `_${i}_x`
  }
}

async function main(): Promise<void> {
  const own = args.url ? undefined : await startWharf()
  const base = args.url ?? own!.url
  const pid = args.pid !== undefined ? Number(args.pid) : own?.pid
  const cleanup = async () => {
    if (own) {
      own.child.kill('SIGTERM')
      await new Promise((r) => own.child.once('exit', r))
      await rm(own.dir, { recursive: true, force: true })
    }
  }
  try {
    console.log(
      `# tags-100k: ${TAGS} tags in ${REPO}, concurrency ${CONCURRENCY}, server ${base}${pid !== undefined ? ` pid ${pid}` : ''}, node ${process.version}`,
    )

    // One small image: config, one layer, one manifest.
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const layer = randomBytes(4096)
    for (const blob of [config, layer]) {
      expect(
        await request(base, 'POST', `/v2/${REPO}/blobs/uploads/?digest=${sha256(blob)}`, blob, {
          'content-type': 'application/octet-stream',
        }),
        201,
        'blob push',
      )
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }),
    )
    const mt = { 'content-type': 'application/vnd.oci.image.manifest.v1+json' }

    // 100,000 tags.
    const names = Array.from({ length: TAGS }, (_, i) => tagName(i))
    let nextIndex = 0
    const putMs: number[] = []
    const c0 = cpuSeconds(pid)
    const t0 = performance.now()
    let lastReport = t0
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        for (let i = nextIndex++; i < TAGS; i = nextIndex++) {
          const s = performance.now()
          const res = await request(base, 'PUT', `/v2/${REPO}/manifests/${names[i]}`, manifest, mt)
          putMs.push(performance.now() - s)
          expect(res, 201, `PUT tag ${names[i]}`)
          if (s - lastReport > 10_000) {
            lastReport = s
            process.stderr.write(`[tags-100k] ${putMs.length} tags pushed\n`)
          }
        }
      }),
    )
    const putWall = (performance.now() - t0) / 1000
    const putCpu = cpuSeconds(pid) - c0
    console.log(
      `tag PUTs: ${TAGS} in ${putWall.toFixed(1)} s = ${(TAGS / putWall).toFixed(0)}/s, server cpu ${putCpu.toFixed(1)} s = ${((putCpu * 1000) / TAGS).toFixed(3)} ms/op; latency ${stats(putMs).replace(/^pages \d+: /, '')}`,
    )

    const want = [...names].sort() // JS string order = byte order for these ASCII names

    const walks: Array<[string, string]> = [
      ['n=1000', `/v2/${REPO}/tags/list?n=1000`],
      ['n=100', `/v2/${REPO}/tags/list?n=100`],
    ]
    for (const [label, first] of walks) {
      const c1 = cpuSeconds(pid)
      const w = await walk(base, first)
      const cpu = cpuSeconds(pid) - c1
      check(label, w.tags, want)
      console.log(
        `walk ${label.padEnd(7)} ${stats(w.ms)}; total ${w.tags.length} tags, lexically ordered, no duplicates; server cpu ${((cpu * 1000) / w.ms.length).toFixed(2)} ms/page`,
      )
    }

    // Pages fetched directly: the last page through last=, the default page size, a page in the middle.
    const direct: Array<[string, string, number]> = [
      ['last page (n=1000&last=)', `/v2/${REPO}/tags/list?n=1000&last=${encodeURIComponent(want[TAGS - 1001]!)}`, TAGS - 1000],
      ['last page (n=100&last=)', `/v2/${REPO}/tags/list?n=100&last=${encodeURIComponent(want[TAGS - 101]!)}`, TAGS - 100],
      [
        'middle page (n=1000&last=)',
        `/v2/${REPO}/tags/list?n=1000&last=${encodeURIComponent(want[Math.floor(TAGS / 2) - 1]!)}`,
        Math.floor(TAGS / 2),
      ],
      ['default page (no n)', `/v2/${REPO}/tags/list`, 0],
    ]
    for (const [label, path, from] of direct) {
      const ms: number[] = []
      let page: { tags: string[] } = { tags: [] }
      let link: string | undefined
      for (let i = 0; i < 20; i++) {
        const s = performance.now()
        const res = expect(await request(base, 'GET', path), 200, label)
        ms.push(performance.now() - s)
        page = JSON.parse(res.body.toString()) as { tags: string[] }
        link = res.headers.link as string | undefined
      }
      check(label, page.tags, want.slice(from, from + page.tags.length))
      const isLast = from + page.tags.length === TAGS
      if (isLast && link) throw new Error(`${label}: last page still has a Link header`)
      console.log(
        `${label.padEnd(27)} ${page.tags.length} tags${isLast ? ', no Link' : ', Link to next'}; 20 requests: ${stats(ms).replace(/^pages \d+: /, '')}`,
      )
    }
    if (pid !== undefined)
      console.log(
        `server VmHWM ${(statusKiB(pid, 'VmHWM') / 1024).toFixed(0)} MiB, VmRSS ${(statusKiB(pid, 'VmRSS') / 1024).toFixed(0)} MiB`,
      )
  } finally {
    agent.destroy()
    await cleanup()
  }
}

await main()
