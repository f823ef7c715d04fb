// Building GitLab's job payload (gitlab-runner's JobResponse) for a claimed job: git info, steps,
// variables in GitLab's precedence, images and services, artifacts, caches and the jobs whose
// artifacts it downloads.
import { createHash } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { IdTokenClaims } from '../auth/registry-tokens.ts'
import { isWharfError, WharfError } from '../core/errors.ts'
import type { GitRepos } from '../git/repos.ts'
import { nowIso } from '../metadata/db.ts'
import type { CiJob, Database, Pipeline, Project, Runner } from '../metadata/schema.ts'
import * as projectQueries from '../projects/queries.ts'
import * as userQueries from '../users/queries.ts'
import {
  FAILURE_REASONS,
  JOB_TOKEN_USERNAME,
  TOKEN_PREFIXES,
  type Artifact,
  type Cache,
  type Dependency,
  type Image,
  type JobResponse,
  type JobVariable as WireVariable,
  type Step,
} from '../runner/protocol.ts'
import type { Artifacts } from './artifacts.ts'
import type { CiCache, CiImage, CiService } from './config/types.ts'
import { expandAllVariables, expandVariables, type VariableDefinition } from './config/variables.ts'
import type { JobDefinition, Pipelines } from './pipelines.ts'
import { dependencyProxyServer, jobTokenVariables, registryHost, type JobVariable } from './predefined.ts'
import * as q from './queries.ts'
import { runnerTags } from './runners.ts'

/** Job timeout when the job sets none (GitLab's project default, 60 minutes). */
export const DEFAULT_JOB_TIMEOUT_SECONDS = 3600
/** An ID token outlives the job's timeout by this much (GitLab's margin), then no relying party accepts it. */
export const ID_TOKEN_MARGIN_SECONDS = 300

/** Signs jobs' OIDC ID tokens (auth/registry-tokens.ts: the server's keys, the registry's audience refused). */
export interface IdTokenSigner {
  signIdToken(claims: IdTokenClaims, audience: string | string[], lifetimeSeconds: number): Promise<{ token: string }>
}

export interface JobPayloadsDeps {
  db: Kysely<Database>
  pipelines: Pipelines
  artifacts: Artifacts
  repos: GitRepos
  publicUrl: string
  /** Signs the job's `id_tokens:`. */
  idTokens: IdTokenSigner
  /** The clock (tests move it). */
  now?: () => number
}

export class JobPayloads {
  private readonly d: JobPayloadsDeps
  private readonly now: () => number

  constructor(deps: JobPayloadsDeps) {
    this.d = deps
    this.now = deps.now ?? Date.now
  }

  /** GitLab's job payload (gitlab-runner's JobResponse) for a job just claimed with this token. */
  async build(job: CiJob, token: string, runner: Runner): Promise<JobResponse> {
    const d = this.d
    const def = JSON.parse(job.definition) as JobDefinition
    const pipeline = (await q.findPipeline(d.db, job.pipeline_id))!
    const project = (await projectQueries.findProject(d.db, job.project_id))!
    const timeout = jobTimeout(def, runner)
    const variables = await this.variables(job, def, pipeline, project, token, runner, timeout)
    const url = new URL(d.publicUrl)
    const registry = registryHost(d.publicUrl)
    const queued = job.queued_at ? (this.now() - new Date(job.queued_at).getTime()) / 1000 : 0
    const steps: Step[] = [
      { name: 'script', script: [...def.beforeScript, ...def.script], timeout, when: 'on_success', allow_failure: false },
    ]
    if (def.afterScript.length) steps.push({ name: 'after_script', script: def.afterScript, timeout, when: 'always', allow_failure: true })
    const ref = pipeline.tag === 1 ? `refs/tags/${pipeline.ref}` : `refs/heads/${pipeline.ref}`
    return {
      id: job.id,
      token,
      allow_git_fetch: true,
      job_info: {
        id: job.id,
        name: job.name,
        stage: job.stage,
        project_id: project.id,
        project_name: project.name,
        time_in_queue_seconds: Math.max(0, queued),
        project_jobs_running_on_instance_runners_count: '0',
      },
      git_info: {
        repo_url: `${url.protocol}//${JOB_TOKEN_USERNAME}:${token}@${url.host}/${project.full_path}.git`,
        repo_object_format: 'sha1',
        ref: pipeline.ref,
        sha: pipeline.sha,
        before_sha: pipeline.before_sha,
        ref_type: pipeline.tag === 1 ? 'tag' : 'branch',
        refspecs: [pipeline.tag === 1 ? `+${ref}:${ref}` : `+${ref}:refs/remotes/origin/${pipeline.ref}`],
        // GitLab's default shallow clone depth for new projects.
        depth: 20,
      },
      runner_info: { timeout, runner_session_url: null },
      variables,
      steps,
      image: def.image ? imageOf(def.image) : { name: '' },
      services: def.services.map(serviceOf),
      artifacts: artifactsOf(def),
      cache: await this.caches(def, project, pipeline, variables),
      // As GitLab: the registry's and, under its own name when that differs (the port written
      // out), the dependency proxy's, so job and service images on the group path pull with the job token.
      credentials: [...new Set([registry, dependencyProxyServer(d.publicUrl)])].map((url) => ({
        type: 'registry',
        url,
        username: JOB_TOKEN_USERNAME,
        password: token,
      })),
      dependencies: await this.dependencies(job, def, pipeline, token, variables),
      features: {
        trace_sections: true,
        token_mask_prefixes: [TOKEN_PREFIXES.job, TOKEN_PREFIXES.runner, 'glpat-', 'gldt-'],
        failure_reasons: [...FAILURE_REASONS],
      },
    }
  }

