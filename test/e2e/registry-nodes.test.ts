// Two `wharf serve` processes on one database and one store (issue 15): a node killed with
// SIGKILL in the middle of a chunk, and the client finishing its upload on the other node. Once
// on a shared data directory (the filesystem driver), once on S3 (Swift's s3api).
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { request, type IncomingHttpHeaders } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { after, before, describe, it } from 'node:test'
import { REGISTRY_SERVICE } from '../../src/core/names.ts'
import { startSwift, type SwiftS3 } from '../helpers/swift.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

const MiB = 1 << 20
const REPO = 'nodes/app'

interface Reply {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

function send(url: string, method: string, token: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { authorization: `Bearer ${token}`, ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

async function pushToken(w: Wharf): Promise<string> {
  const qs = new URLSearchParams({ service: REGISTRY_SERVICE, scope: `repository:${REPO}:pull,push` })
  const res = await fetch(`${w.url}/jwt/auth?${qs}`, {
    headers: { authorization: `Basic ${Buffer.from(`root:${w.rootPassword}`).toString('base64')}` },
  })
  assert.equal(res.status, 200)
  return ((await res.json()) as { token: string }).token
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/**
 * POST and a first chunk on A, then a second chunk to A that is cut short by SIGKILL once `sentBeforeKill`
 * bytes are out; the client asks B for the offset, sends the rest there and finishes there. Returns
 * how long B made the retry wait (A's claim running out).
 */
async function killMidChunk(a: Wharf, b: Wharf, data: Buffer, firstChunk: number, sentBeforeKill: number): Promise<number> {
  // Each node its own token: started on their own URLs, they are two issuers here (behind one balancer they share its URL).
  const token = await pushToken(a)
  const tokenB = await pushToken(b)
  const post = await send(`${a.url}/v2/${REPO}/blobs/uploads/`, 'POST', token)
  assert.equal(post.status, 202, post.body.toString())
  const location = String(post.headers.location)
  const first = await send(`${a.url}${location}`, 'PATCH', token, { 'content-range': `0-${firstChunk - 1}` }, data.subarray(0, firstChunk))
  assert.equal(first.status, 202, first.body.toString())

  // The second chunk streams to A, which dies with part of it received.
  const broken = new Promise<void>((resolve) => {
    const req = request(`${a.url}${location}`, {
      method: 'PATCH',
      headers: {
        authorization: `Bearer ${token}`,
        'content-type': 'application/octet-stream',
        'content-range': `${firstChunk}-${data.length - 1}`,
        'content-length': String(data.length - firstChunk),
      },
    })
    req.on('error', () => resolve())
    req.on('response', (res) => {
      res.resume()
      resolve()
    })
    req.write(data.subarray(firstChunk, firstChunk + sentBeforeKill))
  })
  await sleep(1_000)
  process.kill(a.pid, 'SIGKILL')
  await broken

  const status = await send(`${b.url}${location}`, 'GET', tokenB)
  assert.equal(status.status, 204, status.body.toString())
  assert.equal(status.headers.range, `0-${firstChunk - 1}`, 'B answers the offset A recorded before it died')
  const started = Date.now()
  const retry = await send(
    `${b.url}${location}`,
    'PATCH',
    tokenB,
    { 'content-range': `${firstChunk}-${data.length - 2}` },
    data.subarray(firstChunk, data.length - 1),
  )
  const waited = Date.now() - started
  assert.equal(retry.status, 202, `${retry.body}\n${await b.logTail(20)}`)
  assert.equal(retry.headers.range, `0-${data.length - 2}`)
  const done = await send(
    `${b.url}${location}?digest=${sha256(data)}`,
    'PUT',
    tokenB,
    { 'content-type': 'application/octet-stream' },
    data.subarray(data.length - 1),
  )
  assert.equal(done.status, 201, `${done.body}\n${await b.logTail(20)}`)
  const got = await send(`${b.url}/v2/${REPO}/blobs/${sha256(data)}`, 'GET', tokenB)
  assert.equal(got.status, 200)
  assert.equal(sha256(got.body), sha256(data))
  return waited
}

describe('two nodes, one killed mid-chunk', { timeout: 300_000 }, () => {
  let swift: SwiftS3 | undefined
  const servers: Wharf[] = []
  before(async () => {
    swift = await startSwift()
  })
  after(async () => {
    for (const w of servers) await w.stop().catch(() => {})
    await swift?.stop()
  })

  it('shared data directory: the client finishes on the other node, and the first one, restarted, serves the blob', async () => {
    const a = await startWharf()
    servers.push(a)
    await a.createProject(REPO)
    const b = await startWharf({ dataDir: a.dataDir, rootPassword: a.rootPassword })
    servers.push(b)
    const data = randomBytes(6 * MiB)
    const waited = await killMidChunk(a, b, data, 2 * MiB, 1 * MiB)
    // A's claim (renewed until it died) held the session; B took it over once it ran out (20 s).
    assert.ok(waited >= 5_000 && waited < 25_000, `the retry waited ${waited} ms`)
    await a.restart()
    const token = await pushToken(a)
    const got = await send(`${a.url}/v2/${REPO}/blobs/${sha256(data)}`, 'GET', token)
    assert.equal(got.status, 200)
    assert.equal(sha256(got.body), sha256(data))
  })

  it('S3: a segment the dead node stored past the offset is not used, and the upload completes through a multipart copy', async () => {
    const s3 = swift!
    const prefix = s3.newPrefix()
    const env = {
      WHARF_STORAGE: 's3',
      WHARF_S3_ENDPOINT: s3.endpoint,
      WHARF_S3_REGION: s3.region,
      WHARF_S3_BUCKET: s3.bucket,
      WHARF_S3_PREFIX: prefix,
      WHARF_S3_ACCESS_KEY_ID: s3.accessKeyId,
      WHARF_S3_SECRET_ACCESS_KEY: s3.secretAccessKey,
      WHARF_S3_FORCE_PATH_STYLE: 'true',
    }
    const a = await startWharf({ env })
    servers.push(a)
    await a.createProject(REPO)
    const b = await startWharf({ dataDir: a.dataDir, rootPassword: a.rootPassword, env })
    servers.push(b)
    // 6 MiB stored by A; of the next chunk 20 MiB reach A, enough for it to store one 16 MiB segment before it dies.
    const data = randomBytes(40 * MiB)
    await killMidChunk(a, b, data, 6 * MiB, 20 * MiB)
    const left = (await s3.keys(`${prefix}uploads/`)).filter((k) => !k.includes('~seg/'))
    assert.deepEqual(left, [], 'no upload manifest is left behind')
  })
})
