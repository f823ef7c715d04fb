import type { ProjectFacts } from '../auth/access.ts'
import { hasScope, type Principal } from '../auth/principals.ts'
import { atLeast } from '../auth/roles.ts'

export type GitOperation = 'fetch' | 'push'

/** What a principal may do with a project's repository, and why not when it may not. */
export interface GitAccess {
  read: boolean
  write: boolean
  /** Why `read` is false for a principal allowed to know the project exists (a 403 message, not a 404). */
  denyRead?: string
  /** Why `write` is false while `read` is true (shown to the git client as a 403 message). */
  denyWrite?: string
}

/**
 * Git access, as GitLab grants it (pure; tested as a matrix):
 * - read: public projects for anyone; internal ones for any signed-in user; private ones for Reporter+;
 *   administrators everywhere; deploy tokens with `read_repository` on the project (or a group above it).
 * - write: Developer+ (administrators too).
 * - a PAT narrows both: reading needs `read_repository`, `write_repository` or `api`; writing needs
 *   `write_repository` or `api`.
 * - a CI job token reads its own project's repository (public ones too); never writes.
 */
export function gitAccess(p: Principal, project: ProjectFacts | undefined): GitAccess {
  const none: GitAccess = { read: false, write: false }
  if (!project) return none
  const isPublic = project.visibility === 'public'
  switch (p.kind) {
    case 'anonymous':
      return { read: isPublic, write: false, denyWrite: 'anonymous users cannot push; sign in' }
    case 'deploy-token': {
      const read = (project.deployTokenApplies && hasScope(p, 'read_repository')) || isPublic
      if (!read && project.deployTokenApplies)
        return { read: false, write: false, denyRead: 'this deploy token does not have the read_repository scope' }
      return { read, write: false, denyWrite: 'deploy tokens cannot push to repositories' }
    }
    case 'job': {
      // A CI job token clones its own project (and public ones, like anyone); it never pushes.
      const read = project.projectId === p.projectId || isPublic
      if (!read) return none
      return { read: true, write: false, denyWrite: 'CI job tokens cannot push to repositories' }
    }
    case 'user': {
      const level = p.isAdmin ? Number.POSITIVE_INFINITY : project.accessLevel
      const visible = isPublic || project.visibility === 'internal' || atLeast(level, 'reporter')
      if (!visible) return none
      const tokenRead = hasScope(p, 'read_repository', 'write_repository', 'api')
      const tokenWrite = hasScope(p, 'write_repository', 'api')
      if (!tokenRead) return { read: false, write: false, denyRead: 'your token does not have the read_repository scope' }
      if (!atLeast(level, 'developer'))
        return {
          read: true,
          write: false,
          denyWrite: 'you are not allowed to push code to this project (the Developer role or higher is needed)',
        }
      if (!tokenWrite) return { read: true, write: false, denyWrite: 'your token does not have the write_repository scope needed to push' }
      return { read: true, write: true }
    }
  }
}
