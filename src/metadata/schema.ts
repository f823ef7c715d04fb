import type { Generated, Insertable, Kysely, Selectable, Transaction } from 'kysely'

// Table interfaces. Timestamps are ISO-8601 text so SQLite and PostgreSQL store them alike.

export interface RepositoriesTable {
  id: Generated<number>
  name: string
  created_at: string
}

/** One row per distinct content-addressed blob in storage, shared across repositories. */
export interface BlobsTable {
  digest: string
  size: number
  created_at: string
}

/** A blob is readable in a repository only once it was pushed or mounted there. */
export interface RepositoryBlobsTable {
  repository_id: number
  digest: string
  created_at: string
}

export interface ManifestsTable {
  id: Generated<number>
  repository_id: number
  digest: string
  media_type: string
  artifact_type: string | null
  size: number
  config_digest: string | null
  subject_digest: string | null
  annotations: string | null
  content: Uint8Array
  created_at: string
  /** When it last lost a tag; untagged manifests are kept for gc.untaggedDelaySeconds from then (or from created_at). */
  untagged_at: string | null
}

/** Edges from a manifest to the blobs (config, layers) and manifests (index children) it names. */
export interface ManifestReferencesTable {
  manifest_id: number
  digest: string
  kind: 'blob' | 'manifest'
}

export interface TagsTable {
  repository_id: number
  name: string
  manifest_id: number
  updated_at: string
}

export interface UploadsTable {
  id: string
  repository_id: number
  /** Bytes received so far; the temp file is truncated back to this after a crash. */
  size: number
  /** The request that claimed the session last (migration 0021); '' before the first. */
  writer: Generated<string>
  /** Until when `writer` may write (ISO); null when it finished. */
  writer_until: string | null
  created_at: string
  updated_at: string
}

export interface UsersTable {
  id: Generated<number>
  username: string
  username_lower: string
  name: string
  email: string | null
  password_hash: string | null
  is_admin: number
  state: UserState
  created_at: string
}

/** GitLab's account states Wharf has: a deactivated account is kept (tokens too) but cannot sign in until activated. */
export type UserState = 'active' | 'blocked' | 'deactivated'

export interface NamespacesTable {
  id: Generated<number>
  kind: 'user' | 'group'
  name: string
  path: string
  full_path: string
  full_path_lower: string
  parent_id: number | null
  owner_id: number | null
  visibility: 'public' | 'internal' | 'private'
  description: string
  created_at: string
}

export interface ProjectsTable {
  id: Generated<number>
  namespace_id: number
  name: string
  path: string
  full_path: string
  full_path_lower: string
  visibility: 'public' | 'internal' | 'private'
  description: string
  creator_id: number | null
  created_at: string
}

export interface MembersTable {
  id: Generated<number>
  source_kind: 'namespace' | 'project'
  source_id: number
  user_id: number
  access_level: number
  expires_at: string | null
  created_at: string
}

export interface PersonalAccessTokensTable {
  id: Generated<number>
  user_id: number
  name: string
  token_digest: string
  scopes: string
  expires_at: string | null
  revoked: number
  last_used_at: string | null
  created_at: string
}

export interface DeployTokensTable {
  id: Generated<number>
  project_id: number | null
  namespace_id: number | null
  name: string
  username: string
  token_digest: string
  scopes: string
  expires_at: string | null
  revoked: number
  last_used_at: string | null
  created_at: string
}

export interface RefreshTokensTable {
  id: Generated<number>
  token_digest: string
  principal: string
  expires_at: string
  revoked: number
  created_at: string
}

export interface DeviceLoginsTable {
  id: Generated<number>
  device_code_digest: string
  user_code_digest: string
  client_id: string
  device_name: string
  scopes: string
  status: 'pending' | 'approved' | 'denied' | 'active' | 'revoked'
  user_id: number | null
  refresh_digest: string | null
  expires_at: string
  interval_seconds: number
  last_poll_at: string | null
  last_used_at: string | null
  created_at: string
}

export interface SigningKeysTable {
  kid: string
  private_jwk: string
  public_jwk: string
  created_at: string
  retired_at: string | null
}

export interface AuditEventsTable {
  id: Generated<number>
  at: string
  actor: string
  action: string
  target: string
  ip: string | null
  detail: string | null
}

