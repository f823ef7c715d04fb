// Pipeline schedules (GitLab's): a cron line in an IANA time zone, a ref, variables and an owner
// the pipelines run as. `runDue` is the scheduler's tick: each due schedule is claimed by moving
// its next run with a conditional update, so two servers on one database never both run it.
import { CronExpressionParser } from 'cron-parser'
import type { Kysely } from 'kysely'
import { ACCESS_LEVELS } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { Database, Pipeline, PipelineSchedule, PipelineScheduleVariable, Project } from '../metadata/schema.ts'
import type { ProjectAccess } from '../projects/index.ts'
import * as projectQueries from '../projects/queries.ts'
import * as userQueries from '../users/queries.ts'
import type { Pipelines } from './pipelines.ts'
import * as sq from './schedule-queries.ts'

/** Schedules run per tick at most; the rest are due still and run on the next tick. */
const DUE_PER_TICK = 100

/** GitLab's cron macros (Fugit's nicknames), besides five fields. */
const CRON_MACROS = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'])

export interface ScheduleInput {
  description?: string | undefined
  ref?: string | undefined
  cron?: string | undefined
  cron_timezone?: string | undefined
  active?: boolean | undefined
}

export interface ScheduleVariableInput {
  value?: string | undefined
  variable_type?: 'env_var' | 'file' | undefined
}

/** Whether `zone` is a time zone the runtime knows (IANA names, `UTC`). */
export function validTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

/**
 * The first time strictly after `after` that `cron` names in `zone`, as an ISO string. Wall-clock
 * times are read in the zone (so `0 2 * * *` stays 02:00 local across DST changes; a time a
 * spring-forward skips runs at the first instant after it). BAD_REQUEST names the field at fault.
 */
export function nextRunAt(cron: string, zone: string, after: Date): string {
  const text = cron.trim().replace(/\s+/g, ' ')
  const fields = text.split(' ')
  if (!(fields.length === 5 || (fields.length === 1 && CRON_MACROS.has(text === '@annually' ? '@yearly' : text))))
    throw new WharfError('BAD_REQUEST', 'cron is invalid syntax', { attribute: 'cron' })
  if (!validTimeZone(zone)) throw new WharfError('BAD_REQUEST', 'cron_timezone is invalid syntax', { attribute: 'cron_timezone' })
  const expr = text === '@midnight' ? '@daily' : text === '@annually' ? '@yearly' : text
  try {
    return CronExpressionParser.parse(expr, { currentDate: after, tz: zone }).next().toISOString()!
  } catch {
    throw new WharfError('BAD_REQUEST', 'cron is invalid syntax', { attribute: 'cron' })
  }
}

