import { performance } from 'node:perf_hooks'
import { sql, type Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import { UPLOADS_DIR } from '../storage/paths.ts'

/** A dependency slower than this counts as down: a probe must answer well within a load balancer's timeout. */
export const READINESS_TIMEOUT_MS = 2000

export type CheckName = 'database' | 'storage'
export interface CheckResult {
  status: 'ok' | 'failed'
  ms: number
  error?: string
}
export interface Readiness {
  status: 'ok' | 'unavailable'
  /** Why the server does not take traffic: the failed checks, or that it is shutting down. */
  failed?: Array<CheckName | 'shutdown'>
  checks: Record<CheckName, CheckResult>
}

/**
 * What /-/readiness reports: the database answers a query and blob storage a stat, each within
 * READINESS_TIMEOUT_MS; once shutdown starts the server is not ready, so load balancers drain it
 * while in-flight requests finish.
 */
export class Probes {
  private draining = false
  private readonly db: Kysely<Database>
  private readonly driver: BlobDriver
  private readonly timeoutMs: number

  constructor(db: Kysely<Database>, driver: BlobDriver, timeoutMs = READINESS_TIMEOUT_MS) {
    this.db = db
    this.driver = driver
    this.timeoutMs = timeoutMs
  }

  /** Shutdown has begun: readiness fails from now on. */
  drain(): void {
    this.draining = true
  }

  get isDraining(): boolean {
    return this.draining
  }

  async readiness(): Promise<Readiness> {
    const [database, storage] = await Promise.all([
      this.check(() => sql`select 1`.execute(this.db)),
      this.check(() => this.driver.stat(UPLOADS_DIR)),
    ])
    const checks = { database, storage }
    const failed: Readiness['failed'] = (Object.keys(checks) as CheckName[]).filter((k) => checks[k].status !== 'ok')
    if (this.draining) failed.push('shutdown')
    return failed.length ? { status: 'unavailable', failed, checks } : { status: 'ok', checks }
  }

  private async check(fn: () => Promise<unknown>): Promise<CheckResult> {
    const start = performance.now()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.timeoutMs} ms`)), this.timeoutMs)
    })
    try {
      await Promise.race([fn(), timeout])
      return { status: 'ok', ms: Math.round(performance.now() - start) }
    } catch (e) {
      // The error code only: probes are unauthenticated, and messages name file paths.
      return {
        status: 'failed',
        ms: Math.round(performance.now() - start),
        error: (e as NodeJS.ErrnoException).code ?? (e as Error).message,
      }
    } finally {
      clearTimeout(timer)
    }
  }
}
