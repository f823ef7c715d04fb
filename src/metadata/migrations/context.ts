// Its own file so the migrations can import it without importing the index that imports them.
import type { ColumnDefinitionBuilder, RawBuilder } from 'kysely'

/** Column types that differ between SQLite and PostgreSQL, so one migration serves both. */
export interface MigrationContext {
  serial: 'integer' | 'serial'
  /** Primary keys never reuse a deleted row's id (SQLite's AUTOINCREMENT; PostgreSQL sequences never do). */
  primaryId: (c: ColumnDefinitionBuilder) => ColumnDefinitionBuilder
  bytes: 'blob' | 'bytea'
  binaryText: RawBuilder<unknown>
}
