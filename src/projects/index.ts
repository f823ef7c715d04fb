// Groups (nested), projects, their members, and the access levels memberships imply.
import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import { ProjectAccess } from './access-levels.ts'
import { Groups } from './groups.ts'
import { Members } from './members.ts'
import { Projects, type RepositoryCleanup } from './service.ts'

export { projectRoutes, type ProjectRouteOptions } from './routes.ts'
export { ProjectAccess, Groups, Members, Projects, type RepositoryCleanup }
export type { NewGroup } from './groups.ts'
export type { NewProject } from './service.ts'

export interface ProjectServices {
  projects: Projects
  groups: Groups
  members: Members
  projectAccess: ProjectAccess
}

/** The projects domain over a database; `deleteRepositoriesUnder` removes the registry's repositories of deleted projects (registry/). */
export function createProjects(db: Kysely<Database>, deleteRepositoriesUnder: RepositoryCleanup): ProjectServices {
  const projectAccess = new ProjectAccess(db)
  const projects = new Projects(db, projectAccess, deleteRepositoriesUnder)
  return { projects, groups: new Groups(db, projectAccess, projects), members: new Members(db, projectAccess), projectAccess }
}
