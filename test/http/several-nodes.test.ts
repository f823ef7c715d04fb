// Several nodes on one database (issue 15): two Wharf servers, each with its own data directory
// and process state, started in this process on one database (a SQLite file here; PostgreSQL with
// WHARF_TEST_DATABASE=postgres) and driven over real HTTP, as a round-robin balancer would.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { Kysely } from 'kysely'
import { RegistryTokens } from '../../src/auth/registry-tokens.ts'
import { loadConfig } from '../../src/config/load.ts'
import { SealingKeyMismatchError } from '../../src/core/sealing.ts'
import type { Database } from '../../src/metadata/schema.ts'
import { type RunningServer, startServer } from '../../src/server.ts'
import { REGISTRY_SERVICE } from '../../src/services.ts'
import { openTestDb, testDatabaseUrl } from '../helpers/database.ts'
import { freePort } from '../helpers/wharf.ts'

const PUBLIC_URL = 'http://wharf.cluster.test'

interface Node {
  base: string
  server: RunningServer
}

let root: string
let db: Kysely<Database>
let keyFile: string
let dbUrl: string
const nodes: Node[] = []
let rootPassword = ''

async function startNode(name: string, env: Record<string, string> = {}): Promise<Node> {
  const port = await freePort()
  const config = loadConfig({
    env: {
      WHARF_DATA: join(root, name),
      WHARF_DATABASE_URL: dbUrl,
      WHARF_LISTEN: `127.0.0.1:${port}`,
      // The balancer's address: the nodes share it (token issuer, links).
      WHARF_PUBLIC_URL: PUBLIC_URL,
      WHARF_LOG_LEVEL: 'silent',
      WHARF_SEALING_KEY_FILE: keyFile,
      WHARF_CI_SCHEDULER_INTERVAL_SECONDS: '1',
      ...env,
    },
  })
  const server = await startServer(config)
  return { base: `http://127.0.0.1:${port}`, server }
}

const basic = (user: string, secret: string) => `Basic ${Buffer.from(`${user}:${secret}`).toString('base64')}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A registry token (no repository access: enough for GET /v2/) from `node` for these credentials. */
async function registryToken(node: Node, user: string, secret: string): Promise<string> {
  const res = await fetch(`${node.base}/jwt/auth?service=${REGISTRY_SERVICE}`, { headers: { authorization: basic(user, secret) } })
  assert.equal(res.status, 200, await res.clone().text())
  return ((await res.json()) as { token: string }).token
}

async function v2(node: Node, token: string): Promise<number> {
  const res = await fetch(`${node.base}/v2/`, { headers: { authorization: `Bearer ${token}` } })
  await res.arrayBuffer()
  return res.status
}

async function api(node: Node, method: string, path: string, auth: Record<string, string>, body?: object) {
  const res = await fetch(`${node.base}/api/v4${path}`, {
    method,
    headers: { ...auth, ...(body ? { 'content-type': 'application/json' } : {}) },
    ...(body ? { body: JSON.stringify(body) } : {}),
  })
  const text = await res.text()
  return { status: res.status, json: text ? (JSON.parse(text) as Record<string, unknown>) : {} }
}

async function rootBearer(node: Node): Promise<Record<string, string>> {
  const res = await fetch(`${node.base}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ grant_type: 'password', username: 'root', password: rootPassword }),
  })
  assert.equal(res.status, 200)
  return { authorization: `Bearer ${((await res.json()) as { access_token: string }).access_token}` }
}

