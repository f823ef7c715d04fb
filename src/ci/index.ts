// CI: .gitlab-ci.yml parsing (./config), pipelines and jobs, CI/CD variables, trigger tokens,
// runners (GitLab's runner API), job tokens, traces and artifacts.
import type { BlobDriver } from '../storage/driver.ts'
import type { Kysely } from 'kysely'
import type { Credentials } from '../auth/credentials.ts'
import type { RegistryAuth } from '../auth/registry-auth.ts'
import type { GitHosting } from '../git/service.ts'
import type { Database } from '../metadata/schema.ts'
import type { Metrics } from '../ops/metrics.ts'
import { Artifacts } from './artifacts.ts'
import { registerCiMetrics } from './metrics.ts'
import { JobTokens } from './job-tokens.ts'
import { Pipelines, type RemoteIncludes } from './pipelines.ts'
import { JobPayloads } from './job-payload.ts'
import { JobQueue } from './job-queue.ts'
import { JobSweeper } from './job-sweeper.ts'
import { JobErasure } from './job-erasure.ts'
import { JobUpdates } from './job-updates.ts'
import { Runners, type RunnerDomains } from './runners.ts'
import { TraceStore } from './traces.ts'
import { Triggers } from './triggers.ts'
import { PipelineSchedules } from './schedules.ts'
import { CiVariables } from './variables.ts'

import { CommitStatuses } from './commit-statuses.ts'
import { Environments } from './environments.ts'
import { Releases } from './releases.ts'
import { RegistryCiFacts } from './registry-facts.ts'
import type { Leases } from '../metadata/leases.ts'
export { ciRoutes, type CiRouteDeps } from './routes.ts'
export { runnerApiRoutes, runnerProtocolRoutes } from './runner-routes.ts'
export { ciTemplateRoutes } from './template-routes.ts'
export { scheduleRoutes } from './schedule-routes.ts'
export { environmentRoutes } from './environment-routes.ts'
export { releaseRoutes } from './release-routes.ts'
export { ONLINE_SECONDS } from './runners.ts'
export { Pipelines, CiVariables, Triggers, PipelineSchedules, Environments, Releases }
export type { RemoteFile, RemoteIncludes } from './pipelines.ts'

export interface Ci {
  pipelines: Pipelines
  commitStatuses: CommitStatuses
  variables: CiVariables
  triggers: Triggers
  schedules: PipelineSchedules
  /** Environments and deployments (`environment:`); `stopExpired` is ticked by the server. */
  environments: Environments
  releases: Releases
  runners: Runners
  jobQueue: JobQueue
  jobUpdates: JobUpdates
  jobSweeper: JobSweeper
  jobTokens: JobTokens
  traces: TraceStore
  artifacts: Artifacts
  jobErasure: JobErasure
  /** For the registry's tag history and CI-aware cleanup (services.ts plugs it in). */
  registryFacts: RegistryCiFacts
  /** Which node runs the job sweep (the runner plugin's timer). */
  leases: Leases
}

export interface CiOptions {
  /** Gets the CI gauges (queue, jobs by status, runners online), read at scrape time. */
  metrics?: Metrics
  /** Where job logs and artifacts live (`<data>/ci`, or the bucket's `ci/` prefix). */
  storage: BlobDriver
  credentials: Credentials
  auth: RegistryAuth
  /** Running jobs whose runner is silent this long are failed (`ci.jobHeartbeatTimeoutSeconds`). */
  heartbeatTimeoutSeconds: number
  /** Largest artifacts upload in bytes. */
  artifactsMaxBytes?: number
  /** Most jobs one pipeline may have (`ci.maxJobsPerPipeline`). */
  maxJobsPerPipeline?: number
  /** The dependency proxy's mirror listener URL, announced to jobs as WHARF_REGISTRY_MIRROR. */
  registryMirror?: string | undefined
  /** Fetches `include:remote` files (the composition root plugs in the webhooks' outbound guard). */
  remoteIncludes?: RemoteIncludes
  /** The nodes' leases: the job sweep runs on one node at a time. */
  leases: Leases
}

/**
 * Builds CI over git hosting: every push that creates or moves a branch or tag starts a pipeline;
 * runners take its jobs. The job token is registered as a credential for the registry and git.
 */
export function createCi(db: Kysely<Database>, git: GitHosting, domains: RunnerDomains, publicUrl: string, opts: CiOptions): Ci {
  const artifacts = new Artifacts(db, opts.storage, opts.artifactsMaxBytes)
  const pipelines = new Pipelines({
    db,
    repos: git.repos,
    projectAccess: domains.projectAccess,
    publicUrl,
    artifacts,
    ...(opts.remoteIncludes ? { remoteIncludes: opts.remoteIncludes } : {}),
    registryMirror: opts.registryMirror,
    ...(opts.maxJobsPerPipeline !== undefined ? { maxJobs: opts.maxJobsPerPipeline } : {}),
  })
  git.onPush((e, ack) => pipelines.handlePush(e, ack).then(() => undefined))
  const environments = new Environments({ db, pipelines })
  // A deleted branch stops the environments it deployed last (review apps). Stopping twice is harmless,
  // so this listener acknowledges nothing: a redelivered event just finds them stopped.
  git.onPush(async (e) => {
    for (const u of e.updates)
      if (u.action === 'delete' && u.type === 'branch') await environments.stopForDeletedBranch(e.projectId, u.name)
  })
  const releases = new Releases({ db, git, users: domains.users, projectAccess: domains.projectAccess, publicUrl })
  const jobTokens = new JobTokens(db, domains.projectAccess)
  opts.credentials.addVerifier(jobTokens)
  opts.auth.setJobAccess(jobTokens)
  const runners = new Runners(db, domains)
  const traces = new TraceStore(db, opts.storage)
  if (opts.metrics) registerCiMetrics(opts.metrics, db)
  const jobUpdates = new JobUpdates({ db, pipelines, traces, repos: git.repos, credentials: opts.credentials, releases })
  const payloads = new JobPayloads({ db, pipelines, artifacts, repos: git.repos, publicUrl, idTokens: opts.auth.tokens })
  const jobQueue = new JobQueue({ db, pipelines, runners, repos: git.repos, payloads, updates: jobUpdates })
  const jobSweeper = new JobSweeper({ db, updates: jobUpdates, artifacts, heartbeatTimeoutSeconds: opts.heartbeatTimeoutSeconds })
  return {
    pipelines,
    commitStatuses: new CommitStatuses(db, git.repos),
    variables: new CiVariables(db),
    triggers: new Triggers(db),
    schedules: new PipelineSchedules({ db, pipelines, projectAccess: domains.projectAccess }),
    environments,
    releases,
    runners,
    jobQueue,
    jobUpdates,
    jobSweeper,
    jobTokens,
    traces,
    artifacts,
    jobErasure: new JobErasure({ pipelines, traces, artifacts }),
    registryFacts: new RegistryCiFacts(db, git),
    leases: opts.leases,
  }
}
