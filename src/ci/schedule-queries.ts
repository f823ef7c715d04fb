import type { Executor, PipelineSchedule, PipelineScheduleVariable } from '../metadata/schema.ts'

// The SQL of pipeline schedules (./schedules.ts).

export type ScheduleFields = Pick<PipelineSchedule, 'description' | 'ref' | 'cron' | 'cron_timezone' | 'active' | 'next_run_at'>

export async function insertSchedule(
  db: Executor,
  row: ScheduleFields & { project_id: number; owner_id: number; created_at: string },
): Promise<PipelineSchedule> {
  return db
    .insertInto('pipeline_schedules')
    .values({ ...row, last_pipeline_id: null, updated_at: row.created_at })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findSchedule(db: Executor, id: number): Promise<PipelineSchedule | undefined> {
  return db.selectFrom('pipeline_schedules').selectAll().where('id', '=', id).executeTakeFirst()
}

/** GitLab's `scope`: `active` or `inactive`; all when absent. */
export async function pageSchedules(
  db: Executor,
  projectId: number,
  f: { active?: boolean | undefined; limit: number; offset: number },
): Promise<{ rows: PipelineSchedule[]; total: number }> {
  let base = db.selectFrom('pipeline_schedules').where('project_id', '=', projectId)
  if (f.active !== undefined) base = base.where('active', '=', f.active ? 1 : 0)
  const [rows, total] = await Promise.all([
    base.selectAll().orderBy('id', 'asc').limit(f.limit).offset(f.offset).execute(),
    base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow(),
  ])
  return { rows, total: Number(total.n) }
}

export async function updateSchedule(
  db: Executor,
  id: number,
  set: Partial<ScheduleFields & Pick<PipelineSchedule, 'owner_id' | 'last_pipeline_id' | 'updated_at'>>,
): Promise<void> {
  await db.updateTable('pipeline_schedules').set(set).where('id', '=', id).execute()
}

export async function deleteSchedule(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('pipeline_schedules').where('id', '=', id).execute()
}

/** Active schedules whose next run is at or before `now` (ISO times compare as text), oldest first. */
export async function dueSchedules(db: Executor, now: string, limit: number): Promise<PipelineSchedule[]> {
  return db
    .selectFrom('pipeline_schedules')
    .selectAll()
    .where('active', '=', 1)
    .where('next_run_at', '<=', now)
    .orderBy('next_run_at', 'asc')
    .limit(limit)
    .execute()
}

/**
 * Claims one run of a schedule by moving its next run on, only if no one else moved it since it
 * was read: of two servers reading the same due row, one updates a row and the other none.
 */
export async function claimRun(db: Executor, id: number, seen: string, next: string, at: string): Promise<boolean> {
  const r = await db
    .updateTable('pipeline_schedules')
    .set({ next_run_at: next, updated_at: at })
    .where('id', '=', id)
    .where('next_run_at', '=', seen)
    .where('active', '=', 1)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) === 1
}

export async function scheduleVariables(db: Executor, scheduleId: number): Promise<PipelineScheduleVariable[]> {
  return db.selectFrom('pipeline_schedule_variables').selectAll().where('schedule_id', '=', scheduleId).orderBy('id').execute()
}

export async function findScheduleVariable(db: Executor, scheduleId: number, key: string): Promise<PipelineScheduleVariable | undefined> {
  return db
    .selectFrom('pipeline_schedule_variables')
    .selectAll()
    .where('schedule_id', '=', scheduleId)
    .where('key', '=', key)
    .executeTakeFirst()
}

export async function insertScheduleVariable(db: Executor, row: Omit<PipelineScheduleVariable, 'id'>): Promise<PipelineScheduleVariable> {
  return db.insertInto('pipeline_schedule_variables').values(row).returningAll().executeTakeFirstOrThrow()
}

export async function updateScheduleVariable(
  db: Executor,
  id: number,
  set: Partial<Pick<PipelineScheduleVariable, 'value' | 'variable_type'>>,
): Promise<void> {
  await db.updateTable('pipeline_schedule_variables').set(set).where('id', '=', id).execute()
}

export async function deleteScheduleVariable(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('pipeline_schedule_variables').where('id', '=', id).execute()
}