  /**
   * Predefined (stored with the job) < job token variables < YAML < group and project CI/CD
   * variables (protected ones only on protected refs) < pipeline variables (API, trigger):
   * later entries win in the runner, as in GitLab.
   */
  private async variables(
    job: CiJob,
    def: JobDefinition,
    pipeline: Pipeline,
    project: Project,
    token: string,
    runner: Runner,
    timeout: number,
  ): Promise<WireVariable[]> {
    const wire = (v: JobVariable, raw = false): WireVariable => ({
      key: v.key,
      value: v.value,
      public: v.public,
      masked: v.masked ?? false,
      file: v.file ?? false,
      raw,
    })
    const stored = (JSON.parse(job.variables) as JobVariable[]).map((v) => wire(v))
    const runnerVars: WireVariable[] = [
      { key: 'CI_RUNNER_ID', value: String(runner.id), public: true, masked: false, file: false, raw: false },
      { key: 'CI_RUNNER_DESCRIPTION', value: runner.description, public: true, masked: false, file: false, raw: true },
      { key: 'CI_RUNNER_TAGS', value: JSON.stringify(runnerTags(runner)), public: true, masked: false, file: false, raw: true },
      { key: 'CI_JOB_TIMEOUT', value: String(timeout), public: true, masked: false, file: false, raw: false },
      {
        key: 'CI_JOB_STARTED_AT',
        value: (job.started_at ?? nowIso()).replace(/\.\d{3}Z$/, 'Z'),
        public: true,
        masked: false,
        file: false,
        raw: false,
      },
    ]
    const tokenVars = jobTokenVariables(token, this.d.publicUrl, project.full_path).map((v) => wire(v))
    const protectedRef = await isProtectedRef(this.d.repos, this.d.pipelines, pipeline)
    const raw = new Set(def.rawVariables ?? [])
    const yaml = Object.entries(def.variables ?? {}).map(([key, value]) => ({
      key,
      value,
      public: true,
      masked: false,
      file: false,
      raw: raw.has(key),
    }))
    const secrets = (await this.d.pipelines.projectVariables(project, protectedRef)).map((v) => wire(v))
    const given = (JSON.parse(pipeline.variables) as Array<{ key: string; value: string; variable_type?: string }>).map((v) => ({
      key: v.key,
      value: v.value,
      public: false,
      masked: false,
      file: v.variable_type === 'file',
      raw: false,
    }))
    const dotenv = (await this.dotenvVariables(job, def)).map((v) => ({ ...v, public: true, masked: false, file: false, raw: false }))
    // GitLab: dotenv report variables win over YAML ones, CI/CD settings' variables over them.
    const scoped = [...yaml, ...dotenv, ...secrets, ...given]
    const idTokens = await this.idTokenVariables(job, def, pipeline, project, runner, timeout, protectedRef, [
      ...stored,
      ...runnerVars,
      ...tokenVars,
      ...scoped,
    ])
    // As GitLab's Ci::Build#variables: ID tokens before the YAML and CI/CD variables.
    return [...stored, ...runnerVars, ...tokenVars, ...idTokens, ...scoped]
  }

