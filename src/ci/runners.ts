// Runners as GitLab has them since 16.0: created by a user (`POST /api/v4/user/runners`), each
// with its own `glrt-` authentication token (shown once, stored as a digest). Instance runners
// take any project's jobs, group runners their groups' (and subgroups') projects, project
// runners their project's.
import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS, atLeast } from '../auth/roles.ts'
import { secretDigest } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { CiJob, Database, Namespace, Project, Runner } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import type { Groups, ProjectAccess, Projects } from '../projects/index.ts'
import type { Users } from '../users/index.ts'
import { TOKEN_PREFIXES, type CreateRunnerRequest, type VersionInfo } from '../runner/protocol.ts'
import * as rq from './runner-queries.ts'

/** A runner counts as online when it asked for jobs this recently (GitLab's ONLINE_CONTACT_TIMEOUT). */
export const ONLINE_SECONDS = 2 * 3600
/** contacted_at is written at most this often, so long polls are not one write per request. */
const CONTACT_WRITE_MS = 15_000
const MAX_TAGS = 50

export interface RunnerUpdate {
  description?: string | undefined
  paused?: boolean | undefined
  active?: boolean | undefined
  tag_list?: string[] | string | undefined
  run_untagged?: boolean | undefined
  locked?: boolean | undefined
  access_level?: string | undefined
  maximum_timeout?: number | null | undefined
  maintenance_note?: string | undefined
}

export function runnerTags(r: Pick<Runner, 'tag_list'>): string[] {
  return JSON.parse(r.tag_list) as string[]
}

/** Tags as an array, from an array or GitLab's comma-separated string. */
export function parseTagList(v: string[] | string | undefined): string[] | undefined {
  if (v === undefined) return undefined
  const list = (Array.isArray(v) ? v : v.split(',')).map((t) => t.trim()).filter(Boolean)
  if (list.length > MAX_TAGS) throw new WharfError('BAD_REQUEST', `at most ${MAX_TAGS} tags`, {})
  for (const t of list) if (t.length > 255) throw new WharfError('BAD_REQUEST', 'a tag is at most 255 characters', {})
  return [...new Set(list)]
}

export function isOnline(r: Pick<Runner, 'contacted_at'>, now = Date.now()): boolean {
  return r.contacted_at !== null && now - new Date(r.contacted_at).getTime() < ONLINE_SECONDS * 1000
}

type RunnerPage = Pick<rq.RunnerFilter, 'type' | 'paused' | 'tagList'> & { limit: number; offset: number }

/** Who manages runners: the signed-in user, the project or group a runner is for, and their roles there. */
export interface RunnerDomains {
  users: Users
  projects: Projects
  groups: Groups
  projectAccess: ProjectAccess
}

export class Runners {
  private readonly db: Kysely<Database>
  private readonly d: RunnerDomains
  private readonly lastWrite = new Map<number, number>()

  constructor(db: Kysely<Database>, domains: RunnerDomains) {
    this.db = db
    this.d = domains
  }

  /** Creates a runner; the token is returned only here. Admins create instance runners, maintainers group and project ones. */
  async create(p: Principal, input: CreateRunnerRequest): Promise<{ runner: Runner; token: string }> {
    const actor = await this.d.users.actor(p)
    let namespaceId: number | null = null
    let projectId: number | null = null
    switch (input.runner_type) {
      case 'instance_type':
        if (!actor.is_admin) throw new WharfError('FORBIDDEN', 'only administrators create instance runners', { needs: 'admin' })
        break
      case 'group_type': {
        if (input.group_id === undefined) throw new WharfError('BAD_REQUEST', 'group_id is missing', {})
        namespaceId = (await this.d.groups.groupFor(p, input.group_id, 'maintainer')).group.id
        break
      }
      case 'project_type': {
        if (input.project_id === undefined) throw new WharfError('BAD_REQUEST', 'project_id is missing', {})
        projectId = (await this.d.projects.projectFor(p, input.project_id, 'maintainer')).project.id
        break
      }
    }
    const tags = parseTagList(input.tag_list) ?? []
    const token = `${TOKEN_PREFIXES.runner}${randomBytes(24).toString('base64url')}`
    const runner = await rq.insertRunner(this.db, {
      runner_type: input.runner_type,
      namespace_id: namespaceId,
      project_id: projectId,
      description: input.description ?? '',
      tag_list: JSON.stringify(tags),
      // GitLab: a runner without tags runs untagged jobs unless told otherwise.
      run_untagged: (input.run_untagged ?? tags.length === 0) ? 1 : 0,
      paused: input.paused ? 1 : 0,
      locked: input.locked ? 1 : 0,
      access_level: input.access_level === 'ref_protected' ? 'ref_protected' : 'not_protected',
      maximum_timeout: input.maximum_timeout ?? null,
      maintenance_note: input.maintenance_note ?? null,
      token_digest: secretDigest(token),
      token_hint: token.slice(0, TOKEN_PREFIXES.runner.length + 4),
      token_expires_at: null,
      created_by: actor.id,
    })
    return { runner, token }
  }

