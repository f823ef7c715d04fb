import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { GroupFacts, ProjectFacts } from '../auth/access.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, atLeast, type Role, type Visibility } from '../auth/roles.ts'
import { hashPassword } from '../auth/secrets.ts'
import type { Database, Namespace, Project, User } from '../metadata/schema.ts'
import { validateSegment } from './paths.ts'
import * as registryQueries from '../registry/queries.ts'
import * as q from './queries.ts'

export interface NewUser {
  username: string
  name?: string
  email?: string | null
  /** null: an account without a password (tokens only). */
  password?: string | null
  isAdmin?: boolean
}

export interface NewGroup {
  path: string
  name?: string
  parentId?: number | null
  visibility?: Visibility
  description?: string
}

export interface NewProject {
  namespaceId: number
  path: string
  name?: string
  visibility?: Visibility
  description?: string
}

/** Users, groups, projects and memberships, and the access levels they imply. */
export class Projects {
  readonly db: Kysely<Database>
  private readonly deletionListeners: Array<(projectIds: number[]) => Promise<void>> = []
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  async createUser(input: NewUser): Promise<User> {
    validateSegment(input.username, 'username')
    if (input.password !== undefined && input.password !== null && input.password.length < 8) {
      throw new WharfError('BAD_REQUEST', 'password is too short (minimum is 8 characters)', {})
    }
    const passwordHash = input.password ? await hashPassword(input.password) : null
    return this.db.transaction().execute(async (trx) => {
      if ((await q.findUserByUsername(trx, input.username)) || (await q.pathTaken(trx, input.username))) {
        throw new WharfError('CONFLICT', `username ${input.username} is already taken`, { username: input.username })
      }
      const user = await q.insertUser(trx, { username: input.username, name: input.name ?? input.username, email: input.email ?? null, passwordHash, isAdmin: input.isAdmin ?? false })
      await q.insertNamespace(trx, { kind: 'user', name: user.name, path: user.username, fullPath: user.username, parentId: null, ownerId: user.id, visibility: 'public', description: '' })
      return user
    })
  }

  async setPassword(userId: number, password: string): Promise<void> {
    if (password.length < 8) throw new WharfError('BAD_REQUEST', 'password is too short (minimum is 8 characters)', {})
    await q.updateUser(this.db, userId, { password_hash: await hashPassword(password) })
  }

  /** Creates a group (or subgroup); the creator becomes its owner. */
  async createGroup(actor: User, input: NewGroup): Promise<Namespace> {
    validateSegment(input.path, 'group')
    return this.db.transaction().execute(async (trx) => {
      let fullPath = input.path
      if (input.parentId) {
        const parent = await q.findNamespace(trx, input.parentId)
        if (parent?.kind !== 'group') throw new WharfError('NOT_FOUND', 'parent group not found', { parentId: input.parentId })
        if (!(await this.canAdminNamespace(trx, actor, parent))) throw new WharfError('FORBIDDEN', 'you need the maintainer role in the parent group to create a subgroup', {})
        fullPath = `${parent.full_path}/${input.path}`
      }
      if (await q.pathTaken(trx, fullPath)) throw new WharfError('CONFLICT', `the path ${fullPath} is already taken (paths are unique regardless of letter case)`, { path: fullPath })
      const ns = await q.insertNamespace(trx, { kind: 'group', name: input.name ?? input.path, path: input.path, fullPath, parentId: input.parentId ?? null, ownerId: null, visibility: input.visibility ?? 'private', description: input.description ?? '' })
      await q.upsertMember(trx, 'namespace', ns.id, actor.id, ACCESS_LEVELS.owner, null)
      return ns
    })
  }

