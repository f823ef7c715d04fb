// HTTP for the pull-through cache: the group path on the main /v2 (through the registry's
// PullThrough hook), the mirror listener, and the /api/v4 cache and upstream endpoints.
import { Type } from '@sinclair/typebox'
import type { Writable } from 'node:stream'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { Accepted, IdParam } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { ociApi, ociErrorHandler, offloadUri, parseRange, type OciPath, type PullThrough } from '../registry/index.ts'
import type { Groups } from '../projects/index.ts'
import type { RegistryAuth } from '../auth/registry-auth.ts'
import type { CacheTarget, DependencyProxy } from './service.ts'
import { limitConnections, serverOptions, type ConnectionLimits } from '../connections.ts'
import { DEFAULTS } from '../config/schema.ts'

type PullTarget = Extract<OciPath, { kind: 'manifest' | 'blob' }>

/** The `Warning` a stale copy is served with (RFC 9111 code 111: revalidation failed). */
function warningHeader(text: string): string {
  return `111 wharf "${text.replace(/["\\\r\n]/g, ' ')}"`
}

// spec: #pulling-manifests, #pulling-blobs — the same answers the registry gives for its own content.
export async function servePull(
  proxy: DependencyProxy,
  t: CacheTarget,
  target: PullTarget,
  req: FastifyRequest,
  reply: FastifyReply,
): Promise<unknown> {
  const head = req.method === 'HEAD'
  if (target.kind === 'manifest') {
    // Nothing upstream can be stored under a reference that is neither a digest nor a tag.
    if (target.reference.kind === 'invalid-tag')
      throw new WharfError('MANIFEST_UNKNOWN', 'manifest unknown', { reference: target.reference.text })
    const { row, warning, fromCache } = await proxy.manifest(t, target.reference, req.headers.accept)
    reply.header('Content-Type', row.media_type).header('Docker-Content-Digest', row.digest).header('ETag', `"${row.digest}"`)
    if (warning) {
      reply.header('Warning', warningHeader(warning))
      req.log.warn({ upstream: t.upstream.host, name: t.upstreamName, warning }, 'serving a cached manifest the upstream could not confirm')
    }
    if (head) return reply.header('Content-Length', Number(row.size)).send()
    if (fromCache) proxy.metrics.servedFromCache(t, 'manifest', row.content.byteLength)
    return reply.send(Buffer.from(row.content.buffer, row.content.byteOffset, row.content.byteLength))
  }
  const d = target.digest
  const src = await proxy.blob(t, d, head)
  reply.header('Content-Type', 'application/octet-stream').header('Docker-Content-Digest', d.digest).header('ETag', `"${d.digest}"`)
  if (src.kind === 'upstream') {
    if (src.size !== undefined) reply.header('Content-Length', src.size)
    return reply.send()
  }
  let send: (dest: Writable) => Promise<void>
  if (src.kind === 'stored') {
    reply.header('Accept-Ranges', 'bytes')
    if (head) return reply.header('Content-Length', src.size).send()
    let range
    try {
      range = parseRange(req.headers.range, src.size)
    } catch (e) {
      reply.header('Content-Range', `bytes */${src.size}`)
      throw e
    }
    const length = range ? range.end - range.start + 1 : src.size
    // A cached blob is a stored file: the reverse proxy in front may send it (and the range) itself.
    const offload = offloadUri(req.headers, src.internalUri)
    if (offload) {
      proxy.metrics.servedFromCache(t, 'blob', length)
      return reply.header('X-Accel-Redirect', offload).send()
    }
    send = await src.open(range)
    if (range) reply.code(206).header('Content-Range', `bytes ${range.start}-${range.end}/${src.size}`)
    reply.header('Content-Length', length)
    proxy.metrics.servedFromCache(t, 'blob', length)
  } else {
    // A miss: streamed while the cache fills (a Range is ignored; 200 with the whole blob is allowed).
    if (src.flight.size !== undefined) reply.header('Content-Length', src.flight.size)
    send = src.send
  }
  reply.hijack()
  const res = reply.raw
  res.writeHead(reply.statusCode, reply.getHeaders() as Record<string, string>)
  try {
    await send(res)
    res.end()
  } catch (err) {
    req.log.warn({ url: req.url, err: (err as Error).message }, 'proxied blob download aborted')
    res.destroy()
  }
}