/** `refs/heads/x` and `refs/tags/x` name x; a short name is looked up as a branch, then a tag. */
export function shortRef(ref: string): string {
  return ref.replace(/^refs\/(heads|tags)\//, '')
}

export interface ScheduleRunReport {
  /** Schedules that started a pipeline: [schedule id, pipeline id]. */
  ran: Array<[number, number]>
  /** Schedules switched off because their owner is gone, blocked or no longer a developer. */
  deactivated: number[]
  /** Schedules whose pipeline could not be created (no CI file, unknown ref...), with why. */
  failed: Array<[number, string]>
}

export class PipelineSchedules {
  private readonly db: Kysely<Database>
  private readonly pipelines: Pipelines
  private readonly projectAccess: ProjectAccess
  private readonly now: () => number

  constructor(deps: { db: Kysely<Database>; pipelines: Pipelines; projectAccess: ProjectAccess; now?: () => number }) {
    this.db = deps.db
    this.pipelines = deps.pipelines
    this.projectAccess = deps.projectAccess
    this.now = deps.now ?? Date.now
  }

  page(projectId: number, f: { active?: boolean | undefined; limit: number; offset: number }) {
    return sq.pageSchedules(this.db, projectId, f)
  }

  async find(project: Project, id: number): Promise<PipelineSchedule> {
    const s = await sq.findSchedule(this.db, id)
    if (!s || s.project_id !== project.id) throw new WharfError('NOT_FOUND', 'Pipeline Schedule Not Found', {})
    return s
  }

  variables(scheduleId: number): Promise<PipelineScheduleVariable[]> {
    return sq.scheduleVariables(this.db, scheduleId)
  }

  async create(project: Project, ownerId: number, input: Required<Pick<ScheduleInput, 'description' | 'ref' | 'cron'>> & ScheduleInput) {
    const zone = input.cron_timezone ?? 'UTC'
    const at = new Date(this.now())
    return sq.insertSchedule(this.db, {
      project_id: project.id,
      owner_id: ownerId,
      description: input.description,
      ref: input.ref,
      cron: input.cron,
      cron_timezone: zone,
      active: input.active === false ? 0 : 1,
      next_run_at: nextRunAt(input.cron, zone, at),
      created_at: at.toISOString(),
    })
  }

  /** Changes what is given; the next run is worked out again from now (GitLab's set_next_run_at). */
  async update(s: PipelineSchedule, input: ScheduleInput): Promise<PipelineSchedule> {
    const at = new Date(this.now())
    const cron = input.cron ?? s.cron
    const zone = input.cron_timezone ?? s.cron_timezone
    await sq.updateSchedule(this.db, s.id, {
      ...(input.description !== undefined ? { description: input.description } : {}),
      ...(input.ref !== undefined ? { ref: input.ref } : {}),
      ...(input.active !== undefined ? { active: input.active ? 1 : 0 } : {}),
      cron,
      cron_timezone: zone,
      next_run_at: nextRunAt(cron, zone, at),
      updated_at: at.toISOString(),
    })
    return (await sq.findSchedule(this.db, s.id))!
  }

  async takeOwnership(s: PipelineSchedule, userId: number): Promise<PipelineSchedule> {
    await sq.updateSchedule(this.db, s.id, { owner_id: userId, updated_at: new Date(this.now()).toISOString() })
    return (await sq.findSchedule(this.db, s.id))!
  }

  remove(s: PipelineSchedule): Promise<void> {
    return sq.deleteSchedule(this.db, s.id)
  }

  async addVariable(s: PipelineSchedule, key: string, input: ScheduleVariableInput): Promise<PipelineScheduleVariable> {
    if (await sq.findScheduleVariable(this.db, s.id, key)) throw new WharfError('BAD_REQUEST', 'key has already been taken', { key })
    return sq.insertScheduleVariable(this.db, {
      schedule_id: s.id,
      key,
      value: input.value ?? '',
      variable_type: input.variable_type ?? 'env_var',
      created_at: new Date(this.now()).toISOString(),
    })
  }

  async updateVariable(s: PipelineSchedule, key: string, input: ScheduleVariableInput): Promise<PipelineScheduleVariable> {
    const v = await this.variable(s, key)
    await sq.updateScheduleVariable(this.db, v.id, {
      ...(input.value !== undefined ? { value: input.value } : {}),
      ...(input.variable_type !== undefined ? { variable_type: input.variable_type } : {}),
    })
    return (await sq.findScheduleVariable(this.db, s.id, key))!
  }

  async removeVariable(s: PipelineSchedule, key: string): Promise<PipelineScheduleVariable> {
    const v = await this.variable(s, key)
    await sq.deleteScheduleVariable(this.db, v.id)
    return v
  }

  private async variable(s: PipelineSchedule, key: string): Promise<PipelineScheduleVariable> {
    const v = await sq.findScheduleVariable(this.db, s.id, key)
    if (!v) throw new WharfError('NOT_FOUND', 'Pipeline Schedule Variable Not Found', {})
    return v
  }

  /** "Run now" (GitLab's play): a pipeline as `userId`, the caller; the next scheduled run stays. */
  async play(project: Project, s: PipelineSchedule, userId: number): Promise<Pipeline> {
    return this.start(project, s, userId)
  }

  /**
   * The scheduler's tick: every active schedule whose next run has come is claimed (its next run
   * moved past now, only if no other server moved it first) and started as its owner. A schedule
   * whose owner was deleted, is blocked or is no longer a developer of the project is deactivated
   * instead, as GitLab does. A server that was down runs a missed schedule once, not once per miss.
   */
  async runDue(): Promise<ScheduleRunReport> {
    const report: ScheduleRunReport = { ran: [], deactivated: [], failed: [] }
    const at = new Date(this.now())
    const iso = at.toISOString()
    for (const s of await sq.dueSchedules(this.db, iso, DUE_PER_TICK)) {
      let next: string
      try {
        next = nextRunAt(s.cron, s.cron_timezone, at)
      } catch (e) {
        // Written by an older version or a time zone the runtime dropped: stop it rather than retry every tick.
        await sq.updateSchedule(this.db, s.id, { active: 0, updated_at: iso })
        report.failed.push([s.id, (e as Error).message])
        continue
      }
      if (!(await sq.claimRun(this.db, s.id, s.next_run_at, next, iso))) continue
      const project = await projectQueries.findProject(this.db, s.project_id)
      if (!project) continue
      if (!(await this.ownerMayRun(s, project))) {
        await sq.updateSchedule(this.db, s.id, { active: 0, updated_at: iso })
        report.deactivated.push(s.id)
        continue
      }
      try {
        const p = await this.start(project, s, s.owner_id!)
        report.ran.push([s.id, p.id])
      } catch (e) {
        report.failed.push([s.id, (e as Error).message])
      }
    }
    return report
  }

  private async ownerMayRun(s: PipelineSchedule, project: Project): Promise<boolean> {
    if (s.owner_id === null) return false
    const owner = await userQueries.findUser(this.db, s.owner_id)
    if (owner?.state !== 'active') return false
    if (owner.is_admin === 1) return true
    return ((await this.projectAccess.projectLevel(owner, project)) ?? 0) >= ACCESS_LEVELS.developer
  }

  private async start(project: Project, s: PipelineSchedule, userId: number): Promise<Pipeline> {
    const vars = (await sq.scheduleVariables(this.db, s.id)).map((v) => ({ key: v.key, value: v.value, variable_type: v.variable_type }))
    const p = await this.pipelines.createForRef(project, shortRef(s.ref), 'schedule', userId, vars, s.id)
    await sq.updateSchedule(this.db, s.id, { last_pipeline_id: p.id })
    return p
  }
}