describe('two nodes on one database', () => {
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'wharf-nodes-'))
    // The shared database, migrated before the nodes start (a deployment migrates once, too).
    db = await openTestDb(join(root, 'shared'))
    dbUrl = await testDatabaseUrl(join(root, 'shared'))
    keyFile = join(root, 'sealing.key')
    await writeFile(keyFile, `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 })
    // Both start at once on the empty database.
    nodes.push(...(await Promise.all([startNode('a'), startNode('b')])))
  })
  after(async () => {
    for (const n of nodes) await n.server.close()
    await db.destroy()
    await rm(root, { recursive: true, force: true })
  })

  it('starting at once on an empty database, they create exactly one administrator', async () => {
    const users = await db.selectFrom('users').select(['username', 'is_admin']).execute()
    assert.deepEqual(
      users.map((u) => ({ ...u })),
      [{ username: 'root', is_admin: 1 }],
    )
    const generated = nodes.map((n) => n.server.generatedRootPassword).filter((p) => p !== undefined)
    assert.equal(generated.length, 1, 'only the node that created root reports a generated password')
    rootPassword = generated[0]!
    for (const n of nodes) await registryToken(n, 'root', rootPassword)
  })

  it('a node whose sealing key differs from the one the database knows refuses to start', async () => {
    const otherKey = join(root, 'other.key')
    await writeFile(otherKey, `${randomBytes(32).toString('base64')}\n`)
    await assert.rejects(startNode('c', { WHARF_SEALING_KEY_FILE: otherKey }), SealingKeyMismatchError)
    // Without the setting, a node makes its own key in its data directory: not the shared one either.
    const own = loadConfig({
      env: {
        WHARF_DATA: join(root, 'd'),
        WHARF_DATABASE_URL: dbUrl,
        WHARF_LISTEN: `127.0.0.1:${await freePort()}`,
        WHARF_LOG_LEVEL: 'silent',
      },
    })
    await assert.rejects(startServer(own), (e: Error) => e instanceof SealingKeyMismatchError && /secrets\.sealingKeyFile/.test(e.message))
  })

  it('a signing key rotated on one node verifies on the other within a second; a retired one stops there too', async () => {
    const [a, b] = nodes as [Node, Node]
    const old = await registryToken(b, 'root', rootPassword)
    assert.equal(await v2(b, old), 200)
    const rotated = await api(a, 'POST', '/admin/signing_keys/rotate', await rootBearer(a))
    assert.equal(rotated.status, 201)
    const fresh = await registryToken(a, 'root', rootPassword)
    await sleep(1100)
    assert.equal(await v2(b, fresh), 200, 'signed with the key node a made')
    // Retired offline, as `wharf admin signing-key retire` does beside the running nodes.
    const offline = new RegistryTokens(db, { issuer: PUBLIC_URL, service: REGISTRY_SERVICE, ttlSeconds: 300 })
    await offline.load()
    assert.ok((await offline.retireOldKeys()) >= 1)
    await sleep(1100)
    for (const n of nodes) assert.equal(await v2(n, old), 401, `${n.base} still accepts a token of the retired key`)
    assert.equal(await v2(b, fresh), 200)
  })

  it('revoking a token or blocking a user on one node is refused by the other', async () => {
    const [a, b] = nodes as [Node, Node]
    const admin = await rootBearer(a)
    const alice = await api(a, 'POST', '/users', admin, { username: 'alice', name: 'Alice', password: 'alice-password-1' })
    assert.equal(alice.status, 201)
    const pat = await api(a, 'POST', `/users/${alice.json.id}/personal_access_tokens`, admin, {
      name: 'ci',
      scopes: ['api', 'read_registry'],
    })
    assert.equal(pat.status, 201)
    const secret = { 'private-token': String(pat.json.token) }
    assert.equal((await api(b, 'GET', '/user', secret)).status, 200)
    const rt = await registryToken(b, 'alice', String(pat.json.token))
    assert.equal(await v2(b, rt), 200)
    assert.equal((await api(a, 'DELETE', `/personal_access_tokens/${pat.json.id}`, admin)).status, 204)
    assert.equal((await api(b, 'GET', '/user', secret)).status, 401, 'the API on node b refuses the revoked token at once')
    await sleep(1100)
    assert.equal(await v2(b, rt), 401, 'node b refuses the registry token of the revoked PAT within a second')

    const second = await api(a, 'POST', `/users/${alice.json.id}/personal_access_tokens`, admin, { name: 'ci2', scopes: ['api'] })
    const secret2 = { 'private-token': String(second.json.token) }
    assert.equal((await api(b, 'GET', '/user', secret2)).status, 200)
    const rtPassword = await registryToken(b, 'alice', 'alice-password-1')
    assert.equal(await v2(b, rtPassword), 200)
    assert.equal((await api(a, 'POST', `/users/${alice.json.id}/block`, admin)).status, 201)
    assert.notEqual((await api(b, 'GET', '/user', secret2)).status, 200, 'node b refuses the blocked user at once')
    await sleep(1100)
    assert.equal(await v2(b, rtPassword), 401, 'node b refuses the blocked user’s registry token within a second')
  })

  it('failed sign-ins count on every node: alternating between them, the 11th attempt is throttled on both', async () => {
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${nodes[i % 2]!.base}/jwt/auth?service=${REGISTRY_SERVICE}`, {
        headers: { authorization: basic('mallory-target', 'wrong-password') },
      })
      assert.equal(res.status, 401, `failure ${i + 1}`)
    }
    for (const n of nodes) {
      const res = await fetch(`${n.base}/jwt/auth?service=${REGISTRY_SERVICE}`, {
        headers: { authorization: basic('mallory-target', 'wrong-password') },
      })
      assert.equal(res.status, 429, `${n.base} throttles`)
      assert.ok(Number(res.headers.get('retry-after')) > 0)
    }
  })

  it('each periodic task is held by one node; when it stops, the other takes its tasks over', async () => {
    const ids = nodes.map((n) => n.server.nodeId)
    assert.notEqual(ids[0], ids[1])
    const leases = await db.selectFrom('leases').selectAll().execute()
    const names = leases.map((l) => l.name).sort()
    for (const name of [
      'ci.job-sweep',
      'ci.schedules',
      'dependency-proxy.cleanup',
      'git.push-redelivery',
      'registry.cleanup-policies',
      'uploads.sweep',
    ])
      assert.ok(names.includes(name), `${name} has a lease (${names.join(', ')})`)
    for (const l of leases) assert.ok(ids.includes(l.holder), `${l.name} is held by a node: ${l.holder}`)
    const holder = leases.find((l) => l.name === 'ci.schedules')!.holder
    const [stopped] = nodes.splice(ids.indexOf(holder), 1)
    await stopped!.server.close()
    const survivor = nodes[0]
    const deadline = Date.now() + 5000
    let now: string | undefined
    while (Date.now() < deadline) {
      now = (await db.selectFrom('leases').select('holder').where('name', '=', 'ci.schedules').executeTakeFirst())?.holder
      if (now === survivor!.server.nodeId) break
      await sleep(100)
    }
    assert.equal(now, survivor!.server.nodeId, 'the surviving node took the schedules over')
  })
})
