import { mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  CompiledQuery,
  Kysely,
  Migrator,
  PostgresAdapter,
  PostgresDialect,
  sql,
  SqliteDialect,
  type DatabaseConnection,
  type Driver,
  type KyselyConfig,
  type LogConfig,
  type SqliteDatabase,
  type SqliteStatement,
  type Transaction,
  type TransactionBuilder,
  type TransactionSettings,
} from 'kysely'
import { LRUCache } from 'lru-cache'
import pg from 'pg'
import { WharfError } from '../core/errors.ts'
import { migrationProvider } from './migrations/index.ts'
import type { Database } from './schema.ts'

/** Prepared statements are cached by SQL text: the registry's hot paths reuse a handful of queries. */
const STATEMENT_CACHE_SIZE = 256

/** Adapts node:sqlite (built in, no native addon) to the better-sqlite3 shape Kysely's SqliteDialect expects. */
function nodeSqlite(path: string): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: true })
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;')
  // LRU: the statements Kysely builds are few and repeat; an ad-hoc one must not evict the hot ones.
  const cache = new LRUCache<string, { stmt: StatementSync; reader: boolean }>({ max: STATEMENT_CACHE_SIZE })
  const prepared = (sqlText: string) => {
    let entry = cache.get(sqlText)
    if (!entry) {
      const stmt = db.prepare(sqlText)
      entry = { stmt, reader: stmt.columns().length > 0 }
      cache.set(sqlText, entry)
    }
    return entry
  }
  type Param = import('node:sqlite').SQLInputValue
  return {
    close: () => db.close(),
    prepare(sqlText: string): SqliteStatement {
      // Transactions take the write lock when they begin. A deferred one that reads and then writes
      // fails at once with SQLITE_BUSY (no busy wait) when another process (`wharf gc` beside the
      // server) committed in between; an immediate one waits its turn (busy_timeout) instead.
      const { stmt, reader } = prepared(sqlText === 'begin' ? 'begin immediate' : sqlText)
      return {
        reader,
        all: (params) => stmt.all(...(params as Param[])),
        run: (params) => stmt.run(...(params as Param[])),
        iterate: (params) => stmt.iterate(...(params as Param[])),
      }
    },
  }
}

export type DbConfig = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string; poolSize?: number }

/** Connections a PostgreSQL pool opens at most when `database.poolSize` is not given. */
export const DEFAULT_POOL_SIZE = 10

/**
 * The database a `database.url` names: `sqlite:<path>` (relative to the working directory), or
 * `postgres://` / `postgresql://` (libpq's URL form: user, password, host, port, database and
 * parameters such as `?host=/run/postgresql` for a unix socket). Without one, the data directory's file.
 */
export function databaseConfig(database: { url?: string | undefined; poolSize?: number }, dataDir: string): DbConfig {
  const { url, poolSize } = database
  if (url === undefined) return { kind: 'sqlite', path: join(dataDir, 'wharf.db') }
  if (url.startsWith('sqlite:')) return { kind: 'sqlite', path: resolve(url.slice('sqlite:'.length)) }
  if (/^postgres(ql)?:\/\//.test(url)) return { kind: 'postgres', url, ...(poolSize === undefined ? {} : { poolSize }) }
  throw new Error('database.url must start with sqlite:, postgres:// or postgresql://')
}

/** PostgreSQL's int8 (count(*), sum() of integers, bigint columns) as a number, as SQLite returns it. */
const INT8_OID = 20
function parseInt8(text: string): number {
  const n = Number(text)
  // Sizes and counts stay far below 2^53; a larger one would be silently rounded, so refuse it.
  if (!Number.isSafeInteger(n)) throw new Error(`integer ${text} from the database is beyond JavaScript's safe range`)
  return n
}
const pgTypes = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID && format !== 'binary' ? parseInt8 : pg.types.getTypeParser(oid, format)) as typeof pg.types.getTypeParser,
}

