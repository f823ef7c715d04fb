import { sql, type RawBuilder } from 'kysely'
import { isPostgres, nowIso } from '../metadata/db.ts'
import type { Insertable } from 'kysely'
import type {
  ContainerExpirationPoliciesTable,
  Executor,
  Manifest,
  RegistryProjectQuotasTable,
  RegistryRepositoryProtectionRulesTable,
  RegistryRepositoryRule,
  RegistryTagProtectionRulesTable,
  RegistryTagPushesTable,
  RegistryTagRule,
  Upload,
} from '../metadata/schema.ts'

// Only this file builds registry SQL. Every function takes the executor first so callers can run it in a transaction.

export async function findRepositoryId(db: Executor, name: string): Promise<number | undefined> {
  const row = await db.selectFrom('repositories').select('id').where('name', '=', name).executeTakeFirst()
  return row?.id
}

export async function ensureRepository(db: Executor, name: string): Promise<number> {
  // Looked up first: every push of a blob lands here twice, and a write costs more than a read.
  const id = await findRepositoryId(db, name)
  if (id !== undefined) return id
  await db
    .insertInto('repositories')
    .values({ name, created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute()
  return (await findRepositoryId(db, name))!
}

/** Size of a blob if it is linked into the named repository, else undefined. */
export async function linkedBlobSize(db: Executor, name: string, digest: string): Promise<number | undefined> {
  const row = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select('b.size')
    .where('r.name', '=', name)
    .where('rb.digest', '=', digest)
    .executeTakeFirst()
  return row === undefined ? undefined : Number(row.size)
}

/** A blob's link into the named repository (with the blob's size), if there is one. */
export async function linkedBlob(
  db: Executor,
  name: string,
  digest: string,
): Promise<{ repositoryId: number; size: number; linkedAt: string } | undefined> {
  const row = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['rb.repository_id', 'b.size', 'rb.created_at'])
    .where('r.name', '=', name)
    .where('rb.digest', '=', digest)
    .executeTakeFirst()
  return row === undefined ? undefined : { repositoryId: row.repository_id, size: Number(row.size), linkedAt: row.created_at }
}

/**
 * Restarts a link's grace if it is still there and older than `olderThan` (ISO); false when it is
 * not (garbage collection deleted it, or another request renewed it first).
 */
export async function renewLink(db: Executor, repositoryId: number, digest: string, olderThan: string): Promise<boolean> {
  const r = await db
    .updateTable('repository_blobs')
    .set({ created_at: nowIso() })
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .where('created_at', '<', olderThan)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

export async function linkedBlobSizes(db: Executor, repositoryId: number, digests: string[]): Promise<Map<string, number>> {
  if (digests.length === 0) return new Map()
  const rows = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['b.digest', 'b.size'])
    .where('rb.repository_id', '=', repositoryId)
    .where('rb.digest', 'in', digests)
    .execute()
  return new Map(rows.map((r) => [r.digest, Number(r.size)]))
}

/**
 * The repository's id (undefined when it does not exist) and the sizes of those of `digests` linked
 * into it: linkedBlobSizes and the id it needs in one statement (a manifest PUT's first in its transaction).
 */
export async function repositoryBlobSizes(
  db: Executor,
  name: string,
  digests: string[],
): Promise<{ repositoryId: number | undefined; sizes: Map<string, number> }> {
  if (digests.length === 0) return { repositoryId: await findRepositoryId(db, name), sizes: new Map() }
  const rows = await db
    .selectFrom('repositories as r')
    .leftJoin('repository_blobs as rb', (j) => j.onRef('rb.repository_id', '=', 'r.id').on('rb.digest', 'in', digests))
    .leftJoin('blobs as b', 'b.digest', 'rb.digest')
    .select(['r.id', 'b.digest', 'b.size'])
    .where('r.name', '=', name)
    .execute()
  const sizes = new Map<string, number>()
  for (const r of rows) if (r.digest !== null && r.size !== null) sizes.set(r.digest, Number(r.size))
  return { repositoryId: rows[0]?.id, sizes }
}

export async function insertBlob(db: Executor, digest: string, size: number): Promise<void> {
  await db
    .insertInto('blobs')
    .values({ digest, size, created_at: nowIso() })
    .onConflict((oc) => oc.column('digest').doNothing())
    .execute()
}

export async function blobSize(db: Executor, digest: string): Promise<number | undefined> {
  const row = await db.selectFrom('blobs').select('size').where('digest', '=', digest).executeTakeFirst()
  return row === undefined ? undefined : Number(row.size)
}

/** Links a blob into a repository; linking it again restarts its grace period (GC removes links no manifest needs only once it is over). */
export async function linkBlob(db: Executor, repositoryId: number, digest: string): Promise<void> {
  const now = nowIso()
  await db
    .insertInto('repository_blobs')
    .values({ repository_id: repositoryId, digest, created_at: now })
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doUpdateSet({ created_at: now }))
    .execute()
}

/**
 * Up to `limit` repositories the blob is linked in, for automatic cross-mount: `near` itself first,
 * then those sharing its first two segments (usually its project, so likely readable too), then by name.
 */
export async function repositoriesHoldingBlob(db: Executor, digest: string, near: string, limit: number): Promise<string[]> {
  const project = near.split('/').slice(0, 2).join('/')
  const rows = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .select('r.name')
    .where('rb.digest', '=', digest)
    // A byte-order range instead of LIKE, as in repositoriesUnder.
    .orderBy(
      sql`case when r.name = ${near} then 0 when r.name = ${project} or (r.name > ${`${project}/`} and r.name < ${`${project}0`}) then 1 else 2 end`,
    )
    .orderBy('r.name')
    .limit(limit)
    .execute()
  return rows.map((r) => r.name)
}

// Blob claims and deletions (src/gc/ explains the protocol). Each step is one statement or one
// transaction that starts with a write, so its checks and its change are atomic across processes.

