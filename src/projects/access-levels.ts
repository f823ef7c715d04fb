import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { GroupFacts, ProjectFacts } from '../auth/access.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, type Visibility } from '../auth/roles.ts'
import type { Database, Executor, Namespace, Project, User } from '../metadata/schema.ts'
import * as q from './queries.ts'

/**
 * The access levels memberships imply: namespace chains (membership is inherited down subgroups),
 * a user's effective level on a project or group, who may see what, and the authorization facts
 * auth/ decides registry access from.
 */
export class ProjectAccess {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** Ancestors of a namespace, nearest first, including itself. */
  async namespaceChain(namespaceId: number, db: Executor = this.db): Promise<Namespace[]> {
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
    const chain = await this.namespaceChain(ns.id, db)
    if (chain.some((n) => n.kind === 'user' && n.owner_id === user.id)) return ACCESS_LEVELS.owner
    const levels = await q.memberLevels(
      db,
      user.id,
      chain.map((n) => ({ kind: 'namespace' as const, id: n.id })),
    )
    return levels.length ? Math.max(...levels) : undefined
  }

  /** A user's effective level on a project: direct membership or inherited from its namespaces. */
  async projectLevel(user: Pick<User, 'id'>, project: Project): Promise<number | undefined> {
    const chain = await this.namespaceChain(project.namespace_id)
    if (chain.some((n) => n.kind === 'user' && n.owner_id === user.id)) return ACCESS_LEVELS.owner
    const levels = await q.memberLevels(this.db, user.id, [
      { kind: 'project', id: project.id },
      ...chain.map((n) => ({ kind: 'namespace' as const, id: n.id })),
    ])
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
      else if (p.namespaceId !== null)
        facts.deployTokenApplies = (await this.namespaceChain(project.namespace_id)).some((n) => n.id === p.namespaceId)
    }
    return facts
  }

  /** Facts for the dependency proxy of the group at `groupPath`; undefined when no such group exists. */
  async dependencyProxyFacts(p: Principal, groupPath: string): Promise<GroupFacts | undefined> {
    const group = await q.findNamespaceByPath(this.db, groupPath)
    if (group?.kind !== 'group') return undefined
    const facts: GroupFacts = { groupId: group.id, accessLevel: undefined, deployTokenApplies: false, jobProjectInGroup: false }
    if (p.kind === 'user') facts.accessLevel = await this.namespaceLevel(this.db, { id: p.userId }, group)
    if (p.kind === 'deploy-token' && p.namespaceId !== null)
      facts.deployTokenApplies = (await this.namespaceChain(group.id)).some((n) => n.id === p.namespaceId)
    if (p.kind === 'job') {
      const project = await q.findProject(this.db, p.projectId)
      facts.jobProjectInGroup = project !== undefined && (await this.namespaceChain(project.namespace_id)).some((n) => n.id === group.id)
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
      const groupIds = new Set(
        mine.filter((m) => m.source_kind === 'namespace' && m.access_level >= ACCESS_LEVELS.reporter).map((m) => m.source_id),
      )
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

  /** Namespaces a user belongs to (any role), widened to their descendants, plus their own namespace. */
  async memberNamespaceIds(userId: number, memberships: Array<{ source_kind: string; source_id: number }>): Promise<number[]> {
    const ids = new Set(memberships.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id))
    const own = await q.userNamespace(this.db, userId)
    if (own) ids.add(own.id)
    return [...(await this.withDescendants(ids))]
  }

  async withDescendants(ids: Set<number>, db: Parameters<typeof q.allNamespaces>[0] = this.db): Promise<Set<number>> {
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
}

export const VISIBILITY_RANK: Record<Visibility, number> = { private: 0, internal: 1, public: 2 }

/** A project or subgroup may not be more visible than the group holding it (as GitLab). */
export function checkVisibilityWithin(parent: Namespace | undefined, visibility: Visibility, what: string): void {
  if (parent && parent.kind === 'group' && VISIBILITY_RANK[visibility] > VISIBILITY_RANK[parent.visibility]) {
    throw new WharfError('BAD_REQUEST', `${what} visibility ${visibility} is not allowed: ${parent.full_path} is ${parent.visibility}`, {
      visibility,
    })
  }
}
