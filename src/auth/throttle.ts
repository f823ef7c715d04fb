/**
 * Failed-login throttling, in memory. Failures are counted per (account, address) and per address:
 * an attacker hammering an account from one address is slowed, while the real user, from their
 * own address, can still sign in. Counts decay after the window.
 */
export const THROTTLE = {
  windowMs: 15 * 60 * 1000,
  /** Failures of one account from one address before further attempts are refused. */
  perAccountAddress: 10,
  /** Failures from one address across all accounts. */
  perAddress: 50,
} as const

interface Bucket {
  failures: number
  resetAt: number
}

export class LoginThrottle {
  private readonly buckets = new Map<string, Bucket>()
  private readonly now: () => number

  constructor(now: () => number = Date.now) {
    this.now = now
  }

  /** Seconds until attempts are accepted again, or 0 when not throttled. */
  retryAfter(account: string, address: string): number {
    const t = this.now()
    let wait = 0
    for (const [key, limit] of this.keys(account, address)) {
      const b = this.buckets.get(key)
      if (b && b.resetAt > t && b.failures >= limit) wait = Math.max(wait, Math.ceil((b.resetAt - t) / 1000))
    }
    return wait
  }

  fail(account: string, address: string): void {
    const t = this.now()
    for (const [key] of this.keys(account, address)) {
      const b = this.buckets.get(key)
      if (!b || b.resetAt <= t) this.buckets.set(key, { failures: 1, resetAt: t + THROTTLE.windowMs })
      else b.failures++
    }
    if (this.buckets.size > 100_000) this.prune(t)
  }

  /** A success clears the account's counter for that address (not the address's overall count). */
  succeed(account: string, address: string): void {
    this.buckets.delete(`a:${account.toLowerCase()}|${address}`)
  }

  private keys(account: string, address: string): Array<[string, number]> {
    return [
      [`a:${account.toLowerCase()}|${address}`, THROTTLE.perAccountAddress],
      [`ip:${address}`, THROTTLE.perAddress],
    ]
  }

  private prune(t: number): void {
    for (const [k, b] of this.buckets) if (b.resetAt <= t) this.buckets.delete(k)
  }
}
