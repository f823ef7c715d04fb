// The CI job token (`CI_JOB_TOKEN`, GitLab's `glcbt-` tokens): minted when a runner starts a job,
// stored as a digest on the job, valid only while the job runs. With user `gitlab-ci-token` it is
// a `job` principal for the registry (/jwt/auth), git (clone of its own project) and the API's
// job endpoints. What it may do on another project depends on that project's allowlist.
import { randomBytes } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Action, ProjectFacts } from '../auth/access.ts'
import type { CredentialVerifier } from '../auth/credentials.ts'
import type { Credential, Principal } from '../auth/principals.ts'
import type { JobAccessResolver } from '../auth/registry-auth.ts'
import { atLeast } from '../auth/roles.ts'
import { secretDigest } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { CiJob, Database, Project } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import type { ProjectAccess } from '../projects/index.ts'
import * as userQueries from '../users/queries.ts'
import * as q from './queries.ts'
import * as rq from './runner-queries.ts'

export const JOB_TOKEN_PREFIX = 'glcbt-'
export const JOB_TOKEN_USERNAME = 'gitlab-ci-token'
/** 32 random bytes in base64url: always 43 characters, so logs can be masked by pattern too. */
export const JOB_TOKEN_PATTERN = /glcbt-[A-Za-z0-9_-]{43}/

export type JobPrincipal = Extract<Principal, { kind: 'job' }>

export function mintJobToken(): string {
  return `${JOB_TOKEN_PREFIX}${randomBytes(32).toString('base64url')}`
}

export function jobPrincipal(job: CiJob): JobPrincipal {
  return {
    kind: 'job',
    jobId: job.id,
    projectId: job.project_id,
    pipelineId: job.pipeline_id,
    userId: job.user_id,
    username: JOB_TOKEN_USERNAME,
    credential: { kind: 'job', id: job.id },
  }
}

/** Job token verification (a CredentialVerifier for registry and git logins), authorization and the allowlist. */
export class JobTokens implements CredentialVerifier, JobAccessResolver {
  readonly reservedUsername = JOB_TOKEN_USERNAME
  private readonly db: Kysely<Database>
  private readonly projectAccess: ProjectAccess

  constructor(db: Kysely<Database>, projectAccess: ProjectAccess) {
    this.db = db
    this.projectAccess = projectAccess
  }

  /** The running job a token belongs to, if any. */
  async runningJob(token: string): Promise<CiJob | undefined> {
    if (!token.startsWith(JOB_TOKEN_PREFIX)) return undefined
    return q.findJobByTokenDigest(this.db, secretDigest(token))
  }

  async verify(username: string, secret: string): Promise<Principal | undefined> {
    if (username !== JOB_TOKEN_USERNAME) return undefined
    const job = await this.runningJob(secret)
    return job && jobPrincipal(job)
  }

  async principalFor(cred: Credential): Promise<Principal | undefined> {
    if (cred.kind !== 'job') return undefined
    const job = await q.findJob(this.db, cred.id)
    return job && job.status === 'running' && job.token_digest !== null ? jobPrincipal(job) : undefined
  }

  /** Facts for `permittedActions` of a job principal on the project owning a registry repository. */
  async repositoryFacts(p: JobPrincipal, repository: string): Promise<ProjectFacts | undefined> {
    const project = await projectQueries.projectForRepository(this.db, repository)
    return project && this.projectFacts(p, project)
  }

  async projectFacts(p: JobPrincipal, project: Project): Promise<ProjectFacts> {
    const user = p.userId === null ? undefined : await userQueries.findUser(this.db, p.userId)
    const active = user !== undefined && user.state === 'active'
    const own = project.id === p.projectId
    return {
      projectId: project.id,
      visibility: project.visibility,
      accessLevel: active && !own ? await this.projectAccess.projectLevel(user, project) : undefined,
      deployTokenApplies: false,
      job: {
        ownProject: own,
        allowlisted: own || (await rq.isAllowlisted(this.db, project.id, p.projectId)),
        userIsAdmin: active && user.is_admin === 1,
        userSignedIn: active,
      },
    }
  }

  /** Why a job token may not do `action` on a repository, naming the allowlist entry that would fix a pull. */
  async explainDenial(p: JobPrincipal, repository: string, action: Action): Promise<string> {
    const target = await projectQueries.projectForRepository(this.db, repository)
    const own = await projectQueries.findProject(this.db, p.projectId)
    const ownPath = own?.full_path ?? `project ${p.projectId}`
    const hidden = `${action} access to ${repository} denied: no project this job's user can access exists at that path.`
    if (!target) return hidden
    if (target.id === p.projectId)
      return `${action} access to ${repository} denied: CI job tokens never delete images; use a personal access token with the Maintainer role.`
    const facts = await this.projectFacts(p, target)
    const level = facts.job!.userIsAdmin ? Number.POSITIVE_INFINITY : facts.accessLevel
    const userCanRead =
      target.visibility === 'public' || (target.visibility === 'internal' && facts.job!.userSignedIn) || atLeast(level, 'reporter')
    if (!userCanRead) return hidden
    if (action !== 'pull')
      return `${action} access to ${repository} denied: a CI job token of ${ownPath} can push only to ${ownPath}'s own registry.`
    return (
      `pull access to ${repository} denied: ${target.full_path} does not allow CI job tokens from ${ownPath}. ` +
      `A maintainer of ${target.full_path} must add ${ownPath} to its job token allowlist ` +
      `(POST /api/v4/projects/${target.id}/job_token_scope/allowlist with target_project_id=${p.projectId}).`
    )
  }

  /** A job's token may reach another project's job data: its own project, or one that allow-lists it. */
  async jobMayAccess(job: Pick<CiJob, 'project_id'>, projectId: number): Promise<boolean> {
    return projectId === job.project_id || rq.isAllowlisted(this.db, projectId, job.project_id)
  }

  // ---- the allowlist of a project (GitLab's /projects/:id/job_token_scope/allowlist) ----

  allowlistPage(projectId: number, page: { limit: number; offset: number }): Promise<{ rows: Project[]; total: number }> {
    return rq.allowlistPage(this.db, projectId, page)
  }

  async allow(projectId: number, allowed: Project): Promise<void> {
    if (allowed.id === projectId) throw new WharfError('BAD_REQUEST', 'a project always allows its own job tokens', {})
    if (!(await rq.addToAllowlist(this.db, projectId, allowed.id)))
      throw new WharfError('CONFLICT', `${allowed.full_path} is already in the allowlist`, {})
  }

  async disallow(projectId: number, allowedId: number): Promise<void> {
    if (!(await rq.removeFromAllowlist(this.db, projectId, allowedId)))
      throw new WharfError('NOT_FOUND', 'Project not in the allowlist', {})
  }
}
