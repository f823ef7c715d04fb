import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// External identities (OpenID Connect, LDAP) linked to Wharf accounts: one row per provider and
// subject (the provider's stable user id: the ID token's `sub`, the LDAP entry's DN). The OIDC
// refresh token is kept sealed (core/sealing.ts) so the periodic sync can ask the provider whether
// the user still exists; `blocked_at` marks a block the sync made, lifted when the provider lets
// the user sign in again.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('identities')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('user_id', 'integer', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('kind', 'text', (c) => c.notNull())
    .addColumn('provider', 'text', (c) => c.notNull())
    .addColumn('subject', 'text', (c) => c.notNull())
    .addColumn('email', 'text')
    .addColumn('refresh_token_sealed', 'text')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_sign_in_at', 'text')
    .addColumn('checked_at', 'text')
    .addColumn('blocked_at', 'text')
    .addUniqueConstraint('identities_provider_subject', ['provider', 'subject'])
    .execute()
  await db.schema.createIndex('identities_user').on('identities').column('user_id').execute()
}
