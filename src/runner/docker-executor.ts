/**
 * The docker executor, on the Docker Engine API (dockerode, `DOCKER_HOST` or `docker.host`):
 *
 * - pulls the job image and the service images per pull policy (`always`, `if-not-present`,
 *   `never`; a list is tried in order), with credentials from docker-auth.ts (Wharf's registry
 *   and its dependency proxy with the job token from the payload, others through
 *   DOCKER_AUTH_CONFIG); Docker Hub images through Wharf's registry mirror when there is one
 *   (`registry_mirror`, mirror.ts), and the job log says where each image came from;
 * - creates a network for the job (unless `network_mode` names one, or `host`), starts each
 *   service on it under its aliases (explicit and name-derived), with the `services_*` privileges
 *   and the `volumes`, and waits until one of its TCP ports answers (`wait_for_services_timeout`;
 *   the service's HEALTHCHECK_TCP_PORT variable names the one to wait for); a `docker:*dind`
 *   service's daemon gets the mirror as `--registry-mirror`;
 * - runs each stage script in a fresh container of the job image (its entrypoint, or the job's
 *   `entrypoint` override; bash if the image has it, else sh), with the job directory bound at
 *   `/builds` and, with `bind_docker_socket`, the engine's socket at /var/run/docker.sock;
 * - kills the container on cancel or timeout, and removes containers and network at the end.
 *
 * The checkout lives in the runner's builds_dir, bound into the containers: the engine must run
 * on the runner's host (the usual setup; a remote engine would need a volume and `docker cp`).
 */
import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import path from 'node:path'
import { PassThrough } from 'node:stream'
import Docker from 'dockerode'
import type { DockerConfig, PullPolicy, RunnerEntry } from './config.ts'
import {
  authForImage,
  credentialsEntries,
  homeDockerConfig,
  imageRegistry,
  mergeAuthSources,
  parseDockerAuthConfig,
  type AuthEntry,
  type RegistryAuth,
} from './docker-auth.ts'
import { PrepareError, type Executor, type JobPaths, type PreparedJob, type StageResult } from './executor.ts'
import { serviceAliases, withDefaultTag } from './image-names.ts'
import { containerMirrorUrl, dindCommand, isDindImage, mirroredName, resolveMirror } from './mirror.ts'
import type { Image, JobVariable } from './protocol.ts'
import { detectShellCommand, expandValue, isExportableName, variable, variableValue } from './script.ts'
import type { JobTrace } from './trace.ts'

/** Where builds are seen inside job containers. */
export const CONTAINER_BUILDS_DIR = '/builds'
const SOCKET_IN_CONTAINER = '/var/run/docker.sock'
/** Stop signal grace before the engine SIGKILLs a stage container. */
const STOP_GRACE_SECONDS = 3
/** How often a service port is probed while waiting. */
const SERVICE_PROBE_MS = 250

/** dockerode options from a DOCKER_HOST-style URL. */
export function dockerOptions(host: string | undefined): Docker.DockerOptions {
  const h = host ?? process.env.DOCKER_HOST
  if (!h) return { socketPath: '/var/run/docker.sock' }
  if (h.startsWith('unix://')) return { socketPath: h.slice('unix://'.length) }
  const u = new URL(h.replace(/^tcp:/, 'http:'))
  return { protocol: u.protocol === 'https:' ? 'https' : 'http', host: u.hostname, port: u.port || (u.protocol === 'https:' ? 2376 : 2375) }
}

/**
 * The privilege fields of a HostConfig. `systempaths=unconfined` is the docker CLI's: the engine
 * API has no such option, only empty MaskedPaths/ReadonlyPaths, which is what the CLI sends.
 */
