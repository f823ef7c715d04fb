// Prometheus metrics (prom-client). One `Metrics` per server, made in the composition root and handed
// to the domains that count something: they create their own metrics through counter()/gauge()/
// histogram() (names start with `wharf_`), so a new domain adds metrics without touching this file.
// Values that live in the database (CI queue, runners) are gauges with a `collect` callback run at
// scrape time, never updated on every change.
import type { LogEvent } from 'kysely'
import {
  collectDefaultMetrics,
  Counter,
  Gauge,
  Histogram,
  Registry,
  type CounterConfiguration,
  type GaugeConfiguration,
  type HistogramConfiguration,
} from 'prom-client'

/** Request latency buckets (seconds): API calls take milliseconds, blob transfers minutes. */
const HTTP_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300]
/** Database and storage operations: SQLite answers in microseconds, an fsync in milliseconds. */
const OPERATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5]

/** Kysely's operation node kinds, as a small closed label set. */
const DB_OPERATIONS: Record<string, string> = {
  SelectQueryNode: 'select',
  InsertQueryNode: 'insert',
  UpdateQueryNode: 'update',
  DeleteQueryNode: 'delete',
}

type Config<T> = Omit<T, 'registers' | 'name'> & { name: `wharf_${string}` }

export class Metrics {
  readonly registry = new Registry()
  /** Requests by route template (never the raw URL: one series per route, not per repository). */
  readonly httpRequests: Counter<'route' | 'method' | 'status'>
  readonly httpDuration: Histogram<'route' | 'method'>
  /** Blob and manifest bodies received (`in`) and sent (`out`) by the registry. */
  readonly registryBytes: Counter<'direction' | 'kind'>
  /** Blob bodies being received right now (POST, PATCH, PUT of an upload). */
  readonly uploadsInFlight: Gauge
  readonly dbDuration: Histogram<'operation' | 'outcome'>
  readonly storageDuration: Histogram<'operation' | 'outcome'>

  /** `process`: also Node's process metrics and event-loop lag (the server; tests leave them out). */
  constructor(opts: { process?: boolean } = {}) {
    if (opts.process) {
      collectDefaultMetrics({ register: this.registry, prefix: 'wharf_' })
      // Gauges named *_total break Prometheus' naming rules (promtool rejects them); the same
      // counts are there per resource type in nodejs_active_{handles,requests,resources}.
      for (const name of ['active_handles_total', 'active_requests_total', 'active_resources_total'])
        this.registry.removeSingleMetric(`wharf_nodejs_${name}`)
    }
    this.httpRequests = this.counter({
      name: 'wharf_http_requests_total',
      help: 'HTTP requests by route template, method and status',
      labelNames: ['route', 'method', 'status'],
    })
    this.httpDuration = this.histogram({
      name: 'wharf_http_request_duration_seconds',
      help: 'HTTP request latency by route template and method',
      labelNames: ['route', 'method'],
      buckets: HTTP_BUCKETS,
    })
    this.registryBytes = this.counter({
      name: 'wharf_registry_bytes_total',
      help: 'Blob and manifest bytes received (in) and sent (out) by the registry',
      labelNames: ['direction', 'kind'],
    })
    this.uploadsInFlight = this.gauge({
      name: 'wharf_registry_uploads_in_flight',
      help: 'Blob upload requests whose body is being received',
    })
    this.dbDuration = this.histogram({
      name: 'wharf_db_query_duration_seconds',
      help: 'Database query latency by operation',
      labelNames: ['operation', 'outcome'],
      buckets: OPERATION_BUCKETS,
    })
    this.storageDuration = this.histogram({
      name: 'wharf_storage_operation_duration_seconds',
      help: 'Blob storage operation latency (opening, committing, deleting; not the transfer)',
      labelNames: ['operation', 'outcome'],
      buckets: OPERATION_BUCKETS,
    })
  }

  counter<L extends string>(config: Config<CounterConfiguration<L>>): Counter<L> {
    return new Counter({ ...config, registers: [this.registry] })
  }

  gauge<L extends string>(config: Config<GaugeConfiguration<L>>): Gauge<L> {
    return new Gauge({ ...config, registers: [this.registry] })
  }

  histogram<L extends string>(config: Config<HistogramConfiguration<L>>): Histogram<L> {
    return new Histogram({ ...config, registers: [this.registry] })
  }

  /** Kysely's `log` option: every query's duration, labelled by its kind (select, insert, ...). */
  readonly onQuery = (event: LogEvent): void => {
    const operation = DB_OPERATIONS[event.query.query.kind] ?? 'other'
    this.dbDuration.observe({ operation, outcome: event.level === 'error' ? 'error' : 'ok' }, event.queryDurationMillis / 1000)
  }

  /** The exposition text and its content type. */
  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType }
  }
}
