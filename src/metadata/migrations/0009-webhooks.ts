import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Project and group webhooks (GitLab's /hooks API) and their deliveries. A delivery is a row
// before anything is sent, so a queued delivery survives a restart; `event_key` makes enqueueing
// idempotent (a push event delivered again to its listeners queues nothing twice).
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('webhooks')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.references('projects.id').onDelete('cascade'))
    .addColumn('group_id', 'integer', (c) => c.references('namespaces.id').onDelete('cascade'))
    .addColumn('url', 'text', (c) => c.notNull())
    .addColumn('name', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    // Sent back as X-Gitlab-Token, so it cannot be hashed: sealed with the server's key instead.
    .addColumn('token_sealed', 'text')
    .addColumn('push_events', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('push_events_branch_filter', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('tag_push_events', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('pipeline_events', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('job_events', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('registry_events', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('enable_ssl_verification', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('webhooks_project').on('webhooks').column('project_id').execute()
  await db.schema.createIndex('webhooks_group').on('webhooks').column('group_id').execute()

  await db.schema
    .createTable('webhook_deliveries')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('hook_id', 'integer', (c) => c.notNull().references('webhooks.id').onDelete('cascade'))
    .addColumn('event_key', 'text', (c) => c.notNull())
    .addColumn('uuid', 'text', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('payload', 'text', (c) => c.notNull())
    // pending (due at next_attempt_at), sending, delivered, failed (given up)
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('next_attempt_at', 'text', (c) => c.notNull())
    .addColumn('response_status', 'integer')
    .addColumn('response_headers', 'text')
    .addColumn('response_body', 'text')
    .addColumn('error', 'text')
    .addColumn('duration_ms', 'integer')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('webhook_deliveries_key').unique().on('webhook_deliveries').columns(['hook_id', 'event_key']).execute()
  await db.schema.createIndex('webhook_deliveries_due').on('webhook_deliveries').columns(['status', 'next_attempt_at']).execute()

  // What the pipeline and job hooks last reported for a pipeline, so a change is reported once.
  await db.schema
    .createTable('webhook_pipeline_states')
    .addColumn('pipeline_id', 'integer', (c) => c.primaryKey().references('pipelines.id').onDelete('cascade'))
    .addColumn('states', 'text', (c) => c.notNull())
    .execute()
}