export function privilegeHostConfig(
  privileged: boolean,
  capAdd: readonly string[],
  capDrop: readonly string[],
  securityOpt: readonly string[],
): Docker.HostConfig {
  const opts = securityOpt.filter((o) => !/^systempaths[=:]unconfined$/.test(o))
  return {
    Privileged: privileged,
    ...(capAdd.length ? { CapAdd: [...capAdd] } : {}),
    ...(capDrop.length ? { CapDrop: [...capDrop] } : {}),
    ...(opts.length ? { SecurityOpt: opts } : {}),
    ...(opts.length !== securityOpt.length ? { MaskedPaths: [], ReadonlyPaths: [] } : {}),
  }
}

/** The port named by a service's HEALTHCHECK_TCP_PORT variable (gitlab-runner's), if any. */
export function healthcheckPort(vars: readonly JobVariable[]): number | undefined {
  const v = variableValue(vars, 'HEALTHCHECK_TCP_PORT')?.trim()
  if (!v || !/^\d+$/.test(v)) return undefined
  const n = Number(v)
  return n > 0 && n < 65536 ? n : undefined
}

interface PullOutcome {
  id: string
  ms: number
}

/** Reads a pull's JSON progress stream; rejects with the engine's error message. */
function followPull(stream: NodeJS.ReadableStream, onStatus: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    let buf = ''
    let failed: string | undefined
    stream.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8')
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const line = buf.slice(0, nl).trim()
        buf = buf.slice(nl + 1)
        if (!line) continue
        try {
          const ev = JSON.parse(line) as { status?: string; id?: string; error?: string; errorDetail?: { message?: string } }
          if (ev.error || ev.errorDetail) failed = ev.errorDetail?.message ?? ev.error
          else if (ev.status && !ev.id) onStatus(ev.status)
        } catch {
          /* not JSON */
        }
      }
    })
    stream.on('end', () => (failed ? reject(new Error(failed)) : resolve()))
    stream.on('error', reject)
  })
}

export class DockerExecutor implements Executor {
  readonly kind = 'docker' as const
  readonly shell = 'bash'
  readonly #cfg: DockerConfig
  readonly #docker: Docker
  readonly #containers: string[] = []
  #network: Docker.Network | undefined
  #networkName = ''
  #image = ''
  #imageId = ''
  #entrypoint: string[] | undefined
  #services: { name: string; aliases: string[]; id: string }[] = []
  #prefix = ''
  /** Wharf's registry mirror for Docker Hub images, and the job's credentials for it. */
  #mirror: { url: URL; auth: RegistryAuth | undefined } | undefined

  constructor(runner: RunnerEntry, docker?: Docker) {
    this.#cfg = runner.docker
    this.#docker = docker ?? new Docker(dockerOptions(runner.docker.host))
  }

  paths(hostJobDir: string, projectPath: string): JobPaths {
    const hostProjectDir = path.join(hostJobDir, projectPath)
    const projectDir = path.posix.join(CONTAINER_BUILDS_DIR, projectPath)
    return {
      hostJobDir,
      hostProjectDir,
      hostTmpDir: `${hostProjectDir}.tmp`,
      buildsDir: CONTAINER_BUILDS_DIR,
      projectDir,
      tmpDir: `${projectDir}.tmp`,
    }
  }

  #socketPath(): string | undefined {
    const o = dockerOptions(this.#cfg.host)
    return o.socketPath
  }

