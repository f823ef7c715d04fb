// The pull-through cache's Prometheus series. Labels are closed sets: the configured upstream host,
// `kind` (manifest | blob), `way` (group: GitLab's group path; mirror: the mirror listener).
import type { Metrics } from '../ops/index.ts'
import type { UpstreamClient } from './upstream-client.ts'

export type Kind = 'manifest' | 'blob'
/** What a lookup came to: from the cache, fetched by this request, or joined another request's fetch. */
export type Outcome = 'hit' | 'miss' | 'coalesced'
export type UpstreamErrorReason = 'rate_limited' | 'unavailable'

/** What the series are labelled by (service.ts's CacheTarget; not imported, service.ts imports this file): the upstream, and a group's proxy or the mirror listener (null). */
type Target = { namespaceId: number | null; upstream: Pick<UpstreamClient, 'host'> }

const way = (t: Target) => (t.namespaceId === null ? 'mirror' : 'group')

export class ProxyMetrics {
  private readonly lookups
  private readonly stale
  private readonly errors
  private readonly bytes

  constructor(metrics: Metrics, upstreams: () => readonly UpstreamClient[]) {
    const labelNames = ['upstream', 'kind', 'way'] as const
    this.lookups = {
      hit: metrics.counter({
        name: 'wharf_dependency_proxy_hits_total',
        help: 'Manifest and blob lookups answered from the cache',
        labelNames,
      }),
      miss: metrics.counter({
        name: 'wharf_dependency_proxy_misses_total',
        help: 'Manifest and blob lookups that fetched from the upstream',
        labelNames,
      }),
      coalesced: metrics.counter({
        name: 'wharf_dependency_proxy_coalesced_total',
        help: "Manifest and blob lookups that joined another request's upstream fetch",
        labelNames,
      }),
    }
    this.stale = metrics.counter({
      name: 'wharf_dependency_proxy_stale_served_total',
      help: 'Cached tags served with a Warning because the upstream could not confirm them',
      labelNames: ['upstream', 'way'],
    })
    this.errors = metrics.counter({
      name: 'wharf_dependency_proxy_upstream_errors_total',
      help: 'Upstream failures by reason (rate_limited: 429; unavailable: unreachable, 5xx, broken transfer)',
      labelNames: ['upstream', 'reason'],
    })
    this.bytes = metrics.counter({
      name: 'wharf_dependency_proxy_bytes_total',
      help: 'Bytes served to clients from the cache (source=cache) and fetched from upstreams (source=upstream)',
      labelNames: ['upstream', 'kind', 'source'],
    })
    // The figures the upstream sent last, read at scrape time (absent until it sent any).
    const rateGauge = (name: `wharf_${string}`, help: string, pick: (rl: NonNullable<UpstreamClient['rateLimit']>) => number) =>
      metrics.gauge({
        name,
        help,
        labelNames: ['upstream'],
        collect() {
          this.reset()
          for (const u of upstreams()) if (u.rateLimit) this.set({ upstream: u.host }, pick(u.rateLimit))
        },
      })
    rateGauge(
      'wharf_dependency_proxy_upstream_ratelimit_limit',
      "The upstream's last reported ratelimit-limit (pulls per window)",
      (rl) => rl.limit,
    )
    rateGauge(
      'wharf_dependency_proxy_upstream_ratelimit_remaining',
      "The upstream's last reported ratelimit-remaining",
      (rl) => rl.remaining,
    )
  }

  lookup(t: Target, kind: Kind, outcome: Outcome): void {
    this.lookups[outcome].inc({ upstream: t.upstream.host, kind, way: way(t) })
  }

  staleServed(t: Target): void {
    this.stale.inc({ upstream: t.upstream.host, way: way(t) })
  }

  upstreamError(upstream: string, reason: UpstreamErrorReason): void {
    this.errors.inc({ upstream, reason })
  }

  servedFromCache(t: Target, kind: Kind, n: number): void {
    this.bytes.inc({ upstream: t.upstream.host, kind, source: 'cache' }, n)
  }

  fetched(t: Target, kind: Kind, n: number): void {
    this.bytes.inc({ upstream: t.upstream.host, kind, source: 'upstream' }, n)
  }
}
