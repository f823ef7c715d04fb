// In-process Wharf for the runner API tests: buildApp() over a real SQLite file, the fs driver and
// git hosting in a temp dir (wired as src/server.ts does), a short /jobs/request long poll and no
// periodic sweep (tests call `jobSweeper.sweep()`). Projects get real commits through the git CLI;
// pipelines are created by the pipeline service, runners and jobs are driven over HTTP.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { ACCESS_LEVELS, type Role, type Visibility } from '../../src/auth/roles.ts'
import { GitRepos } from '../../src/git/repos.ts'
import { openTestDb } from '../helpers/database.ts'
import type { CiJob, Database, Pipeline, Project, User } from '../../src/metadata/schema.ts'
import type { JobResponse } from '../../src/runner/protocol.ts'
import { createServices, type Services } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'

export const PUBLIC_URL = 'http://wharf.test:5000'
export const REGISTRY = 'wharf.test:5000'
const ROOT_PASSWORD = 'root-password-123'

export interface RunnerHarness {
  dir: string
  app: FastifyInstance
  db: Kysely<Database>
  services: Services
  ci: NonNullable<Services['ci']>
  /** Closes another node of this Wharf (see `nodeOf`) before this one removes the directory. */
  closeWithMe(close: () => Promise<void>): void
  req(
    method: InjectOptions['method'],
    url: string,
    opts?: { token?: string; body?: unknown; headers?: Record<string, string>; payload?: string | Buffer },
  ): Promise<LightMyRequestResponse>
  /** A user with an `api` PAT. */
  user(username: string, opts?: { admin?: boolean }): Promise<{ user: User; token: string; password: string }>
  root(): Promise<{ user: User; token: string }>
  /** A group (owned by `owner`) with a project in it; members get the given roles. */
  project(owner: User, group: string, path: string, opts?: { visibility?: Visibility; members?: Array<[User, Role]> }): Promise<Project>
  /** Commits files on `main` in the project's repository; returns the commit sha. */
  commit(project: Project, files: Record<string, string>): Promise<string>
  /** A push pipeline on `main` at `sha`. */
  pipeline(project: Project, sha: string, userId: number): Promise<Pipeline>
  /** Creates a runner through the API; returns its id and glrt- token. */
  runner(token: string, body: Record<string, unknown>): Promise<{ id: number; token: string }>
  /** POST /jobs/request. */
  request(runnerToken: string): Promise<LightMyRequestResponse>
  /** POST /jobs/request that must give a job. */
  take(runnerToken: string): Promise<JobResponse>
  jobs(pipelineId: number): Promise<Record<string, string>>
  job(id: number): Promise<CiJob>
}

