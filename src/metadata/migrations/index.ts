import { sql, type ColumnDefinitionBuilder, type Kysely, type Migration, type MigrationProvider, type RawBuilder } from 'kysely'
import * as m0001 from './0001-registry.ts'
import * as m0002 from './0002-accounts.ts'
import * as m0003 from './0003-oauth-tokens.ts'
import * as m0004 from './0004-ci.ts'
import * as m0005 from './0005-runners.ts'
import * as m0006 from './0006-sessions.ts'
import * as m0007 from './0007-push-events.ts'
import * as m0008 from './0008-dependency-proxy.ts'
import * as m0009 from './0009-protected-refs.ts'
import * as m0010 from './0010-commit-statuses.ts'

/** Column types that differ between SQLite and PostgreSQL, so one migration serves both. */
export interface MigrationContext {
  serial: 'integer' | 'serial'
  /** Primary keys never reuse a deleted row's id (SQLite's AUTOINCREMENT; PostgreSQL sequences never do). */
  primaryId: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder
  bytes: 'blob' | 'bytea'
  binaryText: RawBuilder<unknown>
}

export type DialectKind = 'sqlite' | 'postgres'

function context(kind: DialectKind): MigrationContext {
  return kind === 'sqlite'
    ? { serial: 'integer', primaryId: (c) => c.primaryKey().autoIncrement(), bytes: 'blob', binaryText: sql`text collate binary` }
    : { serial: 'serial', primaryId: (c) => c.primaryKey(), bytes: 'bytea', binaryText: sql`text collate "C"` }
}

const MIGRATIONS: Record<string, { up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> }> = {
  '0001-registry': m0001,
  '0002-accounts': m0002,
  '0003-oauth-tokens': m0003,
  '0004-ci': m0004,
  '0005-runners': m0005,
  '0006-sessions': m0006,
  '0007-push-events': m0007,
  '0008-dependency-proxy': m0008,
  '0009-protected-refs': m0009,
  '0010-commit-statuses': m0010,
}

export function migrationProvider(kind: DialectKind): MigrationProvider {
  const ctx = context(kind)
  return {
    async getMigrations(): Promise<Record<string, Migration>> {
      return Object.fromEntries(
        Object.entries(MIGRATIONS).map(([name, m]) => [name, { up: (db: Kysely<unknown>) => m.up(db, ctx) }]),
      )
    },
  }
}
