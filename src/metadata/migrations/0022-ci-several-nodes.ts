import type { Kysely } from 'kysely'

// Issue 15, CI and git on several nodes. A job's log may be appended through any node, so what one node
// used to keep in memory lives on the log's row:
// - `masks`: the job's masked values (JSON array of strings) from when it started, ID tokens
//   included, so every node masks the same secrets; cleared when the job's log ends.
// - `lock_owner` / `locked_until`: a lease serialising appends (the node and append holding it,
//   and until when, ISO 8601); an expired lease is someone's crashed append and may be taken.
// And `push_events.delivering_until`: the node delivering a push event claims it until then, so
// another node's redelivery sweep does not deliver it a second time meanwhile.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('push_events').addColumn('delivering_until', 'text').execute()
  await db.schema.alterTable('ci_job_traces').addColumn('masks', 'text').execute()
  await db.schema.alterTable('ci_job_traces').addColumn('lock_owner', 'text').execute()
  await db.schema.alterTable('ci_job_traces').addColumn('locked_until', 'text').execute()
}
