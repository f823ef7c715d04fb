// Probes (/-/liveness, /-/readiness, /-/health), the Prometheus scrape (/-/metrics) and the request
// instrumentation every route shares. Registered on the root by app.ts; nothing here needs a session.
import { createServer, type Server } from 'node:http'
import type { FastifyInstance } from 'fastify'
import { apiErrorHandler } from '../api/problem.ts'
import { constantTimeEqual } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import { labelRoute, routeOf } from '../core/request-log.ts'
import type { Metrics } from './metrics.ts'
import type { Probes } from './probes.ts'
import pkg from '../../package.json' with { type: 'json' }

export interface OpsOptions {
  metrics: Metrics
  probes: Probes
  /** Bearer token a scrape must send; without one, /-/metrics is not served on the public listener. */
  metricsToken?: string | undefined
}

const started = Date.now()

/**
 * Root hooks: the route template is bound to the request's logger at onRequest (wildcard routes
 * marked `dynamicRoute` bind their own once parsed), and every finished request is counted under
 * its template, method and status.
 */
export function instrumentRequests(app: FastifyInstance, metrics: Metrics): void {
  app.decorateRequest('routeLabel', null)
  app.addHook('onRequest', (req, _reply, done) => {
    const { url, config } = req.routeOptions
    if (config.routeTemplate !== undefined) labelRoute(req, config.routeTemplate)
    else if (url !== undefined && !config.dynamicRoute) labelRoute(req, url)
    done()
  })
  app.addHook('onResponse', (req, reply, done) => {
    const route = routeOf(req)
    metrics.httpRequests.inc({ route, method: req.method, status: String(reply.statusCode) })
    metrics.httpDuration.observe({ route, method: req.method }, reply.elapsedTime / 1000)
    done()
  })
}

/** The probe and metrics routes (a plugin: its error handler answers RFC 9457 problems, as the API does). */
export async function opsRoutes(app: FastifyInstance, opts: OpsOptions): Promise<void> {
  const { metrics, probes } = opts
  app.setErrorHandler(apiErrorHandler)
  const quiet = { config: { quietLog: true } }

  // The process answers: nothing else is checked, so a slow database never gets the process restarted.
  app.get('/-/liveness', quiet, async (_req, reply) => {
    reply.header('Cache-Control', 'no-store')
    return { status: 'ok' }
  })

  // Take traffic only while the database and storage answer, and not once shutdown has begun.
  app.get('/-/readiness', quiet, async (_req, reply) => {
    const r = await probes.readiness()
    return reply
      .code(r.status === 'ok' ? 200 : 503)
      .header('Cache-Control', 'no-store')
      .send(r)
  })

  // GitLab's /-/health: the application is up; with its version and uptime for a glance.
  app.get('/-/health', quiet, async (_req, reply) => {
    reply.header('Cache-Control', 'no-store')
    return {
      status: probes.isDraining ? 'shutting_down' : 'ok',
      version: pkg.version,
      uptime_seconds: Math.round((Date.now() - started) / 1000),
    }
  })

  app.get('/-/metrics', quiet, async (req, reply) => {
    if (opts.metricsToken === undefined)
      throw new WharfError(
        'NOT_FOUND',
        'metrics are not served on this listener: set metrics.token to scrape them here, or metrics.listen for a separate listener',
        {},
      )
    if (!tokenMatches(req.headers.authorization, opts.metricsToken))
      throw new WharfError('UNAUTHORIZED', 'metrics need the bearer token set as metrics.token', {})
    const { body, contentType } = await metrics.render()
    return reply.type(contentType).header('Cache-Control', 'no-store').send(body)
  })
}

/** `Authorization: Bearer <token>`, compared in constant time. */
function tokenMatches(header: string | undefined, token: string): boolean {
  const sent = header && /^bearer\s+/i.test(header) ? header.replace(/^bearer\s+/i, '').trim() : ''
  return constantTimeEqual(sent, token)
}

/**
 * The separate metrics listener (`metrics.listen`): GET /metrics (and /-/metrics) only, meant for a
 * private interface; the token is still required when one is set.
 */
export function metricsServer(metrics: Metrics, token: string | undefined): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '').split('?', 1)[0]
    const send = (status: number, body: string, type = 'text/plain; charset=utf-8') => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }).end(body)
    }
    if (req.method !== 'GET' || (path !== '/metrics' && path !== '/-/metrics')) return send(404, 'not found: GET /metrics\n')
    if (token !== undefined && !tokenMatches(req.headers.authorization, token)) {
      res.setHeader('www-authenticate', 'Bearer realm="metrics"')
      return send(401, 'unauthorized: send the bearer token set as metrics.token\n')
    }
    metrics.render().then(
      ({ body, contentType }) => send(200, body, contentType),
      () => send(500, 'cannot collect metrics\n'),
    )
  })
}
