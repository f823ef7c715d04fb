import { spawn } from 'node:child_process'
import { WharfError } from '../core/errors.ts'

// Every git process Wharf starts goes through here: an argument array (never a shell string)
// and an environment built from scratch, so neither the server's secrets (WHARF_*) nor the
// server user's ~/.gitconfig or /etc/gitconfig reach git.

/** Output beyond this is an error rather than a memory spike (listing 1M files is ~50 MiB). */
export const DEFAULT_MAX_OUTPUT = 64 << 20

/** The environment every git child gets; callers add their own variables on top. */
export function gitEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    LC_ALL: 'C',
    TZ: 'UTC',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_ATTR_NOSYSTEM: '1',
    ...extra,
  }
}

export interface GitRun {
  /** The bare repository (`--git-dir`); omit for commands that take their own target (init). */
  gitDir?: string
  input?: string | Buffer
  /** Exit codes that are answers, not failures (e.g. 1 for "not found"). */
  okCodes?: readonly number[]
  maxOutput?: number
  env?: Record<string, string>
  /** Configuration for this invocation only (`-c key=value`). */
  config?: Record<string, string>
}

export interface GitOutput {
  code: number
  stdout: Buffer
  stderr: string
}

/** Runs `git [--git-dir=…] [-c k=v…] args…`, buffering stdout up to a limit. Throws on unexpected exit codes. */
export function runGit(args: readonly string[], opts: GitRun = {}): Promise<GitOutput> {
  const full = [...(opts.gitDir ? [`--git-dir=${opts.gitDir}`] : []), ...Object.entries(opts.config ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]), ...args]
  const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT
  return new Promise((resolve, reject) => {
    const child = spawn('git', full, { env: gitEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let outBytes = 0
    let err = ''
    let overflow = false
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length
      if (outBytes > max) {
        if (!overflow) child.kill('SIGKILL')
        overflow = true
        return
      }
      out.push(b)
    })
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 8192) err += b.toString('utf8')
    })
    child.on('error', (e) => reject(new Error(`cannot run git: ${e.message}`, { cause: e })))
    child.on('close', (code, signal) => {
      if (overflow) return reject(new WharfError('BAD_REQUEST', `git ${args[0]} produced more than ${max} bytes`, { limit: max }))
      const c = code ?? -1
      if (c === 0 || opts.okCodes?.includes(c)) return resolve({ code: c, stdout: Buffer.concat(out), stderr: err })
      reject(new GitCommandError(args, c, signal, err))
    })
    child.stdin.on('error', () => {
      /* git may exit without reading its input */
    })
    child.stdin.end(opts.input)
  })
}

export class GitCommandError extends Error {
  readonly code: number
  readonly stderr: string
  constructor(args: readonly string[], code: number, signal: NodeJS.Signals | null, stderr: string) {
    super(`git ${args.slice(0, 3).join(' ')} failed (${signal ? `signal ${signal}` : `exit code ${code}`}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`)
    this.name = 'GitCommandError'
    this.code = code
    this.stderr = stderr
  }
}
