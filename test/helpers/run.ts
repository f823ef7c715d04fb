// Run an external program without a shell, capture its output, bound its time.
import { spawn } from 'node:child_process'

export interface RunOptions {
  /** Variables merged over process.env; a value of undefined removes the variable. */
  env?: Record<string, string | undefined>
  /** Replace the whole environment instead of merging over process.env. */
  replaceEnv?: boolean
  /** Written to the program's standard input, which is then closed. */
  input?: string | Buffer
  /** Killed (SIGKILL) after this many milliseconds; default 120 s. */
  timeoutMs?: number
  cwd?: string
}

export interface RunResult {
  /** Exit code; null when the program was killed by a signal (or timed out). */
  code: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  stdout: string
  stderr: string
  /** The command line, for messages. */
  command: string
  durationMs: number
}

export function buildEnv(env: RunOptions['env'], replace = false): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = replace ? {} : { ...process.env }
  // node --test marks its child processes; a program we start is not one of them.
  delete out.NODE_TEST_CONTEXT
  for (const [k, v] of Object.entries(env ?? {})) {
    if (v === undefined) delete out[k]
    else out[k] = v
  }
  return out
}

function quote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`
}

export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const timeoutMs = opts.timeoutMs ?? 120_000
  const command = [cmd, ...args].map(quote).join(' ')
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: buildEnv(opts.env, opts.replaceEnv),
      cwd: opts.cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const out: Buffer[] = []
    const err: Buffer[] = []
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      child.kill('SIGKILL')
    }, timeoutMs)
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    child.on('error', (e) => {
      clearTimeout(timer)
      reject(new Error(`cannot run ${command}: ${e.message}`))
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({
        code,
        signal,
        timedOut,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        command,
        durationMs: Date.now() - started,
      })
    })
    child.stdin.on('error', () => {
      /* the program may exit without reading its input */
    })
    if (opts.input !== undefined) child.stdin.end(opts.input)
    else child.stdin.end()
  })
}

export function describeResult(r: RunResult): string {
  const status = r.timedOut ? 'timed out' : r.code === null ? `killed by ${r.signal}` : `exit code ${r.code}`
  const tail = (s: string) => (s.length > 6000 ? `…${s.slice(-6000)}` : s)
  return `$ ${r.command}\n(${status} after ${r.durationMs} ms)\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`
}

/** Like run(), but throws (with the full output) unless the program exits 0. */
export async function runOk(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`command failed:\n${describeResult(r)}`)
  return r
}
