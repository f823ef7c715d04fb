import { parseDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES, SCHEMA1_TYPES } from './media-types.ts'

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  urls?: string[]
  platform?: { os?: string; architecture?: string; variant?: string }
}

/** What the registry needs to know about a pushed manifest, taken from its validated JSON. */
export interface ParsedManifest {
  mediaType: string
  artifactType: string | null
  config: Descriptor | null
  /** Blobs this manifest requires in the repository (config and non-foreign layers). */
  blobs: Descriptor[]
  /** Child manifests of an index. */
  manifests: Descriptor[]
  subject: Descriptor | null
  annotations: Record<string, string> | null
}

const GENERIC_TYPES: ReadonlySet<string> = new Set(['application/json', 'application/octet-stream'])

const invalid = (reason: string, detail: Record<string, unknown> = {}): WharfError =>
  new WharfError('MANIFEST_INVALID', `manifest invalid: ${reason}`, { reason, ...detail })

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function descriptor(v: unknown, where: string, requireMediaType: boolean): Descriptor {
  if (!isObject(v)) throw invalid(`${where} must be a descriptor object`)
  const { mediaType, digest, size, urls } = v
  if (requireMediaType && typeof mediaType !== 'string') throw invalid(`${where}.mediaType is required`)
  if (
    mediaType !== undefined &&
    (typeof mediaType !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*\/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*$/.test(mediaType))
  ) {
    throw invalid(`${where}.mediaType is not a media type`)
  }
  if (typeof digest !== 'string') throw invalid(`${where}.digest is required`)
  try {
    parseDigest(digest)
  } catch {
    throw invalid(`${where}.digest is not a valid digest`, { digest: digest.slice(0, 200) })
  }
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw invalid(`${where}.size must be a non-negative integer`)
  if (urls !== undefined && (!Array.isArray(urls) || urls.some((u) => typeof u !== 'string')))
    throw invalid(`${where}.urls must be a list of strings`)
  const out: Descriptor = { mediaType: (mediaType as string | undefined) ?? '', digest, size }
  if (urls) out.urls = urls as string[]
  if (isObject(v.platform)) out.platform = v.platform as Descriptor['platform']
  return out
}

function annotations(v: unknown, where: string): Record<string, string> | null {
  if (v === undefined) return null
  if (!isObject(v) || Object.values(v).some((x) => typeof x !== 'string')) throw invalid(`${where} must map strings to strings`)
  return v as Record<string, string>
}

/**
 * Validates a manifest body against its Content-Type (spec: #pushing-manifests):
 * JSON, schemaVersion 2, a consistent mediaType, well-formed descriptors.
 */
export function parseManifest(body: Buffer, contentType: string | undefined): ParsedManifest {
  let doc: unknown
  try {
    doc = JSON.parse(body.toString('utf8'))
  } catch {
    throw invalid('body is not valid JSON')
  }
  if (!isObject(doc)) throw invalid('body must be a JSON object')
  const rawHeader = contentType?.split(';')[0]?.trim().toLowerCase()
  // Generic types say nothing about the manifest kind; treat them like a missing header.
  const headerType = rawHeader && !GENERIC_TYPES.has(rawHeader) ? rawHeader : undefined
  const bodyType = doc.mediaType
  if (bodyType !== undefined && typeof bodyType !== 'string') throw invalid('mediaType must be a string')
  if (headerType && SCHEMA1_TYPES.has(headerType)) throw invalid('Docker schema 1 manifests are not supported; push with a current client')
  if (doc.schemaVersion !== 2) throw invalid('schemaVersion must be 2', { schemaVersion: doc.schemaVersion })

  // Content-Type wins when it names a manifest type; the body's mediaType must then agree.
  const known = (t: string | undefined) => t !== undefined && (MANIFEST_TYPES.has(t) || INDEX_TYPES.has(t))
  let mediaType: string
  if (known(headerType)) mediaType = headerType!
  else if (headerType !== undefined) throw invalid('unsupported manifest media type', { mediaType: headerType })
  else if (known(bodyType as string | undefined)) mediaType = bodyType as string
  else if (bodyType === undefined && headerType === undefined)
    mediaType = Array.isArray(doc.manifests) ? MEDIA_TYPES.ociIndex : MEDIA_TYPES.ociManifest
  else throw invalid('unsupported manifest media type', { mediaType: headerType ?? bodyType })
  if (bodyType !== undefined && bodyType !== mediaType)
    throw invalid('mediaType in body does not match Content-Type', { contentType: mediaType, mediaType: bodyType })
  if ((mediaType === MEDIA_TYPES.dockerManifest || mediaType === MEDIA_TYPES.dockerList) && bodyType === undefined) {
    throw invalid('Docker manifests must carry their mediaType')
  }

  const artifactType = doc.artifactType
  if (artifactType !== undefined && typeof artifactType !== 'string') throw invalid('artifactType must be a string')
  const subject = doc.subject === undefined ? null : descriptor(doc.subject, 'subject', true)
  const notes = annotations(doc.annotations, 'annotations')

  if (MANIFEST_TYPES.has(mediaType)) {
    if (doc.manifests !== undefined) throw invalid('an image manifest cannot have manifests')
    const config = descriptor(doc.config, 'config', true)
    if (!Array.isArray(doc.layers)) throw invalid('layers must be a list')
    const layers = doc.layers.map((l, i) => descriptor(l, `layers[${i}]`, true))
    // Foreign (non-distributable) layers live elsewhere; only the rest must be in the repository.
    const blobs = [config, ...layers.filter((l) => !l.urls?.length)]
    return {
      mediaType,
      artifactType: (artifactType as string | undefined) ?? null,
      config,
      blobs,
      manifests: [],
      subject,
      annotations: notes,
    }
  }
  if (doc.layers !== undefined || doc.config !== undefined) throw invalid('an index cannot have config or layers')
  if (!Array.isArray(doc.manifests)) throw invalid('manifests must be a list')
  const manifests = doc.manifests.map((m, i) => descriptor(m, `manifests[${i}]`, true))
  return {
    mediaType,
    artifactType: (artifactType as string | undefined) ?? null,
    config: null,
    blobs: [],
    manifests,
    subject,
    annotations: notes,
  }
}
