import { nowIso } from '../metadata/db.ts'
import type { CiJob, CiVariable, CommitStatus, Executor, Pipeline, ResourceGroup } from '../metadata/schema.ts'

// Only this file builds CI SQL.

export async function nextPipelineIid(db: Executor, projectId: number): Promise<number> {
  const r = await db
    .selectFrom('pipelines')
    .select((eb) => eb.fn.max('iid').as('m'))
    .where('project_id', '=', projectId)
    .executeTakeFirst()
  return Number(r?.m ?? 0) + 1
}

export async function insertPipeline(
  db: Executor,
  p: {
    projectId: number
    iid: number
    ref: string
    tag: boolean
    sha: string
    beforeSha: string
    source: string
    status: string
    userId: number | null
    yamlErrors: string | null
    variables: string
    upstreamJobId?: number | null
    scheduleId?: number | null
  },
): Promise<Pipeline> {
  const now = nowIso()
  return db
    .insertInto('pipelines')
    .values({
      project_id: p.projectId,
      iid: p.iid,
      ref: p.ref,
      tag: p.tag ? 1 : 0,
      sha: p.sha,
      before_sha: p.beforeSha,
      source: p.source,
      status: p.status,
      user_id: p.userId,
      yaml_errors: p.yamlErrors,
      variables: p.variables,
      upstream_job_id: p.upstreamJobId ?? null,
      created_at: now,
      updated_at: now,
      started_at: null,
      finished_at: null,
      pipeline_schedule_id: p.scheduleId ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findPipeline(db: Executor, id: number): Promise<Pipeline | undefined> {
  return db.selectFrom('pipelines').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function listPipelines(
  db: Executor,
  projectId: number,
  f: { ref?: string; status?: string; source?: string; sha?: string; scheduleId?: number; limit: number; offset: number },
): Promise<Pipeline[]> {
  let q = db.selectFrom('pipelines').selectAll().where('project_id', '=', projectId)
  if (f.scheduleId !== undefined) q = q.where('pipeline_schedule_id', '=', f.scheduleId)
  if (f.ref !== undefined) q = q.where('ref', '=', f.ref)
  if (f.status !== undefined) q = q.where('status', '=', f.status)
  if (f.source !== undefined) q = q.where('source', '=', f.source)
  if (f.sha !== undefined) q = q.where('sha', '=', f.sha)
  return q.orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute()
}

export async function countPipelines(
  db: Executor,
  projectId: number,
  f: { ref?: string; status?: string; source?: string; sha?: string; scheduleId?: number } = {},
): Promise<number> {
  let q = db
    .selectFrom('pipelines')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
  if (f.scheduleId !== undefined) q = q.where('pipeline_schedule_id', '=', f.scheduleId)
  if (f.ref !== undefined) q = q.where('ref', '=', f.ref)
  if (f.status !== undefined) q = q.where('status', '=', f.status)
  if (f.source !== undefined) q = q.where('source', '=', f.source)
  if (f.sha !== undefined) q = q.where('sha', '=', f.sha)
  const r = await q.executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function updatePipeline(
  db: Executor,
  id: number,
  set: Partial<Pick<Pipeline, 'status' | 'started_at' | 'finished_at' | 'auto_cancel_on_job_failure'>>,
): Promise<void> {
  await db
    .updateTable('pipelines')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .execute()
}

export async function deletePipeline(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('pipelines').where('id', '=', id).execute()
}

export async function insertJob(
  db: Executor,
  j: {
    pipelineId: number
    projectId: number
    name: string
    stage: string
    stageIdx: number
    when: string
    allowFailure: boolean
    needs: string[] | null
    definition: unknown
    variables: unknown
    userId: number | null
    kind?: 'build' | 'bridge'
    resourceGroup?: string | null
  },
): Promise<CiJob> {
  return db
    .insertInto('ci_jobs')
    .values({
      pipeline_id: j.pipelineId,
      project_id: j.projectId,
      name: j.name,
      stage: j.stage,
      stage_idx: j.stageIdx,
      status: 'created',
      when: j.when,
      allow_failure: j.allowFailure ? 1 : 0,
      needs: j.needs === null ? null : JSON.stringify(j.needs),
      definition: JSON.stringify(j.definition),
      variables: JSON.stringify(j.variables),
      user_id: j.userId,
      kind: j.kind ?? 'build',
      resource_group: j.resourceGroup ?? null,
      retried: 0,
      failure_reason: null,
      runner_id: null,
      token_digest: null,
      created_at: nowIso(),
      queued_at: null,
      started_at: null,
      finished_at: null,
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function setJobVariables(db: Executor, id: number, variables: unknown): Promise<void> {
  await db
    .updateTable('ci_jobs')
    .set({ variables: JSON.stringify(variables) })
    .where('id', '=', id)
    .execute()
}

export async function findJob(db: Executor, id: number): Promise<CiJob | undefined> {
  return db.selectFrom('ci_jobs').selectAll().where('id', '=', id).executeTakeFirst()
}

/** The current attempt of every job in a pipeline (retried attempts excluded unless asked). */
export async function pipelineJobs(db: Executor, pipelineId: number, includeRetried = false): Promise<CiJob[]> {
  let q = db.selectFrom('ci_jobs').selectAll().where('pipeline_id', '=', pipelineId)
  if (!includeRetried) q = q.where('retried', '=', 0)
  return q.orderBy('stage_idx').orderBy('id').execute()
}

/**
 * One page of a project's jobs, newest first, or of one pipeline's, in stage order; with the total
 * the filters match (for the pagination headers). Retried attempts only when `includeRetried`.
 */
export async function pageJobs(
  db: Executor,
  f: {
    projectId: number
    pipelineId?: number | undefined
    scope?: string[] | undefined
    includeRetried: boolean
    limit: number
    offset: number
    /** GitLab lists jobs runners run (`/jobs`) apart from bridges (`/bridges`). */
    kind?: 'build' | 'bridge'
  },
): Promise<{ rows: CiJob[]; total: number }> {
  let base = db
    .selectFrom('ci_jobs')
    .where('project_id', '=', f.projectId)
    .where('kind', '=', f.kind ?? 'build')
  if (f.pipelineId !== undefined) base = base.where('pipeline_id', '=', f.pipelineId)
  if (!f.includeRetried) base = base.where('retried', '=', 0)
  if (f.scope?.length) base = base.where('status', 'in', f.scope)
  const ordered = f.pipelineId !== undefined ? base.selectAll().orderBy('stage_idx').orderBy('id') : base.selectAll().orderBy('id', 'desc')
  const rows = await ordered.limit(f.limit).offset(f.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/**
 * The job named `name` of the newest successful pipeline on `ref` (GitLab's
 * `latest_successful_build_for_ref`): its current attempt, if that succeeded.
 */
export async function latestSuccessfulJob(db: Executor, projectId: number, ref: string, name: string): Promise<CiJob | undefined> {
  const pipeline = await db
    .selectFrom('pipelines')
    .select('id')
    .where('project_id', '=', projectId)
    .where('ref', '=', ref)
    .where('status', '=', 'success')
    .orderBy('id', 'desc')
    .limit(1)
    .executeTakeFirst()
  if (!pipeline) return undefined
  return db
    .selectFrom('ci_jobs')
    .selectAll()
    .where('pipeline_id', '=', pipeline.id)
    .where('name', '=', name)
    .where('retried', '=', 0)
    .where('status', '=', 'success')
    .executeTakeFirst()
}

/** Delayed jobs whose `start_in` has passed (ISO times compare as text). */
export async function dueScheduledJobs(db: Executor, now: string): Promise<CiJob[]> {
  return db
    .selectFrom('ci_jobs')
    .selectAll()
    .where('status', '=', 'scheduled')
    .where('scheduled_at', '<=', now)
    .orderBy('scheduled_at')
    .limit(500)
    .execute()
}

/**
 * Older pipelines of a branch still going (GitLab's alive_or_scheduled), except those for `sha`:
 * the candidates a new pipeline on the branch makes redundant.
 */
export async function redundantPipelines(db: Executor, p: Pick<Pipeline, 'id' | 'project_id' | 'ref' | 'sha'>): Promise<Pipeline[]> {
  return db
    .selectFrom('pipelines')
    .selectAll()
    .where('project_id', '=', p.project_id)
    .where('ref', '=', p.ref)
    .where('tag', '=', 0)
    .where('id', '<', p.id)
    .where('sha', '!=', p.sha)
    .where('status', 'in', ['created', 'waiting_for_resource', 'pending', 'running', 'scheduled'])
    .execute()
}

export async function findPipelines(db: Executor, ids: number[]): Promise<Pipeline[]> {
  return ids.length ? db.selectFrom('pipelines').selectAll().where('id', 'in', ids).execute() : []
}

export async function updateJob(db: Executor, id: number, set: Partial<Omit<CiJob, 'id'>>): Promise<void> {
  await db.updateTable('ci_jobs').set(set).where('id', '=', id).execute()
}

/** Moves a job only if it is still in one of the expected states; returns whether it moved. */
export async function transitionJob(db: Executor, id: number, from: string[], set: Partial<Omit<CiJob, 'id'>>): Promise<boolean> {
  const r = await db.updateTable('ci_jobs').set(set).where('id', '=', id).where('status', 'in', from).executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

export async function findJobByTokenDigest(db: Executor, digest: string): Promise<CiJob | undefined> {
  return db.selectFrom('ci_jobs').selectAll().where('token_digest', '=', digest).where('status', '=', 'running').executeTakeFirst()
}

export async function listVariables(db: Executor, ownerKind: 'project' | 'group', ownerIds: number[]): Promise<CiVariable[]> {
  if (ownerIds.length === 0) return []
  return db
    .selectFrom('ci_variables')
    .selectAll()
    .where('owner_kind', '=', ownerKind)
    .where('owner_id', 'in', ownerIds)
    .orderBy('key')
    .execute()
}

/** A page of one owner's variables, by key, and their total. */
export async function pageVariables(
  db: Executor,
  ownerKind: 'project' | 'group',
  ownerId: number,
  page: { limit: number; offset: number },
): Promise<{ rows: CiVariable[]; total: number }> {
  const base = db.selectFrom('ci_variables').where('owner_kind', '=', ownerKind).where('owner_id', '=', ownerId)
  const rows = await base.selectAll().orderBy('key').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function findVariable(
  db: Executor,
  ownerKind: 'project' | 'group',
  ownerId: number,
  key: string,
): Promise<CiVariable | undefined> {
  return db
    .selectFrom('ci_variables')
    .selectAll()
    .where('owner_kind', '=', ownerKind)
    .where('owner_id', '=', ownerId)
    .where('key', '=', key)
    .executeTakeFirst()
}

export async function insertVariable(db: Executor, v: Omit<CiVariable, 'id' | 'created_at'>): Promise<CiVariable> {
  return db
    .insertInto('ci_variables')
    .values({ ...v, created_at: nowIso() })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function updateVariable(db: Executor, id: number, set: Partial<Omit<CiVariable, 'id' | 'created_at'>>): Promise<void> {
  await db.updateTable('ci_variables').set(set).where('id', '=', id).execute()
}

export async function deleteVariable(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('ci_variables').where('id', '=', id).execute()
}

export async function insertTrigger(
  db: Executor,
  t: { projectId: number; ownerId: number | null; description: string; digest: string; hint: string },
) {
  return db
    .insertInto('pipeline_triggers')
    .values({
      project_id: t.projectId,
      owner_id: t.ownerId,
      description: t.description,
      token_digest: t.digest,
      token_hint: t.hint,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function pageTriggers(db: Executor, projectId: number, page: { limit: number; offset: number }) {
  const base = db.selectFrom('pipeline_triggers').where('project_id', '=', projectId)
  const rows = await base.selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function findTriggerByDigest(db: Executor, digest: string) {
  return db.selectFrom('pipeline_triggers').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export async function deleteTrigger(db: Executor, projectId: number, id: number): Promise<boolean> {
  const r = await db.deleteFrom('pipeline_triggers').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

// ---- metrics (run at scrape time: each an index scan) ----

export async function countJobsByStatus(db: Executor): Promise<Array<{ status: string; n: number }>> {
  const rows = await db
    .selectFrom('ci_jobs')
    .select(['status', (eb) => eb.fn.countAll<number>().as('n')])
    .groupBy('status')
    .execute()
  return rows.map((r) => ({ status: r.status, n: Number(r.n) }))
}

/** When the longest-waiting pending job was queued (null when none waits). */
export async function oldestPendingQueuedAt(db: Executor): Promise<string | null> {
  const r = await db
    .selectFrom('ci_jobs')
    .select((eb) => eb.fn.min('queued_at').as('t'))
    .where('status', '=', 'pending')
    .executeTakeFirst()
  return (r?.t as string | null | undefined) ?? null
}

export async function countRunnersContactedSince(db: Executor, since: string): Promise<number> {
  const r = await db
    .selectFrom('runners')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('contacted_at', '>', since)
    .executeTakeFirst()
  return Number(r?.n ?? 0)
}

// Commit statuses posted by external systems.

export async function upsertCommitStatus(db: Executor, row: Omit<CommitStatus, 'id'>): Promise<CommitStatus> {
  return db
    .insertInto('commit_statuses')
    .values(row)
    .onConflict((oc) =>
      oc.columns(['project_id', 'sha', 'ref', 'name']).doUpdateSet((eb) => ({
        status: eb.ref('excluded.status'),
        description: eb.ref('excluded.description'),
        target_url: eb.ref('excluded.target_url'),
        coverage: eb.ref('excluded.coverage'),
        author_id: eb.ref('excluded.author_id'),
        started_at: eb.fn.coalesce('commit_statuses.started_at', eb.ref('excluded.started_at')),
        finished_at: eb.ref('excluded.finished_at'),
      })),
    )
    .returningAll()
    .executeTakeFirstOrThrow()
}

export interface CommitStatusFilter {
  ref?: string | undefined
  name?: string | undefined
}

export async function listCommitStatuses(
  db: Executor,
  projectId: number,
  sha: string,
  f: CommitStatusFilter,
  page: { limit: number; offset: number },
): Promise<CommitStatus[]> {
  let q = db.selectFrom('commit_statuses').selectAll().where('project_id', '=', projectId).where('sha', '=', sha)
  if (f.ref !== undefined) q = q.where('ref', '=', f.ref)
  if (f.name !== undefined) q = q.where('name', '=', f.name)
  return q.orderBy('id').limit(page.limit).offset(page.offset).execute()
}

export async function countCommitStatuses(db: Executor, projectId: number, sha: string, f: CommitStatusFilter): Promise<number> {
  let q = db
    .selectFrom('commit_statuses')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .where('sha', '=', sha)
  if (f.ref !== undefined) q = q.where('ref', '=', f.ref)
  if (f.name !== undefined) q = q.where('name', '=', f.name)
  const r = await q.executeTakeFirstOrThrow()
  return Number(r.n)
}

/** Pipelines a bridge job created (one per attempt of the bridge). */
export async function downstreamPipelines(db: Executor, bridgeIds: number[]): Promise<Pipeline[]> {
  if (bridgeIds.length === 0) return []
  return db.selectFrom('pipelines').selectAll().where('upstream_job_id', 'in', bridgeIds).orderBy('id').execute()
}

/** A project's jobs waiting for a resource group's resource, oldest first. */
export async function jobsWaitingForResource(db: Executor, projectId: number): Promise<CiJob[]> {
  return db
    .selectFrom('ci_jobs')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('status', '=', 'waiting_for_resource')
    .where('retried', '=', 0)
    .orderBy('id')
    .execute()
}

/** Gives the job its group's resource: pending now, unless another job of the group is pending or running. */
export async function acquireResource(db: Executor, job: CiJob, now: string): Promise<boolean> {
  const r = await db
    .updateTable('ci_jobs')
    .set({ status: 'pending', queued_at: now })
    .where('id', '=', job.id)
    .where('status', '=', 'waiting_for_resource')
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('ci_jobs as held')
            .select('held.id')
            .where('held.project_id', '=', job.project_id)
            .where('held.resource_group', '=', job.resource_group)
            .where('held.status', 'in', ['pending', 'running']),
        ),
      ),
    )
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

export async function ensureResourceGroup(db: Executor, projectId: number, key: string): Promise<void> {
  const now = nowIso()
  await db
    .insertInto('resource_groups')
    .values({ project_id: projectId, key, process_mode: 'unordered', created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['project_id', 'key']).doNothing())
    .execute()
}

export async function findResourceGroup(db: Executor, projectId: number, key: string): Promise<ResourceGroup | undefined> {
  return db.selectFrom('resource_groups').selectAll().where('project_id', '=', projectId).where('key', '=', key).executeTakeFirst()
}

/** One page of a project's resource groups, with how many it has. */
export async function pageResourceGroups(
  db: Executor,
  projectId: number,
  page: { limit: number; offset: number },
): Promise<{ rows: ResourceGroup[]; total: number }> {
  const base = db.selectFrom('resource_groups').where('project_id', '=', projectId)
  const rows = await base.selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function updateResourceGroup(db: Executor, id: number, processMode: string): Promise<void> {
  await db.updateTable('resource_groups').set({ process_mode: processMode, updated_at: nowIso() }).where('id', '=', id).execute()
}

/** A job's pipeline and that pipeline's ref (for the registry's tag history). */
export async function jobPipelineRef(db: Executor, jobId: number) {
  return db
    .selectFrom('ci_jobs as j')
    .innerJoin('pipelines as p', 'p.id', 'j.pipeline_id')
    .select(['p.id', 'p.ref', 'p.tag'])
    .where('j.id', '=', jobId)
    .executeTakeFirst()
}

/** The latest successful pipeline of each branch of a project (one query). */
export async function latestSuccessfulPipelinePerBranch(db: Executor, projectId: number): Promise<Array<{ ref: string; id: number }>> {
  const rows = await db
    .selectFrom('pipelines')
    .select(['ref', (eb) => eb.fn.max('id').as('id')])
    .where('project_id', '=', projectId)
    .where('tag', '=', 0)
    .where('status', '=', 'success')
    .groupBy('ref')
    .execute()
  return rows.map((r) => ({ ref: r.ref, id: Number(r.id) }))
}
