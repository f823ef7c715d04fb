import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam, Nullable } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Project, RegistryRepositoryRule } from '../metadata/schema.ts'
import type { RegistryApiOptions } from './api-routes.ts'
import type { PlannedTag, PolicyAttributes } from './cleanup-policies.ts'
import type { QuotaStatus } from './quotas.ts'
import { ADMIN_RULE_LEVEL, levelName, RULE_LEVELS } from './tag-protection.ts'

// The rest of the registry lifecycle's /api/v4 surface:
//   GitLab's repository protection rules   GET|POST /projects/:id/registry/protection/repository/rules, PATCH|DELETE .../:rule_id
//   Wharf extensions: the project's registry quota (GET, PUT by administrators), a tag's push
//   history, and previews of the cleanup policy and of a bulk tag delete (nothing is deleted).

const RuleLevel = Type.Union(
  (Object.keys(RULE_LEVELS) as Array<keyof typeof RULE_LEVELS>).map((k) => Type.Literal(k)),
  { description: 'maintainer, owner or admin' },
)
const ruleFields = {
  repository_path_pattern: Type.Optional(
    Type.String({ minLength: 1, maxLength: 255, description: "repository path starting with the project's path; * matches anything" }),
  ),
  minimum_access_level_for_push: Type.Optional(Nullable(RuleLevel)),
  minimum_access_level_for_delete: Type.Optional(Nullable(RuleLevel)),
}
const RuleEntity = Type.Object({
  id: Type.Integer(),
  project_id: Type.Integer(),
  repository_path_pattern: Type.String(),
  minimum_access_level_for_push: Nullable(RuleLevel),
  minimum_access_level_for_delete: Nullable(RuleLevel),
})
const ruleJson = (r: RegistryRepositoryRule) => ({
  id: r.id,
  project_id: r.project_id,
  repository_path_pattern: r.repository_path_pattern,
  minimum_access_level_for_push: levelName(r.push_level),
  minimum_access_level_for_delete: levelName(r.delete_level),
})
const RuleParams = Type.Object({ id: Type.String(), rule_id: Type.Integer() })

const QuotaEntity = Type.Object({
  used_bytes: Type.Integer(),
  hard_limit_bytes: Nullable(Type.Integer()),
  soft_limit_bytes: Nullable(Type.Integer()),
  over_soft_limit: Type.Boolean(),
  over_hard_limit: Type.Boolean(),
})
const quotaJson = (s: QuotaStatus) => ({
  used_bytes: s.usedBytes,
  hard_limit_bytes: s.hardLimitBytes,
  soft_limit_bytes: s.softLimitBytes,
  over_soft_limit: s.overSoftLimit,
  over_hard_limit: s.overHardLimit,
})

const Planned = Type.Array(Type.Object({ name: Type.String(), reason: Type.String() }))
const plannedJson = (p: PlannedTag[]) => p.map((t) => ({ name: t.name, reason: t.reason }))

