// Two Wharf nodes on one database and one storage directory (issue 15): each node is its own
// buildApp over its own database connection, storage driver and memory, as two processes behind
// a balancer would be. Upload sessions must not care which node a request reaches.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { PassThrough, type Readable } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it, type TestContext } from 'node:test'
import type { FastifyInstance, InjectOptions } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { parseRepoName } from '../../src/core/names.ts'
import type { Database } from '../../src/metadata/schema.ts'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { Uploads } from '../../src/registry/uploads.ts'
import { createServices } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'
import { openTestDb } from '../helpers/database.ts'
import { assertOciError, harness, PUBLIC_URL, randomBlob, sha256, type Harness, type Response } from './harness.ts'

const REPO = 't/nodes'

interface Node {
  name: string
  app: FastifyInstance
  db: Kysely<Database>
  inject(opts: InjectOptions): Promise<Response>
}

/** A second node over the harness's data directory (the first is the harness itself), with root's token. */
async function twoNodes(t: TestContext): Promise<{ h: Harness; a: Node; b: Node }> {
  const h = await harness(t)
  await h.ensureProject(REPO)
  const token = await h.token([`repository:${REPO}:pull,push,delete`])
  const auth = (opts: InjectOptions): InjectOptions => ({ ...opts, headers: { ...opts.headers, authorization: `Bearer ${token}` } })
  const db = await openTestDb(h.dataDir)
  const services = await createServices(db, createFsDriver(h.storageDir), {
    publicUrl: PUBLIC_URL,
    tokenTtlSeconds: 300,
    pageMax: 10_000,
    rootPassword: h.rootPassword,
  })
  const app = await buildApp({ logger: pino({ level: 'silent' }), ...services, publicUrl: PUBLIC_URL, limits: { manifestBytes: 4 << 20 } })
  t.after(async () => {
    await app.close()
    await db.destroy()
  })
  return {
    h,
    a: { name: 'A', app: h.app, db: h.db, inject: (o) => h.app.inject(auth(o)) },
    b: { name: 'B', app, db, inject: (o) => app.inject(auth(o)) },
  }
}

function patch(n: Node, url: string, body: Buffer | Readable, range?: string): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream' }
  if (range) headers['content-range'] = range
  return n.inject({ method: 'PATCH', url, headers, payload: body })
}

async function startUpload(n: Node): Promise<{ url: string; id: string }> {
  const res = await n.inject({ method: 'POST', url: `/v2/${REPO}/blobs/uploads/` })
  assert.equal(res.statusCode, 202, res.body)
  const url = String(res.headers.location)
  return { url, id: url.split('/').pop()! }
}

async function offset(n: Node, url: string): Promise<string> {
  const res = await n.inject({ method: 'GET', url })
  assert.equal(res.statusCode, 204, `${n.name}: ${res.body}`)
  return String(res.headers.range)
}

async function assertStored(n: Node, data: Buffer): Promise<void> {
  const res = await n.inject({ method: 'GET', url: `/v2/${REPO}/blobs/${sha256(data)}` })
  assert.equal(res.statusCode, 200, `${n.name}: ${res.body}`)
  assert.equal(sha256(res.rawPayload), sha256(data))
}

/** Resolves once the session is claimed in the database (a request is streaming into it). */
async function claimedInDb(db: Kysely<Database>, id: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const row = await db.selectFrom('uploads').select('writer_until').where('id', '=', id).executeTakeFirst()
    if (row?.writer_until) return
    await sleep(10)
  }
  assert.fail(`session ${id} was never claimed`)
}

