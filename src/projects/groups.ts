import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, atLeast, type Role, type Visibility } from '../auth/roles.ts'
import type { Database, Namespace, User } from '../metadata/schema.ts'
import { validateSegment } from '../core/path-segments.ts'
import { pathTaken } from '../users/queries.ts'
import { checkVisibilityWithin, VISIBILITY_RANK, type ProjectAccess } from './access-levels.ts'
import * as q from './queries.ts'
import type { Projects } from './service.ts'

export interface NewGroup {
  path: string
  name?: string
  parentId?: number | null
  visibility?: Visibility
  description?: string
}

/** Groups (nested) and namespaces: creation, lookup by id or path, listings, settings and deletion. */
export class Groups {
  private readonly db: Kysely<Database>
  private readonly access: ProjectAccess
  private readonly projects: Projects
  constructor(db: Kysely<Database>, access: ProjectAccess, projects: Projects) {
    this.db = db
    this.access = access
    this.projects = projects
  }

  /** Creates a group (or subgroup); the creator becomes its owner. */
  async createGroup(actor: User, input: NewGroup): Promise<Namespace> {
    validateSegment(input.path, 'group')
    return this.db.transaction().execute(async (trx) => {
      let fullPath = input.path
      if (input.parentId) {
        const parent = await q.findNamespace(trx, input.parentId)
        if (parent?.kind !== 'group') throw new WharfError('NOT_FOUND', 'parent group not found', { parentId: input.parentId })
        if (!(await this.access.canAdminNamespace(trx, actor, parent)))
          throw new WharfError('FORBIDDEN', 'you need the maintainer role in the parent group to create a subgroup', {})
        fullPath = `${parent.full_path}/${input.path}`
      }
      if (await pathTaken(trx, fullPath))
        throw new WharfError('CONFLICT', `the path ${fullPath} is already taken (paths are unique regardless of letter case)`, {
          path: fullPath,
        })
      const ns = await q.insertNamespace(trx, {
        kind: 'group',
        name: input.name ?? input.path,
        path: input.path,
        fullPath,
        parentId: input.parentId ?? null,
        ownerId: null,
        visibility: input.visibility ?? 'private',
        description: input.description ?? '',
      })
      await q.upsertMember(trx, 'namespace', ns.id, actor.id, ACCESS_LEVELS.owner, null)
      return ns
    })
  }

  /** createGroup with GitLab's visibility rule checked first. */
  async createGroupChecked(actor: User, input: NewGroup): Promise<Namespace> {
    const parent = input.parentId ? await q.findNamespace(this.db, input.parentId) : undefined
    checkVisibilityWithin(parent, input.visibility ?? 'private', 'group')
    return this.createGroup(actor, input)
  }

  /** A group by numeric id or full path; user namespaces are not groups. */
  async findGroupRef(ref: string | number): Promise<Namespace | undefined> {
    const s = String(ref)
    const ns = /^\d+$/.test(s) ? await q.findNamespace(this.db, Number(s)) : await q.findNamespaceByPath(this.db, s)
    return ns?.kind === 'group' ? ns : undefined
  }

  /** A group by its full path only (a path may be all digits, so it is never read as an id). */
  async findGroupByPath(path: string): Promise<Namespace | undefined> {
    const ns = await q.findNamespaceByPath(this.db, path)
    return ns?.kind === 'group' ? ns : undefined
  }

  /** A namespace (user or group) by numeric id or full path. */
  async findNamespaceRef(ref: string | number): Promise<Namespace | undefined> {
    const s = String(ref)
    return /^\d+$/.test(s) ? q.findNamespace(this.db, Number(s)) : q.findNamespaceByPath(this.db, s)
  }

  async userNamespaceOf(userId: number): Promise<Namespace> {
    const ns = await q.userNamespace(this.db, userId)
    if (!ns) throw new WharfError('NOT_FOUND', 'Namespace Not Found', {})
    return ns
  }

