import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Database, DeployToken, PersonalAccessToken } from '../metadata/schema.ts'
import { DEPLOY_TOKEN_PREFIX, PAT_PREFIX, type Credentials } from './credentials.ts'
import * as q from './queries.ts'
import { DEPLOY_TOKEN_SCOPES, PAT_SCOPES } from './roles.ts'
import { newSecret, secretDigest } from '../core/secrets.ts'

const DATE = /^\d{4}-\d{2}-\d{2}$/

function checkScopes(scopes: unknown, allowed: readonly string[]): string[] {
  if (!Array.isArray(scopes) || scopes.length === 0)
    throw new WharfError('BAD_REQUEST', `scopes must be a non-empty list of: ${allowed.join(', ')}`, {})
  const bad = scopes.filter((s) => typeof s !== 'string' || !allowed.includes(s))
  if (bad.length) throw new WharfError('BAD_REQUEST', `unknown scope ${String(bad[0])}; allowed: ${allowed.join(', ')}`, {})
  return [...new Set(scopes as string[])]
}

function checkExpiry(expiresAt: string | null | undefined): string | null {
  if (expiresAt === undefined || expiresAt === null || expiresAt === '') return null
  if (!DATE.test(expiresAt) || Number.isNaN(new Date(expiresAt).getTime()))
    throw new WharfError('BAD_REQUEST', 'expires_at must be a date (YYYY-MM-DD)', {})
  if (new Date(expiresAt).getTime() <= Date.now()) throw new WharfError('BAD_REQUEST', 'expires_at must be in the future', {})
  return expiresAt
}

/** Personal access tokens and deploy tokens: shown once at creation, stored as digests, revocable. */
export class AccessTokens {
  private readonly db: Kysely<Database>
  private readonly credentials: Credentials
  constructor(db: Kysely<Database>, credentials: Credentials) {
    this.db = db
    this.credentials = credentials
  }

  async createPat(
    userId: number,
    input: { name: string; scopes: unknown; expiresAt?: string | null },
    actor: string,
  ): Promise<{ token: string; row: PersonalAccessToken }> {
    if (!input.name || input.name.length > 255) throw new WharfError('BAD_REQUEST', 'name is required (at most 255 characters)', {})
    const scopes = checkScopes(input.scopes, PAT_SCOPES)
    const token = newSecret(PAT_PREFIX)
    const row = await q.insertPat(this.db, {
      userId,
      name: input.name,
      digest: secretDigest(token),
      scopes,
      expiresAt: checkExpiry(input.expiresAt),
    })
    await this.credentials.audit(actor, 'personal_access_token.created', null, { id: row.id, scopes }, `user:${userId}`)
    return { token, row }
  }

  /** A page of personal access tokens (`userId`'s, or all), newest first; `active` filters on not revoked and not expired. */
  pagePats(f: {
    userId?: number | undefined
    active?: boolean | undefined
    limit: number
    offset: number
  }): Promise<{ rows: PersonalAccessToken[]; total: number }> {
    return q.pagePats(this.db, { ...f, now: new Date().toISOString() })
  }

  findPat(id: number): Promise<PersonalAccessToken | undefined> {
    return q.findPat(this.db, id)
  }

  async revokePat(row: PersonalAccessToken, actor: string): Promise<void> {
    await q.revokePat(this.db, row.id)
    this.credentials.forget({ kind: 'pat', id: row.id, userId: row.user_id })
    await this.credentials.audit(actor, 'personal_access_token.revoked', null, { id: row.id }, `user:${row.user_id}`)
  }

  async createDeployToken(
    owner: { projectId: number } | { namespaceId: number },
    input: { name: string; username?: string | null; scopes: unknown; expiresAt?: string | null },
    actor: string,
  ): Promise<{ token: string; row: DeployToken }> {
    if (!input.name || input.name.length > 255) throw new WharfError('BAD_REQUEST', 'name is required (at most 255 characters)', {})
    if (input.username && !/^[a-zA-Z0-9._+-]{1,255}$/.test(input.username))
      throw new WharfError('BAD_REQUEST', 'username may contain letters, digits, ".", "_", "+" and "-"', {})
    const scopes = checkScopes(input.scopes, DEPLOY_TOKEN_SCOPES)
    const token = newSecret(DEPLOY_TOKEN_PREFIX)
    const row = await q.insertDeployToken(this.db, {
      projectId: 'projectId' in owner ? owner.projectId : null,
      namespaceId: 'namespaceId' in owner ? owner.namespaceId : null,
      name: input.name,
      username: input.username || null,
      digest: secretDigest(token),
      scopes,
      expiresAt: checkExpiry(input.expiresAt),
    })
    await this.credentials.audit(
      actor,
      'deploy_token.created',
      null,
      { id: row.id, scopes },
      'projectId' in owner ? `project:${owner.projectId}` : `group:${owner.namespaceId}`,
    )
    return { token, row }
  }

  /** A page of a project's or group's deploy tokens, oldest first; `active` filters on not revoked and not expired. */
  pageDeployTokens(
    where: { projectId?: number; namespaceId?: number },
    f: { active?: boolean | undefined; limit: number; offset: number },
  ): Promise<{ rows: DeployToken[]; total: number }> {
    return q.pageDeployTokens(this.db, { ...where, ...f, now: new Date().toISOString() })
  }

  findDeployToken(id: number): Promise<DeployToken | undefined> {
    return q.findDeployToken(this.db, id)
  }

  async revokeDeployToken(row: DeployToken, actor: string): Promise<void> {
    await q.revokeDeployToken(this.db, row.id)
    this.credentials.forget({ kind: 'deploy-token', id: row.id })
    await this.credentials.audit(
      actor,
      'deploy_token.revoked',
      null,
      { id: row.id },
      row.project_id ? `project:${row.project_id}` : `group:${row.namespace_id}`,
    )
  }
}
