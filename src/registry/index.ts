import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import type { Metrics } from '../ops/metrics.ts'
import { Blobs } from './blobs.ts'
import { Manifests } from './manifests.ts'
import { Uploads } from './uploads.ts'

export { ociApi, ociErrorHandler, registryRoutes, type PullThrough, type RegistryOptions } from './routes.ts'
export { acceptable, defaultPlatformChild } from './manifests.ts'
export { INDEX_TYPES, MANIFEST_TYPES } from './media-types.ts'
export { parseOciPath, type OciPath, type Reference } from './oci-path.ts'
export { CLAIM_TTL_MS, parseRange, type ByteRange } from './blobs.ts'
export { offloadUri } from './accel-redirect.ts'
/** Read-only lookups for the pull-through cache, which keeps its images in the registry's tables. */
export * as registryQueries from './queries.ts'
/** Given to projects/, whose deletions take the repositories under the deleted paths along (same transaction). */
export { deleteRepositoriesUnder } from './queries.ts'
export { Blobs, Manifests, Uploads }

export interface Registry {
  blobs: Blobs
  uploads: Uploads
  manifests: Manifests
  /** Counts bytes in and out and uploads in flight. */
  metrics: Metrics
  /** Storage quota of each top-level namespace (bytes), checked before an upload starts; none when undefined. */
  namespaceStorageBytes: number | undefined
}

export function createRegistry(
  db: Kysely<Database>,
  driver: BlobDriver,
  opts: {
    pageMax: number
    metrics: Metrics
    namespaceStorageBytes?: number | undefined
    /** gc.graceSeconds: blob links a HEAD or GET finds are renewed well before it runs out. */
    gcGraceSeconds: number
    /** storage.filesystem.accelRedirect: blob GETs a reverse proxy asks to offload are answered with X-Accel-Redirect. */
    accelRedirect?: string | undefined
  },
): Registry {
  const manifests = new Manifests(db, opts)
  // Read when Prometheus scrapes (one query), so pushes and deletes cost nothing extra.
  opts.metrics.gauge({
    name: 'wharf_registry_storage_bytes',
    help: 'Bytes of blobs the image repositories hold, each shared blob counted once',
    async collect() {
      this.set(await manifests.storageUsed())
    },
  })
  opts.metrics.gauge({
    name: 'wharf_registry_projects_over_soft_quota',
    help: 'Projects whose registry storage is at or over their soft quota (pushes still accepted, with a warning)',
    async collect() {
      this.set(await manifests.quotas.overSoftLimit())
    },
  })
  return {
    blobs: new Blobs(db, driver, { graceSeconds: opts.gcGraceSeconds, accelRedirect: opts.accelRedirect }),
    uploads: new Uploads(db, driver, opts.metrics),
    manifests,
    metrics: opts.metrics,
    namespaceStorageBytes: opts.namespaceStorageBytes,
  }
}