/**
 * PostgreSQL transactions run at SERIALIZABLE and in parallel, retried from the start when
 * PostgreSQL reports that another one invalidated them (serialization failure 40001, deadlock
 * 40P01). The domain code was written for SQLite's one writer: a transaction's reads decide its
 * writes (a tag seen as new, a name seen as free, a group's last owner, the next pipeline iid),
 * which SERIALIZABLE keeps true without making unrelated transactions wait for one another, across
 * all nodes sharing the database. A retried callback runs again from the start, so it must keep its
 * effects in the transaction (or reset them when it begins). Statements outside transactions stay
 * at READ COMMITTED and are never retried.
 *
 * SERIALIZABLE may abort more than strictly needed (a small table is read whole, so every writer
 * to it conflicts), and a hot spot could then abort a transaction again and again. So each
 * transaction holds one advisory lock shared, taken in the same round trip as its BEGIN, and a
 * transaction aborted SHARED_ATTEMPTS times runs as all did before: at READ COMMITTED holding that
 * lock exclusively, so it waits for the running ones, runs alone (each statement seeing all that
 * committed before it) and goes through. (Not SERIALIZABLE then: its snapshot would be taken
 * before the wait, and the commits it waited for would abort it again.)
 */
const TRANSACTION_LOCK = 0x77686172 // "whar"
const SHARED_ATTEMPTS = 4
const TRANSACTION_ATTEMPTS = 8
const RETRYABLE = new Set(['40001', '40P01'])

function sharedTransactions(driver: Driver): Driver {
  return {
    init: () => driver.init(),
    acquireConnection: () => driver.acquireConnection(),
    async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings) {
      // Two statements in one simple query: one round trip, as a plain BEGIN.
      const lock =
        settings.isolationLevel === 'serializable'
          ? `start transaction isolation level serializable; select pg_advisory_xact_lock_shared(${TRANSACTION_LOCK})`
          : `start transaction isolation level read committed; select pg_advisory_xact_lock(${TRANSACTION_LOCK})`
      await connection.executeQuery(CompiledQuery.raw(lock))
    },
    commitTransaction: (connection) => driver.commitTransaction(connection),
    rollbackTransaction: (connection) => driver.rollbackTransaction(connection),
    releaseConnection: (connection) => driver.releaseConnection(connection),
    destroy: () => driver.destroy(),
    ...(driver.savepoint ? { savepoint: driver.savepoint.bind(driver) } : {}),
    ...(driver.rollbackToSavepoint ? { rollbackToSavepoint: driver.rollbackToSavepoint.bind(driver) } : {}),
    ...(driver.releaseSavepoint ? { releaseSavepoint: driver.releaseSavepoint.bind(driver) } : {}),
  }
}

class WharfPostgresDialect extends PostgresDialect {
  override createDriver(): Driver {
    return sharedTransactions(super.createDriver())
  }
}

type Run<T> = (callback: (trx: Transaction<Database>) => Promise<T>) => Promise<T>

async function retried<T>(shared: Run<T>, alone: Run<T>, callback: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await (attempt > SHARED_ATTEMPTS ? alone : shared)(callback)
    } catch (e) {
      if (!RETRYABLE.has((e as { code?: unknown }).code as string)) throw e
      if (attempt >= TRANSACTION_ATTEMPTS)
        throw new WharfError('UNAVAILABLE', 'the database is too busy with conflicting changes; try again', {}, { cause: e })
      // Jittered, so the transactions that collided do not collide again in step.
      await sleep(Math.random() * 2 ** attempt)
    }
  }
}

class WharfKysely extends Kysely<Database> {
  readonly #postgres: boolean
  constructor(config: KyselyConfig) {
    super(config)
    this.#postgres = config.dialect instanceof PostgresDialect
  }

