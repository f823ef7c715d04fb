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
 * Flags are laid over the file and the result is checked against the TypeBox schema in
 * config-schema.ts; a bad setting stops the runner with one line naming it and where it came
 * from ({@link RunnerConfigError}).
 */
import { readFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { resolve } from 'node:path'
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import { EXECUTORS, LOG_LEVELS, RunnerFileSchema, SHELLS, type RunnerFile, type RunnerFileEntry } from './config-schema.ts'
import { PULL_POLICIES } from './protocol.ts'

export { EXECUTORS, LOG_LEVELS, SHELLS }
export type ExecutorKind = (typeof EXECUTORS)[number]
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

/** Runner flags and the setting each overrides in every runner of the file. */
const RUNNER_FLAGS = {
  url: 'url',
  token: 'token',
  executor: 'executor',
  name: 'name',
  limit: 'limit',
  'builds-dir': 'builds_dir',
  'cache-dir': 'cache_dir',
  'clone-url': 'clone_url',
  tags: 'tags',
  shell: 'shell',
  'docker-host': 'docker.host',
  'docker-image': 'docker.image',
  'pull-policy': 'docker.pull_policy',
  'network-mode': 'docker.network_mode',
  'bind-docker-socket': 'docker.bind_docker_socket',
  privileged: 'docker.privileged',
  'registry-mirror': 'docker.registry_mirror',
} as const satisfies Partial<Record<keyof RunnerFlags, string>>

const GLOBAL_FLAGS = {
  concurrent: 'concurrent',
  'check-interval': 'check_interval',
  'shutdown-timeout': 'shutdown_timeout',
  'log-level': 'log_level',
} as const satisfies Partial<Record<keyof RunnerFlags, string>>

/** Runner settings that take a list also take a comma-separated string (every list flag is one). */
const LISTS = new Set([
  'tags',
  'environment',
  'docker.pull_policy',
  'docker.allowed_pull_policies',
  'docker.cap_add',
  'docker.cap_drop',
  'docker.security_opt',
  'docker.services_cap_add',
  'docker.services_cap_drop',
  'docker.services_security_opt',
  'docker.volumes',
  'docker.extra_hosts',
])

/** Settings whose values are never echoed in an error (the token, registry credentials, job variables). */
const SECRET = /(^|\.)(token|auth_config|environment)(\[\d+\])?$/

function describe(v: unknown): string {
  if (Array.isArray(v)) return v.length ? 'a list' : 'an empty list'
  if (isObj(v)) return 'a mapping'
  return JSON.stringify(v)
}

/** YAML's empty value (`key:`) means "not set", as a missing key. */
function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls)
  if (!isObj(v)) return v
  return Object.fromEntries(Object.entries(v).flatMap(([k, x]) => (x === null || x === undefined ? [] : [[k, dropNulls(x)]])))
}

function getPath(o: Obj, path: string): unknown {
  return path.split('.').reduce<unknown>((cur, k) => (isObj(cur) ? cur[k] : undefined), o)
}

function setPath(o: Obj, path: string, value: unknown): void {
  const keys = path.split('.')
  let cur = o
  for (const k of keys.slice(0, -1)) {
    if (!isObj(cur[k])) cur[k] = {}
    cur = cur[k] as Obj
  }
  cur[keys.at(-1)!] = value
}

/** `/runners/0/docker/pull_policy/1` → `runners[0].docker.pull_policy[1]`. */
function settingKey(pointer: string): string {
  return pointer
    .split('/')
    .filter(Boolean)
    .reduce((key, seg) => (/^\d+$/.test(seg) ? `${key}[${seg}]` : key ? `${key}.${seg}` : seg), '')
}

/**
 * Builds the runner configuration from the flags and the optional file (`--config`). Runner flags
 * (--url, --token, --executor, …) override that setting in every runner of the file; with no
 * runner in the file they define the only one. Throws {@link RunnerConfigError}.
 */
