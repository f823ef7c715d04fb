// A two-node Wharf cluster for end-to-end tests (scripts/cluster.sh): PostgreSQL, Swift's S3 API,
// nodes a and b with identical settings, nginx round-robin in front. One cluster per test file:
// start it in before(), stop it in after(); a test process that exits without stopping it still
// leaves nothing running.
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { registerCredentials } from './registry.ts'
import { describeResult, run } from './run.ts'
import { repoRoot, restClient, type Wharf } from './wharf.ts'

const script = path.join(repoRoot, 'scripts', 'cluster.sh')

export type NodeName = 'a' | 'b'

export interface ClusterNode extends Wharf {
  name: NodeName
  /** kill -9 of the node's process group. */
  kill(): Promise<void>
  /** Starts the node again (after kill) and waits until it is ready. */
  start(): Promise<void>
}

export interface Cluster {
  /** The balancer (nginx over both nodes), which is also the nodes' public URL. */
  lb: Wharf
  /** nginx over node a alone (the benchmark's one-node case). */
  singleUrl: string
  a: ClusterNode
  b: ClusterNode
  rootPassword: string
  /** `Authorization: Bearer` for each node's /-/metrics. */
  metricsToken: string
  dir: string
  /** nginx's access log: one line per request with `upstream=<node address>`. */
  accessLog(): Promise<string>
  stop(): Promise<void>
}

function parseEnv(text: string): Map<string, string> {
  const vars = new Map<string, string>()
  for (const line of text.split('\n')) {
    const i = line.indexOf('=')
    if (i > 0 && /^[A-Z_]+$/.test(line.slice(0, i))) vars.set(line.slice(0, i), line.slice(i + 1))
  }
  return vars
}

async function tail(file: string, lines = 60): Promise<string> {
  try {
    return (await readFile(file, 'utf8')).split('\n').slice(-lines).join('\n')
  } catch {
    return '(no log)'
  }
}

export async function startCluster(): Promise<Cluster> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-cluster-'))
  let stopped = false
  const onExit = () => {
    if (!stopped) spawnSync('sh', [script, 'stop', dir], { stdio: 'ignore', timeout: 60_000 })
  }
  process.once('exit', onExit)
  const started = await run('sh', [script, 'start', dir], { timeoutMs: 240_000 })
  if (started.code !== 0) {
    process.off('exit', onExit)
    await run('sh', [script, 'stop', dir], { timeoutMs: 60_000 })
    throw new Error(`cannot start the cluster:\n${describeResult(started)}`)
  }
  const vars = parseEnv(started.stdout)
  const get = (k: string) => {
    const v = vars.get(k)
    if (!v) throw new Error(`cluster.sh printed no ${k}:\n${started.stdout}`)
    return v
  }
  const rootPassword = get('ROOT_PASSWORD')
  const lbUrl = get('CLUSTER_URL')
  const pids: Record<NodeName, number> = { a: Number(get('NODE_A_PID')), b: Number(get('NODE_B_PID')) }
  const logTailOfBoth = async (lines = 30) =>
    `--- node a ---\n${await tail(get('NODE_A_LOG'), lines)}\n--- node b ---\n${await tail(get('NODE_B_LOG'), lines)}`

  const stop = async () => {
    if (stopped) return
    stopped = true
    process.off('exit', onExit)
    if (process.env.WHARF_E2E_KEEP === '1') {
      process.stderr.write(`# WHARF_E2E_KEEP=1: the cluster in ${dir} is still running (sh scripts/cluster.sh stop ${dir})\n`)
      return
    }
    const r = await run('sh', [script, 'stop', dir], { timeoutMs: 60_000 })
    if (r.code !== 0) process.stderr.write(`cluster stop failed:\n${describeResult(r)}\n`)
  }

  const node = (name: NodeName): ClusterNode => {
    const url = get(`NODE_${name.toUpperCase()}_URL`)
    const logFile = get(`NODE_${name.toUpperCase()}_LOG`)
    const kill = async () => {
      const r = await run('sh', [script, 'kill', dir, name])
      if (r.code !== 0) throw new Error(describeResult(r))
    }
    const start = async () => {
      const r = await run('sh', [script, 'start-node', dir, name], { timeoutMs: 90_000 })
      if (r.code !== 0) throw new Error(describeResult(r))
      pids[name] = Number(parseEnv(r.stdout).get(`NODE_${name.toUpperCase()}_PID`))
    }
    registerCredentials(url, { username: 'root', password: rootPassword })
    return {
      name,
      url,
      host: new URL(url).host,
      port: Number(new URL(url).port),
      dataDir: `${get('DATA_DIR')}/node-${name}`,
      tmpDir: dir,
      logFile,
      kind: 'wharf',
      rootPassword,
      ...restClient(url, 'wharf', rootPassword),
      get pid() {
        return pids[name]
      },
      kill,
      start,
      stop: kill,
      async restart() {
        await kill()
        await start()
      },
      logTail: (lines?: number) => tail(logFile, lines),
    }
  }

  registerCredentials(lbUrl, { username: 'root', password: rootPassword })
  const lb: Wharf = {
    url: lbUrl,
    host: new URL(lbUrl).host,
    port: Number(new URL(lbUrl).port),
    dataDir: get('DATA_DIR'),
    tmpDir: dir,
    logFile: get('NODE_A_LOG'),
    kind: 'wharf',
    rootPassword,
    ...restClient(lbUrl, 'wharf', rootPassword),
    pid: -1,
    stop,
    restart: () => Promise.reject(new Error('restart a node of the cluster, not the balancer')),
    logTail: logTailOfBoth,
  }
  return {
    lb,
    singleUrl: get('CLUSTER_SINGLE_URL'),
    a: node('a'),
    b: node('b'),
    rootPassword,
    metricsToken: get('METRICS_TOKEN'),
    dir,
    accessLog: () => readFile(path.join(dir, 'nginx', 'access.log'), 'utf8'),
    stop,
  }
}
