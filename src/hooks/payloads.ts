import type { CommitInfo } from '../git/repos.ts'
import type { CiJob, Namespace, Pipeline, Project, User } from '../metadata/schema.ts'

// GitLab's webhook payloads (docs: user/project/integrations/webhook_events), the fields a receiver
// reads; Wharf-only facts are left out rather than invented. Registry events are Wharf's own.

export interface ProjectContext {
  project: Project
  /** The project's namespace chain, top-level group first. */
  chain: Namespace[]
  publicUrl: string
  defaultBranch: string | null
}

const VISIBILITY_LEVEL = { private: 0, internal: 10, public: 20 } as const

export function projectPayload(c: ProjectContext) {
  const p = c.project
  const web = `${c.publicUrl}/${p.full_path}`
  return {
    id: p.id,
    name: p.name,
    description: p.description,
    web_url: web,
    avatar_url: null,
    git_ssh_url: null,
    git_http_url: `${web}.git`,
    namespace: c.chain.at(-1)?.name ?? '',
    visibility_level: VISIBILITY_LEVEL[p.visibility as keyof typeof VISIBILITY_LEVEL] ?? 0,
    path_with_namespace: p.full_path,
    default_branch: c.defaultBranch,
    ci_config_path: null,
    homepage: web,
    url: `${web}.git`,
    ssh_url: null,
    http_url: `${web}.git`,
  }
}

function repositoryPayload(c: ProjectContext) {
  const web = `${c.publicUrl}/${c.project.full_path}`
  return {
    name: c.project.name,
    url: `${web}.git`,
    description: c.project.description,
    homepage: web,
    git_http_url: `${web}.git`,
    git_ssh_url: null,
    visibility_level: projectPayload(c).visibility_level,
  }
}

export function userPayload(u: Pick<User, 'id' | 'username' | 'name' | 'email'> | undefined) {
  return u ? { id: u.id, name: u.name, username: u.username, avatar_url: null, email: u.email ?? '[REDACTED]' } : null
}

function commitPayload(c: ProjectContext, commit: CommitInfo) {
  return {
    id: commit.id,
    message: commit.message,
    title: commit.title,
    timestamp: commit.committedDate,
    url: `${c.publicUrl}/${c.project.full_path}/-/commit/${commit.id}`,
    author: { name: commit.authorName, email: commit.authorEmail },
    added: [],
    modified: [],
    removed: [],
  }
}

export interface PushFacts {
  kind: 'push' | 'tag_push'
  ref: string
  before: string
  after: string
  /** Newest first, at most 20 (GitLab's limit). */
  commits: CommitInfo[]
  totalCommits: number
  user: Pick<User, 'id' | 'username' | 'name' | 'email'> | undefined
  /** The principal's name when it is not a user (a deploy token, a CI job). */
  actorName: string
}

export function pushPayload(c: ProjectContext, f: PushFacts) {
  const deleted = /^0+$/.test(f.after)
  return {
    object_kind: f.kind,
    event_name: f.kind,
    before: f.before,
    after: f.after,
    ref: f.ref,
    ref_protected: f.kind === 'push' && f.ref === `refs/heads/${c.defaultBranch}`,
    checkout_sha: deleted ? null : f.after,
    message: null,
    user_id: f.user?.id ?? null,
    user_name: f.user?.name ?? f.actorName,
    user_username: f.user?.username ?? f.actorName,
    user_email: f.user?.email ?? '',
    user_avatar: null,
    project_id: c.project.id,
    project: projectPayload(c),
    commits: f.commits.map((commit) => commitPayload(c, commit)),
    total_commits_count: f.totalCommits,
    push_options: {},
    repository: repositoryPayload(c),
  }
}

const seconds = (from: string | null, to: string | null) => (from && to ? (Date.parse(to) - Date.parse(from)) / 1000 : null)

