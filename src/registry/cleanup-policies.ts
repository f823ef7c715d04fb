import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { wholeMatch } from '../core/linear-regex.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database } from '../metadata/schema.ts'
import { tagsToDelete } from './cleanup.ts'
import { undeletableTags } from './tag-protection.ts'
import * as q from './queries.ts'

// GitLab's container registry cleanup policy (container_expiration_policy_attributes on
// PUT /projects/:id): on its cadence, each of the project's image repositories loses the tags
// name_regex selects, except name_regex_keep, the keep_n newest and those not older_than.

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
}

export interface Policy {
  enabled: boolean
  cadence: string
  keep_n: number | null
  older_than: string | null
  name_regex: string | null
  name_regex_keep: string | null
  next_run_at: string | null
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
}

const nextRun = (cadence: string, from: number) =>
  new Date(from + CADENCE_MS[cadence as (typeof CADENCES)[number]] * 86_400_000).toISOString()

export class CleanupPolicies {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
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
        }
      : { ...DEFAULT }
  }

  /** Applies the given attributes over the current policy (GitLab's values only); enabling schedules the first run one cadence ahead. */
  async update(projectId: number, a: PolicyAttributes, now = Date.now()): Promise<Policy> {
    const cur = await this.get(projectId)
    const next: Policy = {
      enabled: a.enabled ?? cur.enabled,
      cadence: a.cadence ?? cur.cadence,
      keep_n: a.keep_n === undefined ? cur.keep_n : a.keep_n,
      older_than: a.older_than === undefined ? cur.older_than : a.older_than,
      name_regex: a.name_regex === undefined ? cur.name_regex : a.name_regex || null,
      name_regex_keep: a.name_regex_keep === undefined ? cur.name_regex_keep : a.name_regex_keep || null,
      next_run_at: cur.next_run_at,
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
      updated_at: nowIso(),
    })
    return next
  }

  /** Runs every enabled policy whose time has come, over each image repository of its project; schedules the next run. */
  async runDue(now = Date.now()): Promise<{ policies: number; tags: number; protectedTags: number }> {
    let tags = 0
    let protectedTags = 0
    const due = await q.dueCleanupPolicies(this.db, new Date(now).toISOString())
    for (const p of due) {
      // A policy without name_regex deletes nothing (GitLab), but still moves on to its next run.
      if (p.name_regex) {
        const rules = {
          nameRegexDelete: p.name_regex,
          nameRegexKeep: p.name_regex_keep ?? undefined,
          keepN: p.keep_n ?? undefined,
          olderThan: p.older_than ?? undefined,
        }
        // Cleanup never deletes a tag any protection rule of the project matches (GitLab); those are counted.
        const protection = await q.tagRulesOf(this.db, p.project_id)
        for (const repositoryId of await q.repositoryIdsUnder(this.db, p.full_path_lower)) {
          await this.db.transaction().execute(async (trx) => {
            const selected = tagsToDelete(await q.tagAges(trx, repositoryId), rules, now)
            const kept = undeletableTags(protection, selected, undefined)
            protectedTags += kept.size
            tags += await q.deleteTagsByName(
              trx,
              repositoryId,
              selected.filter((t) => !kept.has(t)),
            )
          })
        }
      }
      await q.setCleanupPolicyNextRun(this.db, p.project_id, nextRun(p.cadence, now))
    }
    return { policies: due.length, tags, protectedTags }
  }
}
