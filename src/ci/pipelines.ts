import type { Kysely, Transaction } from 'kysely'
import { isWharfError, WharfError } from '../core/errors.ts'
import type { Principal } from '../auth/principals.ts'
import type { CommitInfo, GitRepos } from '../git/repos.ts'
import { ProtectedRefs } from '../git/protected-refs.ts'
import { ZERO_SHA } from '../git/refs.ts'
import type { PushAck, PushEvent } from '../git/service.ts'
import { nowIso } from '../metadata/db.ts'
import type { CiJob, CiJobArtifact, Database, Pipeline, Project, ResourceGroup, Runner, User } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import type { ProjectAccess } from '../projects/index.ts'
import * as userQueries from '../users/queries.ts'
import {
  expandAllVariables,
  YAML_LIMITS,
  type AutoCancelMode,
  type CiTrigger,
  type PipelinePlan,
  type PipelineSource,
  type PlannedJob,
} from './config/index.ts'
import { ConfigPlanner, FileTooBigError, type FileAnswer, type PlanResult } from './config-planner.ts'
import { predefinedVariables, type JobVariable } from './predefined.ts'
import * as q from './queries.ts'
import * as rq from './runner-queries.ts'
import { advance, bridgeStatus, FINISHED, pipelineStatus, type JobNode, type JobStatus, type PipelineStatus, type When } from './state.ts'
import type { Artifacts } from './artifacts.ts'
import { ACCESS_LEVELS } from '../auth/roles.ts'

export const CI_CONFIG_PATH = '.gitlab-ci.yml'

export interface PipelineRequest {
  project: Project
  ref: string
  refType: 'branch' | 'tag'
  sha: string
  beforeSha: string
  source: PipelineSource
  userId: number | null
  /** Variables given with an API or trigger request; they win over everything else. */
  variables?: Array<{ key: string; value: string; variable_type?: 'env_var' | 'file' }>
  /** A downstream pipeline: the bridge job that creates it. */
  upstream?: CiJob
  /** A child pipeline's configuration (its `trigger:include`), instead of the file at the commit. */
  config?: string
  /** The pipeline schedule that starts it (source `schedule`). */
  scheduleId?: number
}

/** What gets stored per job: the plan, plus what a runner needs to know. */
export interface JobDefinition extends PlannedJob {
  ref: string
  sha: string
}

type Listener = (pipelineId: number) => void

/**
 * Told in the transaction of every advance, once the jobs have moved, so what follows a job's
 * status (deployments, environment variables) changes with it and is there before a runner can
 * claim the job.
 */
export interface PipelineObserver {
  pipelineAdvanced(trx: Transaction<Database>, pipeline: Pipeline): Promise<void>
}

export const BRIDGE_LIMITS = {
  /** Levels of child pipelines below a parent (GitLab allows a child to have children, no deeper). */
  childDepth: 2,
} as const

/** A remote file's text, or GitLab's message for why it could not be fetched. */
export type RemoteFile = { content: string } | { error: string }

/**
 * `include:remote`: fetching a URL chosen by a pipeline's author. A port: the composition root
 * plugs in the webhooks' outbound guard (hooks/), which refuses the local network.
 */
export interface RemoteIncludes {
  fetch(url: string): Promise<RemoteFile>
}

/** Why a bridge job could not create its downstream pipeline (GitLab's failure reasons). */
class BridgeFailure extends Error {
  readonly reason: string
  constructor(reason: string) {
    super(reason)
    this.reason = reason
  }
}

/** GitLab.com's Free-tier ci_pipeline_size (self-managed GitLab has no limit unless set). */
export const DEFAULT_MAX_JOBS_PER_PIPELINE = 500
/** Jobs stored between two turns of the event loop. */
const JOBS_PER_YIELD = 20

/**
 * Pipelines from pushes, the API and triggers: reads `.gitlab-ci.yml` at the commit, plans the
 * jobs (parser in ./config), stores them and moves them through the state machine (./state.ts).
 * Pending jobs wait for runners.
 */
export interface JobRelations {
  pipelines: Map<number, Pipeline>
  users: Map<number, User>
  runners: Map<number, Runner>
  /** Each job's artifacts, oldest first. */
  artifacts: Map<number, CiJobArtifact[]>
}

export class Pipelines {
  private readonly db: Kysely<Database>
  private readonly repos: GitRepos
  private readonly projectAccess: ProjectAccess
  private readonly publicUrl: string
  private readonly registryMirror: string | undefined
  private readonly listeners = new Set<Listener>()
  private readonly observers: PipelineObserver[] = []
  private readonly planner: ConfigPlanner
  private readonly maxJobs: number
  private readonly protectedRefs: ProtectedRefs
  private readonly artifacts: Artifacts | undefined
  private readonly remoteIncludes: RemoteIncludes | undefined
  private readonly now: () => number

  constructor(deps: {
    db: Kysely<Database>
    repos: GitRepos
    projectAccess: ProjectAccess
    publicUrl: string
    maxJobs?: number
    registryMirror?: string | undefined
    /** Reads `include:artifact` files of child pipelines. */
    artifacts?: Artifacts
    /** Fetches `include:remote` files; without it they are refused. */
    remoteIncludes?: RemoteIncludes
    /** The clock delayed jobs are timed by (tests move it). */
    now?: () => number
  }) {
    this.remoteIncludes = deps.remoteIncludes
    this.artifacts = deps.artifacts
    this.db = deps.db
    this.repos = deps.repos
    this.projectAccess = deps.projectAccess
    this.publicUrl = deps.publicUrl
    this.planner = new ConfigPlanner()
    this.maxJobs = deps.maxJobs ?? DEFAULT_MAX_JOBS_PER_PIPELINE
    this.registryMirror = deps.registryMirror
    this.protectedRefs = new ProtectedRefs(deps.db)
    this.now = deps.now ?? Date.now
  }

