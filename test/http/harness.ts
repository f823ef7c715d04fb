// In-process Wharf for HTTP tests: buildApp() over a real SQLite file and the fs
// driver in a fresh temp dir, wired like src/server.ts does, driven by app.inject().
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request as httpRequest } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { migrate, openDb } from '../../src/metadata/db.ts'
import type { Database } from '../../src/metadata/schema.ts'
import { createRegistry, type Registry } from '../../src/registry/index.ts'
import { MEDIA_TYPES } from '../../src/registry/media-types.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'

export { MEDIA_TYPES }
export type Response = LightMyRequestResponse

export interface HarnessOptions {
  manifestBytes?: number
  pageMax?: number
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
  inject(opts: InjectOptions): Promise<Response>
  /**
   * Sends the path byte-for-byte over a real socket (the app listens on an ephemeral port on first use).
   * inject() resolves dot segments like a browser would, so traversal tests need this.
   */
  raw(method: string, path: string, body?: string | Buffer, headers?: Record<string, string>): Promise<RawResponse>
  /** Closes the app and the database, then builds fresh ones over the same data dir (a server restart). */
  restart(): Promise<void>
  close(): Promise<void>
}

async function open(dataDir: string, opts: HarnessOptions) {
  const db = openDb({ kind: 'sqlite', path: join(dataDir, 'wharf.db') })
  await migrate(db, 'sqlite')
  const driver = createFsDriver(join(dataDir, 'storage'))
  const registry = createRegistry(db, driver, { pageMax: opts.pageMax ?? 10_000 })
  const app = await buildApp({ logger: pino({ level: 'silent' }), registry, limits: { manifestBytes: opts.manifestBytes ?? 4 << 20 } })
  await app.ready()
  return { db, registry, app, port: undefined as number | undefined }
}

/** A fresh registry in its own temp dir, torn down when the test (or suite) `t` ends. */
export async function harness(t: Pick<TestContext, 'after'>, opts: HarnessOptions = {}): Promise<Harness> {
  const root = await mkdtemp(join(tmpdir(), 'wharf-http-'))
  const dataDir = join(root, 'data')
  let cur = await open(dataDir, opts)
  let closed = false
  const h: Harness = {
    root,
    dataDir,
    storageDir: join(dataDir, 'storage'),
    get app() {
      return cur.app
    },
    get db() {
      return cur.db
    },
    get registry() {
      return cur.registry
    },
    inject: (o) => cur.app.inject(o),
    async raw(method, path, body, headers = {}) {
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
    async restart() {
      await cur.app.close()
      await cur.db.destroy()
      cur = await open(dataDir, opts)
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
    config: { mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
    layers: [{ mediaType: opts.docker ? 'application/vnd.docker.image.rootfs.diff.tar.gzip' : 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layerDigest, size: layer.length }],
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

export async function putManifest(h: Harness, repo: string, ref: string, m: BuiltManifest, contentType: string | undefined = m.mediaType): Promise<Response> {
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
