/**
 * What an executor does for one job. The runner itself (job-stages.ts) gets the sources, restores and
 * saves the cache and moves artifacts in the job's host directory; the executor prepares the
 * environment (images, services), runs each stage script there and cleans up.
 *
 * Host layout of a job: `<builds_dir>/runner-<id>/<job id>/` holds `<project path>/` (the
 * checkout, CI_PROJECT_DIR) and `<project path>.tmp/` (stage scripts, file variables). The shell
 * executor runs there directly; the docker executor binds the job directory at `/builds`.
 */
import type { JobResponse, JobVariable } from './protocol.ts'
import type { JobTrace } from './trace.ts'

export interface JobPaths {
  hostJobDir: string
  hostProjectDir: string
  hostTmpDir: string
  /** CI_BUILDS_DIR as the job sees it. */
  buildsDir: string
  /** CI_PROJECT_DIR as the job sees it. */
  projectDir: string
  /** The tmp dir as the job sees it. */
  tmpDir: string
}

export interface PreparedJob {
  job: JobResponse
  /** Resolved variables (runner's + job's, expanded). */
  variables: JobVariable[]
  paths: JobPaths
  /** Value of a job variable. */
  vars: (key: string) => string | undefined
}

export interface StageResult {
  exitCode: number
  /** Stopped by the signal (cancel, timeout, shutdown). */
  aborted: boolean
}

/** A failure of the environment (not of the user's script), with GitLab's failure reason. */
export class PrepareError extends Error {
  readonly reason: string
  constructor(message: string, reason: string) {
    super(message)
    this.name = 'PrepareError'
    this.reason = reason
  }
}

export interface Executor {
  readonly kind: 'shell' | 'docker'
  /** The shell reported to the server. */
  readonly shell: string
  paths(hostJobDir: string, projectPath: string): JobPaths
  /** Variables the executor adds (CI_DISPOSABLE_ENVIRONMENT, DOCKER_HOST for socket binding...). */
  extraVariables(): JobVariable[]
  /** Pulls images and starts services; returns the milliseconds spent pulling. Throws PrepareError. */
  prepare(job: PreparedJob, trace: JobTrace, signal: AbortSignal): Promise<{ pullMs: number }>
  /** Runs the stage script stored at `hostScript` (paths.tmpDir/<name> for the job). */
  run(
    job: PreparedJob,
    stage: string,
    hostScript: string,
    jobScript: string,
    onOutput: (b: Buffer) => void,
    signal: AbortSignal,
  ): Promise<StageResult>
  /** Removes containers, networks; never throws. */
  cleanup(trace: JobTrace | undefined): Promise<void>
}
