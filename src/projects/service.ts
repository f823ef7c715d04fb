import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { ProjectFacts } from '../auth/access.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, type Visibility } from '../auth/roles.ts'
import { hashPassword } from '../auth/secrets.ts'
import type { Database, Namespace, Project, User } from '../metadata/schema.ts'
import { validateSegment } from './paths.ts'
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
        if (!parent || parent.kind !== 'group') throw new WharfError('NOT_FOUND', 'parent group not found', { parentId: input.parentId })
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

  /**
   * Lowercased full paths of every project the principal may read (for the catalog and listings).
   * Admins see everything; undefined means "no restriction".
   */
  async readableProjectPaths(p: Principal): Promise<Set<string> | undefined> {
    if (p.kind === 'user' && p.isAdmin) return undefined
    const visibilities: Visibility[] = p.kind === 'user' ? ['public', 'internal'] : ['public']
    const ids: number[] = []
    if (p.kind === 'user') {
      const mine = await q.membershipsOf(this.db, p.userId)
      ids.push(...mine.filter((m) => m.source_kind === 'project' && m.access_level >= ACCESS_LEVELS.reporter).map((m) => m.source_id))
      const groupIds = new Set(mine.filter((m) => m.source_kind === 'namespace' && m.access_level >= ACCESS_LEVELS.reporter).map((m) => m.source_id))
      const own = await q.userNamespace(this.db, p.userId)
      if (own) groupIds.add(own.id)
      // Memberships are inherited by subgroups: widen to every descendant namespace.
      const all = await q.allNamespaces(this.db)
      let grew = true
      while (grew) {
        grew = false
        for (const n of all) if (n.parent_id !== null && groupIds.has(n.parent_id) && !groupIds.has(n.id)) groupIds.add(n.id), (grew = true)
      }
      const inGroups = await q.listProjects(this.db, { namespaceIds: [...groupIds], limit: 1_000_000, offset: 0 })
      ids.push(...inGroups.map((x) => x.id))
    }
    if (p.kind === 'deploy-token' && p.projectId !== null) ids.push(p.projectId)
    const rows = await q.listProjects(this.db, { ids, visibilities, limit: 1_000_000, offset: 0 })
    return new Set(rows.map((r) => r.full_path_lower))
  }
}