/** The group path on the main /v2 (authorization already done by the registry). */
export function groupPullThrough(proxy: DependencyProxy): PullThrough {
  return {
    async serve(target, req, reply) {
      return servePull(proxy, await proxy.groupTarget(target.name), target, req, reply)
    },
  }
}

/**
 * The mirror listener: a pull-only, anonymous registry whose `/v2/<name>` is the first upstream's
 * `<name>` (Docker's `registry-mirrors`, containerd's hosts.toml; `?ns=<host>` picks another upstream).
 */
export interface MirrorAuth {
  auth: RegistryAuth
  /** The main listener's token endpoint, named in challenges. */
  realm: string
}

/** `dependencyProxy.mirrorAuth: token`: a Bearer token from Wharf's /jwt/auth that grants pull on the cache repository. */
async function requireToken(a: MirrorAuth, repository: string | undefined, req: FastifyRequest, reply: FastifyReply): Promise<void> {
  const challenge = (insufficient: boolean) =>
    `Bearer realm="${a.realm}",service="${a.auth.tokens.service}"${repository ? `,scope="repository:${repository}:pull"` : ''}${insufficient ? ',error="insufficient_scope"' : ''}`
  const header = req.headers.authorization
  if (!header || !/^bearer /i.test(header)) {
    reply.header('WWW-Authenticate', challenge(false))
    throw new WharfError('UNAUTHORIZED', 'authentication required', {})
  }
  let claims
  try {
    claims = await a.auth.verify(header.slice(7).trim())
  } catch (e) {
    reply.header('WWW-Authenticate', challenge(false))
    throw e
  }
  if (repository && !a.auth.allows(claims, repository, 'pull')) {
    reply.header('WWW-Authenticate', challenge(true))
    throw new WharfError(
      'DENIED',
      `pull access to ${repository} denied: this mirror needs a signed-in user or a token with read_registry`,
      {},
    )
  }
}

export async function buildMirrorApp(deps: {
  logger: FastifyBaseLogger
  proxy: DependencyProxy
  https?: { cert: Buffer; key: Buffer } | undefined
  auth?: MirrorAuth | undefined
  limits?: Partial<ConnectionLimits>
}): Promise<FastifyInstance> {
  // The same connection limits as the main listener: the mirror is often anonymous, so slow or
  // hostile clients must not hold it open either.
  const limits: ConnectionLimits = { ...DEFAULTS.limits, ...deps.limits }
  const { keepAliveTimeout, http } = serverOptions(limits)
  const app = Fastify({
    loggerInstance: deps.logger.child({ listener: 'mirror' }),
    keepAliveTimeout,
    ...(deps.https ? ({ https: { ...deps.https, ...http } } as object) : { http }),
    exposeHeadRoutes: false,
    requestTimeout: 0,
    frameworkErrors: (err, req, res) => ociErrorHandler(new WharfError('BAD_REQUEST', err.message, {}), req, res as FastifyReply),
  })
  limitConnections(app, limits, deps.logger)
  await app.register(
    async (v2) => {
      ociApi(v2, async (target, req, reply) => {
        const read = req.method === 'GET' || req.method === 'HEAD'
        if (target.kind === 'base' && read) {
          if (deps.auth) await requireToken(deps.auth, undefined, req, reply)
          return reply.send({})
        }
        if ((target.kind !== 'manifest' && target.kind !== 'blob') || !read) {
          throw new WharfError(
            'UNSUPPORTED',
            'this registry mirror is pull-only: it serves manifests and blobs, and accepts no pushes or deletes',
            {},
          )
        }
        const ns = (req.query as Record<string, unknown>).ns
        if (ns !== undefined && typeof ns !== 'string') throw new WharfError('BAD_REQUEST', 'query parameter ns must be given once', {})
        const t = deps.proxy.mirrorTarget(target.name, ns)
        if (deps.auth) await requireToken(deps.auth, t.repository, req, reply)
        return servePull(deps.proxy, t, target, req, reply)
      })
    },
    { prefix: '/v2' },
  )
  return app
}

