import type { ChildProcessByStdio } from 'node:child_process'
import { Readable } from 'node:stream'
import { WharfError } from '../core/errors.ts'
import { Pool } from '../core/pool.ts'
import { startProcess } from '../core/spawn.ts'
import { runCgi, type CgiRequest, type CgiResponse } from './cgi.ts'

// Every git process Wharf starts goes through here: an argument array (never a shell string)
// and an environment built from scratch, so neither the server's secrets (WHARF_*) nor the
// server user's ~/.gitconfig or /etc/gitconfig reach git.
//
// And through one pool: each git process costs a process and about six file descriptors, so a
// request that asks for thousands of lookups at once must wait its turn rather than start them
// all (thousands of processes, EMFILE for everyone). The pool is per server process because
// descriptors and processes are.

/** Defaults of `limits.gitProcesses` and `limits.gitQueue` (see config/schema.ts). */
export const GIT_POOL_DEFAULTS = { concurrency: 8, queue: 512 }

/** The slots every git process of this server takes; the composition root sets the configured limits. */
export const gitPool = new Pool('git', GIT_POOL_DEFAULTS)

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

/**
 * Runs `git [--git-dir=…] [-c k=v…] args…` in a slot of the git pool, buffering stdout up to a
 * limit. Throws on unexpected exit codes, UNAVAILABLE when the pool's queue is full or the
 * process is out of descriptors.
 */
export function runGit(args: readonly string[], opts: GitRun = {}): Promise<GitOutput> {
  return gitPool.run(() => spawnGit(args, opts))
}

async function spawnGit(args: readonly string[], opts: GitRun): Promise<GitOutput> {
  const full = [
    ...(opts.gitDir ? [`--git-dir=${opts.gitDir}`] : []),
    ...Object.entries(opts.config ?? {}).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
    ...args,
  ]
  const max = opts.maxOutput ?? DEFAULT_MAX_OUTPUT
  const child = await startProcess('git', full, { env: gitEnv(opts.env), stdio: ['pipe', 'pipe', 'pipe'] }).catch((e: Error) => {
    throw e instanceof WharfError ? e : new Error(`cannot run git: ${e.message}`, { cause: e })
  })
  return new Promise((resolve, reject) => {
    const out: Buffer[] = []
    let outBytes = 0
    let err = ''
    let overflow = false
    let readError: Error | undefined
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length
      if (outBytes > max) {
        if (!overflow) child.kill('SIGKILL')
        overflow = true
        return
      }
      out.push(b)
    })
    child.stdout.on('error', (e) => (readError = e))
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 8192) err += b.toString('utf8')
    })
    child.on('close', (code, signal) => {
      if (overflow) return reject(new WharfError('BAD_REQUEST', `git ${args[0]} produced more than ${max} bytes`, { limit: max }))
      if (readError) return reject(new Error(`cannot read the output of git ${args[0]}: ${readError.message}`, { cause: readError }))
      const c = code ?? -1
      if (c === 0 || opts.okCodes?.includes(c)) return resolve({ code: c, stdout: Buffer.concat(out), stderr: err })
      reject(new GitCommandError(args, c, signal, err))
    })
    child.stdin.end(opts.input)
  })
}

/**
 * Runs git with its standard output as a stream (archives, raw blobs), in a slot of the git pool
 * held until the process exits. Resolves once the first bytes arrived or the process ended, so a
 * failure before any output (an unknown object) rejects here and the caller can still answer with
 * an error instead of a truncated body. Destroying the stream (the client went away) or aborting
 * `signal` kills the process; a failure after the first bytes errors the stream.
 */
export async function streamGit(args: readonly string[], opts: { gitDir: string; signal?: AbortSignal | undefined }): Promise<Readable> {
  const release = await gitPool.acquire(opts.signal)
  let child: ChildProcessByStdio<null, Readable, Readable>
  try {
    child = await startProcess('git', [`--git-dir=${opts.gitDir}`, ...args], { env: gitEnv(), stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (e) {
    release()
    throw e
  }
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1))).finally(release)
  const kill = () => child.kill('SIGKILL')
  opts.signal?.addEventListener('abort', kill, { once: true })
  let err = ''
  child.stderr.on('data', (b: Buffer) => {
    if (err.length < 8192) err += b.toString('utf8')
  })
  const failed = (code: number) => new GitCommandError(args, code, null, err)
  const out = child.stdout
  const first = await new Promise<Buffer | null>((resolve, reject) => {
    const onData = (b: Buffer) => {
      out.off('data', onData)
      out.pause()
      resolve(b)
    }
    out.on('data', onData)
    void exited.then((code) => {
      out.off('data', onData)
      if (code === 0) resolve(null)
      else reject(failed(code))
    })
  })
  async function* rest(): AsyncGenerator<Buffer> {
    try {
      if (first === null) return
      yield first
      for await (const chunk of out) yield chunk as Buffer
      const code = await exited
      if (code !== 0) throw failed(code)
    } finally {
      opts.signal?.removeEventListener('abort', kill)
      if (child.exitCode === null && child.signalCode === null) kill()
    }
  }
  return Readable.from(rest(), { objectMode: false })
}

/**
 * `git http-backend` (the CGI `req` describes) in a slot of the git pool, held until the program
 * exited. Waiting for the slot ends when `req.signal` aborts.
 */
export async function runGitCgi(req: CgiRequest): Promise<CgiResponse> {
  const release = await gitPool.acquire(req.signal)
  try {
    const cgi = await runCgi(req)
    void cgi.done.finally(release)
    return cgi
  } catch (e) {
    release()
    throw e
  }
}

export class GitCommandError extends Error {
  readonly code: number
  readonly stderr: string
  constructor(args: readonly string[], code: number, signal: NodeJS.Signals | null, stderr: string) {
    super(
      `git ${args.slice(0, 3).join(' ')} failed (${signal ? `signal ${signal}` : `exit code ${code}`}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`,
    )
    this.name = 'GitCommandError'
    this.code = code
    this.stderr = stderr
  }
}
