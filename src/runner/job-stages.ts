/**
 * The stages of one job, as gitlab-runner's build runs them: prepare the job directory and the
 * executor (images, services), get the sources, restore the cache, download artifacts, the
 * user's steps, after_script, save the cache, upload artifacts, clean up. Each stage writes its
 * section of the log; a failure is thrown (job-failure.ts), a stop aborts the running stage
 * through the job's signals (job-control.ts).
 */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import path from 'node:path'
import { artifactWanted, downloadDependencies, uploadArtifacts, type ArtifactsContext } from './artifacts.ts'
import { restoreCaches, saveCaches, type CacheContext } from './cache.ts'
import type { RunnerClient } from './client.ts'
import type { RunnerEntry } from './config.ts'
import type { Executor, PreparedJob, StageResult } from './executor.ts'
import type { JobControl } from './job-control.ts'
import { formatDuration } from './job-failure.ts'
import { runProcess } from './proc.ts'
import type { Step } from './protocol.ts'
import { buildStageScript } from './script.ts'
import { getSources, rebaseUrl, stripCredentials } from './sources.ts'

export interface JobStagesDeps {
  client: RunnerClient
  runner: RunnerEntry
  executor: Executor
}

/** The user's steps: whether they passed, the exit code that failed them, and how long they took. */
export interface ScriptResult {
  ok: boolean
  exitCode: number
  ms: number
}

export class JobStages {
  readonly #d: JobStagesDeps
  readonly #job: PreparedJob
  readonly #control: JobControl
  readonly #hostJobDir: string
  readonly #cache: CacheContext
  readonly #artifacts: ArtifactsContext

