import type { Executor, Project, Webhook, WebhookDelivery, WebhooksTable } from '../metadata/schema.ts'
import { sql, type Insertable, type Updateable } from 'kysely'

export type HookOwner = { projectId: number } | { groupId: number }

const ownerColumn = (o: HookOwner) => ('projectId' in o ? (['project_id', o.projectId] as const) : (['group_id', o.groupId] as const))

export async function pageHooks(
  db: Executor,
  owner: HookOwner,
  page: { limit: number; offset: number },
): Promise<{ rows: Webhook[]; total: number }> {
  const [col, id] = ownerColumn(owner)
  const rows = await db.selectFrom('webhooks').selectAll().where(col, '=', id).orderBy('id').limit(page.limit).offset(page.offset).execute()
  const { n } = await db
    .selectFrom('webhooks')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where(col, '=', id)
    .executeTakeFirstOrThrow()
  return { rows, total: Number(n) }
}

export function findHook(db: Executor, owner: HookOwner, id: number): Promise<Webhook | undefined> {
  const [col, ownerId] = ownerColumn(owner)
  return db.selectFrom('webhooks').selectAll().where('id', '=', id).where(col, '=', ownerId).executeTakeFirst()
}

export function findHookById(db: Executor, id: number): Promise<Webhook | undefined> {
  return db.selectFrom('webhooks').selectAll().where('id', '=', id).executeTakeFirst()
}

export function insertHook(db: Executor, row: Insertable<WebhooksTable>): Promise<Webhook> {
  return db.insertInto('webhooks').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function updateHook(db: Executor, id: number, set: Updateable<WebhooksTable>): Promise<void> {
  await db.updateTable('webhooks').set(set).where('id', '=', id).execute()
}

export async function deleteHook(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('webhooks').where('id', '=', id).execute()
}

/** Hooks of a project and of the groups above it (namespace ids, nearest first) that want `trigger`. */
export function hooksFor(db: Executor, projectId: number, groupIds: number[], trigger: Trigger): Promise<Webhook[]> {
  return db
    .selectFrom('webhooks')
    .selectAll()
    .where((eb) => eb.or([eb('project_id', '=', projectId), ...(groupIds.length ? [eb('group_id', 'in', groupIds)] : [])]))
    .where(trigger, '=', 1)
    .orderBy('id')
    .execute()
}

/**
 * The project owning registry repository `name` (the longest of `projectPaths`, projects/queries.ts's
 * projectPathsOf), when a hook of it or of a group above it wants registry events; else undefined.
 * One statement, where resolving the project, its namespace chain and the hooks took one each: it
 * runs after every tag push, and most projects have no such hook.
 */
export async function projectWithRegistryHooks(db: Executor, projectPaths: string[]): Promise<Project | undefined> {
  if (projectPaths.length === 0) return undefined
  // Plain SQL: Kysely's builder took ten times the statement's own time to build this. The project is
  // resolved where needed rather than in a CTE: SQLite materializes a CTE used more than once, at ten times the cost.
  const owner = (column: 'id' | 'namespace_id') =>
    sql`(select ${sql.ref(column)} from projects where full_path_lower in (${sql.join(projectPaths)})
      order by length(full_path_lower) desc limit 1)`
  // The namespace chain as ProjectAccess.namespaceChain walks it: at most 32 levels.
  const { rows } = await sql<Project>`with recursive chain (id, parent_id, kind, depth) as (
      select id, parent_id, kind, 1 from namespaces where id = ${owner('namespace_id')}
      union all
      select n.id, n.parent_id, n.kind, c.depth + 1 from namespaces n join chain c on c.parent_id = n.id where c.depth < 32)
    select p.* from projects p where p.id = ${owner('id')} and exists (select 1 from webhooks w where w.registry_events = 1
      and (w.project_id = p.id or w.group_id in (select id from chain where kind = 'group')))`.execute(db)
  return rows[0]
}

export type Trigger = 'push_events' | 'tag_push_events' | 'pipeline_events' | 'job_events' | 'registry_events'

/** Queues a delivery; a second one with the same hook and key is ignored (events delivered again). */
export async function insertDelivery(
  db: Executor,
  d: { hookId: number; eventKey: string; uuid: string; trigger: Trigger; payload: string; at: string },
): Promise<void> {
  await db
    .insertInto('webhook_deliveries')
    .values({
      hook_id: d.hookId,
      event_key: d.eventKey,
      uuid: d.uuid,
      trigger: d.trigger,
      payload: d.payload,
      status: 'pending',
      next_attempt_at: d.at,
      created_at: d.at,
      updated_at: d.at,
    })
    .onConflict((oc) => oc.columns(['hook_id', 'event_key']).doNothing())
    .execute()
}

export function dueDeliveries(db: Executor, now: string, limit: number): Promise<WebhookDelivery[]> {
  return db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('status', '=', 'pending')
    .where('next_attempt_at', '<=', now)
    .orderBy('next_attempt_at')
    .orderBy('id')
    .limit(limit)
    .execute()
}

/** Claims a pending delivery for sending; false when another sender took it. */
export async function claimDelivery(db: Executor, id: number, now: string): Promise<boolean> {
  const r = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'sending', updated_at: now })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst()
  return Number(r.numUpdatedRows) === 1
}

