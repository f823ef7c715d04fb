import type { FastifyInstance } from 'fastify'
import pkg from '../../package.json' with { type: 'json' }
import type { ApiTokens } from '../auth/api-tokens.ts'
import type { AccessTokens } from '../auth/access-tokens.ts'
import type { Credentials } from '../auth/credentials.ts'
import { userRoutes } from '../auth/api-routes.ts'
import { oauthRoutes } from '../auth/oauth-routes.ts'
import { projectRoutes } from '../projects/routes.ts'
import type { Projects } from '../projects/service.ts'
import type { Manifests } from '../registry/manifests.ts'
import { registryApiRoutes } from '../registry/api-routes.ts'
import type { ApiDeps } from './context.ts'
import { OpenApiCollector } from './openapi.ts'
import { problem, sendProblem } from './problem.ts'
import { apiScope } from './scope.ts'

export type { ApiDeps } from './context.ts'
export { OpenApiCollector } from './openapi.ts'

export const OPENAPI_INFO = { title: 'Wharf REST API', version: 'v4' }

export interface ApiOptions {
  projects: Projects
  accessTokens: AccessTokens
  credentials: Credentials
  manifests: Manifests
  publicUrl: string
  /** Shared with the other /api/v4 plugins (git, CI), so every one resolves tokens the same way. */
  apiTokens: ApiTokens
  /**
   * Collector hooked on the root instance (see buildApp) so /api/v4 routes of other plugins are
   * documented too; without it, only this plugin's routes are.
   */
  openapi?: OpenApiCollector
}

/** The REST API (`/api/v4`, GitLab-compatible where they overlap) and the OAuth token endpoint. */
export async function apiRoutes(app: FastifyInstance, opts: ApiOptions): Promise<void> {
  const publicUrl = opts.publicUrl.replace(/\/$/, '')
  const deps: ApiDeps = {
    projects: opts.projects,
    accessTokens: opts.accessTokens,
    credentials: opts.credentials,
    manifests: opts.manifests,
    apiTokens: opts.apiTokens,
    publicUrl,
    registryHost: new URL(publicUrl).host,
  }
  let openapi = opts.openapi
  if (!openapi) {
    openapi = new OpenApiCollector(OPENAPI_INFO, publicUrl)
    app.addHook('onRoute', openapi.onRoute)
  }
  const doc = openapi

  await app.register(oauthRoutes, { apiTokens: deps.apiTokens })

  await app.register(
    async (api) => {
      apiScope(api, deps.apiTokens)
      api.setNotFoundHandler((req, reply) => sendProblem(reply, problem(404, `no API route ${req.method} ${req.url.split('?')[0]}`, 'ROUTE_UNKNOWN')))
      await api.register(projectRoutes, deps)
      await api.register(userRoutes, deps)
      await api.register(registryApiRoutes, deps)

      // GitLab's instance version endpoints (any token with read access): Wharf's own version;
      // clients show it, and Wharf has no GitLab revision or agent server (KAS) to announce.
      const version = { version: pkg.version, revision: 'wharf' }
      api.get('/version', { schema: { summary: "The server's version", tags: ['meta'] } }, async () => version)
      api.get('/metadata', { schema: { summary: "The server's version and features (GitLab's metadata)", tags: ['meta'] } }, async () => ({
        ...version,
        kas: { enabled: false, externalUrl: null, externalK8sProxyUrl: null, version: null },
        enterprise: false,
      }))

      api.get(
        '/openapi.json',
        { schema: { summary: 'This OpenAPI document', tags: ['meta'] }, config: { public: true } },
        async () => doc.document(),
      )
    },
    { prefix: '/api/v4' },
  )
}
