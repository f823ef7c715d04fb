import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// What several Wharf nodes over one database agree on through it (docs/architecture.md, "Several
// nodes"): who runs each periodic task, the failed-login counters, and the check value of the
// sealing key they must share.
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  // One row per periodic task (upload sweep, schedules, ...): the node holding it runs the task;
  // a lease not renewed by its expiry is free for another node (its holder died).
  await db.schema
    .createTable('leases')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('holder', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .execute()

  // Failed sign-ins per (account, address) and per address, counted by whichever node saw them.
  await db.schema
    .createTable('login_throttle')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('failures', 'integer', (c) => c.notNull())
    .addColumn('reset_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('login_throttle_reset_at').on('login_throttle').column('reset_at').execute()

  // Values every node must agree on, written by the first node to start: a node whose own value
  // differs (another sealing key) refuses to start instead of sealing what the others cannot open.
  await db.schema
    .createTable('node_checks')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
}
