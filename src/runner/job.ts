/**
 * One job's lifecycle, as gitlab-runner's build does it:
 *
 *   prepare executor (images, services) → prepare environment → get sources → restore cache →
 *   download artifacts → step_script (before_script + script) → after_script (always, own
 *   timeout) → save cache → upload artifacts → final `PUT /jobs/:id` with the state, the failure
 *   reason and the exit code.
 *
 * runJob only orders them: the stages are in job-stages.ts, the log, keep-alive and stops
 * (cancel, timeout, shutdown) in job-control.ts, what a failure or a stop means to GitLab in
 * job-failure.ts, and the final update in job-report.ts. Timings (queue wait, image pull,
 * script) end the log and a structured log line.
 */
import { rm } from 'node:fs/promises'
import path from 'node:path'
import { RUNNER_NAME, RUNNER_VERSION, type RunnerClient } from './client.ts'
import type { RunnerEntry } from './config.ts'
import type { Executor, PreparedJob } from './executor.ts'
import { JobControl, type Logger } from './job-control.ts'
import { failureOf, StageFailure } from './job-failure.ts'
import { closeLog, finalUpdate, reportedReason } from './job-report.ts'
import { JobStages } from './job-stages.ts'
import type { FailureReason, JobResponse, JobVariable } from './protocol.ts'
import { resolveVariables, variable, variableValue } from './script.ts'
import { rebaseUrl } from './sources.ts'

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

/** The project path as a safe relative directory (`group/sub/project`). */
export function projectDirName(job: JobResponse): string {
  const raw = variableValue(job.variables, 'CI_PROJECT_PATH') ?? `project-${job.job_info.project_id}`
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.' && p !== '..' && !p.includes('\\'))
  return parts.length ? parts.join('/') : `project-${job.job_info.project_id}`
}

/** The job's variables plus the runner's, with clone_url applied, resolved. */
export function jobVariables(
  job: JobResponse,
  runner: RunnerEntry,
  executor: Executor,
  paths: PreparedJob['paths'],
  runnerId: number,
): JobVariable[] {
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

export async function runJob(deps: JobDeps, job: JobResponse): Promise<JobOutcome> {
  const { runner, executor, log } = deps
  const started = performance.now()
  const hostJobDir = path.join(runner.buildsDir, `runner-${deps.runnerId}`, String(job.id))
  const projectPath = projectDirName(job)
  const paths = executor.paths(hostJobDir, projectPath)
  // Masked values may only become visible after expansion (a variable built from a masked one is not masked, as in GitLab).
  const variables = jobVariables(job, runner, executor, paths, deps.runnerId)
  const prepared: PreparedJob = { job, variables, paths, vars: (k) => variableValue(variables, k) }
  const control = new JobControl(
    {
      client: deps.client,
      log,
      outputLimitBytes: runner.outputLimitBytes,
      shutdown: deps.shutdown,
      ...(deps.heartbeatMs !== undefined ? { heartbeatMs: deps.heartbeatMs } : {}),
    },
    job,
  )
  const { trace } = control
  const stages = new JobStages(deps, prepared, control, { hostJobDir, projectPath })
  const timings = { queueWaitSeconds: job.job_info?.time_in_queue_seconds ?? 0, pullMs: 0, scriptMs: 0, totalMs: 0 }
  let failure: StageFailure | undefined

  trace.line(`Running with ${RUNNER_NAME} ${RUNNER_VERSION} (wharf)`)
  trace.line(`  on ${runner.name} runner-${deps.runnerId}`)
  trace.line(`  queued for ${timings.queueWaitSeconds.toFixed(2)} s before this runner picked the job`)
  try {
    try {
      await stages.prepareDirectories()
      timings.pullMs = await stages.prepareExecutor()
      control.throwIfStopped()
      stages.prepareScript()
      await stages.getSources()
      control.throwIfStopped()
      await stages.restoreCache()
      await stages.downloadArtifacts()
      const script = await stages.runSteps()
      timings.scriptMs = script.ms
      await stages.afterScript()
      control.throwIfStopped()
      await stages.saveCache(script.ok)
      const uploaded = await stages.uploadArtifacts(script.ok)
      if (!script.ok) throw new StageFailure(`exit code ${script.exitCode}`, 'script_failure', script.exitCode)
      if (!uploaded) throw new StageFailure('artifacts could not be uploaded', 'runner_system_failure', 1)
    } catch (e) {
      const { failure: f, expected } = failureOf(e)
      if (!expected) log.error({ job: job.id, err: (e as Error).stack }, 'job failed in the runner')
      // A stop overrides whatever failed because of it.
      failure = control.stopFailure() ?? f
    }
    await stages.cleanup()
    timings.totalMs = performance.now() - started
    closeLog(trace, timings, failure)
  } finally {
    control.dispose()
  }

  const state = failure ? 'failed' : 'success'
  const reason = reportedReason(job, failure)
  await finalUpdate(deps, job, trace, state, reason, failure?.exitCode)
  await executor.cleanup(undefined)
  await rm(hostJobDir, { recursive: true, force: true }).catch((e: Error) =>
    log.warn({ job: job.id, err: e.message }, 'cannot remove the job directory'),
  )

  const totalMs = performance.now() - started
  log.info(
    {
      job: job.id,
      project: projectPath,
      name: job.job_info?.name,
      status: state,
      failure_reason: reason,
      exit_code: failure?.exitCode,
      queue_wait_s: Number(timings.queueWaitSeconds.toFixed(3)),
      pull_ms: Math.round(timings.pullMs),
      script_ms: Math.round(timings.scriptMs),
      total_ms: Math.round(totalMs),
    },
    'job finished',
  )
  return {
    jobId: job.id,
    state,
    failureReason: reason,
    exitCode: failure?.exitCode,
    queueWaitSeconds: timings.queueWaitSeconds,
    pullMs: timings.pullMs,
    scriptMs: timings.scriptMs,
    totalMs,
    log: trace.text(),
  }
}
