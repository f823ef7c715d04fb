import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { wholeMatch } from '../core/linear-regex.ts'
import { refSlug } from '../core/names.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database, Executor, RegistryRepositoryRule, RegistryTagRule } from '../metadata/schema.ts'
import type { CiFacts } from './ci-facts.ts'
import { tagsToDelete, type CleanupRules } from './cleanup.ts'
import { deleteProtected, type RepositoryProtection } from './repository-protection.ts'
import { undeletableTags } from './tag-protection.ts'
import * as q from './queries.ts'

// GitLab's container registry cleanup policy (container_expiration_policy_attributes on
// PUT /projects/:id): on its cadence, each of the project's image repositories loses the tags
// name_regex selects, except name_regex_keep, the keep_n newest and those not older_than.
// Wharf's CI-aware extensions: remove_deleted_branch_tags also deletes a tag a CI job pushed
// under its branch's CI_COMMIT_REF_SLUG once that branch is gone (the tag history says which
// job pushed it for which ref); keep_protected_branch_latest keeps whatever the latest successful
// pipeline of each protected branch pushed. Protection rules (tag and repository) always win.

/** The values GitLab accepts for each attribute. */
export const CADENCES = ['1d', '7d', '14d', '1month', '3month'] as const
export const KEEP_N = [1, 5, 10, 25, 50, 100] as const
export const OLDER_THAN = ['7d', '14d', '30d', '90d'] as const
const CADENCE_MS: Record<(typeof CADENCES)[number], number> = { '1d': 1, '7d': 7, '14d': 14, '1month': 30, '3month': 90 }

export interface PolicyAttributes {
  enabled?: boolean | undefined
  cadence?: string | undefined
  keep_n?: number | null | undefined
  older_than?: string | null | undefined
  name_regex?: string | null | undefined
  name_regex_keep?: string | null | undefined
  remove_deleted_branch_tags?: boolean | undefined
  keep_protected_branch_latest?: boolean | undefined
}

export interface Policy {
  enabled: boolean
  cadence: string
  keep_n: number | null
  older_than: string | null
  name_regex: string | null
  name_regex_keep: string | null
  next_run_at: string | null
  /** Wharf extension: delete the tags of branches that no longer exist. */
  remove_deleted_branch_tags: boolean
  /** Wharf extension: keep what the latest successful pipeline of each protected branch pushed. */
  keep_protected_branch_latest: boolean
}

/** A tag a policy would delete or keeps, and why. */
export interface PlannedTag {
  name: string
  reason: string
}

/** What a policy does to one repository. */
export interface RepositoryPlan {
  id: number
  path: string
  delete: PlannedTag[]
  keep: PlannedTag[]
}

/** GitLab's defaults for a project that never set a policy. */
const DEFAULT: Policy = {
  enabled: false,
  cadence: '1d',
  keep_n: 10,
  older_than: '90d',
  name_regex: '.*',
  name_regex_keep: null,
  next_run_at: null,
  remove_deleted_branch_tags: false,
  keep_protected_branch_latest: false,
}

const nextRun = (cadence: string, from: number) =>
  new Date(from + CADENCE_MS[cadence as (typeof CADENCES)[number]] * 86_400_000).toISOString()

/** What planning needs about the project, read once for all its repositories. */
interface ProjectFacts {
  tagRules: RegistryTagRule[]
  repositoryRules: RegistryRepositoryRule[]
  /** Branches now; undefined when the stale-branch rule is off or CI cannot tell. */
  branches: Set<string> | undefined
  /** Pipelines whose pushes stay, with the protected branch each is the latest of. */
  keptPipelines: Map<number, string>
}

export class CleanupPolicies {
  private readonly db: Kysely<Database>
  private readonly repositoryProtection: RepositoryProtection
  private ci: CiFacts | undefined

  constructor(db: Kysely<Database>, repositoryProtection: RepositoryProtection) {
    this.db = db
    this.repositoryProtection = repositoryProtection
  }

  setCiFacts(ci: CiFacts): void {
    this.ci = ci
  }

  async get(projectId: number): Promise<Policy> {
    const row = await q.cleanupPolicy(this.db, projectId)
    return row
      ? {
          enabled: row.enabled === 1,
          cadence: row.cadence,
          keep_n: row.keep_n,
          older_than: row.older_than,
          name_regex: row.name_regex,
          name_regex_keep: row.name_regex_keep,
          next_run_at: row.next_run_at,
          remove_deleted_branch_tags: row.remove_deleted_branch_tags === 1,
          keep_protected_branch_latest: row.keep_protected_branch_latest === 1,
        }
      : { ...DEFAULT }
  }