  async groupFor(p: Principal, ref: string | number, role?: Role): Promise<{ group: Namespace; level: number | undefined }> {
    const group = await this.findGroupRef(ref)
    const level = group && (await this.access.levelOnGroup(p, group))
    if (!group || !this.access.canSee(p, group.visibility, level)) throw new WharfError('NOT_FOUND', 'Group Not Found', {})
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${group.full_path}`, { needs: role })
    return { group, level }
  }

  async visibleGroups(
    p: Principal,
    opts: { search?: string | undefined; owned?: boolean | undefined; topLevelOnly?: boolean | undefined; limit: number; offset: number },
  ): Promise<{ rows: Namespace[]; total: number }> {
    const filter: q.GroupFilter = { search: opts.search, topLevelOnly: opts.topLevelOnly }
    if (p.kind === 'user') {
      const mine = await q.activeMembershipsOf(this.db, p.userId)
      if (!p.isAdmin) {
        const ns = await this.access.withDescendants(new Set(mine.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id)))
        filter.visibleTo = { ids: [], namespaceIds: [...ns], visibilities: ['public', 'internal'] }
      }
      if (opts.owned)
        filter.onlyIds = mine.filter((m) => m.source_kind === 'namespace' && m.access_level >= ACCESS_LEVELS.owner).map((m) => m.source_id)
    } else {
      if (opts.owned) return { rows: [], total: 0 }
      filter.visibleTo = { ids: [], namespaceIds: [], visibilities: ['public'] }
    }
    return q.searchGroups(this.db, filter, opts)
  }

  /**
   * GitLab's `GET /namespaces`: the caller's own namespace and the groups they are a member of, with
   * their subgroups (administrators: every namespace). Signed-in users only.
   */
  async namespacesFor(
    p: Principal,
    opts: { search?: string | undefined; limit: number; offset: number },
  ): Promise<{ rows: Namespace[]; total: number }> {
    if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'sign in (a personal access token or OAuth token) to do this', {})
    if (p.isAdmin) return q.pageNamespaces(this.db, { ids: undefined, search: opts.search }, opts)
    const mine = await q.activeMembershipsOf(this.db, p.userId)
    const groups = await this.access.withDescendants(new Set(mine.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id)))
    const own = await q.userNamespace(this.db, p.userId)
    return q.pageNamespaces(this.db, { ids: [...(own ? [own.id] : []), ...groups], search: opts.search }, opts)
  }

  async updateGroupSettings(
    group: Namespace,
    set: { name?: string | undefined; description?: string | undefined; visibility?: Visibility | undefined },
  ): Promise<Namespace> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255))
      throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.visibility) {
      const v = set.visibility
      checkVisibilityWithin(group.parent_id ? await q.findNamespace(this.db, group.parent_id) : undefined, v, 'group')
      const moreOpen = [
        ...(await q.childGroups(this.db, group.id)),
        ...(await q.listProjects(this.db, { namespaceIds: [group.id], limit: 1_000_000, offset: 0 })),
      ].find((c) => VISIBILITY_RANK[c.visibility] > VISIBILITY_RANK[v])
      if (moreOpen)
        throw new WharfError('BAD_REQUEST', `visibility ${v} is not allowed: ${moreOpen.full_path} inside it is ${moreOpen.visibility}`, {
          visibility: v,
        })
    }
    const change: Parameters<typeof q.updateNamespace>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.description !== undefined) change.description = set.description
    if (set.visibility !== undefined) change.visibility = set.visibility
    if (Object.keys(change).length) await q.updateNamespace(this.db, group.id, change)
    return (await q.findNamespace(this.db, group.id))!
  }

  /** Deletes a group, its subgroups and projects (and their memberships and images). */
  async deleteGroup(group: Namespace): Promise<void> {
    const deleted = await this.db.transaction().execute(async (trx) => {
      // Inside the transaction, only `trx` may be used: the SQLite dialect has one connection.
      const nsIds = [...(await this.access.withDescendants(new Set([group.id]), trx))]
      const projects = await q.projectsInNamespaces(trx, nsIds)
      await this.projects.deleteRepositoriesUnder(trx, group.full_path_lower)
      await q.deleteMembersOf(
        trx,
        'project',
        projects.map((x) => x.id),
      )
      await q.deleteMembersOf(trx, 'namespace', nsIds)
      await q.deleteNamespace(trx, group.id)
      return projects.map((x) => x.id)
    })
    await this.projects.projectsDeleted(deleted)
  }
}
