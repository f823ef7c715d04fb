import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Commit statuses posted by external systems (GitLab's POST /projects/:id/statuses/:sha): one row
// per project, commit, ref and name, updated in place when the same name is posted again.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('commit_statuses')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('sha', 'text', (c) => c.notNull())
    // '' when posted without a ref (a unique key cannot hold NULLs alike on both databases).
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('description', 'text')
    .addColumn('target_url', 'text')
    .addColumn('coverage', 'real')
    .addColumn('author_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addUniqueConstraint('commit_statuses_key', ['project_id', 'sha', 'ref', 'name'])
    .execute()
}