  async createProject(actor: User, input: NewProject): Promise<Project> {
    validateSegment(input.path, 'project')
    return this.db.transaction().execute(async (trx) => {
      const ns = await q.findNamespace(trx, input.namespaceId)
      if (!ns) throw new WharfError('NOT_FOUND', 'namespace not found', { namespaceId: input.namespaceId })
      const level = await this.namespaceLevel(trx, actor, ns)
      if (!actor.is_admin && !(level !== undefined && level >= ACCESS_LEVELS.maintainer)) {
        throw new WharfError('FORBIDDEN', `you cannot create projects in ${ns.full_path}`, { namespace: ns.full_path })
      }
      const fullPath = `${ns.full_path}/${input.path}`
      if (await q.pathTaken(trx, fullPath)) throw new WharfError('CONFLICT', `the path ${fullPath} is already taken (paths are unique regardless of letter case)`, { path: fullPath })
      return q.insertProject(trx, { namespaceId: ns.id, name: input.name ?? input.path, path: input.path, fullPath, visibility: input.visibility ?? 'private', description: input.description ?? '', creatorId: actor.id })
    })
  }

  /** Ancestors of a namespace, nearest first, including itself. */
  async namespaceChain(db: Kysely<Database> | Parameters<typeof q.findNamespace>[0], namespaceId: number): Promise<Namespace[]> {
    const chain: Namespace[] = []
    let id: number | null = namespaceId
    while (id !== null && chain.length < 32) {
      const ns: Namespace | undefined = await q.findNamespace(db, id)
      if (!ns) break
      chain.push(ns)
      id = ns.parent_id
    }
    return chain
  }

  /** A user's effective level on a namespace: owner of their own, else the highest membership up the chain. */
  async namespaceLevel(db: Parameters<typeof q.findNamespace>[0], user: Pick<User, 'id'>, ns: Namespace): Promise<number | undefined> {
    const chain = await this.namespaceChain(db, ns.id)
    if (chain.some((n) => n.kind === 'user' && n.owner_id === user.id)) return ACCESS_LEVELS.owner
    const levels = await q.memberLevels(db, user.id, chain.map((n) => ({ kind: 'namespace' as const, id: n.id })))
    return levels.length ? Math.max(...levels) : undefined
  }

  /** A user's effective level on a project: direct membership or inherited from its namespaces. */
  async projectLevel(user: Pick<User, 'id'>, project: Project): Promise<number | undefined> {
    const chain = await this.namespaceChain(this.db, project.namespace_id)
    if (chain.some((n) => n.kind === 'user' && n.owner_id === user.id)) return ACCESS_LEVELS.owner
    const levels = await q.memberLevels(this.db, user.id, [{ kind: 'project', id: project.id }, ...chain.map((n) => ({ kind: 'namespace' as const, id: n.id }))])
    return levels.length ? Math.max(...levels) : undefined
  }

  async canAdminNamespace(db: Parameters<typeof q.findNamespace>[0], actor: User, ns: Namespace): Promise<boolean> {
    if (actor.is_admin) return true
    const level = await this.namespaceLevel(db, actor, ns)
    return level !== undefined && level >= ACCESS_LEVELS.maintainer
  }

  /** Authorization facts for the project owning a registry repository, or undefined when no project owns it. */
  async repositoryFacts(p: Principal, repository: string): Promise<ProjectFacts | undefined> {
    const project = await q.projectForRepository(this.db, repository)
    if (!project) return undefined
    return this.projectFacts(p, project)
  }

  async projectFacts(p: Principal, project: Project): Promise<ProjectFacts> {
    const facts: ProjectFacts = { projectId: project.id, visibility: project.visibility, accessLevel: undefined, deployTokenApplies: false }
    if (p.kind === 'user') facts.accessLevel = await this.projectLevel({ id: p.userId }, project)
    if (p.kind === 'deploy-token') {
      if (p.projectId === project.id) facts.deployTokenApplies = true
      else if (p.namespaceId !== null) facts.deployTokenApplies = (await this.namespaceChain(this.db, project.namespace_id)).some((n) => n.id === p.namespaceId)
    }
    return facts
  }

