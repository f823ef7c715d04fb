import type { Kysely } from 'kysely'
import type { Database } from '../metadata/schema.ts'
import type { BlobDriver } from '../storage/driver.ts'
import type { Metrics } from '../ops/metrics.ts'
import { Blobs } from './blobs.ts'
import { Manifests } from './manifests.ts'
import { Uploads } from './uploads.ts'

export { ociErrorHandler, registryRoutes, type RegistryOptions } from './routes.ts'
export { Blobs, Manifests, Uploads }

export interface Registry {
  blobs: Blobs
  uploads: Uploads
  manifests: Manifests
  /** Counts bytes in and out and uploads in flight. */
  metrics: Metrics
}

export function createRegistry(db: Kysely<Database>, driver: BlobDriver, opts: { pageMax: number; metrics: Metrics }): Registry {
  return { blobs: new Blobs(db, driver), uploads: new Uploads(db, driver, opts.metrics), manifests: new Manifests(db, opts), metrics: opts.metrics }
}
