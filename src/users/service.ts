import type { Kysely } from 'kysely'
import type { Principal } from '../auth/principals.ts'
import { WharfError } from '../core/errors.ts'
import { validateSegment } from '../core/path-segments.ts'
import { hashPassword } from '../core/secrets.ts'
import type { Database, User, UserState } from '../metadata/schema.ts'
import * as q from './queries.ts'

export interface NewUser {
  username: string
  name?: string
  email?: string | null
  /** null: an account without a password (tokens only). */
  password?: string | null
  isAdmin?: boolean
}

/**
 * What an account's deletion takes with it, done by the domains that own it (projects/ is above
 * users/): the groups it alone owns (only with `hard_delete`) and its personal projects.
 */
export type OwnedContentRemoval = (user: User, soleOwnedGroupIds: number[]) => Promise<void>

/** User accounts: creation (with their personal namespace), profiles, passwords, blocking and deletion. */
export class Users {
  private readonly db: Kysely<Database>
  private removeOwned: OwnedContentRemoval | undefined
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** The composition root plugs in how a deleted user's projects and groups go. */
  setOwnedContentRemoval(f: OwnedContentRemoval): void {
    this.removeOwned = f
  }

  async createUser(input: NewUser): Promise<User> {
    validateSegment(input.username, 'username')
    if (input.password !== undefined && input.password !== null && input.password.length < 8) {
      throw new WharfError('BAD_REQUEST', 'password is too short (minimum is 8 characters)', {})
    }
    const passwordHash = input.password ? await hashPassword(input.password) : null
    return this.db.transaction().execute(async (trx) => {
      if ((await q.findUserByUsername(trx, input.username)) || (await q.pathTaken(trx, input.username))) {
        throw new WharfError('CONFLICT', `username ${input.username} is already taken`, { username: input.username })
      }
      const user = await q.insertUser(trx, {
        username: input.username,
        name: input.name ?? input.username,
        email: input.email ?? null,
        passwordHash,
        isAdmin: input.isAdmin ?? false,
      })
      await q.insertUserNamespace(trx, user)
      return user
    })
  }

  /** The first administrator, with its namespace; undefined when another node created it meanwhile. */
  async createFirstAdmin(input: { username: string; name: string; password: string }): Promise<User | undefined> {
    const passwordHash = await hashPassword(input.password)
    return this.db.transaction().execute(async (trx) => {
      const user = await q.insertFirstAdmin(trx, { username: input.username, name: input.name, passwordHash })
      if (user) await q.insertUserNamespace(trx, user)
      return user
    })
  }

  async setPassword(userId: number, password: string): Promise<void> {
    if (password.length < 8) throw new WharfError('BAD_REQUEST', 'password is too short (minimum is 8 characters)', {})
    await q.updateUser(this.db, userId, { password_hash: await hashPassword(password) })
  }

  /** The active user behind a principal; UNAUTHORIZED for anonymous callers or gone/blocked users. */
  async actor(p: Principal): Promise<User> {
    if (p.kind !== 'user') throw new WharfError('UNAUTHORIZED', 'sign in (a personal access token or OAuth token) to do this', {})
    const user = await q.findUser(this.db, p.userId)
    if (user?.state !== 'active') throw new WharfError('UNAUTHORIZED', 'the account is blocked or no longer exists', {})
    return user
  }

  // GET/POST/PUT /users, block/unblock

  searchUsers(
    f: { username?: string | undefined; search?: string | undefined; blocked?: boolean | undefined },
    page: { limit: number; offset: number },
  ) {
    return q.searchUsers(this.db, f, page)
  }

  findUserById(id: number): Promise<User | undefined> {
    return q.findUser(this.db, id)
  }

  private async existing(id: number): Promise<User> {
    const user = await q.findUser(this.db, id)
    if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    return user
  }

  findUserByUsername(username: string): Promise<User | undefined> {
    return q.findUserByUsername(this.db, username)
  }

