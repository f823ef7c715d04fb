// `wharf runner` as a child process for end-to-end tests, plus the pipeline plumbing those tests
// share: a project with a pushed .gitlab-ci.yml (real git CLI), waiting for pipelines and jobs,
// reading job logs through the REST API.
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describeResult } from './run.ts'
import { gitClient, type GitClient } from './git.ts'
import { projectNode, repoRoot, type Wharf } from './wharf.ts'

export interface RunnerChild {
  id: number
  token: string
  dir: string
  /** Everything the runner printed (pino JSON lines and any stderr). */
  output(): string
  /** Parsed JSON log lines. */
  logs(): Array<Record<string, unknown>>
  /** SIGTERM (and SIGKILL after `graceMs`); resolves with the exit code. */
  stop(graceMs?: number): Promise<number | null>
  child: ChildProcess
}

/** Creates an instance runner through the API (as root) and returns its id and glrt- token. */
export async function createRunner(wharf: Wharf, body: Record<string, unknown> = {}): Promise<{ id: number; token: string }> {
  const r = await wharf.api('POST', '/api/v4/user/runners', {
    runner_type: 'instance_type',
    run_untagged: true,
    description: 'e2e runner',
    ...body,
  })
  if (r.status !== 201 || typeof r.json?.token !== 'string') throw new Error(`cannot create a runner: ${r.describe}`)
  return { id: r.json.id as number, token: r.json.token as string }
}

