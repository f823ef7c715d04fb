import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { IdParam } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Project, ProtectedRef } from '../metadata/schema.ts'
import type { Projects } from '../projects/service.ts'
import type { Users } from '../users/index.ts'
import { commitJson as commitJsonOf, readableRepository } from './api-access.ts'
import type { CommitInfo } from './repos.ts'
import { refPatternMatches } from './protected-refs.ts'
import { protectedRefRoutes } from './protected-routes.ts'
import { repositoryRoutes } from './repository-routes.ts'
import type { GitHosting, PushRecord } from './service.ts'

// GitLab's repository API, the part git hosting answers (registered under /api/v4, with the REST
// API's own auth hook, error bodies and pagination headers):
//   GET /projects/:id/repository/branches[?search=]   GET /projects/:id/repository/branches/:branch
//   GET /projects/:id/repository/tags                  GET /projects/:id/events[?action=pushed]
// `:id` is the numeric id or the URL-encoded full path (`group%2Fproject`), as in GitLab.

export interface GitApiOptions {
  git: GitHosting
  projects: Projects
  users: Users
  /** Public base URL (web_url fields, Link headers). */
  publicUrl: string
}

const BranchQuery = Type.Object({ ...PageQuery, search: Type.Optional(Type.String({ maxLength: 255 })) })
const EventQuery = Type.Object({ ...PageQuery, action: Type.Optional(Type.String({ maxLength: 64 })) })
const BranchParams = Type.Object({ id: Type.String(), branch: Type.String() })

export async function gitApiRoutes(app: TypedApp, opts: GitApiOptions): Promise<void> {
  const { git, projects } = opts
  const publicUrl = opts.publicUrl.replace(/\/$/, '')

  await app.register(repositoryRoutes, { git, projects, users: opts.users, publicUrl })
  await app.register(protectedRefRoutes, { git, projects, publicUrl })

  const readable = (req: FastifyRequest) => readableRepository(git, projects, req)
  const commitJson = (project: Project, c: CommitInfo) => commitJsonOf(publicUrl, project, c)
  const branchJson = (
    project: Project,
    b: { name: string; default: boolean; commit: CommitInfo },
    canPush: boolean,
    rules: ProtectedRef[],
  ) => ({
    name: b.name,
    merged: false,
    protected: rules.some((r) => r.kind === 'branch' && refPatternMatches(r.name, b.name)),
    default: b.default,
    developers_can_push: rules.some((r) => r.kind === 'branch' && refPatternMatches(r.name, b.name) && r.push_level === 30),
    developers_can_merge: rules.some((r) => r.kind === 'branch' && refPatternMatches(r.name, b.name) && r.merge_level === 30),
    can_push: canPush,
    web_url: `${publicUrl}/${project.full_path}/-/tree/${b.name}`,
    commit: commitJson(project, b.commit),
  })

  app.get(
    '/projects/:id/repository/branches',
    {
      schema: { summary: 'List repository branches', tags: ['repository'], params: IdParam, querystring: BranchQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const { project, canPush } = await readable(req)
      const q = req.query
      const page = pageOf(q)
      const { rows, total } = await git.repos.branches(project.id, { search: q.search, limit: page.limit, offset: page.offset })
      setPageHeaders(req, reply, publicUrl, page, total)
      const rules = await git.protectedRefs.rules(project.id)
      return rows.map((b) => branchJson(project, b, canPush, rules))
    },
  )

  app.get(
    '/projects/:id/repository/branches/:branch',
    { schema: { summary: 'Get a repository branch', tags: ['repository'], params: BranchParams }, config: { public: true } },
    async (req) => {
      const { project, canPush } = await readable(req)
      const name = req.params.branch
      const b = await git.repos.branch(project.id, name)
      if (!b) throw new WharfError('NOT_FOUND', 'Branch Not Found', {})
      return branchJson(project, b, canPush, await git.protectedRefs.rules(project.id))
    },
  )

  app.get(
    '/projects/:id/repository/tags',
    {
      schema: { summary: 'List repository tags, newest first', tags: ['repository'], params: IdParam, querystring: Type.Object(PageQuery) },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const page = pageOf(req.query)
      const { rows, total } = await git.repos.tags(project.id, page)
      const rules = await git.protectedRefs.rules(project.id)
      setPageHeaders(req, reply, publicUrl, page, total)
      return rows.map((t) => ({
        name: t.name,
        message: t.message ?? '',
        target: t.target,
        commit: t.commit ? commitJson(project, t.commit) : null,
        release: null,
        protected: rules.some((r) => r.kind === 'tag' && refPatternMatches(r.name, t.name)),
        created_at: null,
      }))
    },
  )

  app.get(
    '/projects/:id/events',
    {
      schema: {
        summary: "A project's push events (one per updated ref), newest first",
        tags: ['repository'],
        params: IdParam,
        querystring: EventQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const q = req.query
      const page = pageOf(q)
      // Pushes are the only events Wharf records so far.
      if (q.action !== undefined && q.action !== 'pushed') {
        setPageHeaders(req, reply, publicUrl, page, 0)
        return []
      }
      const { total, entries } = await git.pushHistory(project.id, page)
      setPageHeaders(req, reply, publicUrl, page, total)
      return entries.map((e) => pushEventJson(project, e))
    },
  )
}

/** One ref update as a GitLab push event. */
export function pushEventJson(project: Project, e: PushRecord) {
  return {
    id: e.id,
    project_id: project.id,
    action_name: e.action === 'create' ? 'pushed new' : e.action === 'delete' ? 'deleted' : 'pushed to',
    target_id: null,
    target_iid: null,
    target_type: null,
    author_id: e.userId,
    target_title: null,
    created_at: e.at,
    author_username: e.actor,
    push_data: {
      commit_count: e.commitCount,
      action: e.action === 'create' ? 'created' : e.action === 'delete' ? 'removed' : 'pushed',
      ref_type: e.type === 'tag' ? 'tag' : 'branch',
      commit_from: e.action === 'create' ? null : e.before,
      commit_to: e.action === 'delete' ? null : e.after,
      ref: e.name,
      commit_title: e.commitTitle,
      ref_count: null,
    },
  }
}
