import { Type } from '@sinclair/typebox'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { ciTemplate, listCiTemplates } from './ci-templates.ts'

// GitLab's `.gitlab-ci.yml` template API: the built-in set (./templates), which the web UI's CI
// editor offers and `include: template:` includes. Open to anyone, as on GitLab: the templates are
// part of the product, not of any project.

export async function ciTemplateRoutes(app: TypedApp, opts: { publicUrl: string }): Promise<void> {
  app.get(
    '/templates/gitlab_ci_ymls',
    {
      schema: { summary: 'The built-in .gitlab-ci.yml templates (key, name)', tags: ['ci'], querystring: Type.Object(PageQuery) },
      config: { public: true },
    },
    async (req, reply) => {
      const page = pageOf(req.query)
      const all = listCiTemplates()
      setPageHeaders(req, reply, opts.publicUrl, page, all.length)
      return all.slice(page.offset, page.offset + page.limit).map((t) => ({ key: t.key, name: t.name }))
    },
  )
  app.get(
    '/templates/gitlab_ci_ymls/:key',
    {
      schema: {
        summary: 'One built-in .gitlab-ci.yml template (name, content)',
        tags: ['ci'],
        params: Type.Object({ key: Type.String({ minLength: 1, maxLength: 255 }) }),
      },
      config: { public: true },
    },
    async (req) => {
      const t = ciTemplate(req.params.key)
      if (!t) throw new WharfError('NOT_FOUND', 'Template Not Found', { key: req.params.key })
      return { name: t.name, content: t.content }
    },
  )
}
