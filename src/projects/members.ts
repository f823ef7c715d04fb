import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { ACCESS_LEVELS, atLeast } from '../auth/roles.ts'
import type { Database, Namespace, Project } from '../metadata/schema.ts'
import { findUser } from '../users/queries.ts'
import type { ProjectAccess } from './access-levels.ts'
import * as q from './queries.ts'

/** Direct and inherited members of projects and groups (GitLab: maintainers manage members; only owners grant, change or remove the owner role). */
export class Members {
  private readonly db: Kysely<Database>
  private readonly access: ProjectAccess
  constructor(db: Kysely<Database>, access: ProjectAccess) {
    this.db = db
    this.access = access
  }

  /** A page of direct members, by username. */
  pageDirectMembers(kind: q.SourceKind, sourceId: number, page: { limit: number; offset: number }) {
    return q.pageMembers(this.db, [{ kind, id: sourceId }], page)
  }

  /** A page of direct and inherited members with their effective (highest) level, by username. */
  async pageAllMembers(kind: q.SourceKind, source: Project | Namespace, page: { limit: number; offset: number }) {
    const nsId = kind === 'project' ? (source as Project).namespace_id : source.id
    const chain = await this.access.namespaceChain(nsId)
    const groups = chain.filter((n) => n.kind === 'group').map((n) => ({ kind: 'namespace' as const, id: n.id }))
    return q.pageMembers(this.db, [...(kind === 'project' ? [{ kind: 'project' as const, id: source.id }] : []), ...groups], page)
  }

  findMember(kind: q.SourceKind, sourceId: number, userId: number) {
    return q.findMember(this.db, kind, sourceId, userId)
  }

  async addMember(
    actorLevel: number | undefined,
    kind: q.SourceKind,
    sourceId: number,
    userId: number,
    level: number,
    expiresAt: string | null | undefined,
  ) {
    checkMemberInput(actorLevel, level)
    const user = await findUser(this.db, userId)
    if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    const expires = checkMemberExpiry(expiresAt)
    return this.db.transaction().execute(async (trx) => {
      if (await q.findMember(trx, kind, sourceId, userId)) throw new WharfError('CONFLICT', 'Member already exists', { userId })
      await q.upsertMember(trx, kind, sourceId, userId, level, expires)
      return (await q.findMember(trx, kind, sourceId, userId))!
    })
  }

  async updateMember(
    actorLevel: number | undefined,
    kind: q.SourceKind,
    sourceId: number,
    userId: number,
    level: number,
    expiresAt: string | null | undefined,
  ) {
    checkMemberInput(actorLevel, level)
    return this.db.transaction().execute(async (trx) => {
      const cur = await q.findMember(trx, kind, sourceId, userId)
      if (!cur) throw new WharfError('NOT_FOUND', 'Member Not Found', {})
      if (cur.access_level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner'))
        throw new WharfError('FORBIDDEN', 'only owners can change an owner', {})
      if (
        kind === 'namespace' &&
        cur.access_level >= ACCESS_LEVELS.owner &&
        level < ACCESS_LEVELS.owner &&
        (await q.countMembersAtLeast(trx, kind, sourceId, ACCESS_LEVELS.owner)) <= 1
      ) {
        throw new WharfError('FORBIDDEN', 'a group needs at least one owner', {})
      }
      const expires = expiresAt === undefined ? cur.expires_at : checkMemberExpiry(expiresAt)
      await q.upsertMember(trx, kind, sourceId, userId, level, expires)
      return (await q.findMember(trx, kind, sourceId, userId))!
    })
  }

  /**
   * Sets a user's membership of a group as an identity provider's group mapping says (no actor: the
   * provider decides): `level` null removes it. A group's last owner is never removed or demoted
   * this way, so a mapping cannot leave a group ownerless. Returns whether anything changed.
   */
  async syncGroupMember(groupId: number, userId: number, level: number | null): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const cur = await q.findMember(trx, 'namespace', groupId, userId)
      if ((cur?.access_level ?? null) === level) return false
      if (
        cur &&
        cur.access_level >= ACCESS_LEVELS.owner &&
        (level === null || level < ACCESS_LEVELS.owner) &&
        (await q.countMembersAtLeast(trx, 'namespace', groupId, ACCESS_LEVELS.owner)) <= 1
      )
        return false
      if (level === null) await q.deleteMember(trx, 'namespace', groupId, userId)
      else await q.upsertMember(trx, 'namespace', groupId, userId, level, null)
      return true
    })
  }

  /** Removes a member; members may always leave, except the last owner of a group. */
  async removeMember(actorLevel: number | undefined, actorId: number, kind: q.SourceKind, sourceId: number, userId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const cur = await q.findMember(trx, kind, sourceId, userId)
      if (!cur) throw new WharfError('NOT_FOUND', 'Member Not Found', {})
      if (userId !== actorId) {
        if (!atLeast(actorLevel, 'maintainer')) throw new WharfError('FORBIDDEN', 'this needs the maintainer role', { needs: 'maintainer' })
        if (cur.access_level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner'))
          throw new WharfError('FORBIDDEN', 'only owners can remove an owner', {})
      }
      if (
        kind === 'namespace' &&
        cur.access_level >= ACCESS_LEVELS.owner &&
        (await q.countMembersAtLeast(trx, kind, sourceId, ACCESS_LEVELS.owner)) <= 1
      ) {
        throw new WharfError('FORBIDDEN', 'a group needs at least one owner', {})
      }
      await q.deleteMember(trx, kind, sourceId, userId)
    })
  }
}

function checkMemberInput(actorLevel: number | undefined, level: number): void {
  if (!(Object.values(ACCESS_LEVELS) as number[]).includes(level))
    throw new WharfError('BAD_REQUEST', 'access_level must be 10, 20, 30, 40 or 50', {})
  if (!atLeast(actorLevel, 'maintainer'))
    throw new WharfError('FORBIDDEN', 'managing members needs the maintainer role', { needs: 'maintainer' })
  if (level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner'))
    throw new WharfError('FORBIDDEN', 'only owners can grant the owner role', {})
}

function checkMemberExpiry(expiresAt: string | null | undefined): string | null {
  if (expiresAt === undefined || expiresAt === null || expiresAt === '') return null
  if (!/^\d{4}-\d{2}-\d{2}$/.test(expiresAt) || Number.isNaN(new Date(expiresAt).getTime()))
    throw new WharfError('BAD_REQUEST', 'expires_at must be a date (YYYY-MM-DD)', {})
  if (new Date(expiresAt).getTime() <= Date.now()) throw new WharfError('BAD_REQUEST', 'expires_at must be in the future', {})
  return expiresAt
}
