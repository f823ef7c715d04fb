import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Protected branches and tags (GitLab's rules): a name or a `*` pattern per project, with the
// access level needed to push (branches) or create (tags). Enforced on git push (pre-receive hook)
// and on the repository API; protected CI variables reach pipelines of protected refs.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('protected_refs')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull()) // 'branch' | 'tag'
    .addColumn('name', 'text', (c) => c.notNull())
    // Branches: push and merge levels; tags: the create level in push_level (merge_level unused).
    .addColumn('push_level', 'integer', (c) => c.notNull())
    .addColumn('merge_level', 'integer', (c) => c.notNull())
    .addColumn('allow_force_push', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('protected_refs_name', ['project_id', 'kind', 'name'])
    .execute()
}
