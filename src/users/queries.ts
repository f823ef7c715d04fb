import { likeTerm, nowIso } from '../metadata/db.ts'
import type { Executor, Namespace, User, UserState } from '../metadata/schema.ts'

// Only this file builds SQL for user accounts: the users table, and the rows an account owns
// across the schema (its personal namespace, and what a deletion must clear or detach).

export async function findUserByUsername(db: Executor, username: string): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('username_lower', '=', username.toLowerCase()).executeTakeFirst()
}

/** Accounts whose email is this one, in any letter case (emails are not unique in Wharf). */
export async function findUsersByEmail(db: Executor, email: string): Promise<User[]> {
  return db
    .selectFrom('users')
    .selectAll()
    .where((eb) => eb(eb.fn('lower', ['email']), '=', email.toLowerCase()))
    .orderBy('id')
    .limit(2)
    .execute()
}

/** Revokes every credential an account holds: personal access tokens, OAuth tokens, device logins (`wharf login`) and web sessions. */
export async function revokeUserCredentials(db: Executor, userId: number): Promise<void> {
  await db.updateTable('personal_access_tokens').set({ revoked: 1 }).where('user_id', '=', userId).where('revoked', '=', 0).execute()
  await db.updateTable('oauth_tokens').set({ revoked: 1 }).where('user_id', '=', userId).where('revoked', '=', 0).execute()
  await db.updateTable('device_logins').set({ status: 'revoked' }).where('user_id', '=', userId).where('status', '!=', 'revoked').execute()
  await db.deleteFrom('web_sessions').where('user_id', '=', userId).execute()
}

export async function findUser(db: Executor, id: number): Promise<User | undefined> {
  return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst()
}

export async function findUsers(db: Executor, ids: number[]): Promise<User[]> {
  return ids.length ? db.selectFrom('users').selectAll().where('id', 'in', ids).execute() : []
}