  /** Applies the given attributes over the current policy (GitLab's values only); enabling schedules the first run one cadence ahead. */
  async update(projectId: number, a: PolicyAttributes, now = Date.now()): Promise<Policy> {
    const cur = await this.get(projectId)
    const next = merged(cur, a)
    if (!next.enabled) next.next_run_at = null
    else if (!cur.enabled || next.cadence !== cur.cadence || next.next_run_at === null) next.next_run_at = nextRun(next.cadence, now)
    await q.upsertCleanupPolicy(this.db, {
      project_id: projectId,
      enabled: next.enabled ? 1 : 0,
      cadence: next.cadence,
      keep_n: next.keep_n,
      older_than: next.older_than,
      name_regex: next.name_regex,
      name_regex_keep: next.name_regex_keep,
      next_run_at: next.next_run_at,
      remove_deleted_branch_tags: next.remove_deleted_branch_tags ? 1 : 0,
      keep_protected_branch_latest: next.keep_protected_branch_latest ? 1 : 0,
      updated_at: nowIso(),
    })
    return next
  }

  /**
   * What the project's policy (with `attributes` applied over it, unsaved) would delete now in each
   * of its repositories, and what it keeps for a rule, with the reasons. Nothing changes.
   */
  async preview(
    project: { id: number; full_path_lower: string },
    attributes: PolicyAttributes = {},
    now = Date.now(),
  ): Promise<{ policy: Policy; repositories: RepositoryPlan[] }> {
    const policy = merged(await this.get(project.id), attributes)
    const facts = await this.projectFacts(project.id, policy)
    const repositories = []
    for (const repo of await q.repositoriesUnder(this.db, project.full_path_lower))
      repositories.push(await this.planRepository(this.db, repo, policy, facts, now))
    return { policy, repositories }
  }

  /** Runs every enabled policy whose time has come, over each image repository of its project; schedules the next run. */
  async runDue(now = Date.now()): Promise<{ policies: number; tags: number; protectedTags: number }> {
    let tags = 0
    let protectedTags = 0
    const due = await q.dueCleanupPolicies(this.db, new Date(now).toISOString())
    for (const p of due) {
      const policy = await this.get(p.project_id)
      const facts = await this.projectFacts(p.project_id, policy)
      for (const repo of await q.repositoriesUnder(this.db, p.full_path_lower)) {
        // Planned and applied in one transaction: a tag pushed meanwhile is seen or untouched.
        // Counted from the committed attempt only (PostgreSQL may run the transaction again).
        const done = await this.db.transaction().execute(async (trx) => {
          const plan = await this.planRepository(trx, repo, policy, facts, now)
          const deleted = await q.deleteTagsByName(
            trx,
            repo.id,
            plan.delete.map((d) => d.name),
          )
          return { deleted, kept: plan.keep.filter((k) => k.reason.startsWith('protected')).length }
        })
        protectedTags += done.kept
        tags += done.deleted
      }
      await q.setCleanupPolicyNextRun(this.db, p.project_id, nextRun(p.cadence, now))
    }
    return { policies: due.length, tags, protectedTags }
  }

  private async projectFacts(projectId: number, policy: Policy): Promise<ProjectFacts> {
    const [tagRules, repositoryRules] = await Promise.all([
      q.tagRulesOf(this.db, projectId),
      this.repositoryProtection.forProject(projectId),
    ])
    const branches = policy.remove_deleted_branch_tags && this.ci ? await this.ci.branches(projectId) : undefined
    const keptPipelines = new Map<number, string>()
    if (policy.keep_protected_branch_latest && this.ci)
      for (const k of await this.ci.latestProtectedBranchPipelines(projectId)) keptPipelines.set(k.pipelineId, k.branch)
    return { tagRules, repositoryRules, branches, keptPipelines }
  }

