// A private Docker engine for a test file (scripts/docker-engine.sh).
// One engine per test file: start it in before(), stop it in after().
import { spawnSync } from 'node:child_process'
import { existsSync, rmSync } from 'node:fs'
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import path from 'node:path'
import { run, describeResult, type RunOptions, type RunResult } from './run.ts'
import { repoRoot } from './wharf.ts'

export interface Engine {
  /** unix:///tmp/wharf-engine-XXXX/docker.sock */
  dockerHost: string
  /** Environment for the docker client: DOCKER_HOST and a private DOCKER_CONFIG. */
  env: Record<string, string>
  dir: string
  /** Run the docker client against this engine. */
  docker(args: readonly string[], opts?: RunOptions): Promise<RunResult>
  stop(): Promise<void>
}

const script = path.join(repoRoot, 'scripts', 'docker-engine.sh')

function findDockerd(): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin', '/usr/bin']) {
    if (dir && existsSync(path.join(dir, 'dockerd'))) return path.join(dir, 'dockerd')
  }
  return undefined
}

export interface EngineOptions {
  /** Pull Docker Hub images through this mirror (dockerd --registry-mirror), e.g. http://127.0.0.1:5001. */
  registryMirror?: string
}

export async function startEngine(opts: EngineOptions = {}): Promise<Engine> {
  if (!findDockerd()) {
    throw new Error(
      '\n!!! dockerd is not installed: the docker end-to-end tests cannot run (and must not be skipped).\n' +
        '!!! Run `sh scripts/ensure-system-deps.sh` as root (installs docker.io), or `apt-get install docker.io`.\n',
    )
  }
  // Short path: the socket path must fit the unix socket length limit.
  const dir = await mkdtemp('/tmp/wharf-engine-')
  const r = await run('sh', [script, 'start', dir], {
    timeoutMs: 90_000,
    ...(opts.registryMirror ? { env: { DOCKER_ENGINE_REGISTRY_MIRROR: opts.registryMirror } } : {}),
  })
  if (r.code !== 0) {
    await run('sh', [script, 'stop', dir], { timeoutMs: 60_000 }).catch(() => undefined)
    throw new Error(`cannot start the private docker engine:\n${describeResult(r)}`)
  }
  const m = /^DOCKER_HOST=(\S+)$/m.exec(r.stdout)
  if (!m?.[1]) throw new Error(`docker-engine.sh printed no DOCKER_HOST:\n${describeResult(r)}`)
  const dockerHost = m[1]
  const config = path.join(dir, 'client-config')
  await mkdir(config, { recursive: true })
  const env = { DOCKER_HOST: dockerHost, DOCKER_CONFIG: config }
  let stopped = false
  // Last resort if the test process exits without calling stop(): the engine
  // runs in its own session and would otherwise outlive the test.
  const onExit = () => {
    if (stopped) return
    spawnSync('sh', [script, 'stop', dir], { stdio: 'ignore', timeout: 30_000 })
    if (process.env.WHARF_E2E_KEEP !== '1') rmSync(dir, { recursive: true, force: true })
  }
  process.once('exit', onExit)
  const stop = async () => {
    if (stopped) return
    stopped = true
    process.off('exit', onExit)
    const s = await run('sh', [script, 'stop', dir], { timeoutMs: 60_000 })
    if (s.code !== 0) process.stderr.write(`docker-engine stop failed:\n${describeResult(s)}\n`)
    if (process.env.WHARF_E2E_KEEP !== '1') await rm(dir, { recursive: true, force: true })
  }
  return {
    dockerHost,
    env,
    dir,
    docker: (args, opts = {}) => run('docker', args, { ...opts, env: { ...env, ...opts.env } }),
    stop,
  }
}
