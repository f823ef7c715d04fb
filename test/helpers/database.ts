// The one place tests open Wharf's database, so every database-touching test runs on both dialects:
// SQLite by default, PostgreSQL with WHARF_TEST_DATABASE=postgres (scripts/test-postgres.sh starts
// a private cluster and sets WHARF_TEST_POSTGRES_URL to it).
//
// On PostgreSQL each data directory gets its own database, named after the directory, so a test
// that reopens the same directory (a restart) finds its data again. New databases are copies of a
// template the first test process migrates (CREATE DATABASE ... TEMPLATE is a file copy, far
// cheaper than running every migration again); migrate() still runs on each copy, as at startup.
import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import type { Kysely, LogConfig } from 'kysely'
import pg from 'pg'
import { type DbConfig, migrate, openDb } from '../../src/metadata/db.ts'
import type { Database } from '../../src/metadata/schema.ts'

export type TestDialect = 'sqlite' | 'postgres'

export const TEST_DIALECT: TestDialect = (() => {
  const v = process.env.WHARF_TEST_DATABASE ?? 'sqlite'
  if (v !== 'sqlite' && v !== 'postgres') throw new Error(`WHARF_TEST_DATABASE must be sqlite or postgres, got ${v}`)
  return v
})()

const MIGRATIONS_DIR = join(import.meta.dirname, '..', '..', 'src', 'metadata', 'migrations')

function clusterUrl(): string {
  const url = process.env.WHARF_TEST_POSTGRES_URL
  if (!url) throw new Error('WHARF_TEST_DATABASE=postgres needs WHARF_TEST_POSTGRES_URL (run the tests through scripts/test-postgres.sh)')
  return url
}

/** The cluster URL with another database name (the socket or host parameters kept). */
function urlFor(database: string): string {
  const u = new URL(clusterUrl())
  u.pathname = `/${database}`
  return u.toString()
}

/** Named after the migrations' source, so a cluster kept across edits never serves a stale schema. */
function templateName(): string {
  const h = createHash('sha256')
  for (const f of readdirSync(MIGRATIONS_DIR).sort()) h.update(f).update(readFileSync(join(MIGRATIONS_DIR, f)))
  return `wharf_template_${h.digest('hex').slice(0, 16)}`
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: clusterUrl() })
  await c.connect()
  try {
    return await fn(c)
  } finally {
    await c.end()
  }
}

let template: Promise<string> | undefined
/** Creates and migrates the template once per cluster; test processes wait on one advisory lock. */
function ensureTemplate(): Promise<string> {
  template ??= admin(async (c) => {
    const name = templateName()
    await c.query('select pg_advisory_lock(7)')
    try {
      const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [name])
      if (!rowCount) {
        // ICU's en-US order (case and punctuation second), as on most installations, where byte
        // order differs: the queries that depend on order must ask for it (collate "C").
        await c.query(`create database ${name} locale_provider icu icu_locale 'en-US' template template0`)
        const db = openDb({ kind: 'postgres', url: urlFor(name), poolSize: 1 })
        try {
          await migrate(db, 'postgres')
        } catch (e) {
          await db.destroy()
          await c.query(`drop database ${name}`)
          throw e
        }
        await db.destroy()
      }
    } finally {
      await c.query('select pg_advisory_unlock(7)')
    }
    return name
  })
  return template
}

const databaseName = (dataDir: string) => `wharf_t_${createHash('sha256').update(dataDir).digest('hex').slice(0, 24)}`

/** Where the data directory's database lives: `dataDir/wharf.db`, or its own database on the test cluster. */
export async function testDbConfig(dataDir: string): Promise<DbConfig> {
  if (TEST_DIALECT === 'sqlite') return { kind: 'sqlite', path: join(dataDir, 'wharf.db') }
  const name = databaseName(dataDir)
  const from = await ensureTemplate()
  await admin(async (c) => {
    const { rowCount } = await c.query('select 1 from pg_database where datname = $1', [name])
    if (!rowCount) await c.query(`create database ${name} template ${from}`)
  })
  return { kind: 'postgres', url: urlFor(name), poolSize: 4 }
}

/** `database.url` for a Wharf process started on the data directory (`--database-url`, WHARF_DATABASE_URL). */
export async function testDatabaseUrl(dataDir: string): Promise<string> {
  const config = await testDbConfig(dataDir)
  return config.kind === 'sqlite' ? `sqlite:${config.path}` : config.url
}

/** The data directory's database, opened and migrated as the server does at startup. */
export async function openTestDb(dataDir: string, opts: { log?: LogConfig } = {}): Promise<Kysely<Database>> {
  // As the server makes it before opening the database (on SQLite, opening the file would).
  await mkdir(dataDir, { recursive: true })
  const config = await testDbConfig(dataDir)
  const db = openDb(config, opts)
  await migrate(db, config.kind)
  return db
}
