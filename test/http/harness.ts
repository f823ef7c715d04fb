// In-process Wharf for HTTP tests: buildApp() over a real SQLite file and the fs
// driver in a fresh temp dir, wired like src/server.ts does, driven by app.inject().
//
// Every /v2 request needs a registry token now. `inject` and `raw` act as root: they ask
// GET /jwt/auth (Basic root credentials) for a token covering every repository the request
// touches and send it as Bearer. The project owning a repository (`<group>/<project>`, the
// first two segments of its name) is created through the services on first use, so
// suites written for the registry core only move their names under a project (`t/...`).
// `anonymous` sends requests exactly as given.
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Writable } from 'node:stream'
import type { TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { ACCESS_LEVELS, type Role, type Visibility } from '../../src/auth/roles.ts'
import { openTestDb } from '../helpers/database.ts'
import type { Database, Namespace, Project, User } from '../../src/metadata/schema.ts'
import * as projectQueries from '../../src/projects/queries.ts'
import * as userQueries from '../../src/users/queries.ts'
import { validateSegment } from '../../src/core/path-segments.ts'
import type { Registry } from '../../src/registry/index.ts'
import { MEDIA_TYPES } from '../../src/registry/media-types.ts'
import { parseOciPath } from '../../src/registry/oci-path.ts'
import { createServices, REGISTRY_SERVICE, type Services } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'

export { MEDIA_TYPES, REGISTRY_SERVICE }
export type Response = LightMyRequestResponse

export const PUBLIC_URL = 'http://wharf.test'
export const REALM = `${PUBLIC_URL}/jwt/auth`

export interface HarnessOptions {
  manifestBytes?: number
  pageMax?: number
  tokenTtlSeconds?: number
  /** Where pino writes (JSON lines); silent when absent. */
  logStream?: Writable
  /** storage.filesystem.accelRedirect */
  accelRedirect?: string
}

export interface RawResponse {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: string
  rawBody: Buffer
}

export interface Harness {
  /** The temp dir everything lives in; removed by cleanup. */
  root: string
  /** The data dir (wharf.db and storage/) inside root. */
  dataDir: string
  storageDir: string
  app: FastifyInstance
  db: Kysely<Database>
  registry: Registry
  services: Services
  rootPassword: string
  /** As root: a registry token covering the request's repositories (their projects created on first use). */
  inject(opts: InjectOptions): Promise<Response>
  /** Exactly the request given: no token is added. */
  anonymous(opts: InjectOptions): Promise<Response>
  /**
   * Sends the path byte-for-byte over a real socket (the app listens on an ephemeral port on first use).
   * inject() resolves dot segments like a browser would, so traversal tests need this. Adds root's
   * token like inject() unless the headers carry an Authorization already or `auth` is false.
   */
  raw(method: string, path: string, body?: string | Buffer, headers?: Record<string, string>, auth?: boolean): Promise<RawResponse>
  /** Fetches and caches root's token for a /v2 URL now, so a timing-sensitive test times only its requests. */
  prepare(url: string): Promise<void>
  /** GET /jwt/auth with Basic credentials (root's when absent) for the given scopes; asserts 200 and returns the token. */
  token(scopes: string[], creds?: { username: string; password: string }): Promise<string>
  /** Creates `<group>/<project>` (and the group, nested groups too) as root unless it exists. */
  ensureProject(path: string, visibility?: Visibility): Promise<Project>
  createUser(username: string, password?: string | null): Promise<User>
  /** Adds a user to a project or group with a role (test setup through the queries, as an admin would). */
  addMember(target: Project | Namespace, user: Pick<User, 'id'>, role: Role): Promise<void>
  /** Closes the app and the database, then builds fresh ones over the same data dir (a server restart). */
  restart(): Promise<void>
  close(): Promise<void>
}

async function open(dataDir: string, opts: HarnessOptions, rootPassword: string) {
  const db = await openTestDb(dataDir)
  const driver = createFsDriver(join(dataDir, 'storage'))
  const services = await createServices(db, driver, {
    publicUrl: PUBLIC_URL,
    tokenTtlSeconds: opts.tokenTtlSeconds ?? 300,
    pageMax: opts.pageMax ?? 10_000,
    rootPassword,
    accelRedirect: opts.accelRedirect,
  })
  // The same redaction as src/server.ts.
  const logger = opts.logStream
    ? pino({ level: 'trace', redact: ['req.headers.authorization', 'headers.authorization'] }, opts.logStream)
    : pino({ level: 'silent' })
  const app = await buildApp({ logger, ...services, publicUrl: PUBLIC_URL, limits: { manifestBytes: opts.manifestBytes ?? 4 << 20 } })
  await app.ready()
  return { db, services, registry: services.registry, app, port: undefined as number | undefined }
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

/** The scopes a /v2 request needs (every action on each repository it names), or undefined for a URL that fails before auth. */
export function scopesFor(url: string): { scopes: string[]; repositories: string[] } | undefined {
  const [path, query = ''] = url.split('?', 2) as [string, string?]
  if (!/^\/v2(\/|$)/.test(path)) return undefined
  let target
  try {
    target = parseOciPath(decodeURIComponent(path.replace(/^\/v2\/?/, '')))
  } catch {
    return undefined
  }
  if (!target) return undefined
  if (target.kind === 'base') return { scopes: [], repositories: [] }
  if (target.kind === 'catalog') return { scopes: ['registry:catalog:*'], repositories: [] }
  const scopes = [`repository:${target.name}:pull,push,delete`]
  const repositories: string[] = [target.name]
  const from = new URLSearchParams(query).get('from')
  if (target.kind === 'uploads' && from && from !== target.name && /^[a-z0-9._/-]+$/.test(from)) {
    scopes.push(`repository:${from}:pull`)
    repositories.push(from)
  }
  return { scopes, repositories }
}

/** A fresh registry in its own temp dir, torn down when the test (or suite) `t` ends. */
export async function harness(t: Pick<TestContext, 'after'>, opts: HarnessOptions = {}): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), 'wharf-http-'))
  const dataDir = join(root, 'data')
  const rootPassword = `root-${randomBytes(12).toString('hex')}`
  let cur = await open(dataDir, opts, rootPassword)
  let closed = false
  // Tokens are cached per scope set (they outlive restarts: the signing key is in the database).
  const tokens = new Map<string, Promise<string>>()
  const provisioned = new Map<string, Promise<Project | undefined>>()
  let provisioning: Promise<unknown> = Promise.resolve()

  const rootUser = async (): Promise<User> => (await userQueries.findUserByUsername(cur.db, 'root'))!

  const ensureNamespace = async (fullPath: string): Promise<Namespace> => {
    const existing = await projectQueries.findNamespaceByPath(cur.db, fullPath)
    if (existing) return existing
    const i = fullPath.lastIndexOf('/')
    const parent = i < 0 ? undefined : await ensureNamespace(fullPath.slice(0, i))
    return cur.services.groups.createGroup(await rootUser(), { path: fullPath.slice(i + 1), parentId: parent?.id ?? null })
  }

  const ensureProject = async (path: string, visibility: Visibility = 'private'): Promise<Project> => {
    const existing = await projectQueries.findProjectByPath(cur.db, path)
    if (existing) return existing
    const i = path.lastIndexOf('/')
    assert.ok(i > 0, `a project path has a namespace: ${path}`)
    const ns = await ensureNamespace(path.slice(0, i))
    return cur.services.projects.createProject(await rootUser(), { namespaceId: ns.id, path: path.slice(i + 1), visibility })
  }

  /** The project a repository belongs to in these tests: its first two segments, when they make a valid project path. */
  const provision = (repository: string): Promise<Project | undefined> => {
    const parts = repository.split('/')
    if (parts.length < 2) return Promise.resolve(undefined)
    const path = parts.slice(0, 2).join('/')
    let p = provisioned.get(path)
    if (!p) {
      // One at a time: concurrent first requests would race to create the same group.
      p = provisioning.then(async () => {
        try {
          for (const s of parts.slice(0, 2)) validateSegment(s, 'path')
        } catch {
          return undefined
        }
        return ensureProject(path)
      })
      provisioning = p.catch(() => undefined)
      provisioned.set(path, p)
    }
    return p
  }

  const token = async (scopes: string[], creds?: { username: string; password: string }): Promise<string> => {
    const qs = new URLSearchParams({ service: REGISTRY_SERVICE })
    for (const s of scopes) qs.append('scope', s)
    const res = await cur.app.inject({
      method: 'GET',
      url: `/jwt/auth?${qs}`,
      headers: { authorization: basic(creds?.username ?? 'root', creds?.password ?? rootPassword) },
    })
    assert.equal(res.statusCode, 200, `GET /jwt/auth ${scopes.join(' ')}: ${res.body}`)
    return (res.json() as { token: string }).token
  }

  /** Root's bearer token for a /v2 URL, or undefined when the URL fails before auth. */
  const bearerFor = async (url: string): Promise<string | undefined> => {
    const need = scopesFor(url)
    if (!need) return undefined
    for (const r of need.repositories) await provision(r)
    const key = [...need.scopes].sort().join(' ')
    let tok = tokens.get(key)
    if (!tok) {
      tok = token(need.scopes)
      tokens.set(key, tok)
      tok.catch(() => tokens.delete(key))
    }
    return `Bearer ${await tok}`
  }

  const hasAuth = (headers: unknown): boolean =>
    typeof headers === 'object' && headers !== null && Object.keys(headers).some((k) => k.toLowerCase() === 'authorization')

  const h: Harness = {
    root,
    dataDir,
    storageDir: join(dataDir, 'storage'),
    rootPassword,
    get app() {
      return cur.app
    },
    get db() {
      return cur.db
    },
    get registry() {
      return cur.registry
    },
    get services() {
      return cur.services
    },
    async inject(o) {
      const url = typeof o.url === 'string' ? o.url : undefined
      if (url === undefined || hasAuth(o.headers)) return cur.app.inject(o)
      const bearer = await bearerFor(url)
      if (!bearer) return cur.app.inject(o)
      return cur.app.inject({ ...o, headers: { ...(o.headers as Record<string, string> | undefined), authorization: bearer } })
    },
    anonymous: (o) => cur.app.inject(o),
    async raw(method, path, body, headers = {}, auth = true) {
      if (auth && !hasAuth(headers)) {
        const bearer = await bearerFor(path)
        if (bearer) headers = { ...headers, authorization: bearer }
      }
      if (cur.port === undefined) {
        await cur.app.listen({ host: '127.0.0.1', port: 0 })
        cur.port = (cur.app.server.address() as AddressInfo).port
      }
      const port = cur.port
      return new Promise<RawResponse>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port, method, path, headers: { connection: 'close', ...headers } }, (res) => {
          const chunks: Buffer[] = []
          res.on('data', (c: Buffer) => chunks.push(c))
          res.on('end', () => {
            const rawBody = Buffer.concat(chunks)
            resolve({ statusCode: res.statusCode!, headers: res.headers, body: rawBody.toString('utf8'), rawBody })
          })
          res.on('error', reject)
        })
        req.on('error', reject)
        req.end(body)
      })
    },
    token,
    async prepare(url) {
      await bearerFor(url)
    },
    ensureProject,
    createUser: (username, password = `pw-${username}-${randomBytes(6).toString('hex')}`) =>
      cur.services.users.createUser({ username, password }),
    async addMember(target, user, role) {
      const kind = 'namespace_id' in target ? 'project' : 'namespace'
      await projectQueries.upsertMember(cur.db, kind, target.id, user.id, ACCESS_LEVELS[role], null)
    },
    async restart() {
      await cur.app.close()
      await cur.db.destroy()
      cur = await open(dataDir, opts, rootPassword)
    },
    async close() {
      if (closed) return
      closed = true
      await cur.app.close()
      await cur.db.destroy()
    },
  }
  t.after(async () => {
    await h.close()
    await rm(root, { recursive: true, force: true })
  })
  return h
}

