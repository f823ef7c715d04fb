// Small direct registry-API and OCI-layout helpers for the end-to-end tests
// (for what the clients cannot do, and to check what they did).
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { gunzipSync } from 'node:zlib'
import path from 'node:path'

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ')

export interface HttpResult {
  status: number
  headers: Headers
  body: Buffer
  /** "METHOD URL -> STATUS" plus the body, for assertion messages. */
  describe: string
}

export interface Creds {
  username: string
  password: string
}

export interface HttpInit extends RequestInit {
  /**
   * Who answers a Bearer challenge: credentials, 'anonymous' (a token without credentials), or
   * 'none' (never fetch a token). Default: the credentials registered for the URL's origin.
   */
  as?: Creds | 'anonymous' | 'none'
}

const registered = new Map<string, Creds>()

/** Credentials http() uses for a registry's Bearer challenges (startWharf registers root's). */
export function registerCredentials(base: string, creds: Creds | undefined): void {
  const origin = new URL(base).origin
  if (creds) registered.set(origin, creds)
  else registered.delete(origin)
}

/** Parses `Bearer realm="...",service="...",scope="..."` (the Docker token auth challenge). */
export function parseChallenge(header: string | null): Record<string, string> | undefined {
  if (!header || !/^bearer /i.test(header)) return undefined
  const out: Record<string, string> = {}
  for (const m of header.slice(7).matchAll(/(\w+)="([^"]*)"/g)) out[m[1]!] = m[2]!
  return out
}

/** A registry token from the challenge's realm, as docker would ask for it. */
export async function registryToken(
  challenge: Record<string, string>,
  as: Creds | 'anonymous',
  extraScopes: string[] = [],
): Promise<string> {
  const url = new URL(challenge.realm!)
  if (challenge.service) url.searchParams.set('service', challenge.service)
  for (const s of [challenge.scope, ...extraScopes]) if (s) url.searchParams.append('scope', s)
  const headers: Record<string, string> = {}
  if (as !== 'anonymous') headers.authorization = `Basic ${Buffer.from(`${as.username}:${as.password}`).toString('base64')}`
  const res = await fetch(url, { headers, signal: AbortSignal.timeout(30_000) })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`GET ${url} -> ${res.status}: ${text}`)
  return (JSON.parse(text) as { token: string }).token
}

function hasAuthorization(headers: RequestInit['headers']): boolean {
  return headers !== undefined && new Headers(headers).has('authorization')
}

/**
 * One registry request. A 401 with a Bearer challenge is answered like a client would: a token
 * for the challenged scope (plus `from`'s pull scope for a mount) from the realm, then one retry.
 */
