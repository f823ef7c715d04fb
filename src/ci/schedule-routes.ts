import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam, StringEnum } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Pipeline, PipelineSchedule, PipelineScheduleVariable, Project, User } from '../metadata/schema.ts'
import type { Projects } from '../projects/index.ts'
import type { Pipelines } from './pipelines.ts'
import type { PipelineSchedules } from './schedules.ts'

// /api/v4/projects/:id/pipeline_schedules in GitLab's paths, shapes and permissions: Reporters read,
// Developers create and play (run now, as themselves), the schedule's owner or a Maintainer edits
// and deletes, a Maintainer takes ownership.

export interface ScheduleRouteDeps {
  projects: Projects
  pipelines: Pipelines
  schedules: PipelineSchedules
  publicUrl: string
}

const ScheduleParams = Type.Object({ id: Type.String(), schedule_id: Type.Integer() })
const VariableParams = Type.Object({ id: Type.String(), schedule_id: Type.Integer(), key: Type.String({ maxLength: 255 }) })
const ListQuery = Type.Object({ ...PageQuery, scope: Type.Optional(StringEnum(['active', 'inactive'] as const)) })
const Description = Type.String({ minLength: 1, maxLength: 255 })
const Ref = Type.String({ minLength: 1, maxLength: 255 })
const Cron = Type.String({ minLength: 1, maxLength: 255 })
const Zone = Type.String({ minLength: 1, maxLength: 100 })
const CreateBody = Body({
  description: Description,
  ref: Ref,
  cron: Cron,
  cron_timezone: Type.Optional(Zone),
  active: Type.Optional(Type.Boolean()),
})
const UpdateBody = Body({
  description: Type.Optional(Description),
  ref: Type.Optional(Ref),
  cron: Type.Optional(Cron),
  cron_timezone: Type.Optional(Zone),
  active: Type.Optional(Type.Boolean()),
})
const VariableType = StringEnum(['env_var', 'file'] as const)
const CreateVariableBody = Body({
  key: Type.String({ pattern: '^[A-Za-z0-9_]{1,255}$' }),
  value: Type.String(),
  variable_type: Type.Optional(VariableType),
})
const UpdateVariableBody = Body({ value: Type.Optional(Type.String()), variable_type: Type.Optional(VariableType) })

