import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Online garbage collection (src/gc/). The database decides what is garbage; these rows make
// every decision safe against a push landing at the same moment, across processes (`wharf gc`
// runs beside the server).
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  // When a manifest last lost a tag: untagged manifests are kept for gc.untaggedDelaySeconds from
  // then (or from their push, when they never had a tag).
  await db.schema.alterTable('manifests').addColumn('untagged_at', 'text').execute()

  // A push about to put a blob's file in place: the collector never deletes a claimed digest.
  await db.schema
    .createTable('blob_claims')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('blob_claims_digest').on('blob_claims').column('digest').execute()

  // A blob whose row is deleted and whose file is being removed: no push may claim it until the
  // file is gone (the claim waits), so a file put in place by a push is never removed.
  await db.schema
    .createTable('blob_deletions')
    .addColumn('digest', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()

  // One collection at a time, across the server's schedule and `wharf gc`.
  await db.schema
    .createTable('gc_lease')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('owner', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute()

  // GitLab's container_expiration_policy_attributes: a project's cleanup policy, run on its cadence.
  await db.schema
    .createTable('container_expiration_policies')
    .addColumn('project_id', 'integer', (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
    .addColumn('enabled', 'integer', (c) => c.notNull())
    .addColumn('cadence', 'text', (c) => c.notNull())
    .addColumn('keep_n', 'integer')
    .addColumn('older_than', 'text')
    .addColumn('name_regex', 'text')
    .addColumn('name_regex_keep', 'text')
    .addColumn('next_run_at', 'text')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('container_expiration_policies_next_run').on('container_expiration_policies').column('next_run_at').execute()
}