export interface PipelinesTable {
  id: Generated<number>
  project_id: number
  iid: number
  ref: string
  tag: number
  sha: string
  before_sha: string
  source: string
  status: string
  user_id: number | null
  yaml_errors: string | null
  variables: string
  created_at: string
  updated_at: string
  started_at: string | null
  finished_at: string | null
  /** The bridge job (`trigger:`) that created this pipeline, in its parent or upstream project's pipeline. */
  upstream_job_id: Generated<number | null>
  /** The schedule that started it (source `schedule`). */
  pipeline_schedule_id: number | null
  /** `workflow:auto_cancel:on_job_failure`: 'all' cancels the rest of the pipeline when a job fails; 'none'. */
  auto_cancel_on_job_failure: Generated<string>
}

export interface CiJobsTable {
  id: Generated<number>
  pipeline_id: number
  project_id: number
  name: string
  stage: string
  stage_idx: number
  status: string
  when: string
  allow_failure: number
  needs: string | null
  definition: string
  variables: string
  user_id: number | null
  retried: number
  failure_reason: string | null
  runner_id: number | null
  token_digest: string | null
  created_at: string
  queued_at: string | null
  started_at: string | null
  finished_at: string | null
  /** Last sign of life from the runner (PUT state running, trace PATCH). */
  heartbeat_at: string | null
  exit_code: number | null
  /** When its log and artifacts were erased (GitLab's job erase). */
  erased_at: string | null
  /** 'build' (runners run it) or 'bridge' (`trigger:`: creates a downstream pipeline). */
  kind: Generated<string>
  /** `resource_group:`, with variables expanded. */
  resource_group: Generated<string | null>
  /** When a `scheduled` job (`when: delayed`) becomes pending. */
  scheduled_at: string | null
  /** The percentage `coverage:`'s regular expression found in the finished job's log. */
  coverage: Generated<number | null>
}

/** A project's resource group (created on first use by a job's `resource_group:`). */
export interface ResourceGroupsTable {
  id: Generated<number>
  project_id: number
  key: string
  process_mode: string
  created_at: string
  updated_at: string
}

/** A project's environment (`environment:` of its jobs, or made through the API). */
export interface EnvironmentsTable {
  id: Generated<number>
  project_id: number
  name: string
  /** GitLab's slug: lowercased, at most 24 characters, DNS-safe (CI_ENVIRONMENT_SLUG). */
  slug: string
  external_url: string | null
  /** 'available' | 'stopping' (its stop job runs) | 'stopped' */
  state: string
  /** production | staging | testing | development | other */
  tier: string
  /** When `auto_stop_in` stops it; null for never. */
  auto_stop_at: string | null
  created_at: string
  updated_at: string
}

/** One deployment: a job attempt with `environment:` (action start), its status following the job's. */
export interface DeploymentsTable {
  id: Generated<number>
  project_id: number
  iid: number
  environment_id: number
  job_id: number | null
  pipeline_id: number | null
  ref: string
  tag: number
  sha: string
  status: string
  user_id: number | null
  /** `environment:on_stop`: the job of the same pipeline that stops the environment. */
  on_stop: string | null
  created_at: string
  updated_at: string
  finished_at: string | null
}

/** A release of a tag (GitLab's releases). */
export interface ReleasesTable {
  id: Generated<number>
  project_id: number
  tag_name: string
  name: string
  description: string
  sha: string
  author_id: number | null
  /** The job whose `release:` made it. */
  job_id: number | null
  released_at: string
  created_at: string
  updated_at: string
}

export interface ReleaseLinksTable {
  id: Generated<number>
  release_id: number
  name: string
  url: string
  direct_asset_path: string | null
  link_type: string
  created_at: string
}

/** GitLab's pipeline schedules: a cron line in an IANA time zone, run as the owner with these variables. */
export interface PipelineSchedulesTable {
  id: Generated<number>
  project_id: number
  description: string
  ref: string
  cron: string
  cron_timezone: string
  active: number
  next_run_at: string
  owner_id: number | null
  last_pipeline_id: number | null
  created_at: string
  updated_at: string
}
export type PipelineSchedule = Selectable<PipelineSchedulesTable>

export interface PipelineScheduleVariablesTable {
  id: Generated<number>
  schedule_id: number
  key: string
  value: string
  variable_type: 'env_var' | 'file'
  created_at: string
}
export type PipelineScheduleVariable = Selectable<PipelineScheduleVariablesTable>

export interface CiVariablesTable {
  id: Generated<number>
  owner_kind: 'project' | 'group'
  owner_id: number
  key: string
  value: string
  variable_type: 'env_var' | 'file'
  protected: number
  masked: number
  environment_scope: string
  created_at: string
}

export interface PipelineTriggersTable {
  id: Generated<number>
  project_id: number
  owner_id: number | null
  description: string
  token_digest: string
  token_hint: string
  created_at: string
}

