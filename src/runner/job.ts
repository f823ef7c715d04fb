/**
 * One job's lifecycle, as gitlab-runner's build does it:
 *
 *   prepare executor (images, services) → prepare environment → get sources → restore cache →
 *   download artifacts → step_script (before_script + script) → after_script (always, own
 *   timeout) → save cache → upload artifacts → final `PUT /jobs/:id` with the state, the failure
 *   reason and the exit code.
 *
 * All along the log streams to the server (trace.ts) and a keep-alive `PUT running` goes out
 * every few seconds; a `Job-Status: canceled` answer (on either) or the job timeout kills the
 * running stage. Timings (queue wait, image pull, script) end the log and a structured log line.
 */
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import path from 'node:path'
import { artifactWanted, ArtifactsError, downloadDependencies, uploadArtifacts } from './artifacts.ts'
import { restoreCaches, saveCaches } from './cache.ts'
import { RUNNER_NAME, RUNNER_VERSION, type RunnerClient } from './client.ts'
import type { RunnerEntry } from './config.ts'
import { PrepareError, type Executor, type PreparedJob, type StageResult } from './executor.ts'
import { runProcess } from './proc.ts'
import type { FailureReason, JobResponse, JobVariable, Step } from './protocol.ts'
import { buildStageScript, resolveVariables, variable, variableValue } from './script.ts'
import { getSources, rebaseUrl, SourcesError, stripCredentials } from './sources.ts'
import { JobTrace } from './trace.ts'

export interface Logger {
  info(obj: object, msg: string): void
  warn(obj: object, msg: string): void
  error(obj: object, msg: string): void
  debug(obj: object, msg: string): void
}

export const JOB_TIMINGS = {
  /** Keep-alive `PUT running` interval (the server's heartbeat timeout must be well above it). */
  heartbeatMs: 5000,
  /** Final update: attempts and the pause cap between them. */
  finalUpdateAttempts: 20,
  finalUpdateMaxPauseMs: 5000,
} as const

export interface JobDeps {
  client: RunnerClient
  runner: RunnerEntry
  runnerId: number
  executor: Executor
  log: Logger
  /** Aborted when the runner stops and running jobs must end now. */
  shutdown: AbortSignal
  heartbeatMs?: number
}

export type StopReason = 'canceled' | 'canceling' | 'timeout' | 'shutdown' | 'rejected'

export interface JobOutcome {
  jobId: number
  state: 'success' | 'failed'
  failureReason: FailureReason | undefined
  exitCode: number | undefined
  queueWaitSeconds: number
  pullMs: number
  scriptMs: number
  totalMs: number
  /** The log as sent (masked). */
  log: string
}

class StageFailure extends Error {
  readonly reason: FailureReason
  readonly exitCode: number | undefined
  constructor(message: string, reason: FailureReason, exitCode?: number) {
    super(message)
    this.name = 'StageFailure'
    this.reason = reason
    this.exitCode = exitCode
  }
}

