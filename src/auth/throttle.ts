import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'

/**
 * Failed-login throttling, in the database so that every node counts the same failures (a
 * balancer spreading an attacker's guesses over nodes must not multiply the allowance). Failures
 * are counted per (account, address) and per address: an attacker hammering an account from one
 * address is slowed, while the real user, from their own address, can still sign in. Counts decay
 * after the window.
 */
export const THROTTLE = {
  windowMs: 15 * 60 * 1000,
  /** Failures of one account from one address before further attempts are refused. */
  perAccountAddress: 10,
  /** Failures from one address across all accounts. */
  perAddress: 50,
} as const

/** Expired counters are deleted at most this often per process (they are ignored once expired anyway). */
const PRUNE_EVERY_MS = 60_000

const iso = (ms: number) => new Date(ms).toISOString()

/**
 * Adds one to the counter `key` in its window (a new window of `windowMs` when the last one ended)
 * with one conditional upsert, so concurrent increments on any node all count; returns the count
 * and when the window ends.
 */
export async function countInWindow(
  db: Kysely<Database>,
  key: string,
  windowMs: number,
  t: number = Date.now(),
): Promise<{ count: number; resetAt: number }> {
  const now = iso(t)
  const row = await db
    .insertInto('login_throttle')
    .values({ key, failures: 1, reset_at: iso(t + windowMs) })
    .onConflict((oc) =>
      oc.column('key').doUpdateSet((eb) => {
        const expired = eb('login_throttle.reset_at', '<=', now)
        return {
          failures: eb
            .case()
            .when(expired)
            .then(1)
            .else(eb('login_throttle.failures', '+', 1))
            .end(),
          reset_at: eb.case().when(expired).then(eb.ref('excluded.reset_at')).else(eb.ref('login_throttle.reset_at')).end(),
        }
      }),
    )
    .returning(['failures', 'reset_at'])
    .executeTakeFirstOrThrow()
  return { count: Number(row.failures), resetAt: new Date(row.reset_at).getTime() }
}

export class LoginThrottle {
  private readonly db: Kysely<Database>
  private readonly scope: string
  private readonly now: () => number
  private lastPrune = 0

  /** `scope` keeps separate counters apart in the one table (sign-ins, device codes). */
  constructor(db: Kysely<Database>, scope: string, now: () => number = Date.now) {
    this.db = db
    this.scope = scope
    this.now = now
  }

  /** Seconds until attempts are accepted again, or 0 when not throttled. */
  async retryAfter(account: string, address: string): Promise<number> {
    const t = this.now()
    const keys = this.keys(account, address)
    const rows = await this.db
      .selectFrom('login_throttle')
      .select(['key', 'failures', 'reset_at'])
      .where(
        'key',
        'in',
        keys.map(([k]) => k),
      )
      .where('reset_at', '>', iso(t))
      .execute()
    let wait = 0
    for (const [key, limit] of keys) {
      const b = rows.find((r) => r.key === key)
      if (b && b.failures >= limit) wait = Math.max(wait, Math.ceil((new Date(b.reset_at).getTime() - t) / 1000))
    }
    return wait
  }

  /** Counts a failure (in both counters); expired counters of anyone are deleted now and then. */
  async fail(account: string, address: string): Promise<void> {
    const t = this.now()
    for (const [key] of this.keys(account, address)) await countInWindow(this.db, key, THROTTLE.windowMs, t)
    if (t - this.lastPrune > PRUNE_EVERY_MS) {
      this.lastPrune = t
      await this.db.deleteFrom('login_throttle').where('reset_at', '<=', iso(t)).execute()
    }
  }

  /** A success clears the account's counter for that address (not the address's overall count). */
  async succeed(account: string, address: string): Promise<void> {
    await this.db.deleteFrom('login_throttle').where('key', '=', this.keys(account, address)[0][0]).execute()
  }

  private keys(account: string, address: string): [[string, number], [string, number]] {
    return [
      [`${this.scope}|a:${account.toLowerCase()}|${address}`, THROTTLE.perAccountAddress],
      [`${this.scope}|ip:${address}`, THROTTLE.perAddress],
    ]
  }
}
