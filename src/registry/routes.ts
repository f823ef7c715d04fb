import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { parseDigest } from '../core/digest.ts'
import { unavailableFrom, WharfError } from '../core/errors.ts'
import { isClientDisconnect } from '../core/disconnect.ts'
import { parseRepoName, splitDependencyProxyName, type RepoName } from '../core/names.ts'
import { offloadUri } from './accel-redirect.ts'
import { parseRange, type Blobs } from './blobs.ts'
import type { Manifests, Page } from './manifests.ts'
import { MEDIA_TYPES } from './media-types.ts'
import { OCI_ERRORS, type OciErrorBody } from './oci-errors.ts'
import { parseOciPath, type OciPath, type Reference } from './oci-path.ts'
import type { Body, Uploads } from './uploads.ts'
import type { Action } from '../auth/access.ts'
import type { RegistryAuth } from '../auth/registry-auth.ts'
import type { RegistryClaims } from '../auth/registry-tokens.ts'
import { bindActor, labelRoute, type Actor } from '../core/request-log.ts'
import type { Metrics } from '../ops/metrics.ts'

/**
 * Serves pulls of GitLab's dependency proxy names (`<group>/dependency_proxy/containers/<image>`)
 * from the pull-through cache (src/proxy implements it; the registry only routes to it).
 */
export interface PullThrough {
  serve(target: Extract<OciPath, { kind: 'manifest' | 'blob' }>, req: FastifyRequest, reply: FastifyReply): Promise<unknown>
}

export interface RegistryOptions {
  blobs: Blobs
  uploads: Uploads
  manifests: Manifests
  manifestBytes: number
  auth: RegistryAuth
  /** The token endpoint named in Bearer challenges. */
  realm: string
  metrics: Metrics
  pullThrough?: PullThrough | undefined
  /** Storage quota of each top-level namespace (bytes); none when undefined. */
  namespaceStorageBytes?: number | undefined
}

type Query = Record<string, string | string[] | undefined>
type Ctx = { req: FastifyRequest; reply: FastifyReply; query: Query; opts: RegistryOptions; claims: RegistryClaims }

/** What a request needs from its token: any valid token, the catalog grant, or actions on one repository. */
type Need = { kind: 'any' } | { kind: 'catalog' } | { kind: 'repository'; name: RepoName; action: Action; mountFrom?: RepoName }

/** Repositories a mount without `from` may look through for a readable copy of the blob. */
const AUTO_MOUNT_CANDIDATES = 32

function need(t: OciPath, method: string, query: Query): Need {
  switch (t.kind) {
    case 'base':
      return { kind: 'any' }
    case 'catalog':
      return { kind: 'catalog' }
    case 'uploads': {
      const from = method === 'POST' && query.mount !== undefined ? validName(query.from) : undefined
      return { kind: 'repository', name: t.name, action: 'push', ...(from && from !== t.name ? { mountFrom: from } : {}) }
    }
    case 'upload':
      return { kind: 'repository', name: t.name, action: 'push' }
    case 'manifest':
    case 'blob':
      if (method === 'DELETE') return { kind: 'repository', name: t.name, action: 'delete' }
      return { kind: 'repository', name: t.name, action: method === 'PUT' ? 'push' : 'pull' }
    case 'tags':
    case 'referrers':
      return { kind: 'repository', name: t.name, action: 'pull' }
  }
}

// spec (docker token auth): a 401 names the realm, service and the scope to ask for.
function challenge(opts: RegistryOptions, n: Need, insufficient: boolean): string {
  let h = `Bearer realm="${opts.realm}",service="${opts.auth.tokens.service}"`
  if (n.kind === 'catalog') h += ',scope="registry:catalog:*"'
  if (n.kind === 'repository') {
    // A mount also needs pull on its source; distribution names both, space-separated, so clients
    // that request exactly the challenged scopes can mount.
    const source = n.mountFrom ? ` repository:${n.mountFrom}:pull` : ''
    h += `,scope="repository:${n.name}:${n.action === 'push' ? 'pull,push' : n.action}${source}"`
  }
  if (insufficient) h += ',error="insufficient_scope"'
  return h
}

