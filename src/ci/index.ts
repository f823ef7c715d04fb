// CI: .gitlab-ci.yml parsing (./config), pipelines and jobs, CI/CD variables, trigger tokens.
import type { Kysely } from 'kysely'
import type { GitHosting } from '../git/service.ts'
import type { Database } from '../metadata/schema.ts'
import type { Projects } from '../projects/service.ts'
import { Pipelines } from './pipelines.ts'
import { Triggers } from './triggers.ts'
import { CiVariables } from './variables.ts'

export { ciRoutes, type CiRouteDeps } from './routes.ts'
export { Pipelines, CiVariables, Triggers }

export interface Ci {
  pipelines: Pipelines
  variables: CiVariables
  triggers: Triggers
}

/** Builds CI over git hosting: every push that creates or moves a branch or tag starts a pipeline. */
export function createCi(db: Kysely<Database>, git: GitHosting, projects: Projects, publicUrl: string): Ci {
  const pipelines = new Pipelines({ db, repos: git.repos, projects, publicUrl })
  git.onPush((e) => pipelines.handlePush(e).then(() => undefined))
  return { pipelines, variables: new CiVariables(db), triggers: new Triggers(db) }
}
