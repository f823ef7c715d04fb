import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Web UI sign-in sessions: the browser holds an opaque token in an HTTP-only cookie; only its
// sha256 digest is stored. A session stands for a password sign-in of an active user.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('web_sessions')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('token_digest', 'text', (c) => c.notNull().unique())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('last_seen_at', 'text', (c) => c.notNull())
    .addColumn('ip', 'text')
    .addColumn('user_agent', 'text')
    .execute()
  await db.schema.createIndex('web_sessions_user').on('web_sessions').column('user_id').execute()
  await db.schema.createIndex('web_sessions_expires').on('web_sessions').column('expires_at').execute()
}