  /** The runner a `glrt-` token authenticates, unless the token expired. */
  async authenticate(token: string | undefined): Promise<Runner | undefined> {
    if (!token?.startsWith(TOKEN_PREFIXES.runner)) return undefined
    const r = await rq.findRunnerByDigest(this.db, secretDigest(token))
    if (!r) return undefined
    if (r.token_expires_at && new Date(r.token_expires_at).getTime() <= Date.now()) return undefined
    return r
  }

  /** Records that the runner called in (and what it said about itself); throttled. */
  async contacted(r: Runner, info: VersionInfo | undefined, ip: string | undefined): Promise<void> {
    const now = Date.now()
    const set: Partial<Runner> = {}
    if (info) {
      const fields = {
        name: info.name,
        version: info.version,
        revision: info.revision,
        platform: info.platform,
        architecture: info.architecture,
        executor: info.executor,
      } as const
      for (const [k, v] of Object.entries(fields) as Array<[keyof typeof fields, string | undefined]>)
        if (v !== undefined && r[k] !== v) set[k] = v
    }
    if (ip && r.ip_address !== ip) set.ip_address = ip
    const last = this.lastWrite.get(r.id) ?? 0
    if (Object.keys(set).length === 0 && now - last < CONTACT_WRITE_MS) return
    this.lastWrite.set(r.id, now)
    await rq.updateRunner(this.db, r.id, { ...set, contacted_at: new Date(now).toISOString() })
  }

  /** A new token for the runner (the old one stops working); shown once. */
  async resetToken(r: Runner): Promise<string> {
    const token = `${TOKEN_PREFIXES.runner}${randomBytes(24).toString('base64url')}`
    await rq.updateRunner(this.db, r.id, {
      token_digest: secretDigest(token),
      token_hint: token.slice(0, TOKEN_PREFIXES.runner.length + 4),
    })
    return token
  }

  async unregister(token: string): Promise<boolean> {
    const r = await this.authenticate(token)
    if (!r) return false
    await rq.deleteRunner(this.db, r.id)
    return true
  }

  find(id: number): Promise<Runner | undefined> {
    return rq.findRunner(this.db, id)
  }

  /** The project ids a runner may take jobs from; undefined: any (instance runner). */
  async scopeProjectIds(r: Runner): Promise<number[] | undefined> {
    switch (r.runner_type) {
      case 'instance_type':
        return undefined
      case 'project_type':
        return [...(r.project_id === null ? [] : [r.project_id]), ...(await rq.linkedProjectIds(this.db, r.id))]
      case 'group_type': {
        if (r.namespace_id === null) return []
        const all = await projectQueries.allNamespaces(this.db)
        const ids = new Set([r.namespace_id])
        for (let grew = true; grew; ) {
          grew = false
          for (const n of all) {
            if (n.parent_id !== null && ids.has(n.parent_id) && !ids.has(n.id)) {
              ids.add(n.id)
              grew = true
            }
          }
        }
        return rq.projectIdsInNamespaces(this.db, [...ids])
      }
    }
  }

  /** Runners the caller manages (admins: with `all`, every runner; others: their groups' and projects'). */
  /** A page of the runners `p` manages (administrators with `all`: every runner). */
  async pageFor(p: Principal, opts: RunnerPage & { all: boolean }): Promise<{ rows: Runner[]; total: number }> {
    const actor = await this.d.users.actor(p)
    const { all, ...page } = opts
    if (all) {
      if (!actor.is_admin) throw new WharfError('FORBIDDEN', 'listing all runners needs an administrator', { needs: 'admin' })
      return rq.pageRunners(this.db, page)
    }
    const { projectIds, namespaceIds } = await this.managedScopes(actor.id)
    // Scoped to nothing at all matches nothing (instance runners are not anyone's to manage here).
    if (!projectIds.length && !namespaceIds.length) return { rows: [], total: 0 }
    return rq.pageRunners(this.db, { ...page, projectIds, namespaceIds })
  }

