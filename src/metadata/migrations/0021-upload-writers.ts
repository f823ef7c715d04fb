import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Several nodes (issue 15): an upload session's chunks may reach any node, so who writes its temp
// file is decided here, not in one process's memory (src/registry/uploads.ts: claims).
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  // The request that claimed the session last; kept after it finished, so a node can tell whether
  // the running digest it holds covers the bytes stored (it does only if it wrote the last chunk).
  await db.schema
    .alterTable('uploads')
    .addColumn('writer', 'text', (c) => c.notNull().defaultTo(''))
    .execute()
  // Until when that request may write (ISO); null once it finished. A node that died mid-chunk
  // leaves it set, and another request takes the session over once it is past.
  await db.schema.alterTable('uploads').addColumn('writer_until', 'text').execute()
}
