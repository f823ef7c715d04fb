import { sql } from 'kysely'
import type { Executor } from '../metadata/schema.ts'

// Only this file builds the pull-through cache's SQL; content lives in the registry's tables.

/** Marks a repository as a cached copy (or refreshes its last pull). */
export async function recordPull(
  db: Executor,
  r: { repositoryId: number; namespaceId: number | null; upstream: string; upstreamName: string; at: string },
): Promise<void> {
  await db
    .insertInto('dependency_proxy_repositories')
    .values({
      repository_id: r.repositoryId,
      namespace_id: r.namespaceId,
      upstream: r.upstream,
      upstream_name: r.upstreamName,
      created_at: r.at,
      last_pulled_at: r.at,
    })
    .onConflict((oc) => oc.column('repository_id').doUpdateSet({ last_pulled_at: r.at }))
    .execute()
}

export async function tagCheckedAt(db: Executor, repositoryId: number, tag: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('dependency_proxy_tags')
    .select('checked_at')
    .where('repository_id', '=', repositoryId)
    .where('tag', '=', tag)
    .executeTakeFirst()
  return row?.checked_at
}

export async function setTagChecked(db: Executor, repositoryId: number, tag: string, at: string): Promise<void> {
  await db
    .insertInto('dependency_proxy_tags')
    .values({ repository_id: repositoryId, tag, checked_at: at })
    .onConflict((oc) => oc.columns(['repository_id', 'tag']).doUpdateSet({ checked_at: at }))
    .execute()
}

/** True when a manifest cached in this repository names the blob (so linking a stored copy is safe). */
export async function blobReferencedIn(db: Executor, repositoryId: number, digest: string): Promise<boolean> {
  const row = await db
    .selectFrom('manifest_references as r')
    .innerJoin('manifests as m', 'm.id', 'r.manifest_id')
    .select('r.digest')
    .where('m.repository_id', '=', repositoryId)
    .where('r.digest', '=', digest)
    .where('r.kind', '=', 'blob')
    .limit(1)
    .executeTakeFirst()
  return row !== undefined
}

/**
 * A copy of the same upstream image's manifest in another cache repository: by digest, or by tag
 * when that tag was confirmed by the upstream since `since`.
 */
export async function cachedElsewhere(
  db: Executor,
  w: { upstream: string; upstreamName: string; exclude: string; digest?: string; tag?: string; since?: string },
) {
  let q = db
    .selectFrom('dependency_proxy_repositories as d')
    .innerJoin('repositories as r', 'r.id', 'd.repository_id')
    .innerJoin('manifests as m', 'm.repository_id', 'd.repository_id')
    .select(['m.digest', 'm.media_type', 'm.content'])
    .where('d.upstream', '=', w.upstream)
    .where('d.upstream_name', '=', w.upstreamName)
    .where('r.name', '!=', w.exclude)
  if (w.digest !== undefined) q = q.where('m.digest', '=', w.digest)
  if (w.tag !== undefined) {
    q = q
      .innerJoin('tags as t', (j) => j.onRef('t.repository_id', '=', 'd.repository_id').onRef('t.manifest_id', '=', 'm.id'))
      .innerJoin('dependency_proxy_tags as c', (j) => j.onRef('c.repository_id', '=', 'd.repository_id').onRef('c.tag', '=', 't.name'))
      .where('t.name', '=', w.tag)
      .where('c.checked_at', '>=', w.since ?? '')
  }
  return q.limit(1).executeTakeFirst()
}

export interface CachedImage {
  repository_id: number
  name: string
  upstream: string
  upstream_name: string
  created_at: string
  last_pulled_at: string
}

/** A group's cached images (namespace null: the mirror's). */
export async function cachedImages(db: Executor, namespaceId: number | null): Promise<CachedImage[]> {
  let q = db
    .selectFrom('dependency_proxy_repositories as d')
    .innerJoin('repositories as r', 'r.id', 'd.repository_id')
    .select(['d.repository_id', 'r.name', 'd.upstream', 'd.upstream_name', 'd.created_at', 'd.last_pulled_at'])
  q = namespaceId === null ? q.where('d.namespace_id', 'is', null) : q.where('d.namespace_id', '=', namespaceId)
  return q.orderBy('r.name').execute()
}

/** Cached repositories not pulled since `before`. */
export async function staleRepositoryIds(db: Executor, before: string): Promise<number[]> {
  const rows = await db.selectFrom('dependency_proxy_repositories').select('repository_id').where('last_pulled_at', '<', before).execute()
  return rows.map((r) => r.repository_id)
}

/** Bytes held by these repositories: distinct linked blobs plus their manifests. */
export async function bytesOf(db: Executor, repositoryIds: number[]): Promise<number> {
  if (repositoryIds.length === 0) return 0
  const ids = sql.join(repositoryIds.map((id) => sql`${id}`))
  const blobs = await sql<{ n: number | null }>`
    SELECT SUM(b.size) AS n FROM blobs b WHERE b.digest IN (SELECT DISTINCT rb.digest FROM repository_blobs rb WHERE rb.repository_id IN (${ids}))`.execute(
    db,
  )
  const manifests = await sql<{ n: number | null }>`SELECT SUM(size) AS n FROM manifests WHERE repository_id IN (${ids})`.execute(db)
  return Number(blobs.rows[0]?.n ?? 0) + Number(manifests.rows[0]?.n ?? 0)
}

export async function tagsOf(db: Executor, repositoryId: number): Promise<Array<{ name: string; digest: string }>> {
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['t.name', 'm.digest'])
    .where('t.repository_id', '=', repositoryId)
    .orderBy('t.name')
    .execute()
}

/** Digests linked in these repositories (the candidates to free once they are gone). */
export async function linkedDigests(db: Executor, repositoryIds: number[]): Promise<string[]> {
  if (repositoryIds.length === 0) return []
  const rows = await db.selectFrom('repository_blobs').select('digest').distinct().where('repository_id', 'in', repositoryIds).execute()
  return rows.map((r) => r.digest)
}

/** Deletes repositories with their manifests, tags, links and cache rows (ON DELETE CASCADE). */
export async function deleteRepositories(db: Executor, repositoryIds: number[]): Promise<void> {
  if (repositoryIds.length === 0) return
  await db.deleteFrom('repositories').where('id', 'in', repositoryIds).execute()
}