  /** Facts for the dependency proxy of the group at `groupPath`; undefined when no such group exists. */
  async dependencyProxyFacts(p: Principal, groupPath: string): Promise<GroupFacts | undefined> {
    const group = await q.findNamespaceByPath(this.db, groupPath)
    if (group?.kind !== 'group') return undefined
    const facts: GroupFacts = { groupId: group.id, accessLevel: undefined, deployTokenApplies: false, jobProjectInGroup: false }
    if (p.kind === 'user') facts.accessLevel = await this.namespaceLevel(this.db, { id: p.userId }, group)
    if (p.kind === 'deploy-token' && p.namespaceId !== null) facts.deployTokenApplies = (await this.namespaceChain(this.db, group.id)).some((n) => n.id === p.namespaceId)
    if (p.kind === 'job') {
      const project = await q.findProject(this.db, p.projectId)
      facts.jobProjectInGroup = project !== undefined && (await this.namespaceChain(this.db, project.namespace_id)).some((n) => n.id === group.id)
    }
    return facts
  }

  /**
   * Lowercased full paths of every project the principal may read (for the catalog and listings).
   * Admins see everything; undefined means "no restriction".
   */
  async readableProjectPaths(p: Principal): Promise<Set<string> | undefined> {
    if (p.kind === 'user' && p.isAdmin) return undefined
    const visibilities: Visibility[] = p.kind === 'user' ? ['public', 'internal'] : ['public']
    const ids: number[] = []
    if (p.kind === 'user') {
      const mine = await q.activeMembershipsOf(this.db, p.userId)
      ids.push(...mine.filter((m) => m.source_kind === 'project' && m.access_level >= ACCESS_LEVELS.reporter).map((m) => m.source_id))
      const groupIds = new Set(mine.filter((m) => m.source_kind === 'namespace' && m.access_level >= ACCESS_LEVELS.reporter).map((m) => m.source_id))
      const own = await q.userNamespace(this.db, p.userId)
      if (own) groupIds.add(own.id)
      // Memberships are inherited by subgroups: widen to every descendant namespace.
      const all = await q.allNamespaces(this.db)
      let grew = true
      while (grew) {
        grew = false
        for (const n of all) {
          if (n.parent_id !== null && groupIds.has(n.parent_id) && !groupIds.has(n.id)) {
            groupIds.add(n.id)
            grew = true
          }
        }
      }
      const inGroups = await q.listProjects(this.db, { namespaceIds: [...groupIds], limit: 1_000_000, offset: 0 })
      ids.push(...inGroups.map((x) => x.id))
    }
    if (p.kind === 'deploy-token' && p.projectId !== null) ids.push(p.projectId)
    const rows = await q.listProjects(this.db, { ids, visibilities, limit: 1_000_000, offset: 0 })
    return new Set(rows.map((r) => r.full_path_lower))
  }

  // ---- REST API (src/projects/routes.ts, src/auth/api-routes.ts): lookups, visibility, management ----

