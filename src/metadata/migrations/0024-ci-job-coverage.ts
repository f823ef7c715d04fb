import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Issue 17's `coverage:` keyword: the percentage its regular expression finds in a job's log when
// the job finishes (GitLab's `coverage` of a job), null when the job has none.
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema.alterTable('ci_jobs').addColumn('coverage', 'real').execute()
}
