import { nowIso } from '../metadata/db.ts'
import type { Deployment, Environment, Executor } from '../metadata/schema.ts'

// Only this file builds the SQL of environments and deployments.

export const ENVIRONMENT_STATES = ['available', 'stopping', 'stopped'] as const
export type EnvironmentState = (typeof ENVIRONMENT_STATES)[number]

export const DEPLOYMENT_STATUSES = ['created', 'running', 'success', 'failed', 'canceled', 'skipped', 'blocked'] as const
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number]

/** An environment of the project by name, created (available) on first use. */
export async function ensureEnvironment(
  db: Executor,
  row: { projectId: number; name: string; slug: string; tier: string; externalUrl: string | null },
): Promise<Environment> {
  const now = nowIso()
  await db
    .insertInto('environments')
    .values({
      project_id: row.projectId,
      name: row.name,
      slug: row.slug,
      tier: row.tier,
      external_url: row.externalUrl,
      state: 'available',
      auto_stop_at: null,
      created_at: now,
      updated_at: now,
    })
    .onConflict((oc) => oc.columns(['project_id', 'name']).doNothing())
    .execute()
  return (await findEnvironmentByName(db, row.projectId, row.name))!
}

export async function findEnvironmentByName(db: Executor, projectId: number, name: string): Promise<Environment | undefined> {
  return db.selectFrom('environments').selectAll().where('project_id', '=', projectId).where('name', '=', name).executeTakeFirst()
}

export async function findEnvironment(db: Executor, projectId: number, id: number): Promise<Environment | undefined> {
  return db.selectFrom('environments').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst()
}

export interface EnvironmentFilter {
  name?: string | undefined
  /** Names starting with it (GitLab's `search`, at least 3 characters there). */
  search?: string | undefined
  states?: EnvironmentState[] | undefined
}

/** One page of a project's environments by name, with how many match. */
export async function pageEnvironments(
  db: Executor,
  projectId: number,
  f: EnvironmentFilter,
  page: { limit: number; offset: number },
): Promise<{ rows: Environment[]; total: number }> {
  let base = db.selectFrom('environments').where('project_id', '=', projectId)
  if (f.name !== undefined) base = base.where('name', '=', f.name)
  // A prefix, any case, compared as text rather than with LIKE, so `%` and `_` in a name mean themselves.
  const search = f.search?.toLowerCase()
  if (search !== undefined)
    base = base.where((eb) => eb(eb.fn('substr', [eb.fn('lower', ['name']), eb.val(1), eb.val(search.length)]), '=', search))
  if (f.states?.length) base = base.where('state', 'in', f.states)
  const rows = await base.selectAll().orderBy('name').orderBy('id').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function updateEnvironment(db: Executor, id: number, set: Partial<Omit<Environment, 'id' | 'project_id'>>): Promise<void> {
  await db
    .updateTable('environments')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .execute()
}

/** Moves an environment between states only from the given ones; false when it was in none of them. */
export async function transitionEnvironment(
  db: Executor,
  id: number,
  from: EnvironmentState[],
  set: Partial<Omit<Environment, 'id' | 'project_id'>>,
): Promise<boolean> {
  const r = await db
    .updateTable('environments')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .where('state', 'in', from)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** Deletes an environment; its deployments go with it (the foreign key cascades). */
export async function deleteEnvironment(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('environments').where('id', '=', id).execute()
}

/** Available environments whose `auto_stop_in` has passed. */
export async function environmentsDueToStop(db: Executor, now: string): Promise<Environment[]> {
  return db
    .selectFrom('environments')
    .selectAll()
    .where('state', '=', 'available')
    .where('auto_stop_at', 'is not', null)
    .where('auto_stop_at', '<=', now)
    .orderBy('id')
    .execute()
}

/** Available environments of a project whose last deployment was of this branch (a deleted branch stops them). */
export async function environmentsLastDeployedFrom(db: Executor, projectId: number, branch: string): Promise<Environment[]> {
  const envs = await db
    .selectFrom('environments')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('state', '=', 'available')
    .execute()
  const out: Environment[] = []
  for (const env of envs) {
    const last = await lastDeployment(db, env.id)
    if (last && last.tag === 0 && last.ref === branch) out.push(env)
  }
  return out
}

export async function nextDeploymentIid(db: Executor, projectId: number): Promise<number> {
  const r = await db
    .selectFrom('deployments')
    .select((eb) => eb.fn.max('iid').as('m'))
    .where('project_id', '=', projectId)
    .executeTakeFirst()
  return Number(r?.m ?? 0) + 1
}

export async function insertDeployment(db: Executor, row: Omit<Deployment, 'id' | 'created_at' | 'updated_at'>): Promise<Deployment> {
  const now = nowIso()
  return db
    .insertInto('deployments')
    .values({ ...row, created_at: now, updated_at: now })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function deploymentForJob(db: Executor, jobId: number): Promise<Deployment | undefined> {
  return db.selectFrom('deployments').selectAll().where('job_id', '=', jobId).executeTakeFirst()
}

export async function updateDeployment(db: Executor, id: number, set: Partial<Pick<Deployment, 'status' | 'finished_at'>>): Promise<void> {
  await db
    .updateTable('deployments')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .execute()
}

export async function findDeployment(db: Executor, projectId: number, id: number): Promise<Deployment | undefined> {
  return db.selectFrom('deployments').selectAll().where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst()
}

/** The newest deployment of an environment that is not only planned (GitLab's last_deployment: the last that ran or is running). */
export async function lastDeployment(db: Executor, environmentId: number): Promise<Deployment | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('environment_id', '=', environmentId)
    .where('status', 'in', ['running', 'success', 'failed', 'canceled'])
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst()
}

/** The newest successful deployment of an environment (what it runs now). */
export async function lastSuccessfulDeployment(db: Executor, environmentId: number): Promise<Deployment | undefined> {
  return db
    .selectFrom('deployments')
    .selectAll()
    .where('environment_id', '=', environmentId)
    .where('status', '=', 'success')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst()
}

export const DEPLOYMENT_ORDER = ['id', 'iid', 'created_at', 'updated_at', 'finished_at', 'ref'] as const
export type DeploymentOrder = (typeof DEPLOYMENT_ORDER)[number]

export interface DeploymentFilter {
  environmentId?: number | undefined
  status?: DeploymentStatus | undefined
  updatedAfter?: string | undefined
  updatedBefore?: string | undefined
  orderBy: DeploymentOrder
  sort: 'asc' | 'desc'
}

/** One page of a project's deployments, with how many match; ties ordered by id. */
export async function pageDeployments(
  db: Executor,
  projectId: number,
  f: DeploymentFilter,
  page: { limit: number; offset: number },
): Promise<{ rows: Deployment[]; total: number }> {
  let base = db.selectFrom('deployments').where('project_id', '=', projectId)
  if (f.environmentId !== undefined) base = base.where('environment_id', '=', f.environmentId)
  if (f.status !== undefined) base = base.where('status', '=', f.status)
  if (f.updatedAfter !== undefined) base = base.where('updated_at', '>', f.updatedAfter)
  if (f.updatedBefore !== undefined) base = base.where('updated_at', '<', f.updatedBefore)
  const rows = await base.selectAll().orderBy(f.orderBy, f.sort).orderBy('id', f.sort).limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}