  /**
   * `id_tokens:`: one masked variable per token, an ID token signed with GitLab's claims (JwtV2),
   * valid for the job's timeout plus GitLab's 5 minutes. `aud` is expanded as GitLab does, with
   * the job's other variables (referencing each other, `expand: false` ones verbatim; unknown
   * names become "").
   */
  private async idTokenVariables(
    job: CiJob,
    def: JobDefinition,
    pipeline: Pipeline,
    project: Project,
    runner: Runner,
    timeout: number,
    protectedRef: boolean,
    others: WireVariable[],
  ): Promise<WireVariable[]> {
    const tokens = Object.entries(def.idTokens ?? {})
    if (tokens.length === 0) return []
    const defs: Record<string, VariableDefinition> = Object.create(null)
    for (const v of others) defs[v.key] = { value: v.value, expand: !v.raw }
    const values = expandAllVariables(defs)
    const expand = (aud: string): string => expandVariables(aud, values)
    const namespace = (await projectQueries.findNamespace(this.d.db, project.namespace_id))!
    const userId = job.user_id ?? pipeline.user_id
    const user = userId === null ? undefined : await userQueries.findUser(this.d.db, userId)
    const refType = pipeline.tag === 1 ? 'tag' : 'branch'
    const refPath = pipeline.tag === 1 ? `refs/tags/${pipeline.ref}` : `refs/heads/${pipeline.ref}`
    const claims: IdTokenClaims = {
      sub: `project_path:${project.full_path}:ref_type:${refType}:ref:${pipeline.ref}`,
      namespace_id: String(namespace.id),
      namespace_path: namespace.full_path,
      project_id: String(project.id),
      project_path: project.full_path,
      user_id: user ? String(user.id) : '',
      user_login: user?.username ?? '',
      user_email: user?.email ?? '',
      pipeline_id: String(pipeline.id),
      pipeline_source: pipeline.source,
      job_id: String(job.id),
      ref: pipeline.ref,
      ref_type: refType,
      ref_path: refPath,
      ref_protected: String(protectedRef),
      runner_id: runner.id,
      runner_environment: 'self-hosted',
      sha: pipeline.sha,
      project_visibility: project.visibility,
      // GitLab's form: <host>/<project path>//<config file>@<ref path>, no scheme.
      ci_config_ref_uri: `${new URL(this.d.publicUrl).host}/${project.full_path}//.gitlab-ci.yml@${refPath}`,
      ci_config_sha: pipeline.sha,
    }
    const out: WireVariable[] = []
    for (const [key, { aud }] of tokens) {
      const audience = typeof aud === 'string' ? expand(aud) : aud.map(expand)
      const { token } = await this.d.idTokens.signIdToken(claims, audience, timeout + ID_TOKEN_MARGIN_SECONDS).catch((err: unknown) => {
        // Said in the job's log, naming the token: an `aud` whose variables expanded to something refused.
        throw isWharfError(err) ? new WharfError(err.code, `id_tokens:${key}: ${err.message}`, err.detail, { cause: err }) : err
      })
      out.push({ key, value: token, public: false, masked: true, file: false, raw: true })
    }
    return out
  }

  private async caches(def: JobDefinition, project: Project, pipeline: Pipeline, variables: WireVariable[]): Promise<Cache[]> {
    const protectedRef = await isProtectedRef(this.d.repos, this.d.pipelines, pipeline)
    const out: Cache[] = []
    for (const c of def.cache ?? []) out.push(await this.cacheOf(c, project, pipeline, protectedRef, variables))
    return out
  }

