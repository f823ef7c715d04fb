import { Type, type Static } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ApiUrls } from '../api/context.ts'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { COMMIT_STATES, type CommitStatuses } from './commit-statuses.ts'
import { StringEnum } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { CommitInfo, GitRepos } from '../git/repos.ts'
import type { CiJob, Pipeline, Project, ResourceGroup, Runner, User } from '../metadata/schema.ts'
import type { Groups, Projects } from '../projects/index.ts'
import type { JobRelations, Pipelines } from './pipelines.ts'
import { runnerJson, type Runners } from './runners.ts'
import { JOB_STATUSES } from './state.ts'
import type { Triggers } from './triggers.ts'
import type { Artifacts } from './artifacts.ts'
import type { JobErasure } from './job-erasure.ts'
import { variableJson, type CiVariables } from './variables.ts'

export interface CiRouteDeps extends ApiUrls {
  projects: Projects
  groups: Groups
  pipelines: Pipelines
  commitStatuses: CommitStatuses
  variables: CiVariables
  triggers: Triggers
  repos: GitRepos
  artifacts: Artifacts
  jobErasure: JobErasure
  runners: Runners
}

// /api/v4 pipelines, jobs, CI/CD variables and triggers, in GitLab's paths and shapes.

const PipelineParams = Type.Object({ id: Type.String(), pipeline_id: Type.Integer() })
const JobParams = Type.Object({ id: Type.String(), job_id: Type.Integer() })
const KeyParams = Type.Object({ id: Type.String(), key: Type.String({ maxLength: 255 }) })
const TriggerParams = Type.Object({ id: Type.String(), trigger_id: Type.Integer() })
const PipelineQuery = Type.Object({
  ...PageQuery,
  ref: Type.Optional(Type.String()),
  status: Type.Optional(Type.String()),
  source: Type.Optional(Type.String()),
  sha: Type.Optional(Type.String()),
})
const Scope = Type.Union([Type.String(), Type.Array(Type.String())])
const JobQuery = Type.Object({
  ...PageQuery,
  scope: Type.Optional(Scope),
  'scope[]': Type.Optional(Scope),
  include_retried: Type.Optional(Type.Boolean()),
})
const VariableBody = Body({
  key: Type.Optional(Type.String()),
  value: Type.Optional(Type.String()),
  variable_type: Type.Optional(Type.Union([Type.Literal('env_var'), Type.Literal('file')])),
  protected: Type.Optional(Type.Boolean()),
  masked: Type.Optional(Type.Boolean()),
  environment_scope: Type.Optional(Type.String()),
})
const PipelineVariable = Body({
  key: Type.String({ pattern: '^[A-Za-z0-9_]{1,255}$' }),
  value: Type.String(),
  variable_type: Type.Optional(Type.Union([Type.Literal('env_var'), Type.Literal('file')])),
})
const CreatePipelineBody = Body({
  ref: Type.String({ minLength: 1 }),
  variables: Type.Optional(Type.Array(PipelineVariable, { maxItems: 200 })),
})
const TriggerBody = Body({ description: Type.Optional(Type.String({ maxLength: 255 })) })
// Variables come as a JSON object or, from form posts, as `variables[KEY]=value` fields (which the form parser nests).
// GitLab (Grape) reads `token`, `ref` and `variables[KEY]` from the body or the query string alike.
const TriggerPipelineBody = Body({
  token: Type.Optional(Type.String()),
  ref: Type.Optional(Type.String({ minLength: 1 })),
  variables: Type.Optional(Type.Record(Type.String(), Type.String())),
})
const TriggerVariableKey = '^variables\\[[^\\]]+\\]$'
const TriggerQuery = Type.Object(
  { token: Type.Optional(Type.String()), ref: Type.Optional(Type.String({ minLength: 1 })) },
  { patternProperties: { [TriggerVariableKey]: Type.String() }, additionalProperties: false },
)
const RefTriggerQuery = Type.Object(
  { token: Type.String() },
  { patternProperties: { [TriggerVariableKey]: Type.String() }, additionalProperties: false },
)
const RefTriggerParams = Type.Object({ id: Type.String(), ref: Type.String({ minLength: 1 }) })

/** `variables[KEY]=value` query parameters as `{ KEY: value }`. */
function queryVariables(query: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(query)) {
    const m = /^variables\[([^\]]+)\]$/.exec(k)
    if (m && v !== undefined) out[m[1]!] = v
  }
  return out
}

