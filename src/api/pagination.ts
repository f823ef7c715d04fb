import type { FastifyReply, FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'

/** GitLab's defaults: 20 per page, at most 100. */
export const PAGE = { defaultPerPage: 20, maxPerPage: 100 } as const

export const PageQuery = {
  page: Type.Optional(Type.Integer({ minimum: 1, default: 1, description: 'page number (1-based)' })),
  per_page: Type.Optional(
    Type.Integer({ minimum: 1, default: PAGE.defaultPerPage, description: `items per page (at most ${PAGE.maxPerPage})` }),
  ),
}

export interface PageRequest {
  page: number
  perPage: number
  limit: number
  offset: number
}

export function pageOf(query: { page?: number | undefined; per_page?: number | undefined }): PageRequest {
  const page = query.page ?? 1
  const perPage = Math.min(query.per_page ?? PAGE.defaultPerPage, PAGE.maxPerPage)
  return { page, perPage, limit: perPage, offset: (page - 1) * perPage }
}

/** X-Total, X-Total-Pages, X-Page, X-Per-Page, X-Next-Page, X-Prev-Page and Link, as GitLab sends them. */
export function setPageHeaders(req: FastifyRequest, reply: FastifyReply, publicUrl: string, p: PageRequest, total: number): void {
  const totalPages = Math.max(1, Math.ceil(total / p.perPage))
  const next = p.page < totalPages ? p.page + 1 : undefined
  const prev = p.page > 1 ? Math.min(p.page - 1, totalPages) : undefined
  reply.header('X-Total', String(total))
  reply.header('X-Total-Pages', String(totalPages))
  reply.header('X-Page', String(p.page))
  reply.header('X-Per-Page', String(p.perPage))
  reply.header('X-Next-Page', next ? String(next) : '')
  reply.header('X-Prev-Page', prev ? String(prev) : '')
  const url = new URL(req.url, `${publicUrl}/`)
  const link = (page: number, rel: string) => {
    url.searchParams.set('page', String(page))
    url.searchParams.set('per_page', String(p.perPage))
    return `<${url.toString()}>; rel="${rel}"`
  }
  const links = [...(prev ? [link(prev, 'prev')] : []), ...(next ? [link(next, 'next')] : []), link(1, 'first'), link(totalPages, 'last')]
  reply.header('Link', links.join(', '))
}
