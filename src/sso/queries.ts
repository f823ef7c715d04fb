import { nowIso } from '../metadata/db.ts'
import type { Executor, Identity } from '../metadata/schema.ts'

// Only this file builds SQL for linked identities.

export async function findIdentity(db: Executor, provider: string, subject: string): Promise<Identity | undefined> {
  return db.selectFrom('identities').selectAll().where('provider', '=', provider).where('subject', '=', subject).executeTakeFirst()
}

export async function findIdentityOfUser(db: Executor, provider: string, userId: number): Promise<Identity | undefined> {
  return db.selectFrom('identities').selectAll().where('provider', '=', provider).where('user_id', '=', userId).executeTakeFirst()
}

export async function insertIdentity(
  db: Executor,
  i: { userId: number; kind: Identity['kind']; provider: string; subject: string; email: string | null; refreshToken: string | null },
): Promise<Identity> {
  const now = nowIso()
  return db
    .insertInto('identities')
    .values({
      user_id: i.userId,
      kind: i.kind,
      provider: i.provider,
      subject: i.subject,
      email: i.email,
      refresh_token_sealed: i.refreshToken,
      created_at: now,
      last_sign_in_at: now,
      checked_at: now,
      blocked_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/** A successful sign-in: the provider vouched for the user now; a refresh token replaces the stored one when one came. */
export async function recordSignIn(db: Executor, id: number, email: string | null, refreshToken: string | null): Promise<void> {
  const now = nowIso()
  const set: { last_sign_in_at: string; checked_at: string; email: string | null; blocked_at: null; refresh_token_sealed?: string } = {
    last_sign_in_at: now,
    checked_at: now,
    email,
    blocked_at: null,
  }
  if (refreshToken !== null) set.refresh_token_sealed = refreshToken
  await db.updateTable('identities').set(set).where('id', '=', id).execute()
}

export async function recordCheck(db: Executor, id: number, refreshToken: string | null): Promise<void> {
  const set: { checked_at: string; refresh_token_sealed?: string } = { checked_at: nowIso() }
  if (refreshToken !== null) set.refresh_token_sealed = refreshToken
  await db.updateTable('identities').set(set).where('id', '=', id).execute()
}

export async function markBlocked(db: Executor, id: number): Promise<void> {
  await db.updateTable('identities').set({ blocked_at: nowIso(), refresh_token_sealed: null }).where('id', '=', id).execute()
}

/** Identities the sync should ask their provider about: of active users, not checked since `before`, oldest first. */
export async function identitiesToCheck(db: Executor, provider: string, before: string, limit: number): Promise<Identity[]> {
  return db
    .selectFrom('identities')
    .innerJoin('users', 'users.id', 'identities.user_id')
    .selectAll('identities')
    .where('identities.provider', '=', provider)
    .where('users.state', '=', 'active')
    .where((eb) => eb.or([eb('identities.checked_at', 'is', null), eb('identities.checked_at', '<=', before)]))
    .orderBy('identities.checked_at')
    .limit(limit)
    .execute()
}

export async function identitiesOfUser(db: Executor, userId: number): Promise<Identity[]> {
  return db.selectFrom('identities').selectAll().where('user_id', '=', userId).orderBy('id').execute()
}
