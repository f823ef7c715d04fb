import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// OAuth access tokens from POST /oauth/token (password and refresh_token grants), for API scripts.
// Both secrets are stored as sha256 digests; a refresh rotates the pair (the old row is revoked).
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('oauth_tokens')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('access_digest', 'text', (c) => c.notNull().unique())
    .addColumn('refresh_digest', 'text', (c) => c.notNull().unique())
    .addColumn('scopes', 'text', (c) => c.notNull()) // JSON array
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('refresh_expires_at', 'text', (c) => c.notNull())
    .addColumn('revoked', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('oauth_tokens_user').on('oauth_tokens').column('user_id').execute()
}