  /** Protected refs get protected variables and ref_protected runners: the default branch and the protected branches and tags. */
  async isProtectedRef(projectId: number, ref: string, tag: boolean): Promise<boolean> {
    if (!tag && ref === (await this.repos.defaultBranch(projectId))) return true
    return this.protectedRefs.isProtected(projectId, tag ? 'tag' : 'branch', ref)
  }

  /** Stops the planner's workers. */
  close(): Promise<void> {
    return this.planner.close()
  }

  /** Adds an observer told inside each advance's transaction (see PipelineObserver). */
  observe(o: PipelineObserver): void {
    this.observers.push(o)
  }

  /** Called whenever a pipeline's jobs changed (new pending jobs for runners, live UI). */
  onChange(l: Listener): () => void {
    this.listeners.add(l)
    return () => this.listeners.delete(l)
  }

  /**
   * A push starts a pipeline for every branch or tag it created or moved; deletions start nothing.
   * Each update is acknowledged in the transaction that stores its pipeline (or once it is known
   * to start none), so an event delivered again after a failure or a crash resumes where it
   * stopped and never starts a pipeline twice.
   */
  async handlePush(e: PushEvent, ack: PushAck): Promise<Pipeline[]> {
    const project = await projectQueries.findProject(this.db, e.projectId)
    if (!project) {
      for (let i = e.handled; i < e.updates.length; i++) await ack(this.db, i)
      return []
    }
    const out: Pipeline[] = []
    for (let i = e.handled; i < e.updates.length; i++) {
      const u = e.updates[i]!
      if (u.action === 'delete' || u.type === 'other') {
        await ack(this.db, i)
        continue
      }
      // An annotated tag points at a tag object: pipelines run on the commit it names.
      const sha = (await this.repos.commitInfo(project.id, u.newSha))?.id ?? u.newSha
      const p = await this.create(
        {
          project,
          ref: u.name,
          refType: u.type,
          sha,
          beforeSha: u.oldSha,
          source: 'push',
          userId: userIdOf(e.principal),
        },
        (trx) => ack(trx, i),
      )
      if (p) out.push(p)
      else await ack(this.db, i)
    }
    return out
  }

  /**
   * Creates a pipeline, or returns undefined when there is none to run (no CI file on a push,
   * workflow rules or only/except filtered everything). An invalid file gives a failed pipeline
   * whose `yaml_errors` name the job and key. `alsoInTransaction` runs in the transaction that
   * stores the pipeline (a push event's acknowledgement).
   */
  async create(r: PipelineRequest, alsoInTransaction?: (trx: Transaction<Database>) => Promise<void>): Promise<Pipeline | undefined> {
    let text: Buffer | undefined = r.config === undefined ? undefined : Buffer.from(r.config)
    let tooBig = false
    try {
      text ??= await this.readYaml(r.project.id, r.sha, CI_CONFIG_PATH)
    } catch (e) {
      if (!(e instanceof FileTooBigError)) throw e
      tooBig = true
    }
    if (!text && !tooBig) {
      if (r.source === 'push') return undefined
      throw new WharfError('BAD_REQUEST', `Missing CI config file: ${CI_CONFIG_PATH} not found at ${r.ref}`, {})
    }
    const namespace = (await projectQueries.findNamespace(this.db, r.project.namespace_id))!
    const defaultBranch = (await this.repos.defaultBranch(r.project.id)) ?? 'main'
    const commit = await this.repos.commitInfo(r.project.id, r.sha)
    if (!commit) throw new WharfError('BAD_REQUEST', `commit ${r.sha} not found`, {})

    let errors: string[] | undefined
    let plan: Extract<PipelinePlan, { status: 'created' }> | undefined
    const result = text
      ? (await this.plan(r, text, namespace.full_path, defaultBranch, commit)).plan
      : { status: 'failed' as const, errors: [`\`${CI_CONFIG_PATH}\`: The parsed YAML is too big`] }
    if (result.status === 'filtered') return undefined
    if (result.status === 'failed') errors = [...result.errors]
    else plan = result

    const pipeline = await this.db.transaction().execute(async (trx) => {
      const p = await q.insertPipeline(trx, {
        projectId: r.project.id,
        iid: await q.nextPipelineIid(trx, r.project.id),
        ref: r.ref,
        tag: r.refType === 'tag',
        sha: r.sha,
        beforeSha: r.beforeSha,
        source: r.source,
        status: errors ? 'failed' : 'created',
        userId: r.userId,
        yamlErrors: errors ? errors.join('\n') : null,
        variables: JSON.stringify(r.variables ?? []),
        upstreamJobId: r.upstream?.id ?? null,
        scheduleId: r.scheduleId ?? null,
      })
      await alsoInTransaction?.(trx)
      if (plan && plan.autoCancelOnJobFailure !== 'none') {
        await q.updatePipeline(trx, p.id, { auto_cancel_on_job_failure: plan.autoCancelOnJobFailure })
      }
      if (errors) {
        await q.updatePipeline(trx, p.id, { finished_at: nowIso() })
        return p
      }
      const user = r.userId === null ? undefined : await userQueries.findUser(trx, r.userId)
      let inserted = 0
      for (const job of plan!.jobs) {
        // Queries on node:sqlite run synchronously and Kysely chains them through promises alone:
        // without a macrotask now and then, storing hundreds of jobs would hold every request.
        if (++inserted % JOBS_PER_YIELD === 0) await new Promise((resolve) => setImmediate(resolve))
        const row = await q.insertJob(trx, {
          pipelineId: p.id,
          projectId: r.project.id,
          name: job.name,
          stage: job.stage,
          stageIdx: job.stageIndex,
          when: job.when,
          allowFailure: job.allowFailure,
          needs: job.needs === null ? null : job.needs.map((n) => n.job),
          definition: { ...job, ref: r.ref, sha: r.sha } satisfies JobDefinition,
          variables: [],
          userId: r.userId,
          kind: job.trigger ? 'bridge' : 'build',
          resourceGroup: job.resourceGroup,
        })
        if (job.resourceGroup !== null) await q.ensureResourceGroup(trx, r.project.id, job.resourceGroup)
        const vars: JobVariable[] = predefinedVariables({
          serverUrl: this.publicUrl,
          project: {
            id: r.project.id,
            name: r.project.name,
            path: r.project.path,
            fullPath: r.project.full_path,
            namespace: namespace.full_path,
            namespaceIsGroup: namespace.kind === 'group',
            visibility: r.project.visibility,
            defaultBranch,
          },
          registryMirror: this.registryMirror,
          pipeline: {
            id: p.id,
            iid: p.iid,
            source: r.source,
            ref: r.ref,
            tag: r.refType === 'tag',
            sha: r.sha,
            beforeSha: r.beforeSha,
            url: this.pipelineUrl(r.project, p.id),
          },
          commit: {
            message: commit.message,
            title: commit.title,
            timestamp: commit.committedDate,
            author: `${commit.authorName} <${commit.authorEmail}>`,
          },
          job: { id: row.id, name: job.name, stage: job.stage, url: `${this.publicUrl}/${r.project.full_path}/-/jobs/${row.id}` },
          ...(user ? { user: { id: user.id, username: user.username, name: user.name, email: user.email } } : {}),
        })
        await q.setJobVariables(trx, row.id, vars)
      }
      return p
    })
    if (!errors) {
      await this.advance(pipeline.id)
      if (r.refType === 'branch') await this.cancelRedundant(pipeline, plan!.autoCancelOnNewCommit)
    }
    return (await q.findPipeline(this.db, pipeline.id))!
  }

