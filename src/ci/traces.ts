// Job logs ("traces"): appended by runners in chunks keyed by byte offset (GitLab's
// `PATCH /jobs/:id/trace` with `Content-Range`), stored under `<ci>/traces/<job id>.log` with every
// masked variable value replaced by `[MASKED]` before it reaches the disk.
//
// Any node may take a runner's append, so nothing about a log lives in one process: its offsets and
// held-back tail are on its row, appends are serialised by a lease on that row (below), and the
// job's masked values are stored there when it starts (JobUpdates), so every node masks alike.
import { randomUUID } from 'node:crypto'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { Transform, type Readable, type Writable } from 'node:stream'
import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database } from '../metadata/schema.ts'
import { PathNotFoundError, type BlobDriver } from '../storage/driver.ts'
import { tracePath } from '../storage/paths.ts'
import { JOB_TOKEN_PATTERN } from './job-tokens.ts'
import * as rq from './runner-queries.ts'

export const MASK = '[MASKED]'

export const TRACE_LIMITS = {
  /** Stored bytes per log; beyond, the log is cut with a note (GitLab Runner's own default output_limit is 4 MiB). */
  storedBytes: 64 << 20,
}

/**
 * The lease an append holds on its log's row: renewed while the body streams, so only a node that
 * died mid-append lets it run out (then its bytes past the recorded size are dropped, as after a crash).
 */
const LEASE_MS = 30_000
/** An append waits this long for another node's append to the same log before answering 503 (the runner retries). */
const LEASE_WAIT_MS = LEASE_MS + 5_000
/** Polling for a held lease: from the first delay to the longest. */
const LEASE_POLL_MS = { first: 10, max: 250 }

/**
 * A pattern masked wherever it appears: its source, the longest text it can match, and a source
 * matching every proper prefix of a match (what must be held back at the end of a chunk).
 */
export interface MaskPattern {
  source: string
  maxLength: number
  prefix: string
}

/** Job tokens are fixed-length, so they are masked even when the job's own token is not known (after a restart). */
export const DEFAULT_MASK_PATTERNS: readonly MaskPattern[] = [
  { source: JOB_TOKEN_PATTERN.source, maxLength: 6 + 43, prefix: 'glcbt-[A-Za-z0-9_-]{0,42}|g(?:l(?:c(?:b(?:t)?)?)?)?' },
]

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * Replaces secrets in a byte stream that arrives in chunks. A secret may straddle two chunks, so
 * the end of a chunk that could be the beginning of a secret (at most `holdBack` bytes, one less
 * than the longest secret) stays behind as a tail until the next chunk shows what it is; `flush`
 * masks and releases the tail when the log ends. Works on bytes (latin1 strings), so multi-byte
 * UTF-8 split across chunks is harmless.
 */
export class TraceMasker {
  private readonly re: RegExp | undefined
  private readonly literals: string[]
  private readonly prefixes: RegExp[]
  readonly holdBack: number

  constructor(secrets: readonly string[], patterns: readonly MaskPattern[] = DEFAULT_MASK_PATTERNS) {
    const literals = [...new Set(secrets.filter((s) => s.length > 0).map((s) => Buffer.from(s, 'utf8').toString('latin1')))]
    // Longest first, so that at one position the longer of two overlapping secrets wins.
    literals.sort((a, b) => b.length - a.length)
    const sources = [...literals.map(escapeRegExp), ...patterns.map((p) => p.source)]
    this.re = sources.length ? new RegExp(sources.join('|'), 'g') : undefined
    this.literals = literals
    this.prefixes = patterns.map((p) => new RegExp(`(?:${p.prefix})$`))
    const longest = Math.max(0, ...literals.map((l) => l.length), ...patterns.map((p) => p.maxLength))
    this.holdBack = Math.max(0, longest - 1)
  }

