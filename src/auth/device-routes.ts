import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, Nullable } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { DeviceLogin } from '../metadata/schema.ts'
import type { DeviceLogins } from './device-logins.ts'

// /api/v4 for `wharf login`: the approval page's calls (a pending device code: look it up, approve
// or deny it) and the logins it created (list, revoke). Thin: the rules live in DeviceLogins.

export interface DeviceRouteOptions {
  deviceLogins: DeviceLogins
  /** Public base URL, no trailing slash (Link headers). */
  publicUrl: string
}

const UserCode = Type.Object({ user_code: Type.String({ maxLength: 32, description: 'the code the device shows, e.g. BDWP-HQPK' }) })
const LoginId = Type.Object({ id: Type.Integer() })
const LoginQuery = Type.Object({
  ...PageQuery,
  user_id: Type.Optional(Type.Integer({ description: 'administrators: logins of this user' })),
})
const PendingEntity = Type.Object({
  user_code: Type.String(),
  client_id: Type.String(),
  client_name: Type.String(),
  device_name: Type.String(),
  scopes: Type.Array(Type.String()),
  expires_at: Type.String(),
})
const DeviceLoginEntity = Type.Object({
  id: Type.Integer(),
  name: Type.String({ description: 'signed in on <device>' }),
  device_name: Type.String(),
  client_id: Type.String(),
  scopes: Type.Array(Type.String()),
  user_id: Type.Integer(),
  created_at: Type.String(),
  last_used_at: Nullable(Type.String()),
  expires_at: Type.String({ description: 'moves on each use: a login ends after 90 idle days' }),
})

function loginJson(row: DeviceLogin) {
  return {
    id: row.id,
    name: `signed in on ${row.device_name}`,
    device_name: row.device_name,
    client_id: row.client_id,
    scopes: JSON.parse(row.scopes) as string[],
    user_id: row.user_id ?? 0,
    created_at: row.created_at,
    last_used_at: row.last_used_at,
    expires_at: row.expires_at,
  }
}

export async function deviceRoutes(app: TypedApp, opts: DeviceRouteOptions): Promise<void> {
  const { deviceLogins } = opts
  const actorName = (req: FastifyRequest) => (req.principal.kind === 'user' ? req.principal.username : 'anonymous')

  app.get(
    '/user/device_authorizations/:user_code',
    {
      schema: {
        summary: 'A device sign-in waiting for approval: which client, device and scopes (signed-in person only)',
        tags: ['device_logins'],
        params: UserCode,
        'x-response': { 200: PendingEntity },
      },
    },
    async (req) => deviceLogins.pending(req.params.user_code, req.principal, req.ip),
  )

  for (const [action, approve] of [
    ['approve', true],
    ['deny', false],
  ] as const) {
    app.post(
      `/user/device_authorizations/:user_code/${action}`,
      {
        schema: {
          summary: `${approve ? 'Approve' : 'Deny'} a device sign-in (signed-in person only)`,
          tags: ['device_logins'],
          params: UserCode,
          body: Body({}),
          'x-response': { 204: {} },
        },
      },
      async (req, reply) => {
        await deviceLogins.decide(req.params.user_code, req.principal, approve, req.ip)
        return reply.code(204).send()
      },
    )
  }

  app.get(
    '/user/device_logins',
    {
      schema: {
        summary: 'Your device logins (wharf login), newest first; administrators may name a user',
        tags: ['device_logins'],
        querystring: LoginQuery,
        'x-response': { 200: Type.Array(DeviceLoginEntity) },
      },
    },
    async (req, reply) => {
      const p = req.principal
      if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
      const page = pageOf(req.query)
      const userId = p.isAdmin && req.query.user_id !== undefined ? req.query.user_id : p.userId
      const { rows, total } = await deviceLogins.list(userId, page)
      setPageHeaders(req, reply, opts.publicUrl, page, total)
      return rows.map(loginJson)
    },
  )

  app.delete(
    '/user/device_logins/:id',
    {
      schema: {
        summary: 'Revoke a device login: its credential helper stops working at the next pull',
        tags: ['device_logins'],
        params: LoginId,
        'x-response': { 204: {} },
      },
    },
    async (req, reply) => {
      const p = req.principal
      if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
      const row = await deviceLogins.find(req.params.id)
      if (row?.status !== 'active' || (row.user_id !== p.userId && !p.isAdmin))
        throw new WharfError('NOT_FOUND', 'Device Login Not Found', {})
      await deviceLogins.revoke(row, actorName(req), req.ip)
      return reply.code(204).send()
    },
  )
}
