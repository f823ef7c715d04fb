// The /api/v4 plumbing every domain's route plugin shares. It imports no domain: the routes live
// with their domain and src/app.ts registers them all under the one scope `apiScope` sets up.
import type { FastifyInstance } from 'fastify'
import pkg from '../../package.json' with { type: 'json' }
import type { OpenApiCollector } from './openapi.ts'
import { problem, sendProblem } from './problem.ts'

export type { ApiUrls } from './context.ts'
export { OpenApiCollector } from './openapi.ts'
export { problemType } from './problem.ts'
export { apiScope } from './scope.ts'

export const OPENAPI_INFO = { title: 'Wharf REST API', version: 'v4' }

/** The scope's own routes: unknown paths as problem+json 404s, and `GET /openapi.json` (the document `doc` collects). */
export function apiIndexRoutes(api: FastifyInstance, doc: OpenApiCollector): void {
  api.setNotFoundHandler((req, reply) =>
    sendProblem(reply, problem(404, `no API route ${req.method} ${req.url.split('?')[0]}`, 'ROUTE_UNKNOWN')),
  )
  api.get('/openapi.json', { schema: { summary: 'This OpenAPI document', tags: ['meta'] }, config: { public: true } }, async () =>
    doc.document(),
  )
  // GitLab's instance version endpoints (any token with read access): Wharf's own version;
  // clients show it, and Wharf has no GitLab revision or agent server (KAS) to announce.
  const version = { version: pkg.version, revision: 'wharf' }
  api.get('/version', { schema: { summary: "The server's version", tags: ['meta'] } }, async () => version)
  api.get('/metadata', { schema: { summary: "The server's version and features (GitLab's metadata)", tags: ['meta'] } }, async () => ({
    ...version,
    kas: { enabled: false, externalUrl: null, externalK8sProxyUrl: null, version: null },
    enterprise: false,
  }))
}
