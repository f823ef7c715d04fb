import { nowIso } from '../metadata/db.ts'
import type { Executor, Release, ReleaseLink } from '../metadata/schema.ts'

// Only this file builds the SQL of releases and their links.

export async function findRelease(db: Executor, projectId: number, tagName: string): Promise<Release | undefined> {
  return db.selectFrom('releases').selectAll().where('project_id', '=', projectId).where('tag_name', '=', tagName).executeTakeFirst()
}

/** Inserts a release; undefined when the tag has one already (a concurrent create loses cleanly). */
export async function insertRelease(db: Executor, row: Omit<Release, 'id' | 'created_at' | 'updated_at'>): Promise<Release | undefined> {
  const now = nowIso()
  return db
    .insertInto('releases')
    .values({ ...row, created_at: now, updated_at: now })
    .onConflict((oc) => oc.columns(['project_id', 'tag_name']).doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function updateRelease(
  db: Executor,
  id: number,
  set: Partial<Pick<Release, 'name' | 'description' | 'released_at'>>,
): Promise<void> {
  await db
    .updateTable('releases')
    .set({ ...set, updated_at: nowIso() })
    .where('id', '=', id)
    .execute()
}

export async function deleteRelease(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('releases').where('id', '=', id).execute()
}

export const RELEASE_ORDER = ['released_at', 'created_at'] as const

/** One page of a project's releases, newest first unless `sort` says otherwise; ties by id. */
export async function pageReleases(
  db: Executor,
  projectId: number,
  f: { orderBy: (typeof RELEASE_ORDER)[number]; sort: 'asc' | 'desc' },
  page: { limit: number; offset: number },
): Promise<{ rows: Release[]; total: number }> {
  const base = db.selectFrom('releases').where('project_id', '=', projectId)
  const rows = await base.selectAll().orderBy(f.orderBy, f.sort).orderBy('id', f.sort).limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function releaseLinks(db: Executor, releaseIds: number[]): Promise<ReleaseLink[]> {
  if (releaseIds.length === 0) return []
  return db.selectFrom('release_links').selectAll().where('release_id', 'in', releaseIds).orderBy('id').execute()
}

export async function pageReleaseLinks(
  db: Executor,
  releaseId: number,
  page: { limit: number; offset: number },
): Promise<{ rows: ReleaseLink[]; total: number }> {
  const base = db.selectFrom('release_links').where('release_id', '=', releaseId)
  const rows = await base.selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

export async function findReleaseLink(db: Executor, releaseId: number, id: number): Promise<ReleaseLink | undefined> {
  return db.selectFrom('release_links').selectAll().where('release_id', '=', releaseId).where('id', '=', id).executeTakeFirst()
}

/** A link of the release with this name or URL other than `exceptId` (both are unique per release). */
export async function clashingLink(
  db: Executor,
  releaseId: number,
  name: string | undefined,
  url: string | undefined,
  exceptId: number,
): Promise<ReleaseLink | undefined> {
  return db
    .selectFrom('release_links')
    .selectAll()
    .where('release_id', '=', releaseId)
    .where('id', '!=', exceptId)
    .where((eb) => eb.or([...(name !== undefined ? [eb('name', '=', name)] : []), ...(url !== undefined ? [eb('url', '=', url)] : [])]))
    .executeTakeFirst()
}

export async function insertReleaseLink(db: Executor, row: Omit<ReleaseLink, 'id' | 'created_at'>): Promise<ReleaseLink> {
  return db
    .insertInto('release_links')
    .values({ ...row, created_at: nowIso() })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function updateReleaseLink(
  db: Executor,
  id: number,
  set: Partial<Pick<ReleaseLink, 'name' | 'url' | 'direct_asset_path' | 'link_type'>>,
): Promise<void> {
  if (Object.keys(set).length === 0) return
  await db.updateTable('release_links').set(set).where('id', '=', id).execute()
}

export async function deleteReleaseLink(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('release_links').where('id', '=', id).execute()
}