describe('registry on two nodes: upload sessions', () => {
  it('a chunked upload whose requests alternate between the nodes completes with the right digest', async (t) => {
    const { a, b } = await twoNodes(t)
    const data = randomBlob(50_000)
    const { url } = await startUpload(a)
    const cuts = [0, 7_000, 19_000, 19_001, 33_000, 45_000]
    const nodes = [b, a, b, a, b]
    for (let i = 0; i < nodes.length; i++) {
      const [from, to] = [cuts[i]!, cuts[i + 1]!]
      const res = await patch(nodes[i]!, url, data.subarray(from, to), `${from}-${to - 1}`)
      assert.equal(res.statusCode, 202, `${nodes[i]!.name} chunk ${from}-${to - 1}: ${res.body}`)
      assert.equal(res.headers.range, `0-${to - 1}`)
      // Either node tells the true offset.
      assert.equal(await offset(a, url), `0-${to - 1}`)
      assert.equal(await offset(b, url), `0-${to - 1}`)
    }
    const done = await a.inject({
      method: 'PUT',
      url: `${url}?digest=${sha256(data)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data.subarray(45_000),
    })
    assert.equal(done.statusCode, 201, done.body)
    await assertStored(b, data)
    await assertStored(a, data)
  })

  it('the node that did not see the last chunk finishes the upload (its digest is read back from storage)', async (t) => {
    const { a, b } = await twoNodes(t)
    const data = randomBlob(30_000)
    const { url } = await startUpload(a)
    assert.equal((await patch(a, url, data.subarray(0, 10_000))).statusCode, 202)
    assert.equal((await patch(b, url, data.subarray(10_000, 20_000))).statusCode, 202)
    // A still holds a running digest for the first 10,000 bytes: it must not use it for 20,000.
    assert.equal((await patch(a, url, data.subarray(20_000))).statusCode, 202)
    const res = await b.inject({ method: 'PUT', url: `${url}?digest=${sha256(data)}` })
    assert.equal(res.statusCode, 201, res.body)
    await assertStored(a, data)
  })

  it('two PATCHes for one offset on two nodes: one is stored, the other gets 416 with Range and Location', async (t) => {
    const { a, b } = await twoNodes(t)
    const data = randomBlob(40_000)
    const { url, id } = await startUpload(a)
    assert.equal((await patch(a, url, data.subarray(0, 10_000), '0-9999')).statusCode, 202)
    // A's chunk streams slowly; B's chunk for the same offset arrives meanwhile.
    const slow = new PassThrough()
    const first = patch(a, url, slow, '10000-29999')
    slow.write(data.subarray(10_000, 20_000))
    await claimedInDb(b.db, id)
    const rival = randomBlob(20_000)
    const second = patch(b, url, rival, '10000-29999')
    await sleep(100)
    slow.end(data.subarray(20_000, 30_000))
    const [won, lost] = await Promise.all([first, second])
    assert.equal(won.statusCode, 202, won.body)
    assert.equal(won.headers.range, '0-29999')
    assertOciError(lost, 416, OCI_ERRORS.RANGE_INVALID!.code)
    assert.equal(lost.headers.range, '0-29999', 'the 416 says where the session is')
    assert.equal(lost.headers.location, url)
    assert.equal(await offset(b, url), '0-29999')
    assert.equal((await patch(b, url, data.subarray(30_000), '30000-39999')).statusCode, 202)
    const res = await a.inject({ method: 'PUT', url: `${url}?digest=${sha256(data)}` })
    assert.equal(res.statusCode, 201, res.body)
    await assertStored(b, data)
  })

  it('PATCHes without Content-Range on two nodes at once are appended one after the other', async (t) => {
    const { a, b } = await twoNodes(t)
    const { url } = await startUpload(a)
    const parts = [Buffer.alloc(5000, 1), Buffer.alloc(5000, 2), Buffer.alloc(5000, 3), Buffer.alloc(5000, 4)]
    const results = await Promise.all(parts.map((p, i) => patch(i % 2 ? b : a, url, p)))
    for (const r of results) assert.equal(r.statusCode, 202, r.body)
    assert.equal(await offset(a, url), '0-19999')
    // Each part went in whole: the stored bytes are the parts in some order.
    const ends = results.map((r) => Number(String(r.headers.range).split('-')[1]) + 1).sort((x, y) => x - y)
    assert.deepEqual(ends, [5000, 10000, 15000, 20000])
  })
})

describe('registry on two nodes: claims of a node that stopped', () => {
  it('a session a dead node still claims is taken over once its claim ran out; the chunk it was writing is dropped', async (t) => {
    const { h, b } = await twoNodes(t)
    const data = randomBlob(20_000)
    const { url, id } = await startUpload(b)
    assert.equal((await patch(b, url, data.subarray(0, 5_000), '0-4999')).statusCode, 202)
    // A node killed mid-chunk: its claim is in the row, and some of its bytes past the offset reached storage.
    await h.db
      .updateTable('uploads')
      .set({ writer: 'a-dead-node', writer_until: new Date(Date.now() + 1_500).toISOString() })
      .where('id', '=', id)
      .execute()
    const { appendFile } = await import('node:fs/promises')
    await appendFile(join(h.storageDir, 'uploads', id), Buffer.from('half a chunk from the dead node'))
    assert.equal(await offset(b, url), '0-4999')
    const started = Date.now()
    const res = await patch(b, url, data.subarray(5_000, 15_000), '5000-14999')
    assert.equal(res.statusCode, 202, res.body)
    assert.ok(Date.now() - started >= 1_000, 'the retry waited for the dead claim to run out')
    const done = await b.inject({
      method: 'PUT',
      url: `${url}?digest=${sha256(data)}`,
      headers: { 'content-type': 'application/octet-stream', 'content-range': '15000-19999' },
      payload: data.subarray(15_000),
    })
    assert.equal(done.statusCode, 201, done.body)
    await assertStored(b, data)
  })

  it('a writer that loses its claim stops, records nothing, and the session resumes on the other node', async (t) => {
    const { h, b } = await twoNodes(t)
    const name = parseRepoName(REPO)
    const data = randomBlob(30_000)
    const { url, id } = await startUpload(b)
    assert.equal((await patch(b, url, data.subarray(0, 10_000))).statusCode, 202)
    // Node A with a short claim; its chunk stalls, and meanwhile the claim passes to someone else.
    const nodeA = new Uploads(h.db, createFsDriver(h.storageDir), undefined, { claimMs: 1_000 })
    const body = new PassThrough()
    const writing = nodeA.append(name, id, { stream: body, rangeStart: 10_000 })
    body.write(Buffer.alloc(3_000, 0xee))
    await claimedInDb(h.db, id)
    await h.db.updateTable('uploads').set({ writer: 'someone-else' }).where('id', '=', id).execute()
    await assert.rejects(writing, (e: Error & { code?: string }) => e.code === 'BLOB_UPLOAD_INVALID')
    body.destroy()
    await h.db.updateTable('uploads').set({ writer_until: null }).where('id', '=', id).execute()
    assert.equal(await offset(b, url), '0-9999', 'the lost chunk was not recorded')
    assert.equal((await patch(b, url, data.subarray(10_000), '10000-29999')).statusCode, 202)
    const res = await b.inject({ method: 'PUT', url: `${url}?digest=${sha256(data)}` })
    assert.equal(res.statusCode, 201, res.body)
    await assertStored(b, data)
  })

  it("another node's sweep does not expire a session a chunk is streaming into", async (t) => {
    const { h, b } = await twoNodes(t)
    const { url, id } = await startUpload(b)
    const past = new Date(Date.now() - 2 * 3600 * 1000).toISOString()
    await h.db.updateTable('uploads').set({ updated_at: past }).where('id', '=', id).execute()
    const body = new PassThrough()
    const writing = patch(b, url, body)
    body.write(Buffer.from('first half '))
    await claimedInDb(h.db, id)
    assert.deepEqual(await h.registry.uploads.sweep(3600), { expired: 0, orphans: 0 })
    body.end(Buffer.from('second half'))
    assert.equal((await writing).statusCode, 202)
    assert.equal(await offset(b, url), `0-${'first half second half'.length - 1}`)
  })
})
