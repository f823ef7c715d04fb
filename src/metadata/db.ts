import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { Kysely, Migrator, sql, SqliteDialect, type LogConfig, type SqliteDatabase, type SqliteStatement } from 'kysely'
import { LRUCache } from 'lru-cache'
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

export type DbConfig = { kind: 'sqlite'; path: string }

/** `log` sees every query with its duration (the server's metrics time the database there). */
export function openDb(config: DbConfig, opts: { log?: LogConfig } = {}): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: nodeSqlite(config.path) }), ...(opts.log ? { log: opts.log } : {}) })
}

/** The database was written by a newer Wharf: this version refuses to run on it (migrations only go forward). */
export class SchemaTooNewError extends Error {}

export async function migrate(db: Kysely<Database>, kind: DbConfig['kind']): Promise<void> {
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

export function nowIso(): string {
  return new Date().toISOString()
}

/** A LIKE pattern matching `s` anywhere, case-insensitively; LIKE's own wildcards are dropped from the search. */
export const likeTerm = (s: string) => `%${s.toLowerCase().replace(/[%_\\]/g, '')}%`
