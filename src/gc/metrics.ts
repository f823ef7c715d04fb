// Garbage collection's Prometheus series (registered once per collector, on the server's Metrics).
import type { Counter, Histogram } from 'prom-client'
import type { Metrics } from '../ops/index.ts'

export type Outcome = 'completed' | 'failed' | 'skipped'
export type Kind = 'manifest' | 'link' | 'blob'

export class GcMetrics {
  readonly runs: Counter<'outcome'>
  readonly freedBytes: Counter
  readonly deleted: Counter<'kind'>
  readonly duration: Histogram

  constructor(metrics: Metrics) {
    this.runs = metrics.counter({
      name: 'wharf_gc_runs_total',
      help: 'Garbage collections by outcome (skipped: another one held the lease)',
      labelNames: ['outcome'],
    })
    this.freedBytes = metrics.counter({
      name: 'wharf_gc_freed_bytes_total',
      help: 'Blob bytes removed from storage by garbage collection and cache purges',
    })
    this.deleted = metrics.counter({
      name: 'wharf_gc_deleted_total',
      help: 'Manifests, blob links and blobs deleted by garbage collection',
      labelNames: ['kind'],
    })
    this.duration = metrics.histogram({
      name: 'wharf_gc_duration_seconds',
      help: 'Wall time of a garbage collection',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
    })
  }
}