export async function scheduleRoutes(app: TypedApp, deps: ScheduleRouteDeps): Promise<void> {
  const { projects, pipelines, schedules } = deps

  /** The project and the caller's level, if they may at least read its schedules (Reporter). */
  const scheduleProject = async (req: FastifyRequest, id: string, role: 'reporter' | 'developer' | 'maintainer' = 'reporter') => {
    const p = req.principal
    if (p.kind !== 'user') throw new WharfError('FORBIDDEN', 'pipeline schedules need a user', {})
    const { project, level } = await projects.projectFor(p, id)
    if (!atLeast(level, role)) throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return { project, level, userId: p.userId }
  }
  /** The schedule's owner (a Developer still) or a Maintainer may change it. */
  const mayAdmin = (s: PipelineSchedule, level: number | undefined, userId: number) =>
    atLeast(level, 'maintainer') || (s.owner_id === userId && atLeast(level, 'developer'))
  const editable = async (req: FastifyRequest, id: string, scheduleId: number) => {
    const { project, level, userId } = await scheduleProject(req, id, 'developer')
    const s = await schedules.find(project, scheduleId)
    if (!mayAdmin(s, level, userId)) throw new WharfError('FORBIDDEN', 'only the owner of the schedule or a maintainer may change it', {})
    return { project, s, userId }
  }

  const userJson = (u: User | undefined) =>
    u
      ? { id: u.id, username: u.username, name: u.name, state: u.state, avatar_url: null, web_url: `${deps.publicUrl}/${u.username}` }
      : null
  const pipelineBasic = (project: Project, p: Pipeline) => ({
    id: p.id,
    iid: p.iid,
    project_id: p.project_id,
    sha: p.sha,
    ref: p.ref,
    status: p.status,
    source: p.source,
    created_at: p.created_at,
    updated_at: p.updated_at,
    web_url: pipelines.pipelineUrl(project, p.id),
  })
  const variableJson = (v: PipelineScheduleVariable) => ({ key: v.key, variable_type: v.variable_type, value: v.value, raw: false })
  const scheduleJson = async (s: PipelineSchedule) => ({
    id: s.id,
    description: s.description,
    ref: s.ref,
    cron: s.cron,
    cron_timezone: s.cron_timezone,
    next_run_at: s.next_run_at,
    active: s.active === 1,
    created_at: s.created_at,
    updated_at: s.updated_at,
    owner: userJson(await pipelines.user(s.owner_id)),
  })
  const detailsJson = async (project: Project, s: PipelineSchedule) => {
    const last = s.last_pipeline_id === null ? undefined : await pipelines.findPipeline(s.last_pipeline_id)
    return {
      ...(await scheduleJson(s)),
      last_pipeline: last ? pipelineBasic(project, last) : null,
      variables: (await schedules.variables(s.id)).map(variableJson),
    }
  }

  app.get(
    '/projects/:id/pipeline_schedules',
    { schema: { summary: 'List pipeline schedules', tags: ['ci'], params: IdParam, querystring: ListQuery } },
    async (req, reply) => {
      const { project } = await scheduleProject(req, req.params.id)
      const page = pageOf(req.query)
      const scope = req.query.scope
      const { rows, total } = await schedules.page(project.id, {
        active: scope === undefined ? undefined : scope === 'active',
        limit: page.limit,
        offset: page.offset,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return Promise.all(rows.map(scheduleJson))
    },
  )
  app.get(
    '/projects/:id/pipeline_schedules/:schedule_id',
    { schema: { summary: 'Get a pipeline schedule with its last pipeline and variables', tags: ['ci'], params: ScheduleParams } },
    async (req) => {
      const { project } = await scheduleProject(req, req.params.id)
      return detailsJson(project, await schedules.find(project, req.params.schedule_id))
    },
  )
  app.get(
    '/projects/:id/pipeline_schedules/:schedule_id/pipelines',
    {
      schema: {
        summary: 'List the pipelines a schedule started',
        tags: ['ci'],
        params: ScheduleParams,
        querystring: Type.Object(PageQuery),
      },
    },
    async (req, reply) => {
      const { project } = await scheduleProject(req, req.params.id)
      const s = await schedules.find(project, req.params.schedule_id)
      const page = pageOf(req.query)
      const rows = await pipelines.listPipelines(project.id, { scheduleId: s.id, limit: page.limit, offset: page.offset })
      setPageHeaders(req, reply, deps.publicUrl, page, await pipelines.countPipelines(project.id, { scheduleId: s.id }))
      return rows.map((p) => pipelineBasic(project, p))
    },
  )
  app.post(
    '/projects/:id/pipeline_schedules',
    { schema: { summary: 'Create a pipeline schedule (the caller owns it)', tags: ['ci'], params: IdParam, body: CreateBody } },
    async (req, reply) => {
      const { project, userId } = await scheduleProject(req, req.params.id, 'developer')
      const s = await schedules.create(project, userId, req.body)
      return reply.code(201).send(await detailsJson(project, s))
    },
  )
  app.put(
    '/projects/:id/pipeline_schedules/:schedule_id',
    { schema: { summary: 'Edit a pipeline schedule (its owner or a maintainer)', tags: ['ci'], params: ScheduleParams, body: UpdateBody } },
    async (req) => {
      const { project, s } = await editable(req, req.params.id, req.params.schedule_id)
      return detailsJson(project, await schedules.update(s, req.body ?? {}))
    },
  )
  app.post(
    '/projects/:id/pipeline_schedules/:schedule_id/take_ownership',
    { schema: { summary: 'Become the owner of a pipeline schedule (maintainer)', tags: ['ci'], params: ScheduleParams } },
    async (req, reply) => {
      const { project, level, userId } = await scheduleProject(req, req.params.id, 'developer')
      const s = await schedules.find(project, req.params.schedule_id)
      if (s.owner_id !== userId && !atLeast(level, 'maintainer'))
        throw new WharfError('FORBIDDEN', 'taking ownership of a schedule needs the maintainer role', { needs: 'maintainer' })
      return reply.code(201).send(await detailsJson(project, await schedules.takeOwnership(s, userId)))
    },
  )
  app.delete(
    '/projects/:id/pipeline_schedules/:schedule_id',
    { schema: { summary: 'Delete a pipeline schedule (its owner or a maintainer)', tags: ['ci'], params: ScheduleParams } },
    async (req, reply) => {
      const { s } = await editable(req, req.params.id, req.params.schedule_id)
      await schedules.remove(s)
      return reply.code(204).send()
    },
  )
  app.post(
    '/projects/:id/pipeline_schedules/:schedule_id/play',
    { schema: { summary: 'Run a pipeline schedule now, as the caller', tags: ['ci'], params: ScheduleParams } },
    async (req, reply) => {
      const { project, userId } = await scheduleProject(req, req.params.id, 'developer')
      const s = await schedules.find(project, req.params.schedule_id)
      await schedules.play(project, s, userId)
      return reply.code(201).send({ message: '201 Created' })
    },
  )

  app.post(
    '/projects/:id/pipeline_schedules/:schedule_id/variables',
    {
      schema: { summary: 'Add a variable to a pipeline schedule', tags: ['ci'], params: ScheduleParams, body: CreateVariableBody },
    },
    async (req, reply) => {
      const { s } = await editable(req, req.params.id, req.params.schedule_id)
      const b = req.body
      return reply.code(201).send(variableJson(await schedules.addVariable(s, b.key, b)))
    },
  )
  app.put(
    '/projects/:id/pipeline_schedules/:schedule_id/variables/:key',
    {
      schema: { summary: "Change a pipeline schedule's variable", tags: ['ci'], params: VariableParams, body: UpdateVariableBody },
    },
    async (req) => {
      const { s } = await editable(req, req.params.id, req.params.schedule_id)
      return variableJson(await schedules.updateVariable(s, req.params.key, req.body ?? {}))
    },
  )
  app.delete(
    '/projects/:id/pipeline_schedules/:schedule_id/variables/:key',
    { schema: { summary: "Delete a pipeline schedule's variable", tags: ['ci'], params: VariableParams } },
    async (req, reply) => {
      const { s } = await editable(req, req.params.id, req.params.schedule_id)
      // GitLab answers 202 with the deleted variable.
      return reply.code(202).send(variableJson(await schedules.removeVariable(s, req.params.key)))
    },
  )
}