export async function http(method: string, url: string, init: HttpInit = {}): Promise<HttpResult> {
  const { as, ...rest } = init
  const send = async (headers: RequestInit['headers']) => {
    const res = await fetch(url, { ...rest, ...(headers ? { headers } : {}), method, signal: rest.signal ?? AbortSignal.timeout(30_000) })
    return { res, body: Buffer.from(await res.arrayBuffer()) }
  }
  let { res, body } = await send(rest.headers)
  const challenge = res.status === 401 ? parseChallenge(res.headers.get('www-authenticate')) : undefined
  const who = as ?? registered.get(new URL(url).origin) ?? 'anonymous'
  if (challenge?.realm && who !== 'none' && !hasAuthorization(rest.headers)) {
    const from = new URL(url).searchParams.get('from')
    const token = await registryToken(challenge, who, from ? [`repository:${from}:pull`] : [])
    const headers = new Headers(rest.headers)
    headers.set('authorization', `Bearer ${token}`)
    ;({ res, body } = await send(headers))
  }
  const hdrs = [...res.headers.entries()].map(([k, v]) => `${k}: ${v}`).join('\n')
  const text = body.length > 2000 ? `${body.subarray(0, 2000).toString('utf8')}…` : body.toString('utf8')
  return {
    status: res.status,
    headers: res.headers,
    body,
    describe: `${method} ${url} -> ${res.status}\n${hdrs}\n\n${text}`,
  }
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

export function getManifest(base: string, name: string, ref: string, accept = MANIFEST_ACCEPT) {
  return http('GET', `${base}/v2/${name}/manifests/${ref}`, { headers: { accept } })
}

export function headManifest(base: string, name: string, ref: string, accept = MANIFEST_ACCEPT) {
  return http('HEAD', `${base}/v2/${name}/manifests/${ref}`, { headers: { accept } })
}

export function deleteManifest(base: string, name: string, ref: string) {
  return http('DELETE', `${base}/v2/${name}/manifests/${ref}`)
}

export async function listTags(base: string, name: string): Promise<{ status: number; tags: string[]; describe: string }> {
  const r = await http('GET', `${base}/v2/${name}/tags/list`)
  if (r.status !== 200) return { status: r.status, tags: [], describe: r.describe }
  const json = JSON.parse(r.body.toString('utf8')) as { tags?: string[] | null }
  return { status: r.status, tags: [...(json.tags ?? [])].sort(), describe: r.describe }
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: { architecture: string; os: string; variant?: string }
  annotations?: Record<string, string>
}

export interface ImageManifest {
  schemaVersion: number
  mediaType?: string
  config: Descriptor
  layers: Descriptor[]
}

export interface ImageIndex {
  schemaVersion: number
  mediaType?: string
  manifests: Descriptor[]
}

/** Read a blob of an OCI image layout. */
export function readLayoutBlob(layout: string, digest: string): Promise<Buffer> {
  const [alg, hex] = digest.split(':')
  if (!alg || !hex) throw new Error(`bad digest ${digest}`)
  return readFile(path.join(layout, 'blobs', alg, hex))
}

/** The descriptor a ref name (org.opencontainers.image.ref.name) points to in an OCI layout. */
export async function layoutRef(layout: string, ref: string): Promise<Descriptor> {
  const index = JSON.parse(await readFile(path.join(layout, 'index.json'), 'utf8')) as ImageIndex
  const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === ref)
  if (!d) throw new Error(`no ref ${ref} in ${layout}/index.json`)
  return d
}

export async function layoutManifest(layout: string, ref: string): Promise<{ digest: string; manifest: ImageManifest; raw: Buffer }> {
  const d = await layoutRef(layout, ref)
  const raw = await readLayoutBlob(layout, d.digest)
  return { digest: d.digest, manifest: JSON.parse(raw.toString('utf8')) as ImageManifest, raw }
}

/** A repository name unique to this run, under e2e/. */
export function uniqueRepo(prefix: string): string {
  return `e2e/${prefix}-${process.pid}-${Math.floor(Math.random() * 1e6)}`
}

/** Regular files of a tar archive (gzip-compressed or not): path (without a leading ./) → content. */
export function tarFiles(archive: Buffer): Map<string, Buffer> {
  const buf = archive[0] === 0x1f && archive[1] === 0x8b ? gunzipSync(archive) : archive
  const files = new Map<string, Buffer>()
  const str = (b: Buffer) => {
    const z = b.indexOf(0)
    return b.subarray(0, z < 0 ? b.length : z).toString('utf8')
  }
  let off = 0
  let paxPath: string | undefined
  let longName: string | undefined
  while (off + 512 <= buf.length) {
    const h = buf.subarray(off, off + 512)
    if (h.every((b) => b === 0)) break
    const size = parseInt(str(h.subarray(124, 136)).trim() || '0', 8)
    const type = String.fromCharCode(h[156] ?? 0x30)
    const magic = str(h.subarray(257, 263))
    const prefix = magic.startsWith('ustar') ? str(h.subarray(345, 500)) : ''
    let name = prefix ? `${prefix}/${str(h.subarray(0, 100))}` : str(h.subarray(0, 100))
    const data = buf.subarray(off + 512, off + 512 + size)
    off += 512 + Math.ceil(size / 512) * 512
    if (type === 'x') {
      for (const rec of data.toString('utf8').split('\n')) {
        const m = /^\d+ path=(.*)$/.exec(rec)
        if (m) paxPath = m[1]
      }
      continue
    }
    if (type === 'g') continue
    if (type === 'L') {
      longName = str(data)
      continue
    }
    name = paxPath ?? longName ?? name
    paxPath = undefined
    longName = undefined
    if (type === '0' || type === '\0' || type === '7') files.set(name.replace(/^\.\//, ''), Buffer.from(data))
  }
  return files
}
