import { Readable } from 'node:stream'
import { WharfError } from '../core/errors.ts'
import { startProcess } from '../core/spawn.ts'

// Running a CGI program (git http-backend) with a streamed request body and a streamed response:
// RFC 3875's response is a header block (`Status:`, `Content-Type:`, ... then an empty line)
// followed by the body, which is handed on as a stream so packs are never held in memory.

/** A CGI header block larger than this is a broken program, not a response. */
export const MAX_CGI_HEAD = 64 << 10

export interface CgiHead {
  status: number
  headers: Array<[string, string]>
}

export class CgiError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'CgiError'
  }
}

/**
 * Where the header block ends in `buf`: the index of the first body byte, or -1 when the blank line
 * (CRLF CRLF or LF LF, also mixed) has not arrived yet.
 */
export function headEnd(buf: Buffer): number {
  // An empty header block: the output starts with the blank line.
  if (buf[0] === 0x0a) return 1
  if (buf[0] === 0x0d && buf[1] === 0x0a) return 2
  for (let i = buf.indexOf(0x0a); i >= 0; i = buf.indexOf(0x0a, i + 1)) {
    if (buf[i + 1] === 0x0a) return i + 2
    if (buf[i + 1] === 0x0d && buf[i + 2] === 0x0a) return i + 3
  }
  return -1
}

/**
 * Parses a CGI header block (without the blank line, or with it). `Status: 404 Not Found` sets the
 * status; without one it is 302 when there is a `Location`, else 200. Other lines are response
 * headers. Malformed lines and invalid statuses are errors.
 */
export function parseCgiHead(text: string): CgiHead {
  let status: number | undefined
  const headers: Array<[string, string]> = []
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '')
    if (line === '') continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw new CgiError(`malformed CGI header line: ${JSON.stringify(line.slice(0, 100))}`)
    const name = line.slice(0, colon).trim()
    const value = line.slice(colon + 1).trim()
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new CgiError(`malformed CGI header name: ${JSON.stringify(name.slice(0, 100))}`)
    if (name.toLowerCase() === 'status') {
      const m = /^([1-5]\d\d)(?:\s.*)?$/.exec(value)
      if (!m) throw new CgiError(`invalid CGI status: ${JSON.stringify(value.slice(0, 100))}`)
      status = Number(m[1])
    } else {
      headers.push([name, value])
    }
  }
  if (status === undefined) status = headers.some(([n]) => n.toLowerCase() === 'location') ? 302 : 200
  return { status, headers }
}

export interface CgiRequest {
  command: string
  args: readonly string[]
  env: NodeJS.ProcessEnv
  /** The request body, piped into the program's stdin with back-pressure; null for none. */
  body: Readable | null
  /** Aborting kills the program (the client went away). */
  signal?: AbortSignal
}

export interface CgiResponse extends CgiHead {
  /** The rest of stdout after the header block, pulled from the child as the consumer reads. */
  body: Readable
  /** Settles when the program exited and its output closed: its exit code and the start of its stderr. */
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>
  /** Kills the program (client gone). Idempotent. */
  kill(): void
}

/**
 * Starts a CGI program and resolves once its header block was read. Rejects (after killing the
 * program) when it cannot start (UNAVAILABLE when out of descriptors or processes, see
 * core/spawn.ts), or exits or fails before a complete header block.
 */
export async function runCgi(req: CgiRequest): Promise<CgiResponse> {
  if (req.signal?.aborted) throw new CgiError('the client went away before the CGI program started')
  // Its own process group, so a kill also reaches what it started (http-backend runs upload-pack/receive-pack).
  const child = await startProcess(req.command, req.args, { env: req.env, stdio: ['pipe', 'pipe', 'pipe'], detached: true }).catch(
    (e: Error) => {
      throw e instanceof WharfError ? e : new CgiError(`cannot run ${req.command}: ${e.message}`)
    },
  )
  let stderr = ''
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 8192) stderr += b.toString('utf8')
  })
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stderr }))
  })
  // Until its output closed, the group may still hold processes even if the leader exited.
  let exited = false
  child.on('close', () => (exited = true))
  const kill = () => {
    if (exited || child.pid === undefined) return
    try {
      process.kill(-child.pid, 'SIGKILL')
    } catch {
      child.kill('SIGKILL')
    }
  }

  if (req.signal) {
    if (req.signal.aborted) kill()
    else req.signal.addEventListener('abort', kill, { once: true })
    void done.then(() => req.signal?.removeEventListener('abort', kill))
  }

  // The program may stop reading early (an error answer): EPIPE on its stdin is expected then
  // (startProcess listens for it).
  if (req.body) {
    req.body.on('error', kill)
    req.body.pipe(child.stdin)
  } else {
    child.stdin.end()
  }

  return new Promise<CgiResponse>((resolve, reject) => {
    let head: Buffer = Buffer.alloc(0)
    const fail = (e: Error) => {
      cleanup()
      kill()
      reject(e)
    }
    const onData = (chunk: Buffer) => {
      head = head.length ? Buffer.concat([head, chunk]) : chunk
      const end = headEnd(head)
      if (end < 0) {
        if (head.length > MAX_CGI_HEAD) fail(new CgiError(`CGI header block larger than ${MAX_CGI_HEAD} bytes`))
        return
      }
      cleanup()
      child.stdout.pause()
      let parsed: CgiHead
      try {
        parsed = parseCgiHead(head.subarray(0, end).toString('latin1'))
      } catch (e) {
        kill()
        return reject(e as Error)
      }
      const rest = head.subarray(end)
      const stdout = child.stdout
      async function* chunks(): AsyncGenerator<Buffer> {
        if (rest.length) yield rest
        for await (const c of stdout) yield c as Buffer
      }
      resolve({ ...parsed, body: Readable.from(chunks(), { objectMode: false }), done, kill })
    }
    const onEnd = () => fail(new CgiError(`CGI program ended before its header block${stderr ? `: ${stderr.trim().slice(0, 500)}` : ''}`))
    const onError = (e: Error) => fail(new CgiError(`cannot read the output of ${req.command}: ${e.message}`))
    const cleanup = () => {
      child.stdout.off('data', onData)
      child.stdout.off('end', onEnd)
      child.stdout.off('error', onError)
    }
    child.stdout.on('data', onData)
    child.stdout.on('end', onEnd)
    child.stdout.on('error', onError)
  })
}