export async function registryLifecycleRoutes(app: TypedApp, deps: RegistryApiOptions): Promise<void> {
  const { projects, manifests } = deps
  const tags = ['registry']
  const isAdmin = (req: FastifyRequest) => req.principal.kind === 'user' && req.principal.isAdmin
  /** The project and the caller's level for protection rules (administrators above every role). */
  const leveled = async (req: FastifyRequest, id: string, role: 'reporter' | 'developer' | 'maintainer') => {
    const { project, level } = await projects.projectFor(req.principal, id, isAdmin(req) ? undefined : role)
    return { project, level: isAdmin(req) ? ADMIN_RULE_LEVEL : (level ?? 0) }
  }
  const repositoryOf = async (project: Project, repositoryId: number) => {
    const repo = await manifests.findRepository(repositoryId)
    const mine = repo && (repo.name === project.full_path_lower || repo.name.startsWith(`${project.full_path_lower}/`))
    if (!repo || !mine) throw new WharfError('NOT_FOUND', 'Repository Not Found', {})
    return repo
  }
  const actor = (req: FastifyRequest) => (req.principal.kind === 'user' ? req.principal.username : 'anonymous')
  const audit = (req: FastifyRequest, action: string, project: Project, detail: Record<string, unknown>) =>
    deps.credentials.audit(actor(req), action, req.ip, detail, `project:${project.id}`)

  // ---- Repository protection rules (Maintainer+, as GitLab) ----
  const base = '/projects/:id/registry/protection/repository/rules'
  app.get(
    base,
    {
      schema: {
        summary: "List a project's container registry repository protection rules",
        tags,
        params: IdParam,
        querystring: Type.Object(PageQuery),
        'x-response': { 200: Type.Array(RuleEntity) },
      },
    },
    async (req, reply) => {
      const { project } = await leveled(req, req.params.id, 'maintainer')
      const page = pageOf(req.query)
      const { rows, total } = await manifests.repositoryProtection.page(project.id, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map(ruleJson)
    },
  )

  app.post(
    base,
    {
      schema: {
        summary: 'Protect repositories matching a path pattern: the least role that may push to and delete from them',
        tags,
        params: IdParam,
        body: Body(ruleFields),
        'x-response': { 201: RuleEntity },
      },
    },
    async (req, reply) => {
      const { project } = await leveled(req, req.params.id, 'maintainer')
      const b = req.body
      if (b.repository_path_pattern === undefined)
        throw new WharfError('BAD_REQUEST', 'repository_path_pattern is missing', { field: 'repository_path_pattern' })
      const r = await manifests.repositoryProtection.create(project, {
        repositoryPathPattern: b.repository_path_pattern,
        pushLevel: b.minimum_access_level_for_push ?? null,
        deleteLevel: b.minimum_access_level_for_delete ?? null,
      })
      await audit(req, 'registry.repository_rule_created', project, ruleJson(r))
      return reply.code(201).send(ruleJson(r))
    },
  )

  app.patch(
    `${base}/:rule_id`,
    {
      schema: {
        summary: 'Change a repository protection rule',
        tags,
        params: RuleParams,
        body: Body(ruleFields),
        'x-response': { 200: RuleEntity },
      },
    },
    async (req) => {
      const { project } = await leveled(req, req.params.id, 'maintainer')
      const b = req.body
      const r = await manifests.repositoryProtection.update(project, req.params.rule_id, {
        ...(b.repository_path_pattern !== undefined ? { repositoryPathPattern: b.repository_path_pattern } : {}),
        ...(b.minimum_access_level_for_push !== undefined ? { pushLevel: b.minimum_access_level_for_push } : {}),
        ...(b.minimum_access_level_for_delete !== undefined ? { deleteLevel: b.minimum_access_level_for_delete } : {}),
      })
      await audit(req, 'registry.repository_rule_updated', project, ruleJson(r))
      return ruleJson(r)
    },
  )

  app.delete(
    `${base}/:rule_id`,
    { schema: { summary: 'Delete a repository protection rule', tags, params: RuleParams } },
    async (req, reply) => {
      const { project } = await leveled(req, req.params.id, 'maintainer')
      await manifests.repositoryProtection.remove(project.id, req.params.rule_id)
      await audit(req, 'registry.repository_rule_deleted', project, { id: req.params.rule_id })
      return reply.code(204).send()
    },
  )

  // ---- Quota (Wharf extension): Maintainers read it, administrators set it ----
  app.get(
    '/projects/:id/registry/quota',
    {
      schema: {
        summary: "The project's registry storage use and quota (Wharf extension)",
        tags,
        params: IdParam,
        'x-response': { 200: QuotaEntity },
      },
    },
    async (req) => quotaJson(await manifests.quotas.status((await leveled(req, req.params.id, 'maintainer')).project)),
  )

  const Limit = Type.Optional(Nullable(Type.Integer({ minimum: 0, description: 'bytes; null: no limit' })))
  app.put(
    '/projects/:id/registry/quota',
    {
      schema: {
        summary: "Set the project's registry quota: hard (pushes refused over it) and soft (a warning) limits (administrators)",
        tags,
        params: IdParam,
        body: Body({ hard_limit_bytes: Limit, soft_limit_bytes: Limit }),
        'x-response': { 200: QuotaEntity },
      },
    },
    async (req) => {
      if (!isAdmin(req)) throw new WharfError('FORBIDDEN', 'only administrators set registry quotas', { needs: 'admin' })
      const { project } = await leveled(req, req.params.id, 'maintainer')
      const b = req.body
      const s = await manifests.quotas.set(project, {
        ...(b.hard_limit_bytes !== undefined ? { hardLimitBytes: b.hard_limit_bytes } : {}),
        ...(b.soft_limit_bytes !== undefined ? { softLimitBytes: b.soft_limit_bytes } : {}),
      })
      await audit(req, 'registry.quota_set', project, { hard_limit_bytes: s.hardLimitBytes, soft_limit_bytes: s.softLimitBytes })
      return quotaJson(s)
    },
  )

  // ---- A tag's history (Wharf extension, Reporter+) ----
  app.get(
    '/projects/:id/registry/repositories/:repository_id/tags/:tag_name/history',
    {
      schema: {
        summary: 'Who or which CI job pointed a tag at which digest, and when, newest first (Wharf extension)',
        tags,
        params: Type.Object({ id: Type.String(), repository_id: Type.Integer(), tag_name: Type.String({ maxLength: 128 }) }),
        querystring: Type.Object(PageQuery),
      },
    },
    async (req, reply) => {
      const { project } = await leveled(req, req.params.id, 'reporter')
      const repo = await repositoryOf(project, req.params.repository_id)
      const page = pageOf(req.query)
      const { rows, total } = await manifests.tagHistory(repo.id, req.params.tag_name, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((r) => ({
        digest: r.digest,
        pushed_at: r.pushed_at,
        actor: r.actor,
        job_id: r.job_id,
        pipeline_id: r.pipeline_id,
        ref: r.ref,
        ref_type: r.ref_is_tag === null ? null : r.ref_is_tag === 1 ? 'tag' : 'branch',
      }))
    },
  )

  app.post(
    '/projects/:id/registry/repositories/:repository_id/tags/:tag_name/restore',
    {
      schema: {
        summary: 'Point a tag back at a digest the image still holds, e.g. one from its history (Wharf extension, Developer+)',
        tags,
        params: Type.Object({ id: Type.String(), repository_id: Type.Integer(), tag_name: Type.String({ maxLength: 128 }) }),
        body: Body({ digest: Type.Optional(Type.String({ pattern: '^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$', maxLength: 200 })) }),
      },
    },
    async (req, reply) => {
      const { project, level } = await leveled(req, req.params.id, 'developer')
      const repo = await repositoryOf(project, req.params.repository_id)
      const digest = req.body.digest
      if (digest === undefined) throw new WharfError('BAD_REQUEST', 'digest is missing', { field: 'digest' })
      await manifests.retag(repo, req.params.tag_name, digest, { actor: actor(req) }, async () => level)
      await audit(req, 'registry.tag_restored', project, { name: repo.name, tag: req.params.tag_name, digest })
      return reply.code(201).send({ name: req.params.tag_name, digest })
    },
  )

  // ---- Previews (Wharf extension, Maintainer+): what would go and why; nothing is deleted ----
  const policyFields = {
    enabled: Type.Optional(Type.Boolean()),
    cadence: Type.Optional(Type.String()),
    keep_n: Type.Optional(Nullable(Type.Integer())),
    older_than: Type.Optional(Nullable(Type.String())),
    name_regex: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    name_regex_keep: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
    remove_deleted_branch_tags: Type.Optional(Type.Boolean()),
    keep_protected_branch_latest: Type.Optional(Type.Boolean()),
  }
  app.post(
    '/projects/:id/registry/cleanup_policy/preview',
    {
      schema: {
        summary:
          "Preview the project's cleanup policy (the given attributes over the saved ones): the tags it would delete and keep, and why",
        tags,
        params: IdParam,
        body: Body(policyFields),
      },
    },
    async (req) => {
      const { project } = await leveled(req, req.params.id, 'maintainer')
      const { policy, repositories } = await manifests.policies.preview(project, req.body as PolicyAttributes)
      return {
        policy,
        repositories: repositories.map((r) => ({ id: r.id, path: r.path, delete: plannedJson(r.delete), keep: plannedJson(r.keep) })),
      }
    },
  )

  app.post(
    '/projects/:id/registry/repositories/:repository_id/tags/preview',
    {
      schema: {
        summary: 'Preview a bulk tag delete: the tags it would delete and keep, and why (nothing is deleted)',
        tags,
        params: Type.Object({ id: Type.String(), repository_id: Type.Integer() }),
        body: Body({
          name_regex_delete: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          name_regex_keep: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
          keep_n: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
          older_than: Type.Optional(Type.String({ maxLength: 32 })),
        }),
        'x-response': { 200: Type.Object({ delete: Planned, keep: Planned }) },
      },
    },
    async (req) => {
      const { project, level } = await leveled(req, req.params.id, 'maintainer')
      const repo = await repositoryOf(project, req.params.repository_id)
      const b = req.body
      if (b.name_regex_delete === undefined)
        throw new WharfError('BAD_REQUEST', 'name_regex_delete is missing', { field: 'name_regex_delete' })
      const plan = await manifests.previewTagsMatching(
        repo,
        { nameRegexDelete: b.name_regex_delete, nameRegexKeep: b.name_regex_keep, keepN: b.keep_n, olderThan: b.older_than },
        level,
      )
      return { delete: plannedJson(plan.delete), keep: plannedJson(plan.keep) }
    },
  )
}
