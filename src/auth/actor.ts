import type { FastifyRequest } from 'fastify'
import { bindActor } from '../core/request-log.ts'
import type { Principal } from './principals.ts'

/** Who acts, for log lines: the principal's kind and id/username, nothing secret. */
export function actorOf(p: Principal): { kind: Principal['kind']; id?: number; username?: string } {
  switch (p.kind) {
    case 'user':
      return { kind: 'user', id: p.userId, username: p.username }
    case 'deploy-token':
      return { kind: 'deploy-token', id: p.tokenId, username: p.username }
    case 'job':
      return { kind: 'job', id: p.jobId, username: p.username }
    case 'anonymous':
      return { kind: 'anonymous' }
  }
}

/** Binds the request's principal to its logger, so every later line (errors included) names the actor. */
export function bindPrincipal(req: FastifyRequest, p: Principal): void {
  bindActor(req, actorOf(p))
}
