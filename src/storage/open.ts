import { join } from 'node:path'
import type { BlobDriver } from './driver.ts'
import { createFsDriver } from './fs-driver.ts'

/** The `storage` settings (config/schema.ts), as far as opening a driver needs them. */
export interface StorageSettings {
  driver: 'filesystem' | 's3'
  s3?: {
    endpoint?: string
    region?: string
    bucket?: string
    prefix?: string
    accessKeyId?: string
    secretAccessKey?: string
    forcePathStyle?: boolean
    redirect?: boolean
  }
}

/** How long a presigned blob URL (storage.s3.redirect) stays valid: enough for a slow client to start its download. */
const REDIRECT_SECONDS = 300

/**
 * The configured storage: the registry's (blobs, upload temp files) and CI's (job logs, artifacts).
 * On the filesystem they are `<data>/storage` and `<data>/ci`; on S3, the prefix and its `ci/`.
 * The S3 driver is imported only when configured: the AWS SDK costs about 0.3 s of start-up and
 * its memory, which a filesystem install and every `wharf gc`/`wharf admin` run would pay for nothing.
 */
export async function openStorage(data: string, storage: StorageSettings): Promise<{ blobs: BlobDriver; ci: BlobDriver }> {
  const s3 = storage.s3
  if (storage.driver === 'filesystem' || !s3?.bucket)
    return { blobs: createFsDriver(join(data, 'storage')), ci: createFsDriver(join(data, 'ci')) }
  const { createS3Driver } = await import('./s3-driver.ts')
  const base = {
    endpoint: s3.endpoint,
    region: s3.region ?? 'us-east-1',
    bucket: s3.bucket,
    accessKeyId: s3.accessKeyId,
    secretAccessKey: s3.secretAccessKey,
    forcePathStyle: s3.forcePathStyle ?? false,
  }
  const prefix = s3.prefix ?? ''
  return {
    blobs: createS3Driver({ ...base, prefix, redirectSeconds: s3.redirect ? REDIRECT_SECONDS : undefined }),
    ci: createS3Driver({ ...base, prefix: `${prefix}ci/` }),
  }
}
