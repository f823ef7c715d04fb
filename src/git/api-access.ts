import type { FastifyRequest } from 'fastify'
import type { Principal } from '../auth/principals.ts'
import { WharfError } from '../core/errors.ts'
import type { Project } from '../metadata/schema.ts'
import type { Projects } from '../projects/service.ts'
import type { CommitInfo } from './repos.ts'
import type { GitHosting } from './service.ts'

// What the repository API routes share: who may read or write the code of `:id`, and the JSON of a commit.

export interface RepositoryAccess {
  project: Project
  /** Developer+ (and a token that may write): may push, commit, create branches and tags. */
  canPush: boolean
  /** The caller's access level on the project (undefined: none, e.g. a public project's visitor). */
  level: number | undefined
}

/** The project behind `:id` if the caller may read its code: hidden ones are 404, too low a role is 403. */
export async function readableRepository(git: GitHosting, projects: Projects, req: FastifyRequest): Promise<RepositoryAccess> {
  const { project, level } = await projects.projectFor(req.principal, (req.params as { id: string }).id)
  // The auth hook checked the API scope already; what remains is the role (repository scopes are for git).
  const byRole: Principal = req.principal.kind === 'user' ? { ...req.principal, scopes: undefined } : req.principal
  const access = await git.access(byRole, project)
  if (!access.read)
    throw new WharfError('FORBIDDEN', `reading the repository needs the reporter role in ${project.full_path}`, { needs: 'reporter' })
  await git.repository(project)
  return {
    project,
    canPush: access.write,
    level: req.principal.kind === 'user' && req.principal.isAdmin ? Number.POSITIVE_INFINITY : level,
  }
}

/** As readableRepository, and the caller must be allowed to push (Developer+). */
export async function writableRepository(git: GitHosting, projects: Projects, req: FastifyRequest): Promise<RepositoryAccess> {
  const access = await readableRepository(git, projects, req)
  if (!access.canPush)
    throw new WharfError('FORBIDDEN', `writing to the repository needs the developer role in ${access.project.full_path}`, {
      needs: 'developer',
    })
  return access
}

/** A commit as GitLab's API shows it. */
export function commitJson(publicUrl: string, project: Project, c: CommitInfo) {
  return {
    id: c.id,
    short_id: c.shortId,
    created_at: c.committedDate,
    parent_ids: c.parentIds,
    title: c.title,
    message: c.message,
    author_name: c.authorName,
    author_email: c.authorEmail,
    authored_date: c.authoredDate,
    committer_name: c.committerName,
    committer_email: c.committerEmail,
    committed_date: c.committedDate,
    trailers: {},
    web_url: `${publicUrl}/${project.full_path}/-/commit/${c.id}`,
  }
}