  extraVariables(): JobVariable[] {
    const vars = [variable('CI_DISPOSABLE_ENVIRONMENT', 'true')]
    if (this.#cfg.bindDockerSocket) {
      if (this.#socketPath()) vars.push(variable('DOCKER_HOST', `unix://${SOCKET_IN_CONTAINER}`))
      else if (this.#cfg.host ?? process.env.DOCKER_HOST) vars.push(variable('DOCKER_HOST', (this.#cfg.host ?? process.env.DOCKER_HOST)!))
    }
    return vars
  }

  async #authEntries(job: PreparedJob): Promise<{ entries: AuthEntry[]; warnings: string[] }> {
    const warnings: string[] = []
    const sources: AuthEntry[][] = []
    const parse = async (json: string | undefined, source: string) => {
      if (!json) return
      try {
        sources.push(await parseDockerAuthConfig(json, source))
      } catch (e) {
        warnings.push(
          `Failed to resolve credentials from ${source}: ${(e as Error).message}. Credentials from this source will not be used.`,
        )
      }
    }
    await parse(job.vars('DOCKER_AUTH_CONFIG'), '$DOCKER_AUTH_CONFIG')
    await parse(this.#cfg.authConfig, 'runner docker.auth_config')
    const home = await homeDockerConfig()
    if (home) await parse(home.text, home.file)
    sources.push(credentialsEntries(job.job.credentials))
    return { entries: mergeAuthSources(sources), warnings }
  }

  #policies(image: Image, what: string): PullPolicy[] {
    const asked = image.pull_policy ?? []
    if (asked.length === 0) return this.#cfg.pullPolicy
    const bad = asked.filter((p) => !this.#cfg.allowedPullPolicies.includes(p))
    if (bad.length) {
      throw new PrepareError(
        `invalid pull policy for ${what}: pull_policy (${asked.join(', ')}) defined in GitLab pipeline config is not one of the allowed_pull_policies (${this.#cfg.allowedPullPolicies.join(', ')})`,
        'configuration_error',
      )
    }
    return asked
  }

  async #inspect(name: string): Promise<Docker.ImageInspectInfo | undefined> {
    try {
      return await this.#docker.getImage(name).inspect()
    } catch (e) {
      if ((e as { statusCode?: number }).statusCode === 404) return undefined
      throw e
    }
  }

  async #pull(name: string, policies: PullPolicy[], entries: AuthEntry[], trace: JobTrace, signal: AbortSignal): Promise<PullOutcome> {
    const started = performance.now()
    const errors: string[] = []
    for (const policy of policies) {
      if (signal.aborted) break
      try {
        if (policy === 'never' || policy === 'if-not-present') {
          const local = await this.#inspect(name)
          if (local) {
            trace.line(`Using locally found image version due to "${policy}" pull policy`)
            trace.line(`Using docker image ${local.Id} for ${name} with digest ${local.RepoDigests?.[0] ?? local.Id} ...`)
            trace.line(`Image ${name} came from the engine's local images (not pulled)`)
            return { id: local.Id, ms: performance.now() - started }
          }
          if (policy === 'never') throw new Error(`image ${name} is not present on the host and the pull policy is "never"`)
        }
        const mirrored = this.#mirror && mirroredName(name, this.#mirror.url)
        if (mirrored) {
          try {
            return { id: await this.#pullThroughMirror(name, mirrored, entries, trace, signal), ms: performance.now() - started }
          } catch (e) {
            if (signal.aborted) throw e
            const msg = (e as { json?: { message?: string } }).json?.message ?? (e as Error).message
            errors.push(msg)
            trace.warn(`Failed to pull ${name} through Wharf's pull-through cache: ${msg.trim()}; trying docker.io itself`)
          }
        }
        const entry = authForImage(name, entries)
        let auth: RegistryAuth | undefined
        if (entry) {
          trace.line(`Authenticating with credentials from ${entry.source}`)
          auth = await entry.get()
        }
        trace.line(`Pulling docker image ${name} ...`)
        const stream = await this.#docker.pull(name, auth ? { authconfig: auth, abortSignal: signal } : { abortSignal: signal })
        await followPull(stream, () => undefined)
        const got = await this.#inspect(name)
        if (!got) throw new Error(`image ${name} is missing after the pull`)
        trace.line(`Using docker image ${got.Id} for ${name} with digest ${got.RepoDigests?.[0] ?? got.Id} ...`)
        trace.line(`Image ${name} came from ${origin(name)}`)
        return { id: got.Id, ms: performance.now() - started }
      } catch (e) {
        const msg = (e as { json?: { message?: string } }).json?.message ?? (e as Error).message
        errors.push(msg)
        trace.warn(`Failed to pull image with policy "${policy}": ${msg.trim()}`)
      }
    }
    throw new PrepareError(
      `failed to pull image "${name}" with specified policies [${policies.join(' ')}]: ${errors.at(-1) ?? 'canceled'}`,
      'image_pull_failure',
    )
  }

  /**
   * Pulls a Docker Hub image as `<mirror>/library/…` and tags it back to its own name (so
   * `if-not-present` finds it next time); returns the image ID.
   */
  async #pullThroughMirror(name: string, mirrored: string, entries: AuthEntry[], trace: JobTrace, signal: AbortSignal): Promise<string> {
    const mirror = this.#mirror!
    // DOCKER_AUTH_CONFIG may name the mirror's host; else the job's own credentials (needed when
    // the mirror is behind Wharf's token auth, unused when it is anonymous).
    const entry = authForImage(mirrored, entries)
    const auth = entry ? await entry.get() : mirror.auth
    trace.line(`Pulling docker image ${name} through Wharf's pull-through cache as ${mirrored} ...`)
    const stream = await this.#docker.pull(mirrored, auth ? { authconfig: auth, abortSignal: signal } : { abortSignal: signal })
    await followPull(stream, () => undefined)
    const got = await this.#inspect(mirrored)
    if (!got) throw new Error(`image ${mirrored} is missing after the pull`)
    if (!name.includes('@')) {
      const colon = name.lastIndexOf(':')
      await this.#docker.getImage(got.Id).tag({ repo: name.slice(0, colon), tag: name.slice(colon + 1) })
    }
    trace.line(`Using docker image ${got.Id} for ${name} with digest ${got.RepoDigests?.[0] ?? got.Id} ...`)
    trace.line(`Image ${name} came from Wharf's pull-through cache of docker.io (registry mirror ${mirror.url.origin})`)
    return got.Id
  }

