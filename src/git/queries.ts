import type { Executor, ProtectedRef, PushEventRow } from '../metadata/schema.ts'

// Push events (the durable record listeners work from) and reads of the push history. Pushes are written as `git.push` rows of the audit log (through
// Credentials.audit, one row per updated ref, target `project:<id>`); only this file reads them back.

export const PUSH_ACTION = 'git.push'

export interface PushAuditRow {
  id: number
  at: string
  actor: string
  detail: string | null
}

export async function listPushes(db: Executor, projectId: number, opts: { limit: number; offset: number }): Promise<PushAuditRow[]> {
  return db
    .selectFrom('audit_events')
    .select(['id', 'at', 'actor', 'detail'])
    .where('action', '=', PUSH_ACTION)
    .where('target', '=', `project:${projectId}`)
    .orderBy('id', 'desc')
    .limit(opts.limit)
    .offset(opts.offset)
    .execute()
}

export async function countPushes(db: Executor, projectId: number): Promise<number> {
  const r = await db
    .selectFrom('audit_events')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('action', '=', PUSH_ACTION)
    .where('target', '=', `project:${projectId}`)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function insertPushEvent(
  db: Executor,
  e: { projectId: number; projectPath: string; principal: string; updates: string; at: string },
): Promise<number> {
  const r = await db
    .insertInto('push_events')
    .values({ project_id: e.projectId, project_path: e.projectPath, principal: e.principal, updates: e.updates, at: e.at })
    .returning('id')
    .executeTakeFirstOrThrow()
  return r.id
}

export function findPushEvent(db: Executor, id: number): Promise<PushEventRow | undefined> {
  return db.selectFrom('push_events').selectAll().where('id', '=', id).executeTakeFirst()
}

/** Events not done yet, oldest first. */
export function pendingPushEvents(db: Executor, limit: number): Promise<PushEventRow[]> {
  return db.selectFrom('push_events').selectAll().where('done_at', 'is', null).orderBy('id').limit(limit).execute()
}

/**
 * Marks update `index` of an event handled, if it is the next one; false when it was already
 * (someone else handled it: the caller's transaction must not commit a second result).
 */
export async function acknowledgePushUpdate(db: Executor, id: number, index: number): Promise<boolean> {
  const r = await db
    .updateTable('push_events')
    .set({ handled: index + 1 })
    .where('id', '=', id)
    .where('handled', '=', index)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) === 1
}

export async function markPushEventDone(db: Executor, id: number, at: string): Promise<void> {
  await db.updateTable('push_events').set({ done_at: at }).where('id', '=', id).where('done_at', 'is', null).execute()
}

/** Counts a failed delivery; gives the event up (done) once `maxAttempts` failed. Returns the attempts so far. */
export async function recordPushEventFailure(db: Executor, id: number, error: string, maxAttempts: number, at: string): Promise<number> {
  const row = await db
    .updateTable('push_events')
    .set((eb) => ({ attempts: eb('attempts', '+', 1), last_error: error }))
    .where('id', '=', id)
    .returning('attempts')
    .executeTakeFirst()
  const attempts = row?.attempts ?? maxAttempts
  if (attempts >= maxAttempts) await markPushEventDone(db, id, at)
  return attempts
}

/** Claims an event's delivery until `until`: false while another node's claim runs (a crashed node's runs out). */
export async function claimPushEvent(db: Executor, id: number, now: string, until: string): Promise<boolean> {
  const r = await db
    .updateTable('push_events')
    .set({ delivering_until: until })
    .where('id', '=', id)
    .where('done_at', 'is', null)
    .where((eb) => eb.or([eb('delivering_until', 'is', null), eb('delivering_until', '<', now)]))
    .executeTakeFirst()
  return Number(r.numUpdatedRows) === 1
}

export async function releasePushEvent(db: Executor, id: number): Promise<void> {
  await db.updateTable('push_events').set({ delivering_until: null }).where('id', '=', id).execute()
}

/** Forgets events done before `before` (ISO 8601). */
export async function deleteDonePushEvents(db: Executor, before: string): Promise<number> {
  const r = await db.deleteFrom('push_events').where('done_at', '<', before).executeTakeFirst()
  return Number(r.numDeletedRows)
}

// Protected branches and tags.

export async function listProtectedRefs(
  db: Executor,
  projectId: number,
  kind: ProtectedRef['kind'],
  page?: { limit: number; offset: number },
): Promise<ProtectedRef[]> {
  let q = db.selectFrom('protected_refs').selectAll().where('project_id', '=', projectId).where('kind', '=', kind).orderBy('name')
  if (page) q = q.limit(page.limit).offset(page.offset)
  return q.execute()
}

export async function countProtectedRefs(db: Executor, projectId: number, kind: ProtectedRef['kind']): Promise<number> {
  const r = await db
    .selectFrom('protected_refs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .where('kind', '=', kind)
    .executeTakeFirst()
  return Number(r?.n ?? 0)
}

export async function findProtectedRef(
  db: Executor,
  projectId: number,
  kind: ProtectedRef['kind'],
  name: string,
): Promise<ProtectedRef | undefined> {
  return db
    .selectFrom('protected_refs')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('kind', '=', kind)
    .where('name', '=', name)
    .executeTakeFirst()
}

/** Inserts a rule; undefined when the project already protects that name. */
export async function insertProtectedRef(db: Executor, row: Omit<ProtectedRef, 'id'>): Promise<ProtectedRef | undefined> {
  return db
    .insertInto('protected_refs')
    .values(row)
    .onConflict((oc) => oc.columns(['project_id', 'kind', 'name']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function deleteProtectedRef(db: Executor, projectId: number, kind: ProtectedRef['kind'], name: string): Promise<boolean> {
  const r = await db
    .deleteFrom('protected_refs')
    .where('project_id', '=', projectId)
    .where('kind', '=', kind)
    .where('name', '=', name)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}
