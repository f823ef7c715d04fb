// The pull-through cache: upstream images cached in Wharf's own store, served to GitLab's group
// path (`<group>/dependency_proxy/containers/<image>`) and to the mirror listener.
import { randomUUID } from 'node:crypto'
import type { Kysely } from 'kysely'
import type { Writable } from 'node:stream'
import { parseDigest, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import { splitDependencyProxyName, type RepoName } from '../core/names.ts'
import { SlabPool } from '../core/slabs.ts'
import type { UpstreamConfig } from '../config/schema.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database, Manifest } from '../metadata/schema.ts'
import type { Groups } from '../projects/index.ts'
import {
  acceptable,
  defaultPlatformChild,
  INDEX_TYPES,
  MANIFEST_TYPES,
  registryQueries as rq,
  type ByteRange,
  type Reference,
  type Registry,
} from '../registry/index.ts'
import type { BlobDriver } from '../storage/driver.ts'
import type { Metrics } from '../ops/index.ts'
import { BlobFlight } from './blob-flight.ts'
import { ProxyMetrics } from './metrics.ts'
import { DOCKER_HUB, groupCacheRepository, mirrorCacheRepository, upstreamImageName } from './names.ts'
import * as q from './queries.ts'
import { UpstreamClient, type UpstreamResponse } from './upstream-client.ts'

/** Cached blobs are freed as soon as their repositories go, whatever their age. */
const FAR_FUTURE = '9999-12-31T23:59:59.999Z'

/** What the cache asks upstreams for: every manifest kind, so a tag's digest is the same for all clients. */
const UPSTREAM_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

export interface ProxyOptions {
  upstreams: readonly UpstreamConfig[]
  /** A cached tag is served without asking the upstream for this long. */
  tagTtlSeconds: number
  upstreamTimeoutSeconds: number
  manifestBytes: number
}

/** Where one image is cached and where it comes from. */
export interface CacheTarget {
  repository: RepoName
  upstream: UpstreamClient
  upstreamName: RepoName
  /** The group whose dependency proxy this is; null for the mirror listener. */
  namespaceId: number | null
}

export interface ManifestResult {
  row: Manifest
  /** Set when the cached copy is served because the upstream could not confirm it. */
  warning?: string
  /** Nothing was fetched for this request (a hit, a revalidated or stale copy). */
  fromCache: boolean
}

export type BlobSource =
  | {
      kind: 'stored'
      size: number
      open(range?: ByteRange): Promise<(dest: Writable) => Promise<void>>
      /** The file's URI in a reverse proxy's internal location (storage.filesystem.accelRedirect), when configured. */
      internalUri: string | undefined
    }
  /** A HEAD answered from the upstream's headers (nothing cached). */
  | { kind: 'upstream'; size: number | undefined }
  /**
   * A miss, streamed while the cache fills. `send` resolves once the client has every verified
   * byte; `stored` once the blob is committed and linked into the target's repository (or the
   * flight failed: then `send` rejects).
   */
  | { kind: 'flight'; flight: BlobFlight; send(dest: Writable): Promise<void>; stored: Promise<void> }

/** A manifest as an upstream served it. */
interface Fetched {
  body: Buffer
  contentType: string | undefined
  digest: ParsedDigest | undefined
}

export interface UpstreamStatus {
  host: string
  url: string
  authenticated: boolean
  rateLimit: { limit: number; remaining: number; windowSeconds: number | null; observedAt: string } | null
  lastError: { message: string; at: string } | null
}

export class DependencyProxy {
  private readonly db: Kysely<Database>
  private readonly registry: Registry
  private readonly groups: Groups
  private readonly driver: BlobDriver
  private readonly upstreams: UpstreamClient[]
  private readonly opts: ProxyOptions
  private readonly manifestFlights = new Map<string, Promise<Fetched>>()
  private readonly blobFlights = new Map<string, BlobFlight>()
  /** The memory blob flights copy upstream chunks into (one pool: flights at once share its free slabs). */
  private readonly slabs = new SlabPool()
  readonly metrics: ProxyMetrics

  constructor(db: Kysely<Database>, registry: Registry, groups: Groups, driver: BlobDriver, opts: ProxyOptions, metrics: Metrics) {
    this.db = db
    this.registry = registry
    this.groups = groups
    this.driver = driver
    this.opts = opts
    this.metrics = new ProxyMetrics(metrics, () => this.upstreams)
    this.upstreams = opts.upstreams.map(
      (u) =>
        new UpstreamClient(u, {
          timeoutMs: opts.upstreamTimeoutSeconds * 1000,
          onError: (reason) => this.metrics.upstreamError(u.host, reason),
        }),
    )
  }

  // ---- targets ----

  /** `<group>/dependency_proxy/containers/<image>` → Docker Hub's image, cached for that group. */
  async groupTarget(name: RepoName): Promise<CacheTarget> {
    const split = splitDependencyProxyName(name)
    if (!split) throw new WharfError('NAME_UNKNOWN', 'repository name not known to registry', { name })
    const group = await this.groups.findGroupByPath(split.group)
    // Authorization already required access to the group; a deleted one is simply unknown.
    if (!group) throw new WharfError('NAME_UNKNOWN', `no group ${split.group}`, { name })
    const upstream = this.upstreams.find((u) => u.host === DOCKER_HUB) ?? this.upstreams[0]!
    const upstreamName = upstreamImageName(upstream.host, split.image)
    return { repository: groupCacheRepository(group.full_path, upstreamName), upstream, upstreamName, namespaceId: group.id }
  }

  /** The mirror's `/v2/<name>`: the first upstream's image, or the upstream containerd names with `?ns=`. */
  mirrorTarget(name: RepoName, ns: string | undefined): CacheTarget {
    const upstream =
      ns === undefined
        ? this.upstreams[0]!
        : this.upstreams.find((u) => u.host === ns.toLowerCase() || (ns === 'index.docker.io' && u.host === DOCKER_HUB))
    if (!upstream)
      throw new WharfError(
        'NAME_UNKNOWN',
        `this mirror has no upstream ${ns}; configured: ${this.upstreams.map((u) => u.host).join(', ')}`,
        { ns },
      )
    const upstreamName = upstreamImageName(upstream.host, name)
    return { repository: mirrorCacheRepository(upstream.host, upstreamName), upstream, upstreamName, namespaceId: null }
  }

  // ---- manifests ----

  async manifest(t: CacheTarget, ref: Reference, accept: string | undefined): Promise<ManifestResult> {
    const result = ref.kind === 'digest' ? await this.manifestByDigest(t, ref.digest) : await this.manifestByTag(t, ref.tag)
    const repositoryId = result.row.repository_id
    await q.recordPull(this.db, {
      repositoryId,
      namespaceId: t.namespaceId,
      upstream: t.upstream.host,
      upstreamName: t.upstreamName,
      at: nowIso(),
    })
    if (ref.kind === 'digest' || acceptable(accept, result.row.media_type)) return result
    // A client that cannot read an index gets the linux/amd64 image, as Docker Hub does.
    const child =
      INDEX_TYPES.has(result.row.media_type) && [...MANIFEST_TYPES].some((m) => acceptable(accept, m))
        ? defaultPlatformChild(result.row)
        : undefined
    if (child) {
      const { row, fromCache } = await this.manifestByDigest(t, parseDigest(child))
      if (acceptable(accept, row.media_type)) return { ...result, row, fromCache: result.fromCache && fromCache }
    }
    throw new WharfError('MANIFEST_UNKNOWN', `manifest is ${result.row.media_type}, which the Accept header does not allow`, {
      mediaType: result.row.media_type,
    })
  }

  private async manifestByDigest(t: CacheTarget, d: ParsedDigest): Promise<ManifestResult> {
    // Content named by its digest never changes: a cached copy is never revalidated.
    const cached = await rq.manifestByDigest(this.db, t.repository, d.digest)
    if (cached) return this.hit(t, cached)
    const fromCache = await this.fill(t, d.digest)
    return { row: (await rq.manifestByDigest(this.db, t.repository, d.digest))!, fromCache }
  }

  private hit(t: CacheTarget, row: Manifest): ManifestResult {
    this.metrics.lookup(t, 'manifest', 'hit')
    return { row, fromCache: true }
  }

  private async manifestByTag(t: CacheTarget, tag: string): Promise<ManifestResult> {
    const cached = await rq.manifestByTag(this.db, t.repository, tag)
    if (!cached) {
      const fromCache = await this.fill(t, tag)
      return { row: (await rq.manifestByTag(this.db, t.repository, tag))!, fromCache }
    }
    const checked = await q.tagCheckedAt(this.db, cached.repository_id, tag)
    if (checked && Date.now() - Date.parse(checked) < this.opts.tagTtlSeconds * 1000) return this.hit(t, cached)
    // Stale: a HEAD (free on Docker Hub) tells whether the tag moved; only then is it fetched again.
    try {
      const head = await t.upstream.request('HEAD', `/v2/${t.upstreamName}/manifests/${tag}`, {
        accept: UPSTREAM_ACCEPT,
        scope: this.scope(t),
      })
      head.body.resume()
      if (head.status === 404)
        throw new WharfError('MANIFEST_UNKNOWN', `${t.upstream.host} has no tag ${t.upstreamName}:${tag} any more`, { tag })
      if (head.status !== 200) throw t.upstream.unavailable(`answered ${head.status} to a HEAD`)
      if (header(head, 'docker-content-digest') === cached.digest) {
        await q.setTagChecked(this.db, cached.repository_id, tag, nowIso())
        return this.hit(t, cached)
      }
      const fromCache = await this.fill(t, tag, true)
      return { row: (await rq.manifestByTag(this.db, t.repository, tag))!, fromCache }
    } catch (e) {
      // The upstream is down or out of pulls: the cached copy is better than nothing (and says so).
      if (e instanceof WharfError && (e.code === 'UPSTREAM_UNAVAILABLE' || e.code === 'TOOMANYREQUESTS')) {
        this.metrics.staleServed(t)
        return { row: cached, warning: `${e.message}; serving the copy cached ${checked ?? 'earlier'}`, fromCache: true }
      }
      throw e
    }
  }

  /**
   * Puts a manifest (by tag or digest) into the target's repository: copied from another cache of
   * the same upstream image when that copy is fresh (so the group path and the mirror share one
   * upstream fetch), else fetched. Concurrent misses share one upstream GET, which resolves only
   * once its first requester stored the manifest, so a later miss finds that copy instead of
   * fetching again. Resolves to true when nothing was fetched for this caller (a copy, or a
   * flight it joined).
   */
  private async fill(t: CacheTarget, ref: string, moved = false): Promise<boolean> {
    const byDigest = ref.includes(':')
    if (!moved) {
      const since = new Date(Date.now() - this.opts.tagTtlSeconds * 1000).toISOString()
      const copy = await q.cachedElsewhere(this.db, {
        upstream: t.upstream.host,
        upstreamName: t.upstreamName,
        exclude: t.repository,
        ...(byDigest ? { digest: ref } : { tag: ref, since }),
      })
      if (copy) {
        this.metrics.lookup(t, 'manifest', 'hit')
        await this.store(t, byDigest ? undefined : ref, {
          body: Buffer.from(copy.content),
          contentType: copy.media_type,
          digest: parseDigest(copy.digest),
        })
        return true
      }
    }
    const key = `${t.upstream.host}/${t.upstreamName}${byDigest ? '@' : ':'}${ref}`
    const running = this.manifestFlights.get(key)
    if (running) {
      this.metrics.lookup(t, 'manifest', 'coalesced')
      const fetched = await running
      await this.store(t, byDigest ? undefined : ref, fetched)
      return false
    }
    this.metrics.lookup(t, 'manifest', 'miss')
    const flight = (async () => {
      const fetched = await this.fetchManifest(t, ref)
      await this.store(t, byDigest ? undefined : ref, fetched)
      return fetched
    })().finally(() => this.manifestFlights.delete(key))
    this.manifestFlights.set(key, flight)
    await flight
    return false
  }

  private async store(t: CacheTarget, tag: string | undefined, f: Fetched): Promise<void> {
    await this.registry.manifests.cache(t.repository, tag, f.body, f.contentType, f.digest)
    const repositoryId = (await rq.findRepositoryId(this.db, t.repository))!
    await q.recordPull(this.db, {
      repositoryId,
      namespaceId: t.namespaceId,
      upstream: t.upstream.host,
      upstreamName: t.upstreamName,
      at: nowIso(),
    })
    if (tag !== undefined) await q.setTagChecked(this.db, repositoryId, tag, nowIso())
  }

  private async fetchManifest(t: CacheTarget, ref: string): Promise<Fetched> {
    const res = await t.upstream.request('GET', `/v2/${t.upstreamName}/manifests/${ref}`, { accept: UPSTREAM_ACCEPT, scope: this.scope(t) })
    if (res.status === 404) {
      res.body.resume()
      throw new WharfError(
        'MANIFEST_UNKNOWN',
        `${t.upstream.host} has no manifest ${t.upstreamName}${ref.includes(':') ? '@' : ':'}${ref}`,
        { upstream: t.upstream.host },
      )
    }
    if (res.status !== 200) {
      res.body.resume()
      throw t.upstream.unavailable(`answered ${res.status} to a manifest GET`)
    }
    const body = await t.upstream.readBody(res, this.opts.manifestBytes)
    this.metrics.fetched(t, 'manifest', body.length)
    const named = header(res, 'docker-content-digest')
    let digest: ParsedDigest | undefined
    try {
      digest = ref.includes(':') ? parseDigest(ref) : named ? parseDigest(named) : undefined
    } catch {
      digest = undefined
    }
    return { body, contentType: header(res, 'content-type'), digest }
  }

  // ---- blobs ----

  async blob(t: CacheTarget, d: ParsedDigest, head: boolean): Promise<BlobSource> {
    const stored = await this.storedBlob(t, d)
    if (stored) {
      this.metrics.lookup(t, 'blob', 'hit')
      return stored
    }
    if (head) {
      // Nothing to cache from a HEAD; answered from the upstream (blob HEADs cost no pulls).
      const res = await t.upstream.request('HEAD', `/v2/${t.upstreamName}/blobs/${d.digest}`, {
        scope: this.scope(t),
        followRedirects: true,
      })
      res.body.resume()
      if (res.status === 404) throw this.blobUnknown(t, d)
      if (res.status !== 200) throw t.upstream.unavailable(`answered ${res.status} to a blob HEAD`)
      const len = header(res, 'content-length')
      return { kind: 'upstream', size: len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined }
    }
    const flight = this.blobFlight(t, d)
    await flight.ready
    // The flight's own repository is linked by its commit; a client of another cache of the same
    // upstream image (another group, the mirror) links the blob into its own once it is stored.
    const linked = flight.settled().then(async () => {
      if (flight.state === 'done') await this.registry.blobs.linkStored(t.repository, d)
    })
    // A failed flight is reported by `send`; a failed link costs only a lookup, as storedBlob links again.
    linked.catch(() => {})
    return {
      kind: 'flight',
      flight,
      stored: linked,
      send: async (dest) => {
        if (await flight.follow(this.driver, dest)) return
        await linked
        const open = await this.registry.blobs.open(d)
        await open(dest)
      },
    }
  }

  private async storedBlob(t: CacheTarget, d: ParsedDigest): Promise<BlobSource | undefined> {
    let size = await rq.linkedBlobSize(this.db, t.repository, d.digest)
    if (size === undefined) {
      // Already in the store (pushed, or cached for another group): linked without an upstream
      // fetch, but only once a manifest this repository cached names it, so a digest alone never
      // reveals someone else's blob.
      const repositoryId = await rq.findRepositoryId(this.db, t.repository)
      if (
        repositoryId === undefined ||
        !(await q.blobReferencedIn(this.db, repositoryId, d.digest)) ||
        !(await this.registry.blobs.linkStored(t.repository, d))
      )
        return undefined
      size = await rq.linkedBlobSize(this.db, t.repository, d.digest)
      if (size === undefined) return undefined
    }
    return { kind: 'stored', size, open: (range) => this.registry.blobs.open(d, range), internalUri: this.registry.blobs.internalUri(d) }
  }

  /** One upstream GET per blob however many clients miss it at once. */
  private blobFlight(t: CacheTarget, d: ParsedDigest): BlobFlight {
    const key = `${t.upstream.host}/${t.upstreamName}@${d.digest}`
    const running = this.blobFlights.get(key)
    if (running) {
      this.metrics.lookup(t, 'blob', 'coalesced')
      return running
    }
    this.metrics.lookup(t, 'blob', 'miss')
    const flight = new BlobFlight(this.slabs)
    this.blobFlights.set(key, flight)
    void (async () => {
      const res = await t.upstream.request('GET', `/v2/${t.upstreamName}/blobs/${d.digest}`, {
        scope: this.scope(t),
        followRedirects: true,
      })
      if (res.status === 404) {
        res.body.resume()
        throw this.blobUnknown(t, d)
      }
      if (res.status !== 200) {
        res.body.resume()
        throw t.upstream.unavailable(`answered ${res.status} to a blob GET`)
      }
      const len = header(res, 'content-length')
      flight.size = len !== undefined && /^\d+$/.test(len) ? Number(len) : undefined
      try {
        const n = await this.registry.uploads.ingest(t.repository, d, res.body, {
          expectedSize: flight.size,
          slabs: this.slabs,
          onWrite: (path, n) => flight.progress(path, n),
          onData: (chunk) => flight.data(chunk),
          onVerified: () => flight.verify(),
        })
        this.metrics.fetched(t, 'blob', n)
      } catch (e) {
        res.body.destroy()
        // A broken or stalled transfer is the upstream's failure; a digest mismatch stays what it is.
        throw e instanceof WharfError ? e : t.upstream.unavailable(`the blob transfer broke off (${(e as Error).message})`)
      }
    })().then(
      () => {
        this.blobFlights.delete(key)
        flight.succeed()
      },
      (e: Error) => {
        this.blobFlights.delete(key)
        flight.fail(e)
      },
    )
    return flight
  }

  private blobUnknown(t: CacheTarget, d: ParsedDigest): WharfError {
    return new WharfError('BLOB_UNKNOWN', `${t.upstream.host} has no blob ${d.digest} in ${t.upstreamName}`, { digest: d.digest })
  }

  private scope(t: CacheTarget): string {
    return `repository:${t.upstreamName}:pull`
  }

  // ---- bookkeeping ----

  /** A group's cached images with their tags, and the bytes they hold. */
  async groupCache(namespaceId: number | null) {
    const images = await q.cachedImages(this.db, namespaceId)
    const size = await q.bytesOf(
      this.db,
      images.map((i) => i.repository_id),
    )
    const out = await Promise.all(
      images.map(async (i) => ({
        name: i.upstream_name,
        upstream: i.upstream,
        repository: i.name,
        tags: await q.tagsOf(this.db, i.repository_id),
        size: await q.bytesOf(this.db, [i.repository_id]),
        createdAt: i.created_at,
        lastPulledAt: i.last_pulled_at,
      })),
    )
    return { size, images: out }
  }

  /** Removes a group's cache and frees the blobs nothing else references. */
  async purgeGroup(namespaceId: number | null): Promise<{ images: number; freedBytes: number }> {
    const ids = (await q.cachedImages(this.db, namespaceId)).map((i) => i.repository_id)
    return { images: ids.length, freedBytes: await this.removeRepositories(ids) }
  }

  /** Removes cached images not pulled for `days` days (every group and the mirror). */
  async cleanup(days: number, now = Date.now()): Promise<{ images: number; freedBytes: number }> {
    const ids = await q.staleRepositoryIds(this.db, new Date(now - days * 86_400_000).toISOString())
    return { images: ids.length, freedBytes: await this.removeRepositories(ids) }
  }

  private async removeRepositories(ids: number[]): Promise<number> {
    if (ids.length === 0) return 0
    const digests = await q.linkedDigests(this.db, ids)
    await q.deleteRepositories(this.db, ids)
    // Garbage collection's own path, at once rather than after its grace period: a blob also pushed
    // to a project, cached elsewhere, or being pushed right now keeps its link and its bytes.
    const freed = await this.registry.blobs.deleteUnreferenced({ owner: `dependency-proxy:${randomUUID()}`, before: FAR_FUTURE, digests })
    return freed.reduce((n, b) => n + b.size, 0)
  }

  /** The upstreams with the rate-limit figures they last reported; never their credentials. */
  upstreamStatus(): UpstreamStatus[] {
    return this.upstreams.map((u, i) => {
      const cfg = this.opts.upstreams[i]!
      const rl = u.rateLimit
      return {
        host: u.host,
        url: u.url,
        authenticated: cfg.username !== undefined || cfg.token !== undefined,
        rateLimit: rl
          ? { limit: rl.limit, remaining: rl.remaining, windowSeconds: rl.windowSeconds ?? null, observedAt: rl.observedAt }
          : null,
        lastError: u.lastError ?? null,
      }
    })
  }
}

function header(res: UpstreamResponse, name: string): string | undefined {
  const v = res.headers[name]
  return Array.isArray(v) ? v[0] : v
}