export async function insertUser(
  db: Executor,
  u: { username: string; name: string; email: string | null; passwordHash: string | null; isAdmin: boolean },
): Promise<User> {
  return db
    .insertInto('users')
    .values({
      username: u.username,
      username_lower: u.username.toLowerCase(),
      name: u.name,
      email: u.email,
      password_hash: u.passwordHash,
      is_admin: u.isAdmin ? 1 : 0,
      state: 'active',
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

/**
 * The administrator an empty database starts with, unless another node (sharing the database) made
 * it first: the unique username decides, so two nodes starting at once create exactly one.
 */
export async function insertFirstAdmin(
  db: Executor,
  u: { username: string; name: string; passwordHash: string },
): Promise<User | undefined> {
  return db
    .insertInto('users')
    .values({
      username: u.username,
      username_lower: u.username.toLowerCase(),
      name: u.name,
      email: null,
      password_hash: u.passwordHash,
      is_admin: 1,
      state: 'active',
      created_at: nowIso(),
    })
    .onConflict((oc) => oc.column('username_lower').doNothing())
    .returningAll()
    .executeTakeFirst()
}

export async function updateUser(
  db: Executor,
  id: number,
  set: Partial<{ name: string; email: string | null; password_hash: string | null; is_admin: number; state: UserState }>,
): Promise<void> {
  await db
    .updateTable('users')
    .set({ name: set.name, email: set.email, password_hash: set.password_hash, is_admin: set.is_admin, state: set.state })
    .where('id', '=', id)
    .execute()
}

export async function countUsers(db: Executor): Promise<number> {
  const r = await db
    .selectFrom('users')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return Number(r.n)
}

/**
 * True when a namespace or a project already uses this full path, in any letter case: usernames,
 * groups and projects share one path space (projects/ checks it too).
 */
export async function pathTaken(db: Executor, fullPath: string): Promise<boolean> {
  const lower = fullPath.toLowerCase()
  const ns = await db.selectFrom('namespaces').select('id').where('full_path_lower', '=', lower).executeTakeFirst()
  if (ns) return true
  const p = await db.selectFrom('projects').select('id').where('full_path_lower', '=', lower).executeTakeFirst()
  return p !== undefined
}

/** The account's personal namespace, at its username (created with the user, in the same transaction). */
export async function insertUserNamespace(db: Executor, user: Pick<User, 'id' | 'name' | 'username'>): Promise<Namespace> {
  return db
    .insertInto('namespaces')
    .values({
      kind: 'user',
      name: user.name,
      path: user.username,
      full_path: user.username,
      full_path_lower: user.username.toLowerCase(),
      parent_id: null,
      owner_id: user.id,
      visibility: 'public',
      description: '',
      created_at: nowIso(),
    })
    .returningAll()
    .executeTakeFirstOrThrow()
}

export async function searchUsers(
  db: Executor,
  f: { username?: string | undefined; search?: string | undefined; blocked?: boolean | undefined },
  page: { limit: number; offset: number },
): Promise<{ rows: User[]; total: number }> {
  const base = () => {
    let q = db.selectFrom('users')
    if (f.username !== undefined) q = q.where('username_lower', '=', f.username.toLowerCase())
    if (f.search)
      q = q.where((eb) =>
        eb.or([eb('username_lower', 'like', likeTerm(f.search!)), eb(eb.fn('lower', ['name']), 'like', likeTerm(f.search!))]),
      )
    if (f.blocked !== undefined) q = q.where('state', '=', f.blocked ? 'blocked' : 'active')
    return q
  }
  const rows = await base().selectAll().orderBy('id').limit(page.limit).offset(page.offset).execute()
  const count = await base()
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow()
  return { rows, total: Number(count.n) }
}

export async function updateUserNamespaceName(db: Executor, userId: number, name: string): Promise<void> {
  await db.updateTable('namespaces').set({ name }).where('kind', '=', 'user').where('owner_id', '=', userId).execute()
}

/** What keeps a user from being deleted: projects in their namespace and groups they are an Owner of. */
export async function userHoldings(db: Executor, userId: number): Promise<{ projects: string[]; groups: string[] }> {
  const projects = await db
    .selectFrom('projects')
    .innerJoin('namespaces', 'namespaces.id', 'projects.namespace_id')
    .where('namespaces.kind', '=', 'user')
    .where('namespaces.owner_id', '=', userId)
    .select('projects.full_path')
    .orderBy('projects.full_path')
    .limit(10)
    .execute()
  const groups = await soleOwnedGroups(db, userId)
  return { projects: projects.map((r) => r.full_path), groups: groups.map((r) => r.full_path) }
}

/** Groups whose only direct Owner is this user (GitLab's "sole owner": the user cannot be removed while any exists). */
export async function soleOwnedGroups(db: Executor, userId: number): Promise<Array<{ id: number; full_path: string }>> {
  return db
    .selectFrom('members')
    .innerJoin('namespaces', 'namespaces.id', 'members.source_id')
    .where('members.source_kind', '=', 'namespace')
    .where('members.user_id', '=', userId)
    .where('members.access_level', '>=', 50)
    .where('namespaces.kind', '=', 'group')
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('members as other')
            .select('other.user_id')
            .whereRef('other.source_id', '=', 'members.source_id')
            .where('other.source_kind', '=', 'namespace')
            .where('other.user_id', '!=', userId)
            .where('other.access_level', '>=', 50),
        ),
      ),
    )
    .select(['namespaces.id', 'namespaces.full_path'])
    .orderBy('namespaces.full_path')
    .execute()
}

/**
 * Removes a user, their personal namespace, memberships and credentials. SQLite's foreign keys are
 * not enforced here, so each reference is handled: CI history and runners keep their rows with the
 * user cleared (as the schema's ON DELETE SET NULL says).
 */
export async function deleteUser(db: Executor, userId: number): Promise<void> {
  await db.updateTable('pipelines').set({ user_id: null }).where('user_id', '=', userId).execute()
  await db.updateTable('ci_jobs').set({ user_id: null }).where('user_id', '=', userId).execute()
  await db.updateTable('pipeline_triggers').set({ owner_id: null }).where('owner_id', '=', userId).execute()
  await db.updateTable('runners').set({ created_by: null }).where('created_by', '=', userId).execute()
  await db.updateTable('projects').set({ creator_id: null }).where('creator_id', '=', userId).execute()
  for (const table of ['members', 'personal_access_tokens', 'oauth_tokens', 'device_logins', 'web_sessions', 'identities'] as const)
    await db.deleteFrom(table).where('user_id', '=', userId).execute()
  await db.deleteFrom('namespaces').where('kind', '=', 'user').where('owner_id', '=', userId).execute()
  await db.deleteFrom('users').where('id', '=', userId).execute()
}