export function sha256(data: string | Uint8Array): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`
}

export function sha512(data: string | Uint8Array): string {
  return `sha512:${createHash('sha512').update(data).digest('hex')}`
}

export function randomBlob(size = 64): Buffer {
  return randomBytes(size)
}

export interface OciErrorBody {
  errors: Array<{ code: string; message: string; detail?: unknown }>
}

/** Asserts the status and an OCI error body `{errors:[{code,message,detail}]}` with the given code. */
export function assertOciError(res: Response, status: number, code: string): OciErrorBody['errors'][number] {
  assert.equal(res.statusCode, status, `expected ${status} ${code}, got ${res.statusCode}: ${res.body.slice(0, 500)}`)
  assert.match(String(res.headers['content-type']), /^application\/json/, 'an OCI error is JSON')
  const body = JSON.parse(res.body) as OciErrorBody
  assert.ok(Array.isArray(body.errors) && body.errors.length >= 1, `errors array in ${res.body}`)
  const e = body.errors[0]!
  assert.equal(e.code, code, `error code in ${res.body}`)
  assert.equal(typeof e.message, 'string')
  assert.ok(e.message.length > 0)
  assert.ok('detail' in e, `detail in ${res.body}`)
  return e
}

/** Monolithic blob push (POST ?digest=); returns the digest. */
export async function pushBlob(h: Harness, repo: string, data: string | Buffer): Promise<string> {
  const digest = sha256(data)
  const res = await h.inject({
    method: 'POST',
    url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
    headers: { 'content-type': 'application/octet-stream' },
    payload: typeof data === 'string' ? Buffer.from(data) : data,
  })
  assert.equal(res.statusCode, 201, `push blob to ${repo}: ${res.body}`)
  return digest
}

export interface Descriptor {
  mediaType: string
  digest: string
  size: number
  platform?: { os: string; architecture: string; variant?: string }
  artifactType?: string
  annotations?: Record<string, string>
}

export interface BuiltManifest {
  body: Buffer
  digest: string
  mediaType: string
  descriptor: Descriptor
}

function built(doc: object, mediaType: string, extra: Partial<Descriptor> = {}): BuiltManifest {
  const body = Buffer.from(JSON.stringify(doc))
  const digest = sha256(body)
  return { body, digest, mediaType, descriptor: { mediaType, digest, size: body.length, ...extra } }
}

/** Pushes a config and one layer to `repo` and returns an image manifest referencing them (not pushed). */
export async function imageManifest(
  h: Harness,
  repo: string,
  opts: { docker?: boolean; seed?: string; extra?: Record<string, unknown>; platform?: Descriptor['platform'] } = {},
): Promise<BuiltManifest> {
  const seed = opts.seed ?? randomBytes(8).toString('hex')
  const config = Buffer.from(JSON.stringify({ architecture: opts.platform?.architecture ?? 'amd64', os: 'linux', seed }))
  const layer = Buffer.from(`layer ${seed}`)
  const configDigest = await pushBlob(h, repo, config)
  const layerDigest = await pushBlob(h, repo, layer)
  const mediaType = opts.docker ? MEDIA_TYPES.dockerManifest : MEDIA_TYPES.ociManifest
  const doc = {
    schemaVersion: 2,
    mediaType,
    config: {
      mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json',
      digest: configDigest,
      size: config.length,
    },
    layers: [
      {
        mediaType: opts.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip',
        digest: layerDigest,
        size: layer.length,
      },
    ],
    ...opts.extra,
  }
  return built(doc, mediaType, opts.platform ? { platform: opts.platform } : {})
}

/** An index (or Docker list) over the given child manifests (not pushed). */
export function indexManifest(children: Descriptor[], opts: { docker?: boolean; extra?: Record<string, unknown> } = {}): BuiltManifest {
  const mediaType = opts.docker ? MEDIA_TYPES.dockerList : MEDIA_TYPES.ociIndex
  return built({ schemaVersion: 2, mediaType, manifests: children, ...opts.extra }, mediaType)
}

/** An OCI artifact manifest with an empty config, pointing at `subject` (not pushed; pushes the empty config). */
export async function artifactManifest(
  h: Harness,
  repo: string,
  subject: Descriptor,
  artifactType: string,
  annotations?: Record<string, string>,
): Promise<BuiltManifest> {
  const emptyDigest = await pushBlob(h, repo, '{}')
  const doc = {
    schemaVersion: 2,
    mediaType: MEDIA_TYPES.ociManifest,
    artifactType,
    config: { mediaType: 'application/vnd.oci.empty.v1+json', digest: emptyDigest, size: 2 },
    layers: [],
    subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    ...(annotations ? { annotations } : {}),
  }
  return built(doc, MEDIA_TYPES.ociManifest, { artifactType, ...(annotations ? { annotations } : {}) })
}

export async function putManifest(
  h: Harness,
  repo: string,
  ref: string,
  m: BuiltManifest,
  contentType: string | undefined = m.mediaType,
): Promise<Response> {
  return h.inject({
    method: 'PUT',
    url: `/v2/${repo}/manifests/${ref}`,
    headers: contentType === undefined ? {} : { 'content-type': contentType },
    payload: m.body,
  })
}

/** PUT that must succeed with 201. */
export async function pushManifest(h: Harness, repo: string, ref: string, m: BuiltManifest): Promise<void> {
  const res = await putManifest(h, repo, ref, m)
  assert.equal(res.statusCode, 201, `push manifest ${repo}:${ref}: ${res.body}`)
}
