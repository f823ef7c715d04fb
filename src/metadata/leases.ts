// Leases: which node runs a periodic task when several Wharf nodes share one database. A lease is a
// row (name, holder, expires_at) taken with one conditional upsert: it is granted when the row is
// missing, expired, or already this node's (a renewal). The holder renews it well inside its TTL;
// a node that dies stops renewing, and another takes the task over once the lease has expired.
// Plain rows rather than PostgreSQL advisory locks: they work the same on SQLite (where `wharf gc`
// and the server are two processes on one file), need no connection held for the lock's lifetime
// (advisory locks belong to a session, and the pool hands connections around), and show who holds
// what in a query.
import { randomUUID } from 'node:crypto'
import { hostname } from 'node:os'
import type { Kysely } from 'kysely'
import type { Database } from './schema.ts'

/** A lease not renewed for this long is free: a node that died hands its tasks over within it. */
export const LEASE_TTL_MS = 30_000
/** Holders renew at least this often, so a slow tick or two never lose a lease to another node. */
export const LEASE_RENEW_MS = 10_000

/** A node's id in the leases it holds: random per process (host and pid only make logs readable). */
export function newNodeId(): string {
  return `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`
}

const iso = (ms: number) => new Date(ms).toISOString()

export class Leases {
  readonly nodeId: string
  private readonly db: Kysely<Database>
  private readonly now: () => number

  constructor(db: Kysely<Database>, nodeId: string, now: () => number = Date.now) {
    this.db = db
    this.nodeId = nodeId
    this.now = now
  }

  /** Takes the lease `name`, or renews it when this node holds it; false while another node's is unexpired. */
  async hold(name: string, ttlMs: number = LEASE_TTL_MS): Promise<boolean> {
    const now = this.now()
    const row = await this.db
      .insertInto('leases')
      .values({ name, holder: this.nodeId, expires_at: iso(now + ttlMs) })
      .onConflict((oc) =>
        oc
          .column('name')
          .doUpdateSet((eb) => ({ holder: eb.ref('excluded.holder'), expires_at: eb.ref('excluded.expires_at') }))
          .where((eb) => eb.or([eb('leases.expires_at', '<=', iso(now)), eb('leases.holder', '=', this.nodeId)])),
      )
      .returning('holder')
      .executeTakeFirst()
    return row !== undefined
  }

  /** Gives the lease up (at shutdown), so another node takes the task over at its next tick. */
  async release(name: string): Promise<void> {
    await this.db.deleteFrom('leases').where('name', '=', name).where('holder', '=', this.nodeId).execute()
  }

  /** The node holding `name` now, if any. */
  async holder(name: string): Promise<string | undefined> {
    const row = await this.db.selectFrom('leases').select(['holder', 'expires_at']).where('name', '=', name).executeTakeFirst()
    return row && row.expires_at > iso(this.now()) ? row.holder : undefined
  }
}

export interface LeasedTaskOptions {
  /** The lease's name, one per task (`uploads.sweep`). */
  name: string
  /** How often the work runs on the node that holds the lease. */
  periodMs: number
  work: () => Promise<unknown>
  onError: (err: unknown) => void
}

/**
 * A periodic task that runs on one node at a time: every tick (the period, or LEASE_RENEW_MS when
 * that is shorter) takes or renews the lease, and the holder runs the work once a period has passed
 * since its last run (a run still going is not doubled; its lease is renewed meanwhile). A node that
 * just took the lease over waits one period first, as setInterval would.
 */
export class LeasedTask {
  private readonly leases: Leases
  private readonly opts: LeasedTaskOptions
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private dueAt: number | undefined
  private running: Promise<void> | undefined

  constructor(leases: Leases, opts: LeasedTaskOptions) {
    this.leases = leases
    this.opts = opts
  }

  /** Ticks now (taking the lease if it is free, so a node that starts alone holds it at once) and then periodically. */
  start(): this {
    if (this.timer) return this
    this.timer = setInterval(() => void this.tick(), Math.min(this.opts.periodMs, LEASE_RENEW_MS)).unref()
    void this.tick()
    return this
  }

  /** Runs the work now if this node holds (or can take) the lease; false when another node has it. */
  async runNow(): Promise<boolean> {
    if (!(await this.leases.hold(this.opts.name))) return false
    await this.launch()
    return true
  }

  /** Stops ticking, waits for a run still going and gives the lease up. */
  async stop(): Promise<void> {
    clearInterval(this.timer)
    this.timer = undefined
    await this.running
    await this.leases.release(this.opts.name).catch(this.opts.onError)
  }

  private async tick(): Promise<void> {
    if (this.ticking) return
    this.ticking = true
    try {
      if (!(await this.leases.hold(this.opts.name))) {
        this.dueAt = undefined
        return
      }
      const now = Date.now()
      this.dueAt ??= now + this.opts.periodMs
      if (now >= this.dueAt && this.timer) void this.launch()
    } catch (err) {
      this.opts.onError(err)
    } finally {
      this.ticking = false
    }
  }

  private launch(): Promise<void> {
    this.dueAt = Date.now() + this.opts.periodMs
    this.running ??= this.opts
      .work()
      .then(
        () => undefined,
        (err: unknown) => this.opts.onError(err),
      )
      .finally(() => (this.running = undefined))
    return this.running
  }
}
