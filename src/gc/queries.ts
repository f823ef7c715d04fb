import { sql, type RawBuilder } from 'kysely'
import { isPostgres } from '../metadata/db.ts'
import type { Executor } from '../metadata/schema.ts'

// Only this file builds garbage collection's SQL (the blob claim/deletion steps are the registry's:
// src/registry/queries.ts). The sweep deletes with local rules, each checked in the statement that
// deletes, so a push committed a moment earlier is always seen; the dry run predicts the same
// outcome with a reachability query (`kept`), read-only.

/** Rows deleted per statement: each one holds the write lock briefly, so pushes keep flowing. */
export const BATCH = 500

export interface ManifestRow {
  id: number
  repository_id: number
  digest: string
  size: number
  subject_digest: string | null
  untagged_since: string
}

/** Manifests garbage by themselves: no tag, past the delay, not a cache's, no index in the repository naming them, no subject present. */
function deletableManifest(untaggedBefore: string): RawBuilder<unknown> {
  return sql`
    NOT EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
    AND coalesce(m.untagged_at, m.created_at) < ${untaggedBefore}
    AND NOT EXISTS (SELECT 1 FROM dependency_proxy_repositories d WHERE d.repository_id = m.repository_id)
    AND NOT EXISTS (SELECT 1 FROM manifest_references r JOIN manifests p ON p.id = r.manifest_id
                     WHERE r.digest = m.digest AND r.kind = 'manifest' AND p.repository_id = m.repository_id)
    AND (m.subject_digest IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s WHERE s.repository_id = m.repository_id AND s.digest = m.subject_digest))`
}

/**
 * Deletes up to BATCH manifests that are garbage now (their edges and nothing else go with them).
 * An index goes before its children and a subject before its referrers, so repeating this until
 * it deletes nothing removes exactly what no tag reaches, and never leaves an index or referrer
 * pointing at a missing manifest.
 */
export async function deleteManifestBatch(db: Executor, untaggedBefore: string): Promise<ManifestRow[]> {
  const r = await sql<ManifestRow>`
    DELETE FROM manifests WHERE id IN (SELECT m.id FROM manifests m WHERE ${deletableManifest(untaggedBefore)} LIMIT ${BATCH})
    RETURNING id, repository_id, digest, size, subject_digest, coalesce(untagged_at, created_at) AS untagged_since`.execute(db)
  return r.rows
}

export interface LinkRow {
  repository_id: number
  digest: string
  created_at: string
}

/** A blob link by its primary key. */
export interface LinkKey {
  repository_id: number
  digest: string
}

/** Blob links older than `before` that no manifest of their repository references now (one set-based pass): the candidates to delete. */
export async function staleLinkCandidates(db: Executor, before: string): Promise<LinkKey[]> {
  const r = await sql<LinkKey>`
    SELECT rb.repository_id, rb.digest FROM repository_blobs rb
     WHERE rb.created_at < ${before}
       AND (rb.repository_id, rb.digest) NOT IN (SELECT m.repository_id, r.digest FROM manifests m JOIN manifest_references r ON r.manifest_id = m.id AND r.kind = 'blob')`.execute(
    db,
  )
  return r.rows
}

/**
 * Deletes those of these links (at most BATCH) that are still older than `before` and referenced
 * by no manifest of their repository: the rule is checked again where they are deleted.
 */
export async function deleteLinkBatch(db: Executor, keys: LinkKey[], before: string): Promise<LinkRow[]> {
  if (keys.length === 0) return []
  const r = await sql<LinkRow>`
    DELETE FROM repository_blobs AS rb
     WHERE (rb.repository_id, rb.digest) IN (VALUES ${sql.join(keys.map((k) => sql`(CAST(${k.repository_id} AS integer), CAST(${k.digest} AS text))`))})
       AND rb.created_at < ${before}
       AND NOT EXISTS (SELECT 1 FROM manifests m JOIN manifest_references r ON r.manifest_id = m.id
                        WHERE m.repository_id = rb.repository_id AND r.digest = rb.digest AND r.kind = 'blob')
    RETURNING repository_id, digest, created_at`.execute(db)
  return r.rows
}

// ---- the dry run: what the sweep would delete, from one consistent read ----

/**
 * Manifests a tag reaches (through indexes and subjects), the recent untagged ones and the cache's.
 * PostgreSQL allows one recursive term only, so there the two steps (an index's children, a
 * subject's referrers) are one lateral union; SQLite has no LATERAL but takes two recursive terms.
 */
