import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Issue 17's remaining keywords.
// - `coverage:`: the percentage its regular expression finds in a job's log when the job finishes
//   (GitLab's `coverage` of a job), null when the job has none.
// - `workflow:auto_cancel:on_job_failure`: 'all' cancels the rest of the pipeline when a job fails.
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('ci_jobs').addColumn('coverage', 'real').execute()
  await db.schema
    .alterTable('pipelines')
    .addColumn('auto_cancel_on_job_failure', 'text', (c) => c.notNull().defaultTo('none'))
    .execute()
}