/** Every /v2 request carries a registry token covering exactly what it does. */
async function authorize(t: OciPath, req: FastifyRequest, reply: FastifyReply, opts: RegistryOptions): Promise<RegistryClaims> {
  const n = need(t, req.method, req.query as Query)
  const header = req.headers.authorization
  if (!header || !/^bearer /i.test(header)) {
    reply.header('WWW-Authenticate', challenge(opts, n, false))
    throw new WharfError('UNAUTHORIZED', 'authentication required', {})
  }
  let claims: RegistryClaims
  try {
    claims = await opts.auth.verify(header.slice(7).trim())
  } catch (e) {
    reply.header('WWW-Authenticate', challenge(opts, n, false))
    throw e
  }
  if (n.kind === 'catalog' && !claims.access.some((a) => a.type === 'registry' && a.name === 'catalog')) {
    reply.header('WWW-Authenticate', challenge(opts, n, true))
    throw new WharfError('UNAUTHORIZED', 'authentication required', {})
  }
  if (n.kind === 'repository' && !opts.auth.allows(claims, n.name, n.action)) {
    reply.header('WWW-Authenticate', challenge(opts, n, true))
    throw new WharfError('DENIED', await opts.auth.explainDenial(claims, n.name, n.action), { name: n.name, action: n.action })
  }
  return claims
}

const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'] as const

/** Route templates for metrics and logs: one per endpoint of the spec, never the repository name. */
const TEMPLATES: Record<OciPath['kind'], string> = {
  base: '/v2/',
  catalog: '/v2/_catalog',
  manifest: '/v2/:name/manifests/:reference',
  blob: '/v2/:name/blobs/:digest',
  uploads: '/v2/:name/blobs/uploads/',
  upload: '/v2/:name/blobs/uploads/:uuid',
  tags: '/v2/:name/tags/list',
  referrers: '/v2/:name/referrers/:digest',
}

/** Who a registry token acts for, from its claims (no database lookup on the hot path). */
function actorOfClaims(claims: RegistryClaims): Actor {
  const c = claims.cred
  if (!c) return { kind: 'anonymous' }
  const user = c.kind === 'password' || c.kind === 'pat' || c.kind === 'device-login'
  return { kind: user ? 'user' : c.kind, id: user ? c.userId : c.id, username: claims.sub }
}

/** The OCI Distribution API, registered with prefix /v2 (spec: distribution-spec v1.1 "API"). */
export async function registryRoutes(app: FastifyInstance, opts: RegistryOptions): Promise<void> {
  ociApi(app, async (target, req, reply) => {
    labelRoute(req, TEMPLATES[target.kind])
    const proxied = 'name' in target && splitDependencyProxyName(target.name) !== undefined
    if (proxied && !((target.kind === 'manifest' || target.kind === 'blob') && (req.method === 'GET' || req.method === 'HEAD'))) {
      throw new WharfError(
        'UNSUPPORTED',
        'the dependency proxy is pull-only: it serves manifests and blobs, and accepts no pushes or deletes',
        {},
      )
    }
    const claims = await authorize(target, req, reply, opts)
    bindActor(req, actorOfClaims(claims))
    if (proxied && opts.pullThrough) return opts.pullThrough.serve(target as Extract<OciPath, { kind: 'manifest' | 'blob' }>, req, reply)
    return dispatch(target, { req, reply, query: req.query as Query, opts, claims })
  })
}

/**
 * The /v2 plumbing every registry listener shares (this one and the pull-through mirror), registered
 * under a /v2 prefix: bodies left to the handlers (streamed, never parsed), OCI errors, the API
 * version header, unknown methods in the protocol's format, and one catch-all route whose handler
 * gets the URL parsed into its target (names contain "/", so Fastify's router cannot split them).
 */
export function ociApi(
  app: FastifyInstance,
  handle: (target: OciPath, req: FastifyRequest, reply: FastifyReply) => Promise<unknown>,
): void {
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', (_req, _payload, done) => done(null))
  app.setErrorHandler(ociErrorHandler)
  app.addHook('onRequest', async (_req, reply) => {
    reply.header('Docker-Distribution-API-Version', 'registry/2.0')
  })
  app.setNotFoundHandler(async (req) => {
    throw new WharfError('UNSUPPORTED', `${req.method} is not supported on this endpoint`, {})
  })
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const path = req.url.split('?', 1)[0]!
    let rest: string
    try {
      rest = decodeURIComponent(path.replace(/^\/v2\/?/, ''))
    } catch {
      throw new WharfError('NAME_INVALID', 'invalid repository name', {})
    }
    const target = parseOciPath(rest)
    if (!target) throw new WharfError('ROUTE_UNKNOWN', 'no such registry endpoint', { path: path.slice(0, 300) })
    return handle(target, req, reply)
  }
  // The handler names the route template itself (labelRoute) once the target is parsed.
  app.route({ method: [...METHODS], url: '', handler, config: { dynamicRoute: true } })
  app.route({ method: [...METHODS], url: '/*', handler, config: { dynamicRoute: true } })
}

