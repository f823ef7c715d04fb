// Online garbage collection: no read-only window, and safe against concurrent pushes in this
// process or another (`wharf gc` beside the server). The database decides; see README.md here.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import { parseDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { Database } from '../metadata/schema.ts'
import type { Metrics } from '../ops/index.ts'
import { CLAIM_TTL_MS, type Blobs } from '../registry/index.ts'
import type { BlobDriver } from '../storage/driver.ts'
import { blobDigestFromPath, BLOBS_DIR } from '../storage/paths.ts'
import { GcMetrics } from './metrics.ts'
import * as q from './queries.ts'

export interface GcOptions {
  /** Unreferenced blob links and blobs younger than this stay (a push between its uploads and its manifest). */
  graceSeconds: number
  /** Untagged manifests stay this long after they lost their last tag (or were pushed). */
  untaggedDelaySeconds: number
}

export interface GcItem {
  kind: 'manifest' | 'link' | 'blob'
  /** The repository (manifests and links). */
  repository?: string
  digest: string
  /** Bytes freed: a blob's file, a manifest's stored body; 0 for a link. */
  bytes: number
  reason: string
}

export interface GcReport {
  dryRun: boolean
  startedAt: string
  durationMs: number
  items: GcItem[]
  /** Blob bytes removed from storage (or that would be). */
  freedBytes: number
  counts: { manifests: number; links: number; blobs: number }
}

/** A deletion marked by a collector that stopped (a crash) this long ago is finished by the next one. */
const STALE_DELETION_MS = 10 * 60 * 1000
/** The lease outlives any collection; one whose holder crashed frees itself after this. */
const LEASE_MS = 60 * 60 * 1000

export class GarbageCollector {
  private readonly db: Kysely<Database>
  private readonly blobs: Blobs
  private readonly driver: BlobDriver
  private readonly opts: GcOptions
  private readonly metrics: GcMetrics

  constructor(db: Kysely<Database>, blobs: Blobs, driver: BlobDriver, opts: GcOptions, metrics: Metrics) {
    this.db = db
    this.blobs = blobs
    this.driver = driver
    this.opts = opts
    this.metrics = new GcMetrics(metrics)
  }

  /**
   * One collection. The dry run reads only and lists what would go, why, and the bytes; a real run
   * deletes: unreachable manifests (index before children, subject before referrers), then blob
   * links no manifest needs, then blobs no repository links, then files with no row.
   * CONFLICT when another collection holds the lease.
   */
  async run(opts: { dryRun?: boolean; now?: number } = {}): Promise<GcReport> {
    const started = opts.now ?? Date.now()
    const cut = {
      untaggedBefore: new Date(started - this.opts.untaggedDelaySeconds * 1000).toISOString(),
      before: new Date(started - this.opts.graceSeconds * 1000).toISOString(),
      claimsBefore: new Date(started - CLAIM_TTL_MS).toISOString(),
    }
    if (opts.dryRun)
      return this.report(true, started, [...planItems(await q.plan(this.db, cut)), ...(await this.orphanFiles(cut.before, undefined))])
    const owner = `gc:${randomUUID()}`
    if (!(await q.acquireLease(this.db, owner, new Date().toISOString(), new Date(Date.now() + LEASE_MS).toISOString()))) {
      this.metrics.runs.inc({ outcome: 'skipped' })
      throw new WharfError('CONFLICT', 'a garbage collection is already running', {})
    }
    const timer = this.metrics.duration.startTimer()
    try {
      const items = await this.sweep(owner, cut)
      const report = this.report(false, started, items)
      this.metrics.runs.inc({ outcome: 'completed' })
      this.metrics.freedBytes.inc(report.freedBytes)
      for (const kind of ['manifest', 'link', 'blob'] as const)
        this.metrics.deleted.inc({ kind }, items.filter((i) => i.kind === kind).length)
      return report
    } catch (e) {
      this.metrics.runs.inc({ outcome: 'failed' })
      throw e
    } finally {
      timer()
      await q.releaseLease(this.db, owner)
    }
  }

