import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Pipeline schedules (GitLab's pipeline_schedules: cron in a time zone, run as their owner, with
// variables), the schedule a pipeline came from, and when a delayed job (`when: delayed`,
// `start_in`) is due.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('pipeline_schedules')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('description', 'text', (c) => c.notNull())
    .addColumn('ref', 'text', (c) => c.notNull())
    .addColumn('cron', 'text', (c) => c.notNull())
    .addColumn('cron_timezone', 'text', (c) => c.notNull())
    .addColumn('active', 'integer', (c) => c.notNull().defaultTo(1))
    // ISO time of the next run; the scheduler claims a run by moving it (a conditional update).
    .addColumn('next_run_at', 'text', (c) => c.notNull())
    // A deleted owner leaves the schedule ownerless; it is deactivated when it next comes due.
    .addColumn('owner_id', 'integer', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('last_pipeline_id', 'integer', (c) => c.references('pipelines.id').onDelete('set null'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('pipeline_schedules_due').on('pipeline_schedules').columns(['active', 'next_run_at']).execute()
  await db.schema.createIndex('pipeline_schedules_project').on('pipeline_schedules').column('project_id').execute()

  await db.schema
    .createTable('pipeline_schedule_variables')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('schedule_id', 'integer', (c) => c.notNull().references('pipeline_schedules.id').onDelete('cascade'))
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('variable_type', 'text', (c) => c.notNull().defaultTo('env_var'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('pipeline_schedule_variables_key', ['schedule_id', 'key'])
    .execute()

  // No foreign key: a schedule deleted later leaves its pipelines (GitLab keeps them too).
  await db.schema.alterTable('pipelines').addColumn('pipeline_schedule_id', 'integer').execute()
  await db.schema.createIndex('pipelines_schedule').on('pipelines').column('pipeline_schedule_id').execute()
  // A `scheduled` job (when: delayed) becomes pending at this ISO time.
  await db.schema.alterTable('ci_jobs').addColumn('scheduled_at', 'text').execute()
}
