import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam, Nullable, StringEnum } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { CiJob, Deployment, Environment, Pipeline, Project, User } from '../metadata/schema.ts'
import type { Projects } from '../projects/index.ts'
import { DEPLOYMENT_ORDER, DEPLOYMENT_STATUSES, ENVIRONMENT_STATES } from './environment-queries.ts'
import { DEPLOYMENT_TIERS, ENVIRONMENT_NAME, type Environments } from './environments.ts'
import type { Pipelines } from './pipelines.ts'

// /api/v4/projects/:id/environments and /deployments in GitLab's paths, shapes and permissions:
// Reporters (anyone, on a public or internal project) read; Developers create, edit, stop and
// delete environments (only a stopped one can be deleted).

export interface EnvironmentRouteDeps {
  projects: Projects
  pipelines: Pipelines
  environments: Environments
  publicUrl: string
}

const EnvironmentParams = Type.Object({ id: Type.String(), environment_id: Type.Integer() })
const DeploymentParams = Type.Object({ id: Type.String(), deployment_id: Type.Integer() })
const Name = Type.String({ minLength: 1, maxLength: ENVIRONMENT_NAME.maxLength })
const Url = Type.String({ maxLength: 255, pattern: '^https?://' })
const Tier = StringEnum(DEPLOYMENT_TIERS)
const ListQuery = Type.Object({
  ...PageQuery,
  name: Type.Optional(Name),
  search: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  states: Type.Optional(StringEnum(ENVIRONMENT_STATES)),
})
const DeploymentQuery = Type.Object({
  ...PageQuery,
  order_by: Type.Optional(StringEnum(DEPLOYMENT_ORDER)),
  sort: Type.Optional(StringEnum(['asc', 'desc'] as const)),
  environment: Type.Optional(Name),
  status: Type.Optional(StringEnum(DEPLOYMENT_STATUSES)),
  updated_after: Type.Optional(Type.String({ format: 'date-time' })),
  updated_before: Type.Optional(Type.String({ format: 'date-time' })),
})
const CreateBody = Body({ name: Name, external_url: Type.Optional(Url), tier: Type.Optional(Tier) })
const UpdateBody = Body({ external_url: Type.Optional(Nullable(Url)), tier: Type.Optional(Tier) })
const StopBody = Body({ force: Type.Optional(Type.Boolean()) })

