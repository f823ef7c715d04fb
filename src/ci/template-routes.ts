import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { ciTemplate, listCiTemplates } from './ci-templates.ts'

// GitLab's `.gitlab-ci.yml` template API: the built-in set (./templates), which the web UI's CI
// editor offers and `include: template:` includes. Open to anyone, as on GitLab: the templates are
// part of the product, not of any project.

const ListQuery = Type.Object(PageQuery)

export async function ciTemplateRoutes(app: TypedApp, opts: { publicUrl: string }): Promise<void> {
  const list = (req: FastifyRequest, reply: FastifyReply, query: { page?: number; per_page?: number }) => {
    const page = pageOf(query)
    const all = listCiTemplates()
    setPageHeaders(req, reply, opts.publicUrl, page, all.length)
    return all.slice(page.offset, page.offset + page.limit).map((t) => ({ key: t.key, name: t.name }))
  }
  app.get(
    '/templates/gitlab_ci_ymls',
    {
      schema: { summary: 'The built-in .gitlab-ci.yml templates (key, name)', tags: ['ci'], querystring: ListQuery },
      config: { public: true },
    },
    async (req, reply) => list(req, reply, req.query),
  )
  app.get(
    '/templates/gitlab_ci_ymls/:key',
    {
      schema: {
        summary: 'One built-in .gitlab-ci.yml template (name, content)',
        tags: ['ci'],
        params: Type.Object({ key: Type.String({ maxLength: 255 }) }),
        querystring: ListQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      // gitbeaker lists with a trailing slash (`templates/gitlab_ci_ymls/`), which GitLab answers as the list.
      if (req.params.key === '') return list(req, reply, req.query)
      const t = ciTemplate(req.params.key)
      if (!t) throw new WharfError('NOT_FOUND', 'Template Not Found', { key: req.params.key })
      return { name: t.name, content: t.content }
    },
  )
}