  /** Runners that can take a project's jobs: its own, its groups', and instance runners. */
  async pageForProject(project: Project, opts: RunnerPage): Promise<{ rows: Runner[]; total: number }> {
    const chain = await this.d.projectAccess.namespaceChain(project.namespace_id)
    return rq.pageRunners(this.db, {
      ...opts,
      projectIds: [project.id],
      namespaceIds: chain.filter((n) => n.kind === 'group').map((n) => n.id),
      instance: true,
    })
  }

  async pageForGroup(group: Namespace, opts: RunnerPage): Promise<{ rows: Runner[]; total: number }> {
    const chain = await this.d.projectAccess.namespaceChain(group.id)
    return rq.pageRunners(this.db, { ...opts, namespaceIds: chain.map((n) => n.id), instance: true })
  }

  /** The runner, if the caller may manage it (admin; maintainer of its project or group). */
  async manageable(p: Principal, id: number): Promise<Runner> {
    const actor = await this.d.users.actor(p)
    const r = await rq.findRunner(this.db, id)
    if (!r) throw new WharfError('NOT_FOUND', 'Runner Not Found', {})
    if (actor.is_admin) return r
    // A project runner is managed by the maintainers of any project it is enabled for (GitLab's owned runners).
    if (r.runner_type === 'project_type') {
      for (const id of (await this.scopeProjectIds(r)) ?? []) {
        const project = await projectQueries.findProject(this.db, id)
        if (project && atLeast(await this.d.projectAccess.projectLevel(actor, project), 'maintainer')) return r
      }
    }
    if (r.runner_type === 'group_type' && r.namespace_id !== null) {
      const ns = await projectQueries.findNamespace(this.db, r.namespace_id)
      if (ns && atLeast(await this.d.projectAccess.namespaceLevel(this.db, actor, ns), 'maintainer')) return r
    }
    // Do not reveal runners one cannot manage.
    throw new WharfError('NOT_FOUND', 'Runner Not Found', {})
  }

  async update(p: Principal, id: number, u: RunnerUpdate): Promise<Runner> {
    const r = await this.manageable(p, id)
    const set: Partial<Runner> = {}
    if (u.description !== undefined) set.description = u.description
    if (u.paused !== undefined) set.paused = u.paused ? 1 : 0
    if (u.active !== undefined) set.paused = u.active ? 0 : 1
    const tags = parseTagList(u.tag_list)
    if (tags) set.tag_list = JSON.stringify(tags)
    if (u.run_untagged !== undefined) set.run_untagged = u.run_untagged ? 1 : 0
    if (u.locked !== undefined) set.locked = u.locked ? 1 : 0
    if (u.access_level !== undefined) set.access_level = u.access_level === 'ref_protected' ? 'ref_protected' : 'not_protected'
    if (u.maximum_timeout !== undefined) set.maximum_timeout = u.maximum_timeout
    if (u.maintenance_note !== undefined) set.maintenance_note = u.maintenance_note
    if (Object.keys(set).length) await rq.updateRunner(this.db, r.id, set)
    return (await rq.findRunner(this.db, r.id))!
  }

  async remove(p: Principal, id: number): Promise<void> {
    const r = await this.manageable(p, id)
    await rq.deleteRunner(this.db, r.id)
  }

  /**
   * Enables a project runner the caller manages for another project the caller maintains (GitLab's
   * `POST /projects/:id/runners`); group and instance runners, and locked ones, cannot be.
   */
  async enableForProject(p: Principal, project: Project, runnerId: number): Promise<Runner> {
    const r = await rq.findRunner(this.db, runnerId)
    if (!r) throw new WharfError('NOT_FOUND', 'Runner Not Found', {})
    if (r.runner_type === 'group_type') throw new WharfError('FORBIDDEN', 'Runner is a group runner', {})
    if (r.runner_type === 'instance_type') throw new WharfError('FORBIDDEN', 'Runner is an instance runner', {})
    if (r.locked === 1) throw new WharfError('FORBIDDEN', 'Runner is locked', {})
    const managed = await this.manageable(p, r.id).then(
      () => true,
      () => false,
    )
    if (!managed) throw new WharfError('FORBIDDEN', 'No access granted', {})
    if (r.project_id === project.id || !(await rq.linkRunnerProject(this.db, r.id, project.id)))
      throw new WharfError('BAD_REQUEST', 'Runner has already been taken by this project', { runner_id: r.id })
    return r
  }

