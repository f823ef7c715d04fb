// The /api/v4 plumbing every domain's route plugin shares. It imports no domain: the routes live
// with their domain and src/app.ts registers them all under the one scope `apiScope` sets up.
import type { FastifyInstance } from 'fastify'
import type { OpenApiCollector } from './openapi.ts'
import { problem, sendProblem } from './problem.ts'

export type { ApiUrls } from './context.ts'
export { OpenApiCollector } from './openapi.ts'
export { apiScope } from './scope.ts'

export const OPENAPI_INFO = { title: 'Wharf REST API', version: 'v4' }

/** The scope's own routes: unknown paths as problem+json 404s, and `GET /openapi.json` (the document `doc` collects). */
export function apiIndexRoutes(api: FastifyInstance, doc: OpenApiCollector): void {
  api.setNotFoundHandler((req, reply) => sendProblem(reply, problem(404, `no API route ${req.method} ${req.url.split('?')[0]}`, 'ROUTE_UNKNOWN')))
  api.get('/openapi.json', { schema: { summary: 'This OpenAPI document', tags: ['meta'] }, config: { public: true } }, async () => doc.document())
}
