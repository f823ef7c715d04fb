import { nowIso } from '../metadata/db.ts'
import type { Executor, WebSession } from '../metadata/schema.ts'

// Only this file builds SQL for web sessions.

export async function insertSession(
  db: Executor,
  s: { userId: number; digest: string; expiresAt: string; ip: string | null; userAgent: string | null },
): Promise<WebSession> {
  const now = nowIso()
  return db
    .insertInto('web_sessions')
    .values({
      user_id: s.userId,
      token_digest: s.digest,
      created_at: now,
      expires_at: s.expiresAt,
      last_seen_at: now,
      ip: s.ip,
      user_agent: s.userAgent,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findSessionByDigest(db: Executor, digest: string): Promise<WebSession | undefined> {
  return db.selectFrom('web_sessions').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export async function touchSession(db: Executor, id: number): Promise<void> {
  await db.updateTable('web_sessions').set({ last_seen_at: nowIso() }).where('id', '=', id).execute()
}

export async function deleteSession(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('web_sessions').where('id', '=', id).execute()
}

export async function deleteExpiredSessions(db: Executor, now: string): Promise<void> {
  await db.deleteFrom('web_sessions').where('expires_at', '<=', now).execute()
}