  override transaction(): TransactionBuilder<Database> {
    if (!this.#postgres) return super.transaction()
    const builder = super.transaction().setIsolationLevel('serializable')
    const alone = super.transaction().setIsolationLevel('read committed')
    // Kysely's builder runs one attempt; it is made to retry here, so no call site needs to know.
    const once = builder.execute.bind(builder)
    builder.execute = <T>(callback: (trx: Transaction<Database>) => Promise<T>) => retried<T>(once, alone.execute.bind(alone), callback)
    return builder
  }
}

function postgresDialect(config: { url: string; poolSize?: number }): PostgresDialect {
  const pool = new pg.Pool({ connectionString: config.url, max: config.poolSize ?? DEFAULT_POOL_SIZE, types: pgTypes })
  // An idle connection the server drops (restart, failover) must not take the process down; the
  // pool replaces it on the next query, which fails or succeeds on its own.
  pool.on('error', () => {})
  return new WharfPostgresDialect({ pool })
}

const postgresUrls = new WeakMap<Kysely<Database>, string>()

/** `log` sees every query with its duration (the server's metrics time the database there). */
export function openDb(config: DbConfig, opts: { log?: LogConfig } = {}): Kysely<Database> {
  const dialect = config.kind === 'sqlite' ? new SqliteDialect({ database: nodeSqlite(config.path) }) : postgresDialect(config)
  const db = new WharfKysely({ dialect, ...(opts.log ? { log: opts.log } : {}) })
  if (config.kind === 'postgres') postgresUrls.set(db, config.url)
  return db
}

/** The URL a PostgreSQL database was opened with, for a connection outside the pool (LISTEN: signals.ts). */
export function postgresUrlOf(db: Kysely<Database>): string | undefined {
  return postgresUrls.get(db)
}

/** The database was written by a newer Wharf: this version refuses to run on it (migrations only go forward). */
export class SchemaTooNewError extends Error {}

/** The database could not be reached or refused the login: one line for the operator, not a stack. */
export class DatabaseUnavailableError extends Error {}

export async function migrate(db: Kysely<Database>, kind: DbConfig['kind']): Promise<void> {
  try {
    await sql`select 1`.execute(db)
  } catch (e) {
    // A connection error (ECONNREFUSED, ENOENT for a socket) or PostgreSQL's own (no such role or
    // database, bad password); the URL is not repeated, since it may hold the password.
    throw new DatabaseUnavailableError(`cannot use the database (database.url): ${(e as Error).message}`, { cause: e })
  }
  await refuseNewerSchema(db, kind)
  // Branches add migrations in parallel, so a database may have run a later one before an earlier
  // one lands: run the missing ones instead of refusing to start (each migration is independent).
  const migrator = new Migrator({ db, provider: migrationProvider(kind), allowUnorderedMigrations: true })
  const { error, results } = await migrator.migrateToLatest()
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    throw new Error(`database migration ${failed ?? ''} failed: ${(error as Error).message}`)
  }
}

/**
 * Kysely would report a newer database as "corrupted migrations"; an operator who started an older
 * release on upgraded data needs to hear that downgrades are not supported and what to do instead.
 */
async function refuseNewerSchema(db: Kysely<Database>, kind: DbConfig['kind']): Promise<void> {
  const tables = await db.introspection.getTables({ withInternalKyselyTables: true })
  if (!tables.some((t) => t.name === 'kysely_migration')) return
  const known = new Set(Object.keys(await migrationProvider(kind).getMigrations()))
  const executed = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db)
  const unknown = executed.rows.map((r) => r.name).filter((n) => !known.has(n))
  if (unknown.length > 0) {
    throw new SchemaTooNewError(
      `the database was upgraded by a newer Wharf (migration ${unknown.join(', ')} is unknown to this version); downgrades are not supported: run the newer version or restore the backup taken before the upgrade`,
    )
  }
}

/** True on PostgreSQL: for the few statements whose SQL differs between the dialects (JSON functions). */
export function isPostgres(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter
}

export function nowIso(): string {
  return new Date().toISOString()
}

/** A LIKE pattern matching `s` anywhere, case-insensitively; LIKE's own wildcards are dropped from the search. */
export const likeTerm = (s: string) => `%${s.toLowerCase().replace(/[%_\\]/g, '')}%`
