import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// GitLab's `POST /projects/:id/jobs/:job_id/erase` removes a job's log and artifacts and keeps the job,
// marked with when it was erased (`erased_at` in the job entity).
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('ci_jobs').addColumn('erased_at', 'text').execute()
}