  /** Masks `tail + chunk`; returns the bytes that are safe to store and the new tail. */
  process(tail: Buffer, chunk: Buffer): { out: Buffer; tail: Buffer } {
    const buf = (tail.length ? Buffer.concat([tail, chunk]) : chunk).toString('latin1')
    if (!this.re) return { out: Buffer.from(buf, 'latin1'), tail: Buffer.alloc(0) }
    const matches = [...buf.matchAll(this.re)]
    let cut = this.partialStart(buf)
    // Never cut through a match: keep it whole in the tail (it is masked once the tail moves on).
    for (const m of matches) {
      const end = m.index + m[0].length
      if (m.index < cut && end > cut) {
        cut = m.index
        break
      }
      if (m.index >= cut) break
    }
    return { out: Buffer.from(this.replace(buf, matches, cut), 'latin1'), tail: Buffer.from(buf.slice(cut), 'latin1') }
  }

  /**
   * Where the earliest possible beginning of a secret that is not complete yet starts: `buf` from
   * there on is a proper prefix of a secret (or of a pattern's match); `buf.length` when none.
   */
  private partialStart(buf: string): number {
    let best = buf.length
    for (const s of this.literals) {
      // Longest prefix first: the earliest start wins.
      for (let k = Math.min(s.length - 1, buf.length); k >= 1; k--) {
        const start = buf.length - k
        if (start >= best) break
        if (buf.charCodeAt(start) === s.charCodeAt(0) && buf.endsWith(s.slice(0, k))) {
          best = start
          break
        }
      }
    }
    const from = Math.max(0, buf.length - this.holdBack)
    const window = buf.slice(from)
    for (const p of this.prefixes) {
      const m = p.exec(window)
      if (m && m[0].length > 0 && from + m.index < best) best = from + m.index
    }
    return best
  }

  /** Masks everything that is left (the log ended). */
  flush(tail: Buffer): Buffer {
    if (!tail.length) return tail
    const buf = tail.toString('latin1')
    if (!this.re) return tail
    return Buffer.from(this.replace(buf, [...buf.matchAll(this.re)], buf.length), 'latin1')
  }

  /** Masks a whole text at once. */
  mask(text: Buffer): Buffer {
    return this.flush(text)
  }

  private replace(buf: string, matches: RegExpExecArray[] | RegExpMatchArray[], cut: number): string {
    let out = ''
    let pos = 0
    for (const m of matches) {
      const start = m.index!
      const end = start + m[0].length
      if (end > cut) break
      out += buf.slice(pos, start) + MASK
      pos = end
    }
    return out + buf.slice(pos, cut)
  }

  /** A stream that masks what passes through (for reads of logs written before a value became masked). */
  transform(): Transform {
    let tail: Buffer = Buffer.alloc(0)
    return new Transform({
      transform: (chunk: Buffer, _enc, cb) => {
        const r = this.process(tail, chunk)
        tail = r.tail
        cb(null, r.out)
      },
      flush: (cb) => cb(null, this.flush(tail)),
    })
  }
}

export interface TraceState {
  /** The runner's offset: bytes of the log it sent that were taken (Content-Range space). */
  received: number
  /** Bytes in the file. */
  stored: number
  tail: Buffer
  truncated: boolean
}

export type AppendResult = { ok: true; received: number } | { ok: false; received: number }

/**
 * Job logs in storage (the data directory or the bucket), with their offsets in the database.
 * Appends to one job's log are serialised: in this process by a promise chain, across nodes by the
 * row's lease (`lock_owner` until `locked_until`), which every write of the row is conditional on.
 */
export class TraceStore {
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  private readonly locks = new Map<number, Promise<unknown>>()

  constructor(db: Kysely<Database>, driver: BlobDriver) {
    this.db = db
    this.driver = driver
  }

  /** The log's path in storage. */
  path(jobId: number): string {
    return tracePath(jobId)
  }

  async state(jobId: number): Promise<TraceState> {
    const row = await rq.findTrace(this.db, jobId)
    return row
      ? {
          received: row.received_bytes,
          stored: row.stored_bytes,
          tail: row.tail ? Buffer.from(row.tail) : Buffer.alloc(0),
          truncated: row.truncated === 1,
        }
      : { received: 0, stored: 0, tail: Buffer.alloc(0), truncated: false }
  }