  /**
   * GitLab's auto-cancel of redundant pipelines, as the new pipeline's
   * `workflow:auto_cancel:on_new_commit` says: a new pipeline on a branch cancels what is left of
   * each older one still going for another commit. `conservative` (the default): unless a job that
   * is not `interruptible: true` has already started there; `interruptible`: only its interruptible
   * jobs; `none`: nothing. Manual jobs stay.
   */
  private async cancelRedundant(fresh: Pipeline, mode: AutoCancelMode): Promise<number[]> {
    if (mode === 'none') return []
    const canceled: number[] = []
    const interruptible = (j: CiJob) => (JSON.parse(j.definition) as Partial<JobDefinition>).interruptible === true
    for (const old of await q.redundantPipelines(this.db, fresh)) {
      const jobs = await q.pipelineJobs(this.db, old.id)
      const started = (j: CiJob) => ['running', 'success', 'failed'].includes(j.status)
      if (mode === 'conservative' && jobs.some((j) => started(j) && !interruptible(j))) continue
      const now = nowIso()
      for (const j of jobs)
        if (mode === 'conservative' || interruptible(j))
          await q.transitionJob(this.db, j.id, ['created', 'waiting_for_resource', 'pending', 'running', 'scheduled'], {
            status: 'canceled',
            finished_at: now,
          })
      await this.advance(old.id)
      canceled.push(old.id)
    }
    return canceled
  }

  /** Delayed jobs whose `start_in` has passed go to the queue; returns their ids. */
  async releaseDelayed(): Promise<number[]> {
    const now = new Date(this.now()).toISOString()
    const released: number[] = []
    const pipelines = new Set<number>()
    for (const j of await q.dueScheduledJobs(this.db, now)) {
      if (await q.transitionJob(this.db, j.id, ['scheduled'], ready(j, now))) {
        released.push(j.id)
        pipelines.add(j.pipeline_id)
      }
    }
    for (const id of pipelines) await this.advance(id)
    return released
  }

  /**
   * GitLab's CI lint: `content` (or the project's CI file at the ref) planned as a push pipeline
   * for `ref` (the default branch when none) would be, with the same errors pipelines get, and
   * nothing created. A plan that workflow rules filter out is valid.
   */
  async lint(
    project: Project,
    opts: { content?: string | undefined; ref?: string | undefined },
  ): Promise<{ valid: boolean; errors: string[]; content: string; mergedYaml: string | undefined; jobs: PlannedJob[] }> {
    const ref = opts.ref ?? (await this.repos.defaultBranch(project.id))
    const sha = ref === undefined ? undefined : await this.repos.resolveRef(project.id, ref).catch(() => undefined)
    if (ref === undefined || !sha)
      throw new WharfError(
        'NOT_FOUND',
        ref === undefined ? 'the repository is empty: push a commit first' : `Reference not found: ${ref}`,
        {},
      )
    let content = opts.content
    if (content === undefined) {
      let text: Buffer | undefined
      try {
        text = await this.readYaml(project.id, sha, CI_CONFIG_PATH)
      } catch (e) {
        if (!(e instanceof FileTooBigError)) throw e
        return { valid: false, errors: [`\`${CI_CONFIG_PATH}\`: The parsed YAML is too big`], content: '', mergedYaml: undefined, jobs: [] }
      }
      if (!text)
        return { valid: false, errors: [`Please provide content of ${CI_CONFIG_PATH}`], content: '', mergedYaml: undefined, jobs: [] }
      content = text.toString('utf8')
    }
    if (Buffer.byteLength(content) > YAML_LIMITS.bytes)
      return { valid: false, errors: [`\`${CI_CONFIG_PATH}\`: The parsed YAML is too big`], content: '', mergedYaml: undefined, jobs: [] }
    const namespace = (await projectQueries.findNamespace(this.db, project.namespace_id))!
    const commit = (await this.repos.commitInfo(project.id, sha))!
    const isTag = !(await this.repos.branch(project.id, ref)) && (await this.repos.tag(project.id, ref)) !== undefined
    const r: PipelineRequest = { project, ref, refType: isTag ? 'tag' : 'branch', sha, beforeSha: ZERO_SHA, source: 'push', userId: null }
    const { plan, mergedYaml } = await this.plan(
      r,
      Buffer.from(content),
      namespace.full_path,
      (await this.repos.defaultBranch(project.id)) ?? 'main',
      commit,
      true,
    )
    if (plan.status === 'failed') return { valid: false, errors: plan.errors, content, mergedYaml, jobs: [] }
    return { valid: true, errors: [], content, mergedYaml, jobs: plan.status === 'created' ? plan.jobs : [] }
  }