  /** Where the containers of this job reach the mirror (see mirror.ts); undefined if they cannot. */
  async #containerMirror(): Promise<string | undefined> {
    const mode = this.#networkMode()
    if (mode === 'host') return containerMirrorUrl(this.#mirror!.url, mode, undefined)
    const net = (await this.#docker.getNetwork(mode || 'bridge').inspect()) as { IPAM?: { Config?: { Gateway?: string }[] } }
    const gateway = net.IPAM?.Config?.find((c) => c.Gateway)?.Gateway
    return containerMirrorUrl(this.#mirror!.url, mode, gateway)
  }

  #env(vars: readonly JobVariable[], tmpDir: string, extra: readonly JobVariable[] = []): string[] {
    const env: string[] = []
    for (const v of [...vars, ...extra]) {
      if (!isExportableName(v.key)) continue
      env.push(`${v.key}=${v.file ? `${tmpDir}/${v.key}` : v.value}`)
    }
    return env
  }

  #binds(job: PreparedJob): string[] {
    const binds = [`${job.paths.hostJobDir}:${CONTAINER_BUILDS_DIR}`]
    const sock = this.#socketPath()
    if (this.#cfg.bindDockerSocket && sock) binds.push(`${sock}:${SOCKET_IN_CONTAINER}`)
    return [...binds, ...this.#cfg.volumes]
  }

  #networkMode(): string {
    return this.#networkName || this.#cfg.networkMode
  }

  async prepare(job: PreparedJob, trace: JobTrace, signal: AbortSignal): Promise<{ pullMs: number }> {
    this.#prefix = `wharf-job-${job.job.id}-${randomBytes(3).toString('hex')}`
    const lookup = (k: string) => job.vars(k)
    const image = withDefaultTag(expandValue(job.job.image.name || this.#cfg.image, lookup))
    this.#image = image
    this.#entrypoint = job.job.image.entrypoint
    trace.line(`Using Docker executor with image ${image} ...`)
    const { entries, warnings } = await this.#authEntries(job)
    for (const w of warnings) trace.warn(w)
    const mirror = resolveMirror(this.#cfg.registryMirror, job.vars('WHARF_REGISTRY_MIRROR'))
    if (mirror) {
      const cred = job.job.credentials.find((c) => c.type === 'registry')
      this.#mirror = { url: mirror, auth: cred && { username: cred.username, password: cred.password, serveraddress: mirror.host } }
      const why =
        this.#cfg.registryMirror === 'auto'
          ? "the server's registry mirror; runner setting registry_mirror: auto"
          : 'runner setting registry_mirror'
      trace.line(`Docker Hub images come through Wharf's pull-through cache at ${mirror.origin} (${why})`)
    }
    let pullMs = 0
    try {
      await this.#docker.ping()
    } catch (e) {
      throw new PrepareError(`cannot reach the Docker engine: ${(e as Error).message}`, 'runner_system_failure')
    }

    // Services first, as gitlab-runner does: the job sees them running.
    const services = job.job.services ?? []
    if (services.length) {
      if (this.#cfg.networkMode === '') {
        this.#networkName = this.#prefix
        trace.line(`Creating network ${this.#networkName}`)
        this.#network = await this.#docker.createNetwork({
          Name: this.#networkName,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { 'com.wharf.runner.job': String(job.job.id) },
        })
      }
      const started: { name: string; id: string; aliases: string[]; ports: number[] }[] = []
      for (const [i, svc] of services.entries()) {
        const name = withDefaultTag(expandValue(svc.name, lookup))
        trace.line(`Starting service ${name} ...`)
        const pulled = await this.#pull(name, this.#policies(svc, `service ${name}`), entries, trace, signal)
        pullMs += pulled.ms
        const aliases = serviceAliases(expandValue(svc.name, lookup), svc.alias)
        const svcVars = [...job.variables, ...(svc.variables ?? [])]
        const mode = this.#networkMode()
        const config = (await this.#docker.getImage(pulled.id).inspect()).Config
        let command = svc.command?.length ? svc.command : undefined
        if (this.#mirror && isDindImage(name)) {
          const url = await this.#containerMirror()
          const withMirror = url && dindCommand(command ?? config?.Cmd ?? [], url)
          if (withMirror) {
            command = withMirror
            trace.line(`Service ${name}'s daemon pulls Docker Hub images through Wharf's pull-through cache: --registry-mirror=${url}`)
          } else if (!url)
            trace.warn(
              `Service ${name}'s daemon is not given Wharf's registry mirror: ${this.#mirror.url.origin} is loopback and the network ${mode} has no gateway`,
            )
          else trace.line(`Service ${name} keeps its command as given: its daemon is not given Wharf's registry mirror`)
        }
        const c = await this.#docker.createContainer({
          name: `${this.#prefix}-svc-${i}`,
          Image: pulled.id,
          Env: this.#env(svcVars, job.paths.tmpDir),
          ...(command ? { Cmd: command } : {}),
          ...(svc.entrypoint?.length ? { Entrypoint: svc.entrypoint } : {}),
          Labels: { 'com.wharf.runner.job': String(job.job.id), 'com.wharf.runner.service': name },
          HostConfig: {
            NetworkMode: mode || undefined,
            ...privilegeHostConfig(
              this.#cfg.servicesPrivileged,
              this.#cfg.servicesCapAdd,
              this.#cfg.servicesCapDrop,
              this.#cfg.servicesSecurityOpt,
            ),
            // As gitlab-runner, the volumes go into services too (a shared /certs/client, /sys/fs/cgroup for dind).
            Binds: [...this.#cfg.volumes],
            ExtraHosts: this.#cfg.extraHosts,
          },
          ...(mode && mode !== 'host' && mode !== 'none'
            ? { NetworkingConfig: { EndpointsConfig: { [mode]: { Aliases: aliases } } } }
            : {}),
        })
        this.#containers.push(c.id)
        await c.start()
        const exposed = Object.keys(config?.ExposedPorts ?? {})
        const ports = new Set<number>()
        const named = healthcheckPort(svcVars)
        if (named) ports.add(named)
        else {
          for (const p of exposed) if (p.endsWith('/tcp')) ports.add(Number.parseInt(p, 10))
          for (const p of svc.ports ?? [])
            if (!p.protocol || p.protocol === 'tcp' || p.protocol === 'http' || p.protocol === 'https') ports.add(p.number)
        }
        started.push({ name, id: c.id, aliases, ports: [...ports].filter((p) => p > 0) })
      }
      this.#services = started.map(({ name, id, aliases }) => ({ name, id, aliases }))
      await this.#waitForServices(started, trace, signal)
    }

    const pulled = await this.#pull(image, this.#policies(job.job.image, `image ${image}`), entries, trace, signal)
    pullMs += pulled.ms
    this.#imageId = pulled.id
    return { pullMs }
  }

  async #serviceIp(id: string): Promise<string | undefined> {
    const info = await this.#docker.getContainer(id).inspect()
    const mode = this.#networkMode()
    if (mode === 'host') return '127.0.0.1'
    const nets = info.NetworkSettings?.Networks ?? {}
    const net = (mode && nets[mode]) || Object.values(nets)[0]
    return net?.IPAddress || undefined
  }

  async #waitForServices(services: { name: string; id: string; ports: number[] }[], trace: JobTrace, signal: AbortSignal): Promise<void> {
    const timeoutMs = this.#cfg.waitForServicesSeconds * 1000
    if (timeoutMs <= 0) return
    const deadline = Date.now() + timeoutMs
    await Promise.all(
      services.map(async (s) => {
        if (s.ports.length === 0) return
        trace.line(`Waiting for services to be up and running (timeout ${this.#cfg.waitForServicesSeconds} seconds)...`)
        // Up when one of its ports answers, as gitlab-runner's health check (which tries every
        // port since its docker:dind regression): dind exposes 2375 and 2376 but listens on one.
        let lastError = `no answer on port ${s.ports.join(' or ')} within ${this.#cfg.waitForServicesSeconds} s`
        for (;;) {
          if (signal.aborted) return
          const state = (await this.#docker.getContainer(s.id).inspect()).State
          if (!state?.Running) {
            lastError = `service container exited with code ${state?.ExitCode}`
            break
          }
          const ip = await this.#serviceIp(s.id)
          if (ip && (await Promise.all(s.ports.map((port) => probe(ip, port, 1000)))).some(Boolean)) {
            lastError = ''
            break
          }
          if (Date.now() > deadline) break
          await new Promise((r) => setTimeout(r, SERVICE_PROBE_MS))
        }
        if (lastError) {
          trace.warn(
            `Service ${s.name} probably didn't start properly.\n\nHealth check error:\n${lastError}\n\nService container logs:\n${await this.#logs(s.id)}`,
          )
        }
      }),
    )
  }

  async #logs(id: string): Promise<string> {
    try {
      const raw = (await this.#docker.getContainer(id).logs({ stdout: true, stderr: true, tail: 50 })) as unknown as Buffer
      return demuxBuffer(raw).toString('utf8')
    } catch {
      return '(no logs)'
    }
  }

  async run(
    job: PreparedJob,
    stage: string,
    _hostScript: string,
    jobScript: string,
    onOutput: (b: Buffer) => void,
    signal: AbortSignal,
  ): Promise<StageResult> {
    if (signal.aborted) return { exitCode: 1, aborted: true }
    const mode = this.#networkMode()
    const extraHosts = [...this.#cfg.extraHosts]
    // On the host network, service aliases name the host itself.
    if (mode === 'host') for (const s of this.#services) for (const a of s.aliases) extraHosts.push(`${a}:127.0.0.1`)
    const c = await this.#docker.createContainer({
      name: `${this.#prefix}-${stage.replaceAll('_', '-')}`,
      Image: this.#imageId || this.#image,
      Cmd: detectShellCommand(jobScript),
      ...(this.#entrypoint?.length ? { Entrypoint: this.#entrypoint } : {}),
      Env: this.#env(job.variables, job.paths.tmpDir),
      WorkingDir: job.paths.projectDir,
      Labels: { 'com.wharf.runner.job': String(job.job.id), 'com.wharf.runner.stage': stage },
      AttachStdout: true,
      AttachStderr: true,
      Tty: false,
      OpenStdin: false,
      StopTimeout: STOP_GRACE_SECONDS,
      HostConfig: {
        Binds: this.#binds(job),
        NetworkMode: mode || undefined,
        ...privilegeHostConfig(this.#cfg.privileged, this.#cfg.capAdd, this.#cfg.capDrop, this.#cfg.securityOpt),
        ExtraHosts: extraHosts,
      },
    })
    this.#containers.push(c.id)
    const stream = await c.attach({ stream: true, stdout: true, stderr: true })
    const out = new PassThrough()
    out.on('data', onOutput)
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve)
      stream.on('close', resolve)
      stream.on('error', () => resolve())
    })
    this.#docker.modem.demuxStream(stream, out, out)
    let aborted = false
    const onAbort = () => {
      aborted = true
      c.kill({ signal: 'SIGKILL' }).catch(() => undefined)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    try {
      await c.start()
      const res = (await c.wait()) as { StatusCode?: number }
      // The attach stream ends after the last output; don't wait forever for it.
      await Promise.race([ended, new Promise((r) => setTimeout(r, 2000))])
      return { exitCode: res.StatusCode ?? 1, aborted: aborted || signal.aborted }
    } finally {
      signal.removeEventListener('abort', onAbort)
      await c.remove({ force: true, v: true }).catch(() => undefined)
      const i = this.#containers.indexOf(c.id)
      if (i >= 0) this.#containers.splice(i, 1)
    }
  }

  async cleanup(trace: JobTrace | undefined): Promise<void> {
    for (const id of this.#containers.splice(0)) {
      await this.#docker
        .getContainer(id)
        .remove({ force: true, v: true })
        .catch((e: Error) => trace?.warn(`cannot remove container ${id.slice(0, 12)}: ${e.message}`))
    }
    if (this.#network) {
      await this.#network.remove().catch((e: Error) => trace?.warn(`cannot remove network ${this.#networkName}: ${e.message}`))
      this.#network = undefined
    }
  }
}

/** Where a pulled image came from, for the job log. */
function origin(image: string): string {
  const registry = imageRegistry(image)
  // GitLab's group path: `<wharf>/<group>/dependency_proxy/containers/<image>`.
  if (image.includes('/dependency_proxy/containers/'))
    return `Wharf's pull-through cache of docker.io (the group dependency proxy on ${registry})`
  return registry === 'docker.io' ? 'docker.io (directly, not through Wharf)' : `the registry ${registry}`
}

/** Demultiplexes a non-TTY container log buffer (8-byte frame headers). */
export function demuxBuffer(raw: Buffer): Buffer {
  const parts: Buffer[] = []
  let i = 0
  while (i + 8 <= raw.length) {
    const len = raw.readUInt32BE(i + 4)
    parts.push(raw.subarray(i + 8, i + 8 + len))
    i += 8 + len
  }
  return parts.length ? Buffer.concat(parts) : raw
}

function probe(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port })
    const done = (ok: boolean) => {
      s.destroy()
      resolve(ok)
    }
    s.setTimeout(timeoutMs, () => done(false))
    s.once('connect', () => done(true))
    s.once('error', () => done(false))
  })
}
