import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { ApiUrls } from '../api/context.ts'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import {
  Accepted,
  Body,
  DateString,
  DeployTokenEntity,
  ExpirationPolicyBody,
  GroupEntity,
  IdParam,
  MemberEntity,
  Nullable,
  ProjectEntity,
  StatisticsQuery,
  StringEnum,
  VisibilitySchema,
} from '../api/schemas.ts'
import type { AccessTokens } from '../auth/access-tokens.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import { DEPLOY_TOKEN_SCOPES } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Users } from '../users/index.ts'
import type { ProjectAccess } from './access-levels.ts'
import { deployTokenJson, groupJsonFull, memberJson, projectJson } from './entities.ts'
import type { Groups } from './groups.ts'
import type { Members } from './members.ts'
import type { Project } from '../metadata/schema.ts'
import type { SourceKind } from './queries.ts'
import type { Projects } from './service.ts'

// /api/v4 groups, projects, their members and deploy tokens. Thin: parse, call the service, shape the JSON.

const GroupBody = Body({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  parent_id: Type.Optional(Nullable(Type.Integer())),
  visibility: Type.Optional(VisibilitySchema),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
})

const SettingsBody = Body({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  visibility: Type.Optional(VisibilitySchema),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  container_expiration_policy_attributes: Type.Optional(ExpirationPolicyBody),
})

const ProjectBody = Body({
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  namespace_id: Type.Optional(
    Type.Union([Type.Integer(), Type.String()], { description: 'namespace id or full path (default: your own namespace)' }),
  ),
  visibility: Type.Optional(VisibilitySchema),
  description: Type.Optional(Type.String({ maxLength: 2000 })),
})

const ProjectQuery = Type.Object({
  ...PageQuery,
  search: Type.Optional(Type.String({ maxLength: 255 })),
  owned: Type.Optional(Type.Boolean({ description: 'only projects in your own namespace' })),
  membership: Type.Optional(Type.Boolean({ description: 'only projects you are a member of' })),
  visibility: Type.Optional(VisibilitySchema),
})

const GroupQuery = Type.Object({
  ...PageQuery,
  search: Type.Optional(Type.String({ maxLength: 255 })),
  owned: Type.Optional(Type.Boolean({ description: 'only groups you own' })),
  top_level_only: Type.Optional(Type.Boolean()),
})

const AccessLevel = Type.Integer({
  enum: [10, 20, 30, 40, 50],
  description: '10 guest, 20 reporter, 30 developer, 40 maintainer, 50 owner',
})
const MemberBody = Body({
  user_id: Type.Integer(),
  access_level: AccessLevel,
  expires_at: Type.Optional(Nullable(Type.Union([DateString, Type.Literal('')]))),
})
const MemberUpdateBody = Body({
  access_level: AccessLevel,
  expires_at: Type.Optional(Nullable(Type.Union([DateString, Type.Literal('')]))),
})
const MemberParams = Type.Object({ id: Type.String(), user_id: Type.Integer() })

const DeployTokenBody = Body({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  scopes: Type.Array(StringEnum(DEPLOY_TOKEN_SCOPES), { minItems: 1 }),
  expires_at: Type.Optional(Nullable(Type.String({ description: 'YYYY-MM-DD or an ISO date-time' }))),
  username: Type.Optional(Type.String({ maxLength: 255 })),
})
const TokenParams = Type.Object({ id: Type.String(), token_id: Type.Integer() })

/** GitLab derives a path from a name: lowercase, runs of other characters become '-'. */
function pathFromName(name: string): string {
  return name
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9_.]+/g, '-')
    .replace(/^[-_.]+|[-_.]+$/g, '')
}

/** GitLab's deploy-token expiry accepts a date-time; Wharf stores the date. */
const dateOnly = (s: string | null | undefined) => (s ? s.slice(0, 10) : s)