  private async sweep(owner: string, cut: { untaggedBefore: string; before: string; claimsBefore: string }): Promise<GcItem[]> {
    await this.blobs.recover(owner, new Date(Date.now() - STALE_DELETION_MS).toISOString())
    const items: GcItem[] = []
    // Each batch is one statement: the rule is checked where the row is deleted.
    for (;;) {
      const rows = await q.deleteManifestBatch(this.db, cut.untaggedBefore)
      if (rows.length === 0) break
      const names = await q.repositoryNames(this.db, [...new Set(rows.map((r) => r.repository_id))])
      for (const m of rows) items.push(manifestItem({ ...m, repository: names.get(m.repository_id) ?? `#${m.repository_id}` }))
    }
    // Candidates in one pass, then deleted in batches that re-check the rule (a push may have referenced one since).
    const links = await q.staleLinkCandidates(this.db, cut.before)
    for (let i = 0; i < links.length; i += q.BATCH) {
      const rows = await q.deleteLinkBatch(this.db, links.slice(i, i + q.BATCH), cut.before)
      const names = await q.repositoryNames(this.db, [...new Set(rows.map((r) => r.repository_id))])
      for (const l of rows) items.push(linkItem({ ...l, repository: names.get(l.repository_id) ?? `#${l.repository_id}` }))
    }
    for (const b of await this.blobs.deleteUnreferenced({ owner, before: cut.before })) items.push(blobItem(b))
    items.push(...(await this.orphanFiles(cut.before, owner)))
    return items
  }

  /** Files under blobs/ older than `before` with no row: listed (dry run) or deleted through the same marker as blobs. */
  private async orphanFiles(before: string, owner: string | undefined): Promise<GcItem[]> {
    const files = new Map<string, number>()
    for await (const f of this.driver.list(BLOBS_DIR)) {
      const digest = blobDigestFromPath(f.path)
      if (digest !== undefined && f.modified.toISOString() < before && isDigest(digest)) files.set(digest, f.size)
    }
    const out: GcItem[] = []
    const all = [...files.keys()]
    for (let i = 0; i < all.length; i += q.BATCH) {
      const chunk = all.slice(i, i + q.BATCH)
      const known = await this.blobs.knownDigests(chunk)
      for (const digest of chunk) {
        if (known.has(digest)) continue
        if (owner === undefined || (await this.blobs.deleteOrphanFile(owner, digest))) {
          out.push({ kind: 'blob', digest, bytes: files.get(digest)!, reason: 'a file with no blob row (left by an interrupted push)' })
        }
      }
    }
    return out
  }

  private report(dryRun: boolean, started: number, items: GcItem[]): GcReport {
    return {
      dryRun,
      startedAt: new Date(started).toISOString(),
      durationMs: Date.now() - started,
      items,
      freedBytes: items.filter((i) => i.kind === 'blob').reduce((n, i) => n + i.bytes, 0),
      counts: {
        manifests: items.filter((i) => i.kind === 'manifest').length,
        links: items.filter((i) => i.kind === 'link').length,
        blobs: items.filter((i) => i.kind === 'blob').length,
      },
    }
  }
}

function isDigest(d: string): boolean {
  try {
    parseDigest(d)
    return true
  } catch {
    return false
  }
}

function manifestItem(m: q.ManifestRow & { repository: string }): GcItem {
  const reason = m.subject_digest
    ? `a referrer whose subject ${m.subject_digest} is gone, untagged since ${m.untagged_since}`
    : `untagged since ${m.untagged_since}, past the delay, and no tag reaches it through an index`
  return { kind: 'manifest', repository: m.repository, digest: m.digest, bytes: Number(m.size), reason }
}

function linkItem(l: q.LinkRow & { repository: string }): GcItem {
  return {
    kind: 'link',
    repository: l.repository,
    digest: l.digest,
    bytes: 0,
    reason: `linked ${l.created_at} and referenced by no manifest kept in the repository`,
  }
}

function blobItem(b: { digest: string; size: number }): GcItem {
  return { kind: 'blob', digest: b.digest, bytes: b.size, reason: 'linked in no repository' }
}

function planItems(p: q.Plan): GcItem[] {
  return [...p.manifests.map(manifestItem), ...p.links.map(linkItem), ...p.blobs.map(blobItem)]
}