/** A push about to put a blob's file in place (src/gc/): the collector never deletes a claimed digest. */
export interface BlobClaimsTable {
  id: string
  digest: string
  created_at: string
}

/** A blob whose row was deleted and whose file is being removed; claims of that digest wait for it. */
export interface BlobDeletionsTable {
  digest: string
  /** The collection (or cache purge) removing it: only the owner finishes it, unless it went stale. */
  owner: string
  created_at: string
}

/** A project's container registry cleanup policy (GitLab's container_expiration_policy). */
export interface ContainerExpirationPoliciesTable {
  project_id: number
  enabled: number
  cadence: string
  keep_n: number | null
  older_than: string | null
  name_regex: string | null
  name_regex_keep: string | null
  /** When it runs next (enabled policies only). */
  next_run_at: string | null
  updated_at: string
  /** Wharf: delete tags a job pushed under its branch's CI_COMMIT_REF_SLUG once that branch is gone (0/1). */
  remove_deleted_branch_tags: Generated<number>
  /** Wharf: keep the tags the latest successful pipeline of each protected branch pushed (0/1). */
  keep_protected_branch_latest: Generated<number>
}

/** One garbage collection at a time, across processes. */
export interface GcLeaseTable {
  name: string
  owner: string
  expires_at: string
}

/** Who runs a periodic task across nodes (metadata/leases.ts). */
export interface LeasesTable {
  name: string
  holder: string
  expires_at: string
}

/** Failed sign-ins counted across nodes (auth/throttle.ts). */
export interface LoginThrottleTable {
  key: string
  failures: number
  reset_at: string
}

/** Values every node must agree on (the sealing key's check value). */
export interface NodeChecksTable {
  name: string
  value: string
  created_at: string
}

export interface Database {
  repositories: RepositoriesTable
  blobs: BlobsTable
  repository_blobs: RepositoryBlobsTable
  manifests: ManifestsTable
  manifest_references: ManifestReferencesTable
  tags: TagsTable
  uploads: UploadsTable
  users: UsersTable
  namespaces: NamespacesTable
  projects: ProjectsTable
  members: MembersTable
  personal_access_tokens: PersonalAccessTokensTable
  deploy_tokens: DeployTokensTable
  refresh_tokens: RefreshTokensTable
  device_logins: DeviceLoginsTable
  signing_keys: SigningKeysTable
  audit_events: AuditEventsTable
  pipelines: PipelinesTable
  pipeline_schedules: PipelineSchedulesTable
  pipeline_schedule_variables: PipelineScheduleVariablesTable
  ci_jobs: CiJobsTable
  ci_variables: CiVariablesTable
  pipeline_triggers: PipelineTriggersTable
  oauth_tokens: OAuthTokensTable
  web_sessions: WebSessionsTable
  runners: RunnersTable
  ci_job_traces: CiJobTracesTable
  ci_job_artifacts: CiJobArtifactsTable
  runner_projects: RunnerProjectsTable
  job_token_allowlist: JobTokenAllowlistTable
  push_events: PushEventsTable
  dependency_proxy_repositories: DependencyProxyRepositoriesTable
  dependency_proxy_tags: DependencyProxyTagsTable
  webhooks: WebhooksTable
  webhook_deliveries: WebhookDeliveriesTable
  webhook_pipeline_states: WebhookPipelineStatesTable
  blob_claims: BlobClaimsTable
  blob_deletions: BlobDeletionsTable
  gc_lease: GcLeaseTable
  container_expiration_policies: ContainerExpirationPoliciesTable
  protected_refs: ProtectedRefsTable
  registry_tag_protection_rules: RegistryTagProtectionRulesTable
  registry_repository_protection_rules: RegistryRepositoryProtectionRulesTable
  registry_project_quotas: RegistryProjectQuotasTable
  registry_tag_pushes: RegistryTagPushesTable
  commit_statuses: CommitStatusesTable
  resource_groups: ResourceGroupsTable
  identities: IdentitiesTable
  environments: EnvironmentsTable
  deployments: DeploymentsTable
  releases: ReleasesTable
  release_links: ReleaseLinksTable
  leases: LeasesTable
  login_throttle: LoginThrottleTable
  node_checks: NodeChecksTable
}