export interface ProjectRouteOptions extends ApiUrls {
  users: Users
  projects: Projects
  groups: Groups
  members: Members
  projectAccess: ProjectAccess
  accessTokens: AccessTokens
  credentials: Credentials
  /** The registry's cleanup policies (GitLab's container_expiration_policy), shown and set with the project. */
  policies: ExpirationPolicies
  /** The registry's storage figures, for `statistics=true`; registry/manifests.ts plugs in (app.ts). */
  registryUsage: RegistryUsage
}

/** Bytes the images at or below a project's or group's path hold (deduplicated). */
export interface RegistryUsage {
  storageUsed(path: string): Promise<number>
}

/** What project routes need of the registry's cleanup policies; registry/cleanup-policies.ts plugs in (app.ts). */
export interface ExpirationPolicies {
  get(projectId: number): Promise<unknown>
  update(projectId: number, attributes: Static<typeof ExpirationPolicyBody>): Promise<unknown>
}

export async function projectRoutes(app: TypedApp, deps: ProjectRouteOptions): Promise<void> {
  const { users, projects, groups, members, projectAccess } = deps

  // ---- Namespaces ----

  app.get(
    '/namespaces',
    {
      schema: {
        summary: 'List your namespace and the groups you belong to (administrators: all)',
        tags: ['groups'],
        querystring: Type.Object({ ...PageQuery, search: Type.Optional(Type.String({ maxLength: 255 })) }),
      },
    },
    async (req, reply) => {
      const page = pageOf(req.query)
      const { rows, total } = await groups.namespacesFor(req.principal, { search: req.query.search, ...page })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((n) => ({
        id: n.id,
        name: n.name,
        path: n.path,
        kind: n.kind,
        full_path: n.full_path,
        parent_id: n.parent_id,
        avatar_url: null,
        web_url: n.kind === 'user' ? `${deps.publicUrl}/${n.full_path}` : `${deps.publicUrl}/groups/${n.full_path}`,
      }))
    },
  )

  // ---- Groups ----

  app.get(
    '/groups',
    {
      schema: {
        summary: 'List groups you can see',
        tags: ['groups'],
        querystring: GroupQuery,
        'x-response': { 200: Type.Array(GroupEntity) },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const query = req.query
      const page = pageOf(query)
      const { rows, total } = await groups.visibleGroups(req.principal, {
        search: query.search,
        owned: query.owned,
        topLevelOnly: query.top_level_only,
        ...page,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return Promise.all(rows.map((g) => groupJsonFull(g, projectAccess, deps)))
    },
  )

  app.post(
    '/groups',
    { schema: { summary: 'Create a group or subgroup', tags: ['groups'], body: GroupBody, 'x-response': { 201: GroupEntity } } },
    async (req, reply) => {
      const body = req.body
      const actor = await users.actor(req.principal)
      const path = body.path ?? (body.name ? pathFromName(body.name) : '')
      if (!path) throw new WharfError('BAD_REQUEST', 'path is required', {})
      const group = await groups.createGroupChecked(actor, {
        path,
        name: body.name ?? path,
        parentId: body.parent_id ?? null,
        visibility: body.visibility ?? 'private',
        description: body.description ?? '',
      })
      return reply.code(201).send(await groupJsonFull(group, projectAccess, deps))
    },
  )

  app.get(
    '/groups/:id',
    {
      schema: {
        summary: 'Get a group',
        tags: ['groups'],
        params: IdParam,
        querystring: StatisticsQuery,
        'x-response': { 200: GroupEntity },
      },
      config: { public: true },
    },
    async (req) => {
      const { group } = await groups.groupFor(req.principal, req.params.id)
      const json = await groupJsonFull(group, projectAccess, deps)
      if (!req.query.statistics) return json
      return { ...json, statistics: { container_registry_size: await deps.registryUsage.storageUsed(group.full_path) } }
    },
  )

  app.put(
    '/groups/:id',
    {
      schema: {
        summary: 'Update a group (owner)',
        tags: ['groups'],
        params: IdParam,
        body: SettingsBody,
        'x-response': { 200: GroupEntity },
      },
    },
    async (req) => {
      const { group } = await groups.groupFor(req.principal, req.params.id, 'owner')
      const body = req.body
      return groupJsonFull(await groups.updateGroupSettings(group, body), projectAccess, deps)
    },
  )

  app.delete(
    '/groups/:id',
    {
      schema: {
        summary: 'Delete a group with its subgroups, projects and images (owner)',
        tags: ['groups'],
        params: IdParam,
        'x-response': { 202: Accepted },
      },
    },
    async (req, reply) => {
      const { group } = await groups.groupFor(req.principal, req.params.id, 'owner')
      await groups.deleteGroup(group)
      await deps.credentials.audit(principalLabel(req.principal), 'group.deleted', req.ip, { path: group.full_path }, `group:${group.id}`)
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  /** GitLab's project entity carries its registry cleanup policy. */
  const withPolicy = async (p: Project) => ({
    ...(await projectJson(p, projectAccess, deps)),
    container_expiration_policy: await deps.policies.get(p.id),
  })

  app.get(
    '/groups/:id/projects',
    {
      schema: {
        summary: "List a group's projects",
        tags: ['groups'],
        params: IdParam,
        querystring: ProjectQuery,
        'x-response': { 200: Type.Array(ProjectEntity) },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { group } = await groups.groupFor(req.principal, req.params.id)
      const query = req.query
      const page = pageOf(query)
      const { rows, total } = await projects.visibleProjects(req.principal, {
        search: query.search,
        visibility: query.visibility,
        withinGroup: group.id,
        ...page,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return Promise.all(rows.map((p) => withPolicy(p)))
    },
  )

  // ---- Projects ----

  app.get(
    '/projects',
    {
      schema: {
        summary: 'List projects you can see',
        tags: ['projects'],
        querystring: ProjectQuery,
        'x-response': { 200: Type.Array(ProjectEntity) },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const query = req.query
      const page = pageOf(query)
      const { rows, total } = await projects.visibleProjects(req.principal, {
        search: query.search,
        owned: query.owned,
        membership: query.membership,
        visibility: query.visibility,
        ...page,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return Promise.all(rows.map((p) => withPolicy(p)))
    },
  )

  app.post(
    '/projects',
    { schema: { summary: 'Create a project', tags: ['projects'], body: ProjectBody, 'x-response': { 201: ProjectEntity } } },
    async (req, reply) => {
      const body = req.body
      const actor = await users.actor(req.principal)
      const path = body.path ?? (body.name ? pathFromName(body.name) : '')
      if (!path) throw new WharfError('BAD_REQUEST', 'name or path is required', {})
      let namespaceId: number
      if (body.namespace_id === undefined || body.namespace_id === '') {
        const own = await groups.userNamespaceOf(actor.id)
        namespaceId = own.id
      } else {
        const ns = await groups.findNamespaceRef(body.namespace_id)
        if (!ns) throw new WharfError('NOT_FOUND', 'Namespace Not Found', {})
        namespaceId = ns.id
      }
      const project = await projects.createProjectChecked(actor, {
        namespaceId,
        path,
        name: body.name ?? path,
        visibility: body.visibility ?? 'private',
        description: body.description ?? '',
      })
      return reply.code(201).send(await withPolicy(project))
    },
  )

  app.get(
    '/projects/:id',
    {
      schema: {
        summary: 'Get a project',
        tags: ['projects'],
        params: IdParam,
        querystring: StatisticsQuery,
        'x-response': { 200: ProjectEntity },
      },
      config: { public: true },
    },
    async (req) => {
      const { project } = await projects.projectFor(req.principal, req.params.id)
      const json = await withPolicy(project)
      if (!req.query.statistics) return json
      return { ...json, statistics: { container_registry_size: await deps.registryUsage.storageUsed(project.full_path_lower) } }
    },
  )

  app.put(
    '/projects/:id',
    {
      schema: {
        summary: 'Update a project (maintainer)',
        tags: ['projects'],
        params: IdParam,
        body: SettingsBody,
        'x-response': { 200: ProjectEntity },
      },
    },
    async (req) => {
      const { project } = await projects.projectFor(req.principal, req.params.id, 'maintainer')
      const { container_expiration_policy_attributes: policy, ...settings } = req.body
      // The policy first: a refused policy leaves the other settings unchanged too.
      const container_expiration_policy = policy ? await deps.policies.update(project.id, policy) : await deps.policies.get(project.id)
      return {
        ...(await projectJson(await projects.updateProjectSettings(project, settings), projectAccess, deps)),
        container_expiration_policy,
      }
    },
  )

  app.delete(
    '/projects/:id',
    {
      schema: { summary: 'Delete a project and its images (owner)', tags: ['projects'], params: IdParam, 'x-response': { 202: Accepted } },
    },
    async (req, reply) => {
      const { project } = await projects.projectFor(req.principal, req.params.id, 'owner')
      await projects.deleteProject(project)
      await deps.credentials.audit(
        principalLabel(req.principal),
        'project.deleted',
        req.ip,
        { path: project.full_path },
        `project:${project.id}`,
      )
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  // ---- Members (projects and groups alike) ----

  for (const kind of ['projects', 'groups'] as const) {
    const source: SourceKind = kind === 'projects' ? 'project' : 'namespace'
    const tag = kind
    /** The project or group and the caller's level on it. */
    const load = async (req: FastifyRequest, id: string) => {
      if (kind === 'projects') {
        const { project, level } = await projects.projectFor(req.principal, id)
        return { sourceId: project.id, level, entity: project }
      }
      const { group, level } = await groups.groupFor(req.principal, id)
      return { sourceId: group.id, level, entity: group }
    }

    app.get(
      `/${kind}/:id/members`,
      {
        schema: {
          summary: 'List direct members',
          tags: [tag],
          params: IdParam,
          querystring: Type.Object({ ...PageQuery }),
          'x-response': { 200: Type.Array(MemberEntity) },
        },
        config: { public: true },
      },
      async (req, reply) => {
        const { sourceId } = await load(req, req.params.id)
        const page = pageOf(req.query as { page?: number; per_page?: number })
        const { rows, total } = await members.pageDirectMembers(source, sourceId, page)
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map((m) => memberJson(m, deps))
      },
    )

    app.get(
      `/${kind}/:id/members/all`,
      {
        schema: {
          summary: 'List members including inherited ones (highest level each)',
          tags: [tag],
          params: IdParam,
          querystring: Type.Object({ ...PageQuery }),
          'x-response': { 200: Type.Array(MemberEntity) },
        },
        config: { public: true },
      },
      async (req, reply) => {
        const { entity } = await load(req, req.params.id)
        const page = pageOf(req.query as { page?: number; per_page?: number })
        const { rows, total } = await members.pageAllMembers(source, entity, page)
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map((m) => memberJson(m, deps))
      },
    )

    app.get(
      `/${kind}/:id/members/:user_id`,
      {
        schema: { summary: 'Get a direct member', tags: [tag], params: MemberParams, 'x-response': { 200: MemberEntity } },
        config: { public: true },
      },
      async (req) => {
        const params = req.params
        const { sourceId } = await load(req, params.id)
        const m = await members.findMember(source, sourceId, params.user_id)
        if (!m) throw new WharfError('NOT_FOUND', 'Member Not Found', {})
        return memberJson(m, deps)
      },
    )

    app.post(
      `/${kind}/:id/members`,
      {
        schema: {
          summary: 'Add a member (maintainer; owner to grant owner)',
          tags: [tag],
          params: IdParam,
          body: MemberBody,
          'x-response': { 201: MemberEntity },
        },
      },
      async (req, reply) => {
        const { sourceId, level } = await load(req, req.params.id)
        const body = req.body
        const m = await members.addMember(level, source, sourceId, body.user_id, body.access_level, body.expires_at)
        await deps.credentials.audit(
          principalLabel(req.principal),
          'member.added',
          req.ip,
          { userId: body.user_id, accessLevel: body.access_level },
          `${source}:${sourceId}`,
        )
        return reply.code(201).send(memberJson(m, deps))
      },
    )

    app.put(
      `/${kind}/:id/members/:user_id`,
      {
        schema: {
          summary: "Change a member's access level or expiry",
          tags: [tag],
          params: MemberParams,
          body: MemberUpdateBody,
          'x-response': { 200: MemberEntity },
        },
      },
      async (req) => {
        const params = req.params
        const { sourceId, level } = await load(req, params.id)
        const body = req.body
        const m = await members.updateMember(level, source, sourceId, params.user_id, body.access_level, body.expires_at)
        await deps.credentials.audit(
          principalLabel(req.principal),
          'member.updated',
          req.ip,
          { userId: params.user_id, accessLevel: body.access_level },
          `${source}:${sourceId}`,
        )
        return memberJson(m, deps)
      },
    )

    app.delete(
      `/${kind}/:id/members/:user_id`,
      {
        schema: { summary: 'Remove a member (maintainer; anyone may leave)', tags: [tag], params: MemberParams, 'x-response': { 204: {} } },
      },
      async (req, reply) => {
        const params = req.params
        const { sourceId, level } = await load(req, params.id)
        const actor = await users.actor(req.principal)
        await members.removeMember(level, actor.id, source, sourceId, params.user_id)
        await deps.credentials.audit(
          principalLabel(req.principal),
          'member.removed',
          req.ip,
          { userId: params.user_id },
          `${source}:${sourceId}`,
        )
        return reply.code(204).send()
      },
    )

    // ---- Deploy tokens (maintainer+) ----

    const owner = (sourceId: number) => (kind === 'projects' ? { projectId: sourceId } : { namespaceId: sourceId })
    const needMaintainer = (level: number | undefined) => {
      if (level === undefined || level < 40)
        throw new WharfError('FORBIDDEN', 'deploy tokens need the maintainer role', { needs: 'maintainer' })
    }

    app.get(
      `/${kind}/:id/deploy_tokens`,
      {
        schema: {
          summary: 'List deploy tokens (maintainer)',
          tags: [tag],
          params: IdParam,
          querystring: Type.Object({ ...PageQuery, active: Type.Optional(Type.Boolean()) }),
          'x-response': { 200: Type.Array(DeployTokenEntity) },
        },
      },
      async (req, reply) => {
        const { sourceId, level } = await load(req, req.params.id)
        needMaintainer(level)
        const query = req.query
        const page = pageOf(query)
        const { rows, total } = await deps.accessTokens.pageDeployTokens(owner(sourceId), {
          active: query.active,
          limit: page.limit,
          offset: page.offset,
        })
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map((t) => deployTokenJson(t))
      },
    )

    app.post(
      `/${kind}/:id/deploy_tokens`,
      {
        schema: {
          summary: 'Create a deploy token (maintainer); the token is shown only in this response',
          tags: [tag],
          params: IdParam,
          body: DeployTokenBody,
          'x-response': { 201: DeployTokenEntity },
        },
      },
      async (req, reply) => {
        const { sourceId, level } = await load(req, req.params.id)
        needMaintainer(level)
        const body = req.body
        const { token, row } = await deps.accessTokens.createDeployToken(
          owner(sourceId),
          { name: body.name, username: body.username ?? null, scopes: body.scopes, expiresAt: dateOnly(body.expires_at) ?? null },
          principalLabel(req.principal),
        )
        return reply.code(201).header('Cache-Control', 'no-store').send(deployTokenJson(row, token))
      },
    )

    app.delete(
      `/${kind}/:id/deploy_tokens/:token_id`,
      { schema: { summary: 'Revoke a deploy token (maintainer)', tags: [tag], params: TokenParams, 'x-response': { 204: {} } } },
      async (req, reply) => {
        const params = req.params
        const { sourceId, level } = await load(req, params.id)
        needMaintainer(level)
        const row = await deps.accessTokens.findDeployToken(params.token_id)
        const mine = row && (kind === 'projects' ? row.project_id === sourceId : row.namespace_id === sourceId)
        if (!row || !mine) throw new WharfError('NOT_FOUND', 'Deploy Token Not Found', {})
        await deps.accessTokens.revokeDeployToken(row, principalLabel(req.principal))
        return reply.code(204).send()
      },
    )
  }
}

function principalLabel(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.username
}