function jobBuild(j: CiJob, user: ReturnType<typeof userPayload>) {
  return {
    id: j.id,
    stage: j.stage,
    name: j.name,
    status: j.status,
    created_at: j.created_at,
    started_at: j.started_at,
    finished_at: j.finished_at,
    duration: seconds(j.started_at, j.finished_at),
    queued_duration: seconds(j.queued_at, j.started_at),
    failure_reason: j.failure_reason,
    when: j.when,
    manual: j.when === 'manual',
    allow_failure: j.allow_failure === 1,
    user,
    runner: null,
    artifacts_file: { filename: null, size: null },
    environment: null,
  }
}

export function pipelinePayload(
  c: ProjectContext,
  p: Pipeline,
  jobs: CiJob[],
  commit: CommitInfo | undefined,
  user: ReturnType<typeof userPayload>,
) {
  const stages = [...new Map(jobs.map((j) => [j.stage_idx, j.stage])).entries()].sort((a, b) => a[0] - b[0]).map(([, s]) => s)
  return {
    object_kind: 'pipeline',
    object_attributes: {
      id: p.id,
      iid: p.iid,
      name: null,
      ref: p.ref,
      tag: p.tag === 1,
      sha: p.sha,
      before_sha: p.before_sha,
      source: p.source,
      status: p.status,
      detailed_status: p.status,
      stages,
      created_at: p.created_at,
      finished_at: p.finished_at,
      duration: seconds(p.started_at, p.finished_at),
      queued_duration: seconds(p.created_at, p.started_at),
      variables: [],
      url: `${c.publicUrl}/${c.project.full_path}/-/pipelines/${p.id}`,
    },
    merge_request: null,
    user,
    project: projectPayload(c),
    commit: commit ? commitPayload(c, commit) : null,
    builds: jobs.map((j) => jobBuild(j, user)),
  }
}

export function jobPayload(c: ProjectContext, p: Pipeline, j: CiJob, commit: CommitInfo | undefined, user: ReturnType<typeof userPayload>) {
  return {
    object_kind: 'build',
    ref: p.ref,
    tag: p.tag === 1,
    before_sha: p.before_sha,
    sha: p.sha,
    build_id: j.id,
    build_name: j.name,
    build_stage: j.stage,
    build_status: j.status,
    build_created_at: j.created_at,
    build_started_at: j.started_at,
    build_finished_at: j.finished_at,
    build_duration: seconds(j.started_at, j.finished_at),
    build_queued_duration: seconds(j.queued_at, j.started_at),
    build_allow_failure: j.allow_failure === 1,
    build_failure_reason: j.failure_reason ?? 'unknown_failure',
    pipeline_id: p.id,
    runner: null,
    project_id: c.project.id,
    project_name: [...c.chain.map((n) => n.name), c.project.name].join(' / '),
    user,
    commit: {
      id: p.id,
      name: null,
      sha: p.sha,
      message: commit?.message ?? '',
      author_name: commit?.authorName ?? '',
      author_email: commit?.authorEmail ?? '',
      status: p.status,
      duration: seconds(p.started_at, p.finished_at),
      started_at: p.started_at,
      finished_at: p.finished_at,
    },
    repository: repositoryPayload(c),
    project: projectPayload(c),
    environment: null,
  }
}

export interface RegistryFacts {
  action: 'push' | 'delete'
  /** The image repository (`group/project[/name]`) and the host it is pulled from. */
  repository: string
  registryHost: string
  tag: string
  digest: string | null
  mediaType: string | null
  /** Manifest plus the blobs it references, in bytes; null for a deletion. */
  size: number | null
  actor: string | null
}

/** Wharf's registry event (GitLab has none): an image tag pushed or deleted. */
export function registryPayload(c: ProjectContext, f: RegistryFacts) {
  return {
    object_kind: 'registry',
    event_name: f.action === 'push' ? 'tag_push' : 'tag_delete',
    repository: { name: f.repository, location: `${f.registryHost}/${f.repository}` },
    tag: f.tag,
    digest: f.digest,
    media_type: f.mediaType,
    size: f.size,
    actor: f.actor,
    project_id: c.project.id,
    project: projectPayload(c),
  }
}
