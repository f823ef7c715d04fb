import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Push events, recorded when a push's ref updates are read (before the hook's file is removed),
// so that a crash or a failing listener cannot lose the pipelines a push starts: listeners
// acknowledge each ref update (`handled` counts them, in the transaction that stores the
// pipeline) and unacknowledged events are delivered again, after a restart too.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('push_events')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('project_path', 'text', (c) => c.notNull())
    .addColumn('principal', 'text', (c) => c.notNull())
    .addColumn('updates', 'text', (c) => c.notNull())
    .addColumn('at', 'text', (c) => c.notNull())
    .addColumn('handled', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('last_error', 'text')
    .addColumn('done_at', 'text')
    .execute()
  await db.schema.createIndex('push_events_done').on('push_events').column('done_at').execute()
}