async function dispatch(t: OciPath, c: Ctx): Promise<unknown> {
  const m = c.req.method
  switch (t.kind) {
    case 'base':
      if (m === 'GET' || m === 'HEAD') return c.reply.send({})
      break
    case 'catalog':
      if (m === 'GET') {
        const readable = await c.opts.auth.readableProjectPaths(await c.opts.auth.principalOf(c.claims))
        const page = await c.opts.manifests.catalog(
          one(c.query, 'last'),
          pageSize(one(c.query, 'n')),
          readable && ((name) => ownedBy(name, readable)),
        )
        return sendPage(c, '/v2/_catalog', page, { repositories: page.items })
      }
      break
    case 'manifest': {
      const ref = t.reference
      if (ref.kind === 'invalid-tag') {
        // spec: a manifest that is not there is 404 MANIFEST_UNKNOWN, whatever its reference looks like; only a push under it is malformed.
        if (m === 'PUT') throw new WharfError('MANIFEST_INVALID', 'invalid tag', { tag: ref.text.slice(0, 200) })
        if (m === 'GET' || m === 'HEAD' || m === 'DELETE') throw await c.opts.manifests.unknown(t.name, ref)
        break
      }
      if (m === 'GET' || m === 'HEAD') return getManifest(t.name, ref, c)
      if (m === 'PUT') return putManifest(t.name, ref, c)
      if (m === 'DELETE') {
        await c.opts.manifests.delete(t.name, ref, c.claims.sub, () => c.opts.auth.levelOn(c.claims, t.name))
        return c.reply.code(202).send()
      }
      break
    }
    case 'blob':
      if (m === 'GET' || m === 'HEAD') return getBlob(t, c)
      if (m === 'DELETE') {
        await c.opts.manifests.repositoryProtection.check(t.name, 'delete', level(c, t.name))
        await c.opts.blobs.unlink(t.name, t.digest)
        return c.reply.code(202).send()
      }
      break
    case 'uploads':
      if (m === 'POST') return postUpload(t.name, c)
      break
    case 'upload':
      if (m === 'GET') return uploadStatus(t.name, t.id, await c.opts.uploads.status(t.name, t.id), c.reply.code(204))
      if (m === 'PATCH') {
        const size = await receiving(c, () => c.opts.uploads.append(t.name, t.id, body(c.req.raw))).catch(sayOffset(t.name, t.id, c.reply))
        return uploadStatus(t.name, t.id, size, c.reply.code(202))
      }
      if (m === 'PUT') return putUpload(t.name, t.id, c)
      if (m === 'DELETE') {
        await c.opts.uploads.cancel(t.name, t.id)
        return c.reply.code(204).send()
      }
      break
    case 'tags':
      if (m === 'GET') {
        const page = await c.opts.manifests.tags(t.name, one(c.query, 'last'), pageSize(one(c.query, 'n')))
        return sendPage(c, `/v2/${t.name}/tags/list`, page, { name: t.name, tags: page.items })
      }
      break
    case 'referrers':
      if (m === 'GET') {
        // spec: #listing-referrers — never 404; an unknown subject has an empty index.
        const filter = one(c.query, 'artifactType')
        const index = await c.opts.manifests.referrers(t.name, t.digest, filter)
        if (filter !== undefined) c.reply.header('OCI-Filters-Applied', 'artifactType')
        // Serialised here so the Content-Type stays exactly the index media type (no charset).
        return c.reply.header('Content-Type', MEDIA_TYPES.ociIndex).send(Buffer.from(JSON.stringify(index)))
      }
      break
  }
  throw new WharfError('UNSUPPORTED', `${m} is not supported on this endpoint`, {})
}

