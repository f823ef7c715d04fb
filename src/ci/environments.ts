// Environments and deployments (GitLab's `environment:` keyword and its API). Every advance of a
// pipeline (PipelineObserver) brings its jobs' environments up to date in the same transaction:
// the environment exists, the job carries CI_ENVIRONMENT_*, a `start` job has a deployment whose
// status follows the job's, and a `stop` job moves the environment to stopping and stopped.
// Stopping an environment (the API, a deleted branch, `auto_stop_in`) plays the `on_stop` job of
// the pipeline that deployed it last.
import { createHash } from 'node:crypto'
import type { Kysely, Transaction } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { CiJob, Database, Deployment, Environment, Pipeline, Project } from '../metadata/schema.ts'
import { parseDuration, type CiEnvironment } from './config/index.ts'
import * as eq from './environment-queries.ts'
import type { DeploymentFilter, EnvironmentFilter } from './environment-queries.ts'
import type { JobDefinition, PipelineObserver, Pipelines } from './pipelines.ts'
import type { JobVariable } from './predefined.ts'
import * as q from './queries.ts'

export const DEPLOYMENT_TIERS = ['production', 'staging', 'testing', 'development', 'other'] as const
export type DeploymentTier = (typeof DEPLOYMENT_TIERS)[number]

/** GitLab's limit on environment names, and its name grammar (letters, digits, spaces and `-_/.+$%{}`). */
export const ENVIRONMENT_NAME = { maxLength: 255, pattern: /^[a-zA-Z0-9 \-_/.+${}%]+$/ } as const

/** What a deployment's status is while its job has this status. */
const DEPLOYMENT_STATUS: Record<string, eq.DeploymentStatus> = {
  created: 'created',
  waiting_for_resource: 'created',
  pending: 'created',
  scheduled: 'created',
  manual: 'created',
  running: 'running',
  success: 'success',
  failed: 'failed',
  canceling: 'canceled',
  canceled: 'canceled',
  skipped: 'skipped',
}
const DEPLOYMENT_FINISHED = new Set<string>(['success', 'failed', 'canceled', 'skipped'])
/** A stop job in these states is not played again: it is waiting for its turn or running. */
const ACTIVE_JOB = new Set<string>(['created', 'pending', 'running', 'waiting_for_resource'])

/**
 * GitLab's environment slug (CI_ENVIRONMENT_SLUG): lowercase letters, digits and dashes, starting
 * with a letter, at most 24 characters; a name that had to change gets a suffix from its digest,
 * so two names never share a slug.
 */
export function environmentSlug(name: string): string {
  let slug = name.toLowerCase().replace(/[^a-z0-9]/g, '-')
  if (!/^[a-z]/.test(slug)) slug = `env-${slug}`
  slug = slug.replace(/-+/g, '-')
  if (slug.length <= 24 && slug === name) return slug.replace(/-$/, '')
  const short = slug.slice(0, 17)
  const suffix = BigInt(`0x${createHash('sha256').update(name).digest('hex')}`)
    .toString(36)
    .slice(-6)
  return `${short.endsWith('-') ? short : `${short}-`}${suffix}`
}

/** GitLab's guess of a tier from an environment's name (Environment#guess_tier), when `deployment_tier` does not say. */
export function guessTier(name: string): DeploymentTier {
  if (/(dev|review|trunk)/i.test(name)) return 'development'
  if (/(test|tst|int|ac(ce|)pt|qa|qc|control|quality)/i.test(name)) return 'testing'
  if (/(st(a|)g|mod(e|)l|pre|demo|non)/i.test(name)) return 'staging'
  if (/(pr(o|)d|live)/i.test(name)) return 'production'
  return 'other'
}

export class Environments implements PipelineObserver {
  private readonly db: Kysely<Database>
  private readonly pipelines: Pipelines
  private readonly now: () => number

  constructor(deps: { db: Kysely<Database>; pipelines: Pipelines; now?: () => number }) {
    this.db = deps.db
    this.pipelines = deps.pipelines
    this.now = deps.now ?? Date.now
    deps.pipelines.observe(this)
  }

  async pipelineAdvanced(trx: Transaction<Database>, pipeline: Pipeline): Promise<void> {
    // Retried attempts are finished, their deployments final: only the current attempts can change.
    for (const job of await q.pipelineJobs(trx, pipeline.id)) {
      const env = (JSON.parse(job.definition) as Partial<JobDefinition>).environment
      if (env) await this.followJob(trx, pipeline, job, env)
    }
  }

