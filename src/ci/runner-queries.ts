import { sql } from 'kysely'
import { isPostgres, nowIso } from '../metadata/db.ts'
import type { CiJob, CiJobArtifact, Executor, Project, Runner, RunnersTable } from '../metadata/schema.ts'
import type { RunnerType } from '../runner/protocol.ts'

// SQL of runners, job claims, traces, artifacts and the job-token allowlist (ci/queries.ts has pipelines and jobs).

export async function insertRunner(
  db: Executor,
  r: Omit<
    RunnersTable,
    'id' | 'created_at' | 'contacted_at' | 'name' | 'version' | 'revision' | 'platform' | 'architecture' | 'executor' | 'ip_address'
  >,
): Promise<Runner> {
  return db
    .insertInto('runners')
    .values({
      ...r,
      created_at: nowIso(),
      contacted_at: null,
      name: null,
      version: null,
      revision: null,
      platform: null,
      architecture: null,
      executor: null,
      ip_address: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findRunner(db: Executor, id: number): Promise<Runner | undefined> {
  return db.selectFrom('runners').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findRunners(db: Executor, ids: number[]): Promise<Runner[]> {
  return ids.length ? db.selectFrom('runners').selectAll().where('id', 'in', ids).execute() : []
}

export async function findRunnerByDigest(db: Executor, digest: string): Promise<Runner | undefined> {
  return db.selectFrom('runners').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export interface RunnerFilter {
  /** Runners scoped to any of these (projects, groups, instance runners); all runners when none is given. */
  projectIds?: number[]
  namespaceIds?: number[]
  instance?: boolean
  type?: RunnerType | undefined
  paused?: boolean | undefined
  /** Runners having every one of these tags. */
  tagList?: string[] | undefined
}

/** A page of runners by id, and the total the filter matches. */
export async function pageRunners(
  db: Executor,
  f: RunnerFilter & { limit: number; offset: number },
): Promise<{ rows: Runner[]; total: number }> {
  let q = db.selectFrom('runners')
  if (f.projectIds || f.namespaceIds || f.instance) {
    q = q.where((eb) => {
      const ors = []
      if (f.projectIds?.length) {
        ors.push(eb('project_id', 'in', f.projectIds))
        ors.push(
          eb('id', 'in', eb.selectFrom('runner_projects').select('runner_id').where('runner_projects.project_id', 'in', f.projectIds)),
        )
      }
      if (f.namespaceIds?.length) ors.push(eb('namespace_id', 'in', f.namespaceIds))
      if (f.instance) ors.push(eb('runner_type', '=', 'instance_type'))
      return ors.length ? eb.or(ors) : eb.val(false)
    })
  }
  if (f.type !== undefined) q = q.where('runner_type', '=', f.type)
  if (f.paused !== undefined) q = q.where('paused', '=', f.paused ? 1 : 0)
  // tag_list is a JSON array of strings.
  const elements = isPostgres(db) ? sql`json_array_elements_text(runners.tag_list::json)` : sql`json_each(runners.tag_list)`
  for (const tag of f.tagList ?? []) q = q.where(sql<boolean>`exists (select 1 from ${elements} where value = ${tag})`)
  const rows = await q.selectAll().orderBy('id').limit(f.limit).offset(f.offset).execute()
  const n = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function updateRunner(db: Executor, id: number, set: Partial<Omit<Runner, 'id'>>): Promise<void> {
  await db.updateTable('runners').set(set).where('id', '=', id).execute()
}

export async function deleteRunner(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('runners').where('id', '=', id).execute()
}

/** The projects a runner is enabled for besides its own. */
export async function linkedProjectIds(db: Executor, runnerId: number): Promise<number[]> {
  const rows = await db.selectFrom('runner_projects').select('project_id').where('runner_id', '=', runnerId).execute()
  return rows.map((r) => r.project_id)
}

/** Enables a runner for a project; false when it already was. */
export async function linkRunnerProject(db: Executor, runnerId: number, projectId: number): Promise<boolean> {
  const r = await db
    .insertInto('runner_projects')
    .values({ runner_id: runnerId, project_id: projectId, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['runner_id', 'project_id']).doNothing())
    .executeTakeFirst()
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0
}

export async function unlinkRunnerProject(db: Executor, runnerId: number, projectId: number): Promise<boolean> {
  const r = await db.deleteFrom('runner_projects').where('runner_id', '=', runnerId).where('project_id', '=', projectId).executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

/** A page of the jobs a runner took (newest first), optionally of some statuses, and their total. */
export async function pageRunnerJobs(
  db: Executor,
  runnerId: number,
  f: { statuses?: string[] | undefined; projectIds?: number[]; limit: number; offset: number; ascending?: boolean },
): Promise<{ rows: CiJob[]; total: number }> {
  let base = db.selectFrom('ci_jobs').where('runner_id', '=', runnerId)
  if (f.projectIds) {
    if (f.projectIds.length === 0) return { rows: [], total: 0 }
    base = base.where('project_id', 'in', f.projectIds)
  }
  if (f.statuses?.length) base = base.where('status', 'in', f.statuses)
  const rows = await base
    .selectAll()
    .orderBy('id', f.ascending ? 'asc' : 'desc')
    .limit(f.limit)
    .offset(f.offset)
    .execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/** Pending jobs (current attempts) in queue order after `afterId`, optionally only of some projects. */
export async function pendingJobs(db: Executor, projectIds: number[] | undefined, limit: number, afterId = 0): Promise<CiJob[]> {
  let q = db
    .selectFrom('ci_jobs')
    .selectAll()
    .where('status', '=', 'pending')
    .where('kind', '=', 'build')
    .where('retried', '=', 0)
    .where('id', '>', afterId)
  if (projectIds) {
    if (projectIds.length === 0) return []
    q = q.where('project_id', 'in', projectIds)
  }
  return q.orderBy('id').limit(limit).execute()
}

export async function projectIdsInNamespaces(db: Executor, namespaceIds: number[]): Promise<number[]> {
  if (namespaceIds.length === 0) return []
  const rows = await db.selectFrom('projects').select('id').where('namespace_id', 'in', namespaceIds).execute()
  return rows.map((r) => r.id)
}

export async function runningJobs(db: Executor): Promise<CiJob[]> {
  // Bridges run on the server (their downstream pipeline), never on a runner that could go silent.
  return db.selectFrom('ci_jobs').selectAll().where('status', '=', 'running').where('kind', '=', 'build').orderBy('id').execute()
}

export async function retriedAttempts(db: Executor, pipelineId: number, name: string): Promise<number> {
  const r = await db
    .selectFrom('ci_jobs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('pipeline_id', '=', pipelineId)
    .where('name', '=', name)
    .where('retried', '=', 1)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function findTrace(db: Executor, jobId: number) {
  return db.selectFrom('ci_job_traces').selectAll().where('job_id', '=', jobId).executeTakeFirst()
}

/** The log's row, made empty if the job has none yet (leases and masks are kept on it). */
export async function ensureTrace(db: Executor, jobId: number, now: string): Promise<void> {
  await db
    .insertInto('ci_job_traces')
    .values({ job_id: jobId, received_bytes: 0, stored_bytes: 0, tail: null, truncated: 0, updated_at: now })
    .onConflict((oc) => oc.column('job_id').doNothing())
    .execute()
}

/** Takes (or extends) the lease on a job's log: false while another append holds one that has not expired. */
export async function leaseTrace(db: Executor, jobId: number, owner: string, now: string, until: string): Promise<boolean> {
  const r = await db
    .updateTable('ci_job_traces')
    .set({ lock_owner: owner, locked_until: until })
    .where('job_id', '=', jobId)
    .where((eb) => eb.or([eb('lock_owner', 'is', null), eb('lock_owner', '=', owner), eb('locked_until', '<', now)]))
    .executeTakeFirst()
  return r.numUpdatedRows > 0n
}

export async function releaseTrace(db: Executor, jobId: number, owner: string): Promise<void> {
  await db
    .updateTable('ci_job_traces')
    .set({ lock_owner: null, locked_until: null })
    .where('job_id', '=', jobId)
    .where('lock_owner', '=', owner)
    .execute()
}

/** Records an append's outcome; false when the lease was lost meanwhile (another append took the log over). */
export async function saveTrace(
  db: Executor,
  jobId: number,
  owner: string,
  t: { received_bytes: number; stored_bytes: number; tail: Uint8Array; truncated: number; updated_at: string },
): Promise<boolean> {
  const r = await db.updateTable('ci_job_traces').set(t).where('job_id', '=', jobId).where('lock_owner', '=', owner).executeTakeFirst()
  return r.numUpdatedRows > 0n
}

/** The job's masked values while it runs (JSON array), or null once its log ended. */
export async function saveTraceMasks(db: Executor, jobId: number, masks: string | null, now: string): Promise<void> {
  await ensureTrace(db, jobId, now)
  await db.updateTable('ci_job_traces').set({ masks }).where('job_id', '=', jobId).execute()
}

export async function insertArtifact(db: Executor, a: Omit<CiJobArtifact, 'id' | 'created_at'>): Promise<CiJobArtifact> {
  await db.deleteFrom('ci_job_artifacts').where('job_id', '=', a.job_id).where('file_type', '=', a.file_type).execute()
  return db
    .insertInto('ci_job_artifacts')
    .values({ ...a, created_at: nowIso() })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findArtifact(db: Executor, jobId: number, fileType: string): Promise<CiJobArtifact | undefined> {
  return db.selectFrom('ci_job_artifacts').selectAll().where('job_id', '=', jobId).where('file_type', '=', fileType).executeTakeFirst()
}

export async function jobArtifacts(db: Executor, jobIds: number[]): Promise<CiJobArtifact[]> {
  if (jobIds.length === 0) return []
  return db.selectFrom('ci_job_artifacts').selectAll().where('job_id', 'in', jobIds).orderBy('id').execute()
}

export async function expiredArtifacts(db: Executor, now: string): Promise<CiJobArtifact[]> {
  return db
    .selectFrom('ci_job_artifacts')
    .selectAll()
    .where('expire_at', 'is not', null)
    .where('expire_at', '<=', now)
    .limit(1000)
    .execute()
}

export async function deleteArtifact(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('ci_job_artifacts').where('id', '=', id).execute()
}

/** Keeps a job's artifacts past their expiry (GitLab's "keep"). */
export async function keepArtifacts(db: Executor, jobId: number): Promise<void> {
  await db.updateTable('ci_job_artifacts').set({ expire_at: null }).where('job_id', '=', jobId).execute()
}

export async function deleteTrace(db: Executor, jobId: number): Promise<void> {
  await db.deleteFrom('ci_job_traces').where('job_id', '=', jobId).execute()
}

/** A page of the projects a project allows (oldest entry first), and their total. */
export async function allowlistPage(
  db: Executor,
  projectId: number,
  page: { limit: number; offset: number },
): Promise<{ rows: Project[]; total: number }> {
  const base = db
    .selectFrom('job_token_allowlist as a')
    .innerJoin('projects as p', 'p.id', 'a.allowed_project_id')
    .where('a.project_id', '=', projectId)
  const rows = await base.selectAll('p').orderBy('a.created_at').orderBy('p.id').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function isAllowlisted(db: Executor, projectId: number, allowedProjectId: number): Promise<boolean> {
  const r = await db
    .selectFrom('job_token_allowlist')
    .select('project_id')
    .where('project_id', '=', projectId)
    .where('allowed_project_id', '=', allowedProjectId)
    .executeTakeFirst()
  return r !== undefined
}

export async function addToAllowlist(db: Executor, projectId: number, allowedProjectId: number): Promise<boolean> {
  const r = await db
    .insertInto('job_token_allowlist')
    .values({ project_id: projectId, allowed_project_id: allowedProjectId, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['project_id', 'allowed_project_id']).doNothing())
    .executeTakeFirst()
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0
}

export async function removeFromAllowlist(db: Executor, projectId: number, allowedProjectId: number): Promise<boolean> {
  const r = await db
    .deleteFrom('job_token_allowlist')
    .where('project_id', '=', projectId)
    .where('allowed_project_id', '=', allowedProjectId)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}