// spec: #pulling-manifests
async function getManifest(name: RepoName, ref: Reference, c: Ctx) {
  const row = await c.opts.manifests.get(name, ref, c.req.headers.accept)
  c.reply.header('Content-Type', row.media_type).header('Docker-Content-Digest', row.digest).header('ETag', `"${row.digest}"`)
  if (c.req.method === 'HEAD') return c.reply.header('Content-Length', Number(row.size)).send()
  c.opts.metrics.registryBytes.inc({ direction: 'out', kind: 'manifest' }, row.content.byteLength)
  return c.reply.send(Buffer.from(row.content.buffer, row.content.byteOffset, row.content.byteLength))
}

// spec: #pushing-manifests
async function putManifest(name: RepoName, ref: Reference, c: Ctx) {
  const declared = Number(c.req.headers['content-length'] ?? 0)
  if (declared > c.opts.manifestBytes)
    throw new WharfError('MANIFEST_TOO_LARGE', `manifest exceeds ${c.opts.manifestBytes} bytes`, { limit: c.opts.manifestBytes })
  const bytes = await readLimited(c.req.raw, c.opts.manifestBytes)
  const cred = c.claims.cred
  const origin = { actor: c.claims.sub, jobId: cred?.kind === 'job' ? cred.id : undefined }
  const { digest, subject, warning } = await c.opts.manifests.put(name, ref, bytes, c.req.headers['content-type'], origin, () =>
    c.opts.auth.levelOn(c.claims, name),
  )
  if (subject) c.reply.header('OCI-Subject', subject)
  // Over the project's soft quota the push still lands, with a warning clients show (spec: #warnings).
  if (warning) c.reply.header('Warning', `299 - "${warning.replace(/"/g, "'")}"`)
  c.opts.metrics.registryBytes.inc({ direction: 'in', kind: 'manifest' }, bytes.length)
  return c.reply.code(201).header('Location', `/v2/${name}/manifests/${digest}`).header('Docker-Content-Digest', digest).send()
}