  async updateUserProfile(
    userId: number,
    set: { name?: string | undefined; email?: string | null | undefined; password?: string | undefined; isAdmin?: boolean | undefined },
  ): Promise<User> {
    if (set.name !== undefined && (set.name.trim() === '' || set.name.length > 255))
      throw new WharfError('BAD_REQUEST', 'name must be 1 to 255 characters', {})
    if (set.password !== undefined) await this.setPassword(userId, set.password)
    const change: Parameters<typeof q.updateUser>[2] = {}
    if (set.name !== undefined) change.name = set.name
    if (set.email !== undefined) change.email = set.email
    if (set.isAdmin !== undefined) change.is_admin = set.isAdmin ? 1 : 0
    if (Object.keys(change).length) await q.updateUser(this.db, userId, change)
    if (set.name !== undefined) await q.updateUserNamespaceName(this.db, userId, set.name)
    const user = await q.findUser(this.db, userId)
    if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
    return user
  }

  async setUserState(userId: number, state: UserState): Promise<void> {
    await q.updateUser(this.db, userId, { state })
  }

  /** Accounts with this email (at most two: enough to tell "exactly one" from "ambiguous"). */
  findUsersByEmail(email: string): Promise<User[]> {
    return q.findUsersByEmail(this.db, email)
  }

  /**
   * Blocks an account and revokes everything it could still use (personal access tokens, OAuth
   * tokens, web sessions), in one transaction: what an identity provider's "this user is gone" means.
   * Registry tokens already issued name their credential, which is now inactive.
   */
  async deprovision(userId: number): Promise<void> {
    await this.db.transaction().execute(async (trx) => {
      await q.updateUser(trx, userId, { state: 'blocked' })
      await q.revokeUserCredentials(trx, userId)
    })
  }

  /**
   * GitLab's deactivate: the account stays, with its tokens, but cannot sign in or use them until
   * activated. A blocked account must be unblocked first. Returns false when it already was.
   */
  async deactivate(userId: number): Promise<boolean> {
    const user = await this.existing(userId)
    if (user.state === 'deactivated') return false
    if (user.state === 'blocked') throw new WharfError('FORBIDDEN', 'A blocked user cannot be deactivated by the API', {})
    await q.updateUser(this.db, userId, { state: 'deactivated' })
    return true
  }

  async activate(userId: number): Promise<void> {
    const user = await this.existing(userId)
    if (user.state === 'blocked') throw new WharfError('FORBIDDEN', 'A blocked user must be unblocked to be activated', {})
    await q.updateUser(this.db, userId, { state: 'active' })
  }

  /**
   * Deletes a user as GitLab does: their personal projects go with them, memberships are removed,
   * and CI history keeps its rows without the user. While they are the only Owner of a group the
   * deletion is refused (CONFLICT), unless `hardDelete`, which deletes those groups too.
   */
  async deleteUser(userId: number, opts: { hardDelete?: boolean } = {}): Promise<User> {
    const target = await this.existing(userId)
    const sole = await q.soleOwnedGroups(this.db, userId)
    if (sole.length && !opts.hardDelete)
      throw new WharfError(
        'CONFLICT',
        `User cannot be removed while is the sole-owner of a group (${sole.map((g) => g.full_path).join(', ')})`,
        {
          groups: sole.map((g) => g.full_path),
        },
      )
    await this.removeOwned?.(
      target,
      sole.map((g) => g.id),
    )
    return this.db.transaction().execute(async (trx) => {
      const user = await q.findUser(trx, userId)
      if (!user) throw new WharfError('NOT_FOUND', 'User Not Found', {})
      const held = await q.userHoldings(trx, userId)
      if (held.projects.length || held.groups.length) {
        const what = [
          held.projects.length ? `projects ${held.projects.join(', ')}` : '',
          held.groups.length ? `groups ${held.groups.join(', ')}` : '',
        ]
          .filter(Boolean)
          .join(' and ')
        throw new WharfError('CONFLICT', `${user.username} still owns ${what}: delete them or hand them to another owner first`, {
          projects: held.projects,
          groups: held.groups,
        })
      }
      await q.deleteUser(trx, userId)
      return user
    })
  }
}
