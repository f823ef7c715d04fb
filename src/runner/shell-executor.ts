/**
 * The shell executor: stage scripts run with bash (or sh) on the runner's host, in the job's
 * own directory below builds_dir, with the runner's environment plus the job's variables.
 */
import path from 'node:path'
import type { RunnerEntry } from './config.ts'
import type { Executor, JobPaths, PreparedJob, StageResult } from './executor.ts'
import type { JobVariable } from './protocol.ts'
import { runProcess } from './proc.ts'
import { variable } from './script.ts'

/** Runner variables that must not reach job processes. */
const PRIVATE_ENV = /^(WHARF_RUNNER_|NODE_TEST_CONTEXT$)/

export class ShellExecutor implements Executor {
  readonly kind = 'shell' as const
  readonly shell: string

  constructor(runner: RunnerEntry) {
    this.shell = runner.shell
  }

  paths(hostJobDir: string, projectPath: string): JobPaths {
    const hostProjectDir = path.join(hostJobDir, projectPath)
    return {
      hostJobDir,
      hostProjectDir,
      hostTmpDir: `${hostProjectDir}.tmp`,
      buildsDir: hostJobDir,
      projectDir: hostProjectDir,
      tmpDir: `${hostProjectDir}.tmp`,
    }
  }

  extraVariables(): JobVariable[] {
    return [variable('CI_SHARED_ENVIRONMENT', 'true')]
  }

  async prepare(): Promise<{ pullMs: number }> {
    return { pullMs: 0 }
  }

  async run(
    job: PreparedJob,
    _stage: string,
    hostScript: string,
    _jobScript: string,
    onOutput: (b: Buffer) => void,
    signal: AbortSignal,
  ): Promise<StageResult> {
    const env: NodeJS.ProcessEnv = {}
    for (const [k, v] of Object.entries(process.env)) if (!PRIVATE_ENV.test(k)) env[k] = v
    const r = await runProcess(this.shell, [hostScript], { cwd: job.paths.hostProjectDir, env, onOutput, signal })
    return { exitCode: r.code, aborted: r.aborted }
  }

  async cleanup(): Promise<void> {}
}
