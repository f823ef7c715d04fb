// The storage layout, in one place (only this file knows it):
//
//   blobs/<algorithm>/<first two hex chars>/<hex>   committed, content-addressed blob bytes
//   uploads/<uuid>                                   an upload session's temp file
//
// and in CI's storage (`<data>/ci`, or the bucket's `ci/` prefix):
//
//   traces/<job id>.log                              a job's log
//   artifacts/<job id>/<file name>                   a job's artifacts (file names from safeFilename)
//   artifacts/<job id>/.upload-<uuid>                an artifacts upload before its commit
//
// Inputs are validated types (Digest is lowercase hex, upload ids are UUIDs), so no
// path built here can contain "/" or ".." from a request.
import type { ParsedDigest } from '../core/digest.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

export function isUploadId(id: string): boolean {
  return UUID.test(id)
}

export function blobPath(d: ParsedDigest): string {
  return `${BLOBS_DIR}/${blobPathInBlobsDir(d)}`
}

/** A blob's path below `blobs/`: what a reverse proxy's internal location mapped to that directory serves (storage.filesystem.accelRedirect). */
export function blobPathInBlobsDir(d: ParsedDigest): string {
  return `${d.algorithm}/${d.hex.slice(0, 2)}/${d.hex}`
}

export function uploadPath(id: string): string {
  if (!isUploadId(id)) throw new Error('upload id is not a uuid')
  return `uploads/${id}`
}

export const UPLOADS_DIR = 'uploads'

export const BLOBS_DIR = 'blobs'

/** The digest a committed blob's path stands for (`blobs/sha256/ab/<hex>`), or undefined for anything else. */
export function blobDigestFromPath(path: string): string | undefined {
  const m = /^blobs\/([a-z0-9]+)\/([0-9a-f]{2})\/([0-9a-f]+)$/.exec(path)
  return m && m[3]!.startsWith(m[2]!) ? `${m[1]}:${m[3]}` : undefined
}

export function tracePath(jobId: number): string {
  return `traces/${jobId}.log`
}

/** `filename` is one safe path segment (ci/artifacts.ts: safeFilename). */
export function artifactPath(jobId: number, filename: string): string {
  if (filename === '' || filename.includes('/') || filename === '.' || filename === '..')
    throw new Error('artifact file name is not one segment')
  return `artifacts/${jobId}/${filename}`
}
