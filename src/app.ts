import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { WharfError } from './core/errors.ts'
import { ociErrorHandler, registryRoutes, type Registry } from './registry/index.ts'
import type { Kysely } from 'kysely'
import type { AccessTokens } from './auth/access-tokens.ts'
import { apiAuthHook } from './auth/api-auth.ts'
import type { ApiTokens } from './auth/api-tokens.ts'
import { oauthRoutes } from './auth/oauth-routes.ts'
import type { DeviceLogins } from './auth/device-logins.ts'
import { deviceRoutes } from './auth/device-routes.ts'
import { oidcRoutes } from './auth/oidc-routes.ts'
import type { RegistryAuth } from './auth/registry-auth.ts'
import { tokenRoutes } from './auth/token-routes.ts'
import { apiIndexRoutes, apiScope, OPENAPI_INFO, OpenApiCollector, problemType } from './api/index.ts'
import type { Database } from './metadata/schema.ts'
import { projectRoutes, type Groups, type Members, type ProjectAccess, type Projects } from './projects/index.ts'
import { registryApiRoutes, tagProtectionRoutes } from './registry/api-routes.ts'
import { registryLifecycleRoutes } from './registry/lifecycle-routes.ts'
import { userRoutes, type Users } from './users/index.ts'
import { hookRoutes } from './hooks/routes.ts'
import type { Webhooks } from './hooks/service.ts'
import { gitApiRoutes, gitRoutes, type GitHosting } from './git/index.ts'
import {
  ciRoutes,
  ciTemplateRoutes,
  environmentRoutes,
  ONLINE_SECONDS,
  releaseRoutes,
  runnerApiRoutes,
  runnerProtocolRoutes,
  scheduleRoutes,
  type Ci,
} from './ci/index.ts'
import { adminRoutes } from './admin/index.ts'
import { installGracefulClose, instrumentRequests, opsRoutes, type Metrics, type Probes } from './ops/index.ts'
import { markdownRoutes, Sessions, ssoWebRoutes, webRoutes } from './web/index.ts'
import type { Sso } from './sso/index.ts'
import { limitConnections, serverOptions, type ConnectionLimits } from './connections.ts'
import { DEFAULTS } from './config/schema.ts'
import { isClientDisconnect } from './core/disconnect.ts'
import { groupPullThrough, proxyApiRoutes, type DependencyProxy } from './proxy/index.ts'

export interface AppDeps {
  logger: FastifyBaseLogger
  /** For the plugins that run their own queries (web sessions, the admin area). */
  db: Kysely<Database>
  registry: Registry
  auth: RegistryAuth
  users: Users
  projects: Projects
  groups: Groups
  members: Members
  projectAccess: ProjectAccess
  accessTokens: AccessTokens
  apiTokens: ApiTokens
  /** `wharf login`: /oauth/authorize_device, the device code grant and /api/v4/user/device_logins. */
  deviceLogins: DeviceLogins
  /** The pull-through cache: GitLab's group path on /v2 and its /api/v4 routes. */
  dependencyProxy?: DependencyProxy
  publicUrl: string
  /** Connection limits left out take their configured defaults (tests pass only what they exercise). */
  limits: { manifestBytes: number } & Partial<ConnectionLimits>
  /** Git hosting: smart HTTP at `/<namespace>/<project>.git/…` and the repository API. */
  git?: GitHosting
  ci?: Ci
  /** Project and group webhooks (/projects/:id/hooks, /groups/:id/hooks). */
  hooks?: Webhooks
  /** Runner API tuning: the /jobs/request long poll and the heartbeat sweep period (tests shorten or disable them). */
  runnerProtocol?: { longPollMs?: number; sweepIntervalMs?: number }
  /** Prometheus metrics and the readiness checks (src/ops); `metricsToken` serves /-/metrics here. */
  metrics: Metrics
  probes: Probes
  metricsToken?: string | undefined
  /** With it, close() drains: in-flight requests get this long before their connections are cut (the server's; tests leave it out). */
  shutdownGraceMs?: number
  /** The effective configuration with secrets masked, for administrators (`publicSettings`). */
  settings?: Record<string, unknown>
  /** Single sign-on (OpenID Connect): the sign-in buttons, the callback, the admin status. */
  sso?: Sso
  /** Whether local passwords sign in (default: they do). */
  passwords?: { signIn: boolean; breakGlass: boolean }
  /** PEM certificate (chain) and key: serve HTTPS (HTTP/1.1) instead of HTTP. */
  https?: { cert: Buffer; key: Buffer }
}

