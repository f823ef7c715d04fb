import { nowIso } from '../metadata/db.ts'
import type { DeployToken, DeviceLogin, Executor, OAuthToken, PersonalAccessToken } from '../metadata/schema.ts'

// Only this file builds SQL for tokens and the audit log.

export async function insertPat(
  db: Executor,
  t: { userId: number; name: string; digest: string; scopes: string[]; expiresAt: string | null },
): Promise<PersonalAccessToken> {
  return db
    .insertInto('personal_access_tokens')
    .values({
      user_id: t.userId,
      name: t.name,
      token_digest: t.digest,
      scopes: JSON.stringify(t.scopes),
      expires_at: t.expiresAt,
      revoked: 0,
      last_used_at: null,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findPatByDigest(db: Executor, digest: string): Promise<PersonalAccessToken | undefined> {
  return db.selectFrom('personal_access_tokens').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export async function findPat(db: Executor, id: number): Promise<PersonalAccessToken | undefined> {
  return db.selectFrom('personal_access_tokens').selectAll().where('id', '=', id).executeTakeFirst()
}

/**
 * A page of personal access tokens (one user's, or everyone's), newest first, and the total.
 * `active`: not revoked and not expired at `now` (ISO; a YYYY-MM-DD expiry sorts before that day's instants).
 */
export async function pagePats(
  db: Executor,
  f: { userId?: number | undefined; active?: boolean | undefined; now: string; limit: number; offset: number },
): Promise<{ rows: PersonalAccessToken[]; total: number }> {
  let q = db.selectFrom('personal_access_tokens')
  if (f.userId !== undefined) q = q.where('user_id', '=', f.userId)
  if (f.active !== undefined) {
    const now = f.now
    q = q.where((eb) =>
      f.active
        ? eb.and([eb('revoked', '=', 0), eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])])
        : eb.or([eb('revoked', '=', 1), eb('expires_at', '<=', now)]),
    )
  }
  const rows = await q.selectAll().orderBy('id', 'desc').limit(f.limit).offset(f.offset).execute()
  const n = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function revokePat(db: Executor, id: number): Promise<void> {
  await db.updateTable('personal_access_tokens').set({ revoked: 1 }).where('id', '=', id).execute()
}

export async function touchPat(db: Executor, id: number): Promise<void> {
  await db.updateTable('personal_access_tokens').set({ last_used_at: nowIso() }).where('id', '=', id).execute()
}

export async function insertDeployToken(
  db: Executor,
  t: {
    projectId: number | null
    namespaceId: number | null
    name: string
    username: string | null
    digest: string
    scopes: string[]
    expiresAt: string | null
  },
): Promise<DeployToken> {
  const row = await db
    .insertInto('deploy_tokens')
    .values({
      project_id: t.projectId,
      namespace_id: t.namespaceId,
      name: t.name,
      username: t.username ?? '',
      token_digest: t.digest,
      scopes: JSON.stringify(t.scopes),
      expires_at: t.expiresAt,
      revoked: 0,
      last_used_at: null,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
  if (t.username) return row
  // GitLab's default username for a deploy token.
  const username = `gitlab+deploy-token-${row.id}`
  await db.updateTable('deploy_tokens').set({ username }).where('id', '=', row.id).execute()
  return { ...row, username }
}

export async function findDeployTokenByDigest(db: Executor, digest: string): Promise<DeployToken | undefined> {
  return db.selectFrom('deploy_tokens').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export async function findDeployToken(db: Executor, id: number): Promise<DeployToken | undefined> {
  return db.selectFrom('deploy_tokens').selectAll().where('id', '=', id).executeTakeFirst()
}

/** A page of a project's or group's deploy tokens, oldest first, and the total; `active` as for pagePats. */
export async function pageDeployTokens(
  db: Executor,
  f: { projectId?: number; namespaceId?: number; active?: boolean | undefined; now: string; limit: number; offset: number },
): Promise<{ rows: DeployToken[]; total: number }> {
  let q = db.selectFrom('deploy_tokens')
  if (f.projectId !== undefined) q = q.where('project_id', '=', f.projectId)
  if (f.namespaceId !== undefined) q = q.where('namespace_id', '=', f.namespaceId)
  if (f.active !== undefined) {
    const now = f.now
    q = q.where((eb) =>
      f.active
        ? eb.and([eb('revoked', '=', 0), eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)])])
        : eb.or([eb('revoked', '=', 1), eb('expires_at', '<=', now)]),
    )
  }
  const rows = await q.selectAll().orderBy('id').limit(f.limit).offset(f.offset).execute()
  const n = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function revokeDeployToken(db: Executor, id: number): Promise<void> {
  await db.updateTable('deploy_tokens').set({ revoked: 1 }).where('id', '=', id).execute()
}

export async function touchDeployToken(db: Executor, id: number): Promise<void> {
  await db.updateTable('deploy_tokens').set({ last_used_at: nowIso() }).where('id', '=', id).execute()
}

export async function insertRefreshToken(db: Executor, digest: string, principal: string, expiresAt: string): Promise<void> {
  await db
    .insertInto('refresh_tokens')
    .values({ token_digest: digest, principal, expires_at: expiresAt, revoked: 0, created_at: nowIso() })
    .execute()
}

export async function findRefreshToken(db: Executor, digest: string) {
  return db.selectFrom('refresh_tokens').selectAll().where('token_digest', '=', digest).executeTakeFirst()
}

export async function insertAudit(
  db: Executor,
  e: { actor: string; action: string; target: string; ip: string | null; detail: Record<string, unknown> | null },
): Promise<void> {
  await db
    .insertInto('audit_events')
    .values({
      at: nowIso(),
      actor: e.actor,
      action: e.action,
      target: e.target,
      ip: e.ip,
      detail: e.detail ? JSON.stringify(e.detail) : null,
    })
    .execute()
}

export async function listAudit(db: Executor, limit: number) {
  return db.selectFrom('audit_events').selectAll().orderBy('id', 'desc').limit(limit).execute()
}

// OAuth access tokens (POST /oauth/token)

export async function insertOAuthToken(
  db: Executor,
  t: { userId: number; accessDigest: string; refreshDigest: string; scopes: string[]; expiresAt: string; refreshExpiresAt: string },
): Promise<void> {
  await db
    .insertInto('oauth_tokens')
    .values({
      user_id: t.userId,
      access_digest: t.accessDigest,
      refresh_digest: t.refreshDigest,
      scopes: JSON.stringify(t.scopes),
      expires_at: t.expiresAt,
      refresh_expires_at: t.refreshExpiresAt,
      revoked: 0,
      created_at: nowIso(),
    })
    .execute()
}

export async function findOAuthTokenByAccess(db: Executor, digest: string): Promise<OAuthToken | undefined> {
  return db.selectFrom('oauth_tokens').selectAll().where('access_digest', '=', digest).executeTakeFirst()
}

export async function findOAuthTokenByRefresh(db: Executor, digest: string): Promise<OAuthToken | undefined> {
  return db.selectFrom('oauth_tokens').selectAll().where('refresh_digest', '=', digest).executeTakeFirst()
}

/** True when this call revoked the token (false if it already was). */
export async function revokeOAuthToken(db: Executor, id: number): Promise<boolean> {
  const r = await db.updateTable('oauth_tokens').set({ revoked: 1 }).where('id', '=', id).where('revoked', '=', 0).executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

export async function revokeOAuthTokensOfUser(db: Executor, userId: number): Promise<void> {
  await db.updateTable('oauth_tokens').set({ revoked: 1 }).where('user_id', '=', userId).where('revoked', '=', 0).execute()
}

// Device logins (the device authorization grant and the logins it creates)

export async function insertDeviceLogin(
  db: Executor,
  d: {
    deviceCodeDigest: string
    userCodeDigest: string
    clientId: string
    deviceName: string
    scopes: string[]
    expiresAt: string
    intervalSeconds: number
  },
): Promise<DeviceLogin> {
  return db
    .insertInto('device_logins')
    .values({
      device_code_digest: d.deviceCodeDigest,
      user_code_digest: d.userCodeDigest,
      client_id: d.clientId,
      device_name: d.deviceName,
      scopes: JSON.stringify(d.scopes),
      status: 'pending',
      user_id: null,
      refresh_digest: null,
      expires_at: d.expiresAt,
      interval_seconds: d.intervalSeconds,
      last_poll_at: null,
      last_used_at: null,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findDeviceLogin(db: Executor, id: number): Promise<DeviceLogin | undefined> {
  return db.selectFrom('device_logins').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findDeviceLoginByDeviceCode(db: Executor, digest: string): Promise<DeviceLogin | undefined> {
  return db.selectFrom('device_logins').selectAll().where('device_code_digest', '=', digest).executeTakeFirst()
}

export async function findDeviceLoginByUserCode(db: Executor, digest: string): Promise<DeviceLogin | undefined> {
  return db.selectFrom('device_logins').selectAll().where('user_code_digest', '=', digest).executeTakeFirst()
}

export async function findDeviceLoginByRefresh(db: Executor, digest: string): Promise<DeviceLogin | undefined> {
  return db.selectFrom('device_logins').selectAll().where('refresh_digest', '=', digest).executeTakeFirst()
}

/** Records a poll; `intervalSeconds` is raised when the device polled too fast (slow_down). */
export async function touchDevicePoll(db: Executor, id: number, at: string, intervalSeconds: number): Promise<void> {
  await db.updateTable('device_logins').set({ last_poll_at: at, interval_seconds: intervalSeconds }).where('id', '=', id).execute()
}

/** pending → approved or denied by `userId`; false when the code was no longer pending. */
export async function decideDeviceLogin(db: Executor, id: number, userId: number, approve: boolean): Promise<boolean> {
  const r = await db
    .updateTable('device_logins')
    .set({ status: approve ? 'approved' : 'denied', user_id: userId })
    .where('id', '=', id)
    .where('status', '=', 'pending')
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** approved → active with its refresh credential; false when already redeemed (a device code is single use). */
export async function activateDeviceLogin(db: Executor, id: number, refreshDigest: string, expiresAt: string): Promise<boolean> {
  const now = nowIso()
  const r = await db
    .updateTable('device_logins')
    .set({ status: 'active', refresh_digest: refreshDigest, expires_at: expiresAt, last_used_at: now })
    .where('id', '=', id)
    .where('status', '=', 'approved')
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

export async function touchDeviceLogin(db: Executor, id: number, expiresAt: string): Promise<void> {
  await db.updateTable('device_logins').set({ last_used_at: nowIso(), expires_at: expiresAt }).where('id', '=', id).execute()
}

/** True when this call revoked the login (false if it was not active). */
export async function revokeDeviceLogin(db: Executor, id: number): Promise<boolean> {
  const r = await db
    .updateTable('device_logins')
    .set({ status: 'revoked' })
    .where('id', '=', id)
    .where('status', '=', 'active')
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** A page of a user's active logins, newest first, and the total. */
export async function pageDeviceLogins(
  db: Executor,
  userId: number,
  now: string,
  page: { limit: number; offset: number },
): Promise<{ rows: DeviceLogin[]; total: number }> {
  const q = db.selectFrom('device_logins').where('user_id', '=', userId).where('status', '=', 'active').where('expires_at', '>', now)
  const rows = await q.selectAll().orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute()
  const n = await q.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/** Removes flows that ended without becoming a login (expired, denied or never redeemed). */
export async function deleteStaleDeviceFlows(db: Executor, now: string): Promise<void> {
  await db.deleteFrom('device_logins').where('status', 'in', ['pending', 'approved', 'denied']).where('expires_at', '<=', now).execute()
}