const CachedImage = Type.Object({
  name: Type.String({ description: 'the upstream image name (library/alpine)' }),
  upstream: Type.String(),
  repository: Type.String({ description: 'the registry repository the copy lives in' }),
  tags: Type.Array(Type.Object({ name: Type.String(), digest: Type.String() })),
  size: Type.Integer({ description: 'bytes of its manifests and linked blobs' }),
  created_at: Type.String(),
  last_pulled_at: Type.String(),
})
const CacheEntity = Type.Object({
  size: Type.Integer({ description: 'bytes held, each blob counted once' }),
  images: Type.Array(CachedImage),
})
const UpstreamEntity = Type.Object({
  host: Type.String(),
  url: Type.String(),
  authenticated: Type.Boolean(),
  rate_limit: Type.Union([
    Type.Null(),
    Type.Object({
      limit: Type.Integer(),
      remaining: Type.Integer(),
      window_seconds: Type.Union([Type.Integer(), Type.Null()]),
      observed_at: Type.String(),
    }),
  ]),
  last_error: Type.Union([Type.Null(), Type.Object({ message: Type.String(), at: Type.String() })]),
})

/** /api/v4: a group's cache (listing is a Wharf extension; the purge is GitLab's route) and the upstreams (Wharf extension). */
export async function proxyApiRoutes(app: TypedApp, deps: { proxy: DependencyProxy; groups: Groups }): Promise<void> {
  const { proxy, groups } = deps
  const cacheJson = async (namespaceId: number | null) => {
    const c = await proxy.groupCache(namespaceId)
    return {
      size: c.size,
      images: c.images.map((i) => ({
        name: i.name,
        upstream: i.upstream,
        repository: i.repository,
        tags: i.tags,
        size: i.size,
        created_at: i.createdAt,
        last_pulled_at: i.lastPulledAt,
      })),
    }
  }
  const admin = (req: FastifyRequest) => {
    if (req.principal.kind !== 'user' || !req.principal.isAdmin) throw new WharfError('FORBIDDEN', 'this needs an administrator', {})
  }

  app.get(
    '/groups/:id/dependency_proxy/cache',
    {
      schema: {
        summary: "List a group's dependency proxy cache (Wharf extension; guest)",
        tags: ['dependency proxy'],
        params: IdParam,
        'x-response': { 200: CacheEntity },
      },
    },
    async (req) => {
      const { group } = await groups.groupFor(req.principal, req.params.id, 'guest')
      return cacheJson(group.id)
    },
  )

  // GitLab: DELETE /groups/:id/dependency_proxy/cache schedules the purge and requires the Owner
  // role (since 17.0; Maintainer before); Wharf purges at once.
  app.delete(
    '/groups/:id/dependency_proxy/cache',
    {
      schema: {
        summary: "Purge a group's dependency proxy cache (owner)",
        tags: ['dependency proxy'],
        params: IdParam,
        'x-response': { 202: Accepted },
      },
    },
    async (req, reply) => {
      const { group } = await groups.groupFor(req.principal, req.params.id, 'owner')
      const r = await proxy.purgeGroup(group.id)
      req.log.info({ group: group.full_path, ...r }, 'dependency proxy cache purged')
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  app.get(
    '/dependency_proxy/cache',
    {
      schema: {
        summary: "The mirror listener's cache (Wharf extension; administrator)",
        tags: ['dependency proxy'],
        'x-response': { 200: CacheEntity },
      },
    },
    async (req) => {
      admin(req)
      return cacheJson(null)
    },
  )

  app.delete(
    '/dependency_proxy/cache',
    {
      schema: {
        summary: "Purge the mirror listener's cache (Wharf extension; administrator)",
        tags: ['dependency proxy'],
        'x-response': { 202: Accepted },
      },
    },
    async (req, reply) => {
      admin(req)
      const r = await proxy.purgeGroup(null)
      req.log.info(r, 'mirror cache purged')
      return reply.code(202).send({ message: '202 Accepted' })
    },
  )

  app.get(
    '/dependency_proxy/upstreams',
    {
      schema: {
        summary: 'Upstream registries and their last reported rate limits (Wharf extension; administrator)',
        tags: ['dependency proxy'],
        'x-response': { 200: Type.Array(UpstreamEntity) },
      },
    },
    async (req) => {
      admin(req)
      return proxy.upstreamStatus().map((u) => ({
        host: u.host,
        url: u.url,
        authenticated: u.authenticated,
        rate_limit: u.rateLimit && {
          limit: u.rateLimit.limit,
          remaining: u.rateLimit.remaining,
          window_seconds: u.rateLimit.windowSeconds,
          observed_at: u.rateLimit.observedAt,
        },
        last_error: u.lastError,
      }))
    },
  )
}