  constructor(deps: JobStagesDeps, job: PreparedJob, control: JobControl, where: { hostJobDir: string; projectPath: string }) {
    this.#d = deps
    this.#job = job
    this.#control = control
    this.#hostJobDir = where.hostJobDir
    const { trace } = control
    this.#cache = {
      cacheDir: deps.runner.cacheDir,
      projectPath: where.projectPath,
      projectDir: job.paths.hostProjectDir,
      trace,
      vars: job.vars,
    }
    this.#artifacts = {
      client: deps.client,
      jobId: job.job.id,
      jobToken: job.job.token,
      projectDir: job.paths.hostProjectDir,
      scratchDir: path.join(where.hostJobDir, '.runner'),
      trace,
      signal: control.signal,
    }
  }

  /** A fresh job directory under a runner directory only this user can enter. */
  async prepareDirectories(): Promise<void> {
    const { paths } = this.#job
    await mkdir(path.dirname(this.#hostJobDir), { recursive: true, mode: 0o700 })
    await chmod(path.dirname(this.#hostJobDir), 0o700)
    await rm(this.#hostJobDir, { recursive: true, force: true })
    await mkdir(paths.hostProjectDir, { recursive: true })
    await mkdir(paths.hostTmpDir, { recursive: true })
    await chmod(this.#hostJobDir, 0o755)
  }

  /** Images and services; returns the milliseconds spent pulling. */
  async prepareExecutor(): Promise<number> {
    const { trace } = this.#control
    trace.sectionStart('prepare_executor', `Preparing the "${this.#d.executor.kind}" executor`)
    try {
      return (await this.#d.executor.prepare(this.#job, trace, this.#control.signal)).pullMs
    } finally {
      trace.sectionEnd('prepare_executor')
    }
  }

  prepareScript(): void {
    const { trace } = this.#control
    trace.sectionStart('prepare_script', 'Preparing environment')
    trace.line(`Running on ${hostname()}...`)
    trace.sectionEnd('prepare_script')
  }

  async getSources(): Promise<void> {
    const { trace } = this.#control
    const { job, paths, vars } = this.#job
    const { runner } = this.#d
    trace.sectionStart('get_sources', 'Getting source from Git repository')
    try {
      await getSources({
        git: job.git_info,
        token: job.token,
        fetchUrl: rebaseUrl(job.git_info.repo_url, runner.url),
        originUrl: stripCredentials(runner.cloneUrl ? rebaseUrl(job.git_info.repo_url, runner.cloneUrl) : job.git_info.repo_url),
        projectDir: paths.hostProjectDir,
        vars,
        out: (t) => trace.write(t),
        notice: (t) => trace.info(t),
        warn: (t) => trace.warn(t),
        signal: this.#control.signal,
      })
    } finally {
      trace.sectionEnd('get_sources')
    }
  }

  /** A cache that cannot be restored is a warning, as in gitlab-runner. */
  async restoreCache(): Promise<void> {
    const caches = this.#job.job.cache ?? []
    if (!caches.some((c) => c.policy !== 'push' && c.paths?.length)) return
    const { trace } = this.#control
    trace.sectionStart('restore_cache', 'Restoring cache')
    await restoreCaches(this.#cache, caches).catch((e: Error) => trace.warn(`cache: ${e.message}`))
    trace.sectionEnd('restore_cache')
  }

  async downloadArtifacts(): Promise<void> {
    const deps = (this.#job.job.dependencies ?? []).filter((d) => d.artifacts_file?.filename)
    if (!deps.length) return
    const { trace } = this.#control
    trace.sectionStart('download_artifacts', 'Downloading artifacts')
    try {
      await downloadDependencies(this.#artifacts, deps)
    } finally {
      trace.sectionEnd('download_artifacts')
    }
  }

  /** The user's steps: `script` (before_script + script as the server sends it), `release`... */
  async runSteps(): Promise<ScriptResult> {
    const { trace } = this.#control
    let ok = true
    let exitCode = 0
    const started = performance.now()
    for (const step of (this.#job.job.steps ?? []).filter((s) => s.name !== 'after_script')) {
      const when = step.when || 'on_success'
      if (!(when === 'always' || (ok ? when === 'on_success' : when === 'on_failure'))) continue
      if (this.#control.stopReason) break
      const stage = `step_${step.name}`
      trace.sectionStart(stage, `Executing "${stage}" stage of the job script`)
      const r = await this.#runStage(stage, step.script ?? [], this.#control.signal)
      trace.sectionEnd(stage)
      if ((r.exitCode !== 0 || r.aborted) && (!step.allow_failure || r.aborted)) {
        ok = false
        exitCode = r.exitCode
      }
    }
    return { ok, exitCode, ms: performance.now() - started }
  }

  /** after_script: always, with its own timeout, unless the job was hard-stopped; its failure is only a warning. */
  async afterScript(): Promise<void> {
    const after = (this.#job.job.steps ?? []).find((s: Step) => s.name === 'after_script')
    const hard = this.#control.hardSignal
    if (!after?.script?.length || hard.aborted) return
    const { trace } = this.#control
    const limit = Number(this.#job.vars('RUNNER_AFTER_SCRIPT_TIMEOUT')?.replace(/s$/, '')) || this.#d.runner.afterScriptTimeoutSeconds
    const afterAbort = new AbortController()
    const t = setTimeout(() => afterAbort.abort(), limit * 1000)
    const onHard = () => afterAbort.abort()
    hard.addEventListener('abort', onHard, { once: true })
    trace.sectionStart('after_script', 'Running after_script')
    try {
      const r = await this.#runStage('after_script', after.script, afterAbort.signal, ['Running after script...'])
      if (r.aborted && !hard.aborted) trace.warn(`after_script timed out after ${formatDuration(limit)}, but job will continue unaffected`)
      else if (r.exitCode !== 0) trace.warn(`after_script failed, but job will continue unaffected: exit code ${r.exitCode}`)
    } finally {
      clearTimeout(t)
      hard.removeEventListener('abort', onHard)
      trace.sectionEnd('after_script')
    }
  }

  async saveCache(success: boolean): Promise<void> {
    const caches = this.#job.job.cache ?? []
    if (!caches.some((c) => c.paths?.length)) return
    const { trace } = this.#control
    trace.sectionStart('archive_cache', success ? 'Saving cache for successful job' : 'Saving cache for failed job')
    await saveCaches(this.#cache, caches, success, () => untrackedFiles(this.#job.paths.hostProjectDir)).catch((e: Error) =>
      trace.warn(`cache: ${e.message}`),
    )
    trace.sectionEnd('archive_cache')
  }

  /** False when an upload failed (the job then fails, as in gitlab-runner). */
  async uploadArtifacts(success: boolean): Promise<boolean> {
    const artifacts = (this.#job.job.artifacts ?? []).filter((a) => artifactWanted(a, success))
    if (!artifacts.length) return true
    const { trace } = this.#control
    const section = success ? 'upload_artifacts_on_success' : 'upload_artifacts_on_failure'
    trace.sectionStart(section, success ? 'Uploading artifacts for successful job' : 'Uploading artifacts for failed job')
    try {
      return await uploadArtifacts(this.#artifacts, artifacts, success, () => untrackedFiles(this.#job.paths.hostProjectDir))
    } finally {
      trace.sectionEnd(section)
    }
  }

  /** Containers, networks and the stage scripts' directory; the checkout stays until the final update is sent. */
  async cleanup(): Promise<void> {
    const { trace } = this.#control
    trace.sectionStart('cleanup_file_variables', 'Cleaning up project directory and file based variables')
    await this.#d.executor.cleanup(trace)
    await rm(this.#job.paths.hostTmpDir, { recursive: true, force: true }).catch(() => undefined)
    trace.sectionEnd('cleanup_file_variables')
  }

  async #runStage(stage: string, commands: readonly string[], signal: AbortSignal, notices: string[] = []): Promise<StageResult> {
    const { variables, paths, vars } = this.#job
    const text = buildStageScript({
      variables,
      tmpDir: paths.tmpDir,
      workDir: paths.projectDir,
      commands,
      notices,
      xtrace: vars('CI_DEBUG_TRACE') === 'true',
    })
    const hostScript = path.join(paths.hostTmpDir, `${stage}.sh`)
    await writeFile(hostScript, text, { mode: 0o644 })
    try {
      return await this.#d.executor.run(
        this.#job,
        stage,
        hostScript,
        `${paths.tmpDir}/${stage}.sh`,
        (b) => this.#control.trace.write(b),
        signal,
      )
    } finally {
      await rm(hostScript, { force: true })
    }
  }
}

/** Untracked files of the checkout (`git ls-files -o`, .gitignore not applied, as GitLab does). */
async function untrackedFiles(projectDir: string): Promise<string[]> {
  const out: Buffer[] = []
  const r = await runProcess('git', ['ls-files', '-o', '-z'], {
    cwd: projectDir,
    env: { ...process.env, LC_ALL: 'C' },
    onOutput: (b) => out.push(b),
  }).catch(() => undefined)
  if (r?.code !== 0) return []
  return Buffer.concat(out).toString('utf8').split('\0').filter(Boolean)
}