/** Builds the HTTP application without listening or reading the environment, so tests can inject requests. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const limits: ConnectionLimits = { ...DEFAULTS.limits, ...deps.limits }
  const { keepAliveTimeout, http } = serverOptions(limits)
  const app = Fastify({
    loggerInstance: deps.logger,
    keepAliveTimeout,
    // Typed as the http flavour either way: routes never touch the raw server.
    ...(deps.https ? ({ https: { ...deps.https, ...http } } as object) : { http }),
    logController: new OneLineLog(),
    exposeHeadRoutes: false,
    bodyLimit: 1 << 20,
    // Fastify's ajv silently drops properties a schema forbids; keep them so they fail validation
    // (a 400 naming the attribute, see api/problem.ts) instead of being ignored.
    ajv: { customOptions: { removeAdditional: false } },
    // Uploads of multi-GiB layers may legitimately take long; a stalled body is aborted by limitConnections.
    requestTimeout: 0,
    // Errors raised before routing (e.g. malformed percent-encoding) still get the protocol's error body.
    frameworkErrors: (err, req, res) => {
      const reply = res as FastifyReply
      if (req.url.startsWith('/v2')) return ociErrorHandler(new WharfError('BAD_REQUEST', err.message, {}), req, reply)
      void reply
        .code(400)
        .type(problemType(req.headers.accept))
        .send({ type: 'about:blank', title: 'Bad Request', status: 400, detail: err.message, message: err.message })
    },
  })
  limitConnections(app, limits, deps.logger)
  // Hooked first, on the root: the OpenAPI document covers every /api/v4 route, whichever plugin adds it.
  const openapi = new OpenApiCollector(OPENAPI_INFO, deps.publicUrl.replace(/\/$/, ''))
  app.addHook('onRoute', openapi.onRoute)
  // Before any route: shutdown counts handlers by wrapping them, and every request is counted.
  if (deps.shutdownGraceMs !== undefined)
    installGracefulClose(app, { graceMs: deps.shutdownGraceMs, probes: deps.probes, log: deps.logger })
  instrumentRequests(app, deps.metrics)
  await app.register(opsRoutes, { metrics: deps.metrics, probes: deps.probes, metricsToken: deps.metricsToken })
  // The web UI's session cookie, resolved by every /api/v4 auth hook (decorated before they register).
  const sessions = new Sessions(deps.db, deps.auth.credentials)
  app.decorate('wharfSessions', sessions)
  await app.register(webRoutes, { sessions, publicUrl: deps.publicUrl })
  const passwords = deps.passwords ?? { signIn: true, breakGlass: true }
  if (deps.sso) await app.register(ssoWebRoutes, { sso: deps.sso, sessions, publicUrl: deps.publicUrl.replace(/\/$/, ''), passwords })
  await app.register(registryRoutes, {
    prefix: '/v2',
    ...deps.registry,
    manifestBytes: deps.limits.manifestBytes,
    auth: deps.auth,
    realm: `${deps.publicUrl}/jwt/auth`,
    pullThrough: deps.dependencyProxy && groupPullThrough(deps.dependencyProxy),
  })
  await app.register(tokenRoutes, { auth: deps.auth })
  await app.register(oauthRoutes, { apiTokens: deps.apiTokens, deviceLogins: deps.deviceLogins })
  await app.register(oidcRoutes, { tokens: deps.auth.tokens })
  const credentials = deps.auth.credentials
  const publicUrl = deps.publicUrl.replace(/\/$/, '')
  const urls = { publicUrl, registryHost: new URL(publicUrl).host }
  // Every domain's /api/v4 routes, in one scope: one auth hook, error format, body parsing and 404.
  await app.register(
    async (api) => {
      apiScope(api, apiAuthHook(deps.apiTokens))
      const { users, projects, groups, members, projectAccess, accessTokens } = deps
      await api.register(projectRoutes, {
        ...urls,
        users,
        projects,
        groups,
        members,
        projectAccess,
        accessTokens,
        credentials,
        policies: deps.registry.manifests.policies,
        registryUsage: deps.registry.manifests,
      })
      await api.register(userRoutes, { users, accessTokens, apiTokens: deps.apiTokens, credentials, publicUrl })
      await api.register(deviceRoutes, { deviceLogins: deps.deviceLogins, publicUrl })
      await api.register(registryApiRoutes, { ...urls, projects, groups, manifests: deps.registry.manifests, credentials })
      await api.register(tagProtectionRoutes, { ...urls, projects, groups, manifests: deps.registry.manifests, credentials })
      await api.register(registryLifecycleRoutes, { ...urls, projects, groups, manifests: deps.registry.manifests, credentials })
      apiIndexRoutes(api, openapi)
      if (deps.hooks) await api.register(hookRoutes, { hooks: deps.hooks, projects, groups, publicUrl: deps.publicUrl })
      await api.register(adminRoutes, {
        db: deps.db,
        tokens: deps.auth.tokens,
        credentials,
        publicUrl: deps.publicUrl,
        runnerOnlineSeconds: ONLINE_SECONDS,
        settings: deps.settings,
        manifests: deps.registry.manifests,
        sso: deps.sso,
        passwords,
      })
      if (deps.dependencyProxy) await api.register(proxyApiRoutes, { proxy: deps.dependencyProxy, groups })
      await api.register(ciTemplateRoutes, { publicUrl })
      await api.register(markdownRoutes)
      if (deps.git) {
        await api.register(gitApiRoutes, { git: deps.git, projects, users, publicUrl: deps.publicUrl })
        if (deps.ci) {
          const ciDeps = { ...deps.ci, ...urls, projects, groups, publicUrl: deps.publicUrl }
          await api.register(ciRoutes, { ...ciDeps, repos: deps.git.repos })
          await api.register(runnerApiRoutes, ciDeps)
          await api.register(scheduleRoutes, ciDeps)
          await api.register(environmentRoutes, ciDeps)
          await api.register(releaseRoutes, ciDeps)
        }
      }
    },
    { prefix: '/api/v4' },
  )
  // Git over smart HTTP (`/<namespace>/<project>.git/…`).
  if (deps.git) await app.register(gitRoutes, { git: deps.git })
  // What runners call (GitLab's runner API): runner and job tokens, no user tokens, so outside the user API's auth hook.
  if (deps.git && deps.ci) await app.register(runnerProtocolRoutes, { prefix: '/api/v4', ...deps.ci, ...(deps.runnerProtocol ?? {}) })
  return app
}

/** One compact line per completed request instead of Fastify's two full ones keeps logging off the hot path. */
class OneLineLog extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const line = { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }
    // A client going away mid-request is routine (a cancelled push, an idle body cut off), not a server fault.
    if (error && isClientDisconnect(error)) req.log.info({ ...line, err: error.message }, 'client disconnected')
    else if (error) req.log.error({ ...line, err: error }, 'request failed')
    else if (req.routeOptions.config.quietLog) req.log.debug(line, 'request')
    else req.log.info(line, 'request')
  }
}
