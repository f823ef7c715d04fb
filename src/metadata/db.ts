import { mkdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
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
  type LogConfig,
  type SqliteDatabase,
  type SqliteStatement,
  type TransactionSettings,
} from 'kysely'
import { LRUCache } from 'lru-cache'
import pg from 'pg'
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
 * Every transaction first takes one transaction-scoped advisory lock, so transactions run one at a
 * time as they do on SQLite (one writer). The domain code was written for that: a transaction's
 * reads decide its writes (an immutable tag seen as new, a name seen as free) and must not be
 * invalidated by another transaction committing in between. Statements outside transactions run
 * on the pool in parallel.
 */
const TRANSACTION_LOCK = 0x77686172 // "whar"
function serializedTransactions(driver: Driver): Driver {
  return {
    init: () => driver.init(),
    acquireConnection: () => driver.acquireConnection(),
    async beginTransaction(connection: DatabaseConnection, settings: TransactionSettings) {
      await driver.beginTransaction(connection, settings)
      await connection.executeQuery(CompiledQuery.raw(`select pg_advisory_xact_lock(${TRANSACTION_LOCK})`))
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
    return serializedTransactions(super.createDriver())
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
  const db = new Kysely<Database>({ dialect, ...(opts.log ? { log: opts.log } : {}) })
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