/** The runner entity GitLab embeds in a job. */
const runnerSummary = (r: Runner) => {
  const { id, description, active, paused, is_shared, runner_type, name, online, status } = runnerJson(r)
  return { id, description, active, paused, is_shared, runner_type, name, online, status }
}

const seconds = (from: string | null, to: string | null) => (from && to ? (new Date(to).getTime() - new Date(from).getTime()) / 1000 : null)

export async function ciRoutes(app: TypedApp, deps: CiRouteDeps): Promise<void> {
  const { projects, groups, pipelines, variables, triggers, repos } = deps

  /** The project, if the caller may see its pipelines (as its registry: Reporter+ when private), with a stricter role on demand. */
  const ciProject = async (req: FastifyRequest, id: string, role?: 'developer' | 'maintainer' | 'owner'): Promise<Project> => {
    const { project, level } = await projects.projectFor(req.principal, id)
    const canRead = project.visibility !== 'private' || atLeast(level, 'reporter')
    if (!canRead) throw new WharfError('FORBIDDEN', 'reading pipelines needs the reporter role', { needs: 'reporter' })
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return project
  }
  /** One page of a pipeline's jobs of a kind (GitLab lists builds and bridges apart), pagination headers set. */
  const pipelineJobsPage = async (
    req: FastifyRequest,
    reply: FastifyReply,
    params: Static<typeof PipelineParams>,
    query: Static<typeof JobQuery>,
    kind: 'build' | 'bridge',
  ) => {
    const project = await ciProject(req, params.id)
    const page = pageOf(query)
    const pipeline = await pipelineOf(project, params.pipeline_id)
    const { rows, total } = await pipelines.pageJobs({
      projectId: project.id,
      pipelineId: pipeline.id,
      scope: scopes(query),
      includeRetried: query.include_retried ?? false,
      limit: page.limit,
      offset: page.offset,
      kind,
    })
    setPageHeaders(req, reply, deps.publicUrl, page, total)
    return { project, rows }
  }
  const pipelineOf = async (project: Project, id: number): Promise<Pipeline> => {
    const p = await pipelines.findPipeline(id)
    if (!p || p.project_id !== project.id) throw new WharfError('NOT_FOUND', 'Pipeline Not Found', {})
    return p
  }
  const jobOf = async (project: Project, id: number): Promise<CiJob> => {
    const j = await pipelines.findJob(id)
    if (!j || j.project_id !== project.id) throw new WharfError('NOT_FOUND', 'Job Not Found', {})
    return j
  }
  const userJson = (u: User | undefined) =>
    u
      ? { id: u.id, username: u.username, name: u.name, state: u.state, avatar_url: null, web_url: `${deps.publicUrl}/${u.username}` }
      : null
  const userOf = async (id: number | null) => userJson(await pipelines.user(id))
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
  const pipelineJson = async (project: Project, p: Pipeline) => ({
    ...pipelineBasic(project, p),
    before_sha: p.before_sha,
    tag: p.tag === 1,
    yaml_errors: p.yaml_errors,
    user: await userOf(p.user_id),
    started_at: p.started_at,
    finished_at: p.finished_at,
    committed_at: null,
    duration: seconds(p.started_at, p.finished_at),
    queued_duration: null,
    coverage: pipelineCoverage(await pipelines.jobs(p.id)),
    detailed_status: { text: p.status, label: p.status, group: p.status },
  })
  /**
   * Job entities for a page of jobs: pipelines, users, runners and artifacts in one query each and
   * the commits in one `git cat-file` for the whole page, never one lookup (or git process) per job.
   */
  const jobsJson = async (project: Project, jobs: readonly CiJob[]) => {
    const rel = await pipelines.jobRelations(jobs)
    const commits = await repos.commitInfos(
      project.id,
      [...rel.pipelines.values()].map((p) => p.sha),
    )
    return jobs.map((j) => jobJson(project, j, rel, commits))
  }
  const oneJobJson = async (project: Project, j: CiJob) => (await jobsJson(project, [j]))[0]!
  const jobJson = (project: Project, j: CiJob, rel: JobRelations, commits: Map<string, CommitInfo>) => {
    const p = rel.pipelines.get(j.pipeline_id)!
    const commit = commits.get(p.sha)
    const def = JSON.parse(j.definition) as { tags?: string[] }
    const runner = j.runner_id === null ? undefined : rel.runners.get(j.runner_id)
    const stored = rel.artifacts.get(j.id) ?? []
    const archive = stored.find((a) => a.file_type === 'archive')
    return {
      id: j.id,
      status: j.status,
      stage: j.stage,
      name: j.name,
      ref: p.ref,
      tag: p.tag === 1,
      coverage: j.coverage,
      allow_failure: j.allow_failure === 1,
      when: j.when,
      created_at: j.created_at,
      started_at: j.started_at,
      finished_at: j.finished_at,
      erased_at: j.erased_at,
      // When a delayed job (status scheduled) is queued; null for other jobs.
      scheduled_at: j.scheduled_at,
      duration: seconds(j.started_at, j.finished_at),
      queued_duration: seconds(j.queued_at, j.started_at),
      user: userJson(j.user_id === null ? undefined : rel.users.get(j.user_id)),
      commit: commit && {
        id: commit.id,
        short_id: commit.shortId,
        title: commit.title,
        message: commit.message,
        author_name: commit.authorName,
        author_email: commit.authorEmail,
        created_at: commit.committedDate,
      },
      pipeline: pipelineBasic(project, p),
      web_url: `${deps.publicUrl}/${project.full_path}/-/jobs/${j.id}`,
      artifacts_file: archive ? { filename: archive.filename, size: archive.size } : undefined,
      artifacts: stored.map((a) => ({ file_type: a.file_type, size: a.size, filename: a.filename, file_format: a.file_format })),
      artifacts_expire_at: archive?.expire_at ?? null,
      runner: runner ? runnerSummary(runner) : null,
      tag_list: def.tags ?? [],
      failure_reason: j.failure_reason,
      retried: j.retried === 1,
    }
  }

  app.get(
    '/projects/:id/pipelines',
    { schema: { summary: 'List pipelines', tags: ['ci'], params: IdParam, querystring: PipelineQuery }, config: { public: true } },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id)
      const query = req.query
      const page = pageOf(query)
      const filter = {
        ...(query.ref ? { ref: query.ref } : {}),
        ...(query.status ? { status: query.status } : {}),
        ...(query.source ? { source: query.source } : {}),
        ...(query.sha ? { sha: query.sha } : {}),
      }
      const rows = await pipelines.listPipelines(project.id, { ...filter, limit: page.limit, offset: page.offset })
      setPageHeaders(req, reply, deps.publicUrl, page, await pipelines.countPipelines(project.id, filter))
      return rows.map((p) => pipelineBasic(project, p))
    },
  )

  app.get(
    '/projects/:id/pipelines/:pipeline_id',
    { schema: { summary: 'Get a pipeline', tags: ['ci'], params: PipelineParams }, config: { public: true } },
    async (req) => {
      const { id, pipeline_id } = req.params
      const project = await ciProject(req, id)
      return pipelineJson(project, await pipelineOf(project, pipeline_id))
    },
  )

  const LatestQuery = Type.Object({ ref: Type.Optional(Type.String({ minLength: 1 })) })
  app.get(
    '/projects/:id/pipelines/latest',
    {
      schema: {
        summary: "The newest pipeline of a ref's head commit (the default branch when no ref)",
        tags: ['ci'],
        params: IdParam,
        querystring: LatestQuery,
      },
      config: { public: true },
    },
    async (req) => {
      const project = await ciProject(req, req.params.id)
      const ref = req.query.ref ?? (await repos.defaultBranch(project.id))
      const sha = ref === undefined ? undefined : await repos.resolveRef(project.id, ref).catch(() => undefined)
      const [latest] = sha ? await pipelines.listPipelines(project.id, { ref: ref!, sha, limit: 1, offset: 0 }) : []
      if (!latest) throw new WharfError('NOT_FOUND', 'Pipeline Not Found', { ref: ref ?? null })
      return pipelineJson(project, latest)
    },
  )

  // Commit statuses from external systems: Developers post, Reporters read.
  const StatusParams = Type.Object({ id: Type.String(), sha: Type.String({ minLength: 1, maxLength: 64 }) })
  const StatusBody = Body({
    state: StringEnum(COMMIT_STATES),
    ref: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    context: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
    target_url: Type.Optional(Type.String({ maxLength: 2048, pattern: '^https?://' })),
    description: Type.Optional(Type.String({ maxLength: 255 })),
    coverage: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    pipeline_id: Type.Optional(Type.Integer()),
  })
  const StatusQuery = Type.Object({
    ...PageQuery,
    ref: Type.Optional(Type.String()),
    name: Type.Optional(Type.String()),
    stage: Type.Optional(Type.String()),
    all: Type.Optional(Type.Boolean()),
  })
  const statusJson = async (s: Awaited<ReturnType<CommitStatuses['post']>>) => ({
    id: s.id,
    sha: s.sha,
    ref: s.ref || null,
    status: s.status,
    name: s.name,
    target_url: s.target_url,
    description: s.description,
    created_at: s.created_at,
    started_at: s.started_at,
    finished_at: s.finished_at,
    allow_failure: false,
    coverage: s.coverage,
    pipeline_id: null,
    author: await userOf(s.author_id),
  })
  app.post(
    '/projects/:id/statuses/:sha',
    {
      schema: {
        summary: 'Post the status of a commit (an external check), updated in place per name',
        tags: ['ci'],
        params: StatusParams,
        body: StatusBody,
      },
    },
    async (req, reply) => {
      const { id, sha } = req.params
      const project = await ciProject(req, id, 'developer')
      const b = req.body
      const s = await deps.commitStatuses.post(
        project,
        sha,
        {
          state: b.state,
          ref: b.ref,
          name: b.name ?? b.context,
          targetUrl: b.target_url,
          description: b.description,
          coverage: b.coverage,
        },
        req.principal.kind === 'user' ? req.principal.userId : null,
      )
      return reply.code(201).send(await statusJson(s))
    },
  )
  app.get(
    '/projects/:id/repository/commits/:sha/statuses',
    {
      schema: { summary: 'List the statuses posted for a commit', tags: ['ci'], params: StatusParams, querystring: StatusQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const { id, sha } = req.params
      const project = await ciProject(req, id)
      const q = req.query
      const page = pageOf(q)
      // `:sha` may name the commit by a branch or tag, as GitLab resolves it.
      const commit = (await repos.resolveRef(project.id, sha).catch(() => undefined)) ?? sha
      const { rows, total } = await deps.commitStatuses.page(project.id, commit, { ref: q.ref, name: q.name }, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return Promise.all(rows.map(statusJson))
    },
  )

  // GitLab's CI lint, the same planning (and errors) as a pipeline for the ref, nothing created.
  const LintBody = Body({
    content: Type.String(),
    dry_run: Type.Optional(Type.Boolean()),
    include_jobs: Type.Optional(Type.Boolean()),
    ref: Type.Optional(Type.String({ minLength: 1 })),
    dry_run_ref_type: Type.Optional(Type.String()),
  })
  const LintQuery = Type.Object({
    content_ref: Type.Optional(Type.String({ minLength: 1 })),
    dry_run: Type.Optional(Type.Boolean()),
    include_jobs: Type.Optional(Type.Boolean()),
    dry_run_ref: Type.Optional(Type.String({ minLength: 1 })),
    ref: Type.Optional(Type.String({ minLength: 1 })),
  })
  const lintJson = (l: Awaited<ReturnType<typeof pipelines.lint>>, includeJobs: boolean | undefined) => ({
    valid: l.valid,
    errors: l.errors,
    warnings: [],
    // Includes, `extends` and `!reference` expanded, as GitLab's lint answers (null when the file did not get that far).
    merged_yaml: l.mergedYaml ?? null,
    includes: [],
    ...(includeJobs
      ? {
          jobs: l.jobs.map((j) => ({
            name: j.name,
            stage: j.stage,
            when: j.when,
            allow_failure: j.allowFailure,
            needs: j.needs?.map((n) => ({ name: n.job })) ?? [],
          })),
        }
      : {}),
  })
  app.post(
    '/projects/:id/ci/lint',
    {
      schema: {
        summary: 'Validate CI/CD configuration (content) as a pipeline for a ref would be planned',
        tags: ['ci'],
        params: IdParam,
        body: LintBody,
      },
    },
    async (req) => {
      const project = await ciProject(req, req.params.id, 'developer')
      const b = req.body
      return lintJson(await pipelines.lint(project, { content: b.content, ref: b.ref }), b.include_jobs)
    },
  )
  app.get(
    '/projects/:id/ci/lint',
    {
      schema: {
        summary: "Validate the project's CI/CD configuration at a ref (content_ref, default branch by default)",
        tags: ['ci'],
        params: IdParam,
        querystring: LintQuery,
      },
    },
    async (req) => {
      const project = await ciProject(req, req.params.id, 'developer')
      const q = req.query
      return lintJson(await pipelines.lint(project, { ref: q.content_ref ?? q.ref }), q.include_jobs)
    },
  )

  app.post(
    '/projects/:id/pipeline',
    { schema: { summary: 'Run a pipeline for a ref', tags: ['ci'], params: IdParam, body: CreatePipelineBody } },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id, 'developer')
      const body = req.body
      const p = await pipelines.createForRef(
        project,
        body.ref,
        'api',
        req.principal.kind === 'user' ? req.principal.userId : null,
        body.variables ?? [],
      )
      return reply.code(201).send(await pipelineJson(project, p))
    },
  )

  app.post(
    '/projects/:id/pipelines/:pipeline_id/cancel',
    { schema: { summary: 'Cancel a pipeline', tags: ['ci'], params: PipelineParams } },
    async (req) => {
      const { id, pipeline_id } = req.params
      const project = await ciProject(req, id, 'developer')
      await pipelines.cancel((await pipelineOf(project, pipeline_id)).id)
      return pipelineJson(project, await pipelineOf(project, pipeline_id))
    },
  )

  app.post(
    '/projects/:id/pipelines/:pipeline_id/retry',
    { schema: { summary: 'Retry failed jobs of a pipeline', tags: ['ci'], params: PipelineParams } },
    async (req, reply) => {
      const { id, pipeline_id } = req.params
      const project = await ciProject(req, id, 'developer')
      await pipelines.retry((await pipelineOf(project, pipeline_id)).id)
      return reply.code(201).send(await pipelineJson(project, await pipelineOf(project, pipeline_id)))
    },
  )

  app.delete(
    '/projects/:id/pipelines/:pipeline_id',
    { schema: { summary: 'Delete a pipeline', tags: ['ci'], params: PipelineParams } },
    async (req, reply) => {
      const { id, pipeline_id } = req.params
      const project = await ciProject(req, id, 'owner')
      await pipelines.deletePipeline((await pipelineOf(project, pipeline_id)).id)
      return reply.code(204).send()
    },
  )

  app.get(
    '/projects/:id/pipelines/:pipeline_id/variables',
    { schema: { summary: 'Variables given when the pipeline was run', tags: ['ci'], params: PipelineParams } },
    async (req) => {
      const { id, pipeline_id } = req.params
      const project = await ciProject(req, id, 'developer')
      const p = await pipelineOf(project, pipeline_id)
      return (JSON.parse(p.variables) as Array<{ key: string; value: string; variable_type?: string }>).map((v) => ({
        key: v.key,
        value: v.value,
        variable_type: v.variable_type ?? 'env_var',
      }))
    },
  )

  const scopes = (query: Static<typeof JobQuery>) => {
    const raw = query.scope ?? query['scope[]']
    return raw === undefined ? undefined : Array.isArray(raw) ? raw : [raw]
  }

  app.get(
    '/projects/:id/pipelines/:pipeline_id/jobs',
    {
      schema: { summary: "List a pipeline's jobs, in stage order", tags: ['ci'], params: PipelineParams, querystring: JobQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const { project, rows } = await pipelineJobsPage(req, reply, req.params, req.query, 'build')
      return jobsJson(project, rows)
    },
  )

  app.get(
    '/projects/:id/pipelines/:pipeline_id/bridges',
    {
      schema: {
        summary: "List a pipeline's bridge (trigger) jobs with their downstream pipelines",
        tags: ['ci'],
        params: PipelineParams,
        querystring: JobQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project, rows } = await pipelineJobsPage(req, reply, req.params, req.query, 'bridge')
      const downstream = new Map((await pipelines.downstreamPipelines(rows.map((r) => r.id))).map((d) => [d.upstream_job_id, d]))
      const jobs = await jobsJson(project, rows)
      return Promise.all(
        jobs.map(async (j) => {
          const d = downstream.get(j.id)
          // Another project's pipeline only for callers who may see that project.
          const target = d && (d.project_id === project.id ? project : await ciProject(req, String(d.project_id)).catch(() => undefined))
          return { ...j, downstream_pipeline: d && target ? pipelineBasic(target, d) : null }
        }),
      )
    },
  )

  const ResourceGroupParams = Type.Object({ id: Type.String(), key: Type.String({ minLength: 1, maxLength: 255 }) })
  const ResourceGroupBody = Body({ process_mode: Type.Optional(StringEnum(['unordered', 'oldest_first', 'newest_first'])) })
  const resourceGroupJson = (g: ResourceGroup) => ({
    id: g.id,
    key: g.key,
    process_mode: g.process_mode,
    created_at: g.created_at,
    updated_at: g.updated_at,
  })
  const resourceGroupOf = async (project: Project, key: string): Promise<ResourceGroup> => {
    const g = await pipelines.findResourceGroup(project.id, key)
    if (!g) throw new WharfError('NOT_FOUND', 'Resource group Not Found', {})
    return g
  }

  app.get(
    '/projects/:id/resource_groups',
    {
      schema: { summary: "List a project's resource groups", tags: ['ci'], params: IdParam, querystring: Type.Object({ ...PageQuery }) },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id)
      const page = pageOf(req.query)
      const { rows, total } = await pipelines.resourceGroups(project.id, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map(resourceGroupJson)
    },
  )

  app.get(
    '/projects/:id/resource_groups/:key',
    { schema: { summary: 'Get a resource group', tags: ['ci'], params: ResourceGroupParams }, config: { public: true } },
    async (req) => {
      const project = await ciProject(req, req.params.id)
      return resourceGroupJson(await resourceGroupOf(project, req.params.key))
    },
  )

  app.put(
    '/projects/:id/resource_groups/:key',
    { schema: { summary: "Change a resource group's process mode", tags: ['ci'], params: ResourceGroupParams, body: ResourceGroupBody } },
    async (req) => {
      const project = await ciProject(req, req.params.id, 'maintainer')
      const group = await resourceGroupOf(project, req.params.key)
      const mode = req.body.process_mode
      return resourceGroupJson(mode === undefined ? group : await pipelines.updateResourceGroup(group, mode))
    },
  )

  app.get(
    '/projects/:id/resource_groups/:key/upcoming_jobs',
    {
      schema: {
        summary: 'Jobs waiting for a resource group, in the order they will get it',
        tags: ['ci'],
        params: ResourceGroupParams,
        querystring: Type.Object({ ...PageQuery }),
      },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id)
      const page = pageOf(req.query)
      const waiting = await pipelines.upcomingJobs(await resourceGroupOf(project, req.params.key))
      setPageHeaders(req, reply, deps.publicUrl, page, waiting.length)
      return jobsJson(project, waiting.slice(page.offset, page.offset + page.limit))
    },
  )

  app.get(
    '/projects/:id/jobs',
    {
      schema: { summary: "List a project's jobs, newest first", tags: ['ci'], params: IdParam, querystring: JobQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id)
      const query = req.query
      const page = pageOf(query)
      // GitLab lists every attempt here, retried ones included.
      const { rows, total } = await pipelines.pageJobs({
        projectId: project.id,
        scope: scopes(query),
        includeRetried: true,
        limit: page.limit,
        offset: page.offset,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return jobsJson(project, rows)
    },
  )

  app.get(
    '/projects/:id/jobs/:job_id',
    { schema: { summary: 'Get a job', tags: ['ci'], params: JobParams }, config: { public: true } },
    async (req) => {
      const { id, job_id } = req.params
      const project = await ciProject(req, id)
      return oneJobJson(project, await jobOf(project, job_id))
    },
  )

  // Wharf extension: the predefined and YAML variables a job was created with (no secrets; the job
  // token and project variables are added when a runner picks the job up).
  app.get(
    '/projects/:id/jobs/:job_id/variables',
    { schema: { summary: "A job's predefined and YAML variables (Wharf extension)", tags: ['ci'], params: JobParams } },
    async (req) => {
      const { id, job_id } = req.params
      const project = await ciProject(req, id, 'developer')
      const job = await jobOf(project, job_id)
      const def = JSON.parse(job.definition) as { variables?: Record<string, string> }
      const predefined = JSON.parse(job.variables) as Array<{ key: string; value: string }>
      return [
        ...predefined.map((v) => ({ key: v.key, value: v.value, source: 'predefined' })),
        ...Object.entries(def.variables ?? {}).map(([key, value]) => ({ key, value, source: 'yaml' })),
      ]
    },
  )

  for (const action of ['cancel', 'retry', 'play'] as const) {
    app.post(
      `/projects/:id/jobs/:job_id/${action}`,
      { schema: { summary: `${action[0]!.toUpperCase()}${action.slice(1)} a job`, tags: ['ci'], params: JobParams } },
      async (req, reply) => {
        const { id, job_id } = req.params
        const project = await ciProject(req, id, 'developer')
        const job = await jobOf(project, job_id)
        const after =
          action === 'cancel'
            ? await pipelines.cancelJob(job)
            : action === 'retry'
              ? await pipelines.retryJob(job)
              : await pipelines.playJob(job)
        return reply.code(201).send(await oneJobJson(project, after))
      },
    )
  }

  // Erase: Maintainers erase any job, Developers their own (GitLab's `erase_build`).
  app.post(
    '/projects/:id/jobs/:job_id/erase',
    { schema: { summary: "Erase a finished job's log and artifacts", tags: ['ci'], params: JobParams } },
    async (req, reply) => {
      const { id, job_id } = req.params
      const project = await ciProject(req, id, 'developer')
      const job = await jobOf(project, job_id)
      const { level } = await projects.projectFor(req.principal, project.id)
      const own = req.principal.kind === 'user' && job.user_id === req.principal.userId
      if (!own && !atLeast(level, 'maintainer'))
        throw new WharfError('FORBIDDEN', `erasing another user's job needs the maintainer role in ${project.full_path}`, {
          needs: 'maintainer',
        })
      return reply.code(201).send(await oneJobJson(project, await deps.jobErasure.erase(job)))
    },
  )

  app.post(
    '/projects/:id/jobs/:job_id/artifacts/keep',
    { schema: { summary: "Keep a job's artifacts past their expiry", tags: ['ci'], params: JobParams } },
    async (req) => {
      const { id, job_id } = req.params
      const project = await ciProject(req, id, 'developer')
      const job = await jobOf(project, job_id)
      if (!(await deps.artifacts.find(job.id))) throw new WharfError('NOT_FOUND', '404 Not Found: this job has no artifacts', {})
      await deps.artifacts.keep(job.id)
      return oneJobJson(project, job)
    },
  )

  // The jobs a runner took, for those who manage it, with the project each belongs to (GitLab's JobBasicWithProject).
  const RunnerJobsQuery = Type.Object({
    ...PageQuery,
    status: Type.Optional(StringEnum(JOB_STATUSES)),
    order_by: Type.Optional(Type.Literal('id')),
    sort: Type.Optional(StringEnum(['asc', 'desc'] as const)),
  })
  app.get(
    '/runners/:id/jobs',
    {
      schema: {
        summary: 'List the jobs a runner ran or runs',
        tags: ['runner'],
        params: Type.Object({ id: Type.Integer() }),
        querystring: RunnerJobsQuery,
      },
    },
    async (req, reply) => {
      const q = req.query
      const page = pageOf(q)
      const { rows, total } = await deps.runners.pageJobs(req.principal, req.params.id, {
        statuses: q.status === undefined ? undefined : [q.status],
        ascending: q.sort === 'asc',
        limit: page.limit,
        offset: page.offset,
      })
      // One lookup per project on the page, the job entities per project (one git process each).
      const byProject = new Map<number, CiJob[]>()
      for (const j of rows) byProject.set(j.project_id, [...(byProject.get(j.project_id) ?? []), j])
      const out = new Map<number, unknown>()
      for (const [projectId, jobs] of byProject) {
        const project = await projects.findProjectRef(projectId)
        if (!project) continue
        const entities = await jobsJson(project, jobs)
        const projectJson = {
          id: project.id,
          name: project.name,
          name_with_namespace: project.full_path,
          path: project.path,
          path_with_namespace: project.full_path,
          created_at: project.created_at,
        }
        for (const e of entities) out.set(e.id, { ...e, project: projectJson })
      }
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((j) => out.get(j.id)).filter((e) => e !== undefined)
    },
  )

  // CI/CD variables of projects and groups (Maintainer+).
  for (const kind of ['project', 'group'] as const) {
    const base = kind === 'project' ? '/projects/:id/variables' : '/groups/:id/variables'
    const owner = async (req: FastifyRequest, id: string): Promise<number> =>
      kind === 'project'
        ? (await projects.projectFor(req.principal, id, 'maintainer')).project.id
        : (await groups.groupFor(req.principal, id, 'maintainer')).group.id
    app.get(
      base,
      { schema: { summary: `List ${kind} CI/CD variables`, tags: ['ci'], params: IdParam, querystring: Type.Object(PageQuery) } },
      async (req, reply) => {
        const page = pageOf(req.query)
        const { rows, total } = await variables.page(kind, await owner(req, req.params.id), page)
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map(variableJson)
      },
    )
    app.get(`${base}/:key`, { schema: { summary: `Get a ${kind} CI/CD variable`, tags: ['ci'], params: KeyParams } }, async (req) => {
      const { id, key } = req.params
      return variableJson(await variables.get(kind, await owner(req, id), key))
    })
    app.post(
      base,
      { schema: { summary: `Create a ${kind} CI/CD variable`, tags: ['ci'], params: IdParam, body: VariableBody } },
      async (req, reply) => {
        const v = await variables.create(kind, await owner(req, req.params.id), req.body)
        return reply.code(201).send(variableJson(v))
      },
    )
    app.put(
      `${base}/:key`,
      { schema: { summary: `Update a ${kind} CI/CD variable`, tags: ['ci'], params: KeyParams, body: VariableBody } },
      async (req) => {
        const { id, key } = req.params
        return variableJson(await variables.update(kind, await owner(req, id), key, req.body))
      },
    )
    app.delete(
      `${base}/:key`,
      { schema: { summary: `Delete a ${kind} CI/CD variable`, tags: ['ci'], params: KeyParams } },
      async (req, reply) => {
        const { id, key } = req.params
        await variables.remove(kind, await owner(req, id), key)
        return reply.code(204).send()
      },
    )
  }

  // Trigger tokens.
  app.get(
    '/projects/:id/triggers',
    { schema: { summary: 'List pipeline trigger tokens', tags: ['ci'], params: IdParam, querystring: Type.Object(PageQuery) } },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id, 'maintainer')
      const page = pageOf(req.query)
      const { rows, total } = await triggers.page(project.id, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((t) => ({
        id: t.id,
        description: t.description,
        created_at: t.created_at,
        updated_at: t.created_at,
        last_used: null,
        token: `${t.token_hint}…`,
        owner: null,
      }))
    },
  )
  app.post(
    '/projects/:id/triggers',
    { schema: { summary: 'Create a pipeline trigger token (shown once)', tags: ['ci'], params: IdParam, body: TriggerBody } },
    async (req, reply) => {
      const project = await ciProject(req, req.params.id, 'maintainer')
      const { token, row } = await triggers.create(
        project.id,
        req.principal.kind === 'user' ? req.principal.userId : null,
        req.body.description ?? '',
      )
      return reply.code(201).send({
        id: row.id,
        description: row.description,
        created_at: row.created_at,
        updated_at: row.created_at,
        last_used: null,
        token,
        owner: null,
      })
    },
  )
  app.delete(
    '/projects/:id/triggers/:trigger_id',
    { schema: { summary: 'Delete a pipeline trigger token', tags: ['ci'], params: TriggerParams } },
    async (req, reply) => {
      const { id, trigger_id } = req.params
      const project = await ciProject(req, id, 'maintainer')
      await triggers.remove(project.id, trigger_id)
      return reply.code(204).send()
    },
  )
  // Anyone holding the token may trigger (GitLab: no other authentication).
  async function trigger(projectRef: string, token: string | undefined, ref: string | undefined, variables: Record<string, string>) {
    if (!token) throw new WharfError('BAD_REQUEST', 'token is missing', { attribute: 'token' })
    if (!ref) throw new WharfError('BAD_REQUEST', 'ref is missing', { attribute: 'ref' })
    const project = await projects.findProjectRef(projectRef)
    if (!project) throw new WharfError('NOT_FOUND', 'Project Not Found', {})
    const t = await triggers.verify(project.id, token)
    const vars = Object.entries(variables).map(([key, value]) => ({ key, value }))
    const p = await pipelines.createForRef(project, ref, 'trigger', t.owner_id, vars)
    return pipelineJson(project, p)
  }
  app.post(
    '/projects/:id/trigger/pipeline',
    {
      schema: {
        summary: 'Run a pipeline with a trigger token (body: JSON, form or multipart; or the query string)',
        tags: ['ci'],
        params: IdParam,
        querystring: TriggerQuery,
        body: TriggerPipelineBody,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const body: Static<typeof TriggerPipelineBody> = req.body ?? {}
      // The schema's patternProperties (`variables[KEY]`) are validated but not part of its static type.
      const query = req.query as typeof req.query & Record<string, string>
      const vars = { ...queryVariables(query), ...body.variables }
      return reply.code(201).send(await trigger(req.params.id, body.token ?? query.token, body.ref ?? query.ref, vars))
    },
  )
  // GitLab's webhook form: everything in the URL, the body (the calling service's payload) ignored.
  app.post(
    '/projects/:id/ref/:ref/trigger/pipeline',
    {
      schema: {
        summary: 'Run a pipeline with a trigger token, as a webhook URL (`?token=`, `variables[KEY]=`)',
        tags: ['ci'],
        params: RefTriggerParams,
        querystring: RefTriggerQuery,
      },
      config: { public: true, ignoredBody: true },
    },
    async (req, reply) => {
      const { id, ref } = req.params
      const query = req.query as typeof req.query & Record<string, string>
      return reply.code(201).send(await trigger(id, query.token, ref, queryVariables(query)))
    },
  )
}

/** GitLab's pipeline coverage: the mean of its current jobs' coverage, as Ruby prints a float ("30.0"); null when none has one. */
function pipelineCoverage(jobs: readonly CiJob[]): string | null {
  const values = jobs.flatMap((j) => (j.coverage === null ? [] : [j.coverage]))
  if (values.length === 0) return null
  const mean = values.reduce((a, b) => a + b, 0) / values.length
  return Number.isInteger(mean) ? mean.toFixed(1) : String(mean)
}
