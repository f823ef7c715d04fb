import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, atLeast, type Role, type Visibility } from '../auth/roles.ts'
import type { Database, Executor, Namespace, Project, User } from '../metadata/schema.ts'
import { validateSegment } from '../core/path-segments.ts'
import { pathTaken } from '../users/queries.ts'
import { checkVisibilityWithin, type ProjectAccess } from './access-levels.ts'
import * as q from './queries.ts'

export interface NewProject {
  namespaceId: number
  path: string
  name?: string
  visibility?: Visibility
  description?: string
}

/**
 * What else goes when projects go, in the same transaction: the registry's repositories under a
 * path (its manifests and tags). Given by the composition root, so projects/ does not import registry/.
 */
export type RepositoryCleanup = (trx: Executor, fullPathLower: string) => Promise<void>

/** Projects: creation, lookup by id or path, visibility-filtered listings, settings and deletion. */
export class Projects {
  private readonly db: Kysely<Database>
  private readonly access: ProjectAccess
  /** Also used by Groups, whose deletion takes its projects' images along. */
  readonly deleteRepositoriesUnder: RepositoryCleanup
  private readonly deletionListeners: Array<(projectIds: number[]) => Promise<void>> = []
  constructor(db: Kysely<Database>, access: ProjectAccess, deleteRepositoriesUnder: RepositoryCleanup) {
    this.db = db
    this.access = access
    this.deleteRepositoriesUnder = deleteRepositoriesUnder
  }

  async createProject(actor: User, input: NewProject): Promise<Project> {
    validateSegment(input.path, 'project')
    return this.db.transaction().execute(async (trx) => {
      const ns = await q.findNamespace(trx, input.namespaceId)
      if (!ns) throw new WharfError('NOT_FOUND', 'namespace not found', { namespaceId: input.namespaceId })
      const level = await this.access.namespaceLevel(trx, actor, ns)
      if (!actor.is_admin && !(level !== undefined && level >= ACCESS_LEVELS.maintainer)) {
        throw new WharfError('FORBIDDEN', `you cannot create projects in ${ns.full_path}`, { namespace: ns.full_path })
      }
      const fullPath = `${ns.full_path}/${input.path}`
      if (await pathTaken(trx, fullPath))
        throw new WharfError('CONFLICT', `the path ${fullPath} is already taken (paths are unique regardless of letter case)`, {
          path: fullPath,
        })
      return q.insertProject(trx, {
        namespaceId: ns.id,
        name: input.name ?? input.path,
        path: input.path,
        fullPath,
        visibility: input.visibility ?? 'private',
        description: input.description ?? '',
        creatorId: actor.id,
      })
    })
  }

  /** A project by numeric id or (URL-decoded) full path, as GitLab's `:id`. */
  async findProjectRef(ref: string | number): Promise<Project | undefined> {
    const s = String(ref)
    return /^\d+$/.test(s) ? q.findProject(this.db, Number(s)) : q.findProjectByPath(this.db, s)
  }

  /**
   * A project the principal may see, and their level; NOT_FOUND otherwise (hidden projects look missing).
   * With `role`, FORBIDDEN unless the principal has at least that role.
   */
  /** The project a registry repository belongs to (the longest project path that is a segment prefix of its name). */
  projectForRepository(name: string): Promise<Project | undefined> {
    return q.projectForRepository(this.db, name)
  }

  async projectFor(p: Principal, ref: string | number, role?: Role): Promise<{ project: Project; level: number | undefined }> {
    const project = await this.findProjectRef(ref)
    const level = project && (await this.access.levelOnProject(p, project))
    if (!project || !this.access.canSee(p, project.visibility, level)) throw new WharfError('NOT_FOUND', 'Project Not Found', {})
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return { project, level }
  }

  /** Projects the principal may see, GitLab's GET /projects filters applied. */
  async visibleProjects(
    p: Principal,
    opts: {
      search?: string | undefined
      owned?: boolean | undefined
      membership?: boolean | undefined
      visibility?: Visibility | undefined
      withinGroup?: number | undefined
      limit: number
      offset: number
    },
  ): Promise<{ rows: Project[]; total: number }> {
    const filter: q.ProjectFilter = { search: opts.search, visibility: opts.visibility }
    if (opts.withinGroup !== undefined) filter.namespaceIds = [...(await this.access.withDescendants(new Set([opts.withinGroup])))]
    if (p.kind === 'user') {
      const mine = await q.activeMembershipsOf(this.db, p.userId)
      const memberIds = mine.filter((m) => m.source_kind === 'project').map((m) => m.source_id)
      const memberNs = await this.access.memberNamespaceIds(p.userId, mine)
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

  /** createProject with GitLab's visibility rule checked first. */
  async createProjectChecked(actor: User, input: NewProject): Promise<Project> {
    checkVisibilityWithin(await q.findNamespace(this.db, input.namespaceId), input.visibility ?? 'private', 'project')
    return this.createProject(actor, input)
  }

  async updateProjectSettings(
    project: Project,
    set: { name?: string | undefined; description?: string | undefined; visibility?: Visibility | undefined },
  ): Promise<Project> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255))
      throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.visibility) checkVisibilityWithin(await q.findNamespace(this.db, project.namespace_id), set.visibility, 'project')
    // Field by field: whatever else the caller's object carries never reaches the UPDATE.
    const change: Parameters<typeof q.updateProject>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.description !== undefined) change.description = set.description
    if (set.visibility !== undefined) change.visibility = set.visibility
    if (Object.keys(change).length) await q.updateProject(this.db, project.id, change)
    return (await q.findProject(this.db, project.id))!
  }

  /**
   * Deletes a project with its memberships, deploy tokens and registry repositories (manifests and tags;
   * blobs are left to GC). Images must not survive their project: a new project at the same path would inherit them.
   */
  async deleteProject(project: Project): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await this.deleteRepositoriesUnder(trx, project.full_path_lower)
      await q.deleteMembersOf(trx, 'project', [project.id])
      await q.deleteProject(trx, project.id)
    })
    await this.projectsDeleted([project.id])
  }

  /**
   * What goes with a deleted account (GitLab's user deletion): the groups it alone owns (given:
   * the caller chose hard_delete) and the projects of its personal namespace.
   */
  async deleteOwnedBy(user: Pick<User, 'id'>, groupIds: number[], groups: { deleteGroup(g: Namespace): Promise<void> }): Promise<void> {
    for (const id of groupIds) {
      const g = await q.findNamespace(this.db, id)
      if (g) await groups.deleteGroup(g)
    }
    const personal = await q.personalProjects(this.db, user.id)
    for (const p of personal) await this.deleteProject(p)
  }

  /** Subscribes to project deletions (after they are committed): git removes the repositories. */
  onProjectsDeleted(listener: (projectIds: number[]) => Promise<void>): void {
    this.deletionListeners.push(listener)
  }

  /** Tells the subscribers (after the commit); Groups calls it for the projects a group deletion took. */
  async projectsDeleted(ids: number[]): Promise<void> {
    for (const l of this.deletionListeners) await l(ids)
  }
}
