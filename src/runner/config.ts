/**
 * `wharf runner` configuration: a YAML (or JSON) file with one or more runners, and flags that
 * override it. The minimal start needs no file:
 *
 *   wharf runner --url http://wharf:5000 --token glrt-… --executor docker
 *
 * File schema (snake_case, as in gitlab-runner's config.toml; every key optional unless noted):
 *
 * ```yaml
 * concurrent: 1              # jobs this process runs at once, over all runners
 * check_interval: 3          # seconds between job requests when the server answers at once
 * shutdown_timeout: 30       # seconds running jobs get to finish after SIGINT/SIGTERM
 * log_level: info            # fatal|error|warn|info|debug|trace
 * runners:                   # at least one (or --url/--token)
 *   - name: build-box        # shown in logs and traces (default: the host name)
 *     url: http://wharf:5000 # required: Wharf as this process reaches it
 *     token: glrt-…          # required: the runner authentication token
 *     executor: docker       # required: shell | docker
 *     limit: 0               # jobs at once for this runner (0: up to `concurrent`)
 *     builds_dir: ./builds   # per-job directories are created below it
 *     cache_dir: ./cache     # local cache archives (<project>/<key>/cache.zip)
 *     clone_url: http://172.18.0.1:5000   # Wharf as job containers reach it (CI_SERVER_URL, CI_REPOSITORY_URL…)
 *     tags: [docker, linux]  # informational: tags are set when the runner is created on the server
 *     environment: [KEY=value]            # extra job variables (e.g. DOCKER_AUTH_CONFIG=…)
 *     output_limit: 4096     # KiB of job log kept and sent; the rest is dropped with a notice
 *     after_script_timeout: 300           # seconds (the `after_script` step's own timeout)
 *     shell: bash            # shell executor: bash | sh
 *     docker:                # docker executor
 *       host: unix:///var/run/docker.sock # default: DOCKER_HOST, then the local socket
 *       image: busybox:latest             # the image of jobs that name none
 *       pull_policy: [always]             # the default policy list (fallbacks in order)
 *       allowed_pull_policies: [always, if-not-present, never]  # what a job's pull_policy may ask for
 *       network_mode: ""                  # "": a network per job (services by alias); "host"; or a network name
 *       bind_docker_socket: false         # bind the engine's socket at /var/run/docker.sock in jobs
 *       privileged: false                 # job containers (and services, unless services_privileged says otherwise)
 *       cap_add: []                       # job containers: capabilities added ("NET_ADMIN", "ALL")
 *       cap_drop: []                      # job containers: capabilities dropped
 *       security_opt: []                  # job containers: "seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined", "no-new-privileges", "label=…"
 *       services_privileged: false        # service containers (default: `privileged`)
 *       services_cap_add: []              # service containers, as cap_add (e.g. docker:dind without --privileged)
 *       services_cap_drop: []
 *       services_security_opt: []
 *       volumes: []                       # extra binds in job and service containers, "host:container[:ro]"
 *       extra_hosts: []                   # "name:ip"
 *       wait_for_services_timeout: 30     # seconds to wait for service ports (0: don't wait)
 *       auth_config: ''                   # DOCKER_AUTH_CONFIG for image pulls (JSON string)
 *       registry_mirror: auto             # Docker Hub images through Wharf's cache: auto (the mirror the
 *                                         # server announces, if any), off, or a mirror URL (mirror.ts)
 * ```
 *
 * A bad setting stops the runner with one line naming it ({@link RunnerConfigError}).
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { PULL_POLICIES } from './protocol.ts'

export const EXECUTORS = ['shell', 'docker'] as const
export type ExecutorKind = (typeof EXECUTORS)[number]
export const SHELLS = ['bash', 'sh'] as const
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const
export type PullPolicy = (typeof PULL_POLICIES)[number]

export const DEFAULTS = {
  concurrent: 1,
  checkIntervalSeconds: 3,
  shutdownTimeoutSeconds: 30,
  /** KiB, as gitlab-runner's output_limit (4 MiB). */
  outputLimitKiB: 4096,
  /** gitlab-runner's default after_script timeout (5 minutes). */
  afterScriptTimeoutSeconds: 300,
  dockerImage: 'busybox:latest',
  /** gitlab-runner waits 30 s for service ports by default. */
  waitForServicesSeconds: 30,
} as const