export async function recordAttempt(
  db: Executor,
  id: number,
  set: Pick<
    WebhookDelivery,
    'status' | 'next_attempt_at' | 'response_status' | 'response_headers' | 'response_body' | 'error' | 'duration_ms' | 'updated_at'
  > & { attempts: number },
): Promise<void> {
  await db.updateTable('webhook_deliveries').set(set).where('id', '=', id).execute()
}

export async function countOpenDeliveries(db: Executor): Promise<number> {
  const { n } = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('status', 'in', ['pending', 'sending'])
    .executeTakeFirstOrThrow()
  return Number(n)
}

/**
 * Deliveries claimed before `claimedBefore` and still `sending` are due again: their sender died
 * (a live one records its attempt within the send timeout). Newer claims are other nodes' sends in
 * flight, which must not go out twice.
 */
export async function requeueStaleSending(db: Executor, now: string, claimedBefore: string): Promise<number> {
  const r = await db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: now, updated_at: now })
    .where('status', '=', 'sending')
    .where('updated_at', '<', claimedBefore)
    .executeTakeFirst()
  return Number(r.numUpdatedRows)
}

export async function resend(db: Executor, id: number, now: string): Promise<void> {
  await db
    .updateTable('webhook_deliveries')
    .set({ status: 'pending', next_attempt_at: now, attempts: 0, updated_at: now })
    .where('id', '=', id)
    .execute()
}

export async function pageDeliveries(
  db: Executor,
  hookId: number,
  page: { limit: number; offset: number },
): Promise<{ rows: WebhookDelivery[]; total: number }> {
  const rows = await db
    .selectFrom('webhook_deliveries')
    .selectAll()
    .where('hook_id', '=', hookId)
    .orderBy('id', 'desc')
    .limit(page.limit)
    .offset(page.offset)
    .execute()
  const { n } = await db
    .selectFrom('webhook_deliveries')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('hook_id', '=', hookId)
    .executeTakeFirstOrThrow()
  return { rows, total: Number(n) }
}

export function findDelivery(db: Executor, hookId: number, id: number): Promise<WebhookDelivery | undefined> {
  return db.selectFrom('webhook_deliveries').selectAll().where('hook_id', '=', hookId).where('id', '=', id).executeTakeFirst()
}

/** Forgets finished deliveries older than `before` (GitLab keeps hook logs for 7 days). */
export async function pruneDeliveries(db: Executor, before: string): Promise<void> {
  await db.deleteFrom('webhook_deliveries').where('status', 'in', ['delivered', 'failed']).where('updated_at', '<', before).execute()
}

export async function pipelineStates(db: Executor, pipelineId: number): Promise<string | undefined> {
  return (await db.selectFrom('webhook_pipeline_states').select('states').where('pipeline_id', '=', pipelineId).executeTakeFirst())?.states
}

export async function savePipelineStates(db: Executor, pipelineId: number, states: string): Promise<void> {
  await db
    .insertInto('webhook_pipeline_states')
    .values({ pipeline_id: pipelineId, states })
    .onConflict((oc) => oc.column('pipeline_id').doUpdateSet({ states }))
    .execute()
}