/** Claims a digest for a push about to put its file in place; false while a deletion of it is under way. */
export async function claimBlob(db: Executor, id: string, digest: string): Promise<boolean> {
  const r =
    await sql`INSERT INTO blob_claims (id, digest, created_at) SELECT ${id}, ${digest}, ${nowIso()} WHERE NOT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = ${digest})`.execute(
      db,
    )
  return Number(r.numAffectedRows ?? 0) > 0
}

export async function releaseClaim(db: Executor, id: string): Promise<void> {
  await db.deleteFrom('blob_claims').where('id', '=', id).execute()
}

export interface BlobCandidates {
  owner: string
  /** Blob rows created before this (ISO) only. */
  before: string
  /** Claims made before this are a crashed push's and no longer protect their digest. */
  claimsBefore: string
  /** Only these digests (a cache purge); every unreferenced blob otherwise. */
  digests?: readonly string[]
  limit: number
}

/**
 * Marks for deletion (owned by `c.owner`) up to `c.limit` blobs no repository links and no live
 * claim holds; run it in the transaction that then deletes their rows (`deleteMarkedBlobRows`).
 */
export async function markUnreferencedBlobs(db: Executor, c: BlobCandidates): Promise<void> {
  const only = c.digests ? sql`AND b.digest IN (${sql.join(c.digests.map((d) => sql`${d}`))})` : sql``
  await sql`
    INSERT INTO blob_deletions (digest, owner, created_at)
    SELECT b.digest, ${c.owner}, ${nowIso()} FROM blobs b
     WHERE b.created_at < ${c.before} ${only}
       AND NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.digest = b.digest)
       AND NOT EXISTS (SELECT 1 FROM blob_claims bc WHERE bc.digest = b.digest AND bc.created_at >= ${c.claimsBefore})
       AND NOT EXISTS (SELECT 1 FROM blob_deletions d WHERE d.digest = b.digest)
     LIMIT ${c.limit}`.execute(db)
}

/** Deletes the rows of the blobs `owner` marked; returns them. */
export async function deleteMarkedBlobRows(db: Executor, owner: string): Promise<Array<{ digest: string; size: number }>> {
  const rows = await sql<{
    digest: string
    size: number
  }>`DELETE FROM blobs WHERE digest IN (SELECT digest FROM blob_deletions WHERE owner = ${owner}) RETURNING digest, size`.execute(db)
  return rows.rows.map((r) => ({ digest: r.digest, size: Number(r.size) }))
}

/** Marks a file with no blob row (left by a crash) for deletion, unless a push claimed or committed it meanwhile. */
export async function markOrphanFile(db: Executor, owner: string, digest: string, claimsBefore: string): Promise<boolean> {
  const r = await sql`
    INSERT INTO blob_deletions (digest, owner, created_at) SELECT ${digest}, ${owner}, ${nowIso()}
     WHERE NOT EXISTS (SELECT 1 FROM blobs WHERE digest = ${digest})
       AND NOT EXISTS (SELECT 1 FROM blob_claims WHERE digest = ${digest} AND created_at >= ${claimsBefore})
       AND NOT EXISTS (SELECT 1 FROM blob_deletions WHERE digest = ${digest})`.execute(db)
  return Number(r.numAffectedRows ?? 0) > 0
}

/** The files are gone: claims of these digests may go ahead. */
export async function finishBlobDeletions(db: Executor, owner: string, digests: readonly string[]): Promise<void> {
  if (digests.length === 0) return
  await db.deleteFrom('blob_deletions').where('owner', '=', owner).where('digest', 'in', digests).execute()
}

/** Takes over deletions whose owner stopped (a crash) before `before`; returns the digests now owned by `owner`. */
export async function takeOverStaleDeletions(db: Executor, owner: string, before: string): Promise<string[]> {
  const rows = await db
    .updateTable('blob_deletions')
    .set({ owner, created_at: nowIso() })
    .where('created_at', '<', before)
    .returning('digest')
    .execute()
  return rows.map((r) => r.digest)
}

export async function deleteStaleClaims(db: Executor, before: string): Promise<number> {
  const r = await db.deleteFrom('blob_claims').where('created_at', '<', before).executeTakeFirst()
  return Number(r.numDeletedRows)
}

export async function blobDigestsAmong(db: Executor, digests: string[]): Promise<Set<string>> {
  if (digests.length === 0) return new Set()
  const rows = await db.selectFrom('blobs').select('digest').where('digest', 'in', digests).execute()
  return new Set(rows.map((r) => r.digest))
}

