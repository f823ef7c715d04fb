import { Type } from '@sinclair/typebox'
import { Body } from '../api/schemas.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { MarkdownRenderer } from './markdown.ts'

// GitLab's `POST /markdown`: Markdown text to safe HTML (see markdown.ts), which the UI shows for a
// project's README. `gfm` and `project` are accepted as GitLab's clients send them; the rendering is
// the same either way (relative links are not rewritten to the project).

const MarkdownBody = Body({
  text: Type.String({ maxLength: 1 << 20 }),
  gfm: Type.Optional(Type.Boolean()),
  project: Type.Optional(Type.String({ maxLength: 255 })),
})

export async function markdownRoutes(app: TypedApp): Promise<void> {
  const renderer = new MarkdownRenderer()
  app.addHook('onClose', () => renderer.close())
  app.post(
    '/markdown',
    { schema: { summary: 'Render Markdown as HTML (raw HTML in it is escaped)', tags: ['misc'], body: MarkdownBody } },
    async (req, reply) => reply.code(201).send({ html: await renderer.render(req.body.text) }),
  )
}
