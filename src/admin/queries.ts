// The only SQL of the administrator area: the audit log paged and filtered, instance-wide counts and
// the registry-token signing keys (ids and dates only, never the private halves).
import { sql } from 'kysely'
import type { Executor } from '../metadata/schema.ts'

export interface AuditFilter {
  actor?: string | undefined
  action?: string | undefined
  /** Exact target, e.g. `user:12`. */
  target?: string | undefined
  /** GitLab's entity_type/entity_id: targets `<type>:<id>`, or `<type>:` prefixed when no id. */
  targetPrefix?: string | undefined
  createdAfter?: string | undefined
  createdBefore?: string | undefined
}

function filtered(db: Executor, f: AuditFilter) {
  let q = db.selectFrom('audit_events')
  if (f.actor !== undefined) q = q.where('actor', '=', f.actor)
  // `user.` matches every user action; an exact name matches itself.
  if (f.action !== undefined) q = f.action.endsWith('.') ? q.where(startsWith('action', f.action)) : q.where('action', '=', f.action)
  if (f.target !== undefined) q = q.where('target', '=', f.target)
  if (f.targetPrefix !== undefined) q = q.where(startsWith('target', f.targetPrefix))
  if (f.createdAfter !== undefined) q = q.where('at', '>=', f.createdAfter)
  if (f.createdBefore !== undefined) q = q.where('at', '<=', f.createdBefore)
  return q
}

/** A prefix match in which `%` and `_` of the input match only themselves (`personal_access_token.`). */
function startsWith(column: 'action' | 'target', prefix: string) {
  return sql<boolean>`${sql.ref(column)} LIKE ${`${prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`} ESCAPE '\\'`
}

export async function pageAudit(db: Executor, f: AuditFilter, page: { limit: number; offset: number }) {
  const rows = await filtered(db, f).selectAll().orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute()
  const { n } = await filtered(db, f)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return { rows, total: Number(n) }
}

export async function pageSigningKeys(db: Executor, page: { limit: number; offset: number }) {
  const rows = await db
    .selectFrom('signing_keys')
    .select(['kid', 'created_at', 'retired_at'])
    .orderBy('created_at', 'desc')
    .orderBy('kid')
    .limit(page.limit)
    .offset(page.offset)
    .execute()
  const { n } = await db
    .selectFrom('signing_keys')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return { rows, total: Number(n) }
}

export interface Usage {
  users: number
  blockedUsers: number
  admins: number
  groups: number
  projects: number
  repositories: number
  blobs: number
  blobBytes: number
  pipelines: number
  jobs: number
  runners: number
  runnersOnline: number
}

/** Counts across the instance; `onlineSince` is the runner contact cut-off (ISO). */
export async function usage(db: Executor, onlineSince: string): Promise<Usage> {
  const count = async (table: 'users' | 'projects' | 'repositories' | 'pipelines' | 'ci_jobs' | 'runners') =>
    Number(
      (
        await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .executeTakeFirstOrThrow()
      ).n,
    )
  const users = await db
    .selectFrom('users')
    .select((eb) => [
      eb.fn.countAll<number>().as('n'),
      eb.fn.sum<number>(eb.case().when('state', '=', 'blocked').then(1).else(0).end()).as('blocked'),
      eb.fn.sum<number>('is_admin').as('admins'),
    ])
    .executeTakeFirstOrThrow()
  const groups = await db
    .selectFrom('namespaces')
    .where('kind', '=', 'group')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  const blobs = await db
    .selectFrom('blobs')
    .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.sum<number>('size').as('bytes')])
    .executeTakeFirstOrThrow()
  const online = await db
    .selectFrom('runners')
    .where('contacted_at', '>=', onlineSince)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return {
    users: Number(users.n),
    blockedUsers: Number(users.blocked ?? 0),
    admins: Number(users.admins ?? 0),
    groups: Number(groups.n),
    projects: await count('projects'),
    repositories: await count('repositories'),
    blobs: Number(blobs.n),
    blobBytes: Number(blobs.bytes ?? 0),
    pipelines: await count('pipelines'),
    jobs: await count('ci_jobs'),
    runners: await count('runners'),
    runnersOnline: Number(online.n),
  }
}
