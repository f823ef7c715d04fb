// In-process Wharf for the REST API tests: buildApp() over a real SQLite file and the fs driver in a
// temp dir, wired as src/server.ts does, driven by app.inject(). Setup goes through the services;
// the behaviour under test goes through HTTP.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify'
import type { Kysely, LogConfig } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import type { PatScope } from '../../src/auth/roles.ts'
import { openTestDb } from '../helpers/database.ts'
import type { Database, User } from '../../src/metadata/schema.ts'
import { createServices, type Services } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'

export const ROOT_PASSWORD = 'root-password-123'
export const PUBLIC_URL = 'http://wharf.test:5000'

export interface ApiHarness {
  tmpDir: string
  dataDir: string
  app: FastifyInstance
  db: Kysely<Database>
  services: Services
  /** inject with an optional token (sent as PRIVATE-TOKEN, or as Bearer with `bearer`). */
  req(
    method: InjectOptions['method'],
    url: string,
    opts?: {
      token?: string | undefined
      bearer?: string | undefined
      body?: unknown
      form?: Record<string, string | string[]>
      headers?: Record<string, string>
    },
  ): Promise<LightMyRequestResponse>
  /** Creates a user with an `api` PAT (or the given scopes); returns the row and the token. */
  user(username: string, opts?: { admin?: boolean; scopes?: PatScope[]; password?: string }): Promise<{ user: User; token: string }>
  /** root's id and an api token for it. */
  root(): Promise<{ user: User; token: string }>
}