export async function runnerHarness(
  t: Pick<TestContext, 'after'>,
  opts: {
    longPollMs?: number
    heartbeatSeconds?: number
    publicUrl?: string
    /** Another node of that harness's Wharf: its own app and services over the same database, storage and git root. */
    nodeOf?: RunnerHarness
  } = {},
): Promise<RunnerHarness> {
  const publicUrl = opts.publicUrl ?? PUBLIC_URL
  const dir = opts.nodeOf?.dir ?? (await mkdtemp(join(tmpdir(), 'wharf-runner-')))
  const dataDir = join(dir, 'data')
  const db = await openTestDb(dataDir)
  const services = await createServices(db, createFsDriver(join(dataDir, 'storage')), {
    publicUrl,
    tokenTtlSeconds: 300,
    pageMax: 1000,
    rootPassword: ROOT_PASSWORD,
    gitRoot: join(dataDir, 'git'),
    ciRoot: join(dataDir, 'ci'),
    jobHeartbeatTimeoutSeconds: opts.heartbeatSeconds ?? 300,
  })
  const app = await buildApp({
    logger: pino({ level: 'silent' }),
    ...services,
    publicUrl,
    limits: { manifestBytes: 4 << 20 },
    runnerProtocol: { longPollMs: opts.longPollMs ?? 200, sweepIntervalMs: 0 },
  })
  await app.ready()
  const otherNodes: Array<() => Promise<void>> = []
  const close = async () => {
    await app.close()
    await db.destroy()
  }
  // The first node owns the directory: it closes the other nodes before removing it.
  if (opts.nodeOf) opts.nodeOf.closeWithMe(close)
  else
    t.after(async () => {
      for (const c of otherNodes) await c()
      await close()
      await rm(dir, { recursive: true, force: true })
    })
  const ci = services.ci!
  let rootToken: { user: User; token: string } | undefined
  const gitEnv = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: dir,
    GIT_AUTHOR_NAME: 'Ada',
    GIT_AUTHOR_EMAIL: 'ada@example.com',
    GIT_COMMITTER_NAME: 'Ada',
    GIT_COMMITTER_EMAIL: 'ada@example.com',
  }
  const h: RunnerHarness = {
    dir,
    app,
    db,
    services,
    ci,
    closeWithMe: (c) => void otherNodes.push(c),
    req(method, url, o = {}) {
      const headers: Record<string, string> = { ...(o.headers ?? {}) }
      if (o.token) headers['private-token'] = o.token
      const io: InjectOptions = { method, url, headers }
      if (o.payload !== undefined) io.payload = o.payload
      else if (o.body !== undefined) {
        io.payload = JSON.stringify(o.body)
        headers['content-type'] = 'application/json'
      }
      return app.inject(io)
    },
    async user(username, o = {}) {
      const password = `${username}-password`
      const user = await services.users.createUser({ username, password, isAdmin: o.admin ?? false })
      const { token } = await services.accessTokens.createPat(user.id, { name: 'test', scopes: ['api'] }, 'test')
      return { user, token, password }
    },
    async root() {
      if (rootToken) return rootToken
      const user = (await db.selectFrom('users').selectAll().where('username', '=', 'root').executeTakeFirst())!
      const { token } = await services.accessTokens.createPat(user.id, { name: 'root-test', scopes: ['api'] }, 'test')
      rootToken = { user, token }
      return rootToken
    },
    async project(owner, group, path, o = {}) {
      const existing = await services.groups.findGroupRef(group)
      const g = existing ?? (await services.groups.createGroup(owner, { path: group, visibility: o.visibility ?? 'private' }))
      const p = await services.projects.createProject(owner, { namespaceId: g.id, path, visibility: o.visibility ?? 'private' })
      for (const [u, role] of o.members ?? [])
        await services.members.addMember(ACCESS_LEVELS.owner, 'project', p.id, u.id, ACCESS_LEVELS[role], null)
      return p
    },
    async commit(project, files) {
      const bare = await services.git!.repos.ensure(project.id, GitRepos.ownerOf(project))
      const work = join(dir, `work-${project.id}`)
      const git = (...args: string[]) => execFileSync('git', args, { cwd: work, encoding: 'utf8', env: gitEnv }).trim()
      await mkdir(work, { recursive: true })
      try {
        git('rev-parse', '--git-dir')
      } catch {
        git('init', '-q', '-b', 'main')
      }
      for (const [path, text] of Object.entries(files)) {
        await mkdir(dirname(join(work, path)), { recursive: true })
        await writeFile(join(work, path), text)
      }
      git('add', '-A')
      git('commit', '-q', '-m', 'change')
      git('push', '-q', bare, 'HEAD:refs/heads/main')
      return git('rev-parse', 'HEAD')
    },
    async pipeline(project, sha, userId) {
      const p = await ci.pipelines.create({
        project,
        ref: 'main',
        refType: 'branch',
        sha,
        beforeSha: '0'.repeat(40),
        source: 'push',
        userId,
      })
      assert.ok(p, 'a pipeline was created')
      return p
    },
    async runner(token, body) {
      const res = await h.req('POST', '/api/v4/user/runners', { token, body })
      assert.equal(res.statusCode, 201, res.body)
      return res.json() as { id: number; token: string }
    },
    request(runnerToken) {
      return h.req('POST', '/api/v4/jobs/request', {
        body: {
          token: runnerToken,
          info: {
            name: 'test-runner',
            version: '1.0.0',
            executor: 'shell',
            platform: 'linux',
            architecture: 'amd64',
            features: { masking: true },
          },
        },
      })
    },
    async take(runnerToken) {
      const res = await h.request(runnerToken)
      assert.equal(res.statusCode, 201, `expected a job, got ${res.statusCode} ${res.body}`)
      return res.json() as JobResponse
    },
    async jobs(pipelineId) {
      return Object.fromEntries((await ci.pipelines.jobs(pipelineId)).map((j) => [j.name, j.status]))
    },
    async job(id) {
      return (await ci.pipelines.findJob(id))!
    },
  }
  return h
}

/** PUT /jobs/:id with the job token. */
export function updateJob(
  h: RunnerHarness,
  job: { id: number; token: string },
  body: Record<string, unknown>,
): Promise<LightMyRequestResponse> {
  return h.req('PUT', `/api/v4/jobs/${job.id}`, { body: { token: job.token, ...body } })
}

/** PATCH /jobs/:id/trace with a chunk at `start`. */
export function patchTrace(
  h: RunnerHarness,
  job: { id: number; token: string },
  start: number,
  chunk: string | Buffer,
): Promise<LightMyRequestResponse> {
  const body = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
  return h.req('PATCH', `/api/v4/jobs/${job.id}/trace`, {
    headers: { 'job-token': job.token, 'content-type': 'text/plain', 'content-range': `${start}-${start + body.length - 1}` },
    payload: body,
  })
}

/** A multipart/form-data body with one file field. */
export function multipartBody(
  field: string,
  filename: string,
  content: Buffer,
  extra: Record<string, string> = {},
): { payload: Buffer; contentType: string } {
  const boundary = `----wharf${Math.random().toString(16).slice(2)}`
  const parts: Buffer[] = []
  for (const [k, v] of Object.entries(extra))
    parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`))
  parts.push(
    Buffer.from(
      `--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: application/octet-stream\r\n\r\n`,
    ),
  )
  parts.push(content, Buffer.from(`\r\n--${boundary}--\r\n`))
  return { payload: Buffer.concat(parts), contentType: `multipart/form-data; boundary=${boundary}` }
}
