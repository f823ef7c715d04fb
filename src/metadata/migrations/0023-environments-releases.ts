import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Issue 17's `environment` and `release` keywords.
// - `environments`: a project's deploy targets by name (GitLab's environments), their state
//   (available, stopping, stopped), tier and auto-stop time.
// - `deployments`: one per job attempt with `environment:action: start`, its status following the job.
// - `releases` and `release_links`: a release per tag, made through the API or by a job's `release:`.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('environments')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('slug', 'text', (c) => c.notNull())
    .addColumn('external_url', 'text')
    .addColumn('state', 'text', (c) => c.notNull()) // 'available' | 'stopping' | 'stopped'
    .addColumn('tier', 'text', (c) => c.notNull())
    .addColumn('auto_stop_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('environments_name', ['project_id', 'name'])
    .execute()
  await db.schema
    .createTable('deployments')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('iid', 'integer', (c) => c.notNull())
    .addColumn('environment_id', 'integer', (c) => c.notNull().references('environments.id').onDelete('cascade'))
    .addColumn('job_id', 'integer', (c) => c.references('ci_jobs.id').onDelete('set null'))
    .addColumn('pipeline_id', 'integer')
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('tag', 'integer', (c) => c.notNull())
    .addColumn('sha', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull()) // created | running | success | failed | canceled | skipped | blocked
    .addColumn('user_id', 'integer')
    .addColumn('on_stop', 'text') // the name of the job that stops what this deployed (environment:on_stop)
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('finished_at', 'text')
    .addUniqueConstraint('deployments_iid', ['project_id', 'iid'])
    .addUniqueConstraint('deployments_job', ['job_id'])
    .execute()
  await db.schema.createIndex('deployments_environment').on('deployments').columns(['environment_id', 'id']).execute()
  await db.schema
    .createTable('releases')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('tag_name', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('sha', 'text', (c) => c.notNull())
    .addColumn('author_id', 'integer')
    .addColumn('job_id', 'integer')
    .addColumn('released_at', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('releases_tag', ['project_id', 'tag_name'])
    .execute()
  await db.schema
    .createTable('release_links')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('release_id', 'integer', (c) => c.notNull().references('releases.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('direct_asset_path', 'text')
    .addColumn('link_type', 'text', (c) => c.notNull()) // other | runbook | image | package
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('release_links_name', ['release_id', 'name'])
    .addUniqueConstraint('release_links_url', ['release_id', 'url'])
    .execute()
}
