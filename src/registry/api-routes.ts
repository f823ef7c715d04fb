import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { ApiUrls } from '../api/context.ts'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Accepted, Body, IdParam, RepositoryEntity, TagDetailEntity, TagEntity } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Project } from '../metadata/schema.ts'
import type { Groups } from '../projects/groups.ts'
import type { Projects } from '../projects/service.ts'
import type { Manifests } from './manifests.ts'
import { ADMIN_RULE_LEVEL, levelName, RULE_LEVELS } from './tag-protection.ts'
import type { RegistryTagRule } from '../metadata/schema.ts'

// /api/v4 projects/:id/registry/repositories and their tags, in GitLab's shapes.

const RepoParams = Type.Object({ id: Type.String(), repository_id: Type.Integer() })
const TagParams = Type.Object({ id: Type.String(), repository_id: Type.Integer(), tag_name: Type.String({ maxLength: 128 }) })
const RepoQuery = Type.Object({
  ...PageQuery,
  tags: Type.Optional(Type.Boolean({ description: 'include each repository’s tags' })),
  tags_count: Type.Optional(Type.Boolean()),
  size: Type.Optional(Type.Boolean({ description: 'Wharf extension: include each repository’s total size' })),
})

export interface RegistryApiOptions extends ApiUrls {
  projects: Projects
  groups: Groups
  manifests: Manifests
  credentials: Credentials
}