  /** The active user behind a principal; UNAUTHORIZED for anonymous callers or gone/blocked users. */
  async actor(p: Principal): Promise<User> {
    if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'sign in (a personal access token or OAuth token) to do this', {})
    const user = await q.findUser(this.db, p.userId)
    if (user?.state !== 'active') throw new WharfError('UNAUTHORIZED', 'the account is blocked or no longer exists', {})
    return user
  }

  /** A project by numeric id or (URL-decoded) full path, as GitLab's `:id`. */
  async findProjectRef(ref: string | number): Promise<Project | undefined> {
    const s = String(ref)
    return /^\d+$/.test(s) ? q.findProject(this.db, Number(s)) : q.findProjectByPath(this.db, s)
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

  /** Effective level of a principal on a project; administrators count as owners. */
  async levelOnProject(p: Principal, project: Project): Promise<number | undefined> {
    if (p.kind !== 'user') return undefined
    if (p.isAdmin) return ACCESS_LEVELS.owner
    return this.projectLevel({ id: p.userId }, project)
  }

  async levelOnGroup(p: Principal, ns: Namespace): Promise<number | undefined> {
    if (p.kind !== 'user') return undefined
    if (p.isAdmin) return ACCESS_LEVELS.owner
    return this.namespaceLevel(this.db, { id: p.userId }, ns)
  }

  /** Project metadata is visible when public, internal to signed-in users, otherwise to members (guest+). */
  canSee(p: Principal, visibility: Visibility, level: number | undefined): boolean {
    return visibility === 'public' || (visibility === 'internal' && p.kind === 'user') || level !== undefined
  }

  /**
   * A project the principal may see, and their level; NOT_FOUND otherwise (hidden projects look missing).
   * With `role`, FORBIDDEN unless the principal has at least that role.
   */
  async projectFor(p: Principal, ref: string | number, role?: Role): Promise<{ project: Project; level: number | undefined }> {
    const project = await this.findProjectRef(ref)
    const level = project && (await this.levelOnProject(p, project))
    if (!project || !this.canSee(p, project.visibility, level)) throw new WharfError('NOT_FOUND', 'Project Not Found', {})
    if (role && !atLeast(level, role)) throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return { project, level }
  }

  async groupFor(p: Principal, ref: string | number, role?: Role): Promise<{ group: Namespace; level: number | undefined }> {
    const group = await this.findGroupRef(ref)
    const level = group && (await this.levelOnGroup(p, group))
    if (!group || !this.canSee(p, group.visibility, level)) throw new WharfError('NOT_FOUND', 'Group Not Found', {})
    if (role && !atLeast(level, role)) throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${group.full_path}`, { needs: role })
    return { group, level }
  }

  /** Namespaces a user belongs to (any role), widened to their descendants, plus their own namespace. */
  private async memberNamespaceIds(userId: number, memberships: Array<{ source_kind: string; source_id: number }>): Promise<number[]> {
    const ids = new Set(memberships.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id))
    const own = await q.userNamespace(this.db, userId)
    if (own) ids.add(own.id)
    return [...(await this.withDescendants(ids))]
  }

  private async withDescendants(ids: Set<number>, db: Parameters<typeof q.allNamespaces>[0] = this.db): Promise<Set<number>> {
    const all = await q.allNamespaces(db)
    let grew = true
    while (grew) {
      grew = false
      for (const n of all) {
        if (n.parent_id !== null && ids.has(n.parent_id) && !ids.has(n.id)) {
          ids.add(n.id)
          grew = true
        }
      }
    }
    return ids
  }

  /** Projects the principal may see, GitLab's GET /projects filters applied. */
  async visibleProjects(
    p: Principal,
    opts: { search?: string | undefined; owned?: boolean | undefined; membership?: boolean | undefined; visibility?: Visibility | undefined; withinGroup?: number | undefined; limit: number; offset: number },
  ): Promise<{ rows: Project[]; total: number }> {
    const filter: q.ProjectFilter = { search: opts.search, visibility: opts.visibility }
    if (opts.withinGroup !== undefined) filter.namespaceIds = [...(await this.withDescendants(new Set([opts.withinGroup])))]
    if (p.kind === 'user') {
      const mine = await q.activeMembershipsOf(this.db, p.userId)
      const memberIds = mine.filter((m) => m.source_kind === 'project').map((m) => m.source_id)
      const memberNs = await this.memberNamespaceIds(p.userId, mine)
      if (!p.isAdmin) filter.visibleTo = { ids: memberIds, namespaceIds: memberNs, visibilities: ['public', 'internal'] }
      if (opts.owned) {
        const own = await q.userNamespace(this.db, p.userId)
        filter.only = { ids: [], namespaceIds: own ? [own.id] : [] }
      } else if (opts.membership) filter.only = { ids: memberIds, namespaceIds: memberNs }
    } else {
      if (opts.owned || opts.membership) return { rows: [], total: 0 }
      filter.visibleTo = { ids: [], namespaceIds: [], visibilities: ['public'] }
    }
    return q.searchProjects(this.db, filter, opts)
  }

  async visibleGroups(
    p: Principal,
    opts: { search?: string | undefined; owned?: boolean | undefined; topLevelOnly?: boolean | undefined; limit: number; offset: number },
  ): Promise<{ rows: Namespace[]; total: number }> {
    const filter: q.GroupFilter = { search: opts.search, topLevelOnly: opts.topLevelOnly }
    if (p.kind === 'user') {
      const mine = await q.activeMembershipsOf(this.db, p.userId)
      if (!p.isAdmin) {
        const ns = await this.withDescendants(new Set(mine.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id)))
        filter.visibleTo = { ids: [], namespaceIds: [...ns], visibilities: ['public', 'internal'] }
      }
      if (opts.owned) filter.onlyIds = mine.filter((m) => m.source_kind === 'namespace' && m.access_level >= ACCESS_LEVELS.owner).map((m) => m.source_id)
    } else {
      if (opts.owned) return { rows: [], total: 0 }
      filter.visibleTo = { ids: [], namespaceIds: [], visibilities: ['public'] }
    }
    return q.searchGroups(this.db, filter, opts)
  }

  /** A project or subgroup may not be more visible than the group holding it (as GitLab). */
  private checkVisibilityWithin(parent: Namespace | undefined, visibility: Visibility, what: string): void {
    if (parent && parent.kind === 'group' && VISIBILITY_RANK[visibility] > VISIBILITY_RANK[parent.visibility]) {
      throw new WharfError('BAD_REQUEST', `${what} visibility ${visibility} is not allowed: ${parent.full_path} is ${parent.visibility}`, { visibility })
    }
  }

  /** createGroup with GitLab's visibility rule checked first. */
  async createGroupChecked(actor: User, input: NewGroup): Promise<Namespace> {
    const parent = input.parentId ? await q.findNamespace(this.db, input.parentId) : undefined
    this.checkVisibilityWithin(parent, input.visibility ?? 'private', 'group')
    return this.createGroup(actor, input)
  }

  /** createProject with GitLab's visibility rule checked first. */
  async createProjectChecked(actor: User, input: NewProject): Promise<Project> {
    this.checkVisibilityWithin(await q.findNamespace(this.db, input.namespaceId), input.visibility ?? 'private', 'project')
    return this.createProject(actor, input)
  }

  async updateProjectSettings(project: Project, set: { name?: string | undefined; description?: string | undefined; visibility?: Visibility | undefined }): Promise<Project> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255)) throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.visibility) this.checkVisibilityWithin(await q.findNamespace(this.db, project.namespace_id), set.visibility, 'project')
    // Field by field: whatever else the caller's object carries never reaches the UPDATE.
    const change: Parameters<typeof q.updateProject>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.description !== undefined) change.description = set.description
    if (set.visibility !== undefined) change.visibility = set.visibility
    if (Object.keys(change).length) await q.updateProject(this.db, project.id, change)
    return (await q.findProject(this.db, project.id))!
  }

  async updateGroupSettings(group: Namespace, set: { name?: string | undefined; description?: string | undefined; visibility?: Visibility | undefined }): Promise<Namespace> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255)) throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.visibility) {
      const v = set.visibility
      this.checkVisibilityWithin(group.parent_id ? await q.findNamespace(this.db, group.parent_id) : undefined, v, 'group')
      const moreOpen = [...(await q.childGroups(this.db, group.id)), ...(await q.listProjects(this.db, { namespaceIds: [group.id], limit: 1_000_000, offset: 0 }))].find(
        (c) => VISIBILITY_RANK[c.visibility] > VISIBILITY_RANK[v],
      )
      if (moreOpen) throw new WharfError('BAD_REQUEST', `visibility ${v} is not allowed: ${moreOpen.full_path} inside it is ${moreOpen.visibility}`, { visibility: v })
    }
    const change: Parameters<typeof q.updateNamespace>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.description !== undefined) change.description = set.description
    if (set.visibility !== undefined) change.visibility = set.visibility
    if (Object.keys(change).length) await q.updateNamespace(this.db, group.id, change)
    return (await q.findNamespace(this.db, group.id))!
  }

  /**
   * Deletes a project with its memberships, deploy tokens and registry repositories (manifests and tags;
   * blobs are left to GC). Images must not survive their project: a new project at the same path would inherit them.
   */
  async deleteProject(project: Project): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await registryQueries.deleteRepositoriesUnder(trx, project.full_path_lower)
      await q.deleteMembersOf(trx, 'project', [project.id])
      await q.deleteProject(trx, project.id)
    })
    await this.projectsDeleted([project.id])
  }

  /** Subscribes to project deletions (after they are committed): git removes the repositories. */
  onProjectsDeleted(listener: (projectIds: number[]) => Promise<void>): void {
    this.deletionListeners.push(listener)
  }

  private async projectsDeleted(ids: number[]): Promise<void> {
    for (const l of this.deletionListeners) await l(ids)
  }

  /** Deletes a group, its subgroups and projects (and their memberships and images). */
  async deleteGroup(group: Namespace): Promise<void> {
    const deleted = await this.db.transaction().execute(async (trx) => {
      // Inside the transaction, only `trx` may be used: the SQLite dialect has one connection.
      const nsIds = [...(await this.withDescendants(new Set([group.id]), trx))]
      const projects = await q.projectsInNamespaces(trx, nsIds)
      await registryQueries.deleteRepositoriesUnder(trx, group.full_path_lower)
      await q.deleteMembersOf(trx, 'project', projects.map((x) => x.id))
      await q.deleteMembersOf(trx, 'namespace', nsIds)
      await q.deleteNamespace(trx, group.id)
      return projects.map((x) => x.id)
    })
    await this.projectsDeleted(deleted)
  }

  // Members (GitLab: maintainers manage members; only owners grant, change or remove the owner role).

  /** A page of direct members, by username. */
  pageDirectMembers(kind: q.SourceKind, sourceId: number, page: { limit: number; offset: number }) {
    return q.pageMembers(this.db, [{ kind, id: sourceId }], page)
  }

  /** A page of direct and inherited members with their effective (highest) level, by username. */
  async pageAllMembers(kind: q.SourceKind, source: Project | Namespace, page: { limit: number; offset: number }) {
    const nsId = kind === 'project' ? (source as Project).namespace_id : source.id
    const chain = await this.namespaceChain(this.db, nsId)
    const groups = chain.filter((n) => n.kind === 'group').map((n) => ({ kind: 'namespace' as const, id: n.id }))
    return q.pageMembers(this.db, [...(kind === 'project' ? [{ kind: 'project' as const, id: source.id }] : []), ...groups], page)
  }

  findMember(kind: q.SourceKind, sourceId: number, userId: number) {
    return q.findMember(this.db, kind, sourceId, userId)
  }

  async addMember(actorLevel: number | undefined, kind: q.SourceKind, sourceId: number, userId: number, level: number, expiresAt: string | null | undefined) {
    checkMemberInput(actorLevel, level)
    const user = await q.findUser(this.db, userId)
    if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    const expires = checkMemberExpiry(expiresAt)
    return this.db.transaction().execute(async (trx) => {
      if (await q.findMember(trx, kind, sourceId, userId)) throw new WharfError('CONFLICT', 'Member already exists', { userId })
      await q.upsertMember(trx, kind, sourceId, userId, level, expires)
      return (await q.findMember(trx, kind, sourceId, userId))!
    })
  }

  async updateMember(actorLevel: number | undefined, kind: q.SourceKind, sourceId: number, userId: number, level: number, expiresAt: string | null | undefined) {
    checkMemberInput(actorLevel, level)
    return this.db.transaction().execute(async (trx) => {
      const cur = await q.findMember(trx, kind, sourceId, userId)
      if (!cur) throw new WharfError('NOT_FOUND', 'Member Not Found', {})
      if (cur.access_level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner')) throw new WharfError('FORBIDDEN', 'only owners can change an owner', {})
      if (kind === 'namespace' && cur.access_level >= ACCESS_LEVELS.owner && level < ACCESS_LEVELS.owner && (await q.countMembersAtLeast(trx, kind, sourceId, ACCESS_LEVELS.owner)) <= 1) {
        throw new WharfError('FORBIDDEN', 'a group needs at least one owner', {})
      }
      const expires = expiresAt === undefined ? cur.expires_at : checkMemberExpiry(expiresAt)
      await q.upsertMember(trx, kind, sourceId, userId, level, expires)
      return (await q.findMember(trx, kind, sourceId, userId))!
    })
  }

  /** Removes a member; members may always leave, except the last owner of a group. */
  async removeMember(actorLevel: number | undefined, actorId: number, kind: q.SourceKind, sourceId: number, userId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      const cur = await q.findMember(trx, kind, sourceId, userId)
      if (!cur) throw new WharfError('NOT_FOUND', 'Member Not Found', {})
      if (userId !== actorId) {
        if (!atLeast(actorLevel, 'maintainer')) throw new WharfError('FORBIDDEN', 'this needs the maintainer role', { needs: 'maintainer' })
        if (cur.access_level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner')) throw new WharfError('FORBIDDEN', 'only owners can remove an owner', {})
      }
      if (kind === 'namespace' && cur.access_level >= ACCESS_LEVELS.owner && (await q.countMembersAtLeast(trx, kind, sourceId, ACCESS_LEVELS.owner)) <= 1) {
        throw new WharfError('FORBIDDEN', 'a group needs at least one owner', {})
      }
      await q.deleteMember(trx, kind, sourceId, userId)
    })
  }

  // Users (GET/POST/PUT /users, block/unblock)

  searchUsers(f: { username?: string | undefined; search?: string | undefined; blocked?: boolean | undefined }, page: { limit: number; offset: number }) {
    return q.searchUsers(this.db, f, page)
  }

  findUserById(id: number): Promise<User | undefined> {
    return q.findUser(this.db, id)
  }

  async updateUserProfile(userId: number, set: { name?: string | undefined; email?: string | null | undefined; password?: string | undefined; isAdmin?: boolean | undefined }): Promise<User> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255)) throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.password !== undefined) await this.setPassword(userId, set.password)
    const change: Parameters<typeof q.updateUser>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.email !== undefined) change.email = set.email
    if (set.isAdmin !== undefined) change.is_admin = set.isAdmin ? 1 : 0
    if (Object.keys(change).length) await q.updateUser(this.db, userId, change)
    if (set.name !== undefined) await q.updateUserNamespaceName(this.db, userId, set.name)
    const user = await q.findUser(this.db, userId)
    if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    return user
  }

  async setUserState(userId: number, state: 'active' | 'blocked'): Promise<void> {
    await q.updateUser(this.db, userId, { state })
  }

  /**
   * Deletes a user who holds nothing: GitLab moves a deleted user's contributions to a ghost user;
   * Wharf instead refuses while the user has projects in their namespace or owns a group, so no
   * project or group is left without its owner. Transfer or delete those first.
   */
  async deleteUser(userId: number): Promise<User> {
    return this.db.transaction().execute(async (trx) => {
      const user = await q.findUser(trx, userId)
      if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
      const held = await q.userHoldings(trx, userId)
      if (held.projects.length || held.groups.length) {
        const what = [held.projects.length ? `projects ${held.projects.join(', ')}` : '', held.groups.length ? `groups ${held.groups.join(', ')}` : ''].filter(Boolean).join(' and ')
        throw new WharfError('CONFLICT', `${user.username} still owns ${what}: delete them or hand them to another owner first`, { projects: held.projects, groups: held.groups })
      }
      await q.deleteUser(trx, userId)
      return user
    })
  }
}

const VISIBILITY_RANK: Record<Visibility, number> = { private: 0, internal: 1, public: 2 }

function checkMemberInput(actorLevel: number | undefined, level: number): void {
  if (!(Object.values(ACCESS_LEVELS) as number[]).includes(level)) throw new WharfError('BAD_REQUEST', 'access_level must be 10, 20, 30, 40 or 50', {})
  if (!atLeast(actorLevel, 'maintainer')) throw new WharfError('FORBIDDEN', 'managing members needs the maintainer role', { needs: 'maintainer' })
  if (level >= ACCESS_LEVELS.owner && !atLeast(actorLevel, 'owner')) throw new WharfError('FORBIDDEN', 'only owners can grant the owner role', {})
}

function checkMemberExpiry(expiresAt: string | null | undefined): string | null {
  if (expiresAt === undefined || expiresAt === null || expiresAt === '') return null
  if (!/^\d{4}-\d{2}-\d{2}$/.test(expiresAt) || Number.isNaN(new Date(expiresAt).getTime())) throw new WharfError('BAD_REQUEST', 'expires_at must be a date (YYYY-MM-DD)', {})
  if (new Date(expiresAt).getTime() <= Date.now()) throw new WharfError('BAD_REQUEST', 'expires_at must be in the future', {})
  return expiresAt
}