  /** One job's environment, deployment and variables, as the job's status says. */
  private async followJob(trx: Transaction<Database>, pipeline: Pipeline, job: CiJob, def: CiEnvironment): Promise<void> {
    // A name that expanded to nothing or to something GitLab refuses gets no environment, as on GitLab.
    if (!ENVIRONMENT_NAME.pattern.test(def.name) || def.name.length > ENVIRONMENT_NAME.maxLength) return
    // The first time a job is seen its environment is created if need be and its variables stored;
    // afterwards the environment is only looked up, so an old job never brings back a deleted one.
    const vars = JSON.parse(job.variables) as JobVariable[]
    const seen = vars.some((v) => v.key === 'CI_ENVIRONMENT_NAME')
    const env = seen
      ? await eq.findEnvironmentByName(trx, job.project_id, def.name)
      : await eq.ensureEnvironment(trx, {
          projectId: job.project_id,
          name: def.name,
          slug: environmentSlug(def.name),
          tier: def.deploymentTier ?? guessTier(def.name),
          externalUrl: def.action === 'start' ? def.url : null,
        })
    if (!env) return
    if (!seen) await this.addVariables(trx, job, vars, env, def)
    const now = new Date(this.now()).toISOString()
    if (def.action === 'stop') {
      if (job.status === 'running') await eq.transitionEnvironment(trx, env.id, ['available'], { state: 'stopping' })
      else if (job.status === 'success')
        await eq.transitionEnvironment(trx, env.id, ['available', 'stopping'], { state: 'stopped', auto_stop_at: null })
      else if (job.status === 'failed' || job.status === 'canceled')
        await eq.transitionEnvironment(trx, env.id, ['stopping'], { state: 'available' })
      return
    }
    if (def.action !== 'start') return
    const status = DEPLOYMENT_STATUS[job.status] ?? 'created'
    const finishedAt = DEPLOYMENT_FINISHED.has(status) ? (job.finished_at ?? now) : null
    const existing = await eq.deploymentForJob(trx, job.id)
    if (!existing) {
      await eq.insertDeployment(trx, {
        project_id: job.project_id,
        iid: await eq.nextDeploymentIid(trx, job.project_id),
        environment_id: env.id,
        job_id: job.id,
        pipeline_id: pipeline.id,
        ref: pipeline.ref,
        tag: pipeline.tag,
        sha: pipeline.sha,
        status,
        user_id: job.user_id,
        on_stop: def.onStop,
        finished_at: finishedAt,
      })
    } else if (existing.status !== status) {
      await eq.updateDeployment(trx, existing.id, { status, finished_at: finishedAt })
    } else return
    // A deployment that runs makes a stopped environment available again; one that succeeded sets its URL and auto-stop.
    if (status === 'running') await eq.transitionEnvironment(trx, env.id, ['stopped', 'stopping'], { state: 'available' })
    if (status === 'success') {
      const stopIn = def.autoStopIn === null || def.autoStopIn.trim().toLowerCase() === 'never' ? undefined : parseDuration(def.autoStopIn)
      await eq.updateEnvironment(trx, env.id, {
        state: 'available',
        ...(def.url !== null ? { external_url: def.url } : {}),
        auto_stop_at: stopIn === undefined ? null : new Date(this.now() + stopIn * 1000).toISOString(),
      })
    }
  }

  /** GitLab's CI_ENVIRONMENT_* variables, stored with the job's predefined ones. */
  private async addVariables(
    trx: Transaction<Database>,
    job: CiJob,
    vars: JobVariable[],
    env: Environment,
    def: CiEnvironment,
  ): Promise<void> {
    const add = (key: string, value: string | null) => value !== null && vars.push({ key, value, public: true })
    add('CI_ENVIRONMENT_NAME', env.name)
    add('CI_ENVIRONMENT_SLUG', env.slug)
    add('CI_ENVIRONMENT_URL', def.url ?? env.external_url)
    add('CI_ENVIRONMENT_ACTION', def.action)
    add('CI_ENVIRONMENT_TIER', env.tier)
    await q.setJobVariables(trx, job.id, vars)
  }

  page(projectId: number, f: EnvironmentFilter, page: { limit: number; offset: number }) {
    return eq.pageEnvironments(this.db, projectId, f, page)
  }

  async find(projectId: number, id: number): Promise<Environment> {
    const env = await eq.findEnvironment(this.db, projectId, id)
    if (!env) throw new WharfError('NOT_FOUND', 'Environment Not Found', { id })
    return env
  }

  async create(
    project: Project,
    input: { name: string; externalUrl?: string | undefined; tier?: DeploymentTier | undefined },
  ): Promise<Environment> {
    checkName(input.name)
    if (await eq.findEnvironmentByName(this.db, project.id, input.name))
      throw new WharfError('BAD_REQUEST', 'Name has already been taken', { name: input.name })
    return eq.ensureEnvironment(this.db, {
      projectId: project.id,
      name: input.name,
      slug: environmentSlug(input.name),
      tier: input.tier ?? guessTier(input.name),
      externalUrl: input.externalUrl ?? null,
    })
  }

