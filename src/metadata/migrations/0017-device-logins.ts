import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Device logins (`wharf login`, the OAuth 2.0 device authorization grant, RFC 8628). One row per
// flow: `pending` until a signed-in person approves or denies the user code, then `active` once
// the device redeemed its device code (the row is then the login: a refresh credential for
// docker-credential-wharf, listed with the user's access tokens), `revoked` when revoked. Both
// codes and the refresh credential are stored as sha256 digests.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('device_logins')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('device_code_digest', 'text', (c) => c.notNull().unique())
    .addColumn('user_code_digest', 'text', (c) => c.notNull().unique())
    .addColumn('client_id', 'text', (c) => c.notNull())
    .addColumn('device_name', 'text', (c) => c.notNull())
    .addColumn('scopes', 'text', (c) => c.notNull()) // JSON array
    // pending | approved | denied | active | revoked
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('user_id', 'integer', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('refresh_digest', 'text', (c) => c.unique())
    // The device code's end (while pending), then the login's (sliding: moved on each refresh).
    .addColumn('expires_at', 'text', (c) => c.notNull())
    .addColumn('interval_seconds', 'integer', (c) => c.notNull())
    .addColumn('last_poll_at', 'text')
    .addColumn('last_used_at', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('device_logins_user').on('device_logins').columns(['user_id', 'status']).execute()
}