function kept(untaggedBefore: string, postgres: boolean): RawBuilder<unknown> {
  const seed = sql`
      SELECT m.id, m.repository_id, m.digest FROM manifests m
       WHERE EXISTS (SELECT 1 FROM tags t WHERE t.manifest_id = m.id)
          OR coalesce(m.untagged_at, m.created_at) >= ${untaggedBefore}
          OR EXISTS (SELECT 1 FROM dependency_proxy_repositories d WHERE d.repository_id = m.repository_id)`
  if (postgres)
    return sql`
    kept(id, repository_id, digest) AS (${seed}
      UNION
      SELECT x.id, x.repository_id, x.digest FROM kept k CROSS JOIN LATERAL (
        SELECT c.id, c.repository_id, c.digest FROM manifest_references r
          JOIN manifests c ON c.repository_id = k.repository_id AND c.digest = r.digest
         WHERE r.manifest_id = k.id AND r.kind = 'manifest'
        UNION ALL
        SELECT s.id, s.repository_id, s.digest FROM manifests s
         WHERE s.repository_id = k.repository_id AND s.subject_digest = k.digest) x
    )`
  return sql`
    kept(id, repository_id, digest) AS (${seed}
      UNION
      SELECT c.id, c.repository_id, c.digest FROM kept k
        JOIN manifest_references r ON r.manifest_id = k.id AND r.kind = 'manifest'
        JOIN manifests c ON c.repository_id = k.repository_id AND c.digest = r.digest
      UNION
      SELECT s.id, s.repository_id, s.digest FROM kept k
        JOIN manifests s ON s.repository_id = k.repository_id AND s.subject_digest = k.digest
    )`
}

export interface Plan {
  manifests: Array<ManifestRow & { repository: string }>
  links: Array<LinkRow & { repository: string }>
  blobs: Array<{ digest: string; size: number }>
}

/**
 * What a sweep with these cut-offs would delete now (orphan files aside). Read-only. The
 * reachability query runs once, at the top level (SQLite would evaluate it again for every row
 * of a correlated subquery); links and blobs are then matched against its result here.
 */
export async function plan(db: Executor, c: { untaggedBefore: string; before: string; claimsBefore: string }): Promise<Plan> {
  const keptCte = kept(c.untaggedBefore, isPostgres(db))
  const manifests = await sql<ManifestRow & { repository: string }>`
    WITH RECURSIVE ${keptCte}
    SELECT m.id, m.repository_id, rp.name AS repository, m.digest, m.size, m.subject_digest, coalesce(m.untagged_at, m.created_at) AS untagged_since
      FROM manifests m JOIN repositories rp ON rp.id = m.repository_id
     WHERE m.id NOT IN (SELECT id FROM kept)
     ORDER BY rp.name, m.digest`.execute(db)
  const keptRefs = await sql<{ repository_id: number; digest: string }>`
    WITH RECURSIVE ${keptCte}
    SELECT DISTINCT k.repository_id, r.digest FROM kept k JOIN manifest_references r ON r.manifest_id = k.id AND r.kind = 'blob'`.execute(
    db,
  )
  const referenced = new Set(keptRefs.rows.map((r) => `${r.repository_id} ${r.digest}`))
  const allLinks = await sql<LinkRow & { repository: string }>`
    SELECT rb.repository_id, rp.name AS repository, rb.digest, rb.created_at
      FROM repository_blobs rb JOIN repositories rp ON rp.id = rb.repository_id
     ORDER BY rp.name, rb.digest`.execute(db)
  // A link survives when a kept manifest of its repository references it, or while it is recent.
  const links = allLinks.rows.filter((l) => l.created_at < c.before && !referenced.has(`${l.repository_id} ${l.digest}`))
  const gone = new Set(links.map((l) => `${l.repository_id} ${l.digest}`))
  const held = new Set(allLinks.rows.filter((l) => !gone.has(`${l.repository_id} ${l.digest}`)).map((l) => l.digest))
  const blobs = await sql<{ digest: string; size: number }>`
    SELECT b.digest, b.size FROM blobs b
     WHERE b.created_at < ${c.before}
       AND NOT EXISTS (SELECT 1 FROM blob_claims bc WHERE bc.digest = b.digest AND bc.created_at >= ${c.claimsBefore})
     ORDER BY b.digest`.execute(db)
  return {
    manifests: manifests.rows.map((m) => ({ ...m, size: Number(m.size) })),
    links,
    blobs: blobs.rows.filter((b) => !held.has(b.digest)).map((b) => ({ digest: b.digest, size: Number(b.size) })),
  }
}

export async function repositoryNames(db: Executor, ids: number[]): Promise<Map<number, string>> {
  if (ids.length === 0) return new Map()
  const rows = await db.selectFrom('repositories').select(['id', 'name']).where('id', 'in', ids).execute()
  return new Map(rows.map((r) => [r.id, r.name]))
}

/** Takes the one collection lease (or renews it for `owner`); false when another collection holds it. */
export async function acquireLease(db: Executor, owner: string, now: string, expiresAt: string): Promise<boolean> {
  const r = await sql<{ owner: string }>`
    INSERT INTO gc_lease (name, owner, expires_at) VALUES ('gc', ${owner}, ${expiresAt})
    ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
     WHERE gc_lease.expires_at < ${now} OR gc_lease.owner = ${owner}
    RETURNING owner`.execute(db)
  return r.rows.length === 1
}

export async function releaseLease(db: Executor, owner: string): Promise<void> {
  await db.deleteFrom('gc_lease').where('name', '=', 'gc').where('owner', '=', owner).execute()
}
