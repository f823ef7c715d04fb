import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { addFormParser } from '../api/form.ts'
import { OAuthTokenEntity } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { ApiTokens } from './api-tokens.ts'
import { DEVICE_CODE_GRANT, DEVICE_LOGIN_PREFIX, type DeviceLogins } from './device-logins.ts'

export interface OAuthRouteOptions {
  apiTokens: ApiTokens
  deviceLogins: DeviceLogins
}

const DeviceBody = Type.Object(
  {
    client_id: Type.String({ maxLength: 100, description: 'wharf-cli' }),
    scope: Type.Optional(
      Type.String({
        maxLength: 200,
        description: 'space-separated: read_registry, write_registry, api (default read_registry write_registry)',
      }),
    ),
    device_name: Type.Optional(Type.String({ maxLength: 200, description: 'shown to the person approving, and in their access tokens' })),
  },
  { additionalProperties: false },
)

const TokenBody = Type.Object(
  {
    grant_type: Type.String({ description: `password, refresh_token or ${DEVICE_CODE_GRANT}` }),
    device_code: Type.Optional(Type.String({ description: `the ${DEVICE_CODE_GRANT} grant's device code` })),
    client_id: Type.Optional(Type.String({ description: `the client the device code was issued to (${DEVICE_CODE_GRANT})` })),
    username: Type.Optional(Type.String()),
    password: Type.Optional(Type.String()),
    refresh_token: Type.Optional(Type.String()),
    scope: Type.Optional(Type.String({ description: 'space-separated: api, read_api, read_user (default api)' })),
  },
  { additionalProperties: true },
)

/**
 * GitLab's OAuth2 token endpoint for scripts: the resource owner password grant and the refresh
 * grant. Errors are OAuth errors (`{error, error_description}`), not problem+json.
 */
export async function oauthRoutes(app: TypedApp, opts: OAuthRouteOptions): Promise<void> {
  const { apiTokens, deviceLogins } = opts
  addFormParser(app)
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, req, reply) => oauthError(err, req, reply))

  app.post(
    '/oauth/token',
    {
      schema: {
        summary: 'Get an OAuth access token (password or refresh_token grant)',
        tags: ['oauth'],
        body: TokenBody,
        'x-response': { 200: OAuthTokenEntity },
      },
      config: { public: true },
    },
    async (req, reply) => {
      const body = req.body
      let issued
      if (body.grant_type === 'password') {
        if (!body.username || !body.password)
          throw new WharfError('BAD_REQUEST', 'username and password are required', { oauth: 'invalid_request' })
        issued = await apiTokens.passwordGrant(body.username, body.password, req.ip, body.scope)
      } else if (body.grant_type === 'refresh_token') {
        if (!body.refresh_token) throw new WharfError('BAD_REQUEST', 'refresh_token is required', { oauth: 'invalid_request' })
        issued = body.refresh_token.startsWith(DEVICE_LOGIN_PREFIX)
          ? await deviceLogins.refresh(body.refresh_token)
          : await apiTokens.refreshGrant(body.refresh_token, req.ip)
      } else if (body.grant_type === DEVICE_CODE_GRANT) {
        if (!body.device_code) throw new WharfError('BAD_REQUEST', 'device_code is required', { oauth: 'invalid_request' })
        issued = await deviceLogins.redeem(body.device_code, body.client_id, req.ip)
      } else {
        throw new WharfError('BAD_REQUEST', `grant_type must be password, refresh_token or ${DEVICE_CODE_GRANT}`, {
          oauth: 'unsupported_grant_type',
        })
      }
      return reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache').send(issued)
    },
  )

  // RFC 7009: always 200, whether or not the token was known.
  app.post(
    '/oauth/revoke',
    {
      schema: {
        summary: 'Revoke an OAuth access or refresh token',
        tags: ['oauth'],
        body: Type.Object({ token: Type.String() }, { additionalProperties: true }),
      },
      config: { public: true },
    },
    async (req, reply) => {
      if (!(await deviceLogins.revokeByRefresh(req.body.token, req.ip))) await apiTokens.revoke(req.body.token)
      return reply.send({})
    },
  )

  // RFC 8628 §3.1 at GitLab's path: a device (`wharf login`) asks for a device code and a user code.
  app.post(
    '/oauth/authorize_device',
    {
      schema: {
        summary: 'Start a device sign-in (OAuth 2.0 device authorization grant): a device code and a code for a person to approve',
        tags: ['oauth'],
        body: DeviceBody,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const body = req.body
      const started = await deviceLogins.authorize({ clientId: body.client_id, scope: body.scope, deviceName: body.device_name }, req.ip)
      return reply.header('Cache-Control', 'no-store').send(started)
    },
  )
}

function oauthError(err: Error & { statusCode?: number; validation?: unknown }, req: FastifyRequest, reply: FastifyReply) {
  reply.header('Cache-Control', 'no-store')
  if (err instanceof WharfError) {
    const status =
      err.code === 'TOOMANYREQUESTS'
        ? 429
        : err.code === 'UNAUTHORIZED'
          ? 400
          : err.code === 'BAD_REQUEST'
            ? 400
            : err.code === 'UNAVAILABLE'
              ? 503
              : 500
    if ((status === 429 || status === 503) && typeof err.detail.retryAfter === 'number')
      reply.header('Retry-After', String(err.detail.retryAfter))
    // RFC 6749 §5.2: a failed password or refresh grant is invalid_grant with 400.
    const error =
      (err.detail.oauth as string | undefined) ??
      (err.code === 'UNAUTHORIZED'
        ? 'invalid_grant'
        : status === 429
          ? 'slow_down'
          : status === 503
            ? 'temporarily_unavailable'
            : 'invalid_request')
    if (status === 500) req.log.error({ err }, 'oauth request failed')
    return reply.code(status).send({ error, error_description: status === 500 ? 'internal server error' : err.message })
  }
  if (err.validation) return reply.code(400).send({ error: 'invalid_request', error_description: err.message })
  if (err.statusCode !== undefined && err.statusCode < 500)
    return reply.code(err.statusCode).send({ error: 'invalid_request', error_description: err.message })
  req.log.error({ err }, 'oauth request failed')
  return reply.code(500).send({ error: 'server_error', error_description: 'internal server error' })
}
