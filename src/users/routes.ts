import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, Nullable, PatEntity, StringEnum, UserEntity } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { AccessTokens } from '../auth/access-tokens.ts'
import type { ApiTokens } from '../auth/api-tokens.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import { PAT_SCOPES } from '../auth/roles.ts'
import type { PersonalAccessToken } from '../metadata/schema.ts'
import { patJson, userJson } from './entities.ts'
import type { Users } from './service.ts'

// /api/v4 users and personal access tokens. Thin: parse, check who may, call the service, shape the JSON.

const UserId = Type.Object({ id: Type.Integer() })
const UserQuery = Type.Object({
  ...PageQuery,
  username: Type.Optional(Type.String({ maxLength: 255, description: 'exact username (case-insensitive)' })),
  search: Type.Optional(Type.String({ maxLength: 255 })),
  blocked: Type.Optional(Type.Boolean()),
})
const NewUserBody = Body({
  username: Type.String({ minLength: 1, maxLength: 100 }),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  email: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
  password: Type.Optional(Type.String({ minLength: 8, maxLength: 1024 })),
  admin: Type.Optional(Type.Boolean()),
})
const UpdateUserBody = Body({
  // GitLab's attribute; python-gitlab's save() always sends it (with name and email). Renaming is not
  // supported (it would move the user's namespace), so only the current username is accepted.
  username: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  name: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  email: Type.Optional(Nullable(Type.String({ maxLength: 255 }))),
  password: Type.Optional(Type.String({ minLength: 8, maxLength: 1024 })),
  admin: Type.Optional(Type.Boolean()),
})
const PatBody = Body({
  name: Type.String({ minLength: 1, maxLength: 255 }),
  scopes: Type.Array(StringEnum(PAT_SCOPES), { minItems: 1 }),
  expires_at: Type.Optional(Nullable(Type.String({ description: 'YYYY-MM-DD' }))),
})
const PatQuery = Type.Object({
  ...PageQuery,
  user_id: Type.Optional(Type.Integer({ description: 'administrators: tokens of this user' })),
  state: Type.Optional(StringEnum(['active', 'inactive'] as const)),
})
const PatId = Type.Object({
  id: Type.Union([Type.Integer(), Type.Literal('self')], { description: "a token id, or 'self' for the token making the request" }),
})

export interface UserRouteOptions {
  users: Users
  accessTokens: AccessTokens
  apiTokens: ApiTokens
  credentials: Credentials
  /** Public base URL, no trailing slash (web_url, Link headers). */
  publicUrl: string
}

