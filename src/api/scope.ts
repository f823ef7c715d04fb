import type { FastifyInstance, FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from 'fastify'
import { coerceGitLabBooleans } from './booleans.ts'
import { addFormParser, addMultipartFormParser } from './form.ts'
import { apiErrorHandler } from './problem.ts'
import { refuseUndeclaredBody } from './undeclared-body.ts'

/**
 * What the /api/v4 scope needs, so the whole API negotiates and parses alike: RFC 9457
 * errors, JSON/form/multipart bodies (no undeclared ones), GitLab's boolean spellings, GitLab's
 * exact JSON content type and the token auth hook (`authenticate`, src/auth/api-auth.ts: api/ knows
 * no domain, so the composition root hands it in).
 */
export function apiScope(app: FastifyInstance, authenticate: onRequestAsyncHookHandler): void {
  app.setErrorHandler(apiErrorHandler)
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', null as never)
  addJsonParser(app)
  addFormParser(app)
  // First among the preValidation hooks: the ones after it see the multipart fields as the body.
  addMultipartFormParser(app)
  app.addHook('preValidation', noBodyIsNoAttributes)
  app.addHook('preValidation', coerceGitLabBooleans)
  app.addHook('preValidation', refuseUndeclaredBody)
  app.addHook('onRequest', authenticate)
  app.addHook('onSend', gitLabJsonType)
}

/**
 * A JSON content type with an empty body is no body, as GitLab takes it: python-gitlab sends
 * `Content-Type: application/json` on every request, DELETEs included. Anything else is JSON, parsed
 * as Fastify does (prototype poisoning refused).
 */
function addJsonParser(app: FastifyInstance): void {
  const parseJson = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if ((body as string).trim() === '') return done(null, undefined)
    parseJson(req, body as string, done)
  })
}

/**
 * A request without a body sends no attributes, as GitLab (Grape) reads it: a route whose attributes
 * are all optional, or may come in the query string (triggers), then validates `{}` instead of
 * failing with "body must be object"; a required attribute is still named as missing.
 */
async function noBodyIsNoAttributes(req: FastifyRequest): Promise<void> {
  if (req.body === undefined && req.routeOptions.schema?.body) req.body = {}
}

/**
 * JSON goes out as `application/json`, without Fastify's `; charset=utf-8`: it is what GitLab sends,
 * JSON is UTF-8 by definition (RFC 8259), and python-gitlab decodes a body only when the type is
 * exactly that. Errors too (problem.ts: `application/problem+json` only when the client asks for it).
 */
async function gitLabJsonType(_req: FastifyRequest, reply: FastifyReply, payload: unknown): Promise<unknown> {
  const type = reply.getHeader('content-type')
  if (typeof type === 'string' && /^application\/json\s*;/i.test(type)) reply.header('content-type', 'application/json')
  return payload
}
