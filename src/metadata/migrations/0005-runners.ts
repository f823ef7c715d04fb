import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Runners, job runtime state (heartbeat, exit code), job traces, artifacts and the job-token allowlist.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('runners')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('runner_type', 'text', (c) => c.notNull()) // instance_type | group_type | project_type
    .addColumn('namespace_id', 'integer', (c) => c.references('namespaces.id').onDelete('cascade'))
    .addColumn('project_id', 'integer', (c) => c.references('projects.id').onDelete('cascade'))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('tag_list', 'text', (c) => c.notNull().defaultTo('[]')) // JSON array of strings
    .addColumn('run_untagged', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('paused', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('locked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('access_level', 'text', (c) => c.notNull().defaultTo('not_protected'))
    .addColumn('maximum_timeout', 'integer')
    .addColumn('maintenance_note', 'text')
    .addColumn('token_digest', 'text', (c) => c.notNull().unique())
    .addColumn('token_hint', 'text', (c) => c.notNull())
    .addColumn('token_expires_at', 'text')
    .addColumn('contacted_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('created_by', 'integer', (c) => c.references('users.id').onDelete('set null'))
    // What the runner said about itself on its last request.
    .addColumn('name', 'text')
    .addColumn('version', 'text')
    .addColumn('revision', 'text')
    .addColumn('platform', 'text')
    .addColumn('architecture', 'text')
    .addColumn('executor', 'text')
    .addColumn('ip_address', 'text')
    .execute()

  await db.schema.alterTable('ci_jobs').addColumn('heartbeat_at', 'text').execute()
  await db.schema.alterTable('ci_jobs').addColumn('exit_code', 'integer').execute()
  await db.schema.createIndex('ci_jobs_runner').on('ci_jobs').column('runner_id').execute()

  // Where a job's log stands: `received_bytes` counts the runner's bytes (its Content-Range
  // offsets), `stored_bytes` the file's (masking changes lengths), `tail` the bytes held back
  // because they may begin a secret that the next chunk completes.
  await db.schema
    .createTable('ci_job_traces')
    .addColumn('job_id', 'integer', (c) => c.primaryKey().references('ci_jobs.id').onDelete('cascade'))
    .addColumn('received_bytes', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('stored_bytes', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('tail', ctx.bytes)
    .addColumn('truncated', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()

  await db.schema
    .createTable('ci_job_artifacts')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('job_id', 'integer', (c) => c.notNull().references('ci_jobs.id').onDelete('cascade'))
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('file_type', 'text', (c) => c.notNull()) // archive, junit, dotenv, ...
    .addColumn('file_format', 'text', (c) => c.notNull()) // zip, gzip, raw
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('size', 'integer', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('expire_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('ci_job_artifacts_job_type', ['job_id', 'file_type'])
    .execute()
  await db.schema.createIndex('ci_job_artifacts_expire').on('ci_job_artifacts').column('expire_at').execute()

  // Project `project_id` lets jobs of `allowed_project_id` use their job token on it (GitLab's
  // "CI/CD job token allowlist" of inbound access).
  await db.schema
    .createTable('job_token_allowlist')
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('allowed_project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('job_token_allowlist_pk', ['project_id', 'allowed_project_id'])
    .execute()
}
