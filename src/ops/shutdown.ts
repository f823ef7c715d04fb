import type { FastifyBaseLogger, FastifyInstance } from 'fastify'

/** After the connections are gone, handlers whose socket was cut get this long to finish their cleanup (an upload's bookkeeping, a push's events) before the database closes. */
const SETTLE_MS = 5000
/** While draining, connections that finished their request are closed this often (keep-alive would hold them). */
const IDLE_SWEEP_MS = 200

/**
 * Route handlers running now, counted by wrapping every handler (install before routes are added).
 * A handler that returns a promise counts until it settles; a plain one only while it runs.
 */
export class InFlight {
  private n = 0
  private waiters: Array<() => void> = []

  get count(): number {
    return this.n
  }

  /** Wraps each route's handler; add to the root before any route is registered. */
  install(app: FastifyInstance): void {
    app.addHook('onRoute', (route) => {
      const handler = route.handler
      const track = (p: PromiseLike<unknown>) => {
        this.n++
        const done = () => {
          if (--this.n === 0) for (const w of this.waiters.splice(0)) w()
        }
        p.then(done, done)
        return p
      }
      route.handler = function (this: FastifyInstance, req, reply) {
        const r = handler.call(this, req, reply) as unknown
        return r && typeof (r as PromiseLike<unknown>).then === 'function' ? track(r as PromiseLike<unknown>) : r
      } as typeof handler
    })
  }

  /** Resolves true once no handler runs, false after `ms`. */
  idle(ms: number): Promise<boolean> {
    if (this.n === 0) return Promise.resolve(true)
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms)
      this.waiters.push(() => {
        clearTimeout(t)
        resolve(true)
      })
    })
  }
}

/**
 * Makes `app.close()` graceful, with a deadline: at preClose readiness turns 503 (`probes.drain()`);
 * Fastify stops accepting and answers runner long polls (their own preClose); in-flight requests
 * get `graceMs` to finish, connections that finished their request are closed as they go idle, and
 * those still open at the deadline are cut. An upload cut this way keeps what it had committed and
 * resumes from the offset its session reports. Once the server is closed, handlers whose socket was
 * cut get SETTLE_MS to finish before close() resolves (and the caller closes the database).
 * Install before any route is added: handlers are counted by wrapping them.
 */
export function installGracefulClose(
  app: FastifyInstance,
  opts: { graceMs: number; probes: { drain(): void }; log: FastifyBaseLogger },
): InFlight {
  const { log } = opts
  const inFlight = new InFlight()
  inFlight.install(app)
  let sweep: NodeJS.Timeout | undefined
  let deadline: NodeJS.Timeout | undefined
  app.addHook('preClose', async () => {
    opts.probes.drain()
    log.info({ inFlight: inFlight.count, graceSeconds: opts.graceMs / 1000 }, 'shutting down: finishing in-flight requests')
    sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS)
    deadline = setTimeout(() => {
      log.warn({ inFlight: inFlight.count }, 'shutdown grace period over: closing open connections')
      app.server.closeAllConnections()
    }, opts.graceMs)
  })
  app.addHook('onClose', async () => {
    clearInterval(sweep)
    clearTimeout(deadline)
    if (!(await inFlight.idle(SETTLE_MS))) log.warn({ inFlight: inFlight.count }, 'handlers still running at shutdown')
  })
  return inFlight
}