export function loadRunnerConfig(flags: RunnerFlags, env: Record<string, string | undefined> = process.env): RunnerConfig {
  let raw: Obj = {}
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
    if (parsed !== null && parsed !== undefined && !isObj(parsed))
      throw new RunnerConfigError(`runner config file ${file}: expected a mapping at the top level`)
    raw = (dropNulls(parsed) as Obj | undefined) ?? {}
    base = resolve(file, '..')
  }
  const fileOrigin = file ? `file ${file}` : 'flags'
  const fail = (key: string, origin: string, message: string): never => {
    throw new RunnerConfigError(`invalid runner setting ${key} (${origin}): ${message}`)
  }

  // Flags over the file; where each setting came from is kept for the error message.
  const origins = new Map<string, string>()
  if (raw.runners !== undefined && !Array.isArray(raw.runners))
    fail('runners', fileOrigin, `expected a list of runners, got ${describe(raw.runners)}`)
  const fromFlagsOnly = raw.runners === undefined || (raw.runners as unknown[]).length === 0
  const runners: unknown[] = fromFlagsOnly ? [{}] : (raw.runners as unknown[])
  const tree: Obj = { ...raw, runners }
  for (const [flag, path] of Object.entries(GLOBAL_FLAGS)) {
    const v = flags[flag as keyof typeof GLOBAL_FLAGS]
    if (v === undefined) continue
    tree[path] = v
    origins.set(path, `--${flag}`)
  }
  runners.forEach((entry, i) => {
    if (!isObj(entry)) return
    for (const [flag, path] of Object.entries(RUNNER_FLAGS)) {
      const v = flags[flag as keyof typeof RUNNER_FLAGS]
      if (v === undefined) continue
      setPath(entry, path, v)
      origins.set(`runners[${i}].${path}`, `--${flag}`)
    }
    for (const path of LISTS) {
      const v = getPath(entry, path)
      if (typeof v === 'string')
        setPath(
          entry,
          path,
          v
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean),
        )
    }
  })

  // Strings to integers and booleans, numbers to strings, as the schema asks.
  const converted = Value.Convert(RunnerFileSchema, tree)
  const error = Value.Errors(RunnerFileSchema, converted).First()
  if (error) {
    const key = settingKey(error.path)
    const origin = [...origins].find(([k]) => key === k || key.startsWith(`${k}.`) || key.startsWith(`${k}[`))?.[1] ?? fileOrigin
    fail(fromFlagsOnly ? key.replace(/^runners\[0\]\./, '') : key, origin, errorMessage(error, key))
  }
  const config = converted as RunnerFile

  const tokens = new Set<string>()
  config.runners.forEach((r, i) => {
    if (tokens.has(r.token)) fail(`runners[${i}].token`, fileOrigin, 'the same token is configured twice')
    tokens.add(r.token)
    if (r.docker?.auth_config) {
      let ok = false
      try {
        ok = isObj(JSON.parse(r.docker.auth_config))
      } catch {
        // not JSON: reported below
      }
      if (!ok)
        fail(
          fromFlagsOnly ? 'docker.auth_config' : `runners[${i}].docker.auth_config`,
          fileOrigin,
          'must be a JSON object like {"auths": {...}}',
        )
    }
  })
  // Relative directories are relative to the file they are written in, or to the working directory for flags.
  const dir = (i: number, key: 'builds_dir' | 'cache_dir', v: string | undefined, fallback: string) =>
    v === undefined ? resolve(fallback) : resolve(origins.has(`runners[${i}].${key}`) ? process.cwd() : base, v)
  return {
    concurrent: config.concurrent ?? DEFAULTS.concurrent,
    checkIntervalSeconds: config.check_interval ?? DEFAULTS.checkIntervalSeconds,
    shutdownTimeoutSeconds: config.shutdown_timeout ?? DEFAULTS.shutdownTimeoutSeconds,
    logLevel: config.log_level ?? 'info',
    runners: config.runners.map((r, i) => runnerEntry(r, (key, v, fallback) => dir(i, key, v, fallback))),
  }
}

function errorMessage(error: ValueError, key: string): string {
  const described = (error.schema as { description?: string }).description
  if (error.type === ValueErrorType.ObjectRequiredProperty) {
    const name = key.split('.').at(-1)!
    const flag = Object.entries(RUNNER_FLAGS).find(([, path]) => path === name)?.[0]
    return `is required (${flag ? `--${flag} or ` : ''}\`${name}:\` in the config file)${described ? `: ${described}` : ''}`
  }
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const known = Object.keys((error.schema as { properties?: Obj }).properties ?? {})
    return `unknown setting${known.length ? ` (known: ${known.join(', ')})` : ''}`
  }
  return `expected ${described ?? error.message.toLowerCase()}, got ${SECRET.test(key) ? '(hidden)' : describe(error.value)}`
}

function runnerEntry(
  r: RunnerFileEntry,
  dir: (key: 'builds_dir' | 'cache_dir', v: string | undefined, fallback: string) => string,
): RunnerEntry {
  const d = r.docker ?? {}
  const privileged = d.privileged ?? false
  const caps = (list: string[] | undefined) => (list ?? []).map((c) => c.toUpperCase())
  const mirror = d.registry_mirror ?? 'auto'
  return {
    name: r.name ?? hostname(),
    url: r.url.replace(/\/+$/, ''),
    token: r.token,
    executor: r.executor,
    limit: r.limit ?? 0,
    buildsDir: dir('builds_dir', r.builds_dir, 'builds'),
    cacheDir: dir('cache_dir', r.cache_dir, 'cache'),
    cloneUrl: r.clone_url?.replace(/\/+$/, ''),
    tags: r.tags ?? [],
    environment: r.environment ?? [],
    outputLimitBytes: (r.output_limit ?? DEFAULTS.outputLimitKiB) * 1024,
    afterScriptTimeoutSeconds: r.after_script_timeout ?? DEFAULTS.afterScriptTimeoutSeconds,
    shell: r.shell ?? 'bash',
    docker: {
      host: d.host,
      image: d.image ?? DEFAULTS.dockerImage,
      pullPolicy: d.pull_policy ?? ['always'],
      allowedPullPolicies: d.allowed_pull_policies ?? [...PULL_POLICIES],
      networkMode: d.network_mode ?? '',
      bindDockerSocket: d.bind_docker_socket ?? false,
      privileged,
      capAdd: caps(d.cap_add),
      capDrop: caps(d.cap_drop),
      securityOpt: d.security_opt ?? [],
      // As gitlab-runner: services run privileged when jobs do, unless services_privileged says otherwise.
      servicesPrivileged: d.services_privileged ?? privileged,
      servicesCapAdd: caps(d.services_cap_add),
      servicesCapDrop: caps(d.services_cap_drop),
      servicesSecurityOpt: d.services_security_opt ?? [],
      volumes: d.volumes ?? [],
      extraHosts: d.extra_hosts ?? [],
      waitForServicesSeconds: d.wait_for_services_timeout ?? DEFAULTS.waitForServicesSeconds,
      authConfig: d.auth_config,
      registryMirror: mirror === 'auto' || mirror === 'off' ? mirror : mirror.replace(/\/+$/, ''),
    },
  }
}
