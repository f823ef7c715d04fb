// Wake-ups between Wharf nodes that share one database. On PostgreSQL a signal is a NOTIFY every
// node LISTENs for on its own connection (outside the pool, which hands connections out per
// query); on SQLite there is one node, and a signal only reaches the listeners of this process.
//
// A signal carries no data: it says "look again" (at the pending jobs, say), and the listener
// reads what changed from the database. So a lost signal costs latency, never correctness, and
// after the listening connection comes back every listener is called once (what it missed).
import { randomUUID } from 'node:crypto'
import { type Kysely, PostgresAdapter, sql } from 'kysely'
import pg from 'pg'
import { postgresUrlOf } from './db.ts'
import type { Database } from './schema.ts'

/** Reconnection delays of the listening connection: from the first to the longest. */
const RECONNECT_MS = { first: 100, max: 5_000 }

/** A channel name is one SQL identifier that LISTEN takes unquoted. */
const CHANNEL = /^[a-z][a-z0-9_]{0,62}$/

export interface Signals {
  /** Calls `fn` whenever any node (this one included) signals `channel`. Returns the unsubscribe function. */
  subscribe(channel: string, fn: () => void): () => void
  /** Signals `channel` to every node: this one's listeners at once, the others' through the database. Never rejects. */
  signal(channel: string): Promise<void>
}

// One per database handle: the nodes' listening connection is shared by every domain of a process.
const byDb = new WeakMap<Kysely<Database>, Signals>()

/**
 * The signals of the nodes sharing this database: on PostgreSQL one LISTEN connection to the URL
 * the database was opened with, open while anyone is subscribed; on SQLite, this process only.
 */
export function signalsFor(db: Kysely<Database>): Signals {
  let s = byDb.get(db)
  if (!s) {
    const url = postgresUrlOf(db)
    s = url && db.getExecutor().adapter instanceof PostgresAdapter ? new PostgresSignals(db, url) : new LocalSignals()
    byDb.set(db, s)
  }
  return s
}

class LocalSignals implements Signals {
  protected readonly listeners = new Map<string, Set<() => void>>()

  subscribe(channel: string, fn: () => void): () => void {
    if (!CHANNEL.test(channel)) throw new Error(`invalid signal channel ${channel}`)
    const set = this.listeners.get(channel) ?? new Set<() => void>()
    this.listeners.set(channel, set)
    set.add(fn)
    return () => {
      set.delete(fn)
      if (set.size === 0 && this.listeners.get(channel) === set) this.listeners.delete(channel)
    }
  }

  signal(channel: string): Promise<void> {
    this.fire(channel)
    return Promise.resolve()
  }

  protected fire(channel: string): void {
    for (const fn of [...(this.listeners.get(channel) ?? [])]) fn()
  }
}

/**
 * LISTEN on a dedicated client, opened with the first subscription and closed with the last, and
 * reconnected (with backoff) whenever it fails; NOTIFY through the pool. Each node tags its
 * notifications so it does not hear its own twice (its listeners were called directly).
 */
class PostgresSignals extends LocalSignals {
  private readonly node = randomUUID()
  private client: pg.Client | undefined
  private connecting = false
  private retryMs = RECONNECT_MS.first
  private retry: NodeJS.Timeout | undefined
  private readonly db: Kysely<Database>
  private readonly url: string

  constructor(db: Kysely<Database>, url: string) {
    super()
    this.db = db
    this.url = url
  }

  override subscribe(channel: string, fn: () => void): () => void {
    const had = this.listeners.has(channel)
    const off = super.subscribe(channel, fn)
    if (this.client && !had) this.client.query(`listen ${channel}`).catch(() => this.drop(this.client))
    else if (!this.client) this.connect()
    return () => {
      off()
      if (this.listeners.size === 0) this.disconnect()
      else if (!this.listeners.has(channel)) this.client?.query(`unlisten ${channel}`).catch(() => this.drop(this.client))
    }
  }

  override async signal(channel: string): Promise<void> {
    this.fire(channel)
    // Best effort: a node that misses it looks again when its long poll times out.
    await sql`select pg_notify(${channel}, ${this.node})`.execute(this.db).catch(() => {})
  }

  private connect(): void {
    if (this.client || this.connecting || this.listeners.size === 0) return
    this.connecting = true
    const client = new pg.Client({ connectionString: this.url, keepAlive: true })
    client.on('error', () => this.drop(client))
    client.on('end', () => this.drop(client))
    client.on('notification', (n) => {
      if (n.payload !== this.node) this.fire(n.channel)
    })
    void (async () => {
      try {
        await client.connect()
        for (const channel of this.listeners.keys()) await client.query(`listen ${channel}`)
      } catch {
        this.connecting = false
        this.drop(client)
        return
      }
      this.connecting = false
      if (this.listeners.size === 0) return void client.end().catch(() => {})
      this.client = client
      this.retryMs = RECONNECT_MS.first
      // Whatever was signalled while no connection listened is looked at now.
      for (const channel of [...this.listeners.keys()]) this.fire(channel)
    })()
  }

  /** The connection failed: closes it and, while anyone listens, connects again after a backoff. */
  private drop(client: pg.Client | undefined): void {
    if (!client) return
    if (this.client === client) this.client = undefined
    client.removeAllListeners('notification')
    client.end().catch(() => {})
    if (this.listeners.size === 0 || this.retry || this.connecting || this.client) return
    this.retry = setTimeout(() => {
      this.retry = undefined
      this.connect()
    }, this.retryMs)
    this.retry.unref()
    this.retryMs = Math.min(this.retryMs * 2, RECONNECT_MS.max)
  }

  private disconnect(): void {
    clearTimeout(this.retry)
    this.retry = undefined
    const c = this.client
    this.client = undefined
    if (c) {
      c.removeAllListeners('notification')
      c.end().catch(() => {})
    }
  }
}
