import { Type } from '@sinclair/typebox'
import type { Kysely } from 'kysely'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { StringEnum } from '../api/schemas.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import type { RegistryTokens } from '../auth/registry-tokens.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Database } from '../metadata/schema.ts'
import type { Manifests } from '../registry/index.ts'
import type { Sso } from '../sso/index.ts'
import * as aq from './queries.ts'

// /api/v4 for the administrator area: the instance audit log (GitLab's GET /audit_events, plus
// Wharf's actor/action filters), usage counts (GET /application/statistics), and, as Wharf
// extensions under /admin, the registry-token signing keys and the effective settings.
// Every route here is for administrators only.

export interface AdminRouteDeps {
  db: Kysely<Database>
  tokens: RegistryTokens
  credentials: Credentials
  publicUrl: string
  /** A runner that asked for jobs within this many seconds counts as online (the CI's rule). */
  runnerOnlineSeconds: number
  /** The effective configuration with secrets masked (absent when the app was built without one). */
  settings?: Record<string, unknown> | undefined
  /** The registry's storage figure for the whole instance. */
  manifests: Pick<Manifests, 'storageUsed'>
  /** Single sign-on: each provider's last exchange, for GET /admin/sso. */
  sso?: Pick<Sso, 'status'> | undefined
  /** Whether local passwords sign in (auth.passwordSignIn, auth.passwordBreakGlass). */
  passwords?: { signIn: boolean; breakGlass: boolean } | undefined
}

const SsoProviderEntity = Type.Object({
  id: Type.String(),
  label: Type.String(),
  issuer: Type.String(),
  ok: Type.Union([Type.Boolean(), Type.Null()], { description: 'null until Wharf first talked to the provider' }),
  error: Type.Union([Type.String(), Type.Null()], { description: 'the last failure: wrong issuer, refused client secret, unreachable' }),
  checked_at: Type.Union([Type.String(), Type.Null()]),
})

const ENTITY_TYPES = ['User', 'Group', 'Project'] as const
const AuditQuery = Type.Object({
  ...PageQuery,
  actor: Type.Optional(Type.String({ maxLength: 255, description: 'Wharf: who acted (a username, or the name a failed sign-in tried)' })),
  action: Type.Optional(
    Type.String({ maxLength: 255, description: 'Wharf: an action (`user.blocked`), or a prefix ending in a dot (`user.`)' }),
  ),
  target: Type.Optional(Type.String({ maxLength: 255, description: 'Wharf: the exact target (`user:12`, `project:3`)' })),
  entity_type: Type.Optional(StringEnum(ENTITY_TYPES)),
  entity_id: Type.Optional(Type.Integer({ description: 'with entity_type' })),
  created_after: Type.Optional(Type.String({ format: 'date-time' })),
  created_before: Type.Optional(Type.String({ format: 'date-time' })),
})

const AuditEventEntity = Type.Object({
  id: Type.Integer(),
  actor: Type.String(),
  action: Type.String(),
  target: Type.String(),
  entity_type: Type.Union([StringEnum(ENTITY_TYPES), Type.Null()]),
  entity_id: Type.Union([Type.Integer(), Type.Null()]),
  ip_address: Type.Union([Type.String(), Type.Null()]),
  details: Type.Union([Type.Record(Type.String(), Type.Unknown()), Type.Null()]),
  created_at: Type.String(),
})

const Count = Type.Integer({ minimum: 0 })
const StatisticsEntity = Type.Object({
  users: Count,
  active_users: Count,
  blocked_users: Count,
  admins: Count,
  groups: Count,
  projects: Count,
  repositories: Type.Integer({ minimum: 0, description: 'container image repositories' }),
  blobs: Count,
  blob_bytes: Type.Integer({ minimum: 0, description: 'bytes of stored blobs, each counted once' }),
  container_registry_size: Type.Integer({
    minimum: 0,
    description: 'bytes of blobs the image repositories hold, each counted once (blobs no repository links are left out)',
  }),
  pipelines: Count,
  jobs: Count,
  runners: Count,
  runners_online: Count,
})

const SigningKeyEntity = Type.Object({
  kid: Type.String(),
  created_at: Type.String(),
  retired_at: Type.Union([Type.String(), Type.Null()]),
  active: Type.Boolean(),
})

const TARGET = /^(user|group|project):(\d+)$/
const TYPE_OF = { user: 'User', group: 'Group', project: 'Project' } as const

function auditJson(e: { id: number; at: string; actor: string; action: string; target: string; ip: string | null; detail: string | null }) {
  const m = TARGET.exec(e.target)
  return {
    id: e.id,
    actor: e.actor,
    action: e.action,
    target: e.target,
    entity_type: m ? TYPE_OF[m[1] as keyof typeof TYPE_OF] : null,
    entity_id: m ? Number(m[2]) : null,
    ip_address: e.ip,
    details: e.detail ? (JSON.parse(e.detail) as Record<string, unknown>) : null,
    created_at: e.at,
  }
}