/** `logs`: collect every log line the app writes (to check that no secret is logged); `log`: Kysely's, every statement. */
export async function apiHarness(
  t: Pick<TestContext, 'after'>,
  opts: { logs?: string[]; settings?: Record<string, unknown>; namespaceStorageBytes?: number; log?: LogConfig } = {},
): Promise<ApiHarness> {
  const root = await mkdtemp(join(tmpdir(), 'wharf-api-'))
  const dataDir = join(root, 'data')
  const db = await openTestDb(dataDir, opts.log ? { log: opts.log } : {})
  const driver = createFsDriver(join(dataDir, 'storage'))
  // Wired as src/server.ts does, git hosting included, so /api/v4 routes of every plugin are present.
  const services = await createServices(db, driver, {
    publicUrl: PUBLIC_URL,
    tokenTtlSeconds: 300,
    pageMax: 1000,
    namespaceStorageBytes: opts.namespaceStorageBytes,
    rootPassword: ROOT_PASSWORD,
    gitRoot: join(dataDir, 'git'),
  })
  const logger = opts.logs
    ? pino(
        { level: 'trace', redact: ['req.headers.authorization', 'headers.authorization'] },
        { write: (line: string) => void opts.logs!.push(line) },
      )
    : pino({ level: 'silent' })
  const app = await buildApp({
    logger,
    ...services,
    publicUrl: PUBLIC_URL,
    limits: { manifestBytes: 4 << 20 },
    ...(opts.settings ? { settings: opts.settings } : {}),
  })
  await app.ready()
  t.after(async () => {
    await app.close()
    await db.destroy()
    await rm(root, { recursive: true, force: true })
  })
  let rootToken: { user: User; token: string } | undefined
  const h: ApiHarness = {
    tmpDir: root,
    dataDir,
    app,
    db,
    services,
    async req(method, url, opts = {}) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) }
      if (opts.token) headers['private-token'] = opts.token
      if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`
      const o: InjectOptions = { method, url, headers }
      if (opts.form) {
        const p = new URLSearchParams()
        for (const [k, v] of Object.entries(opts.form)) for (const x of Array.isArray(v) ? v : [v]) p.append(k, x)
        o.payload = p.toString()
        headers['content-type'] = 'application/x-www-form-urlencoded'
      } else if (opts.body !== undefined) {
        o.payload = JSON.stringify(opts.body)
        headers['content-type'] = 'application/json'
      }
      return app.inject(o)
    },
    async user(username, opts = {}) {
      const user = await services.users.createUser({
        username,
        password: opts.password ?? `${username}-password`,
        isAdmin: opts.admin ?? false,
      })
      const { token } = await services.accessTokens.createPat(user.id, { name: 'test', scopes: opts.scopes ?? ['api'] }, 'test')
      return { user, token }
    },
    async root() {
      if (rootToken) return rootToken
      const user = (await db.selectFrom('users').selectAll().where('username', '=', 'root').executeTakeFirst())!
      const { token } = await services.accessTokens.createPat(user.id, { name: 'root-test', scopes: ['api'] }, 'test')
      rootToken = { user, token }
      return rootToken
    },
  }
  return h
}

/** Asserts a problem body with the given status, typed `application/json` as GitLab's errors (no Accept asked for problem+json). */
export function assertProblem(res: LightMyRequestResponse, status: number): Record<string, unknown> {
  assert.equal(res.statusCode, status, res.body)
  assert.match(String(res.headers['content-type']), /^application\/json/)
  const body = res.json() as Record<string, unknown>
  assert.equal(body.status, status)
  assert.equal(typeof body.title, 'string')
  assert.equal(typeof body.detail, 'string')
  assert.equal(typeof body.message, 'string')
  assert.equal(typeof body.type, 'string')
  return body
}

/** Pushes a one-layer image over /v2 as `username` (password auth through /jwt/auth); returns the manifest digest. */
export async function pushImage(
  h: ApiHarness,
  creds: { username: string; password: string },
  name: string,
  tags: string[],
  seed = 'layer',
): Promise<string> {
  const basic = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`
  const tok = await h.app.inject({
    method: 'GET',
    url: `/jwt/auth?service=container_registry&scope=repository:${name}:pull,push`,
    headers: { authorization: basic },
  })
  assert.equal(tok.statusCode, 200, tok.body)
  const bearer = { authorization: `Bearer ${(tok.json() as { token: string }).token}` }
  const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
  const layer = Buffer.from(`${seed}-${name}`)
  const config = Buffer.from(
    JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha(layer)] }, seed }),
  )
  for (const blob of [layer, config]) {
    const r = await h.app.inject({
      method: 'POST',
      url: `/v2/${name}/blobs/uploads/?digest=${sha(blob)}`,
      headers: { ...bearer, 'content-type': 'application/octet-stream' },
      payload: blob,
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha(layer), size: layer.length }],
    }),
  )
  for (const tag of tags) {
    const r = await h.app.inject({
      method: 'PUT',
      url: `/v2/${name}/manifests/${tag}`,
      headers: { ...bearer, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: manifest,
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  return sha(manifest)
}

const PASSWORDS: Record<string, string> = { root: ROOT_PASSWORD }
/** A user's password: root's, or the one `user()` gives (`<name>-password`). */
const passwordOf = (user: string) => PASSWORDS[user] ?? `${user}-password`

/** A registry token for `user` on `name` with these actions (password auth through /jwt/auth). */
export async function bearer(h: ApiHarness, user: string, name: string, actions: string) {
  const basic = `Basic ${Buffer.from(`${user}:${passwordOf(user)}`).toString('base64')}`
  const r = await h.app.inject({
    method: 'GET',
    url: `/jwt/auth?service=container_registry&scope=repository:${name}:${actions}`,
    headers: { authorization: basic },
  })
  assert.equal(r.statusCode, 200, r.body)
  return { authorization: `Bearer ${(r.json() as { token: string }).token}` }
}

/** Pushes a one-layer image whose content depends on `seed` only (same seed: same blobs and manifest) under `tag` as `user`; the manifest PUT's response. */
export async function pushSeeded(h: ApiHarness, user: string, name: string, tag: string, seed: string) {
  return pushSeededWith(h.app, await bearer(h, user, name, 'pull,push'), name, tag, seed)
}

/** `pushSeeded` with a registry authorization header already in hand (e.g. a job token's). */
export async function pushSeededWith(app: ApiHarness['app'], auth: { authorization: string }, name: string, tag: string, seed: string) {
  const layer = Buffer.from(`layer-${seed}`)
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }))
  for (const blob of [layer, config]) {
    const r = await app.inject({
      method: 'POST',
      url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`,
      headers: { ...auth, 'content-type': 'application/octet-stream' },
      payload: blob,
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  })
  return app.inject({
    method: 'PUT',
    url: `/v2/${name}/manifests/${tag}`,
    headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    payload: manifest,
  })
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