export async function registryApiRoutes(app: TypedApp, deps: RegistryApiOptions): Promise<void> {
  const { projects, manifests } = deps
  const location = (name: string) => `${deps.registryHost}/${name}`
  const tagJson = (repoName: string, tag: string) => ({ name: tag, path: `${repoName}:${tag}`, location: `${location(repoName)}:${tag}` })

  /**
   * The project and the caller's right to read its registry: public projects for anyone, internal ones
   * for signed-in users, private ones from Reporter up (as pulls). `role` adds a stricter requirement.
   */
  const registryProject = async (req: FastifyRequest, id: string, role?: 'maintainer'): Promise<Project> =>
    (await leveled(req, id, role)).project
  /** The same, with the caller's level for tag protection rules (administrators above every role). */
  const leveled = async (req: FastifyRequest, id: string, role?: 'maintainer'): Promise<{ project: Project; level: number }> => {
    const { project, level } = await projects.projectFor(req.principal, id)
    const canRead =
      project.visibility === 'public' || (project.visibility === 'internal' && req.principal.kind === 'user') || atLeast(level, 'reporter')
    if (!canRead) throw new WharfError('FORBIDDEN', 'reading the container registry needs the reporter role', { needs: 'reporter' })
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return { project, level: req.principal.kind === 'user' && req.principal.isAdmin ? ADMIN_RULE_LEVEL : (level ?? 0) }
  }

  /** A repository of this project (its name is the project path or below it), else NOT_FOUND. */
  const projectRepository = async (project: Project, repositoryId: number) => {
    const repo = await manifests.findRepository(repositoryId)
    const mine = repo && (repo.name === project.full_path_lower || repo.name.startsWith(`${project.full_path_lower}/`))
    if (!repo || !mine) throw new WharfError('NOT_FOUND', 'Repository Not Found', {})
    return repo
  }

  const repositoryJson = (project: Project, r: { id: number; name: string; created_at: string; tags_count: number | string | null }) => ({
    id: r.id,
    // GitLab: the image name below the project path ('' for the project's own image).
    name: r.name === project.full_path_lower ? '' : r.name.slice(project.full_path_lower.length + 1),
    path: r.name,
    project_id: project.id,
    location: location(r.name),
    created_at: r.created_at,
    cleanup_policy_started_at: null,
    tags_count: Number(r.tags_count ?? 0),
  })

  app.get(
    '/projects/:id/registry/repositories',
    {
      schema: {
        summary: "List a project's container images",
        tags: ['registry'],
        params: IdParam,
        querystring: RepoQuery,
        'x-response': { 200: Type.Array(RepositoryEntity) },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await registryProject(req, req.params.id)
      const query = req.query
      const page = pageOf(query)
      const { rows, total } = await manifests.pageRepositoriesUnder(project.full_path_lower, page.limit, page.offset)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      const ids = rows.map((r) => r.id)
      const sizes = query.size ? await manifests.repositorySizes(ids) : undefined
      // GitLab embeds every tag (the web UI's Registry tab filters them client-side): one query for the page's repositories.
      const tags = query.tags ? await manifests.tagsOf(ids) : undefined
      return rows.map((r) => {
        const json = sizes ? { ...repositoryJson(project, r), size: sizes.get(r.id) ?? 0 } : repositoryJson(project, r)
        return tags ? { ...json, tags: (tags.get(r.id) ?? []).map((t) => tagJson(r.name, t)) } : json
      })
    },
  )

  // Every image of a group's projects and subgroups' (Reporter+ on the group, as GitLab).
  app.get(
    '/groups/:id/registry/repositories',
    {
      schema: {
        summary: "List the container images of a group's projects, subgroups included",
        tags: ['registry'],
        params: IdParam,
        querystring: RepoQuery,
        'x-response': { 200: Type.Array(RepositoryEntity) },
      },
    },
    async (req, reply) => {
      const { group } = await deps.groups.groupFor(req.principal, req.params.id, 'reporter')
      const page = pageOf(req.query)
      const { rows, total } = await manifests.pageRepositoriesUnder(group.full_path_lower, page.limit, page.offset)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      const tags = req.query.tags ? await manifests.tagsOf(rows.map((r) => r.id)) : undefined
      const out = []
      for (const r of rows) {
        const project = await projects.projectForRepository(r.name)
        if (!project) continue
        const json = repositoryJson(project, r)
        out.push(tags ? { ...json, tags: (tags.get(r.id) ?? []).map((t) => tagJson(r.name, t)) } : json)
      }
      return out
    },
  )

  // One image by id, readable as its project's registry; `tags` and `tags_count` on demand (GitLab's flags).
  const OneRepoQuery = Type.Object({ tags: Type.Optional(Type.Boolean()), tags_count: Type.Optional(Type.Boolean()) })
  app.get(
    '/registry/repositories/:id',
    {
      schema: {
        summary: 'Get a container image by id',
        tags: ['registry'],
        params: Type.Object({ id: Type.Integer() }),
        querystring: OneRepoQuery,
      },
      config: { public: true },
    },
    async (req) => {
      const repo = await manifests.findRepository(req.params.id)
      const owner = repo && (await projects.projectForRepository(repo.name))
      if (!repo || !owner) throw new WharfError('NOT_FOUND', 'Repository Not Found', {})
      // A repository of a project the caller cannot see is not found, as the project is.
      const project = await registryProject(req, String(owner.id)).catch((e: unknown) => {
        throw e instanceof WharfError && e.code === 'FORBIDDEN' ? new WharfError('NOT_FOUND', 'Repository Not Found', {}) : e
      })
      const q = req.query
      const count = q.tags_count ? (await manifests.tagPage(repo.id, 1, 0)).total : 0
      const { tags_count: _, ...json } = repositoryJson(project, { ...repo, tags_count: count })
      return {
        ...json,
        ...(q.tags_count ? { tags_count: count } : {}),
        ...(q.tags ? { tags: ((await manifests.tagsOf([repo.id])).get(repo.id) ?? []).map((t) => tagJson(repo.name, t)) } : {}),
      }
    },
  )

  app.delete(
    '/projects/:id/registry/repositories/:repository_id',
    {
      schema: {
        summary: 'Delete a container image with all its tags (maintainer)',
        tags: ['registry'],
        params: RepoParams,
        'x-response': { 202: Accepted },
      },
    },
    async (req, reply) => {
      const params = req.params
      const { project, level } = await leveled(req, params.id, 'maintainer')
      const repo = await projectRepository(project, params.repository_id)
      await manifests.deleteRepository(repo, async () => level)
      await deps.credentials.audit(actor(req), 'registry.repository_deleted', req.ip, { name: repo.name }, `project:${project.id}`)
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  app.get(
    '/projects/:id/registry/repositories/:repository_id/tags',
    {
      schema: {
        summary: "List an image's tags",
        tags: ['registry'],
        params: RepoParams,
        querystring: Type.Object({ ...PageQuery }),
        'x-response': { 200: Type.Array(TagEntity) },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const params = req.params
      const project = await registryProject(req, params.id)
      const repo = await projectRepository(project, params.repository_id)
      const page = pageOf(req.query)
      const { names, total } = await manifests.tagPage(repo.id, page.limit, page.offset)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return names.map((t) => tagJson(repo.name, t))
    },
  )

  // GitLab takes these as query parameters (python-gitlab) or a form/JSON body (its curl examples).
  const bulkFields = {
    name_regex_delete: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: 'RE2 pattern of the tag names to delete (whole name); .* for all' }),
    ),
    name_regex: Type.Optional(Type.String({ minLength: 1, maxLength: 255, description: 'deprecated name of name_regex_delete' })),
    name_regex_keep: Type.Optional(
      Type.String({ minLength: 1, maxLength: 255, description: 'RE2 pattern of tag names to keep; wins over name_regex_delete' }),
    ),
    keep_n: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'the newest N matching tags stay' })),
    older_than: Type.Optional(Type.String({ maxLength: 32, description: 'only tags older than this go: 1h, 7d, 1month' })),
  }
  const BulkQuery = Type.Object(bulkFields, { additionalProperties: false })
  const BulkBody = Type.Union([Type.Null(), Body(bulkFields)])
  app.delete(
    '/projects/:id/registry/repositories/:repository_id/tags',
    {
      schema: {
        summary: 'Delete tags in bulk by name pattern, count and age, in one transaction (maintainer)',
        tags: ['registry'],
        params: RepoParams,
        querystring: BulkQuery,
        body: BulkBody,
        'x-response': { 202: Accepted },
      },
    },
    async (req, reply) => {
      const params = req.params
      const f = { ...req.query, ...(req.body ?? {}) }
      const nameRegexDelete = f.name_regex_delete ?? f.name_regex
      if (nameRegexDelete === undefined) throw new WharfError('BAD_REQUEST', 'name_regex_delete is missing', { field: 'name_regex_delete' })
      const { project, level } = await leveled(req, params.id, 'maintainer')
      const repo = await projectRepository(project, params.repository_id)
      // Tags protection rules keep from this caller stay, counted in the audit entry.
      const { deleted, protected: kept } = await manifests.deleteTagsMatching(
        repo,
        { nameRegexDelete, nameRegexKeep: f.name_regex_keep, keepN: f.keep_n, olderThan: f.older_than },
        level,
      )
      await deps.credentials.audit(
        actor(req),
        'registry.tags_deleted',
        req.ip,
        { name: repo.name, tags: deleted, protected_tags: kept, name_regex_delete: nameRegexDelete },
        `project:${project.id}`,
      )
      // GitLab queues this and answers 202; here it is already done (one transaction).
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  app.get(
    '/projects/:id/registry/repositories/:repository_id/tags/:tag_name',
    {
      schema: {
        summary: 'Get a tag: digest, revision and total size',
        tags: ['registry'],
        params: TagParams,
        'x-response': { 200: TagDetailEntity },
      },
      config: { public: true },
    },
    async (req) => {
      const params = req.params
      const project = await registryProject(req, params.id)
      const repo = await projectRepository(project, params.repository_id)
      const t = await manifests.tagDetail(repo.id, params.tag_name)
      // GitLab: revision is the config blob's hex digest; short_revision its first 9 characters.
      const revision = (t.configDigest ?? t.digest).replace(/^[a-z0-9]+:/, '')
      return {
        ...tagJson(repo.name, t.name),
        digest: t.digest,
        media_type: t.mediaType,
        revision,
        short_revision: revision.slice(0, 9),
        total_size: t.totalSize,
        created_at: t.createdAt,
        ...(t.platforms ? { platforms: t.platforms } : {}),
      }
    },
  )

  app.delete(
    '/projects/:id/registry/repositories/:repository_id/tags/:tag_name',
    {
      schema: {
        summary: 'Delete exactly one tag; other tags of the same image stay (maintainer)',
        tags: ['registry'],
        params: TagParams,
        'x-response': { 200: {} },
      },
    },
    async (req, reply) => {
      const params = req.params
      const { project, level } = await leveled(req, params.id, 'maintainer')
      const repo = await projectRepository(project, params.repository_id)
      await manifests.deleteTagOnly(repo, params.tag_name, actor(req), async () => level)
      await deps.credentials.audit(
        actor(req),
        'registry.tag_deleted',
        req.ip,
        { name: repo.name, tag: params.tag_name },
        `project:${project.id}`,
      )
      return reply.code(200).send()
    },
  )
}

const RuleLevel = Type.Union(
  (Object.keys(RULE_LEVELS) as Array<keyof typeof RULE_LEVELS>).map((k) => Type.Literal(k)),
  { description: 'maintainer, owner or admin' },
)
const ruleFields = {
  tag_name_pattern: Type.Optional(
    Type.String({ minLength: 1, maxLength: 100, description: 'RE2 pattern matched against whole tag names' }),
  ),
  minimum_access_level_for_push: Type.Optional(Type.Union([RuleLevel, Type.Null()])),
  minimum_access_level_for_delete: Type.Optional(Type.Union([RuleLevel, Type.Null()])),
}
const RuleParams = Type.Object({ id: Type.String(), rule_id: Type.Integer() })
const RuleEntity = Type.Object({
  id: Type.Integer(),
  project_id: Type.Integer(),
  tag_name_pattern: Type.String(),
  minimum_access_level_for_push: Type.Union([RuleLevel, Type.Null()]),
  minimum_access_level_for_delete: Type.Union([RuleLevel, Type.Null()]),
  immutable: Type.Boolean(),
})

const ruleJson = (r: RegistryTagRule) => ({
  id: r.id,
  project_id: r.project_id,
  tag_name_pattern: r.tag_name_pattern,
  minimum_access_level_for_push: levelName(r.push_level),
  minimum_access_level_for_delete: levelName(r.delete_level),
  immutable: r.push_level === null && r.delete_level === null,
})

/**
 * GitLab's container registry tag protection rules (Maintainer+ reads and writes them):
 *   GET|POST /projects/:id/registry/protection/tag/rules   PATCH|DELETE .../rules/:rule_id
 * A rule without either level is an immutable-tag rule. Enforced in Manifests (tag-protection.ts).
 */
export async function tagProtectionRoutes(app: TypedApp, deps: RegistryApiOptions): Promise<void> {
  const { projects, manifests } = deps
  const maintained = async (req: FastifyRequest, id: string) => (await projects.projectFor(req.principal, id, 'maintainer')).project
  const base = '/projects/:id/registry/protection/tag/rules'
  const tags = ['registry']
  const audit = (req: FastifyRequest, action: string, project: Project, r: RegistryTagRule) =>
    deps.credentials.audit(actor(req), action, req.ip, ruleJson(r), `project:${project.id}`)

  app.get(
    base,
    {
      schema: {
        summary: "List a project's container registry tag protection rules",
        tags,
        params: IdParam,
        querystring: Type.Object(PageQuery),
        'x-response': { 200: Type.Array(RuleEntity) },
      },
    },
    async (req, reply) => {
      const project = await maintained(req, req.params.id)
      const page = pageOf(req.query)
      const { rows, total } = await manifests.protection.page(project.id, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map(ruleJson)
    },
  )

  app.post(
    base,
    {
      schema: {
        summary: 'Protect tags matching a pattern (both levels), or make them immutable (neither level)',
        tags,
        params: IdParam,
        body: Body(ruleFields),
        'x-response': { 201: RuleEntity },
      },
    },
    async (req, reply) => {
      const project = await maintained(req, req.params.id)
      const b = req.body
      if (b.tag_name_pattern === undefined)
        throw new WharfError('BAD_REQUEST', 'tag_name_pattern is missing', { field: 'tag_name_pattern' })
      const r = await manifests.protection.create(project.id, {
        tagNamePattern: b.tag_name_pattern,
        pushLevel: b.minimum_access_level_for_push ?? null,
        deleteLevel: b.minimum_access_level_for_delete ?? null,
      })
      await audit(req, 'registry.tag_rule_created', project, r)
      return reply.code(201).send(ruleJson(r))
    },
  )

  app.patch(
    `${base}/:rule_id`,
    {
      schema: {
        summary: 'Change a tag protection rule',
        tags,
        params: RuleParams,
        body: Body(ruleFields),
        'x-response': { 200: RuleEntity },
      },
    },
    async (req) => {
      const project = await maintained(req, req.params.id)
      const b = req.body
      const r = await manifests.protection.update(project.id, req.params.rule_id, {
        ...(b.tag_name_pattern !== undefined ? { tagNamePattern: b.tag_name_pattern } : {}),
        ...(b.minimum_access_level_for_push !== undefined ? { pushLevel: b.minimum_access_level_for_push } : {}),
        ...(b.minimum_access_level_for_delete !== undefined ? { deleteLevel: b.minimum_access_level_for_delete } : {}),
      })
      await audit(req, 'registry.tag_rule_updated', project, r)
      return ruleJson(r)
    },
  )

  app.delete(`${base}/:rule_id`, { schema: { summary: 'Delete a tag protection rule', tags, params: RuleParams } }, async (req, reply) => {
    const project = await maintained(req, req.params.id)
    await manifests.protection.remove(project.id, req.params.rule_id)
    await deps.credentials.audit(actor(req), 'registry.tag_rule_deleted', req.ip, { id: req.params.rule_id }, `project:${project.id}`)
    return reply.code(204).send()
  })
}

const actor = (req: FastifyRequest) => (req.principal.kind === 'user' ? req.principal.username : 'anonymous')