function requireAdmin(p: Principal): void {
  if (p.kind !== 'user' || !p.isAdmin) throw new WharfError('FORBIDDEN', 'this needs an administrator', {})
}

export async function adminRoutes(app: TypedApp, deps: AdminRouteDeps): Promise<void> {
  // Before validation, so a non-administrator learns nothing from a query's 400 either.
  app.addHook('preValidation', async (req) => requireAdmin(req.principal))

  app.get(
    '/audit_events',
    {
      schema: {
        summary: 'The instance audit log, newest first (administrator)',
        tags: ['admin'],
        querystring: AuditQuery,
        'x-response': { 200: Type.Array(AuditEventEntity) },
      },
    },
    async (req, reply) => {
      const query = req.query
      if (query.entity_id !== undefined && query.entity_type === undefined)
        throw new WharfError('BAD_REQUEST', 'entity_id needs entity_type', {})
      const kind = query.entity_type?.toLowerCase()
      const page = pageOf(query)
      const filter: aq.AuditFilter = {
        actor: query.actor,
        action: query.action,
        target: query.target ?? (kind && query.entity_id !== undefined ? `${kind}:${query.entity_id}` : undefined),
        targetPrefix: kind && query.entity_id === undefined ? `${kind}:` : undefined,
        createdAfter: query.created_after && new Date(query.created_after).toISOString(),
        createdBefore: query.created_before && new Date(query.created_before).toISOString(),
      }
      const { rows, total } = await aq.pageAudit(deps.db, filter, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map(auditJson)
    },
  )

  app.get(
    '/application/statistics',
    {
      schema: {
        summary: "Usage at a glance (administrator); counts are numbers, not GitLab's formatted strings",
        tags: ['admin'],
        'x-response': { 200: StatisticsEntity },
      },
    },
    async () => {
      const u = await aq.usage(deps.db, new Date(Date.now() - deps.runnerOnlineSeconds * 1000).toISOString())
      return {
        users: u.users,
        active_users: u.users - u.blockedUsers,
        blocked_users: u.blockedUsers,
        admins: u.admins,
        groups: u.groups,
        projects: u.projects,
        repositories: u.repositories,
        blobs: u.blobs,
        blob_bytes: u.blobBytes,
        container_registry_size: await deps.manifests.storageUsed(),
        pipelines: u.pipelines,
        jobs: u.jobs,
        runners: u.runners,
        runners_online: u.runnersOnline,
      }
    },
  )

  app.get(
    '/admin/signing_keys',
    {
      schema: {
        summary: 'Registry-token signing keys, newest first: ids and dates only (administrator; Wharf extension)',
        tags: ['admin'],
        querystring: Type.Object({ ...PageQuery }),
        'x-response': { 200: Type.Array(SigningKeyEntity) },
      },
    },
    async (req, reply) => {
      const page = pageOf(req.query)
      const { rows, total } = await aq.pageSigningKeys(deps.db, page)
      setPageHeaders(req, reply, deps.publicUrl, page, total)
      return rows.map((k) => ({ ...k, active: k.retired_at === null }))
    },
  )

  app.post(
    '/admin/signing_keys/rotate',
    {
      schema: {
        summary: 'Add a signing key and sign new registry tokens with it; older keys keep verifying (administrator; Wharf extension)',
        tags: ['admin'],
        'x-response': { 201: SigningKeyEntity },
      },
    },
    async (req, reply) => {
      // rotate() reloads the keys, so the new one signs from now on here; other nodes (and a server
      // beside the offline CLI) read it within a second.
      const kid = await deps.tokens.rotate()
      const { rows } = await aq.pageSigningKeys(deps.db, { limit: 100, offset: 0 })
      const key = rows.find((k) => k.kid === kid)!
      await deps.credentials.audit(
        req.principal.kind === 'user' ? req.principal.username : 'anonymous',
        'signing_key.rotated',
        req.ip,
        { kid },
        '',
      )
      return reply.code(201).send({ ...key, active: key.retired_at === null })
    },
  )

  app.get(
    '/admin/sso',
    {
      schema: {
        summary: "Single sign-on providers and the state of Wharf's last exchange with each (administrator; Wharf extension)",
        tags: ['admin'],
        'x-response': {
          200: Type.Object({
            password_sign_in: Type.Boolean(),
            password_break_glass: Type.Boolean(),
            providers: Type.Array(SsoProviderEntity),
          }),
        },
      },
    },
    async () => ({
      password_sign_in: deps.passwords?.signIn ?? true,
      password_break_glass: deps.passwords?.breakGlass ?? true,
      providers: deps.sso?.status() ?? [],
    }),
  )

  app.get(
    '/admin/settings',
    {
      schema: {
        summary: 'The effective configuration, secrets masked (administrator; Wharf extension)',
        tags: ['admin'],
        'x-response': { 200: Type.Record(Type.String(), Type.Unknown()) },
      },
    },
    async () => {
      if (!deps.settings) throw new WharfError('NOT_FOUND', 'this server was started without a configuration to show', {})
      return deps.settings
    },
  )
}