export type Executor = Kysely<Database> | Transaction<Database>
export type ResourceGroup = Selectable<ResourceGroupsTable>
export type Environment = Selectable<EnvironmentsTable>
export type Deployment = Selectable<DeploymentsTable>
export type Release = Selectable<ReleasesTable>
export type ReleaseLink = Selectable<ReleaseLinksTable>
export type Repository = Selectable<RepositoriesTable>
export type Manifest = Selectable<ManifestsTable>
export type NewManifest = Insertable<ManifestsTable>
export type Upload = Selectable<UploadsTable>
export type User = Selectable<UsersTable>
export type Namespace = Selectable<NamespacesTable>
export type Project = Selectable<ProjectsTable>
export type PersonalAccessToken = Selectable<PersonalAccessTokensTable>
export type DeployToken = Selectable<DeployTokensTable>

/** OAuth access tokens (POST /oauth/token) for the REST API; secrets stored as sha256 digests. */
export interface OAuthTokensTable {
  id: Generated<number>
  user_id: number
  access_digest: string
  refresh_digest: string
  scopes: string
  expires_at: string
  refresh_expires_at: string
  revoked: number
  created_at: string
}
export type OAuthToken = Selectable<OAuthTokensTable>
export type DeviceLogin = Selectable<DeviceLoginsTable>

/** Web UI sessions (the `wharf_session` cookie); the token is stored as a sha256 digest. */
export interface WebSessionsTable {
  id: Generated<number>
  user_id: number
  token_digest: string
  created_at: string
  expires_at: string
  last_seen_at: string
  ip: string | null
  user_agent: string | null
}
export type WebSession = Selectable<WebSessionsTable>

/** An external identity (OIDC provider + `sub`, LDAP server + DN) linked to an account. */
export interface IdentitiesTable {
  id: Generated<number>
  user_id: number
  kind: 'oidc' | 'ldap'
  /** The provider's configured id. */
  provider: string
  subject: string
  email: string | null
  /** OIDC refresh token, sealed; null when the provider issued none. */
  refresh_token_sealed: string | null
  created_at: string
  last_sign_in_at: string | null
  /** Last time the provider confirmed the user (sign-in or sync). */
  checked_at: string | null
  /** Set when the sync blocked the user because the provider no longer knows them. */
  blocked_at: string | null
}
export type Identity = Selectable<IdentitiesTable>

/** Push events awaiting (or done with) their listeners; `updates` and `principal` are JSON. */
export interface CommitStatusesTable {
  id: Generated<number>
  project_id: number
  sha: string
  /** '' when posted without a ref. */
  ref: string
  name: string
  status: string
  description: string | null
  target_url: string | null
  coverage: number | null
  author_id: number | null
  created_at: string
  started_at: string | null
  finished_at: string | null
}
export type CommitStatus = Selectable<CommitStatusesTable>

export interface ProtectedRefsTable {
  id: Generated<number>
  project_id: number
  kind: 'branch' | 'tag'
  /** A ref's short name, or a pattern where `*` matches anything. */
  name: string
  push_level: number
  merge_level: number
  allow_force_push: number
  created_at: string
}
export type ProtectedRef = Selectable<ProtectedRefsTable>

/** GitLab's container registry tag protection rules; both levels null: an immutable-tag rule. */
export interface RegistryTagProtectionRulesTable {
  id: Generated<number>
  project_id: number
  /** RE2 pattern matched against the whole tag name. */
  tag_name_pattern: string
  /** Least access level that may push (create or move) a matching tag: 40, 50 or 60 (administrators). */
  push_level: number | null
  /** Least access level that may delete a matching tag. */
  delete_level: number | null
  created_at: string
}
export type RegistryTagRule = Selectable<RegistryTagProtectionRulesTable>

/** GitLab's container registry repository protection rules (null level: no requirement for that action). */
export interface RegistryRepositoryProtectionRulesTable {
  id: Generated<number>
  project_id: number
  /** A repository path with `*` wildcards, starting with the project's path. */
  repository_path_pattern: string
  push_level: number | null
  delete_level: number | null
  created_at: string
}
export type RegistryRepositoryRule = Selectable<RegistryRepositoryProtectionRulesTable>

/** A project's registry quota (an administrator's setting); null: no such limit. */
export interface RegistryProjectQuotasTable {
  project_id: number
  hard_limit_bytes: number | null
  soft_limit_bytes: number | null
  updated_at: string
}

/** One tag push: who or which job pointed the tag at the digest, and when. */
export interface RegistryTagPushesTable {
  id: Generated<number>
  repository_id: number
  tag: string
  digest: string
  /** The username, deploy token or job name the registry token was issued to. */
  actor: string | null
  job_id: number | null
  pipeline_id: number | null
  /** The job's ref (branch or tag name) and whether it is a tag (0/1). */
  ref: string | null
  ref_is_tag: number | null
  pushed_at: string
}
export type RegistryTagPush = Selectable<RegistryTagPushesTable>

