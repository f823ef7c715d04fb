// Git hosting: bare repositories per project, smart HTTP through `git http-backend`, push events.
export { gitAccess, type GitAccess } from './access.ts'
export { gitApiRoutes, type GitApiOptions } from './api-routes.ts'
export { GitRepos, INITIAL_BRANCH, type BranchInfo, type CommitInfo, type TagInfo } from './repos.ts'
export { classifyRef, isRefName, isSha, isZeroSha, ZERO_SHA, type RefAction, type RefType, type RefUpdate } from './refs.ts'
export { gitPool } from './exec.ts'
export { gitErrorHandler, gitRoutes, parseGitUrl, type GitRouteOptions } from './routes.ts'
export { GitHosting, PUSH_EVENT_ATTEMPTS, type PushAck, type PushEvent, type PushListener, type PushRecord } from './service.ts'

import type { Kysely } from 'kysely'
import type { Credentials } from '../auth/credentials.ts'
import type { Database } from '../metadata/schema.ts'
import type { ProjectAccess, Projects } from '../projects/index.ts'
import { GitRepos } from './repos.ts'
import { GitHosting } from './service.ts'

/** Builds git hosting over `<root>` (`<data>/git`): creates the layout and installs the hooks. */
export async function createGitHosting(
  root: string,
  deps: { db: Kysely<Database>; projects: Projects; projectAccess: ProjectAccess; credentials: Credentials },
): Promise<GitHosting> {
  const repos = new GitRepos(root)
  await repos.init()
  // A deleted project's code goes with it.
  deps.projects.onProjectsDeleted(async (ids) => {
    for (const id of ids) await repos.remove(id)
  })
  return new GitHosting({ repos, db: deps.db, projectAccess: deps.projectAccess, credentials: deps.credentials })
}