export async function startRunner(
  wharf: Wharf,
  args: string[],
  opts: { env?: Record<string, string>; token?: string } = {},
): Promise<RunnerChild> {
  const created = opts.token ? { id: 0, token: opts.token } : await createRunner(wharf)
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-runner-'))
  await mkdir(path.join(dir, 'builds'), { recursive: true })
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT') env[k] = v
  const child = spawn(
    projectNode,
    [
      path.join('src', 'cli', 'main.ts'),
      'runner',
      '--url',
      wharf.url,
      '--token',
      created.token,
      '--builds-dir',
      path.join(dir, 'builds'),
      '--cache-dir',
      path.join(dir, 'cache'),
      '--check-interval',
      '1',
      ...args,
    ],
    { cwd: repoRoot, env: { ...env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let out = ''
  child.stdout!.on('data', (b: Buffer) => (out += b.toString('utf8')))
  child.stderr!.on('data', (b: Buffer) => (out += b.toString('utf8')))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const onExit = () => child.kill('SIGKILL')
  process.once('exit', onExit)
  // Wait for "runner started" (or an early exit).
  const deadline = Date.now() + 20_000
  while (!out.includes('"runner started"')) {
    if (child.exitCode !== null) throw new Error(`wharf runner exited with ${child.exitCode}:\n${out}`)
    if (Date.now() > deadline) throw new Error(`wharf runner did not start:\n${out}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    id: created.id,
    token: created.token,
    dir,
    child,
    output: () => out,
    logs: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>
          } catch {
            return {}
          }
        }),
    async stop(graceMs = 20_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM')
        const t = setTimeout(() => child.kill('SIGKILL'), graceMs)
        await exited
        clearTimeout(t)
      }
      process.off('exit', onExit)
      if (process.env.WHARF_E2E_KEEP !== '1') await rm(dir, { recursive: true, force: true }).catch(() => undefined)
      return child.exitCode
    },
  }
}

export interface PipelineJson {
  id: number
  status: string
  sha: string
  ref: string
  source: string
}

export interface JobJson {
  id: number
  name: string
  stage: string
  status: string
  failure_reason: string | null
  duration?: number | null
}

const TERMINAL = new Set(['success', 'failed', 'canceled', 'skipped', 'manual'])

/** A project with a git work tree: write files, commit and push to start pipelines. */
export class CiProject {
  readonly wharf: Wharf
  readonly id: number
  readonly path: string
  readonly client: GitClient
  readonly dir: string

  private constructor(wharf: Wharf, id: number, fullPath: string, client: GitClient, dir: string) {
    this.wharf = wharf
    this.id = id
    this.path = fullPath
    this.client = client
    this.dir = dir
  }

  static async create(wharf: Wharf, fullPath: string, visibility: 'private' | 'internal' | 'public' = 'private'): Promise<CiProject> {
    const id = await wharf.createProject(fullPath, visibility)
    const client = await gitClient('wharf-e2e-runner-git-')
    const creds = { username: 'root', password: wharf.rootPassword }
    const r = await client.git(['clone', `${wharf.url}/${fullPath}.git`, 'repo'], { creds })
    if (r.code !== 0) throw new Error(`clone failed:\n${describeResult(r)}`)
    return new CiProject(wharf, id, fullPath, client, path.join(client.work, 'repo'))
  }

  async git(args: string[]): Promise<string> {
    const r = await this.client.git(args, { cwd: this.dir, creds: { username: 'root', password: this.wharf.rootPassword } })
    if (r.code !== 0) throw new Error(`git failed:\n${describeResult(r)}\n--- server log ---\n${await this.wharf.logTail(30)}`)
    return r.stdout
  }

  /** Writes files, commits, pushes `branch`; returns the new pipeline (the newest one for the commit). */
  async push(files: Record<string, string>, message = 'change', branch = 'main'): Promise<PipelineJson> {
    for (const [f, content] of Object.entries(files)) {
      await mkdir(path.dirname(path.join(this.dir, f)), { recursive: true })
      await writeFile(path.join(this.dir, f), content)
    }
    await this.git(['add', '-A'])
    await this.git(['commit', '-q', '--allow-empty', '-m', message])
    await this.git(['push', '-q', 'origin', `HEAD:${branch}`])
    const sha = (await this.git(['rev-parse', 'HEAD'])).trim()
    const deadline = Date.now() + 10_000
    for (;;) {
      const list = await this.api<PipelineJson[]>('GET', `/projects/${this.id}/pipelines?source=push&per_page=100`)
      const p = list.find((x) => x.sha === sha)
      if (p) return p
      if (Date.now() > deadline) throw new Error(`no pipeline for ${sha}: ${JSON.stringify(list)}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  async api<T = any>(method: string, apiPath: string, body?: unknown): Promise<T> {
    const r = await this.wharf.api(method, `/api/v4${apiPath}`, body)
    if (r.status < 200 || r.status >= 300) throw new Error(r.describe)
    return r.json as T
  }

  jobs(pipelineId: number): Promise<JobJson[]> {
    return this.api('GET', `/projects/${this.id}/pipelines/${pipelineId}/jobs?per_page=100`)
  }

  async job(pipelineId: number, name: string): Promise<JobJson> {
    const j = (await this.jobs(pipelineId)).find((x) => x.name === name)
    if (!j) throw new Error(`no job ${name} in pipeline ${pipelineId}`)
    return j
  }

  /** The stored (server-side) log of a job. */
  async trace(jobId: number): Promise<string> {
    const r = await this.wharf.api('GET', `/api/v4/projects/${this.id}/jobs/${jobId}/trace`)
    if (r.status !== 200) throw new Error(r.describe)
    return r.text
  }

  /** Waits until the pipeline is finished (or `until` holds); returns it with its jobs. */
  async wait(
    pipelineId: number,
    timeoutMs = 60_000,
    until?: (p: PipelineJson, jobs: JobJson[]) => boolean,
  ): Promise<{ pipeline: PipelineJson; jobs: JobJson[] }> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const pipeline = await this.api<PipelineJson>('GET', `/projects/${this.id}/pipelines/${pipelineId}`)
      const jobs = await this.jobs(pipelineId)
      if (until ? until(pipeline, jobs) : TERMINAL.has(pipeline.status)) return { pipeline, jobs }
      if (Date.now() > deadline) {
        const logs = await Promise.all(
          jobs.map(async (j) => `--- ${j.name} (${j.status}) ---\n${await this.trace(j.id).catch((e: Error) => e.message)}`),
        )
        throw new Error(
          `pipeline ${pipelineId} is still ${pipeline.status} after ${timeoutMs} ms: ${JSON.stringify(jobs)}\n${logs.join('\n')}`,
        )
      }
      await new Promise((r) => setTimeout(r, 250))
    }
  }

  async dispose(): Promise<void> {
    await this.client.dispose()
  }
}

/** Job log without ANSI colours and section markers, for assertions. */
export function plainLog(log: string): string {
  return log.replace(/section_(start|end):\d+:[a-z_0-9]+(\[[^\]]*\])?\r\x1b\[0K/g, '').replace(/\x1b\[[0-9;]*[mK]/g, '')
}

export interface CiImageFiles {
  /** Root filesystem tarball: busybox with every applet. */
  busybox: string
  /** Root filesystem tarball: busybox plus the host's docker client. */
  dockerCli: string
}

let ciImagesBuilt: Promise<CiImageFiles> | undefined

/** Builds (once, cached in the temp dir) the CI image root filesystems of scripts/make-ci-images.sh. */
export function ciImages(): Promise<CiImageFiles> {
  ciImagesBuilt ??= (async () => {
    const dir = process.env.WHARF_E2E_CI_IMAGES ?? path.join(tmpdir(), 'wharf-ci-images')
    const { runOk } = await import('./run.ts')
    await runOk('sh', [path.join(repoRoot, 'scripts', 'make-ci-images.sh'), dir], { timeoutMs: 120_000 })
    return { busybox: path.join(dir, 'busybox.tar'), dockerCli: path.join(dir, 'docker-cli.tar') }
  })()
  return ciImagesBuilt
}

/** `docker import` arguments that make a root filesystem tarball a runnable image. */
export const IMPORT_CHANGES = ['--change', 'CMD ["/bin/sh"]', '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin']