export interface DockerConfig {
  host: string | undefined
  image: string
  pullPolicy: PullPolicy[]
  allowedPullPolicies: PullPolicy[]
  networkMode: string
  bindDockerSocket: boolean
  privileged: boolean
  capAdd: string[]
  capDrop: string[]
  securityOpt: string[]
  servicesPrivileged: boolean
  servicesCapAdd: string[]
  servicesCapDrop: string[]
  servicesSecurityOpt: string[]
  volumes: string[]
  extraHosts: string[]
  waitForServicesSeconds: number
  authConfig: string | undefined
  /** `auto`, `off` or an http(s) URL (see mirror.ts). */
  registryMirror: string
}

export interface RunnerEntry {
  name: string
  url: string
  token: string
  executor: ExecutorKind
  limit: number
  buildsDir: string
  cacheDir: string
  cloneUrl: string | undefined
  tags: string[]
  environment: string[]
  outputLimitBytes: number
  afterScriptTimeoutSeconds: number
  shell: (typeof SHELLS)[number]
  docker: DockerConfig
}

export interface RunnerConfig {
  concurrent: number
  checkIntervalSeconds: number
  shutdownTimeoutSeconds: number
  logLevel: (typeof LOG_LEVELS)[number]
  runners: RunnerEntry[]
}

/** Flags of `wharf runner` (strings as parseArgs gives them; booleans for switches). */
export interface RunnerFlags {
  config?: string
  url?: string
  token?: string
  executor?: string
  name?: string
  concurrent?: string
  limit?: string
  'builds-dir'?: string
  'cache-dir'?: string
  'clone-url'?: string
  tags?: string
  shell?: string
  'docker-host'?: string
  'docker-image'?: string
  'pull-policy'?: string
  'network-mode'?: string
  'bind-docker-socket'?: boolean
  privileged?: boolean
  'registry-mirror'?: string
  'log-level'?: string
  'shutdown-timeout'?: string
  'check-interval'?: string
}

export class RunnerConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'RunnerConfigError'
  }
}

type Obj = Record<string, unknown>

const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v)

const GLOBAL_KEYS = ['concurrent', 'check_interval', 'shutdown_timeout', 'log_level', 'runners']
const RUNNER_KEYS = [
  'name', 'url', 'token', 'executor', 'limit', 'builds_dir', 'cache_dir', 'clone_url', 'tags', 'environment',
  'output_limit', 'after_script_timeout', 'shell', 'docker',
]
const DOCKER_KEYS = [
  'host', 'image', 'pull_policy', 'allowed_pull_policies', 'network_mode', 'bind_docker_socket', 'privileged',
  'cap_add', 'cap_drop', 'security_opt', 'services_privileged', 'services_cap_add', 'services_cap_drop', 'services_security_opt',
  'volumes', 'extra_hosts', 'wait_for_services_timeout', 'auth_config', 'registry_mirror',
]

/** Reads one setting, tracking where it came from for the error message. */
class Reader {
  readonly origin: string
  constructor(origin: string) {
    this.origin = origin
  }

  fail(key: string, message: string): never {
    throw new RunnerConfigError(`invalid runner setting ${key} (${this.origin}): ${message}`)
  }

