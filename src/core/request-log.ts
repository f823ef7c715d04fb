// What every log line of a request carries besides Fastify's request id: the route template
// (`route`) and, once authenticated, who is acting (`actor`). Both are bound to the request's
// logger as soon as they are known, so error lines logged anywhere below carry them.
import type { FastifyRequest } from 'fastify'

declare module 'fastify' {
  interface FastifyRequest {
    /** The route template for metrics and logs, when set by the handler (see `dynamicRoute`). */
    routeLabel: string | null
  }
  interface FastifyContextConfig {
    /**
     * The route is a wildcard that parses its own path (/v2/*, git smart HTTP): its handler names the
     * template with labelRoute() once parsed, instead of the wildcard being bound at onRequest.
     */
    dynamicRoute?: boolean
    /** The template to count and log this route under when its URL pattern is a bare wildcard (git's `/*`). */
    routeTemplate?: string
    /** Probes and metrics scrapes: the request line is logged at debug, not info. */
    quietLog?: boolean
  }
}

/** Who a request acts as, for logs: never a secret, only the kind and id/username. */
export interface Actor {
  kind: string
  id?: number
  username?: string
}

/** Label for a request that matched no route: one series for all of them, whatever the URL. */
export const UNMATCHED_ROUTE = 'unmatched'

/** Names the request's route template (e.g. `/v2/:name/manifests/:reference`) and binds it to its logger. */
export function labelRoute(req: FastifyRequest, template: string): void {
  req.routeLabel = template
  bind(req, { route: template })
}

/** Binds the acting principal to the request's logger (once per request: bindings add, never replace). */
export function bindActor(req: FastifyRequest, actor: Actor): void {
  bind(req, { actor })
}

/** The template a finished request is counted under. */
export function routeOf(req: FastifyRequest): string {
  return req.routeLabel ?? req.routeOptions.url ?? UNMATCHED_ROUTE
}

function bind(req: FastifyRequest, bindings: Record<string, unknown>): void {
  // pino's setBindings changes this request's child logger in place (reply.log is the same object).
  const log = req.log as { setBindings?: (b: Record<string, unknown>) => void }
  log.setBindings?.(bindings)
}
