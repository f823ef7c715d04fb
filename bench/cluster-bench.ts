// Two nodes against one, on manifest GETs through nginx, in the same run (issue 15's scaling figure).
//
//   node bench/cluster-bench.ts [--count 6000] [--concurrency 32] [--rounds 3]
//
// Starts the cluster of scripts/cluster.sh (PostgreSQL, Swift's S3 API, nodes a and b, nginx),
// pushes one small image through the balancer, then alternates: N manifest GETs through nginx over
// node a alone (CLUSTER_SINGLE_URL), N through nginx over both nodes (CLUSTER_URL), `rounds` times.
// Both nginx listeners are the same nginx worker, so the only difference is the second node.
// Each GET carries a pull token (fetched once, as a client caching it would) and is checked (status,
// digest). For each case: requests/s, and CPU seconds per 1000 requests of every process involved,
// read from /proc around the timed window: node a, node b, nginx, PostgreSQL (every backend) and this
// load client. Prints a Markdown table of the medians; the cluster is stopped afterwards.
// CLUSTER_LOG_LEVEL (default info, as shipped) sets the nodes' log level.
import { execFileSync } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { readdirSync, readFileSync, mkdtempSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'

const root = path.resolve(import.meta.dirname, '..')
const script = path.join(root, 'scripts', 'cluster.sh')
const { values: opts } = parseArgs({
  options: {
    count: { type: 'string', default: '6000' },
    concurrency: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
  },
})
const COUNT = Number(opts.count)
const CONCURRENCY = Number(opts.concurrency)
const ROUNDS = Number(opts.rounds)
const CLK_TCK = 100 // Linux's USER_HZ: /proc's CPU times are in these ticks
const MANIFEST = 'application/vnd.oci.image.manifest.v1+json'

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })

function send(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: Buffer,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers, agent }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** CPU seconds (user + system) of the given processes, now. */
function cpuSeconds(pids: number[]): number {
  let ticks = 0
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      ticks += Number(f[11]) + Number(f[12])
    } catch {
      /* exited between listing and reading */
    }
  }
  return ticks / CLK_TCK
}

/** Processes whose process group (field 5) or parent (field 4) is `id`. */
function members(id: number, by: 'group' | 'parent'): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      if (Number(by === 'group' ? f[2] : f[1]) === id || Number(name) === id) out.push(Number(name))
    } catch {
      /* gone */
    }
  }
  return out
}

const dir = mkdtempSync(path.join(tmpdir(), 'wharf-cluster-bench-'))
const stopCluster = () => execFileSync('sh', [script, 'stop', dir], { stdio: 'inherit' })
process.on('exit', () => {
  try {
    stopCluster()
  } catch {
    /* reported by the script */
  }
})
process.on('SIGINT', () => process.exit(130))

process.stderr.write(`starting the cluster in ${dir}\n`)
const env = new Map(
  // One node after the other: the benchmark measures serving, not the start-up race the tests cover.
  execFileSync('sh', [script, 'start', dir], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, CLUSTER_START: process.env.CLUSTER_START ?? 'serial' },
  })
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
)
const get = (k: string) => env.get(k) ?? ''
const lb = get('CLUSTER_URL')
const single = get('CLUSTER_SINGLE_URL')
const password = get('ROOT_PASSWORD')
const basic = `Basic ${Buffer.from(`root:${password}`).toString('base64')}`
const json = { 'content-type': 'application/json' }

// A project and one image in it (a config and a layer), through the balancer.
const oauth = await send(
  `${lb}/oauth/token`,
  'POST',
  json,
  Buffer.from(JSON.stringify({ grant_type: 'password', username: 'root', password })),
)
const api = { ...json, authorization: `Bearer ${JSON.parse(oauth.body.toString()).access_token}` }
const group = await send(`${lb}/api/v4/groups`, 'POST', api, Buffer.from(JSON.stringify({ path: 'bench', name: 'bench' })))
const groupId = JSON.parse(group.body.toString()).id
const project = await send(
  `${lb}/api/v4/projects`,
  'POST',
  api,
  Buffer.from(JSON.stringify({ path: 'app', name: 'app', namespace_id: groupId })),
)
if (project.status !== 201) throw new Error(`cannot create the project: ${project.status} ${project.body}`)
const repo = 'bench/app'
const challenge = await send(`${lb}/v2/${repo}/manifests/v1`, 'GET', {})
const realm = /realm="([^"]+)",service="([^"]+)"/.exec(String(challenge.headers['www-authenticate']))!
const tokenFor = async (actions: string) => {
  const url = `${realm[1]}?service=${encodeURIComponent(realm[2]!)}&scope=${encodeURIComponent(`repository:${repo}:${actions}`)}`
  return JSON.parse((await send(url, 'GET', { authorization: basic })).body.toString()).token as string
}
const push = { authorization: `Bearer ${await tokenFor('pull,push')}` }
const blobs = [
  Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
  randomBytes(4096),
]
for (const blob of blobs) {
  const started = await send(`${lb}/v2/${repo}/blobs/uploads/`, 'POST', push)
  const location = new URL(String(started.headers.location), lb)
  location.searchParams.set('digest', sha256(blob))
  const put = await send(location.toString(), 'PUT', { ...push, 'content-type': 'application/octet-stream' }, blob)
  if (put.status !== 201) throw new Error(`blob PUT: ${put.status} ${put.body}`)
}
const manifest = Buffer.from(
  JSON.stringify({
    schemaVersion: 2,
    mediaType: MANIFEST,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(blobs[0]!), size: blobs[0]!.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(blobs[1]!), size: blobs[1]!.length }],
  }),
)
const digest = sha256(manifest)
const put = await send(`${lb}/v2/${repo}/manifests/v1`, 'PUT', { ...push, 'content-type': MANIFEST }, manifest)
if (put.status !== 201) throw new Error(`manifest PUT: ${put.status} ${put.body}`)
const pull = { authorization: `Bearer ${await tokenFor('pull')}`, accept: MANIFEST }

