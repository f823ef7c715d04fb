import { sql } from 'kysely'
import { likeTerm, nowIso } from '../metadata/db.ts'
import type { Executor, Namespace, Project } from '../metadata/schema.ts'

// Only this file builds SQL for namespaces, projects and members (users: src/users/queries.ts).

export async function insertNamespace(
  db: Executor,
  n: {
    kind: 'user' | 'group'
    name: string
    path: string
    fullPath: string
    parentId: number | null
    ownerId: number | null
    visibility: Namespace['visibility']
    description: string
  },
): Promise<Namespace> {
  return db
    .insertInto('namespaces')
    .values({
      kind: n.kind,
      name: n.name,
      path: n.path,
      full_path: n.fullPath,
      full_path_lower: n.fullPath.toLowerCase(),
      parent_id: n.parentId,
      owner_id: n.ownerId,
      visibility: n.visibility,
      description: n.description,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findNamespaceByPath(db: Executor, fullPath: string): Promise<Namespace | undefined> {
  return db.selectFrom('namespaces').selectAll().where('full_path_lower', '=', fullPath.toLowerCase()).executeTakeFirst()
}

export async function findNamespace(db: Executor, id: number): Promise<Namespace | undefined> {
  return db.selectFrom('namespaces').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function userNamespace(db: Executor, userId: number): Promise<Namespace | undefined> {
  return db.selectFrom('namespaces').selectAll().where('kind', '=', 'user').where('owner_id', '=', userId).executeTakeFirst()
}

export async function listGroups(db: Executor, opts: { limit: number; offset: number }): Promise<Namespace[]> {
  return db
    .selectFrom('namespaces')
    .selectAll()
    .where('kind', '=', 'group')
    .orderBy('full_path_lower')
    .limit(opts.limit)
    .offset(opts.offset)
    .execute()
}

export async function childGroups(db: Executor, parentId: number): Promise<Namespace[]> {
  return db.selectFrom('namespaces').selectAll().where('parent_id', '=', parentId).orderBy('full_path_lower').execute()
}

export async function deleteNamespace(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('namespaces').where('id', '=', id).execute()
}

export async function updateNamespace(
  db: Executor,
  id: number,
  set: Partial<{ name: string; visibility: Namespace['visibility']; description: string }>,
): Promise<void> {
  // Named columns only (Kysely skips the undefined ones): a wider object passed in at runtime writes nothing more.
  await db
    .updateTable('namespaces')
    .set({ name: set.name, visibility: set.visibility, description: set.description })
    .where('id', '=', id)
    .execute()
}

export async function insertProject(
  db: Executor,
  p: {
    namespaceId: number
    name: string
    path: string
    fullPath: string
    visibility: Project['visibility']
    description: string
    creatorId: number | null
  },
): Promise<Project> {
  return db
    .insertInto('projects')
    .values({
      namespace_id: p.namespaceId,
      name: p.name,
      path: p.path,
      full_path: p.fullPath,
      full_path_lower: p.fullPath.toLowerCase(),
      visibility: p.visibility,
      description: p.description,
      creator_id: p.creatorId,
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function findProject(db: Executor, id: number): Promise<Project | undefined> {
  return db.selectFrom('projects').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findProjectByPath(db: Executor, fullPath: string): Promise<Project | undefined> {
  return db.selectFrom('projects').selectAll().where('full_path_lower', '=', fullPath.toLowerCase()).executeTakeFirst()
}

/** The paths a project owning repository `name` may have: its prefixes of two segments or more (the longest existing one owns it). */
export function projectPathsOf(name: string): string[] {
  const parts = name.split('/')
  const prefixes: string[] = []
  for (let i = 2; i <= parts.length; i++) prefixes.push(parts.slice(0, i).join('/'))
  return prefixes
}

/** The project owning a registry repository: the one whose path is a segment-prefix of the name. */
export async function projectForRepository(db: Executor, name: string): Promise<Project | undefined> {
  const prefixes = projectPathsOf(name)
  if (prefixes.length === 0) return undefined
  const rows = await db.selectFrom('projects').selectAll().where('full_path_lower', 'in', prefixes).execute()
  return rows.sort((a, b) => b.full_path_lower.length - a.full_path_lower.length)[0]
}

export async function listProjects(
  db: Executor,
  opts: { namespaceIds?: number[]; ids?: number[]; visibilities?: Project['visibility'][]; search?: string; limit: number; offset: number },
): Promise<Project[]> {
  let q = db.selectFrom('projects').selectAll()
  if (opts.namespaceIds) q = q.where('namespace_id', 'in', opts.namespaceIds.length ? opts.namespaceIds : [-1])
  if (opts.ids || opts.visibilities) {
    const ids = opts.ids ?? []
    const vis = opts.visibilities ?? []
    q = q.where((eb) =>
      eb.or([eb('id', 'in', ids.length ? ids : [-1]), eb('visibility', 'in', vis.length ? vis : ['__none__' as Project['visibility']])]),
    )
  }
  if (opts.search) q = q.where('full_path_lower', 'like', `%${opts.search.toLowerCase().replace(/[%_\\]/g, '')}%`)
  return q.orderBy('id', 'desc').limit(opts.limit).offset(opts.offset).execute()
}

export async function updateProject(
  db: Executor,
  id: number,
  set: Partial<{ name: string; visibility: Project['visibility']; description: string }>,
): Promise<void> {
  // Named columns only (Kysely skips the undefined ones): a wider object passed in at runtime writes nothing more.
  await db
    .updateTable('projects')
    .set({ name: set.name, visibility: set.visibility, description: set.description })
    .where('id', '=', id)
    .execute()
}

export async function deleteProject(db: Executor, id: number): Promise<void> {
  await db.deleteFrom('projects').where('id', '=', id).execute()
}

export type SourceKind = 'namespace' | 'project'

export async function upsertMember(
  db: Executor,
  kind: SourceKind,
  sourceId: number,
  userId: number,
  level: number,
  expiresAt: string | null,
): Promise<void> {
  await db
    .insertInto('members')
    .values({ source_kind: kind, source_id: sourceId, user_id: userId, access_level: level, expires_at: expiresAt, created_at: nowIso() })
    .onConflict((oc) => oc.columns(['source_kind', 'source_id', 'user_id']).doUpdateSet({ access_level: level, expires_at: expiresAt }))
    .execute()
}

export async function deleteMember(db: Executor, kind: SourceKind, sourceId: number, userId: number): Promise<boolean> {
  const r = await db
    .deleteFrom('members')
    .where('source_kind', '=', kind)
    .where('source_id', '=', sourceId)
    .where('user_id', '=', userId)
    .executeTakeFirst()
  return Number(r.numDeletedRows) > 0
}

/**
 * One page of the members of `sources` (one for direct members; a project and its groups up the
 * chain for inherited ones), by username, each user once with their highest level; ties go to the
 * source listed first. With the total, for the pagination headers.
 */
export async function pageMembers(
  db: Executor,
  sources: ReadonlyArray<{ kind: SourceKind; id: number }>,
  page: { limit: number; offset: number },
) {
  const priority = sql<number>`case ${sql.join(
    sources.map((s, i) => sql`when m.source_kind = ${s.kind} and m.source_id = ${s.id} then ${i}`),
    sql` `,
  )} end`
  const ranked = db
    .selectFrom('members as m')
    .select([
      'm.user_id',
      'm.access_level',
      'm.expires_at',
      'm.created_at',
      sql<number>`row_number() over (partition by m.user_id order by m.access_level desc, ${priority})`.as('rn'),
    ])
    .where((eb) => eb.or(sources.map((s) => eb.and([eb('m.source_kind', '=', s.kind), eb('m.source_id', '=', s.id)]))))
  const best = db.selectFrom(ranked.as('b')).innerJoin('users as u', 'u.id', 'b.user_id').where('b.rn', '=', 1)
  const rows = await best
    .select(['u.id', 'u.username', 'u.name', 'u.state', 'b.access_level', 'b.expires_at', 'b.created_at'])
    .orderBy('u.username_lower')
    .limit(page.limit)
    .offset(page.offset)
    .execute()
  const n = await best.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/** Membership levels of one user on the given sources, ignoring expired memberships. */
export async function memberLevels(db: Executor, userId: number, sources: Array<{ kind: SourceKind; id: number }>): Promise<number[]> {
  if (sources.length === 0) return []
  const now = nowIso()
  const rows = await db
    .selectFrom('members')
    .select(['source_kind', 'source_id', 'access_level'])
    .where('user_id', '=', userId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .where((eb) => eb.or(sources.map((s) => eb.and([eb('source_kind', '=', s.kind), eb('source_id', '=', s.id)]))))
    .execute()
  return rows.map((r) => r.access_level)
}

export async function allNamespaces(db: Executor): Promise<Array<Pick<Namespace, 'id' | 'parent_id' | 'kind' | 'owner_id'>>> {
  return db.selectFrom('namespaces').select(['id', 'parent_id', 'kind', 'owner_id']).execute()
}

// REST API listings and management (src/projects/routes.ts via the service).

type Vis = Project['visibility']

/** Which rows a caller may see: any of these ids, namespaces or visibilities. */
export interface VisibleSet {
  ids: number[]
  namespaceIds: number[]
  visibilities: Vis[]
}

export interface ProjectFilter {
  /** undefined: every project (administrators). */
  visibleTo?: VisibleSet | undefined
  /** Restricts further to these ids or namespaces (the `owned` and `membership` filters). */
  only?: { ids: number[]; namespaceIds: number[] } | undefined
  visibility?: Vis | undefined
  search?: string | undefined
  /** Only projects in these namespaces. */
  namespaceIds?: number[] | undefined
}

const orNone = <T>(xs: T[], none: T): T[] => (xs.length ? xs : [none])

function projectsBase(db: Executor, f: ProjectFilter) {
  let q = db.selectFrom('projects')
  if (f.visibleTo) {
    const v = f.visibleTo
    q = q.where((eb) =>
      eb.or([
        eb('id', 'in', orNone(v.ids, -1)),
        eb('namespace_id', 'in', orNone(v.namespaceIds, -1)),
        eb('visibility', 'in', orNone<Vis>(v.visibilities, '__none__' as Vis)),
      ]),
    )
  }
  if (f.only) {
    const o = f.only
    q = q.where((eb) => eb.or([eb('id', 'in', orNone(o.ids, -1)), eb('namespace_id', 'in', orNone(o.namespaceIds, -1))]))
  }
  if (f.visibility) q = q.where('visibility', '=', f.visibility)
  if (f.search) q = q.where('full_path_lower', 'like', likeTerm(f.search))
  if (f.namespaceIds) q = q.where('namespace_id', 'in', orNone(f.namespaceIds, -1))
  return q
}

export async function searchProjects(
  db: Executor,
  f: ProjectFilter,
  page: { limit: number; offset: number },
): Promise<{ rows: Project[]; total: number }> {
  const rows = await projectsBase(db, f).selectAll().orderBy('id', 'desc').limit(page.limit).offset(page.offset).execute()
  const count = await projectsBase(db, f)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return { rows, total: Number(count.n) }
}

export interface GroupFilter {
  visibleTo?: VisibleSet | undefined
  /** Only these groups (the `owned` filter). */
  onlyIds?: number[] | undefined
  search?: string | undefined
  topLevelOnly?: boolean | undefined
}

function groupsBase(db: Executor, f: GroupFilter) {
  let q = db.selectFrom('namespaces').where('kind', '=', 'group')
  if (f.visibleTo) {
    const v = f.visibleTo
    q = q.where((eb) =>
      eb.or([eb('id', 'in', orNone(v.namespaceIds, -1)), eb('visibility', 'in', orNone<Vis>(v.visibilities, '__none__' as Vis))]),
    )
  }
  if (f.onlyIds) q = q.where('id', 'in', orNone(f.onlyIds, -1))
  if (f.search) q = q.where('full_path_lower', 'like', likeTerm(f.search))
  if (f.topLevelOnly) q = q.where('parent_id', 'is', null)
  return q
}

export async function searchGroups(
  db: Executor,
  f: GroupFilter,
  page: { limit: number; offset: number },
): Promise<{ rows: Namespace[]; total: number }> {
  const rows = await groupsBase(db, f).selectAll().orderBy('full_path_lower').limit(page.limit).offset(page.offset).execute()
  const count = await groupsBase(db, f)
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return { rows, total: Number(count.n) }
}

/** A page of namespaces (user namespaces and groups) by full path: these ids, or all when undefined. */
export async function pageNamespaces(
  db: Executor,
  f: { ids: number[] | undefined; search?: string | undefined },
  page: { limit: number; offset: number },
): Promise<{ rows: Namespace[]; total: number }> {
  if (f.ids?.length === 0) return { rows: [], total: 0 }
  let base = db.selectFrom('namespaces')
  if (f.ids) base = base.where('id', 'in', f.ids)
  if (f.search) base = base.where('full_path_lower', 'like', likeTerm(f.search))
  const rows = await base.selectAll().orderBy('full_path_lower').limit(page.limit).offset(page.offset).execute()
  const n = await base.select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()
  return { rows, total: Number(n.n) }
}

/** Memberships of a user that have not expired. */
export async function activeMembershipsOf(db: Executor, userId: number) {
  const now = nowIso()
  return db
    .selectFrom('members')
    .select(['source_kind', 'source_id', 'access_level'])
    .where('user_id', '=', userId)
    .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
    .execute()
}

export async function findMember(db: Executor, kind: SourceKind, sourceId: number, userId: number) {
  return db
    .selectFrom('members as m')
    .innerJoin('users as u', 'u.id', 'm.user_id')
    .select(['u.id', 'u.username', 'u.name', 'u.state', 'm.access_level', 'm.expires_at', 'm.created_at'])
    .where('m.source_kind', '=', kind)
    .where('m.source_id', '=', sourceId)
    .where('m.user_id', '=', userId)
    .executeTakeFirst()
}

export async function countMembersAtLeast(db: Executor, kind: SourceKind, sourceId: number, level: number): Promise<number> {
  const r = await db
    .selectFrom('members')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('source_kind', '=', kind)
    .where('source_id', '=', sourceId)
    .where('access_level', '>=', level)
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

/** Membership rows have no foreign key (they point at projects or namespaces), so deletions clear them here. */
export async function deleteMembersOf(db: Executor, kind: SourceKind, sourceIds: number[]): Promise<void> {
  if (sourceIds.length === 0) return
  await db.deleteFrom('members').where('source_kind', '=', kind).where('source_id', 'in', sourceIds).execute()
}

export async function projectsInNamespaces(db: Executor, namespaceIds: number[]): Promise<Array<Pick<Project, 'id' | 'full_path_lower'>>> {
  if (namespaceIds.length === 0) return []
  return db.selectFrom('projects').select(['id', 'full_path_lower']).where('namespace_id', 'in', namespaceIds).execute()
}

/** The projects in a user's personal namespace. */
export async function personalProjects(db: Executor, userId: number): Promise<Project[]> {
  return db
    .selectFrom('projects')
    .innerJoin('namespaces', 'namespaces.id', 'projects.namespace_id')
    .where('namespaces.kind', '=', 'user')
    .where('namespaces.owner_id', '=', userId)
    .selectAll('projects')
    .execute()
}
