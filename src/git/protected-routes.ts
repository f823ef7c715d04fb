import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { ProtectedRef } from '../metadata/schema.ts'
import type { Projects } from '../projects/service.ts'
import { levelDescription, type RefKind } from './protected-refs.ts'
import type { GitHosting } from './service.ts'

// GitLab's protected branches and tags API (Maintainer+), registered inside gitApiRoutes:
//   GET|POST /projects/:id/protected_branches   GET|DELETE /projects/:id/protected_branches/:name
//   GET|POST /projects/:id/protected_tags       GET|DELETE /projects/:id/protected_tags/:name
// The rules are enforced by the pre-receive hook (git push) and RepositoryEditor (the API).

export interface ProtectedRouteOptions {
  git: GitHosting
  projects: Projects
  publicUrl: string
}

const Level = Type.Integer({ description: '0 (no one), 30 (developers + maintainers), 40 (maintainers) or 60 (admins)' })
const BranchFields = {
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
  push_access_level: Type.Optional(Level),
  merge_access_level: Type.Optional(Level),
  unprotect_access_level: Type.Optional(Level),
  allow_force_push: Type.Optional(Type.Boolean()),
  code_owner_approval_required: Type.Optional(Type.Boolean()),
}
const TagFields = { name: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })), create_access_level: Type.Optional(Level) }
const NameParams = Type.Object({ id: Type.String(), name: Type.String({ minLength: 1 }) })

export async function protectedRefRoutes(app: TypedApp, opts: ProtectedRouteOptions): Promise<void> {
  const { git, projects } = opts
  const publicUrl = opts.publicUrl.replace(/\/$/, '')
  const maintained = async (req: FastifyRequest) =>
    (await projects.projectFor(req.principal, (req.params as { id: string }).id, 'maintainer')).project

  const access = (r: ProtectedRef, level: number) => [
    {
      id: r.id,
      access_level: level,
      access_level_description: levelDescription(level),
      deploy_key_id: null,
      user_id: null,
      group_id: null,
    },
  ]
  const json = (r: ProtectedRef) =>
    r.kind === 'branch'
      ? {
          id: r.id,
          name: r.name,
          push_access_levels: access(r, r.push_level),
          merge_access_levels: access(r, r.merge_level),
          unprotect_access_levels: [],
          allow_force_push: r.allow_force_push === 1,
          code_owner_approval_required: false,
        }
      : { name: r.name, create_access_levels: access(r, r.push_level) }

  for (const kind of ['branch', 'tag'] as const satisfies readonly RefKind[]) {
    const base = `/projects/:id/protected_${kind === 'branch' ? 'branches' : 'tags'}`
    const tags = ['repository']
    app.get(
      base,
      {
        schema: {
          summary: `List protected ${kind === 'branch' ? 'branches' : 'tags'}`,
          tags,
          params: IdParam,
          querystring: Type.Object(PageQuery),
        },
      },
      async (req, reply) => {
        const project = await maintained(req)
        const page = pageOf(req.query as { page?: number; per_page?: number })
        const { rows, total } = await git.protectedRefs.page(project.id, kind, page)
        setPageHeaders(req, reply, publicUrl, page, total)
        return rows.map(json)
      },
    )
    app.get(`${base}/:name`, { schema: { summary: `A protected ${kind} (or pattern)`, tags, params: NameParams } }, async (req) => {
      const project = await maintained(req)
      const r = await git.protectedRefs.get(project.id, kind, req.params.name)
      if (!r) throw new WharfError('NOT_FOUND', `Protected ${kind === 'branch' ? 'Branch' : 'Tag'} Not Found`, {})
      return json(r)
    })
    // GitLab's documentation passes these in the query string; clients send a body. Both are read.
    const fields = kind === 'branch' ? BranchFields : TagFields
    const body = Body(fields)
    app.post(
      base,
      { schema: { summary: `Protect a ${kind} (or a \`*\` pattern)`, tags, params: IdParam, querystring: Type.Object(fields), body } },
      async (req, reply) => {
        const project = await maintained(req)
        const b = { ...(req.query as Record<string, unknown>), ...(req.body as Record<string, unknown>) } as Static<typeof body> &
          Partial<Static<ReturnType<typeof Body<typeof BranchFields>>>> & { create_access_level?: number }
        if (!b.name) throw new WharfError('BAD_REQUEST', 'name is missing', {})
        const r = await git.protectedRefs.protect(project.id, kind, {
          name: b.name,
          pushLevel: (kind === 'branch' ? b.push_access_level : b.create_access_level) ?? 40,
          mergeLevel: b.merge_access_level ?? 40,
          allowForcePush: b.allow_force_push ?? false,
        })
        return reply.code(201).send(json(r))
      },
    )
    app.delete(`${base}/:name`, { schema: { summary: `Unprotect a ${kind}`, tags, params: NameParams } }, async (req, reply) => {
      const project = await maintained(req)
      await git.protectedRefs.unprotect(project.id, kind, req.params.name)
      return reply.code(204).send()
    })
  }
}