  /** Disables a runner for a project it was enabled for; never for the project it belongs to. */
  async disableForProject(project: Project, runnerId: number): Promise<void> {
    const r = await rq.findRunner(this.db, runnerId)
    if (r?.runner_type === 'project_type' && r.project_id === project.id)
      throw new WharfError('FORBIDDEN', 'You cannot unassign a runner from the owner project. Delete the runner instead', {})
    if (!r || !(await rq.unlinkRunnerProject(this.db, r.id, project.id))) throw new WharfError('NOT_FOUND', 'Runner Not Found', {})
  }

  /** A page of the jobs a runner took, newest first (for those who manage the runner). */
  async pageJobs(
    p: Principal,
    runnerId: number,
    f: { statuses?: string[] | undefined; limit: number; offset: number; ascending?: boolean },
  ): Promise<{ rows: CiJob[]; total: number }> {
    const actor = await this.d.users.actor(p)
    const r = await this.manageable(p, runnerId)
    if (actor.is_admin) return rq.pageRunnerJobs(this.db, r.id, f)
    // Others see the jobs of the runner's projects they can read (GitLab's RunnerJobsFinder).
    const readable: number[] = []
    for (const id of (await this.scopeProjectIds(r)) ?? []) {
      const project = await projectQueries.findProject(this.db, id)
      if (project && atLeast(await this.d.projectAccess.projectLevel(actor, project), 'reporter')) readable.push(id)
    }
    return rq.pageRunnerJobs(this.db, r.id, { ...f, projectIds: readable })
  }

  private async managedScopes(userId: number): Promise<{ projectIds: number[]; namespaceIds: number[] }> {
    const mine = (await projectQueries.activeMembershipsOf(this.db, userId)).filter((m) => m.access_level >= ACCESS_LEVELS.maintainer)
    const namespaceIds = mine.filter((m) => m.source_kind === 'namespace').map((m) => m.source_id)
    const own = await projectQueries.userNamespace(this.db, userId)
    // Runners of every project in the managed groups (and subgroups) and the user's own namespace.
    const all = await projectQueries.allNamespaces(this.db)
    const ids = new Set(namespaceIds)
    for (let grew = true; grew; ) {
      grew = false
      for (const n of all) {
        if (n.parent_id !== null && ids.has(n.parent_id) && !ids.has(n.id)) {
          ids.add(n.id)
          grew = true
        }
      }
    }
    const inNamespaces = await rq.projectIdsInNamespaces(this.db, [...ids, ...(own ? [own.id] : [])])
    return {
      projectIds: [...new Set([...mine.filter((m) => m.source_kind === 'project').map((m) => m.source_id), ...inNamespaces])],
      namespaceIds: [...ids],
    }
  }
}

/** GitLab's runner entity (`GET /runners/:id` shape). */
export function runnerJson(r: Runner, now = Date.now()) {
  const online = isOnline(r, now)
  return {
    id: r.id,
    description: r.description,
    ip_address: r.ip_address,
    active: r.paused === 0,
    paused: r.paused === 1,
    is_shared: r.runner_type === 'instance_type',
    runner_type: r.runner_type,
    name: r.name,
    online,
    status: r.contacted_at === null ? 'never_contacted' : online ? 'online' : 'offline',
    contacted_at: r.contacted_at,
    created_at: r.created_at,
    tag_list: runnerTags(r),
    run_untagged: r.run_untagged === 1,
    locked: r.locked === 1,
    access_level: r.access_level,
    maximum_timeout: r.maximum_timeout,
    maintenance_note: r.maintenance_note,
    version: r.version,
    revision: r.revision,
    platform: r.platform,
    architecture: r.architecture,
    executor: r.executor,
    group_id: r.namespace_id,
    project_id: r.project_id,
  }
}