/** `3723` → `1h2m3s`, as Go prints durations. */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600)
  const m = Math.floor((seconds % 3600) / 60)
  const s = seconds % 60
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s}s`
}

const secs = (ms: number) => (ms / 1000).toFixed(2)

/** The project path as a safe relative directory (`group/sub/project`). */
export function projectDirName(job: JobResponse): string {
  const raw = variableValue(job.variables, 'CI_PROJECT_PATH') ?? `project-${job.job_info.project_id}`
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.' && p !== '..' && !p.includes('\\'))
  return parts.length ? parts.join('/') : `project-${job.job_info.project_id}`
}

/** The job's variables plus the runner's, with clone_url applied, resolved. */
export function jobVariables(job: JobResponse, runner: RunnerEntry, executor: Executor, paths: PreparedJob['paths'], runnerId: number): JobVariable[] {
  const runnerVars: JobVariable[] = [
    variable('CI_RUNNER_ID', String(runnerId)),
    variable('CI_RUNNER_DESCRIPTION', runner.name),
    variable('CI_RUNNER_TAGS', JSON.stringify(runner.tags)),
    variable('CI_RUNNER_VERSION', RUNNER_VERSION),
    variable('CI_RUNNER_REVISION', 'wharf'),
    variable('CI_RUNNER_EXECUTABLE_ARCH', `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`),
  ]
  const environment = runner.environment.map((e) => {
    const i = e.indexOf('=')
    return variable(e.slice(0, i), e.slice(i + 1), { raw: false })
  })
  // Where the job runs is the runner's to say (a server's guess at /builds/... does not hold here).
  const overrides: JobVariable[] = [variable('CI_BUILDS_DIR', paths.buildsDir), variable('CI_PROJECT_DIR', paths.projectDir)]
  if (runner.cloneUrl) {
    const u = new URL(runner.cloneUrl)
    const server = runner.cloneUrl.replace(/\/+$/, '')
    overrides.push(
      variable('CI_SERVER_URL', server),
      variable('CI_API_V4_URL', `${server}/api/v4`),
      variable('CI_SERVER_HOST', u.hostname),
      variable('CI_SERVER_PORT', u.port || (u.protocol === 'https:' ? '443' : '80')),
      variable('CI_SERVER_PROTOCOL', u.protocol.replace(':', '')),
    )
    const repo = new URL(rebaseUrl(job.git_info.repo_url, runner.cloneUrl))
    repo.username = 'gitlab-ci-token'
    repo.password = job.token
    overrides.push(variable('CI_REPOSITORY_URL', repo.toString(), { masked: false }))
  }
  return resolveVariables([...runnerVars, ...environment, ...job.variables, ...executor.extraVariables(), ...overrides])
}

/** Untracked files of the checkout (`git ls-files -o`, .gitignore not applied, as GitLab does). */
async function untrackedFiles(projectDir: string): Promise<string[]> {
  const out: Buffer[] = []
  const r = await runProcess('git', ['ls-files', '-o', '-z'], { cwd: projectDir, env: { ...process.env, LC_ALL: 'C' }, onOutput: (b) => out.push(b) }).catch(() => undefined)
  if (r?.code !== 0) return []
  return Buffer.concat(out).toString('utf8').split('\0').filter(Boolean)
}

export async function runJob(deps: JobDeps, job: JobResponse): Promise<JobOutcome> {
  const { client, runner, executor, log } = deps
  const started = performance.now()
  const abort = new AbortController()
  let stopReason: StopReason | undefined
  const hardAbort = new AbortController()
  const stop = (reason: StopReason) => {
    if (stopReason && !(stopReason === 'canceling' && reason === 'canceled')) return
    stopReason = reason
    if (!abort.signal.aborted) abort.abort()
    // A hard cancel also stops a running after_script.
    if (reason !== 'canceling' && reason !== 'timeout') hardAbort.abort()
  }
  const onJobStatus = (status: string) => {
    if (status === 'canceled' || status === 'failed') stop('canceled')
    else if (status === 'canceling') stop('canceling')
  }
  const secrets = [job.token, ...job.variables.filter((v) => v.masked && v.value).map((v) => v.value)]
  const trace = new JobTrace({
    transport: client,
    jobId: job.id,
    jobToken: job.token,
    secrets,
    outputLimitBytes: runner.outputLimitBytes,
    onJobStatus,
    onRejected: () => stop('rejected'),
    onError: (e) => log.warn({ job: job.id, err: (e as Error).message }, 'trace append failed'),
  })
  trace.start()

  const onShutdown = () => stop('shutdown')
  deps.shutdown.addEventListener('abort', onShutdown, { once: true })
  if (deps.shutdown.aborted) onShutdown()
  const timeoutSeconds = job.runner_info?.timeout > 0 ? job.runner_info.timeout : 3600
  const timeoutTimer = setTimeout(() => stop('timeout'), timeoutSeconds * 1000)
  timeoutTimer.unref()
  let heartbeatBusy = false
  const heartbeat = setInterval(() => {
    if (heartbeatBusy) return
    heartbeatBusy = true
    client
      .updateJob(job.id, { token: job.token, state: 'running', output: { checksum: trace.checksum, bytesize: trace.size } })
      .then((r) => {
        if (r.jobStatus) onJobStatus(r.jobStatus)
        if (r.status === 403 || r.status === 404) stop('rejected')
      })
      .catch((e: Error) => log.warn({ job: job.id, err: e.message }, 'keep-alive update failed'))
      .finally(() => (heartbeatBusy = false))
  }, deps.heartbeatMs ?? JOB_TIMINGS.heartbeatMs)
  heartbeat.unref()

  const queueWaitSeconds = job.job_info?.time_in_queue_seconds ?? 0
  let pullMs = 0
  let scriptMs = 0
  let state: 'success' | 'failed' = 'failed'
  let failureReason: FailureReason | undefined
  let exitCode: number | undefined
  let failureMessage = ''

  const hostJobDir = path.join(runner.buildsDir, `runner-${deps.runnerId}`, String(job.id))
  const projectPath = projectDirName(job)
  const paths = executor.paths(hostJobDir, projectPath)
  const variables = jobVariables(job, runner, executor, paths, deps.runnerId)
  const vars = (k: string) => variableValue(variables, k)
  const prepared: PreparedJob = { job, variables, paths, vars }
  // Masked values may only become visible after expansion (a variable built from a masked one is not masked, as in GitLab).

  trace.line(`Running with ${RUNNER_NAME} ${RUNNER_VERSION} (wharf)`)
  trace.line(`  on ${runner.name} runner-${deps.runnerId}`)
  trace.line(`  queued for ${queueWaitSeconds.toFixed(2)} s before this runner picked the job`)

  const runStage = async (stage: string, commands: readonly string[], signal: AbortSignal, notices: string[] = []): Promise<StageResult> => {
    const text = buildStageScript({ variables, tmpDir: paths.tmpDir, workDir: paths.projectDir, commands, notices, xtrace: vars('CI_DEBUG_TRACE') === 'true' })
    const hostScript = path.join(paths.hostTmpDir, `${stage}.sh`)
    await writeFile(hostScript, text, { mode: 0o644 })
    try {
      return await executor.run(prepared, stage, hostScript, `${paths.tmpDir}/${stage}.sh`, (b) => trace.write(b), signal)
    } finally {
      await rm(hostScript, { force: true })
    }
  }

  try {
    try {
      await mkdir(path.dirname(hostJobDir), { recursive: true, mode: 0o700 })
      await chmod(path.dirname(hostJobDir), 0o700)
      await rm(hostJobDir, { recursive: true, force: true })
      await mkdir(paths.hostProjectDir, { recursive: true })
      await mkdir(paths.hostTmpDir, { recursive: true })
      await chmod(hostJobDir, 0o755)

      trace.sectionStart('prepare_executor', `Preparing the "${executor.kind}" executor`)
      try {
        const p = await executor.prepare(prepared, trace, abort.signal)
        pullMs = p.pullMs
      } finally {
        trace.sectionEnd('prepare_executor')
      }
      if (stopReason) throw new StageFailure('stopped while preparing', 'runner_system_failure')

      trace.sectionStart('prepare_script', 'Preparing environment')
      trace.line(`Running on ${hostname()}...`)
      trace.sectionEnd('prepare_script')

      trace.sectionStart('get_sources', 'Getting source from Git repository')
      try {
        const fetchUrl = rebaseUrl(job.git_info.repo_url, runner.url)
        const originUrl = stripCredentials(runner.cloneUrl ? rebaseUrl(job.git_info.repo_url, runner.cloneUrl) : job.git_info.repo_url)
        await getSources({
          git: job.git_info,
          token: job.token,
          fetchUrl,
          originUrl,
          projectDir: paths.hostProjectDir,
          vars,
          out: (t) => trace.write(t),
          notice: (t) => trace.info(t),
          warn: (t) => trace.warn(t),
          signal: abort.signal,
        })
      } catch (e) {
        if (e instanceof SourcesError) throw new StageFailure(e.message, 'script_failure', e.exitCode)
        throw e
      } finally {
        trace.sectionEnd('get_sources')
      }
      if (stopReason) throw new StageFailure('stopped while getting sources', 'runner_system_failure')

      const cacheCtx = { cacheDir: runner.cacheDir, projectPath, projectDir: paths.hostProjectDir, trace, vars }
      const caches = job.cache ?? []
      if (caches.some((c) => c.policy !== 'push' && c.paths?.length)) {
        trace.sectionStart('restore_cache', 'Restoring cache')
        await restoreCaches(cacheCtx, caches).catch((e: Error) => trace.warn(`cache: ${e.message}`))
        trace.sectionEnd('restore_cache')
      }

      const artifactsCtx = {
        client,
        jobId: job.id,
        jobToken: job.token,
        projectDir: paths.hostProjectDir,
        scratchDir: path.join(hostJobDir, '.runner'),
        trace,
        signal: abort.signal,
      }
      const deps_ = (job.dependencies ?? []).filter((d) => d.artifacts_file?.filename)
      if (deps_.length) {
        trace.sectionStart('download_artifacts', 'Downloading artifacts')
        try {
          await downloadDependencies(artifactsCtx, deps_)
        } catch (e) {
          if (e instanceof ArtifactsError) throw new StageFailure(e.message, e.reason as FailureReason)
          throw e
        } finally {
          trace.sectionEnd('download_artifacts')
        }
      }

      // The user's steps: `script` (before_script + script as the server sends it), `release`...
      let scriptOk = true
      let lastExit = 0
      const steps = (job.steps ?? []).filter((s) => s.name !== 'after_script')
      const scriptStarted = performance.now()
      for (const step of steps) {
        const when = step.when || 'on_success'
        if (!(when === 'always' || (scriptOk ? when === 'on_success' : when === 'on_failure'))) continue
        if (stopReason) break
        const stage = `step_${step.name}`
        trace.sectionStart(stage, `Executing "${stage}" stage of the job script`)
        const r = await runStage(stage, step.script ?? [], abort.signal)
        trace.sectionEnd(stage)
        if (r.exitCode !== 0 || r.aborted) {
          if (!step.allow_failure || r.aborted) {
            scriptOk = false
            lastExit = r.exitCode
          }
        }
      }
      scriptMs = performance.now() - scriptStarted

      const after = (job.steps ?? []).find((s: Step) => s.name === 'after_script')
      if (after?.script?.length && stopReason !== 'canceled' && stopReason !== 'shutdown' && stopReason !== 'rejected') {
        const limit = Number(vars('RUNNER_AFTER_SCRIPT_TIMEOUT')?.replace(/s$/, '')) || runner.afterScriptTimeoutSeconds
        const afterAbort = new AbortController()
        const t = setTimeout(() => afterAbort.abort(), limit * 1000)
        const onHard = () => afterAbort.abort()
        hardAbort.signal.addEventListener('abort', onHard, { once: true })
        trace.sectionStart('after_script', 'Running after_script')
        try {
          const r = await runStage('after_script', after.script, afterAbort.signal, ['Running after script...'])
          if (r.aborted && !hardAbort.signal.aborted) trace.warn(`after_script timed out after ${formatDuration(limit)}, but job will continue unaffected`)
          else if (r.exitCode !== 0) trace.warn(`after_script failed, but job will continue unaffected: exit code ${r.exitCode}`)
        } finally {
          clearTimeout(t)
          hardAbort.signal.removeEventListener('abort', onHard)
          trace.sectionEnd('after_script')
        }
      }

      if (stopReason === 'timeout') throw new StageFailure(`execution took longer than ${formatDuration(timeoutSeconds)} seconds`, 'job_execution_timeout')
      if (stopReason === 'canceled' || stopReason === 'canceling') throw new StageFailure('canceled', 'job_canceled')
      if (stopReason === 'shutdown') throw new StageFailure('the runner was stopped', 'runner_system_failure')
      if (stopReason === 'rejected') throw new StageFailure('the server no longer accepts updates for this job', 'runner_system_failure')
      const success = scriptOk

      const cacheToSave = caches.filter((c) => c.paths?.length)
      if (cacheToSave.length) {
        trace.sectionStart('archive_cache', success ? 'Saving cache for successful job' : 'Saving cache for failed job')
        await saveCaches(cacheCtx, caches, success, () => untrackedFiles(paths.hostProjectDir)).catch((e: Error) => trace.warn(`cache: ${e.message}`))
        trace.sectionEnd('archive_cache')
      }
      const artifacts = (job.artifacts ?? []).filter((a) => artifactWanted(a, success))
      let uploaded = true
      if (artifacts.length) {
        const section = success ? 'upload_artifacts_on_success' : 'upload_artifacts_on_failure'
        trace.sectionStart(section, success ? 'Uploading artifacts for successful job' : 'Uploading artifacts for failed job')
        uploaded = await uploadArtifacts(artifactsCtx, artifacts, success, () => untrackedFiles(paths.hostProjectDir))
        trace.sectionEnd(section)
      }
      if (!success) throw new StageFailure(`exit code ${lastExit}`, 'script_failure', lastExit)
      if (!uploaded) throw new StageFailure('artifacts could not be uploaded', 'runner_system_failure', 1)
      state = 'success'
    } catch (e) {
      if (e instanceof StageFailure) {
        failureReason = e.reason
        exitCode = e.exitCode
        failureMessage = e.message
      } else if (e instanceof PrepareError) {
        failureReason = e.reason as FailureReason
        failureMessage = e.message
      } else {
        failureReason = 'runner_system_failure'
        failureMessage = (e as Error).message
        log.error({ job: job.id, err: (e as Error).stack }, 'job failed in the runner')
      }
      // A stop overrides whatever failed because of it.
      if (stopReason === 'timeout') {
        failureReason = 'job_execution_timeout'
        failureMessage = `execution took longer than ${formatDuration(timeoutSeconds)} seconds`
        exitCode = undefined
      } else if (stopReason === 'canceled' || stopReason === 'canceling') {
        failureReason = 'job_canceled'
        failureMessage = 'canceled'
        exitCode = undefined
      } else if (stopReason === 'shutdown') {
        failureReason = 'runner_system_failure'
        failureMessage = 'the runner was stopped'
        exitCode = undefined
      }
    }

    trace.sectionStart('cleanup_file_variables', 'Cleaning up project directory and file based variables')
    await executor.cleanup(trace)
    await rm(paths.hostTmpDir, { recursive: true, force: true }).catch(() => undefined)
    trace.sectionEnd('cleanup_file_variables')

    const totalMs = performance.now() - started
    trace.line()
    trace.line(`Timing: queued ${queueWaitSeconds.toFixed(2)} s, image pull ${secs(pullMs)} s, script ${secs(scriptMs)} s, total ${secs(totalMs)} s`)
    if (state === 'success') trace.info('Job succeeded')
    else if (failureReason === 'runner_system_failure') trace.error(`Job failed (system failure): ${failureMessage}`)
    else trace.error(`Job failed: ${failureMessage}`)
  } finally {
    clearTimeout(timeoutTimer)
    clearInterval(heartbeat)
    deps.shutdown.removeEventListener('abort', onShutdown)
  }

  const supported = job.features?.failure_reasons ?? []
  const reason = failureReason && supported.length && !supported.includes(failureReason) ? 'unknown_failure' : failureReason
  await finalUpdate(deps, job, trace, state, reason, exitCode)
  await executor.cleanup(undefined)
  await rm(hostJobDir, { recursive: true, force: true }).catch((e: Error) => log.warn({ job: job.id, err: e.message }, 'cannot remove the job directory'))

  const totalMs = performance.now() - started
  log.info(
    {
      job: job.id,
      project: projectPath,
      name: job.job_info?.name,
      status: state,
      failure_reason: reason,
      exit_code: exitCode,
      queue_wait_s: Number(queueWaitSeconds.toFixed(3)),
      pull_ms: Math.round(pullMs),
      script_ms: Math.round(scriptMs),
      total_ms: Math.round(totalMs),
    },
    'job finished',
  )
  return { jobId: job.id, state, failureReason: reason, exitCode, queueWaitSeconds, pullMs, scriptMs, totalMs, log: trace.text() }
}

async function finalUpdate(deps: JobDeps, job: JobResponse, trace: JobTrace, state: 'success' | 'failed', reason: string | undefined, exitCode: number | undefined): Promise<void> {
  await trace.finish()
  for (let i = 0; i < JOB_TIMINGS.finalUpdateAttempts; i++) {
    if (trace.sent < trace.size && !trace.rejected) await trace.flush()
    try {
      const r = await deps.client.updateJob(job.id, {
        token: job.token,
        state,
        ...(state === 'failed' && reason ? { failure_reason: reason } : {}),
        ...(exitCode !== undefined ? { exit_code: exitCode } : {}),
        checksum: trace.checksum,
        output: { checksum: trace.checksum, bytesize: trace.size },
      })
      if (r.status === 200 || r.status === 403 || r.status === 404) {
        if (r.status !== 200) deps.log.warn({ job: job.id, status: r.status }, 'final job update refused')
        return
      }
      deps.log.warn({ job: job.id, status: r.status }, 'final job update not accepted yet')
    } catch (e) {
      deps.log.warn({ job: job.id, err: (e as Error).message }, 'final job update failed')
    }
    await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** i, JOB_TIMINGS.finalUpdateMaxPauseMs)))
  }
  deps.log.error({ job: job.id }, 'gave up sending the final job update')
}
