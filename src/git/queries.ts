import type { Executor } from '../metadata/schema.ts'

// Reads of the push history. Pushes are written as `git.push` rows of the audit log (through
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
