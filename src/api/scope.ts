import type { FastifyInstance } from 'fastify'
import type { ApiTokens } from '../auth/api-tokens.ts'
import { apiAuthHook } from './auth.ts'
import { addFormParser } from './form.ts'
import { apiErrorHandler } from './problem.ts'
import { refuseUndeclaredBody } from './undeclared-body.ts'

/** What every /api/v4 plugin needs: problem+json errors, form bodies (no undeclared ones) and the token auth hook. */
export function apiScope(app: FastifyInstance, apiTokens: ApiTokens): void {
  app.setErrorHandler(apiErrorHandler)
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', null as never)
  addFormParser(app)
  app.addHook('preValidation', refuseUndeclaredBody)
  app.addHook('onRequest', apiAuthHook(apiTokens))
}
