import { hasScope, type Principal } from './principals.ts'
import { atLeast, type Visibility } from './roles.ts'

export const ACTIONS = ['pull', 'push', 'delete'] as const
export type Action = (typeof ACTIONS)[number]

/** What authorization needs to know about the project that owns a repository. */
export interface ProjectFacts {
  projectId: number
  visibility: Visibility
  /** The principal's effective access level (direct or inherited from groups), if a user. */
  accessLevel: number | undefined
  /** For deploy tokens: the project or one of its ancestor groups issued the token. */
  deployTokenApplies: boolean
  /**
   * For CI job tokens: whether the project is the job's own, whether it allow-lists the job's
   * project, and the level of the user who started the pipeline (`accessLevel` is that level).
   */
  job?: { ownProject: boolean; allowlisted: boolean; userIsAdmin: boolean; userSignedIn: boolean }
}

/**
 * The registry actions a principal may perform on a project's repositories (pure; unit-tested as a
 * matrix). No project, no access: a path that belongs to no project can be neither read nor written.
 */
export function permittedActions(p: Principal, project: ProjectFacts | undefined): Action[] {
  if (!project) return []
  const out = new Set<Action>()
  const publicPull = project.visibility === 'public'
  switch (p.kind) {
    case 'anonymous':
      if (publicPull) out.add('pull')
      break
    case 'deploy-token':
      if (project.deployTokenApplies) {
        if (hasScope(p, 'read_registry', 'write_registry')) out.add('pull')
        if (hasScope(p, 'write_registry')) out.add('push')
      } else if (publicPull && hasScope(p, 'read_registry', 'write_registry')) out.add('pull')
      break
    case 'user': {
      const level = p.isAdmin ? Number.POSITIVE_INFINITY : project.accessLevel
      const canRead = publicPull || project.visibility === 'internal' || atLeast(level, 'reporter')
      if (canRead && hasScope(p, 'read_registry', 'write_registry', 'api')) out.add('pull')
      if (atLeast(level, 'developer') && hasScope(p, 'write_registry', 'api')) out.add('push')
      if (atLeast(level, 'maintainer') && hasScope(p, 'write_registry', 'api')) out.add('delete')
      break
    }
    case 'job': {
      // A job token: pull and push in its own project; elsewhere pull only, when the job's user may
      // pull there AND that project allow-lists the job's project (GitLab's job token scope).
      // Never delete, never admin.
      const j = project.job
      if (!j) break
      if (j.ownProject) {
        out.add('pull')
        out.add('push')
        break
      }
      const level = j.userIsAdmin ? Number.POSITIVE_INFINITY : project.accessLevel
      const userCanRead = publicPull || (project.visibility === 'internal' && j.userSignedIn) || atLeast(level, 'reporter')
      if (publicPull || (userCanRead && j.allowlisted)) out.add('pull')
      break
    }
  }
  return ACTIONS.filter((a) => out.has(a))
}

/** What authorization needs to know about a group whose dependency proxy is pulled from. */
export interface GroupFacts {
  groupId: number
  /** A user's effective level in the group (direct or inherited from a parent group). */
  accessLevel: number | undefined
  /** For deploy tokens: issued by this group or one of its ancestors. */
  deployTokenApplies: boolean
  /** For CI job tokens: the job's project lies in this group or one of its subgroups. */
  jobProjectInGroup: boolean
}

/**
 * GitLab's dependency proxy rules (pure): pull only, and always authenticated, even for a public
 * group: a member (Guest or higher) with a password or a PAT with read_registry/write_registry, a
 * group deploy token with one of those scopes, or the job token of a project in the group.
 */
export function dependencyProxyActions(p: Principal, group: GroupFacts | undefined): Action[] {
  if (!group) return []
  switch (p.kind) {
    case 'user':
      return (p.isAdmin || atLeast(group.accessLevel, 'guest')) && hasScope(p, 'read_registry', 'write_registry') ? ['pull'] : []
    case 'deploy-token':
      return group.deployTokenApplies && hasScope(p, 'read_registry', 'write_registry') ? ['pull'] : []
    case 'job':
      return group.jobProjectInGroup ? ['pull'] : []
    case 'anonymous':
      return []
  }
}

/**
 * The mirror listener behind token auth (`dependencyProxy.mirrorAuth: token`): it serves public
 * upstream images, so any authenticated principal that may read registries pulls; never more.
 */
export function mirrorActions(p: Principal): Action[] {
  switch (p.kind) {
    case 'user':
    case 'deploy-token':
      return hasScope(p, 'read_registry', 'write_registry') ? ['pull'] : []
    case 'job':
      return ['pull']
    case 'anonymous':
      return []
  }
}