// spec: #pulling-blobs
async function getBlob(t: Extract<OciPath, { kind: 'blob' }>, c: Ctx) {
  const size = await c.opts.blobs.stat(t.name, t.digest)
  c.reply
    .header('Content-Type', 'application/octet-stream')
    .header('Docker-Content-Digest', t.digest.digest)
    .header('ETag', `"${t.digest.digest}"`)
    .header('Accept-Ranges', 'bytes')
  if (c.req.method === 'HEAD') return c.reply.header('Content-Length', size).send()
  // Authorised here; the bytes then come from the store itself (as distribution's S3 `redirect` does).
  const redirect = await c.opts.blobs.redirectUrl(t.digest)
  if (redirect) return c.reply.code(307).header('Location', redirect).send()
  let range
  try {
    range = parseRange(c.req.headers.range, size)
  } catch (e) {
    c.reply.header('Content-Range', `bytes */${size}`)
    throw e
  }
  const length = range ? range.end - range.start + 1 : size
  // Authorised here; the reverse proxy in front sends the file (and the range) itself with sendfile.
  const offload = offloadUri(c.req.headers, c.opts.blobs.internalUri(t.digest))
  if (offload) {
    c.opts.metrics.registryBytes.inc({ direction: 'out', kind: 'blob' }, length)
    return c.reply.header('X-Accel-Redirect', offload).send()
  }
  const send = await c.opts.blobs.open(t.digest, range)
  if (range) c.reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${size}`)
  c.reply.header('Content-Length', length)
  // The body bypasses Fastify's stream piping: the driver writes pooled buffers straight to the socket.
  c.reply.hijack()
  const res = c.reply.raw
  res.writeHead(c.reply.statusCode, c.reply.getHeaders() as Record<string, string>)
  try {
    await send(res)
    res.end()
    c.opts.metrics.registryBytes.inc({ direction: 'out', kind: 'blob' }, length)
  } catch (err) {
    c.req.log.info({ url: c.req.url, err: (err as Error).message }, 'blob download aborted')
    res.destroy()
  }
}

// spec: #pushing-blobs, #mounting-a-blob-from-another-repository, #single-post
async function postUpload(name: RepoName, c: Ctx) {
  // The quota is checked before any byte is stored: a namespace at or over it gets no new upload or mount.
  const quota = c.opts.namespaceStorageBytes
  if (quota !== undefined) {
    const namespace = name.split('/')[0]!
    const used = await c.opts.manifests.storageUsed(namespace)
    if (used >= quota)
      throw new WharfError(
        'DENIED',
        `the storage quota of namespace '${namespace}' is used up (${used} of ${quota} bytes): delete images or tags, let garbage collection reclaim them, or ask an administrator for more`,
        { namespace, used, quota },
      )
  }
  await c.opts.manifests.repositoryProtection.check(name, 'push', level(c, name))
  const quotas = c.opts.manifests.quotas
  const [mount, from, digest] = [one(c.query, 'mount'), one(c.query, 'from'), one(c.query, 'digest')]
  if (mount !== undefined && from !== undefined) {
    const d = parseDigest(mount)
    const source = parseRepoName(from)
    // An unreadable or unknown source is not an error: fall back to a plain upload session (202).
    if (
      c.opts.auth.allows(c.claims, source, 'pull') &&
      (await quotas.checkMount(name, d.digest)) &&
      (await c.opts.blobs.mount(name, source, d))
    )
      return blobCreated(name, d.digest, c.reply)
  } else if (mount !== undefined && digest === undefined) {
    // spec 1.1 (automatic content discovery): without `from`, mount from any repository holding
    // the blob that the caller may pull from; one it cannot read is never used nor revealed (202).
    const d = parseDigest(mount)
    const source = await c.opts.auth.firstPullable(c.claims, await c.opts.blobs.holders(d, name, AUTO_MOUNT_CANDIDATES))
    if (source !== undefined && (await quotas.checkMount(name, d.digest)) && (await c.opts.blobs.mount(name, source, d)))
      return blobCreated(name, d.digest, c.reply)
  } else if (digest !== undefined) {
    const d = parseDigest(digest)
    const b = body(c.req.raw)
    // A declared length is checked before any byte is read; the hashed size again before the commit.
    await quotas.checkPush(name, b.length ?? 0, d.digest)
    await receiving(c, () => c.opts.uploads.monolithic(name, d, b, (size) => quotas.checkPush(name, size, d.digest)))
    return blobCreated(name, d.digest, c.reply)
  }
  await quotas.checkPush(name, 0)
  const id = await c.opts.uploads.start(name)
  return uploadStatus(name, id, 0, c.reply.code(202))
}

// spec: #closing-a-chunked-upload, #post-then-put
async function putUpload(name: RepoName, id: string, c: Ctx) {
  const digest = one(c.query, 'digest')
  if (digest === undefined) throw new WharfError('DIGEST_INVALID', 'digest query parameter is required', {})
  const d = parseDigest(digest)
  await receiving(c, () =>
    c.opts.uploads.finish(name, id, d, hasBody(c.req.raw) ? body(c.req.raw) : undefined, (size) =>
      c.opts.manifests.quotas.checkPush(name, size, d.digest),
    ),
  ).catch(sayOffset(name, id, c.reply))
  return blobCreated(name, d.digest, c.reply)
}

/** The caller's access level on a repository's project, asked only when a protection rule applies. */
const level = (c: Ctx, name: RepoName) => () => c.opts.auth.levelOn(c.claims, name)

/** A query parameter holding a valid repository name, else undefined (the handler reports a bad one). */
function validName(v: string | string[] | undefined): RepoName | undefined {
  if (typeof v !== 'string') return undefined
  try {
    return parseRepoName(v)
  } catch {
    return undefined
  }
}

/** True when a repository name lies under one of the given project paths. */
function ownedBy(name: string, projectPaths: Set<string>): boolean {
  for (let i = name.indexOf('/'); i !== -1; i = name.indexOf('/', i + 1)) if (projectPaths.has(name.slice(0, i))) return true
  return projectPaths.has(name)
}

function blobCreated(name: RepoName, digest: string, reply: FastifyReply) {
  return reply.code(201).header('Location', `/v2/${name}/blobs/${digest}`).header('Docker-Content-Digest', digest).send()
}

/** Counts a blob body being received for as long as `fn` runs (wharf_registry_uploads_in_flight). */
async function receiving<T>(c: Ctx, fn: () => Promise<T>): Promise<T> {
  c.opts.metrics.uploadsInFlight.inc()
  try {
    return await fn()
  } finally {
    c.opts.metrics.uploadsInFlight.dec()
  }
}

/**
 * A chunk out of order (or sent while another request, on any node, held the session) is answered
 * 416 with the session's offset, so the client resumes from there (spec: #pushing-a-blob-in-chunks).
 */
function sayOffset(name: RepoName, id: string, reply: FastifyReply) {
  return (e: unknown): never => {
    if (e instanceof WharfError && e.code === 'RANGE_INVALID' && typeof e.detail.expectedStart === 'number') {
      reply
        .header('Location', `/v2/${name}/blobs/uploads/${id}`)
        .header('Range', `0-${Math.max(0, e.detail.expectedStart - 1)}`)
        .header('Docker-Upload-UUID', id)
    }
    throw e
  }
}

function uploadStatus(name: RepoName, id: string, size: number, reply: FastifyReply) {
  return reply
    .header('Location', `/v2/${name}/blobs/uploads/${id}`)
    .header('Range', `0-${Math.max(0, size - 1)}`)
    .header('Docker-Upload-UUID', id)
    .header('Content-Length', 0)
    .send()
}

function sendPage(c: Ctx, path: string, page: Page<string>, payload: object) {
  if (page.next !== undefined) {
    const n = one(c.query, 'n') ?? String(page.items.length)
    c.reply.header('Link', `<${path}?n=${encodeURIComponent(n)}&last=${encodeURIComponent(page.next)}>; rel="next"`)
  }
  return c.reply.send(payload)
}

/** A query parameter given at most once; a repeated one is a client error, not an array reaching SQL. */
function one(query: Query, key: string): string | undefined {
  const v = query[key]
  if (Array.isArray(v))
    throw new WharfError(key === 'n' ? 'PAGINATION_INVALID' : 'BAD_REQUEST', `query parameter ${key} must be given once`, {
      parameter: key,
    })
  return v
}

function pageSize(n: string | undefined): number | undefined {
  if (n === undefined) return undefined
  if (!/^\d{1,9}$/.test(n)) throw new WharfError('PAGINATION_INVALID', 'invalid number of results requested', { n: n.slice(0, 20) })
  return Number(n)
}

function hasBody(raw: IncomingMessage): boolean {
  const len = raw.headers['content-length']
  return len !== undefined ? Number(len) > 0 : raw.headers['transfer-encoding'] !== undefined
}

function body(raw: IncomingMessage): Body {
  const b: Body = { stream: raw }
  const len = raw.headers['content-length']
  if (len !== undefined) b.length = Number(len)
  const range = raw.headers['content-range']
  if (range !== undefined) {
    const m = /^(?:bytes )?(\d+)-(\d+)(?:\/\d+|\/\*)?$/.exec(range.trim())
    if (!m) throw new WharfError('RANGE_INVALID', 'malformed Content-Range', { contentRange: range.slice(0, 100) })
    b.rangeStart = Number(m[1])
    b.rangeEnd = Number(m[2])
  }
  return b
}

async function readLimited(stream: IncomingMessage, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = []
  let n = 0
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    n += chunk.length
    if (n > limit) throw new WharfError('MANIFEST_TOO_LARGE', `manifest exceeds ${limit} bytes`, { limit })
    chunks.push(chunk)
  }
  return Buffer.concat(chunks, n)
}

export function ociErrorHandler(err: Error & { statusCode?: number }, req: FastifyRequest, reply: FastifyReply) {
  // Out of descriptors (opening a blob): the registry is busy, not broken.
  err = unavailableFrom(err) ?? err
  if (err instanceof WharfError) {
    const e = OCI_ERRORS[err.code]
    if (typeof err.detail.retryAfter === 'number') reply.header('Retry-After', String(err.detail.retryAfter))
    const body: OciErrorBody = { errors: [{ code: e.code, message: err.message, detail: err.detail }] }
    req.log.debug({ code: err.code }, 'registry error')
    return reply.code(e.status).type('application/json').send(body)
  }
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return reply
      .code(err.statusCode)
      .type('application/json')
      .send({ errors: [{ code: 'UNSUPPORTED', message: err.message }] } satisfies OciErrorBody)
  }
  // The client went away (or its body stalled and was cut off): its upload is left resumable, nothing failed here.
  if (isClientDisconnect(err)) req.log.info({ method: req.method, url: req.url, err: err.message }, 'client disconnected')
  else req.log.error({ err }, 'registry request failed')
  return reply
    .code(500)
    .type('application/json')
    .send({ errors: [{ code: 'UNKNOWN', message: 'internal server error' }] } satisfies OciErrorBody)
}