  private async cacheOf(
    c: CiCache,
    project: Project,
    pipeline: Pipeline,
    protectedRef: boolean,
    variables: WireVariable[],
  ): Promise<Cache> {
    let key: string
    if (typeof c.key === 'string') key = c.key || 'default'
    else {
      // `key: files:`: a digest of those files at the commit (GitLab uses their last commit), after the prefix.
      const h = createHash('sha256')
      for (const f of c.key.files)
        h.update(f)
          .update('\0')
          .update((await this.d.repos.readFile(project.id, pipeline.sha, f)) ?? Buffer.alloc(0))
          .update('\0')
      key = `${c.key.prefix ? `${c.key.prefix}-` : ''}${h.digest('hex').slice(0, 40)}`
    }
    // Caches of protected refs stay apart from the rest unless `unprotect: true` (GitLab 15.0+).
    if (!c.unprotect) key += protectedRef ? '-protected' : '-non_protected'
    let policy = c.policy
    if (policy.startsWith('$')) policy = variables.findLast((v) => v.key === policy.replace(/^\$\{?|\}$/g, ''))?.value ?? 'pull-push'
    const policies = ['pull-push', 'pull', 'push'] as const
    return {
      key,
      untracked: c.untracked,
      policy: (policies as readonly string[]).includes(policy) ? (policy as Cache['policy']) : 'pull-push',
      paths: c.paths,
      when: c.when,
      fallback_keys: c.fallbackKeys,
    }
  }

  /**
   * `artifacts:reports:dotenv` of the jobs whose artifacts this job takes (dependencies, needs with
   * artifacts, earlier stages), in that order, so a later one wins.
   */
  private async dotenvVariables(job: CiJob, def: JobDefinition): Promise<Array<{ key: string; value: string }>> {
    const order = def.artifactsFrom ?? []
    if (order.length === 0) return []
    const jobs = (await q.pipelineJobs(this.d.db, job.pipeline_id)).filter((j) => order.includes(j.name) && j.id !== job.id)
    const reports = new Map(
      (await this.d.artifacts.forJobs(jobs.map((j) => j.id))).filter((a) => a.file_type === 'dotenv').map((a) => [a.job_id, a]),
    )
    const out: Array<{ key: string; value: string }> = []
    for (const name of order) {
      const report = reports.get(jobs.find((j) => j.name === name)?.id ?? -1)
      if (report) out.push(...(await this.d.artifacts.dotenv(report)))
    }
    return out
  }

  /**
   * Jobs whose artifacts this job downloads, each with the current job's token (as GitLab sends it):
   * those of this pipeline it takes artifacts from, then its `needs:pipeline:job` and `needs:project`.
   */
  private async dependencies(
    job: CiJob,
    def: JobDefinition,
    pipeline: Pipeline,
    token: string,
    variables: WireVariable[],
  ): Promise<Dependency[]> {
    const names = new Set(def.artifactsFrom ?? [])
    const own = names.size ? (await q.pipelineJobs(this.d.db, job.pipeline_id)).filter((j) => names.has(j.name) && j.id !== job.id) : []
    const jobs = [...own, ...(await this.crossJobs(job, def, pipeline, variables))]
    if (jobs.length === 0) return []
    const archives = new Map(
      (await this.d.artifacts.forJobs(jobs.map((j) => j.id))).filter((a) => a.file_type === 'archive').map((a) => [a.job_id, a]),
    )
    return jobs.flatMap((j) => {
      const a = archives.get(j.id)
      return a ? [{ id: j.id, name: j.name, token, artifacts_file: { filename: a.filename, size: a.size } }] : []
    })
  }