  /**
   * Appends a chunk that starts at the runner's offset `start`. A chunk starting past what was
   * received is refused (the runner resends from `received`: HTTP 416); bytes already received
   * are skipped, so a retried chunk is never stored twice. Streams to storage as the body arrives.
   */
  append(
    jobId: number,
    start: number,
    body: AsyncIterable<Buffer | string> | Iterable<Buffer> | Readable,
    masker: TraceMasker,
  ): Promise<AppendResult> {
    return this.exclusive(jobId, async (lease) => {
      const st = await this.state(jobId)
      if (start > st.received) return { ok: false, received: st.received }
      let skip = st.received - start
      let { received, stored: pos, tail, truncated } = st
      // Bytes beyond the recorded size are from an append that crashed before it was recorded: the appender drops them.
      const w = await this.driver.appender(this.path(jobId), pos)
      // What storage confirmed: an append that breaks off records only that (writes call back in order).
      let confirmed = pos
      let failed = false
      try {
        for await (const raw of body as AsyncIterable<Buffer | string>) {
          let chunk = typeof raw === 'string' ? Buffer.from(raw) : raw
          if (skip > 0) {
            if (chunk.length <= skip) {
              skip -= chunk.length
              continue
            }
            chunk = chunk.subarray(skip)
            skip = 0
          }
          received += chunk.length
          await lease.renew()
          if (truncated) continue
          const r = masker.process(tail, chunk)
          tail = r.tail
          let out = r.out
          if (pos + out.length + tail.length > TRACE_LIMITS.storedBytes) {
            out = Buffer.concat([out.subarray(0, Math.max(0, TRACE_LIMITS.storedBytes - pos)), Buffer.from(`\n${truncationNote()}\n`)])
            tail = Buffer.alloc(0)
            truncated = true
          }
          if (out.length) {
            const upTo = pos + out.length
            const written = w.write(out, (err) => {
              if (!err) confirmed = upTo
            })
            if (!written) await once(w, 'drain')
          }
          pos += out.length
        }
        await endWritable(w)
      } catch (e) {
        failed = true
        w.destroy()
        if (!w.closed) await once(w, 'close').catch(() => {})
        throw e
      } finally {
        await lease.save({
          received_bytes: received,
          stored_bytes: failed ? confirmed : pos,
          tail,
          truncated: truncated ? 1 : 0,
          updated_at: nowIso(),
        })
      }
      return { ok: true, received }
    })
  }

  /** The log ended: masks and writes the held-back tail, then `line` (a server message), if any. */
  finish(jobId: number, masker: TraceMasker, line?: string): Promise<void> {
    return this.exclusive(jobId, async (lease) => {
      const st = await this.state(jobId)
      const parts = [masker.flush(st.tail)]
      if (line) parts.push(Buffer.from(`${st.stored + st.tail.length > 0 ? '\n' : ''}${line}\n`))
      const out = Buffer.concat(parts)
      if (out.length) {
        const w = await this.driver.appender(this.path(jobId), st.stored)
        w.write(out)
        await endWritable(w)
      }
      await lease.save({
        received_bytes: st.received,
        stored_bytes: st.stored + out.length,
        tail: Buffer.alloc(0),
        truncated: st.truncated ? 1 : 0,
        updated_at: nowIso(),
      })
    })
  }

  /** Stored size and a stream from `start` (the recorded size bounds it, never a half-written append). */
  async read(jobId: number, start = 0): Promise<{ size: number; stream: Readable | undefined }> {
    const size = await this.size(jobId)
    if (start >= size) return { size, stream: undefined }
    try {
      return { size, stream: await this.driver.reader(this.path(jobId), { offset: start, length: size - start }) }
    } catch (e) {
      if (e instanceof PathNotFoundError) return { size: 0, stream: undefined }
      throw e
    }
  }