  async update(
    env: Environment,
    set: { externalUrl?: string | null | undefined; tier?: DeploymentTier | undefined },
  ): Promise<Environment> {
    await eq.updateEnvironment(this.db, env.id, {
      ...(set.externalUrl !== undefined ? { external_url: set.externalUrl } : {}),
      ...(set.tier !== undefined ? { tier: set.tier } : {}),
    })
    return (await eq.findEnvironment(this.db, env.project_id, env.id))!
  }

  /** As GitLab: only a stopped environment can be deleted (its deployments go with it). */
  async remove(env: Environment): Promise<void> {
    if (env.state !== 'stopped')
      throw new WharfError('FORBIDDEN', 'the environment must be stopped before it can be deleted', { state: env.state })
    await eq.deleteEnvironment(this.db, env.id)
  }

  /**
   * Stops an environment: plays the `on_stop` job of its last deployment's pipeline (the
   * environment is `stopping` until that job succeeds), or, without one, stops it at once.
   * `force` stops it without running the job (GitLab's `force=true`).
   */
  async stop(env: Environment, opts: { force?: boolean | undefined } = {}): Promise<Environment> {
    const current = async () => (await eq.findEnvironment(this.db, env.project_id, env.id))!
    if (env.state === 'stopped') return env
    const job = opts.force ? undefined : await this.stopJob(env)
    const active = job !== undefined && ACTIVE_JOB.has(job.status)
    // Its stop job is on its way already: nothing more to do.
    if (active && env.state === 'stopping') return env
    if (!job || active) {
      await eq.transitionEnvironment(this.db, env.id, ['available', 'stopping'], { state: 'stopped', auto_stop_at: null })
      return current()
    }
    // Claimed with a conditional update, so two stops at once run the job once.
    if (!(await eq.transitionEnvironment(this.db, env.id, ['available'], { state: 'stopping', auto_stop_at: null }))) return current()
    let next = job
    // Stopped before: the job runs again as a new attempt, which waits to be played like the first.
    if (next.status !== 'manual' && next.status !== 'scheduled') next = await this.pipelines.retryJob(next)
    if (next.status === 'manual' || next.status === 'scheduled') await this.pipelines.playJob(next)
    return current()
  }

  /** The `on_stop` job of the last deployment's pipeline (its newest attempt). */
  private async stopJob(env: Environment): Promise<CiJob | undefined> {
    const last = (await eq.lastSuccessfulDeployment(this.db, env.id)) ?? (await eq.lastDeployment(this.db, env.id))
    if (!last?.on_stop || last.pipeline_id === null) return undefined
    return (await q.pipelineJobs(this.db, last.pipeline_id)).find((j) => j.name === last.on_stop)
  }

  /** A deleted branch stops the environments it deployed last (review apps), as on GitLab. */
  async stopForDeletedBranch(projectId: number, branch: string): Promise<number[]> {
    const stopped: number[] = []
    for (const env of await eq.environmentsLastDeployedFrom(this.db, projectId, branch)) {
      await this.stop(env)
      stopped.push(env.id)
    }
    return stopped
  }

  /** Environments whose `auto_stop_in` has passed are stopped (called by the server's scheduler tick). */
  async stopExpired(): Promise<number[]> {
    const stopped: number[] = []
    for (const env of await eq.environmentsDueToStop(this.db, new Date(this.now()).toISOString())) {
      await this.stop(env)
      stopped.push(env.id)
    }
    return stopped
  }

  lastDeployment(env: Environment): Promise<Deployment | undefined> {
    return eq.lastDeployment(this.db, env.id)
  }

  deployments(projectId: number, f: DeploymentFilter, page: { limit: number; offset: number }) {
    return eq.pageDeployments(this.db, projectId, f, page)
  }

  async deployment(projectId: number, id: number): Promise<Deployment> {
    const d = await eq.findDeployment(this.db, projectId, id)
    if (!d) throw new WharfError('NOT_FOUND', 'Deployment Not Found', { id })
    return d
  }

  /** Environments by id (a page of deployments names them). */
  async environmentsById(projectId: number, ids: number[]): Promise<Map<number, Environment>> {
    const out = new Map<number, Environment>()
    for (const id of new Set(ids)) {
      const env = await eq.findEnvironment(this.db, projectId, id)
      if (env) out.set(id, env)
    }
    return out
  }

  findByName(projectId: number, name: string): Promise<Environment | undefined> {
    return eq.findEnvironmentByName(this.db, projectId, name)
  }
}

function checkName(name: string): void {
  if (!ENVIRONMENT_NAME.pattern.test(name) || name.length > ENVIRONMENT_NAME.maxLength)
    throw new WharfError(
      'BAD_REQUEST',
      "name can contain only letters, digits, '-', '_', '/', '$', '{', '}', '.', and spaces, but it cannot start or end with '/'",
      { name },
    )
  if (name.startsWith('/') || name.endsWith('/')) throw new WharfError('BAD_REQUEST', "name cannot start or end with '/'", { name })
}