  unknownKeys(key: string, obj: Obj, known: string[]): void {
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) this.fail(key ? `${key}.${k}` : k, `unknown setting (known: ${known.join(', ')})`)
    }
  }

  string(key: string, v: unknown): string | undefined {
    if (v === undefined || v === null) return undefined
    if (typeof v === 'number' || typeof v === 'boolean') return String(v)
    if (typeof v !== 'string') this.fail(key, `expected a string, got ${describe(v)}`)
    return v
  }

  int(key: string, v: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (v === undefined || v === null) return undefined
    const n = typeof v === 'string' && /^\s*-?\d+\s*$/.test(v) ? Number(v) : v
    if (typeof n !== 'number' || !Number.isInteger(n)) this.fail(key, `expected an integer, got ${describe(v)}`)
    if (n < min || n > max) this.fail(key, `must be between ${min} and ${max}, got ${n}`)
    return n
  }

  bool(key: string, v: unknown): boolean | undefined {
    if (v === undefined || v === null) return undefined
    if (v === 'true') return true
    if (v === 'false') return false
    if (typeof v !== 'boolean') this.fail(key, `expected true or false, got ${describe(v)}`)
    return v
  }

  oneOf<T extends string>(key: string, v: unknown, allowed: readonly T[]): T | undefined {
    const s = this.string(key, v)
    if (s === undefined) return undefined
    if (!(allowed as readonly string[]).includes(s)) this.fail(key, `must be one of ${allowed.join(', ')}, got ${JSON.stringify(s)}`)
    return s as T
  }

  /** A list, from a YAML array or a comma-separated string. */
  list(key: string, v: unknown): string[] | undefined {
    if (v === undefined || v === null) return undefined
    if (typeof v === 'string') return v.split(',').map((s) => s.trim()).filter(Boolean)
    if (!Array.isArray(v)) this.fail(key, `expected a list, got ${describe(v)}`)
    return v.map((x, i) => this.string(`${key}[${i}]`, x) ?? '')
  }

  url(key: string, v: unknown): string | undefined {
    const s = this.string(key, v)
    if (s === undefined) return undefined
    let u: URL
    try {
      u = new URL(s)
    } catch {
      this.fail(key, `not a URL: ${JSON.stringify(s)}`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') this.fail(key, `must be an http:// or https:// URL, got ${JSON.stringify(s)}`)
    if (u.username || u.password) this.fail(key, 'must not carry credentials')
    return s.replace(/\/+$/, '')
  }
}

function describe(v: unknown): string {
  if (Array.isArray(v)) return 'a list'
  if (isObj(v)) return 'a mapping'
  return JSON.stringify(v)
}

function pullPolicies(r: Reader, key: string, v: unknown): PullPolicy[] | undefined {
  const list = r.list(key, v)
  if (!list) return undefined
  if (list.length === 0) r.fail(key, 'must name at least one policy')
  for (const [i, p] of list.entries()) r.oneOf(`${key}[${i}]`, p, PULL_POLICIES)
  return list as PullPolicy[]
}

/** Linux capability names as the engine takes them: `ALL`, `NET_ADMIN` or `CAP_NET_ADMIN`. */
function capabilities(r: Reader, key: string, v: unknown): string[] {
  const list = r.list(key, v) ?? []
  list.forEach((c, i) => {
    if (!/^(CAP_)?[A-Z][A-Z0-9_]*$/i.test(c)) r.fail(`${key}[${i}]`, `expected a capability name like NET_ADMIN or ALL, got ${JSON.stringify(c)}`)
  })
  return list.map((c) => c.toUpperCase())
}

/** `--security-opt` values the engine understands, plus the docker CLI's `systempaths=unconfined`. */
function securityOptions(r: Reader, key: string, v: unknown): string[] {
  const list = r.list(key, v) ?? []
  list.forEach((o, i) => {
    const ok = /^no-new-privileges([=:](true|false))?$/.test(o) || /^(seccomp|apparmor|label)[=:].+$/.test(o) || /^systempaths[=:]unconfined$/.test(o)
    if (!ok) {
      r.fail(`${key}[${i}]`, `expected seccomp=…, apparmor=…, label=…, no-new-privileges or systempaths=unconfined, got ${JSON.stringify(o)}`)
    }
  })
  return list
}

function runnerEntry(r: Reader, key: string, raw: Obj, flags: RunnerFlags, flagReader: Reader, base: string): RunnerEntry {
  const k = (name: string) => (key ? `${key}.${name}` : name)
  r.unknownKeys(key, raw, RUNNER_KEYS)
  const rawDocker: Obj = raw.docker === undefined || raw.docker === null ? {} : isObj(raw.docker) ? raw.docker : r.fail(key ? `${key}.docker` : 'docker', `expected a mapping, got ${describe(raw.docker)}`)
  r.unknownKeys(k('docker'), rawDocker, DOCKER_KEYS)
  const f = flagReader

  const url = f.url('--url', flags.url) ?? r.url(k('url'), raw.url)
  if (!url) r.fail(k('url'), 'is required (--url or `url:` in the config file)')
  const token = f.string('--token', flags.token) ?? r.string(k('token'), raw.token)
  if (!token) r.fail(k('token'), 'is required (--token or `token:` in the config file)')
  const executor = f.oneOf('--executor', flags.executor, EXECUTORS) ?? r.oneOf(k('executor'), raw.executor, EXECUTORS)
  if (!executor) r.fail(k('executor'), `is required: ${EXECUTORS.join(' or ')} (--executor or \`executor:\`)`)

  const dk = (name: string) => (key ? `${key}.docker.${name}` : `docker.${name}`)
  const volumes = r.list(dk('volumes'), rawDocker.volumes) ?? []
  volumes.forEach((v, i) => {
    if (!/^[^:]+:\/[^:]*(:(ro|rw))?$/.test(v)) r.fail(`${dk('volumes')}[${i}]`, `expected "host-path:/container-path[:ro|rw]", got ${JSON.stringify(v)}`)
  })
  const environment = r.list(k('environment'), raw.environment) ?? []
  environment.forEach((e, i) => {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(e)) r.fail(`${k('environment')}[${i}]`, `expected "NAME=value", got ${JSON.stringify(e.split('=')[0])}`)
  })
  const dockerHost = f.string('--docker-host', flags['docker-host']) ?? r.string(dk('host'), rawDocker.host)
  if (dockerHost !== undefined && !/^(unix|tcp|http|https|npipe):\/\//.test(dockerHost)) {
    r.fail(dk('host'), `expected unix://PATH or tcp://HOST:PORT, got ${JSON.stringify(dockerHost)}`)
  }
  const authConfig = r.string(dk('auth_config'), rawDocker.auth_config)
  if (authConfig) {
    try {
      if (!isObj(JSON.parse(authConfig))) throw new Error('not an object')
    } catch {
      r.fail(dk('auth_config'), 'must be a JSON object like {"auths": {...}}')
    }
  }

  const mirrorSetting = (rd: Reader, key: string, v: unknown) => {
    const s = rd.string(key, v)?.trim()
    if (s === undefined || s === 'auto' || s === 'off') return s
    if (!/^https?:\/\//i.test(s)) rd.fail(key, `expected auto, off or an http:// or https:// URL, got ${JSON.stringify(s)}`)
    return rd.url(key, s)
  }
  const registryMirror = mirrorSetting(f, '--registry-mirror', flags['registry-mirror']) ?? mirrorSetting(r, dk('registry_mirror'), rawDocker.registry_mirror) ?? 'auto'
  const privileged = flags.privileged ?? r.bool(dk('privileged'), rawDocker.privileged) ?? false
  const docker: DockerConfig = {
    host: dockerHost,
    image: f.string('--docker-image', flags['docker-image']) ?? r.string(dk('image'), rawDocker.image) ?? DEFAULTS.dockerImage,
    pullPolicy: pullPolicies(f, '--pull-policy', flags['pull-policy']) ?? pullPolicies(r, dk('pull_policy'), rawDocker.pull_policy) ?? ['always'],
    allowedPullPolicies: pullPolicies(r, dk('allowed_pull_policies'), rawDocker.allowed_pull_policies) ?? [...PULL_POLICIES],
    networkMode: f.string('--network-mode', flags['network-mode']) ?? r.string(dk('network_mode'), rawDocker.network_mode) ?? '',
    bindDockerSocket: flags['bind-docker-socket'] ?? r.bool(dk('bind_docker_socket'), rawDocker.bind_docker_socket) ?? false,
    privileged,
    capAdd: capabilities(r, dk('cap_add'), rawDocker.cap_add),
    capDrop: capabilities(r, dk('cap_drop'), rawDocker.cap_drop),
    securityOpt: securityOptions(r, dk('security_opt'), rawDocker.security_opt),
    // As gitlab-runner: services run privileged when jobs do, unless services_privileged says otherwise.
    servicesPrivileged: r.bool(dk('services_privileged'), rawDocker.services_privileged) ?? privileged,
    servicesCapAdd: capabilities(r, dk('services_cap_add'), rawDocker.services_cap_add),
    servicesCapDrop: capabilities(r, dk('services_cap_drop'), rawDocker.services_cap_drop),
    servicesSecurityOpt: securityOptions(r, dk('services_security_opt'), rawDocker.services_security_opt),
    volumes,
    extraHosts: r.list(dk('extra_hosts'), rawDocker.extra_hosts) ?? [],
    waitForServicesSeconds: r.int(dk('wait_for_services_timeout'), rawDocker.wait_for_services_timeout, 0, 3600) ?? DEFAULTS.waitForServicesSeconds,
    authConfig,
    registryMirror,
  }
  const dir = (v: string | undefined) => (v === undefined ? undefined : resolve(base, v))
  return {
    name: f.string('--name', flags.name) ?? r.string(k('name'), raw.name) ?? hostname(),
    url,
    token,
    executor,
    limit: f.int('--limit', flags.limit, 0) ?? r.int(k('limit'), raw.limit, 0) ?? 0,
    buildsDir: resolve(flags['builds-dir'] ?? dir(r.string(k('builds_dir'), raw.builds_dir)) ?? 'builds'),
    cacheDir: resolve(flags['cache-dir'] ?? dir(r.string(k('cache_dir'), raw.cache_dir)) ?? 'cache'),
    cloneUrl: f.url('--clone-url', flags['clone-url']) ?? r.url(k('clone_url'), raw.clone_url),
    tags: f.list('--tags', flags.tags) ?? r.list(k('tags'), raw.tags) ?? [],
    environment,
    outputLimitBytes: (r.int(k('output_limit'), raw.output_limit, 1, 1 << 20) ?? DEFAULTS.outputLimitKiB) * 1024,
    afterScriptTimeoutSeconds: r.int(k('after_script_timeout'), raw.after_script_timeout, 1) ?? DEFAULTS.afterScriptTimeoutSeconds,
    shell: f.oneOf('--shell', flags.shell, SHELLS) ?? r.oneOf(k('shell'), raw.shell, SHELLS) ?? 'bash',
    docker,
  }
}

/**
 * Builds the runner configuration from the flags and the optional file (`--config`). Runner flags
 * (--url, --token, --executor, …) override that setting in every runner of the file; with no
 * runner in the file they define the only one. Throws {@link RunnerConfigError}.
 */
export function loadRunnerConfig(flags: RunnerFlags, env: Record<string, string | undefined> = process.env): RunnerConfig {
  const flagReader = new Reader('flags')
  let raw: Obj = {}
  let fileReader = new Reader('flags')
  let base = process.cwd()
  const file = flags.config ?? env.WHARF_RUNNER_CONFIG
  if (file) {
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (e) {
      throw new RunnerConfigError(`cannot read runner config file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`)
    }
    let parsed: unknown
    try {
      parsed = parseYaml(text)
    } catch (e) {
      throw new RunnerConfigError(`runner config file ${file} is not valid YAML: ${(e as Error).message.split('\n')[0]}`)
    }
    if (parsed !== null && parsed !== undefined && !isObj(parsed)) throw new RunnerConfigError(`runner config file ${file}: expected a mapping at the top level`)
    raw = (parsed as Obj | null) ?? {}
    fileReader = new Reader(`file ${file}`)
    base = resolve(file, '..')
  }
  fileReader.unknownKeys('', raw, GLOBAL_KEYS)
  const rawList = raw.runners ?? []
  if (!Array.isArray(rawList)) fileReader.fail('runners', `expected a list, got ${describe(rawList)}`)
  const rawRunners = rawList as unknown[]
  const entries: Obj[] = rawRunners.map((x, i) => (isObj(x) ? x : fileReader.fail(`runners[${i}]`, `expected a mapping, got ${describe(x)}`)))
  if (entries.length === 0) entries.push({})
  const runners = entries.map((e, i) => runnerEntry(rawRunners.length ? fileReader : flagReader, rawRunners.length ? `runners[${i}]` : '', e, flags, flagReader, base))
  const tokens = new Set<string>()
  runners.forEach((r, i) => {
    if (tokens.has(r.token)) fileReader.fail(`runners[${i}].token`, 'the same token is configured twice')
    tokens.add(r.token)
  })
  return {
    concurrent: flagReader.int('--concurrent', flags.concurrent, 1, 1000) ?? fileReader.int('concurrent', raw.concurrent, 1, 1000) ?? DEFAULTS.concurrent,
    checkIntervalSeconds: flagReader.int('--check-interval', flags['check-interval'], 0, 3600) ?? fileReader.int('check_interval', raw.check_interval, 0, 3600) ?? DEFAULTS.checkIntervalSeconds,
    shutdownTimeoutSeconds:
      flagReader.int('--shutdown-timeout', flags['shutdown-timeout'], 0, 86400) ?? fileReader.int('shutdown_timeout', raw.shutdown_timeout, 0, 86400) ?? DEFAULTS.shutdownTimeoutSeconds,
    logLevel: flagReader.oneOf('--log-level', flags['log-level'], LOG_LEVELS) ?? fileReader.oneOf('log_level', raw.log_level, LOG_LEVELS) ?? 'info',
    runners,
  }
}
