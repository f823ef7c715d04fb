import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// GitLab's `POST /projects/:id/jobs/:job_id/erase` removes a job's log and artifacts and keeps the job,
// marked with when it was erased (`erased_at` in the job entity).
// A project runner belongs to the project it was created in (`runners.project_id`) and may be enabled
// for more projects (`POST /projects/:id/runners`): those are `runner_projects` rows.
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('ci_jobs').addColumn('erased_at', 'text').execute()
  await db.schema
    .createTable('runner_projects')
    .addColumn('runner_id', 'integer', (c) => c.notNull().references('runners.id').onDelete('cascade'))
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('runner_projects_pk', ['runner_id', 'project_id'])
    .execute()
  await db.schema.createIndex('runner_projects_project').on('runner_projects').column('project_id').execute()
}
