import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import type { Metrics } from '../ops/metrics.ts'
import * as q from './queries.ts'
import { ONLINE_SECONDS } from './runners.ts'
import { JOB_STATUSES } from './state.ts'

/**
 * CI gauges, read from the database when Prometheus scrapes (three indexed queries), so job and
 * runner state changes cost nothing extra. The queue depth is `wharf_ci_jobs{status="pending"}`.
 */
export function registerCiMetrics(metrics: Metrics, db: Kysely<Database>): void {
  metrics.gauge({
    name: 'wharf_ci_jobs',
    help: 'CI jobs by status (pending: the queue depth)',
    labelNames: ['status'],
    async collect() {
      const counts = new Map((await q.countJobsByStatus(db)).map((r) => [r.status, r.n]))
      // Every status is reported, zeros included, so a query never sees a series vanish.
      for (const status of JOB_STATUSES) this.set({ status }, counts.get(status) ?? 0)
    },
  })
  metrics.gauge({
    name: 'wharf_ci_oldest_pending_job_seconds',
    help: 'How long the longest-waiting pending job has been queued (0 when none waits)',
    async collect() {
      const t = await q.oldestPendingQueuedAt(db)
      this.set(t ? Math.max(0, (Date.now() - new Date(t).getTime()) / 1000) : 0)
    },
  })
  metrics.gauge({
    name: 'wharf_ci_runners_online',
    help: "Runners that asked for jobs within GitLab's online window (2 hours)",
    async collect() {
      this.set(await q.countRunnersContactedSince(db, new Date(Date.now() - ONLINE_SECONDS * 1000).toISOString()))
    },
  })
}