export async function userRoutes(app: TypedApp, deps: UserRouteOptions): Promise<void> {
  const { users, accessTokens } = deps

  const requireAdmin = (p: Principal) => {
    if (p.kind !== 'user' || !p.isAdmin) throw new WharfError('FORBIDDEN', 'this needs an administrator', {})
  }
  const actorName = (req: FastifyRequest) => (req.principal.kind === 'user' ? req.principal.username : 'anonymous')

  // ---- Users ----

  app.get(
    '/user',
    { schema: { summary: 'The signed-in user', tags: ['users'], 'x-response': { 200: UserEntity } }, config: { scopes: ['read_user'] } },
    async (req) => {
      const user = await users.actor(req.principal)
      return userJson(user, req.principal, deps)
    },
  )

  app.get(
    '/users',
    {
      schema: { summary: 'List users', tags: ['users'], querystring: UserQuery, 'x-response': { 200: Type.Array(UserEntity) } },
      config: { scopes: ['read_user'] },
    },
    async (req, reply) => {
      const query = req.query
      const page = pageOf(query)
      const { rows, total } = await users.searchUsers({ username: query.username, search: query.search, blocked: query.blocked }, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((u) => userJson(u, req.principal, deps))
    },
  )

  app.get(
    '/users/:id',
    {
      schema: { summary: 'Get a user', tags: ['users'], params: UserId, 'x-response': { 200: UserEntity } },
      config: { scopes: ['read_user'] },
    },
    async (req) => {
      const user = await users.findUserById(req.params.id)
      if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
      return userJson(user, req.principal, deps)
    },
  )

  app.post(
    '/users',
    { schema: { summary: 'Create a user (administrator)', tags: ['users'], body: NewUserBody, 'x-response': { 201: UserEntity } } },
    async (req, reply) => {
      requireAdmin(req.principal)
      const body = req.body
      const user = await users.createUser({
        username: body.username,
        name: body.name ?? body.username,
        email: body.email ?? null,
        password: body.password ?? null,
        isAdmin: body.admin ?? false,
      })
      await deps.credentials.audit(
        actorName(req),
        'user.created',
        req.ip,
        { username: user.username, admin: user.is_admin === 1 },
        `user:${user.id}`,
      )
      return reply.code(201).send(userJson(user, req.principal, deps))
    },
  )

  app.put(
    '/users/:id',
    {
      schema: {
        summary: 'Update a user (administrator; yourself: name and password)',
        tags: ['users'],
        params: UserId,
        body: UpdateUserBody,
        'x-response': { 200: UserEntity },
      },
    },
    async (req) => {
      const { id } = req.params
      const body = req.body
      const p = req.principal
      const self = p.kind === 'user' && p.userId === id
      const admin = p.kind === 'user' && p.isAdmin
      if (!admin && !self) throw new WharfError('FORBIDDEN', 'you can only change your own account', {})
      if (!admin && (body.email !== undefined || body.admin !== undefined))
        throw new WharfError('FORBIDDEN', 'only administrators can change email or the admin flag', {})
      if (admin && self && body.admin === false) throw new WharfError('BAD_REQUEST', 'you cannot remove your own administrator rights', {})
      const current = await users.findUserById(id)
      if (!current) throw new WharfError('NOT_FOUND', 'User Not Found', {})
      if (body.username !== undefined && body.username !== current.username)
        throw new WharfError('BAD_REQUEST', 'changing a username is not supported', { attribute: 'username' })
      const user = await users.updateUserProfile(id, { name: body.name, email: body.email, password: body.password, isAdmin: body.admin })
      // A new password ends the OAuth sessions that the old one started.
      if (body.password !== undefined) await deps.apiTokens.revokeAllFor(id)
      await deps.credentials.audit(
        actorName(req),
        'user.updated',
        req.ip,
        {
          fields: Object.keys(body)
            .filter((k) => k !== 'password')
            .concat(body.password !== undefined ? ['password'] : []),
        },
        `user:${id}`,
      )
      return userJson(user, req.principal, deps)
    },
  )

  for (const action of ['block', 'unblock'] as const) {
    app.post(
      `/users/:id/${action}`,
      {
        schema: {
          summary: `${action === 'block' ? 'Block' : 'Unblock'} a user (administrator)`,
          tags: ['users'],
          params: UserId,
          'x-response': { 201: Type.Literal(true) },
        },
      },
      async (req, reply) => {
        requireAdmin(req.principal)
        const { id } = req.params
        const p = req.principal
        if (action === 'block' && p.kind === 'user' && p.userId === id) throw new WharfError('FORBIDDEN', 'you cannot block yourself', {})
        const target = await users.findUserById(id)
        if (!target) throw new WharfError('NOT_FOUND', 'User Not Found', {})
        // GitLab: blocking a blocked user changes nothing and answers null; a deactivated one is activated, not unblocked.
        if (action === 'block' && target.state === 'blocked') return reply.code(201).type('application/json').send('null')
        if (action === 'unblock' && target.state === 'deactivated')
          throw new WharfError('FORBIDDEN', 'Deactivated users cannot be unblocked by the API', {})
        await users.setUserState(id, action === 'block' ? 'blocked' : 'active')
        if (action === 'block') await deps.apiTokens.revokeAllFor(id)
        await deps.credentials.audit(actorName(req), `user.${action}ed`, req.ip, null, `user:${id}`)
        return reply.code(201).send(true)
      },
    )
  }

  // GitLab's deactivate/activate: the account and its tokens stay, unusable while deactivated.
  app.post(
    '/users/:id/deactivate',
    {
      schema: {
        summary: 'Deactivate a user (administrator): no sign-in or token use until activated',
        tags: ['users'],
        params: UserId,
        'x-response': { 201: Type.Union([Type.Literal(true), Type.Null()]) },
      },
    },
    async (req, reply) => {
      requireAdmin(req.principal)
      const { id } = req.params
      const p = req.principal
      if (p.kind === 'user' && p.userId === id) throw new WharfError('FORBIDDEN', 'you cannot deactivate yourself', {})
      if (!(await users.deactivate(id))) return reply.code(201).type('application/json').send('null')
      await deps.credentials.audit(actorName(req), 'user.deactivated', req.ip, null, `user:${id}`)
      return reply.code(201).send(true)
    },
  )
  app.post(
    '/users/:id/activate',
    {
      schema: {
        summary: 'Activate a deactivated user (administrator); a blocked one must be unblocked',
        tags: ['users'],
        params: UserId,
        'x-response': { 201: Type.Literal(true) },
      },
    },
    async (req, reply) => {
      requireAdmin(req.principal)
      await users.activate(req.params.id)
      await deps.credentials.audit(actorName(req), 'user.activated', req.ip, null, `user:${req.params.id}`)
      return reply.code(201).send(true)
    },
  )

  app.delete(
    '/users/:id',
    {
      schema: {
        summary:
          "Delete a user (administrator) with their personal projects; refused while they are a group's only Owner unless hard_delete, which deletes those groups",
        tags: ['users'],
        params: UserId,
        querystring: Type.Object({ hard_delete: Type.Optional(Type.Boolean()) }),
        'x-response': { 204: {} },
      },
    },
    async (req, reply) => {
      requireAdmin(req.principal)
      const { id } = req.params
      const p = req.principal
      if (p.kind === 'user' && p.userId === id) throw new WharfError('FORBIDDEN', 'you cannot delete yourself', {})
      const user = await users.deleteUser(id, { hardDelete: req.query.hard_delete === true })
      await deps.credentials.audit(actorName(req), 'user.deleted', req.ip, { username: user.username }, `user:${id}`)
      return reply.code(204).send()
    },
  )

  // ---- Personal access tokens ----

  /** The token row if the caller may see it (their own, or any for an administrator); NOT_FOUND otherwise. */
  const visiblePat = async (req: FastifyRequest, ref: number | 'self'): Promise<PersonalAccessToken> => {
    const p = req.principal
    if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
    let id: number
    if (ref === 'self') {
      if (p.credential.kind !== 'pat') throw new WharfError('NOT_FOUND', 'this request was not made with a personal access token', {})
      id = p.credential.id
    } else id = ref
    const row = await accessTokens.findPat(id)
    if (!row || (row.user_id !== p.userId && !p.isAdmin)) throw new WharfError('NOT_FOUND', 'Personal Access Token Not Found', {})
    return row
  }

  const createPat = async (req: FastifyRequest, body: Static<typeof PatBody>, userId: number) => {
    if (!(await users.findUserById(userId))) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    const { token, row } = await accessTokens.createPat(
      userId,
      { name: body.name, scopes: body.scopes, expiresAt: body.expires_at ?? null },
      actorName(req),
    )
    // The secret is in this response only; it is stored as a digest.
    return patJson(row, token)
  }

  app.post(
    '/user/personal_access_tokens',
    {
      schema: {
        summary: 'Create a personal access token for yourself; the token is shown only in this response',
        tags: ['personal_access_tokens'],
        body: PatBody,
        'x-response': { 201: PatEntity },
      },
    },
    async (req, reply) => {
      const user = await users.actor(req.principal)
      return reply
        .code(201)
        .header('Cache-Control', 'no-store')
        .send(await createPat(req, req.body, user.id))
    },
  )

  app.post(
    '/users/:id/personal_access_tokens',
    {
      schema: {
        summary: 'Create a personal access token for a user (administrator)',
        tags: ['personal_access_tokens'],
        params: UserId,
        body: PatBody,
        'x-response': { 201: PatEntity },
      },
    },
    async (req, reply) => {
      requireAdmin(req.principal)
      return reply
        .code(201)
        .header('Cache-Control', 'no-store')
        .send(await createPat(req, req.body, req.params.id))
    },
  )

  app.get(
    '/personal_access_tokens',
    {
      schema: {
        summary: 'List personal access tokens (yours; administrators: all)',
        tags: ['personal_access_tokens'],
        querystring: PatQuery,
        'x-response': { 200: Type.Array(PatEntity) },
      },
    },
    async (req, reply) => {
      const p = req.principal
      if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'authentication required', {})
      const query = req.query
      const userId = p.isAdmin ? query.user_id : p.userId
      const page = pageOf(query)
      const { rows, total } = await accessTokens.pagePats({
        userId,
        active: query.state === undefined ? undefined : query.state === 'active',
        limit: page.limit,
        offset: page.offset,
      })
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((t) => patJson(t))
    },
  )

  app.get(
    '/personal_access_tokens/:id',
    {
      schema: { summary: 'Get a personal access token', tags: ['personal_access_tokens'], params: PatId, 'x-response': { 200: PatEntity } },
    },
    async (req) => {
      return patJson(await visiblePat(req, req.params.id))
    },
  )

  app.delete(
    '/personal_access_tokens/:id',
    {
      schema: {
        summary: 'Revoke a personal access token (effective at once)',
        tags: ['personal_access_tokens'],
        params: PatId,
        'x-response': { 204: {} },
      },
    },
    async (req, reply) => {
      const row = await visiblePat(req, req.params.id)
      if (row.revoked === 0) await accessTokens.revokePat(row, actorName(req))
      return reply.code(204).send()
    },
  )
}