  /** The stored size of a job's log (0 when it has none). */
  async size(jobId: number): Promise<number> {
    const st = await this.state(jobId)
    if (st.stored > 0) return st.stored
    // A log written before it was recorded (or none): trust the file, if any.
    return (await this.driver.stat(this.path(jobId)))?.size ?? 0
  }

  /** Removes a job's log (GitLab's job erase), after any append in flight. */
  erase(jobId: number): Promise<void> {
    return this.exclusive(jobId, async () => {
      await rq.deleteTrace(this.db, jobId)
      await this.driver.delete(this.path(jobId))
    })
  }

  /** The masked values stored when the job started (see JobUpdates.maskLog); undefined when none were. */
  async masks(jobId: number): Promise<string[] | undefined> {
    const row = await rq.findTrace(this.db, jobId)
    return row?.masks ? (JSON.parse(row.masks) as string[]) : undefined
  }

  /** Stores a running job's masked values for every node (null: the log ended, they are not kept). */
  saveMasks(jobId: number, masks: readonly string[] | null): Promise<void> {
    return rq.saveTraceMasks(this.db, jobId, masks && JSON.stringify(masks), nowIso())
  }

  /** Runs `fn` holding the log: after this process's earlier calls for the job, and under the row's lease. */
  private exclusive<T>(jobId: number, fn: (lease: TraceLease) => Promise<T>): Promise<T> {
    const leased = async () => {
      const lease = await this.lease(jobId)
      try {
        return await fn(lease)
      } finally {
        await rq.releaseTrace(this.db, jobId, lease.owner)
      }
    }
    const prev = this.locks.get(jobId) ?? Promise.resolve()
    const run = prev.then(leased, leased)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.locks.set(jobId, settled)
    void settled.then(() => {
      if (this.locks.get(jobId) === settled) this.locks.delete(jobId)
    })
    return run
  }

  /** Waits for the log's lease (another node's append may hold it): UNAVAILABLE after LEASE_WAIT_MS. */
  private async lease(jobId: number): Promise<TraceLease> {
    const owner = randomUUID()
    const take = () => rq.leaseTrace(this.db, jobId, owner, nowIso(), new Date(Date.now() + LEASE_MS).toISOString())
    const deadline = Date.now() + LEASE_WAIT_MS
    let held = await take()
    // The first append of a log makes its row (only then is the insert needed).
    if (!held) await rq.ensureTrace(this.db, jobId, nowIso())
    for (let wait = LEASE_POLL_MS.first; !held; wait = Math.min(wait * 2, LEASE_POLL_MS.max)) {
      held = await take()
      if (held) break
      if (Date.now() > deadline) throw new WharfError('UNAVAILABLE', `the log of job ${jobId} is being appended to elsewhere; retry`, {})
      await sleep(wait)
    }
    let renewed = Date.now()
    return {
      owner,
      renew: async () => {
        if (Date.now() - renewed < LEASE_MS / 3) return
        renewed = Date.now()
        if (!(await take())) throw leaseLost(jobId)
      },
      save: async (t) => {
        if (!(await rq.saveTrace(this.db, jobId, owner, t))) throw leaseLost(jobId)
      },
    }
  }
}

/** An append's hold on a log: its owner id, renewal while streaming, and the row's update under it. */
interface TraceLease {
  owner: string
  renew(): Promise<void>
  save(t: { received_bytes: number; stored_bytes: number; tail: Uint8Array; truncated: number; updated_at: string }): Promise<void>
}

function leaseLost(jobId: number): WharfError {
  return new WharfError('UNAVAILABLE', `the log of job ${jobId} was taken over by another append; retry`, {})
}

function truncationNote(): string {
  return `Job's log exceeded limit of ${TRACE_LIMITS.storedBytes} bytes. Job execution will continue but no more output will be collected.`
}

function endWritable(w: Writable): Promise<void> {
  return new Promise((resolve, reject) => w.end((err?: Error | null) => (err ? reject(err) : resolve())))
}