const pids = {
  nodeA: Number(get('NODE_A_PID')),
  nodeB: Number(get('NODE_B_PID')),
  nginx: Number(readFileSync(path.join(dir, 'nginx.pid'), 'utf8')),
  postgres: Number(readFileSync(path.join(dir, 'pg', 'data', 'postmaster.pid'), 'utf8').split('\n')[0]),
}
type Part = 'nodeA' | 'nodeB' | 'nginx' | 'postgres' | 'client'
const PARTS: Part[] = ['nodeA', 'nodeB', 'nginx', 'postgres', 'client']
function sample(): Record<Part, number> {
  const self = process.cpuUsage()
  return {
    nodeA: cpuSeconds(members(pids.nodeA, 'group')),
    nodeB: cpuSeconds(members(pids.nodeB, 'group')),
    nginx: cpuSeconds(members(pids.nginx, 'group')),
    postgres: cpuSeconds(members(pids.postgres, 'parent')),
    client: (self.user + self.system) / 1e6,
  }
}

/** Database queries both nodes have run (their wharf_db_query_duration_seconds histograms' counts). */
async function queries(): Promise<number> {
  let n = 0
  for (const node of [get('NODE_A_URL'), get('NODE_B_URL')]) {
    const r = await send(`${node}/-/metrics`, 'GET', { authorization: `Bearer ${get('METRICS_TOKEN')}` })
    for (const m of r.body.toString().matchAll(/^wharf_db_query_duration_seconds_count\{[^}]*\} (\d+)/gm)) n += Number(m[1])
  }
  return n
}

async function run(url: string): Promise<{ rps: number; cpuPer1000: Record<Part, number>; errors: number; queriesPerRequest: number }> {
  // Warm the connections (and the nodes' JIT) untimed.
  await Promise.all(Array.from({ length: CONCURRENCY }, () => send(`${url}/v2/${repo}/manifests/v1`, 'GET', pull)))
  let next = 0
  let errors = 0
  const queriesBefore = await queries()
  const before = sample()
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next++ < COUNT) {
        const r = await send(`${url}/v2/${repo}/manifests/v1`, 'GET', pull)
        if (r.status !== 200 || r.headers['docker-content-digest'] !== digest) errors++
      }
    }),
  )
  const seconds = (performance.now() - t0) / 1000
  const after = sample()
  // Includes the scrapes' own few queries (the CI gauges), negligible against COUNT requests.
  const queriesPerRequest = ((await queries()) - queriesBefore) / COUNT
  const cpuPer1000 = Object.fromEntries(PARTS.map((p) => [p, ((after[p] - before[p]) * 1000) / COUNT])) as Record<Part, number>
  return { rps: COUNT / seconds, cpuPer1000, errors, queriesPerRequest }
}

const loadBefore = loadavg()[0]!
const results: Record<'one' | 'two', Array<Awaited<ReturnType<typeof run>>>> = { one: [], two: [] }
for (let round = 1; round <= ROUNDS; round++) {
  for (const [name, url] of [
    ['one', single],
    ['two', lb],
  ] as const) {
    const r = await run(url)
    results[name].push(r)
    process.stderr.write(
      `round ${round} ${name} node(s): ${r.rps.toFixed(0)} req/s, ${r.errors} errors, CPU s/1000: ${JSON.stringify(r.cpuPer1000)}\n`,
    )
  }
}
const median = (xs: number[]) => {
  const a = [...xs].sort((x, y) => x - y)
  return a.length % 2 ? a[a.length >> 1]! : (a[a.length / 2 - 1]! + a[a.length / 2]!) / 2
}
const row = (name: 'one' | 'two') => {
  const rs = results[name]
  const cpu = PARTS.map((p) => median(rs.map((r) => r.cpuPer1000[p])))
  const total = cpu.reduce((a, b) => a + b, 0)
  return {
    rps: median(rs.map((r) => r.rps)),
    cpu,
    total,
    errors: rs.reduce((a, r) => a + r.errors, 0),
    queries: median(rs.map((r) => r.queriesPerRequest)),
  }
}
const one = row('one')
const two = row('two')
console.log(
  `manifest GETs through nginx, ${COUNT} per case, concurrency ${CONCURRENCY}, median of ${ROUNDS} rounds, ` +
    `${process.env.CLUSTER_LOG_LEVEL ?? 'info'} logging; the machine's load average ${loadBefore.toFixed(1)} before, ${loadavg()[0]!.toFixed(1)} after\n`,
)
console.log('| nodes | req/s | node a | node b | nginx | PostgreSQL | load client | all | DB queries/request | errors |')
console.log('|---|---|---|---|---|---|---|---|---|---|')
for (const [label, r] of [
  ['1', one],
  ['2', two],
] as const) {
  console.log(
    `| ${label} | ${r.rps.toFixed(0)} | ${r.cpu.map((c) => c.toFixed(3)).join(' | ')} | ${r.total.toFixed(3)} | ${r.queries.toFixed(2)} | ${r.errors} |`,
  )
}
console.log(`\nCPU in seconds per 1000 requests. Scaling, two nodes / one: ${(two.rps / one.rps).toFixed(2)}×`)
const cores = availableParallelism()
console.log(
  `(CPU seconds the machine's ${cores} cores have per 1000 requests at the one-node rate: ${((cores * 1000) / one.rps).toFixed(3)})`,
)
