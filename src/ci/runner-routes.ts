// HTTP of the runner API, in two plugins (both under /api/v4):
// - runnerProtocolRoutes: what runners call (GitLab's runner API, src/runner/protocol.ts). Runner
//   tokens travel in the body, job tokens in `JOB-TOKEN` (or the body for PUT); one preHandler hook
//   resolves them. No user tokens here.
// - runnerApiRoutes: what users call (runner management, job logs and artifacts, the job-token
//   allowlist), inside the regular API scope (PRIVATE-TOKEN / Bearer; JOB-TOKEN where marked).
import { Type, type Static } from '@sinclair/typebox'
import multipart from '@fastify/multipart'
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Readable } from 'node:stream'
import type { ApiUrls } from '../api/context.ts'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { apiErrorHandler } from '../api/problem.ts'
import { Body, IdParam } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import { bindActor } from '../core/request-log.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { CiJob, Project, Runner } from '../metadata/schema.ts'
import type { Groups, Projects } from '../projects/index.ts'
import {
  ArtifactsUploadParams,
  CreateRunnerRequest,
  HEADERS,
  JobRequest,
  parseContentRange,
  RUNNER_TYPES,
  UnregisterRunnerRequest,
  UpdateJobRequest,
  VerifyRunnerRequest,
} from '../runner/protocol.ts'
import { artifactsTooLarge, type Artifacts } from './artifacts.ts'
import type { JobQueue } from './job-queue.ts'
import type { JobSweeper } from './job-sweeper.ts'
import type { JobTokens } from './job-tokens.ts'
import { notRunning, type JobUpdates } from './job-updates.ts'
import type { Pipelines } from './pipelines.ts'
import { RUNNER_ERRORS } from './runner-errors.ts'
import { runnerJson, type Runners } from './runners.ts'
import type { TraceStore } from './traces.ts'
import { LeasedTask, type Leases } from '../metadata/leases.ts'

export interface RunnerCi {
  pipelines: Pipelines
  runners: Runners
  jobQueue: JobQueue
  jobUpdates: JobUpdates
  jobSweeper: JobSweeper
  jobTokens: JobTokens
  traces: TraceStore
  artifacts: Artifacts
  leases: Leases
}

export interface RunnerProtocolDeps extends RunnerCi {
  /** How long /jobs/request waits for a job (tests shorten it). */
  longPollMs?: number
  /** How often the heartbeat/timeout sweep runs; 0 disables it (tests call `jobSweeper.sweep()`). */
  sweepIntervalMs?: number
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The runner behind a runner-token route (runner plugin). */
    ciRunner: Runner | null
    /** The job behind a job-token route (runner plugin). */
    ciJob: CiJob | null
  }
  interface FastifyContextConfig {
    /** Runner plugin: `runner` (runner token in the body), `job` (this job's token), `anyJob` (any running job's token). */
    runnerAuth?: 'runner' | 'job' | 'anyJob'
  }
}

const JobIdParam = Type.Object({ id: Type.Integer() })
const TRACE_UPDATE_INTERVAL_SECONDS = 3

/**
 * The runner plugin's errors: RFC 9457 problems with statuses from the runner API's table; a refused
 * job request carries the job's status for the runner (`Job-Status`).
 */