  /**
   * The jobs `needs:pipeline:job` (an upstream pipeline of this project, usually `$PARENT_PIPELINE_ID`)
   * and `needs:project` (the newest successful pipeline of a ref in a project the pipeline's user may
   * read) name, their values expanded with the job's variables. One that names nothing fails the job.
   */
  private async crossJobs(job: CiJob, def: JobDefinition, pipeline: Pipeline, variables: WireVariable[]): Promise<CiJob[]> {
    const needs = (def.crossNeeds ?? []).filter((n) => n.artifacts)
    if (needs.length === 0) return []
    const defs: Record<string, VariableDefinition> = Object.create(null)
    for (const v of variables) defs[v.key] = { value: v.value, expand: !v.raw }
    const values = expandAllVariables(defs)
    const expand = (s: string): string => expandVariables(s, values)
    const out: CiJob[] = []
    for (const need of needs) {
      if ('pipeline' in need) {
        const id = expand(need.pipeline)
        let upstream: Pipeline | undefined
        for (let p: Pipeline | undefined = pipeline; p && p.upstream_job_id !== null; ) {
          const bridge = await q.findJob(this.d.db, p.upstream_job_id)
          p = bridge && (await q.findPipeline(this.d.db, bridge.pipeline_id))
          if (!p || p.project_id !== pipeline.project_id) break
          if (String(p.id) === id) upstream = p
        }
        if (!upstream)
          throw new WharfError('BAD_REQUEST', `needs:pipeline: ${id || need.pipeline} is not an upstream pipeline of this one`, {})
        const target = (await q.pipelineJobs(this.d.db, upstream.id)).find((j) => j.name === need.job)
        if (!target) throw new WharfError('BAD_REQUEST', `needs:pipeline:job: pipeline ${id} has no job ${need.job}`, {})
        out.push(target)
        continue
      }
      const path = expand(need.project)
      const ref = expand(need.ref)
      const project = await this.d.pipelines.readableProject(job.user_id ?? pipeline.user_id, path)
      if (!project) throw new WharfError('BAD_REQUEST', `needs:project: project ${path} not found or access denied`, {})
      const target = await this.d.pipelines.latestSuccessfulJob(project.id, ref, need.job)
      if (!target) throw new WharfError('BAD_REQUEST', `needs:project: ${path} has no successful job ${need.job} on ${ref}`, {})
      out.push(target)
    }
    return out
  }
}

/** Protected refs are the default branch (Wharf has no other protection rules yet). */
/** The default branch, and the branches and tags a protection rule covers (protected variables and runners follow them). */
export async function isProtectedRef(repos: GitRepos, pipelines: Pick<Pipelines, 'isProtectedRef'>, p: Pipeline): Promise<boolean> {
  return (
    (p.tag === 0 && p.ref === (await repos.defaultBranch(p.project_id))) ||
    (await pipelines.isProtectedRef(p.project_id, p.ref, p.tag === 1))
  )
}

export function jobTimeout(def: Partial<JobDefinition>, runner: Pick<Runner, 'maximum_timeout'> | undefined): number {
  const t = def.timeout ?? DEFAULT_JOB_TIMEOUT_SECONDS
  return runner?.maximum_timeout ? Math.min(t, runner.maximum_timeout) : t
}

function imageOf(i: CiImage): Image {
  const out: Image = { name: i.name }
  if (i.entrypoint) out.entrypoint = i.entrypoint
  if (i.pullPolicy) out.pull_policy = i.pullPolicy as NonNullable<Image['pull_policy']>
  return out
}

function serviceOf(s: CiService): Image {
  const out = imageOf(s)
  if (s.alias) out.alias = s.alias
  if (s.command) out.command = s.command
  const vars = Object.entries(s.variables ?? {})
  if (vars.length) out.variables = vars.map(([key, value]) => ({ key, value, public: true, masked: false, file: false, raw: false }))
  return out
}

/** Report types GitLab uploads gzipped; other reports go as they are. */
const GZIP_REPORTS = new Set(['junit', 'dotenv', 'cobertura', 'coverage_report', 'metrics', 'lsif', 'cyclonedx', 'annotations'])

function artifactsOf(def: JobDefinition): Artifact[] {
  const a = def.artifacts
  if (!a) return []
  const expire = a.expireIn === null ? null : a.expireIn === 'never' ? 'never' : `${a.expireIn} seconds`
  const out: Artifact[] = []
  if (a.paths.length || a.untracked) {
    out.push({
      name: a.name ?? 'artifacts',
      untracked: a.untracked,
      paths: a.paths,
      exclude: a.exclude,
      when: a.when,
      artifact_type: 'archive',
      artifact_format: 'zip',
      expire_in: expire,
    })
  }
  for (const [type, spec] of Object.entries(a.reports ?? {})) {
    const paths = typeof spec === 'string' ? [spec] : Array.isArray(spec) ? spec.filter((p): p is string => typeof p === 'string') : []
    if (!paths.length) continue
    out.push({
      name: type,
      untracked: false,
      paths,
      exclude: [],
      when: 'always',
      artifact_type: type,
      artifact_format: GZIP_REPORTS.has(type) ? 'gzip' : 'raw',
      expire_in: expire,
    })
  }
  return out
}