export interface PushEventsTable {
  id: Generated<number>
  project_id: number
  project_path: string
  principal: string
  updates: string
  at: string
  /** Ref updates (in order) the listeners have acknowledged. */
  handled: Generated<number>
  /** Deliveries that failed; after PUSH_EVENT_ATTEMPTS the event is given up. */
  attempts: Generated<number>
  last_error: string | null
  /** Set once every listener succeeded (or the event was given up). */
  done_at: string | null
  /** A node is delivering the event until then (ISO 8601): no other node's sweep delivers it meanwhile. */
  delivering_until: string | null
}
export type PushEventRow = Selectable<PushEventsTable>
export type Pipeline = Selectable<PipelinesTable>
export type CiJob = Selectable<CiJobsTable>
export type CiVariable = Selectable<CiVariablesTable>

/** CI runners (GitLab's runner API); the `glrt-` authentication token is stored as a digest. */
export interface RunnersTable {
  id: Generated<number>
  runner_type: 'instance_type' | 'group_type' | 'project_type'
  namespace_id: number | null
  project_id: number | null
  description: string
  tag_list: string
  run_untagged: number
  paused: number
  locked: number
  access_level: string
  maximum_timeout: number | null
  maintenance_note: string | null
  token_digest: string
  token_hint: string
  token_expires_at: string | null
  contacted_at: string | null
  created_at: string
  created_by: number | null
  name: string | null
  version: string | null
  revision: string | null
  platform: string | null
  architecture: string | null
  executor: string | null
  ip_address: string | null
}

/** Projects a project runner is enabled for besides its own (`runners.project_id`). */
export interface RunnerProjectsTable {
  runner_id: number
  project_id: number
  created_at: string
}

export interface CiJobTracesTable {
  job_id: number
  received_bytes: number
  stored_bytes: number
  tail: Uint8Array | null
  truncated: number
  updated_at: string
  /** JSON array of the job's masked values while it runs (every node masks the same); null after. */
  masks: string | null
  /** The append holding the log's lease (see TraceStore), and until when (ISO 8601). */
  lock_owner: string | null
  locked_until: string | null
}

export interface CiJobArtifactsTable {
  id: Generated<number>
  job_id: number
  project_id: number
  file_type: string
  file_format: string
  filename: string
  size: number
  sha256: string
  expire_at: string | null
  created_at: string
}

export interface JobTokenAllowlistTable {
  project_id: number
  allowed_project_id: number
  created_at: string
}

export type Runner = Selectable<RunnersTable>
export type CiJobArtifact = Selectable<CiJobArtifactsTable>

/** A registry repository that is a pull-through cache of an upstream image (GitLab's dependency proxy, or the mirror). */
export interface DependencyProxyRepositoriesTable {
  repository_id: number
  /** The group whose dependency proxy holds it; null for the mirror listener's cache. */
  namespace_id: number | null
  upstream: string
  upstream_name: string
  created_at: string
  last_pulled_at: string
}

export interface DependencyProxyTagsTable {
  repository_id: number
  tag: string
  checked_at: string
}

export interface WebhooksTable {
  id: Generated<number>
  /** Exactly one of project_id and group_id is set. */
  project_id: number | null
  group_id: number | null
  url: string
  name: Generated<string>
  description: Generated<string>
  /** The secret token, sealed (src/core/sealing.ts); null when none. */
  token_sealed: string | null
  push_events: Generated<number>
  push_events_branch_filter: Generated<string>
  tag_push_events: Generated<number>
  pipeline_events: Generated<number>
  job_events: Generated<number>
  registry_events: Generated<number>
  enable_ssl_verification: Generated<number>
  created_at: string
}

export interface WebhookDeliveriesTable {
  id: Generated<number>
  hook_id: number
  /** What the delivery reports, unique per hook (`push:<event>:<index>`, `pipeline:<id>:<status>`...). */
  event_key: string
  uuid: string
  trigger: string
  payload: string
  status: 'pending' | 'sending' | 'delivered' | 'failed'
  attempts: Generated<number>
  next_attempt_at: string
  response_status: number | null
  response_headers: string | null
  response_body: string | null
  error: string | null
  duration_ms: number | null
  created_at: string
  updated_at: string
}

export interface WebhookPipelineStatesTable {
  pipeline_id: number
  /** JSON: `{ pipeline: status, jobs: { [id]: status } }` as last reported. */
  states: string
}

export type Webhook = Selectable<WebhooksTable>
export type WebhookDelivery = Selectable<WebhookDeliveriesTable>
