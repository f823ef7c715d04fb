import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Issue 17's CI keywords.
// - `trigger:` jobs are bridges (`ci_jobs.kind`): no runner takes them; the pipeline they create
//   points back at them (`pipelines.upstream_job_id`), so the bridge can follow its status.
// - `resource_group:` (`ci_jobs.resource_group`): one job of a group at a time per project; a
//   group's `process_mode` (GitLab's resource group API) picks the next waiting job.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .alterTable('ci_jobs')
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('build')) // 'build' | 'bridge'
    .execute()
  await db.schema.alterTable('ci_jobs').addColumn('resource_group', 'text').execute()
  await db.schema.createIndex('ci_jobs_resource_group').on('ci_jobs').columns(['project_id', 'resource_group', 'status']).execute()
  await db.schema.alterTable('pipelines').addColumn('upstream_job_id', 'integer').execute()
  await db.schema.createIndex('pipelines_upstream_job').on('pipelines').column('upstream_job_id').execute()
  await db.schema
    .createTable('resource_groups')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('process_mode', 'text', (c) => c.notNull()) // 'unordered' | 'oldest_first' | 'newest_first'
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('resource_groups_key', ['project_id', 'key'])
    .execute()
}