export async function environmentRoutes(app: TypedApp, deps: EnvironmentRouteDeps): Promise<void> {
  const { projects, pipelines, environments, publicUrl } = deps

  /** The project, if the caller may read its environments (and has `role` when given). */
  const envProject = async (req: FastifyRequest, id: string, role?: 'developer'): Promise<Project> => {
    const { project, level } = await projects.projectFor(req.principal, id)
    if (project.visibility === 'private' && !atLeast(level, 'reporter'))
      throw new WharfError('FORBIDDEN', 'reading environments needs the reporter role', { needs: 'reporter' })
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return project
  }

  const userJson = (u: User | undefined) =>
    u ? { id: u.id, username: u.username, name: u.name, state: u.state, avatar_url: null, web_url: `${publicUrl}/${u.username}` } : null
  const envBasic = (e: Environment) => ({
    id: e.id,
    name: e.name,
    slug: e.slug,
    external_url: e.external_url,
    state: e.state,
    tier: e.tier,
    created_at: e.created_at,
    updated_at: e.updated_at,
    auto_stop_at: e.auto_stop_at,
  })
  const jobJson = (project: Project, j: CiJob | undefined, p: Pipeline | undefined) =>
    j
      ? {
          id: j.id,
          name: j.name,
          stage: j.stage,
          status: j.status,
          ref: p?.ref ?? null,
          tag: p?.tag === 1,
          created_at: j.created_at,
          started_at: j.started_at,
          finished_at: j.finished_at,
          web_url: `${publicUrl}/${project.full_path}/-/jobs/${j.id}`,
          pipeline: p
            ? {
                id: p.id,
                iid: p.iid,
                project_id: p.project_id,
                ref: p.ref,
                sha: p.sha,
                status: p.status,
                web_url: pipelines.pipelineUrl(project, p.id),
              }
            : null,
        }
      : null
  const deploymentJson = async (project: Project, d: Deployment, env?: Environment) => {
    const job = d.job_id === null ? undefined : await pipelines.findJob(d.job_id)
    const pipeline = d.pipeline_id === null ? undefined : await pipelines.findPipeline(d.pipeline_id)
    const environment = env ?? (await environments.find(project.id, d.environment_id))
    return {
      id: d.id,
      iid: d.iid,
      ref: d.ref,
      sha: d.sha,
      status: d.status,
      created_at: d.created_at,
      updated_at: d.updated_at,
      finished_at: d.finished_at,
      user: userJson(await pipelines.user(d.user_id)),
      environment: envBasic(environment),
      deployable: jobJson(project, job, pipeline),
    }
  }
  const environmentJson = async (project: Project, e: Environment) => {
    const last = await environments.lastDeployment(e)
    return { ...envBasic(e), project_id: project.id, last_deployment: last ? await deploymentJson(project, last, e) : null }
  }

  app.get(
    '/projects/:id/environments',
    { schema: { summary: 'List environments', tags: ['environments'], params: IdParam, querystring: ListQuery }, config: { public: true } },
    async (req, reply) => {
      const project = await envProject(req, req.params.id)
      const page = pageOf(req.query)
      const { rows, total } = await environments.page(
        project.id,
        { name: req.query.name, search: req.query.search, states: req.query.states ? [req.query.states] : undefined },
        page,
      )
      setPageHeaders(req, reply, publicUrl, page, total)
      return Promise.all(rows.map((e) => environmentJson(project, e)))
    },
  )
  app.get(
    '/projects/:id/environments/:environment_id',
    {
      schema: { summary: 'Get an environment with its last deployment', tags: ['environments'], params: EnvironmentParams },
      config: { public: true },
    },
    async (req) => {
      const project = await envProject(req, req.params.id)
      return environmentJson(project, await environments.find(project.id, req.params.environment_id))
    },
  )
  app.post(
    '/projects/:id/environments',
    { schema: { summary: 'Create an environment (developer)', tags: ['environments'], params: IdParam, body: CreateBody } },
    async (req, reply) => {
      const project = await envProject(req, req.params.id, 'developer')
      const b = req.body
      const env = await environments.create(project, { name: b.name, externalUrl: b.external_url, tier: b.tier })
      return reply.code(201).send(await environmentJson(project, env))
    },
  )
  app.put(
    '/projects/:id/environments/:environment_id',
    {
      schema: {
        summary: "Edit an environment's URL or tier (developer)",
        tags: ['environments'],
        params: EnvironmentParams,
        body: UpdateBody,
      },
    },
    async (req) => {
      const project = await envProject(req, req.params.id, 'developer')
      const env = await environments.find(project.id, req.params.environment_id)
      const b = req.body ?? {}
      return environmentJson(project, await environments.update(env, { externalUrl: b.external_url, tier: b.tier }))
    },
  )
  app.delete(
    '/projects/:id/environments/:environment_id',
    { schema: { summary: 'Delete a stopped environment (developer)', tags: ['environments'], params: EnvironmentParams } },
    async (req, reply) => {
      const project = await envProject(req, req.params.id, 'developer')
      await environments.remove(await environments.find(project.id, req.params.environment_id))
      return reply.code(204).send()
    },
  )
  app.post(
    '/projects/:id/environments/:environment_id/stop',
    {
      schema: {
        summary: 'Stop an environment: runs the on_stop job of its last deployment (developer)',
        tags: ['environments'],
        params: EnvironmentParams,
        body: Type.Optional(StopBody),
      },
    },
    async (req, reply) => {
      const project = await envProject(req, req.params.id, 'developer')
      const env = await environments.find(project.id, req.params.environment_id)
      const stopped = await environments.stop(env, { force: req.body?.force })
      return reply.code(200).send(await environmentJson(project, stopped))
    },
  )

  app.get(
    '/projects/:id/deployments',
    {
      schema: { summary: 'List deployments', tags: ['environments'], params: IdParam, querystring: DeploymentQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await envProject(req, req.params.id)
      const page = pageOf(req.query)
      const q = req.query
      let environmentId: number | undefined
      if (q.environment !== undefined) {
        const env = await environments.findByName(project.id, q.environment)
        if (!env) {
          setPageHeaders(req, reply, publicUrl, page, 0)
          return []
        }
        environmentId = env.id
      }
      const { rows, total } = await environments.deployments(
        project.id,
        {
          environmentId,
          status: q.status,
          updatedAfter: q.updated_after && new Date(q.updated_after).toISOString(),
          updatedBefore: q.updated_before && new Date(q.updated_before).toISOString(),
          orderBy: q.order_by ?? 'id',
          sort: q.sort ?? 'asc',
        },
        page,
      )
      setPageHeaders(req, reply, publicUrl, page, total)
      const envs = await environments.environmentsById(
        project.id,
        rows.map((d) => d.environment_id),
      )
      return Promise.all(rows.map((d) => deploymentJson(project, d, envs.get(d.environment_id))))
    },
  )
  app.get(
    '/projects/:id/deployments/:deployment_id',
    { schema: { summary: 'Get a deployment', tags: ['environments'], params: DeploymentParams }, config: { public: true } },
    async (req) => {
      const project = await envProject(req, req.params.id)
      return deploymentJson(project, await environments.deployment(project.id, req.params.deployment_id))
    },
  )
}