  private async planRepository(
    db: Executor,
    repo: { id: number; name: string },
    policy: Policy,
    facts: ProjectFacts,
    now: number,
  ): Promise<RepositoryPlan> {
    const rows = await q.tagsWithLastPush(db, repo.id)
    const candidates = new Map<string, string>()
    // A policy without name_regex deletes nothing by name (GitLab).
    if (policy.name_regex) {
      const rules: CleanupRules = {
        nameRegexDelete: policy.name_regex,
        nameRegexKeep: policy.name_regex_keep ?? undefined,
        keepN: policy.keep_n ?? undefined,
        olderThan: policy.older_than ?? undefined,
      }
      const why = [
        `matches name_regex '${policy.name_regex}'`,
        ...(policy.keep_n ? [`is not among the ${policy.keep_n} newest`] : []),
        ...(policy.older_than ? [`is older than ${policy.older_than}`] : []),
      ].join(', ')
      for (const name of tagsToDelete(rows, rules, now)) candidates.set(name, why)
    }
    if (facts.branches) {
      const keep = policy.name_regex_keep ? wholeMatch(policy.name_regex_keep, 'name_regex_keep') : undefined
      for (const r of rows) {
        // Only a tag a job pushed under its own branch's slug, whose branch is gone.
        if (r.ref === null || r.ref_is_tag !== 0 || refSlug(r.ref) !== r.name || facts.branches.has(r.ref) || keep?.test(r.name)) continue
        candidates.set(r.name, `pushed by job ${r.job_id} as the CI_COMMIT_REF_SLUG of branch '${r.ref}', which no longer exists`)
      }
    }
    const keep: PlannedTag[] = []
    const repoRule = deleteProtected(facts.repositoryRules, repo.name)
    if (repoRule) {
      for (const name of candidates.keys())
        keep.push({
          name,
          reason: `protected: repository protection rule ${repoRule.id} ('${repoRule.repository_path_pattern}') guards deletes`,
        })
      return { id: repo.id, path: repo.name, delete: [], keep: sorted(keep) }
    }
    for (const r of rows) {
      const branch = r.pipeline_id !== null ? facts.keptPipelines.get(r.pipeline_id) : undefined
      if (branch === undefined || !candidates.has(r.name)) continue
      candidates.delete(r.name)
      keep.push({ name: r.name, reason: `pushed by pipeline ${r.pipeline_id}, the latest successful one of protected branch '${branch}'` })
    }
    for (const name of undeletableTags(facts.tagRules, [...candidates.keys()], undefined)) {
      candidates.delete(name)
      keep.push({ name, reason: 'protected: a tag protection rule matches it' })
    }
    const del = [...candidates].map(([name, reason]) => ({ name, reason }))
    return { id: repo.id, path: repo.name, delete: sorted(del), keep: sorted(keep) }
  }
}

const sorted = (tags: PlannedTag[]) => tags.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))

/** The attributes over the policy, checked against GitLab's values. */
function merged(cur: Policy, a: PolicyAttributes): Policy {
  const next: Policy = {
    enabled: a.enabled ?? cur.enabled,
    cadence: a.cadence ?? cur.cadence,
    keep_n: a.keep_n === undefined ? cur.keep_n : a.keep_n,
    older_than: a.older_than === undefined ? cur.older_than : a.older_than,
    name_regex: a.name_regex === undefined ? cur.name_regex : a.name_regex || null,
    name_regex_keep: a.name_regex_keep === undefined ? cur.name_regex_keep : a.name_regex_keep || null,
    next_run_at: cur.next_run_at,
    remove_deleted_branch_tags: a.remove_deleted_branch_tags ?? cur.remove_deleted_branch_tags,
    keep_protected_branch_latest: a.keep_protected_branch_latest ?? cur.keep_protected_branch_latest,
  }
  const oneOf = (field: string, value: unknown, allowed: readonly unknown[]) => {
    if (!allowed.includes(value))
      throw new WharfError('BAD_REQUEST', `container_expiration_policy_attributes.${field} must be one of ${allowed.join(', ')}`, {
        field,
      })
  }
  oneOf('cadence', next.cadence, CADENCES)
  if (next.keep_n !== null) oneOf('keep_n', next.keep_n, KEEP_N)
  if (next.older_than !== null) oneOf('older_than', next.older_than, OLDER_THAN)
  if (next.name_regex) wholeMatch(next.name_regex, 'container_expiration_policy_attributes.name_regex')
  if (next.name_regex_keep) wholeMatch(next.name_regex_keep, 'container_expiration_policy_attributes.name_regex_keep')
  return next
}
