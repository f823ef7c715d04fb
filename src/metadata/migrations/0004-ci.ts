import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Pipelines, jobs, CI/CD variables and trigger tokens.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('pipelines')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('iid', 'integer', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('tag', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('sha', 'text', (c) => c.notNull())
    .addColumn('before_sha', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('yaml_errors', 'text')
    .addColumn('variables', 'text', (c) => c.notNull().defaultTo('[]'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .addUniqueConstraint('pipelines_project_iid', ['project_id', 'iid'])
    .execute()

  await db.schema
    .createTable('ci_jobs')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('pipeline_id', 'integer', (c) => c.notNull().references('pipelines.id').onDelete('cascade'))
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('stage', 'text', (c) => c.notNull())
    .addColumn('stage_idx', 'integer', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('when', 'text', (c) => c.notNull())
    .addColumn('allow_failure', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('needs', 'text') // JSON array of job names, or null for stage ordering
    .addColumn('definition', 'text', (c) => c.notNull()) // JSON: the merged job config
    .addColumn('variables', 'text', (c) => c.notNull().defaultTo('[]')) // JSON: predefined + config variables (no secrets)
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    // A retried job is kept for history; only the latest attempt per name counts.
    .addColumn('retried', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('failure_reason', 'text')
    .addColumn('runner_id', 'integer')
    .addColumn('token_digest', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('queued_at', 'text')
    .addColumn('started_at', 'text')
    .addColumn('finished_at', 'text')
    .execute()
  await db.schema.createIndex('ci_jobs_pipeline').on('ci_jobs').column('pipeline_id').execute()
  await db.schema.createIndex('ci_jobs_status').on('ci_jobs').columns(['status', 'id']).execute()
  await db.schema.createIndex('ci_jobs_token').on('ci_jobs').column('token_digest').execute()

  await db.schema
    .createTable('ci_variables')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('owner_kind', 'text', (c) => c.notNull()) // 'project' | 'group'
    .addColumn('owner_id', 'integer', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('variable_type', 'text', (c) => c.notNull().defaultTo('env_var'))
    .addColumn('protected', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('masked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('environment_scope', 'text', (c) => c.notNull().defaultTo('*'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('ci_variables_owner_key', ['owner_kind', 'owner_id', 'key', 'environment_scope'])
    .execute()

  await db.schema
    .createTable('pipeline_triggers')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('owner_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('token_digest', 'text', (c) => c.notNull().unique())
    .addColumn('token_hint', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
}