export async function unlinkBlob(db: Executor, name: string, digest: string): Promise<boolean> {
  const repositoryId = await findRepositoryId(db, name)
  if (repositoryId === undefined) return false
  const r = await db
    .deleteFrom('repository_blobs')
    .where('repository_id', '=', repositoryId)
    .where('digest', '=', digest)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

export async function manifestByTag(db: Executor, name: string, tag: string): Promise<Manifest | undefined> {
  return db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .selectAll('m')
    .where('r.name', '=', name)
    .where('t.name', '=', tag)
    .executeTakeFirst()
}

export async function manifestByDigest(db: Executor, name: string, digest: string): Promise<Manifest | undefined> {
  return db
    .selectFrom('manifests as m')
    .innerJoin('repositories as r', 'r.id', 'm.repository_id')
    .selectAll('m')
    .where('r.name', '=', name)
    .where('m.digest', '=', digest)
    .executeTakeFirst()
}

export async function existingManifestDigests(db: Executor, repositoryId: number, digests: string[]): Promise<Set<string>> {
  if (digests.length === 0) return new Set()
  const rows = await db
    .selectFrom('manifests')
    .select('digest')
    .where('repository_id', '=', repositoryId)
    .where('digest', 'in', digests)
    .execute()
  return new Set(rows.map((r) => r.digest))
}

export interface ManifestRecord {
  repositoryId: number
  digest: string
  mediaType: string
  artifactType: string | null
  size: number
  configDigest: string | null
  subjectDigest: string | null
  annotations: string | null
  content: Uint8Array
  references: Array<{ digest: string; kind: 'blob' | 'manifest' }>
}

/** Inserts the manifest if this repository does not hold it yet; returns its id either way. */
export async function upsertManifest(db: Executor, m: ManifestRecord): Promise<number> {
  // Inserted first: a push's manifest is usually new, and one statement is one round trip on PostgreSQL.
  const inserted = await db
    .insertInto('manifests')
    .values({
      repository_id: m.repositoryId,
      digest: m.digest,
      media_type: m.mediaType,
      artifact_type: m.artifactType,
      size: m.size,
      config_digest: m.configDigest,
      subject_digest: m.subjectDigest,
      annotations: m.annotations,
      content: m.content,
      created_at: nowIso(),
    })
    .onConflict((oc) => oc.columns(['repository_id', 'digest']).doNothing())
    .returning('id')
    .executeTakeFirst()
  if (!inserted) {
    // Pushed again: an untagged manifest's delay starts over, as for a new push.
    const existing = await db
      .updateTable('manifests')
      .set({ untagged_at: nowIso() })
      .where('repository_id', '=', m.repositoryId)
      .where('digest', '=', m.digest)
      .returning('id')
      .executeTakeFirstOrThrow()
    return existing.id
  }
  const refs = uniqueReferences(m.references)
  if (refs.length > 0) {
    await db
      .insertInto('manifest_references')
      .values(refs.map((r) => ({ manifest_id: inserted.id, digest: r.digest, kind: r.kind })))
      .execute()
  }
  return inserted.id
}

export async function upsertTag(db: Executor, repositoryId: number, tag: string, manifestId: number): Promise<void> {
  const now = nowIso()
  // The manifest the tag moves away from may now be untagged: its delay before GC starts now.
  await db
    .updateTable('manifests')
    .set({ untagged_at: now })
    .where('id', '=', (eb) => eb.selectFrom('tags').select('manifest_id').where('repository_id', '=', repositoryId).where('name', '=', tag))
    .where('id', '!=', manifestId)
    .execute()
  await db
    .insertInto('tags')
    .values({ repository_id: repositoryId, name: tag, manifest_id: manifestId, updated_at: now })
    .onConflict((oc) => oc.columns(['repository_id', 'name']).doUpdateSet({ manifest_id: manifestId, updated_at: now }))
    .execute()
}

/**
 * A push's writes: the manifest (upsertManifest) and, when `push` is given, the tag it names moved
 * onto it (upsertTag) and that push in the tag's history (insertTagPush); returns the manifest's id.
 * On PostgreSQL, where each statement is a round trip, a new manifest takes one statement (a
 * data-modifying CTE) and a manifest pushed again two; SQLite has no such CTEs and runs them one by one.
 */
export async function storeManifest(db: Executor, m: ManifestRecord, push?: Insertable<RegistryTagPushesTable>): Promise<number> {
  if (!isPostgres(db)) {
    const id = await upsertManifest(db, m)
    if (push) {
      await upsertTag(db, m.repositoryId, push.tag, id)
      await insertTagPush(db, push)
    }
    return id
  }
  const now = nowIso()
  const refs = uniqueReferences(m.references)
  const inserted = await storeStatement(
    sql`insert into manifests (repository_id, digest, media_type, artifact_type, size, config_digest, subject_digest, annotations, content, created_at)
      values (${m.repositoryId}, ${m.digest}, ${m.mediaType}, ${m.artifactType}, ${m.size}, ${m.configDigest}, ${m.subjectDigest}, ${m.annotations}, ${m.content}, ${now})
      on conflict (repository_id, digest) do nothing returning id`,
    refs.length === 0
      ? undefined
      : sql`insert into manifest_references (manifest_id, digest, kind)
      select m.id, r.digest, r.kind from m, unnest(${refs.map((r) => r.digest)}::text[], ${refs.map((r) => r.kind)}::text[]) as r (digest, kind)`,
    push,
    now,
  ).execute(db)
  if (inserted.rows[0]) return inserted.rows[0].id
  // Pushed again: an untagged manifest's delay starts over, as for a new push (upsertManifest).
  const again = await storeStatement(
    sql`update manifests set untagged_at = ${now} where repository_id = ${m.repositoryId} and digest = ${m.digest} returning id`,
    undefined,
    push,
    now,
  ).execute(db)
  return again.rows[0]!.id
}

/**
 * `with m as (<manifest>), ...` then the references and tag writes of storeManifest, each taking
 * the manifest's id from m (nothing when m yields no row); the statement returns m's id.
 */
function storeStatement(
  manifest: RawBuilder<unknown>,
  references: RawBuilder<unknown> | undefined,
  push: Insertable<RegistryTagPushesTable> | undefined,
  now: string,
) {
  const parts = [sql`m as (${manifest})`]
  if (references) parts.push(sql`refs as (${references})`)
  if (push) {
    const p = push
    parts.push(
      // The manifest the tag moves away from may now be untagged: its delay before GC starts now.
      // (All parts read the tags as they were before the statement.)
      sql`untagged as (update manifests set untagged_at = ${now}
        where id = (select manifest_id from tags where repository_id = ${p.repository_id} and name = ${p.tag}) and id <> (select id from m))`,
      sql`tagged as (insert into tags (repository_id, name, manifest_id, updated_at) select ${p.repository_id}, ${p.tag}, m.id, ${now} from m
        on conflict (repository_id, name) do update set manifest_id = excluded.manifest_id, updated_at = excluded.updated_at)`,
      sql`pushed as (insert into registry_tag_pushes (repository_id, tag, digest, actor, job_id, pipeline_id, ref, ref_is_tag, pushed_at)
        select ${p.repository_id}, ${p.tag}, ${p.digest}, ${p.actor ?? null}, ${p.job_id ?? null}, ${p.pipeline_id ?? null}, ${p.ref ?? null}, ${p.ref_is_tag ?? null}, ${p.pushed_at} from m)`,
    )
  }
  return sql<{ id: number }>`with ${sql.join(parts)} select id from m`
}

/** A manifest's references, each digest once (a config may also be a layer). */
function uniqueReferences(references: ManifestRecord['references']): ManifestRecord['references'] {
  const seen = new Set<string>()
  return references.filter((r) => !seen.has(r.digest) && seen.add(r.digest))
}

/** Removes exactly one tag; other tags on the same manifest are untouched. */
export async function deleteTag(db: Executor, name: string, tag: string): Promise<boolean> {
  const repositoryId = await findRepositoryId(db, name)
  if (repositoryId === undefined) return false
  return deleteTagById(db, repositoryId, tag)
}

/** Removes a manifest from a repository; its tags and reference edges go with it (ON DELETE CASCADE). */
export async function deleteManifest(db: Executor, name: string, digest: string): Promise<boolean> {
  const repositoryId = await findRepositoryId(db, name)
  if (repositoryId === undefined) return false
  const r = await db.deleteFrom('manifests').where('repository_id', '=', repositoryId).where('digest', '=', digest).executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

export async function listTags(db: Executor, repositoryId: number, last: string | undefined, limit: number): Promise<string[]> {
  let q = db.selectFrom('tags').select('name').where('repository_id', '=', repositoryId)
  if (last !== undefined) q = q.where('name', '>', last)
  const rows = await q.orderBy('name').limit(limit).execute()
  return rows.map((r) => r.name)
}

export async function listRepositories(db: Executor, last: string | undefined, limit: number): Promise<string[]> {
  // A repository appears once it holds a manifest, not when an upload merely started in it.
  let q = db
    .selectFrom('repositories as r')
    .select('name')
    .where((eb) => eb.exists(eb.selectFrom('manifests as m').select('m.id').whereRef('m.repository_id', '=', 'r.id')))
  if (last !== undefined) q = q.where('name', '>', last)
  const rows = await q.orderBy('name').limit(limit).execute()
  return rows.map((r) => r.name)
}

export async function referrers(db: Executor, repositoryId: number, subject: string, artifactType: string | undefined) {
  let q = db
    .selectFrom('manifests')
    .select(['digest', 'media_type', 'size', 'artifact_type', 'annotations'])
    .where('repository_id', '=', repositoryId)
    .where('subject_digest', '=', subject)
  if (artifactType !== undefined) q = q.where('artifact_type', '=', artifactType)
  return q.orderBy('created_at').orderBy('digest').execute()
}

// Upload sessions

export async function insertUpload(db: Executor, id: string, repositoryId: number): Promise<void> {
  const now = nowIso()
  await db.insertInto('uploads').values({ id, repository_id: repositoryId, size: 0, created_at: now, updated_at: now }).execute()
}

export async function findUpload(db: Executor, name: string, id: string): Promise<Upload | undefined> {
  return db
    .selectFrom('uploads as u')
    .innerJoin('repositories as r', 'r.id', 'u.repository_id')
    .selectAll('u')
    .where('u.id', '=', id)
    .where('r.name', '=', name)
    .executeTakeFirst()
}

export async function deleteUpload(db: Executor, id: string): Promise<void> {
  await db.deleteFrom('uploads').where('id', '=', id).execute()
}

export async function expiredUploads(db: Executor, before: string): Promise<string[]> {
  const rows = await db.selectFrom('uploads').select('id').where('updated_at', '<', before).execute()
  return rows.map((r) => r.id)
}

export async function uploadIdsAmong(db: Executor, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db.selectFrom('uploads').select('id').where('id', 'in', ids).execute()
  return new Set(rows.map((r) => r.id))
}

// Upload claims (src/registry/uploads.ts): one request at a time writes a session's temp file,
// whichever node it reached. Each step is one conditional statement, atomic across nodes.

/**
 * Claims a session for `writer` until `until`, if it is still as read (`size`, last `previous`
 * writer) and no live claim holds it; false otherwise (another request got it first).
 */
export async function claimUpload(
  db: Executor,
  c: { id: string; size: number; previous: string; writer: string; until: string; now: string },
): Promise<boolean> {
  const r = await db
    .updateTable('uploads')
    .set({ writer: c.writer, writer_until: c.until, updated_at: c.now })
    .where('id', '=', c.id)
    .where('size', '=', c.size)
    .where('writer', '=', c.previous)
    .where((eb) => eb.or([eb('writer_until', 'is', null), eb('writer_until', '<', c.now)]))
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** Extends a claim (and the session's idle time); false when `writer` no longer holds it. */
export async function renewUploadClaim(db: Executor, id: string, writer: string, until: string): Promise<boolean> {
  const r = await db
    .updateTable('uploads')
    .set({ writer_until: until, updated_at: nowIso() })
    .where('id', '=', id)
    .where('writer', '=', writer)
    .where('writer_until', 'is not', null)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** Ends a claim, recording the bytes the session now holds; false when `writer` no longer held it. */
export async function releaseUploadClaim(db: Executor, id: string, writer: string, size: number): Promise<boolean> {
  const r = await db
    .updateTable('uploads')
    .set({ size, writer_until: null, updated_at: nowIso() })
    .where('id', '=', id)
    .where('writer', '=', writer)
    .where('writer_until', 'is not', null)
    .executeTakeFirst()
  return Number(r.numUpdatedRows) > 0
}

/** Deletes a session idle since before `before` that no live claim holds; false if it was touched or claimed meanwhile. */
export async function deleteIdleUpload(db: Executor, id: string, before: string, now: string): Promise<boolean> {
  const r = await db
    .deleteFrom('uploads')
    .where('id', '=', id)
    .where('updated_at', '<', before)
    .where((eb) => eb.or([eb('writer_until', 'is', null), eb('writer_until', '<', now)]))
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

// REST API (projects/:id/registry/repositories): repositories below a project path.

/** Repositories named exactly `path` or below `path/`, holding at least one manifest. */
/** A page of the repositories at or below a project path (holding a manifest), by name, and their total. */
export async function pageRepositoriesUnder(db: Executor, path: string, limit: number, offset: number) {
  const lower = path.toLowerCase()
  const base = db
    .selectFrom('repositories as r')
    // A byte-order range instead of LIKE: '_' is legal in names and LIKE ignores case in SQLite. '0' follows '/'.
    .where((eb) => eb.or([eb('r.name', '=', lower), eb.and([eb('r.name', '>', `${lower}/`), eb('r.name', '<', `${lower}0`)])]))
    .where((eb) => eb.exists(eb.selectFrom('manifests as m').select('m.id').whereRef('m.repository_id', '=', 'r.id')))
  const rows = await base
    .select(['r.id', 'r.name', 'r.created_at'])
    .select((eb) =>
      eb
        .selectFrom('tags as t')
        .select((e2) => e2.fn.countAll<number>().as('n'))
        .whereRef('t.repository_id', '=', 'r.id')
        .as('tags_count'),
    )
    .orderBy('r.name')
    .limit(limit)
    .offset(offset)
    .execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/** The tag names of each repository (by name), in one query. */
export async function tagsOf(db: Executor, repositoryIds: number[]): Promise<Array<{ repository_id: number; name: string }>> {
  if (repositoryIds.length === 0) return []
  return db
    .selectFrom('tags')
    .select(['repository_id', 'name'])
    .where('repository_id', 'in', repositoryIds)
    .orderBy('repository_id')
    .orderBy('name')
    .execute()
}

export async function findRepository(db: Executor, id: number) {
  return db.selectFrom('repositories').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function countTags(db: Executor, repositoryId: number): Promise<number> {
  const r = await db
    .selectFrom('tags')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('repository_id', '=', repositoryId)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function tagPage(db: Executor, repositoryId: number, limit: number, offset: number): Promise<string[]> {
  const rows = await db
    .selectFrom('tags')
    .select('name')
    .where('repository_id', '=', repositoryId)
    .orderBy('name')
    .limit(limit)
    .offset(offset)
    .execute()
  return rows.map((r) => r.name)
}

export async function tagWithManifest(db: Executor, repositoryId: number, tag: string) {
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select([
      't.name',
      't.updated_at',
      'm.id as manifest_id',
      'm.digest',
      'm.media_type',
      'm.size',
      'm.config_digest',
      'm.created_at',
      'm.content',
    ])
    .where('t.repository_id', '=', repositoryId)
    .where('t.name', '=', tag)
    .executeTakeFirst()
}

/** Bytes of a manifest and everything it references, following index children one level. */
export async function manifestTotalSize(db: Executor, repositoryId: number, manifestId: number): Promise<number> {
  const blobs = await db
    .selectFrom('manifest_references as r')
    .innerJoin('blobs as b', 'b.digest', 'r.digest')
    .select((eb) => eb.fn.sum<number>('b.size').as('n'))
    .where('r.manifest_id', '=', manifestId)
    .where('r.kind', '=', 'blob')
    .executeTakeFirst()
  const children = await db
    .selectFrom('manifest_references as r')
    .innerJoin('manifests as m', (j) => j.onRef('m.digest', '=', 'r.digest').on('m.repository_id', '=', repositoryId))
    .innerJoin('manifest_references as cr', 'cr.manifest_id', 'm.id')
    .innerJoin('blobs as b', 'b.digest', 'cr.digest')
    .select((eb) => eb.fn.sum<number>('b.size').as('n'))
    .where('r.manifest_id', '=', manifestId)
    .where('r.kind', '=', 'manifest')
    .where('cr.kind', '=', 'blob')
    .executeTakeFirst()
  return Number(blobs?.n ?? 0) + Number(children?.n ?? 0)
}

/**
 * Per repository: the total size of the distinct blobs (config and layers) referenced by its tagged
 * manifests, index children's blobs included; each blob counted once (UNION removes duplicates).
 */
export async function repositorySizes(db: Executor, repositoryIds: number[]): Promise<Map<number, number>> {
  if (repositoryIds.length === 0) return new Map()
  const ids = sql.join(repositoryIds.map((id) => sql`${id}`))
  const rows = await sql<{ repository_id: number; n: number | null }>`
    SELECT u.repository_id AS repository_id, SUM(u.size) AS n FROM (
      SELECT t.repository_id AS repository_id, b.digest AS digest, b.size AS size
        FROM tags t
        JOIN manifest_references r ON r.manifest_id = t.manifest_id AND r.kind = 'blob'
        JOIN blobs b ON b.digest = r.digest
        WHERE t.repository_id IN (${ids})
      UNION
      SELECT t.repository_id, b.digest, b.size
        FROM tags t
        JOIN manifest_references r ON r.manifest_id = t.manifest_id AND r.kind = 'manifest'
        JOIN manifests m ON m.digest = r.digest AND m.repository_id = t.repository_id
        JOIN manifest_references cr ON cr.manifest_id = m.id AND cr.kind = 'blob'
        JOIN blobs b ON b.digest = cr.digest
        WHERE t.repository_id IN (${ids})
    ) u GROUP BY u.repository_id`.execute(db)
  return new Map(rows.rows.map((r) => [Number(r.repository_id), Number(r.n ?? 0)]))
}

export async function deleteTagById(db: Executor, repositoryId: number, tag: string): Promise<boolean> {
  const r = await db
    .deleteFrom('tags')
    .where('repository_id', '=', repositoryId)
    .where('name', '=', tag)
    .returning('manifest_id')
    .executeTakeFirst()
  if (!r) return false
  // Its manifest's delay before GC (when no other tag holds it) starts now.
  await db.updateTable('manifests').set({ untagged_at: nowIso() }).where('id', '=', r.manifest_id).execute()
  return true
}

/** Every tag of a repository with its manifest's creation time (the order GitLab's cleanup keeps by). */
export async function tagAges(db: Executor, repositoryId: number): Promise<Array<{ name: string; createdAt: string }>> {
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select(['t.name', 'm.created_at as createdAt'])
    .where('t.repository_id', '=', repositoryId)
    .execute()
}

/** Deletes these tags (in statements of up to 500 names); their manifests' GC delay starts now. */
export async function deleteTagsByName(db: Executor, repositoryId: number, names: readonly string[]): Promise<number> {
  let n = 0
  for (let i = 0; i < names.length; i += 500) {
    const rows = await db
      .deleteFrom('tags')
      .where('repository_id', '=', repositoryId)
      .where('name', 'in', names.slice(i, i + 500))
      .returning('manifest_id')
      .execute()
    const ids = [...new Set(rows.map((r) => r.manifest_id))]
    if (ids.length > 0) await db.updateTable('manifests').set({ untagged_at: nowIso() }).where('id', 'in', ids).execute()
    n += rows.length
  }
  return n
}

/** Deletes a repository with its manifests, tags, blob links and uploads (ON DELETE CASCADE); blobs stay for GC. */
export async function deleteRepositoryById(db: Executor, id: number): Promise<boolean> {
  const r = await db.deleteFrom('repositories').where('id', '=', id).executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

/** Deletes every repository named `path` or below `path/` (a project or namespace being deleted). */
export async function deleteRepositoriesUnder(db: Executor, path: string): Promise<void> {
  const lower = path.toLowerCase()
  await db
    .deleteFrom('repositories')
    .where((eb) => eb.or([eb('name', '=', lower), eb.and([eb('name', '>', `${lower}/`), eb('name', '<', `${lower}0`)])]))
    .execute()
}

// Cleanup policies (cleanup-policies.ts)

export async function cleanupPolicy(db: Executor, projectId: number) {
  return db.selectFrom('container_expiration_policies').selectAll().where('project_id', '=', projectId).executeTakeFirst()
}

export async function upsertCleanupPolicy(db: Executor, row: Insertable<ContainerExpirationPoliciesTable>): Promise<void> {
  const { project_id: _id, ...set } = row
  await db
    .insertInto('container_expiration_policies')
    .values(row)
    .onConflict((oc) => oc.column('project_id').doUpdateSet(set))
    .execute()
}

/** Enabled policies due by `now`, with their project's registry path. */
export async function dueCleanupPolicies(db: Executor, now: string) {
  return db
    .selectFrom('container_expiration_policies as c')
    .innerJoin('projects as p', 'p.id', 'c.project_id')
    .select([
      'c.project_id',
      'c.cadence',
      'c.keep_n',
      'c.older_than',
      'c.name_regex',
      'c.name_regex_keep',
      'c.remove_deleted_branch_tags',
      'c.keep_protected_branch_latest',
      'p.full_path_lower',
    ])
    .where('c.enabled', '=', 1)
    .where('c.next_run_at', '<=', now)
    .execute()
}

export async function setCleanupPolicyNextRun(db: Executor, projectId: number, at: string): Promise<void> {
  await db.updateTable('container_expiration_policies').set({ next_run_at: at }).where('project_id', '=', projectId).execute()
}

/** Repositories (id and name) named `path` or below `path/`, by name. */
export async function repositoriesUnder(db: Executor, path: string): Promise<Array<{ id: number; name: string }>> {
  return (
    db
      .selectFrom('repositories')
      .select(['id', 'name'])
      // A byte-order range instead of LIKE, as in pageRepositoriesUnder.
      .where((eb) => eb.or([eb('name', '=', path), eb.and([eb('name', '>', `${path}/`), eb('name', '<', `${path}0`)])]))
      .orderBy('name')
      .execute()
  )
}

// Tag protection rules (tag-protection.ts)

/** The project a repository belongs to: the longest project path the name is or lies under (a subquery of its id). */
function ownerProjectId(db: Executor, name: string) {
  return db
    .selectFrom('projects as p')
    .select('p.id')
    .where((eb) =>
      eb.or([
        eb('p.full_path_lower', '=', name),
        // The byte-order range of pageRepositoriesUnder, turned around: the name lies under the project path.
        eb(sql<string>`${name}`, '>', sql<string>`p.full_path_lower || '/'`).and(
          sql<string>`${name}`,
          '<',
          sql<string>`p.full_path_lower || '0'`,
        ),
      ]),
    )
    .orderBy(sql`length(p.full_path_lower)`, 'desc')
    .limit(1)
}

/**
 * What a push into `name` is checked against, of the project it belongs to: its repository and tag
 * protection rules (by id) and its quota when it has one. One statement, where a manifest PUT read
 * them in three (each a round trip on PostgreSQL, each resolving the project again).
 */
export interface PushPolicy {
  repositoryRules: RegistryRepositoryRule[]
  tagRules: RegistryTagRule[]
  quota: { full_path_lower: string; hard_limit_bytes: number | null; soft_limit_bytes: number | null } | undefined
}

export async function pushPolicy(db: Executor, name: string): Promise<PushPolicy> {
  // One row per rule or quota, told apart by `kind`; the columns a kind lacks are null (typed in the
  // first part: PostgreSQL would take two untyped nulls for text before meeting the quota's bigint).
  // Plain SQL: Kysely's builder took ten times the statement's own time to build this union. The
  // project is resolved in each part (ownerProjectId's condition): SQLite materializes a CTE used
  // more than once, at ten times the cost.
  const owner = sql`(select p.id from projects p
    where p.full_path_lower = ${name} or (${name} > p.full_path_lower || '/' and ${name} < p.full_path_lower || '0')
    order by length(p.full_path_lower) desc limit 1)`
  const { rows } = await sql<{
    kind: 'repository' | 'tag' | 'quota'
    id: number
    project_id: number
    pattern: string
    push_level: number | null
    delete_level: number | null
    created_at: string | null
    hard: number | string | null
    soft: number | string | null
  }>`select 'repository' as kind, id, project_id, repository_path_pattern as pattern, push_level, delete_level, created_at,
      cast(null as bigint) as hard, cast(null as bigint) as soft
    from registry_repository_protection_rules where project_id = ${owner}
    union all
    select 'tag', id, project_id, tag_name_pattern, push_level, delete_level, created_at, null, null
    from registry_tag_protection_rules where project_id = ${owner}
    union all
    select 'quota', p.id, p.id, p.full_path_lower, null, null, null, q.hard_limit_bytes, q.soft_limit_bytes
    from registry_project_quotas q join projects p on p.id = q.project_id where q.project_id = ${owner}
    order by id`.execute(db)
  const out: PushPolicy = { repositoryRules: [], tagRules: [], quota: undefined }
  for (const r of rows) {
    const rule = { id: r.id, project_id: r.project_id, push_level: r.push_level, delete_level: r.delete_level, created_at: r.created_at! }
    if (r.kind === 'repository') out.repositoryRules.push({ ...rule, repository_path_pattern: r.pattern })
    else if (r.kind === 'tag') out.tagRules.push({ ...rule, tag_name_pattern: r.pattern })
    else out.quota = { full_path_lower: r.pattern, hard_limit_bytes: nullableNumber(r.hard), soft_limit_bytes: nullableNumber(r.soft) }
  }
  return out
}

const nullableNumber = (v: number | string | null): number | null => (v === null ? null : Number(v))

/** The tag rules of the project a repository belongs to. */
export async function tagRulesForRepository(db: Executor, name: string): Promise<RegistryTagRule[]> {
  return db
    .selectFrom('registry_tag_protection_rules')
    .selectAll()
    .where('project_id', '=', ownerProjectId(db, name))
    .orderBy('id')
    .execute()
}

export async function tagRulesOf(db: Executor, projectId: number, page?: { limit: number; offset: number }): Promise<RegistryTagRule[]> {
  let q = db.selectFrom('registry_tag_protection_rules').selectAll().where('project_id', '=', projectId).orderBy('id')
  if (page) q = q.limit(page.limit).offset(page.offset)
  return q.execute()
}

export async function countTagRules(db: Executor, projectId: number): Promise<number> {
  const r = await db
    .selectFrom('registry_tag_protection_rules')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function findTagRule(db: Executor, projectId: number, id: number): Promise<RegistryTagRule | undefined> {
  return db
    .selectFrom('registry_tag_protection_rules')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .executeTakeFirst()
}

/** The new rule, or undefined when the project already has one with this pattern. */
export async function insertTagRule(db: Executor, row: Insertable<RegistryTagProtectionRulesTable>): Promise<RegistryTagRule | undefined> {
  return db
    .insertInto('registry_tag_protection_rules')
    .values(row)
    .onConflict((oc) => oc.columns(['project_id', 'tag_name_pattern']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function updateTagRule(
  db: Executor,
  projectId: number,
  id: number,
  set: Pick<RegistryTagRule, 'tag_name_pattern' | 'push_level' | 'delete_level'>,
): Promise<RegistryTagRule | undefined> {
  return db
    .updateTable('registry_tag_protection_rules')
    .set(set)
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}

export async function deleteTagRule(db: Executor, projectId: number, id: number): Promise<boolean> {
  const r = await db.deleteFrom('registry_tag_protection_rules').where('project_id', '=', projectId).where('id', '=', id).executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

/** The digest a tag points at now, if it exists. */
export async function tagDigest(db: Executor, name: string, tag: string): Promise<string | undefined> {
  const r = await db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select('m.digest')
    .where('r.name', '=', name)
    .where('t.name', '=', tag)
    .executeTakeFirst()
  return r?.digest
}

/** The tags pointing at a manifest (a delete by digest removes them all). */
export async function tagsOnManifest(db: Executor, name: string, digest: string): Promise<string[]> {
  const rows = await db
    .selectFrom('tags as t')
    .innerJoin('repositories as r', 'r.id', 't.repository_id')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .select('t.name')
    .where('r.name', '=', name)
    .where('m.digest', '=', digest)
    .execute()
  return rows.map((r) => r.name)
}

// Usage

/**
 * Bytes of blob storage the repositories at or below `path` (all of them without one) hold: each
 * distinct blob linked to any of them counted once, however many repositories and manifests share
 * it. Tagged or not: until garbage collection removes them, they use the space. (Manifests live in
 * the database, not in blob storage.)
 */
export async function storageUsed(db: Executor, path: string | undefined): Promise<number> {
  const lower = path?.toLowerCase()
  // The byte-order range of pageRepositoriesUnder ('0' follows '/').
  const under = lower === undefined ? sql`1 = 1` : sql`(r.name = ${lower} OR (r.name > ${`${lower}/`} AND r.name < ${`${lower}0`}))`
  const row = await sql<{ n: number | string | null }>`
    SELECT SUM(b.size) AS n FROM blobs b WHERE b.digest IN
      (SELECT rb.digest FROM repository_blobs rb JOIN repositories r ON r.id = rb.repository_id WHERE ${under})`.execute(db)
  return Number(row.rows[0]?.n ?? 0)
}

// Repository protection rules (repository-protection.ts)

export async function repositoryRulesForRepository(db: Executor, name: string): Promise<RegistryRepositoryRule[]> {
  return db
    .selectFrom('registry_repository_protection_rules')
    .selectAll()
    .where('project_id', '=', ownerProjectId(db, name))
    .orderBy('id')
    .execute()
}

export async function repositoryRulesOf(
  db: Executor,
  projectId: number,
  page?: { limit: number; offset: number },
): Promise<RegistryRepositoryRule[]> {
  let q = db.selectFrom('registry_repository_protection_rules').selectAll().where('project_id', '=', projectId).orderBy('id')
  if (page) q = q.limit(page.limit).offset(page.offset)
  return q.execute()
}

export async function countRepositoryRules(db: Executor, projectId: number): Promise<number> {
  const r = await db
    .selectFrom('registry_repository_protection_rules')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('project_id', '=', projectId)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

export async function findRepositoryRule(db: Executor, projectId: number, id: number): Promise<RegistryRepositoryRule | undefined> {
  return db
    .selectFrom('registry_repository_protection_rules')
    .selectAll()
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .executeTakeFirst()
}

/** The new rule, or undefined when the project already has one with this pattern. */
export async function insertRepositoryRule(
  db: Executor,
  row: Insertable<RegistryRepositoryProtectionRulesTable>,
): Promise<RegistryRepositoryRule | undefined> {
  return db
    .insertInto('registry_repository_protection_rules')
    .values(row)
    .onConflict((oc) => oc.columns(['project_id', 'repository_path_pattern']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function updateRepositoryRule(
  db: Executor,
  projectId: number,
  id: number,
  set: Pick<RegistryRepositoryRule, 'repository_path_pattern' | 'push_level' | 'delete_level'>,
): Promise<RegistryRepositoryRule | undefined> {
  return db
    .updateTable('registry_repository_protection_rules')
    .set(set)
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .returningAll()
    .executeTakeFirst()
}

export async function deleteRepositoryRule(db: Executor, projectId: number, id: number): Promise<boolean> {
  const r = await db
    .deleteFrom('registry_repository_protection_rules')
    .where('project_id', '=', projectId)
    .where('id', '=', id)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

// Quotas (quotas.ts)

/** The project a repository belongs to, with its quota (null limits when it has none). */
export async function quotaForRepository(db: Executor, name: string) {
  return db
    .selectFrom('projects as p')
    .leftJoin('registry_project_quotas as q', 'q.project_id', 'p.id')
    .select(['p.id', 'p.full_path_lower', 'q.hard_limit_bytes', 'q.soft_limit_bytes'])
    .where('p.id', '=', ownerProjectId(db, name))
    .executeTakeFirst()
}

export async function projectQuota(db: Executor, projectId: number) {
  return db.selectFrom('registry_project_quotas').selectAll().where('project_id', '=', projectId).executeTakeFirst()
}

export async function upsertProjectQuota(db: Executor, row: Insertable<RegistryProjectQuotasTable>): Promise<void> {
  await db
    .insertInto('registry_project_quotas')
    .values(row)
    .onConflict((oc) =>
      oc.column('project_id').doUpdateSet({
        hard_limit_bytes: row.hard_limit_bytes ?? null,
        soft_limit_bytes: row.soft_limit_bytes ?? null,
        updated_at: row.updated_at,
      }),
    )
    .execute()
}

/** Every project with a soft limit and its path (for the over-soft-quota gauge). */
export async function softQuotas(db: Executor) {
  return db
    .selectFrom('registry_project_quotas as q')
    .innerJoin('projects as p', 'p.id', 'q.project_id')
    .select(['p.full_path_lower', 'q.soft_limit_bytes'])
    .where('q.soft_limit_bytes', 'is not', null)
    .execute()
}

/** Whether the repositories at or below `path` already link this blob (so linking it again adds nothing). */
export async function blobHeldUnder(db: Executor, path: string, digest: string): Promise<boolean> {
  const lower = path.toLowerCase()
  const r = await db
    .selectFrom('repository_blobs as rb')
    .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
    .select('rb.digest')
    .where('rb.digest', '=', digest)
    .where((eb) => eb.or([eb('r.name', '=', lower), eb.and([eb('r.name', '>', `${lower}/`), eb('r.name', '<', `${lower}0`)])]))
    .limit(1)
    .executeTakeFirst()
  return r !== undefined
}

// Tag history (tag-history.ts)

export async function insertTagPush(db: Executor, row: Insertable<RegistryTagPushesTable>): Promise<void> {
  await db.insertInto('registry_tag_pushes').values(row).execute()
}

export async function tagPushes(db: Executor, repositoryId: number, tag: string, limit: number, offset: number) {
  return db
    .selectFrom('registry_tag_pushes')
    .selectAll()
    .where('repository_id', '=', repositoryId)
    .where('tag', '=', tag)
    .orderBy('id', 'desc')
    .limit(limit)
    .offset(offset)
    .execute()
}

export async function countTagPushes(db: Executor, repositoryId: number, tag: string): Promise<number> {
  const r = await db
    .selectFrom('registry_tag_pushes')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('repository_id', '=', repositoryId)
    .where('tag', '=', tag)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

/**
 * Each current tag of a repository with the last push that made it point at its current digest
 * (the job's ref and pipeline when a job pushed it), for CI-aware cleanup. One query.
 */
export async function tagsWithLastPush(db: Executor, repositoryId: number) {
  const last = db
    .selectFrom('registry_tag_pushes as p2')
    .select((eb) => eb.fn.max('p2.id').as('id'))
    .where('p2.repository_id', '=', repositoryId)
    .groupBy('p2.tag')
  return db
    .selectFrom('tags as t')
    .innerJoin('manifests as m', 'm.id', 't.manifest_id')
    .leftJoin(
      (eb) => eb.selectFrom('registry_tag_pushes as p').where('p.id', 'in', last).selectAll('p').as('lp'),
      (j) => j.onRef('lp.tag', '=', 't.name').onRef('lp.digest', '=', 'm.digest'),
    )
    .select(['t.name', 'm.created_at as createdAt', 'm.digest', 'lp.ref', 'lp.ref_is_tag', 'lp.pipeline_id', 'lp.job_id'])
    .where('t.repository_id', '=', repositoryId)
    .execute()
}
