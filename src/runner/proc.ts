/**
 * Child processes of a job (git, shell scripts): output to a callback, stdin closed, run in their
 * own process group so that cancel and timeout stop everything they started (SIGTERM, then
 * SIGKILL after a grace period).
 */
import { startProcess } from '../core/spawn.ts'

export const KILL_GRACE_MS = 3000

export interface ProcResult {
  /** Exit status; 1 when killed by a signal (after TERM the script's trap exits 1 too). */
  code: number
  signal: NodeJS.Signals | null
  /** True when `signal` aborted it. */
  aborted: boolean
}

export interface ProcOptions {
  cwd?: string
  env: NodeJS.ProcessEnv
  onOutput: (chunk: Buffer) => void
  signal?: AbortSignal
  graceMs?: number
}

function killGroup(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(-pid, sig)
  } catch {
    try {
      process.kill(pid, sig)
    } catch {
      /* already gone */
    }
  }
}

export async function runProcess(cmd: string, args: readonly string[], opts: ProcOptions): Promise<ProcResult> {
  if (opts.signal?.aborted) return { code: 1, signal: null, aborted: true }
  const child = await startProcess(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  return new Promise((resolve) => {
    let aborted = false
    let killTimer: NodeJS.Timeout | undefined
    const onAbort = () => {
      aborted = true
      if (child.pid === undefined) return
      killGroup(child.pid, 'SIGTERM')
      killTimer = setTimeout(() => child.pid !== undefined && killGroup(child.pid, 'SIGKILL'), opts.graceMs ?? KILL_GRACE_MS)
      killTimer.unref()
    }
    if (opts.signal?.aborted) onAbort()
    else opts.signal?.addEventListener('abort', onAbort, { once: true })
    child.stdout.on('data', opts.onOutput)
    child.stderr.on('data', opts.onOutput)
    child.on('close', (code, signal) => {
      opts.signal?.removeEventListener('abort', onAbort)
      if (killTimer) clearTimeout(killTimer)
      // Reap anything the script left running in its group.
      if (child.pid !== undefined) killGroup(child.pid, 'SIGKILL')
      resolve({ code: code ?? 1, signal, aborted })
    })
  })
}