  /** Parses and plans the file off the event loop, within a time budget (see ConfigPlanner). */
  private async plan(
    r: PipelineRequest,
    text: Buffer,
    namespace: string,
    defaultBranch: string,
    commit: CommitInfo,
    merged = false,
  ): Promise<PlanResult> {
    const extra = (r.variables ?? []).map((v) => ({ key: v.key, value: v.value }))
    const files = await this.repos.listFiles(r.project.id, r.sha)
    const changedFiles =
      r.source === 'push' && !/^0+$/.test(r.beforeSha) ? await this.repos.changedFiles(r.project.id, r.beforeSha, r.sha) : undefined
    const pipelineVars = this.pipelineVariables(r, namespace, defaultBranch, commit)
    const projectVars = await this.projectVariables(
      r.project,
      (r.refType === 'branch' && r.ref === defaultBranch) || (await this.isProtectedRef(r.project.id, r.ref, r.refType === 'tag')),
    )
    return this.planner.planResult(
      text.toString('utf8'),
      {
        source: r.source,
        refName: r.ref,
        refType: r.refType,
        sha: r.sha,
        beforeSha: r.beforeSha,
        changedFiles,
        files,
        variables: Object.fromEntries([...pipelineVars, ...projectVars, ...extra].map((v) => [v.key, v.value])),
        masked: projectVars.filter((v) => v.masked).map((v) => v.key),
        maxJobs: this.maxJobs,
      },
      async (req) => {
        if ('remote' in req) {
          if (!this.remoteIncludes) return { content: undefined, error: 'include:remote is not enabled on this instance' }
          const got = await this.remoteIncludes.fetch(req.remote)
          return 'content' in got ? { content: got.content } : { content: undefined, error: got.error }
        }
        if ('project' in req) return this.readProjectFile(r.userId, req.project, req.ref, req.path)
        if ('tagsOf' in req) return this.readProjectTags(r.userId, req.tagsOf)
        if ('compareTo' in req) {
          const changed = await this.repos.changedSince(r.project.id, req.compareTo, r.sha)
          return changed ? { content: undefined, changed } : { content: undefined, missing: 'ref' }
        }
        if (req.job !== undefined) return { content: await this.readUpstreamArtifact(r.upstream!, req.job, req.path) }
        return { content: (await this.readYaml(r.project.id, r.sha, req.path))?.toString('utf8') }
      },
      { artifacts: r.upstream !== undefined && r.config !== undefined, merged },
    )
  }

  /**
   * `include:project` and `include:component`: a file of another project at a ref, if the pipeline's
   * user may read that project's code (public, internal to any user, private to reporters and up).
   * A project the user may not see is answered as missing, so its existence does not leak.
   */
  private async readProjectFile(userId: number | null, path: string, ref: string | null, file: string): Promise<FileAnswer> {
    const project = await this.readableProject(userId, path)
    if (!project) return { content: undefined, missing: 'project' }
    const name = ref ?? (await this.repos.defaultBranch(project.id))
    const sha = name === undefined ? undefined : await this.repos.resolveRef(project.id, name).catch(() => undefined)
    if (!sha) return { content: undefined, missing: 'ref' }
    const content = (await this.readYaml(project.id, sha, file))?.toString('utf8')
    return content === undefined ? { content, missing: 'file' } : { content }
  }

  /** `include:component` versions (`~latest`, `1.2`): the tag names of a project the pipeline's user may read. */
  private async readProjectTags(userId: number | null, path: string): Promise<FileAnswer> {
    const project = await this.readableProject(userId, path)
    if (!project) return { content: undefined, missing: 'project' }
    return { content: undefined, tags: await this.repos.tagNames(project.id) }
  }

  /** A project by path if the user may read its code (public, internal to any user, private to reporters and up). */
  async readableProject(userId: number | null, path: string): Promise<Project | undefined> {
    const project = await projectQueries.findProjectByPath(this.db, path)
    const user = userId === null ? undefined : await userQueries.findUser(this.db, userId)
    if (!project) return undefined
    if (project.visibility !== 'public' && user?.is_admin !== 1) {
      const level = user && (await this.projectAccess.projectLevel(user, project))
      const readable = user !== undefined && (project.visibility === 'internal' || (level ?? 0) >= ACCESS_LEVELS.reporter)
      if (!readable) return undefined
    }
    return project
  }