export function runnerErrorHandler(artifactsMaxBytes: number) {
  return (error: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply): FastifyReply => {
    // The multipart parser's own cut-off at `fileSize` is the same condition as the store's limit.
    const err = (error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE' ? artifactsTooLarge(artifactsMaxBytes) : error
    if (err instanceof WharfError && typeof err.detail.jobStatus === 'string') reply.header(HEADERS.jobStatus, err.detail.jobStatus)
    return apiErrorHandler(err, req, reply, RUNNER_ERRORS)
  }
}

/**
 * The token a job-token request carries: `JOB-TOKEN` header, else `token` in a JSON body (PUT).
 * Never from the query string: URLs end up in logs.
 */
function jobTokenOf(req: FastifyRequest): string | undefined {
  const h = req.headers['job-token']
  if (typeof h === 'string' && h.trim()) return h.trim()
  const body = req.body
  if (body && typeof body === 'object' && !(Symbol.asyncIterator in body)) {
    const t = (body as Record<string, unknown>).token
    if (typeof t === 'string' && t) return t
  }
  return undefined
}

export async function runnerProtocolRoutes(app: TypedApp, deps: RunnerProtocolDeps): Promise<void> {
  const { runners, jobQueue, jobUpdates, jobSweeper, jobTokens, artifacts, pipelines } = deps
  app.decorateRequest('ciRunner', null)
  app.decorateRequest('ciJob', null)
  app.setErrorHandler(runnerErrorHandler(artifacts.maxBytes))
  // Trace chunks are streamed to disk, whatever their content type (runners send text/plain).
  app.removeContentTypeParser(['text/plain'])
  app.addContentTypeParser('*', (_req, payload, done) => done(null, payload))
  await app.register(multipart, { limits: { fileSize: artifacts.maxBytes, files: 1, fields: 20 } })

  app.addHook('preHandler', async (req) => {
    const mode = req.routeOptions.config.runnerAuth
    if (mode === 'runner') {
      const token = (req.body as { token?: unknown } | undefined)?.token
      const runner = await runners.authenticate(typeof token === 'string' ? token : undefined)
      if (!runner) throw new WharfError('FORBIDDEN', 'invalid runner token (unknown, deleted or expired)', {})
      req.ciRunner = runner
      bindActor(req, { kind: 'runner', id: runner.id })
    } else if (mode === 'job') {
      req.ciJob = await jobUpdates.jobForToken((req.params as { id: number }).id, jobTokenOf(req))
      bindActor(req, { kind: 'job', id: req.ciJob.id })
    } else if (mode === 'anyJob') {
      const token = jobTokenOf(req)
      const job = token ? await jobTokens.runningJob(token) : undefined
      if (!job) throw new WharfError('FORBIDDEN', 'invalid job token: unknown, or the job is no longer running', {})
      req.ciJob = job
      bindActor(req, { kind: 'job', id: job.id })
    }
  })

  // Long polls end at once when the server closes, instead of holding the shutdown for their 30 s.
  app.addHook('preClose', async () => jobQueue.close())

  // On one node at a time (the holder of its lease); each job's end is a conditional update anyway.
  if (deps.sweepIntervalMs !== 0) {
    const sweep = new LeasedTask(deps.leases, {
      name: 'ci.job-sweep',
      periodMs: deps.sweepIntervalMs ?? 30_000,
      work: async () => {
        const r = await jobSweeper.sweep()
        if (r.stale.length || r.timedOut.length) app.log.warn(r, 'failed silent or timed-out jobs')
      },
      onError: (err) => app.log.error({ err }, 'job sweep failed'),
    })
    app.addHook('onReady', async () => void sweep.start())
    app.addHook('onClose', () => sweep.stop())
  }

  // ---- runners ----

  app.post(
    '/runners',
    {
      schema: { summary: 'Register a runner with a registration token (not supported: use POST /user/runners)', tags: ['runner'] },
      config: { public: true },
    },
    async () => {
      throw new WharfError(
        'FORBIDDEN',
        'registration tokens are not supported: create the runner with POST /api/v4/user/runners and start it with its glrt- token',
        {},
      )
    },
  )

  app.post(
    '/runners/verify',
    {
      schema: { summary: 'Verify a runner token', tags: ['runner'], body: VerifyRunnerRequest },
      config: { public: true, runnerAuth: 'runner' },
    },
    async (req) => {
      const r = req.ciRunner!
      await runners.contacted(r, undefined, req.ip)
      return { id: r.id, token: req.body.token, token_expires_at: r.token_expires_at }
    },
  )

  app.delete(
    '/runners',
    {
      schema: { summary: 'Unregister (delete) the runner of a token', tags: ['runner'], body: UnregisterRunnerRequest },
      config: { public: true, runnerAuth: 'runner' },
    },
    async (req, reply) => {
      await runners.unregister(req.body.token)
      return reply.code(204).send()
    },
  )

  // gitlab-runner 16+ unregisters its "runner manager" (one per machine) this way; Wharf keeps none.
  app.delete(
    '/runners/managers',
    {
      schema: { summary: 'Unregister a runner manager (no-op: the runner stays)', tags: ['runner'], body: UnregisterRunnerRequest },
      config: { public: true, runnerAuth: 'runner' },
    },
    async (_req, reply) => {
      return reply.code(204).send()
    },
  )

  app.post(
    '/runners/reset_authentication_token',
    {
      schema: { summary: "Replace a runner's token (the old one stops working)", tags: ['runner'], body: UnregisterRunnerRequest },
      config: { public: true, runnerAuth: 'runner' },
    },
    async (req, reply) => {
      const r = req.ciRunner!
      return reply.code(201).send({ token: await runners.resetToken(r), token_expires_at: r.token_expires_at })
    },
  )

  // ---- jobs ----

  app.post(
    '/jobs/request',
    {
      schema: { summary: 'Request a job (long poll)', tags: ['runner'], body: JobRequest },
      config: { public: true, runnerAuth: 'runner' },
    },
    async (req, reply) => {
      const runner = req.ciRunner!
      const body = req.body
      await runners.contacted(runner, body.info, req.ip)
      const ac = new AbortController()
      const onClose = () => ac.abort()
      reply.raw.once('close', onClose)
      try {
        const job = await jobQueue.request(runner, {
          ...(deps.longPollMs !== undefined ? { waitMs: deps.longPollMs } : {}),
          signal: ac.signal,
        })
        if (!job) return reply.code(204).header(HEADERS.lastUpdate, jobQueue.lastUpdate()).send()
        req.log.info({ job: job.id, runner: runner.id }, 'job assigned')
        return reply.code(201).send(job)
      } finally {
        reply.raw.off('close', onClose)
      }
    },
  )

  app.put(
    '/jobs/:id',
    {
      schema: { summary: 'Update a job (state, keep-alive)', tags: ['runner'], params: JobIdParam, body: UpdateJobRequest },
      config: { public: true, runnerAuth: 'job' },
    },
    async (req, reply) => {
      const jobStatus = await jobUpdates.update(req.ciJob!, req.body as UpdateJobRequest, req.log)
      return reply.code(200).header(HEADERS.jobStatus, jobStatus).send({})
    },
  )

  app.patch(
    '/jobs/:id/trace',
    {
      schema: { summary: "Append to a job's log (Content-Range: start-end)", tags: ['runner'], params: JobIdParam },
      config: { public: true, runnerAuth: 'job' },
    },
    async (req, reply) => {
      const job = req.ciJob!
      const body = req.body as Readable | undefined
      if (job.status !== 'running' && job.status !== 'canceled') {
        body?.resume()
        throw notRunning(job.status)
      }
      const range = parseContentRange(req.headers['content-range'])
      if (!range) {
        body?.resume()
        throw new WharfError('BAD_REQUEST', 'Missing or malformed header Content-Range (expected <start>-<end>)', {})
      }
      const r = await jobUpdates.appendTrace(job, range.start, body ?? emptyBody())
      const status = (await pipelines.findJob(job.id))?.status ?? job.status
      reply.header(HEADERS.jobStatus, status).header(HEADERS.range, `0-${r.received}`)
      if (!r.ok) {
        body?.resume()
        throw new WharfError('RANGE_NOT_SATISFIABLE', `Range Not Satisfiable: the log has ${r.received} bytes; resend from there`, {
          received: r.received,
        })
      }
      return reply.code(202).header(HEADERS.traceUpdateInterval, String(TRACE_UPDATE_INTERVAL_SECONDS)).send()
    },
  )

  const AuthorizeQuery = Type.Object({ filesize: Type.Optional(Type.Integer({ minimum: 0 })), artifact_type: Type.Optional(Type.String()) })
  app.post(
    '/jobs/:id/artifacts/authorize',
    {
      schema: { summary: 'Check an artifacts upload before sending it', tags: ['runner'], params: JobIdParam, querystring: AuthorizeQuery },
      config: { public: true, runnerAuth: 'job' },
    },
    async (req) => {
      const job = req.ciJob!
      if (job.status !== 'running') throw notRunning(job.status)
      const size = req.query.filesize ?? Number((req.body as { filesize?: unknown } | undefined)?.filesize ?? 0)
      if (size > artifacts.maxBytes) throw artifactsTooLarge(artifacts.maxBytes)
      return { TempPath: '', MaximumSize: artifacts.maxBytes }
    },
  )

  app.post(
    '/jobs/:id/artifacts',
    {
      schema: {
        summary: 'Upload job artifacts (multipart field `file`)',
        tags: ['runner'],
        params: JobIdParam,
        querystring: ArtifactsUploadParams,
      },
      config: { public: true, runnerAuth: 'job' },
    },
    async (req, reply) => {
      const job = req.ciJob!
      if (job.status !== 'running') throw notRunning(job.status)
      if (!req.isMultipart()) throw new WharfError('BAD_REQUEST', 'expected a multipart/form-data body with a `file` field', {})
      const file = await req.file()
      if (file?.fieldname !== 'file') throw new WharfError('BAD_REQUEST', 'missing the `file` field', {})
      const query = req.query
      const field = (name: string): string | undefined => {
        const f = file.fields[name]
        const one = Array.isArray(f) ? f[0] : f
        return one && one.type === 'field' && typeof one.value === 'string' ? one.value : undefined
      }
      const a = await artifacts.store(job, {
        stream: file.file,
        filename: file.filename,
        fileType: query.artifact_type ?? field('artifact_type'),
        format: query.artifact_format ?? field('artifact_format'),
        expireIn: query.expire_in ?? field('expire_in') ?? expireInOf(job),
        truncated: () => file.file.truncated,
      })
      req.log.info({ job: job.id, type: a.file_type, bytes: a.size }, 'artifacts stored')
      return reply.code(201).send({
        id: job.id,
        artifacts_file: { filename: a.filename, size: a.size },
        file_type: a.file_type,
        file_format: a.file_format,
        expire_at: a.expire_at,
      })
    },
  )

  // A job's artifacts, for the jobs that depend on it: the token is the DOWNLOADING job's.
  app.get(
    '/jobs/:id/artifacts',
    {
      schema: { summary: "Download a job's artifacts with a job token", tags: ['runner'], params: JobIdParam },
      config: { public: true, runnerAuth: 'anyJob' },
    },
    async (req, reply) => {
      const caller = req.ciJob!
      const target = await pipelines.findJob(req.params.id)
      if (!target) throw new WharfError('NOT_FOUND', 'Job Not Found', {})
      if (!(await jobTokens.jobMayAccess(caller, target.project_id))) {
        throw new WharfError(
          'FORBIDDEN',
          `project ${target.project_id} does not allow CI job tokens from project ${caller.project_id} (its job token allowlist)`,
          {},
        )
      }
      return sendArchive(reply, artifacts, target)
    },
  )
}

function emptyBody(): AsyncIterable<Buffer> {
  return (async function* () {})()
}

/** The `expire_in` the job's YAML gave its artifacts, when the runner passed none. */
function expireInOf(job: CiJob): string | undefined {
  const e = (JSON.parse(job.definition) as { artifacts?: { expireIn: number | 'never' | null } | null }).artifacts?.expireIn
  return e === undefined || e === null ? undefined : String(e)
}

async function sendArchive(reply: FastifyReply, artifacts: Artifacts, job: CiJob, fileType = 'archive'): Promise<FastifyReply> {
  const a = await artifacts.find(job.id, fileType)
  if (!a) throw new WharfError('NOT_FOUND', '404 Not Found: this job has no artifacts', {})
  return reply
    .header(
      'Content-Type',
      a.file_format === 'zip' ? 'application/zip' : a.file_format === 'gzip' ? 'application/gzip' : 'application/octet-stream',
    )
    .header('Content-Length', String(a.size))
    .header('Content-Disposition', `attachment; filename="${a.filename}"`)
    .send(await artifacts.open(a))
}

/** One file of a job's zip archive, as GitLab sends it: an attachment named after the file. */
async function sendArtifactFile(reply: FastifyReply, artifacts: Artifacts, job: CiJob, path: string): Promise<FastifyReply> {
  const a = await artifacts.find(job.id)
  if (!a) throw new WharfError('NOT_FOUND', '404 Not Found: this job has no artifacts', {})
  const file = await artifacts.entry(a, path)
  return reply
    .header('Content-Type', 'application/octet-stream')
    .header('Content-Length', String(file.size))
    .header('Content-Disposition', `attachment; filename="${file.name.replace(/[^\x20-\x7e]|["\\]/g, '_')}"`)
    .send(file.stream)
}

// ---------------------------------------------------------------------------------------------

export interface RunnerApiDeps extends ApiUrls, RunnerCi {
  projects: Projects
  groups: Groups
}

const RunnerListQuery = Type.Object({
  ...PageQuery,
  type: Type.Optional(Type.Union(RUNNER_TYPES.map((t) => Type.Literal(t)))),
  paused: Type.Optional(Type.Boolean()),
  tag_list: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
})
const RunnerParams = Type.Object({ id: Type.Integer() })
const RunnerUpdateBody = Body({
  description: Type.Optional(Type.String({ maxLength: 1024 })),
  paused: Type.Optional(Type.Boolean()),
  active: Type.Optional(Type.Boolean()),
  tag_list: Type.Optional(Type.Union([Type.String(), Type.Array(Type.String())])),
  run_untagged: Type.Optional(Type.Boolean()),
  locked: Type.Optional(Type.Boolean()),
  access_level: Type.Optional(Type.Union([Type.Literal('not_protected'), Type.Literal('ref_protected')])),
  maximum_timeout: Type.Optional(Type.Union([Type.Integer({ minimum: 600 }), Type.Null()])),
  maintenance_note: Type.Optional(Type.String({ maxLength: 1024 })),
})
const JobParams = Type.Object({ id: Type.String(), job_id: Type.Integer() })
const ArtifactFileParams = Type.Object({ id: Type.String(), job_id: Type.Integer(), '*': Type.String({ minLength: 1 }) })
const RefArtifactsParams = Type.Object({ id: Type.String(), ref_name: Type.String({ minLength: 1 }) })
const RefArtifactFileParams = Type.Object({
  id: Type.String(),
  ref_name: Type.String({ minLength: 1 }),
  '*': Type.String({ minLength: 1 }),
})
const RefArtifactsQuery = Type.Object({ job: Type.String({ minLength: 1 }) })
const EnableRunnerBody = Body({ runner_id: Type.Integer() })
const ProjectRunnerParams = Type.Object({ id: Type.String(), runner_id: Type.Integer() })
const AllowlistParams = Type.Object({ id: Type.String(), target_project_id: Type.Integer() })
const AllowlistBody = Body({ target_project_id: Type.Integer() })

const tagsOf = (q: Static<typeof RunnerListQuery>) =>
  q.tag_list === undefined
    ? undefined
    : (Array.isArray(q.tag_list) ? q.tag_list : q.tag_list.split(',')).map((t) => t.trim()).filter(Boolean)

export async function runnerApiRoutes(app: TypedApp, deps: RunnerApiDeps): Promise<void> {
  const { projects, groups, runners, traces, artifacts, jobTokens, pipelines, jobUpdates } = deps

  /** The project, readable by the caller as its pipelines are (Reporter+ when private); a stricter role on demand. */
  const readableProject = async (req: FastifyRequest, id: string, role?: 'maintainer'): Promise<Project> => {
    const { project, level } = await projects.projectFor(req.principal, id)
    if (project.visibility === 'private' && !atLeast(level, 'reporter'))
      throw new WharfError('FORBIDDEN', 'reading jobs needs the reporter role', { needs: 'reporter' })
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return project
  }
  const jobOf = async (project: Project, id: number): Promise<CiJob> => {
    const j = await pipelines.findJob(id)
    if (!j || j.project_id !== project.id) throw new WharfError('NOT_FOUND', 'Job Not Found', {})
    return j
  }
  /** The project whose artifacts are read: as its jobs are for users; for a job token, when the project allow-lists the job's. */
  const artifactsProject = async (req: FastifyRequest, id: string): Promise<Project> => {
    const p = req.principal
    if (p.kind !== 'job') return readableProject(req, id)
    const found = await projects.findProjectRef(id)
    if (!found) throw new WharfError('NOT_FOUND', 'Project Not Found', {})
    const facts = await jobTokens.projectFacts(p, found)
    if (!facts.job?.allowlisted)
      throw new WharfError(
        'FORBIDDEN',
        `${found.full_path} does not allow CI job tokens from project ${p.projectId} (job token allowlist)`,
        {},
      )
    return found
  }

  app.post(
    '/user/runners',
    { schema: { summary: 'Create a runner (its glrt- token is shown once)', tags: ['runner'], body: CreateRunnerRequest } },
    async (req, reply) => {
      const { runner, token } = await runners.create(req.principal, req.body)
      return reply.code(201).send({ id: runner.id, token, token_expires_at: runner.token_expires_at })
    },
  )

  for (const [url, all] of [
    ['/runners', false],
    ['/runners/all', true],
  ] as const) {
    app.get(
      url,
      {
        schema: {
          summary: all ? 'List every runner (administrators)' : 'List the runners of the projects and groups you maintain',
          tags: ['runner'],
          querystring: RunnerListQuery,
        },
      },
      async (req, reply) => {
        const q = req.query
        const page = pageOf(q)
        const { rows, total } = await runners.pageFor(req.principal, {
          all,
          limit: page.limit,
          offset: page.offset,
          type: q.type,
          paused: q.paused,
          tagList: tagsOf(q),
        })
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map((r) => runnerJson(r))
      },
    )
  }

  app.get('/runners/:id', { schema: { summary: 'Get a runner', tags: ['runner'], params: RunnerParams } }, async (req) => {
    return runnerJson(await runners.manageable(req.principal, req.params.id))
  })

  app.put(
    '/runners/:id',
    {
      schema: {
        summary: 'Update a runner (paused, tags, run_untagged, description...)',
        tags: ['runner'],
        params: RunnerParams,
        body: RunnerUpdateBody,
      },
    },
    async (req) => {
      return runnerJson(await runners.update(req.principal, req.params.id, req.body))
    },
  )

  app.delete('/runners/:id', { schema: { summary: 'Delete a runner', tags: ['runner'], params: RunnerParams } }, async (req, reply) => {
    await runners.remove(req.principal, req.params.id)
    return reply.code(204).send()
  })

  app.get(
    '/projects/:id/runners',
    { schema: { summary: "Runners that can run a project's jobs", tags: ['runner'], params: IdParam, querystring: RunnerListQuery } },
    async (req, reply) => {
      const { project } = await projects.projectFor(req.principal, req.params.id, 'maintainer')
      const q = req.query
      const page = pageOf(q)
      const { rows, total } = await runners.pageForProject(project, {
        limit: page.limit,
        offset: page.offset,
        type: q.type,
        paused: q.paused,
        tagList: tagsOf(q),
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((r) => runnerJson(r))
    },
  )

  app.post(
    '/projects/:id/runners',
    {
      schema: {
        summary: 'Enable a project runner you manage for this project',
        tags: ['runner'],
        params: IdParam,
        body: EnableRunnerBody,
      },
    },
    async (req, reply) => {
      const { project } = await projects.projectFor(req.principal, req.params.id, 'maintainer')
      return reply.code(201).send(runnerJson(await runners.enableForProject(req.principal, project, req.body.runner_id)))
    },
  )

  app.delete(
    '/projects/:id/runners/:runner_id',
    { schema: { summary: 'Disable a project runner for this project', tags: ['runner'], params: ProjectRunnerParams } },
    async (req, reply) => {
      const { project } = await projects.projectFor(req.principal, req.params.id, 'maintainer')
      await runners.disableForProject(project, req.params.runner_id)
      return reply.code(204).send()
    },
  )

  app.get(
    '/groups/:id/runners',
    { schema: { summary: "Runners that can run a group's jobs", tags: ['runner'], params: IdParam, querystring: RunnerListQuery } },
    async (req, reply) => {
      const { group } = await groups.groupFor(req.principal, req.params.id, 'maintainer')
      const q = req.query
      const page = pageOf(q)
      const { rows, total } = await runners.pageForGroup(group, {
        limit: page.limit,
        offset: page.offset,
        type: q.type,
        paused: q.paused,
        tagList: tagsOf(q),
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((r) => runnerJson(r))
    },
  )

  // A job's log. `Range: bytes=N-` reads from byte N (206), for incremental followers.
  app.get(
    '/projects/:id/jobs/:job_id/trace',
    { schema: { summary: "A job's log (masked)", tags: ['ci'], params: JobParams }, config: { public: true } },
    async (req, reply) => {
      const { id, job_id } = req.params
      const job = await jobOf(await readableProject(req, id), job_id)
      const m = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? '').trim())
      reply.header('Content-Type', 'text/plain; charset=utf-8').header('Accept-Ranges', 'bytes').header(HEADERS.jobStatus, job.status)
      if (m) {
        const start = Number(m[1])
        const { size, stream } = await traces.read(job.id, start)
        if (!stream) {
          reply.header('Content-Range', `bytes */${size}`)
          throw new WharfError('RANGE_NOT_SATISFIABLE', `the log has ${size} bytes`, { size })
        }
        return reply
          .code(206)
          .header('Content-Range', `bytes ${start}-${size - 1}/${size}`)
          .header('Content-Length', String(size - start))
          .send(stream)
      }
      const { stream } = await traces.read(job.id, 0)
      if (!stream) return reply.code(200).send('')
      // Values that became masked after the log was written are masked on the way out too.
      return reply.code(200).send(stream.pipe((await jobUpdates.masker(job)).transform()))
    },
  )

  app.get(
    '/projects/:id/jobs/:job_id/artifacts',
    {
      schema: { summary: "Download a job's artifacts archive", tags: ['ci'], params: JobParams },
      config: { public: true, jobToken: true },
    },
    async (req, reply) => {
      const { id, job_id } = req.params
      return sendArchive(reply, artifacts, await jobOf(await artifactsProject(req, id), job_id))
    },
  )

  // A file inside a job's zip archive, streamed out of it.
  app.get(
    '/projects/:id/jobs/:job_id/artifacts/*',
    {
      schema: { summary: "Download one file of a job's artifacts archive", tags: ['ci'], params: ArtifactFileParams },
      config: { public: true, jobToken: true },
    },
    async (req, reply) => {
      const { id, job_id, '*': path } = req.params
      return sendArtifactFile(reply, artifacts, await jobOf(await artifactsProject(req, id), job_id), path)
    },
  )

  // The artifacts of the newest successful pipeline's job `job` on a branch or tag.
  const latestJob = async (project: Project, ref: string, name: string): Promise<CiJob> => {
    const job = await pipelines.latestSuccessfulJob(project.id, ref, name)
    if (!job) throw new WharfError('NOT_FOUND', '404 Not found', { ref, job: name })
    return job
  }
  app.get(
    '/projects/:id/jobs/artifacts/:ref_name/download',
    {
      schema: {
        summary: "Download the artifacts archive of a ref's latest successful job of a name",
        tags: ['ci'],
        params: RefArtifactsParams,
        querystring: RefArtifactsQuery,
      },
      config: { public: true, jobToken: true },
    },
    async (req, reply) => {
      const { id, ref_name } = req.params
      const project = await artifactsProject(req, id)
      return sendArchive(reply, artifacts, await latestJob(project, ref_name, req.query.job))
    },
  )
  app.get(
    '/projects/:id/jobs/artifacts/:ref_name/raw/*',
    {
      schema: {
        summary: "Download one file of the artifacts of a ref's latest successful job of a name",
        tags: ['ci'],
        params: RefArtifactFileParams,
        querystring: RefArtifactsQuery,
      },
      config: { public: true, jobToken: true },
    },
    async (req, reply) => {
      const { id, ref_name, '*': path } = req.params
      const project = await artifactsProject(req, id)
      return sendArtifactFile(reply, artifacts, await latestJob(project, ref_name, req.query.job), path)
    },
  )

  // The CI/CD job token allowlist: projects whose job tokens may access this one.
  app.get(
    '/projects/:id/job_token_scope',
    { schema: { summary: 'Job token access settings', tags: ['ci'], params: IdParam } },
    async (req) => {
      await readableProject(req, req.params.id, 'maintainer')
      return { inbound_enabled: true, outbound_enabled: false }
    },
  )

  app.get(
    '/projects/:id/job_token_scope/allowlist',
    {
      schema: {
        summary: 'Projects allowed to use their job tokens on this project',
        tags: ['ci'],
        params: IdParam,
        querystring: Type.Object(PageQuery),
      },
    },
    async (req, reply) => {
      const project = await readableProject(req, req.params.id, 'maintainer')
      const page = pageOf(req.query)
      const { rows, total } = await jobTokens.allowlistPage(project.id, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((p) => ({
        id: p.id,
        name: p.name,
        path: p.path,
        path_with_namespace: p.full_path,
        name_with_namespace: p.full_path,
        web_url: `${deps.publicUrl}/${p.full_path}`,
      }))
    },
  )

  app.post(
    '/projects/:id/job_token_scope/allowlist',
    { schema: { summary: "Allow a project's job tokens on this project", tags: ['ci'], params: IdParam, body: AllowlistBody } },
    async (req, reply) => {
      const project = await readableProject(req, req.params.id, 'maintainer')
      const target = await projects.findProjectRef(req.body.target_project_id)
      // The allowed project must be one the caller can see, so ids of hidden projects reveal nothing.
      if (
        !target ||
        !(await projects.projectFor(req.principal, target.id).then(
          () => true,
          () => false,
        ))
      )
        throw new WharfError('NOT_FOUND', 'Project Not Found', {})
      await jobTokens.allow(project.id, target)
      return reply.code(201).send({ source_project_id: project.id, target_project_id: target.id })
    },
  )

  app.delete(
    '/projects/:id/job_token_scope/allowlist/:target_project_id',
    { schema: { summary: "Stop allowing a project's job tokens on this project", tags: ['ci'], params: AllowlistParams } },
    async (req, reply) => {
      const { id, target_project_id } = req.params
      const project = await readableProject(req, id, 'maintainer')
      await jobTokens.disallow(project.id, target_project_id)
      return reply.code(204).send()
    },
  )
}
