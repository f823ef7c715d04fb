import { mkdirSync } from 'node:fs'
import { dirname } from 'node:path'
import { DatabaseSync, type StatementSync } from 'node:sqlite'
import { Kysely, Migrator, SqliteDialect, type SqliteDatabase, type SqliteStatement } from 'kysely'
import { migrationProvider } from './migrations/index.ts'
import type { Database } from './schema.ts'

/** Prepared statements are cached by SQL text: the registry's hot paths reuse a handful of queries. */
const STATEMENT_CACHE_SIZE = 256

/** Adapts node:sqlite (built in, no native addon) to the better-sqlite3 shape Kysely's SqliteDialect expects. */
function nodeSqlite(path: string): SqliteDatabase {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true })
  const db = new DatabaseSync(path, { enableForeignKeyConstraints: true })
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;')
  const cache = new Map<string, { stmt: StatementSync; reader: boolean }>()
  const prepared = (sqlText: string) => {
    let entry = cache.get(sqlText)
    if (!entry) {
      const stmt = db.prepare(sqlText)
      entry = { stmt, reader: stmt.columns().length > 0 }
      if (cache.size >= STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!)
      cache.set(sqlText, entry)
    }
    return entry
  }
  type Param = import('node:sqlite').SQLInputValue
  return {
    close: () => db.close(),
    prepare(sqlText: string): SqliteStatement {
      const { stmt, reader } = prepared(sqlText)
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

export function openDb(config: DbConfig): Kysely<Database> {
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: nodeSqlite(config.path) }) })
}

export async function migrate(db: Kysely<Database>, kind: DbConfig['kind']): Promise<void> {
  // Branches add migrations in parallel, so a database may have run a later one before an earlier
  // one lands: run the missing ones instead of refusing to start (each migration is independent).
  const migrator = new Migrator({ db, provider: migrationProvider(kind), allowUnorderedMigrations: true })
  const { error, results } = await migrator.migrateToLatest()
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName
    throw new Error(`database migration ${failed ?? ''} failed: ${(error as Error).message}`)
  }
}

export function nowIso(): string {
  return new Date().toISOString()
}