  /** `include:artifact` of a child pipeline: a file of a job's archive in the parent pipeline. */
  private async readUpstreamArtifact(bridge: CiJob, jobName: string, path: string): Promise<string | undefined> {
    const job = (await q.pipelineJobs(this.db, bridge.pipeline_id)).find((j) => j.name === jobName)
    if (!job || !this.artifacts) return undefined
    const archive = (await this.artifacts.forJobs([job.id])).find((a) => a.file_type === 'archive')
    if (!archive) return undefined
    let entry: Awaited<ReturnType<Artifacts['entry']>>
    try {
      entry = await this.artifacts.entry(archive, path)
    } catch (e) {
      if (isWharfError(e) && e.code === 'NOT_FOUND') return undefined
      throw e
    }
    if (entry.size > YAML_LIMITS.bytes) {
      entry.stream.destroy()
      throw new FileTooBigError(path)
    }
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of entry.stream as AsyncIterable<Buffer>) {
      size += chunk.length
      // The zip's stated size can lie: stop at the limit whatever it said.
      if (size > YAML_LIMITS.bytes) {
        entry.stream.destroy()
        throw new FileTooBigError(path)
      }
      chunks.push(chunk)
    }
    return Buffer.concat(chunks).toString('utf8')
  }

  /** A CI file at a commit; one over the YAML size limit is not read at all. */
  private async readYaml(projectId: number, sha: string, path: string): Promise<Buffer | undefined> {
    try {
      return await this.repos.readFile(projectId, sha, path, YAML_LIMITS.bytes)
    } catch (e) {
      if (isWharfError(e) && e.detail.limit === YAML_LIMITS.bytes) throw new FileTooBigError(path)
      throw e
    }
  }

  /** Re-evaluates which jobs can move, then the pipeline's own status and timestamps. */
  async advance(pipelineId: number): Promise<void> {
    const bridges: number[] = []
    let resources = false
    const pipeline = await this.db.transaction().execute(async (trx) => {
      // A retried transaction (PostgreSQL) starts over: what an earlier attempt collected is void.
      bridges.length = 0
      const jobs = await q.pipelineJobs(trx, pipelineId)
      const changes = advance(jobs.map(toNode))
      for (const j of jobs) {
        // A job of a resource group waits for the resource instead of going to the queue (assignResources).
        if (j.resource_group !== null && changes.get(j.id) === 'pending') changes.set(j.id, 'waiting_for_resource')
        // A bridge is pending once it may run: advanced now, played, released after its delay, or given its resource.
        if (j.kind === 'bridge' && (changes.get(j.id) ?? j.status) === 'pending') bridges.push(j.id)
      }
      resources = jobs.some((j) => j.resource_group !== null)
      const now = nowIso()
      const byId = new Map(jobs.map((j) => [j.id, j]))
      for (const [id, status] of changes) {
        const set: Partial<CiJob> = { status }
        if (status === 'pending') set.queued_at = now
        if (status === 'skipped') set.finished_at = now
        if (status === 'scheduled') {
          // The delay counts from when the job could have started, as on GitLab.
          const startIn = (JSON.parse(byId.get(id)!.definition) as Partial<JobDefinition>).startIn ?? 0
          set.scheduled_at = new Date(this.now() + startIn * 1000).toISOString()
        }
        await q.transitionJob(trx, id, ['created'], set)
      }
      const after = jobs.map((j) => ({
        status: (changes.get(j.id) ?? j.status) as JobStatus,
        allowFailure: j.allow_failure === 1,
        started: j.started_at,
      }))
      const status = pipelineStatus(after)
      const pipeline = (await q.findPipeline(trx, pipelineId))!
      const set: Partial<Pick<Pipeline, 'status' | 'started_at' | 'finished_at'>> = { status }
      if (!pipeline.started_at && after.some((j) => j.started)) set.started_at = now
      const done = ['success', 'failed', 'canceled', 'skipped'].includes(status)
      set.finished_at = done ? (pipeline.finished_at ?? now) : null
      await q.updatePipeline(trx, pipelineId, set)
      for (const o of this.observers) await o.pipelineAdvanced(trx, { ...pipeline, ...set })
      return { ...pipeline, ...set }
    })
    for (const l of this.listeners) l(pipelineId)
    for (const id of bridges) await this.runBridge(id)
    if (resources) await this.assignResources(pipeline.project_id)
    if (pipeline.upstream_job_id !== null) await this.followDownstream(pipeline.upstream_job_id, pipeline.status as PipelineStatus)
  }

  /**
   * `resource_group:`: for each group of the project with jobs waiting and none holding it (pending
   * or running), the next waiting job takes it: the oldest for `unordered` (the default) and
   * `oldest_first`, the newest for `newest_first`. The take is one conditional update, so two
   * advances at once never give a group to two jobs.
   */
  private async assignResources(projectId: number): Promise<void> {
    const waiting = await q.jobsWaitingForResource(this.db, projectId)
    for (const key of new Set(waiting.map((j) => j.resource_group!))) {
      const mode = (await q.findResourceGroup(this.db, projectId, key))?.process_mode ?? 'unordered'
      const candidates = waiting.filter((j) => j.resource_group === key)
      const next = mode === 'newest_first' ? candidates.at(-1)! : candidates[0]!
      if (!(await q.acquireResource(this.db, next, nowIso()))) continue
      if (next.kind === 'bridge') await this.runBridge(next.id)
      else await this.advance(next.pipeline_id)
    }
  }

  /** A page of a project's resource groups (GitLab's resource group API). */
  resourceGroups(projectId: number, page: { limit: number; offset: number }): Promise<{ rows: ResourceGroup[]; total: number }> {
    return q.pageResourceGroups(this.db, projectId, page)
  }

  findResourceGroup(projectId: number, key: string): Promise<ResourceGroup | undefined> {
    return q.findResourceGroup(this.db, projectId, key)
  }

  async updateResourceGroup(group: ResourceGroup, processMode: string): Promise<ResourceGroup> {
    await q.updateResourceGroup(this.db, group.id, processMode)
    // A changed order may pick a different job next; nothing waiting changes without a release.
    return (await q.findResourceGroup(this.db, group.project_id, group.key))!
  }

  /** Jobs waiting for a group's resource, in the order they would get it. */
  async upcomingJobs(group: ResourceGroup): Promise<CiJob[]> {
    const waiting = (await q.jobsWaitingForResource(this.db, group.project_id)).filter((j) => j.resource_group === group.key)
    return group.process_mode === 'newest_first' ? waiting.reverse() : waiting
  }

  /**
   * A bridge job that became pending creates its downstream pipeline: a child pipeline from its
   * `trigger:include` at the same commit, or a pipeline of another project's branch, as the user who
   * ran the parent. Without `strategy: depend` the bridge succeeds once that pipeline exists; with it,
   * the bridge follows its status (followDownstream). A downstream that cannot be created fails it.
   */
  private async runBridge(bridgeId: number): Promise<void> {
    const now = nowIso()
    if (!(await q.transitionJob(this.db, bridgeId, ['pending'], { status: 'running', started_at: now }))) return
    const bridge = (await q.findJob(this.db, bridgeId))!
    const def = JSON.parse(bridge.definition) as JobDefinition
    const trigger = def.trigger!
    let failure: string | null = null
    let downstream: Pipeline | undefined
    try {
      downstream = await this.createDownstream(bridge, def, trigger)
      if (!downstream || downstream.yaml_errors !== null) failure = 'downstream_pipeline_creation_failed'
    } catch (e) {
      // Whatever went wrong (a missing CI file, a busy planner), the bridge fails and can be retried:
      // it never stays running, and the request that advanced the pipeline never fails for it.
      failure = e instanceof BridgeFailure ? e.reason : 'downstream_pipeline_creation_failed'
    }
    const current = (await q.findJob(this.db, bridgeId))!
    if (failure !== null) {
      await q.transitionJob(this.db, bridgeId, ['running'], { status: 'failed', failure_reason: failure, finished_at: nowIso() })
    } else if (!trigger.depend && current.status === 'running') {
      await q.transitionJob(this.db, bridgeId, ['running'], { status: 'success', finished_at: nowIso() })
    }
    await this.advance(bridge.pipeline_id)
  }

  private async createDownstream(bridge: CiJob, def: JobDefinition, trigger: CiTrigger): Promise<Pipeline | undefined> {
    const parent = (await q.findPipeline(this.db, bridge.pipeline_id))!
    const pipelineVars = JSON.parse(parent.variables) as NonNullable<PipelineRequest['variables']>
    // YAML variables are expanded upstream, as GitLab does (`UPSTREAM_REF: $CI_COMMIT_REF_NAME` passes the upstream ref).
    const base = Object.fromEntries([...(JSON.parse(bridge.variables) as JobVariable[]), ...pipelineVars].map((v) => [v.key, v.value]))
    const raw = new Set(def.rawVariables)
    const yaml = expandAllVariables(
      Object.fromEntries(Object.entries(def.variables).map(([k, value]) => [k, { value, expand: !raw.has(k) }])),
      base,
    )
    const forwarded = [
      ...(trigger.forward.pipelineVariables ? pipelineVars : []),
      ...(trigger.forward.yamlVariables ? Object.entries(yaml).map(([key, value]) => ({ key, value })) : []),
    ]
    if (trigger.include) {
      let depth = 1
      for (let p = parent; p.upstream_job_id !== null; depth++) {
        const up = await q.findJob(this.db, p.upstream_job_id)
        const upPipeline = up && (await q.findPipeline(this.db, up.pipeline_id))
        if (!upPipeline || upPipeline.project_id !== p.project_id) break
        p = upPipeline
      }
      if (depth > BRIDGE_LIMITS.childDepth) throw new BridgeFailure('reached_max_descendant_pipelines_depth')
      const project = (await projectQueries.findProject(this.db, parent.project_id))!
      return this.create({
        project,
        ref: parent.ref,
        refType: parent.tag === 1 ? 'tag' : 'branch',
        sha: parent.sha,
        beforeSha: parent.before_sha,
        source: 'parent_pipeline',
        userId: parent.user_id,
        variables: forwarded,
        upstream: bridge,
        config: JSON.stringify({ include: trigger.include }),
      })
    }
    // Multi-project: the target must exist and be one the user may run pipelines in (developer or more).
    const target = await projectQueries.findProjectByPath(this.db, trigger.project!)
    const user = parent.user_id === null ? undefined : await userQueries.findUser(this.db, parent.user_id)
    if (!target) throw new BridgeFailure('downstream_bridge_project_not_found')
    if (!user) throw new BridgeFailure('insufficient_bridge_permissions')
    if (user.is_admin !== 1) {
      const level = await this.projectAccess.projectLevel(user, target)
      if (level === undefined) throw new BridgeFailure('downstream_bridge_project_not_found')
      if (level < ACCESS_LEVELS.developer) throw new BridgeFailure('insufficient_bridge_permissions')
    }
    const branch = trigger.branch ?? (await this.repos.defaultBranch(target.id))
    const sha = branch === undefined ? undefined : await this.repos.resolveRef(target.id, `refs/heads/${branch}`)
    if (!sha) throw new BridgeFailure('downstream_pipeline_creation_failed')
    return this.create({
      project: target,
      ref: branch!,
      refType: 'branch',
      sha,
      beforeSha: ZERO_SHA,
      source: 'pipeline',
      userId: user.id,
      variables: forwarded,
      upstream: bridge,
    })
  }

  /** A `strategy: depend` bridge takes its downstream pipeline's status (running until it finishes). */
  private async followDownstream(bridgeId: number, status: PipelineStatus): Promise<void> {
    const bridge = await q.findJob(this.db, bridgeId)
    if (!bridge || bridge.retried === 1 || bridge.status === 'created' || bridge.status === 'pending') return
    const def = JSON.parse(bridge.definition) as JobDefinition
    if (!def.trigger?.depend) return
    const next = bridgeStatus(status)
    if (next === bridge.status) return
    const finished = FINISHED.has(next)
    await q.updateJob(this.db, bridgeId, {
      status: next,
      finished_at: finished ? nowIso() : null,
      failure_reason: next === 'failed' ? 'downstream_pipeline_failed' : null,
    })
    await this.advance(bridge.pipeline_id)
  }

  /** Cancels every job that has not finished; running ones are told by their runner's next update. */
  async cancel(pipelineId: number): Promise<void> {
    const jobs = await q.pipelineJobs(this.db, pipelineId)
    const now = nowIso()
    for (const j of jobs) {
      if (!FINISHED.has(j.status as JobStatus))
        await q.transitionJob(this.db, j.id, ['created', 'waiting_for_resource', 'pending', 'running', 'manual', 'scheduled'], {
          status: 'canceled',
          finished_at: now,
        })
    }
    await this.advance(pipelineId)
    // As GitLab: canceling a pipeline cancels the pipelines its bridges started.
    const bridges = jobs.filter((j) => j.kind === 'bridge').map((j) => j.id)
    for (const d of await q.downstreamPipelines(this.db, bridges)) {
      if (!['success', 'failed', 'canceled', 'skipped'].includes(d.status)) await this.cancel(d.id)
    }
  }

  /** Retries the failed and canceled jobs of a pipeline (new attempts), and the jobs they held back. */
  async retry(pipelineId: number): Promise<void> {
    const jobs = await q.pipelineJobs(this.db, pipelineId)
    for (const j of jobs) if (j.status === 'failed' || j.status === 'canceled') await this.newAttempt(j)
    for (const j of jobs) if (j.status === 'skipped') await q.updateJob(this.db, j.id, { status: 'created', finished_at: null })
    await this.advance(pipelineId)
  }

  /** Retries one finished job as a new attempt (the old one stays for history). */
  async retryJob(job: CiJob): Promise<CiJob> {
    if (!FINISHED.has(job.status as JobStatus) || job.retried)
      throw new WharfError('BAD_REQUEST', `job ${job.id} is ${job.status} and cannot be retried`, {})
    const fresh = await this.newAttempt(job)
    // Jobs this one's failure skipped get another chance once it finishes.
    for (const j of await q.pipelineJobs(this.db, job.pipeline_id)) {
      if (j.status === 'skipped' && j.stage_idx >= job.stage_idx && j.id !== fresh.id)
        await q.updateJob(this.db, j.id, { status: 'created', finished_at: null })
    }
    await this.advance(job.pipeline_id)
    return (await q.findJob(this.db, fresh.id))!
  }

  async cancelJob(job: CiJob): Promise<CiJob> {
    if (FINISHED.has(job.status as JobStatus)) throw new WharfError('BAD_REQUEST', `job ${job.id} is already ${job.status}`, {})
    await q.transitionJob(this.db, job.id, ['created', 'waiting_for_resource', 'pending', 'running', 'manual', 'scheduled'], {
      status: 'canceled',
      finished_at: nowIso(),
    })
    await this.advance(job.pipeline_id)
    return (await q.findJob(this.db, job.id))!
  }

  /** Starts a manual job, or a delayed one before its time. */
  async playJob(job: CiJob): Promise<CiJob> {
    if (job.status !== 'manual' && job.status !== 'scheduled')
      throw new WharfError('BAD_REQUEST', `job ${job.id} is not a manual or delayed job waiting to be played`, {})
    await q.transitionJob(this.db, job.id, ['manual', 'scheduled'], ready(job, nowIso()))
    await this.advance(job.pipeline_id)
    return (await q.findJob(this.db, job.id))!
  }

  /** A pipeline for the head of a branch or tag (API and trigger requests). */
  async createForRef(
    project: Project,
    ref: string,
    source: PipelineSource,
    userId: number | null,
    variables: PipelineRequest['variables'],
    scheduleId?: number,
  ): Promise<Pipeline> {
    const branch = await this.repos.resolveRef(project.id, `refs/heads/${ref}`)
    const tag = branch ? undefined : await this.repos.resolveRef(project.id, `refs/tags/${ref}`)
    const sha = branch ?? tag
    if (!sha) throw new WharfError('BAD_REQUEST', `Reference not found: ${ref}`, { ref })
    const p = await this.create({
      project,
      ref,
      refType: branch ? 'branch' : 'tag',
      sha,
      beforeSha: ZERO_SHA,
      source,
      userId,
      variables: variables ?? [],
      ...(scheduleId !== undefined ? { scheduleId } : {}),
    })
    if (!p)
      throw new WharfError(
        'BAD_REQUEST',
        'Pipeline will not run for the selected trigger. The rules configuration prevented any jobs from being added to the pipeline.',
        {},
      )
    return p
  }

  findPipeline(id: number): Promise<Pipeline | undefined> {
    return q.findPipeline(this.db, id)
  }

  listPipelines(projectId: number, f: Parameters<typeof q.listPipelines>[2]): Promise<Pipeline[]> {
    return q.listPipelines(this.db, projectId, f)
  }

  countPipelines(projectId: number, f: Parameters<typeof q.countPipelines>[2] = {}): Promise<number> {
    return q.countPipelines(this.db, projectId, f)
  }

  deletePipeline(id: number): Promise<void> {
    return q.deletePipeline(this.db, id)
  }

  findJob(id: number): Promise<CiJob | undefined> {
    return q.findJob(this.db, id)
  }

  /** The pipelines the given bridge jobs created. */
  downstreamPipelines(bridgeIds: number[]): Promise<Pipeline[]> {
    return q.downstreamPipelines(this.db, bridgeIds)
  }

  markErased(jobId: number, at: string): Promise<void> {
    return q.updateJob(this.db, jobId, { erased_at: at })
  }

  latestSuccessfulJob(projectId: number, ref: string, name: string): Promise<CiJob | undefined> {
    return q.latestSuccessfulJob(this.db, projectId, ref, name)
  }

  jobs(pipelineId: number, includeRetried = false): Promise<CiJob[]> {
    return q.pipelineJobs(this.db, pipelineId, includeRetried)
  }

  pageJobs(f: Parameters<typeof q.pageJobs>[1]): Promise<{ rows: CiJob[]; total: number }> {
    return q.pageJobs(this.db, f)
  }

  /**
   * What the job entities of a page refer to (pipelines, users, runners, artifacts), each loaded with
   * one query for the whole page instead of one per job.
   */
  async jobRelations(jobs: readonly CiJob[]): Promise<JobRelations> {
    const ids = <T>(f: (j: CiJob) => T | null) => [...new Set(jobs.map(f).filter((v): v is T => v !== null))]
    const [pipelines, users, runners, artifacts] = await Promise.all([
      q.findPipelines(
        this.db,
        ids((j) => j.pipeline_id),
      ),
      userQueries.findUsers(
        this.db,
        ids((j) => j.user_id),
      ),
      rq.findRunners(
        this.db,
        ids((j) => j.runner_id),
      ),
      rq.jobArtifacts(
        this.db,
        ids((j) => j.id),
      ),
    ])
    const byJob = new Map<number, CiJobArtifact[]>()
    for (const a of artifacts) byJob.set(a.job_id, [...(byJob.get(a.job_id) ?? []), a])
    return {
      pipelines: new Map(pipelines.map((p) => [p.id, p])),
      users: new Map(users.map((u) => [u.id, u])),
      runners: new Map(runners.map((r) => [r.id, r])),
      artifacts: byJob,
    }
  }

  user(id: number | null) {
    return id === null ? Promise.resolve(undefined) : userQueries.findUser(this.db, id)
  }

  pipelineUrl(project: Pick<Project, 'full_path'>, id: number): string {
    return `${this.publicUrl}/${project.full_path}/-/pipelines/${id}`
  }

  private async newAttempt(job: CiJob): Promise<CiJob> {
    return this.db.transaction().execute(async (trx) => {
      await q.updateJob(trx, job.id, { retried: 1 })
      const row = await q.insertJob(trx, {
        pipelineId: job.pipeline_id,
        projectId: job.project_id,
        name: job.name,
        stage: job.stage,
        stageIdx: job.stage_idx,
        when: job.when === 'manual' ? 'manual' : job.when,
        allowFailure: job.allow_failure === 1,
        needs: job.needs === null ? null : (JSON.parse(job.needs) as string[]),
        definition: JSON.parse(job.definition) as unknown,
        variables: [],
        userId: job.user_id,
        kind: job.kind === 'bridge' ? 'bridge' : 'build',
        resourceGroup: job.resource_group,
      })
      // Same variables, with this attempt's job id and URL; its environment's are set again when it is first advanced (it may be gone).
      const vars = (JSON.parse(job.variables) as JobVariable[])
        .filter((v) => !v.key.startsWith('CI_ENVIRONMENT_'))
        .map((v) =>
          v.key === 'CI_JOB_ID' || v.key === 'CI_BUILD_ID'
            ? { ...v, value: String(row.id) }
            : v.key === 'CI_JOB_URL'
              ? { ...v, value: v.value.replace(/\/\d+$/, `/${row.id}`) }
              : v,
        )
      await q.setJobVariables(trx, row.id, vars)
      return row
    })
  }

  private pipelineVariables(
    r: PipelineRequest,
    namespace: string,
    defaultBranch: string,
    commit: { message: string; title: string; committedDate: string; authorName: string; authorEmail: string },
  ): JobVariable[] {
    // Rules see the pipeline-level predefined variables (no job ones), as on GitLab.
    return predefinedVariables({
      serverUrl: this.publicUrl,
      project: {
        id: r.project.id,
        name: r.project.name,
        path: r.project.path,
        fullPath: r.project.full_path,
        namespace,
        visibility: r.project.visibility,
        defaultBranch,
      },
      pipeline: { id: 0, iid: 0, source: r.source, ref: r.ref, tag: r.refType === 'tag', sha: r.sha, beforeSha: r.beforeSha, url: '' },
      commit: {
        message: commit.message,
        title: commit.title,
        timestamp: commit.committedDate,
        author: `${commit.authorName} <${commit.authorEmail}>`,
      },
      job: { id: 0, name: '', stage: '', url: '' },
    }).filter((v) => !/^CI_(JOB|BUILD)_(ID|NAME|STAGE|URL)$|^CI_PIPELINE_(ID|IID|URL)$/.test(v.key))
  }

  /** Group variables (outermost first) then project variables; protected ones only on protected refs. */
  async projectVariables(project: Project, protectedRef: boolean): Promise<JobVariable[]> {
    const chain = await this.projectAccess.namespaceChain(project.namespace_id)
    const groups = await q.listVariables(
      this.db,
      'group',
      chain.filter((n) => n.kind === 'group').map((n) => n.id),
    )
    const order = new Map(chain.map((n, i) => [n.id, -i]))
    groups.sort((a, b) => (order.get(a.owner_id) ?? 0) - (order.get(b.owner_id) ?? 0))
    const own = await q.listVariables(this.db, 'project', [project.id])
    return [...groups, ...own]
      .filter((v) => protectedRef || v.protected === 0)
      .map((v) => ({ key: v.key, value: v.value, public: false, masked: v.masked === 1, file: v.variable_type === 'file' }))
  }
}

/** A played or released job: to the queue, or, in a resource group, to wait for the resource (assignResources). */
function ready(job: CiJob, now: string): Partial<CiJob> {
  return job.resource_group !== null ? { status: 'waiting_for_resource' } : { status: 'pending', queued_at: now }
}

function userIdOf(p: Principal): number | null {
  return p.kind === 'user' ? p.userId : null
}

export function toNode(j: CiJob): JobNode {
  return {
    id: j.id,
    name: j.name,
    stageIdx: j.stage_idx,
    status: j.status as JobStatus,
    when: j.when as When,
    allowFailure: j.allow_failure === 1,
    needs: j.needs === null ? null : (JSON.parse(j.needs) as string[]),
  }
}
