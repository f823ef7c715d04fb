import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { registryRoutes, type Registry } from './registry/index.ts'

export interface AppDeps {
  logger: FastifyBaseLogger
  registry: Registry
  limits: { manifestBytes: number }
}

/** Builds the HTTP application without listening or reading the environment, so tests can inject requests. */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: deps.logger,
    logController: new OneLineLog(),
    exposeHeadRoutes: false,
    bodyLimit: 1 << 20,
    // Uploads of multi-GiB layers may legitimately take long; idle sockets still time out.
    requestTimeout: 0,
  })
  await app.register(registryRoutes, { ...deps.registry, manifestBytes: deps.limits.manifestBytes })
  return app
}

/** One compact line per completed request instead of Fastify's two full ones keeps logging off the hot path. */
class OneLineLog extends LogController {
  override incomingRequest(): void {}
  override requestCompleted(error: Error | null | undefined, req: FastifyRequest, reply: FastifyReply): void {
    const line = { method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }
    if (error) req.log.error({ ...line, err: error }, 'request failed')
    else req.log.info(line, 'request')
  }
}
