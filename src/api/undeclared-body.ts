import type { FastifyRequest } from 'fastify'
import { WharfError } from '../core/errors.ts'

/**
 * A `preValidation` hook for /api/v4 scopes: a route that declares no body schema (cancel, retry,
 * block...) takes no attributes, so anything sent to it is refused like an extra property on a route
 * with a `Body` schema, instead of being silently ignored. A JSON `{}` or no body at all passes.
 */
export async function refuseUndeclaredBody(req: FastifyRequest): Promise<void> {
  if (req.routeOptions.schema?.body || req.routeOptions.config.ignoredBody) return
  const body = req.body
  if (body === null || typeof body !== 'object' || Buffer.isBuffer(body) || Symbol.asyncIterator in body) return
  const first = Array.isArray(body) ? '0' : Object.keys(body)[0]
  if (first !== undefined) throw new WharfError('BAD_REQUEST', `unknown attribute: ${first}`, { attribute: first })
}
