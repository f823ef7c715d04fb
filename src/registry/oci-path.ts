import { parseDigest, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import { isTag, parseRepoName, parseTag, type RepoName, type Tag } from '../core/names.ts'
import { isUploadId } from '../storage/paths.ts'

export type Reference = { kind: 'tag'; tag: Tag } | { kind: 'digest'; digest: ParsedDigest }
/** A manifest reference that is neither a digest nor a valid tag: nothing can be stored under it, so reads find nothing (404) and a push is refused (400). */
export type InvalidTag = { kind: 'invalid-tag'; text: string }

/** What a /v2 URL addresses. Names contain "/", so the path is parsed from its known suffixes. */
export type OciPath =
  | { kind: 'base' }
  | { kind: 'catalog' }
  | { kind: 'manifest'; name: RepoName; reference: Reference | InvalidTag }
  | { kind: 'blob'; name: RepoName; digest: ParsedDigest }
  | { kind: 'uploads'; name: RepoName }
  | { kind: 'upload'; name: RepoName; id: string }
  | { kind: 'tags'; name: RepoName }
  | { kind: 'referrers'; name: RepoName; digest: ParsedDigest }

const ROUTES: ReadonlyArray<[RegExp, (name: RepoName, arg: string) => OciPath]> = [
  [/^(.+)\/blobs\/uploads\/?$/, (name) => ({ kind: 'uploads', name })],
  [
    /^(.+)\/blobs\/uploads\/([^/]+)$/,
    (name, id) => {
      if (!isUploadId(id)) throw new WharfError('BLOB_UPLOAD_UNKNOWN', 'blob upload unknown to registry', { uuid: id.slice(0, 100) })
      return { kind: 'upload', name, id }
    },
  ],
  [/^(.+)\/blobs\/([^/]+)$/, (name, d) => ({ kind: 'blob', name, digest: parseDigest(d) })],
  [
    /^(.+)\/manifests\/([^/]+)$/,
    (name, ref) => ({
      kind: 'manifest',
      name,
      reference: ref.includes(':') || isTag(ref) ? parseReference(ref) : { kind: 'invalid-tag', text: ref },
    }),
  ],
  [/^(.+)\/tags\/list$/, (name) => ({ kind: 'tags', name })],
  [/^(.+)\/referrers\/([^/]+)$/, (name, d) => ({ kind: 'referrers', name, digest: parseDigest(d) })],
]

export function parseReference(ref: string): Reference {
  return ref.includes(':') ? { kind: 'digest', digest: parseDigest(ref) } : { kind: 'tag', tag: parseTag(ref) }
}

/** Parses the decoded part of the URL path after "/v2/" (no query string). Returns undefined for unknown routes. */
export function parseOciPath(rest: string): OciPath | undefined {
  if (rest === '') return { kind: 'base' }
  if (rest === '_catalog') return { kind: 'catalog' }
  for (const [re, build] of ROUTES) {
    const m = re.exec(rest)
    if (m) return build(parseRepoName(m[1]!), m[2] ?? '')
  }
  return undefined
}
