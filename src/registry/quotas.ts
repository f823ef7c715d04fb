import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database } from '../metadata/schema.ts'
import * as q from './queries.ts'

// Per-project registry quotas, set by an administrator on top of the namespace quota
// (limits.namespaceStorageBytes). Usage is the deduplicated bytes of the blobs the project's
// repositories link (queries.storageUsed). Over the hard limit a push gets no new bytes (uploads,
// mounts and the closing PUT of an upload are refused with DENIED before the blob is committed);
// over the soft limit pushes go through with a warning (the manifest PUT's Warning header, the
// API's quota, the project's Registry page and wharf_registry_projects_over_soft_quota).

export interface ProjectQuota {
  hardLimitBytes: number | null
  softLimitBytes: number | null
}

export interface QuotaStatus extends ProjectQuota {
  usedBytes: number
  overSoftLimit: boolean
  overHardLimit: boolean
}

export class Quotas {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  async status(project: { id: number; full_path_lower: string }): Promise<QuotaStatus> {
    const row = await q.projectQuota(this.db, project.id)
    const usedBytes = await q.storageUsed(this.db, project.full_path_lower)
    return status(usedBytes, nullable(row?.hard_limit_bytes), nullable(row?.soft_limit_bytes))
  }

  /** Sets the given limits (null removes one; absent keeps it). The soft limit must stay below the hard one. */
  async set(project: { id: number; full_path_lower: string }, input: Partial<ProjectQuota>): Promise<QuotaStatus> {
    const cur = await q.projectQuota(this.db, project.id)
    const hard = input.hardLimitBytes !== undefined ? input.hardLimitBytes : nullable(cur?.hard_limit_bytes)
    const soft = input.softLimitBytes !== undefined ? input.softLimitBytes : nullable(cur?.soft_limit_bytes)
    if (hard !== null && soft !== null && soft > hard)
      throw new WharfError('BAD_REQUEST', `the soft limit (${soft} bytes) must not exceed the hard limit (${hard} bytes)`, {
        field: 'soft_limit_bytes',
      })
    await q.upsertProjectQuota(this.db, { project_id: project.id, hard_limit_bytes: hard, soft_limit_bytes: soft, updated_at: nowIso() })
    return this.status(project)
  }

  /**
   * DENIED when adding `bytes` (0 when not known yet: then only refuse a project already at its
   * limit) takes the project owning `name` over its hard limit.
   */
  async checkPush(name: string, bytes: number, digest?: string): Promise<void> {
    const row = await q.quotaForRepository(this.db, name)
    const hard = nullable(row?.hard_limit_bytes)
    if (!row || hard === null) return
    // A blob the project already holds costs nothing again (a re-push, a mount within the project).
    if (digest !== undefined && (await q.blobHeldUnder(this.db, row.full_path_lower, digest))) return
    const used = await q.storageUsed(this.db, row.full_path_lower)
    // An upload of unknown size is refused once the project is at its limit; one of known size when it would go over.
    if (bytes === 0 ? used < hard : used + bytes <= hard) return
    throw new WharfError(
      'DENIED',
      `the registry storage quota of project '${row.full_path_lower}' is exceeded: ${used} bytes used${bytes ? ` + ${bytes} pushed` : ''}, limit ${hard} bytes. Delete images or tags, let garbage collection reclaim them, or ask an administrator for more`,
      { project: row.full_path_lower, used, adding: bytes, limit: hard },
    )
  }

  /** As checkPush for mounting a stored blob (true, so it chains before the mount); an unknown blob mounts nothing. */
  async checkMount(name: string, digest: string): Promise<true> {
    const size = await q.blobSize(this.db, digest)
    if (size !== undefined) await this.checkPush(name, size, digest)
    return true
  }

  /** The warning for a push into the project with this quota (q.pushPolicy's) when it is over its soft limit, else undefined. */
  async softWarning(row: q.PushPolicy['quota']): Promise<string | undefined> {
    const soft = nullable(row?.soft_limit_bytes)
    if (!row || soft === null) return undefined
    const used = await q.storageUsed(this.db, row.full_path_lower)
    if (used < soft) return undefined
    return `project '${row.full_path_lower}' uses ${used} bytes of registry storage, over its soft quota of ${soft} bytes`
  }

  /** How many projects are at or over their soft limit (for the gauge, read at scrape time). */
  async overSoftLimit(): Promise<number> {
    let n = 0
    for (const r of await q.softQuotas(this.db)) if ((await q.storageUsed(this.db, r.full_path_lower)) >= Number(r.soft_limit_bytes)) n++
    return n
  }
}

const nullable = (v: number | string | null | undefined): number | null => (v === null || v === undefined ? null : Number(v))

function status(usedBytes: number, hardLimitBytes: number | null, softLimitBytes: number | null): QuotaStatus {
  return {
    usedBytes,
    hardLimitBytes,
    softLimitBytes,
    overSoftLimit: softLimitBytes !== null && usedBytes >= softLimitBytes,
    overHardLimit: hardLimitBytes !== null && usedBytes >= hardLimitBytes,
  }
}
