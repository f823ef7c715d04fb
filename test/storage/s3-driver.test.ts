// The S3 driver against a real S3-compatible server (Swift's s3api, started once for this file):
// the shared conformance suite, then what only S3 has (segments, multipart commits, presigned URLs).
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import dc from 'node:diagnostics_channel'
import type { ClientRequest } from 'node:http'
import { after, before, describe, it } from 'node:test'
import { CreateMultipartUploadCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3'
import { startSwift, type SwiftS3 } from '../helpers/swift.ts'
import { describeBlobDriver, writeAt } from '../../src/storage/driver-suite.ts'
import type { BlobDriver } from '../../src/storage/driver.ts'
import { createS3Driver, type S3DriverOptions } from '../../src/storage/s3-driver.ts'

const MiB = 1 << 20
let swift: SwiftS3
const started = startSwift().then((s) => (swift = s))
before(() => started)
after(() => swift?.stop())

function driverAt(prefix: string, extra: { redirectSeconds?: number } = {}): BlobDriver {
  return createS3Driver(driverOptions(prefix, extra))
}

function driverOptions(prefix: string, extra: { redirectSeconds?: number } = {}): S3DriverOptions {
  return {
    endpoint: swift.endpoint,
    region: swift.region,
    bucket: swift.bucket,
    prefix,
    accessKeyId: swift.accessKeyId,
    secretAccessKey: swift.secretAccessKey,
    forcePathStyle: true,
    // The smallest part S3 allows: the suite's 5 MiB files then span several segments.
    partSize: 5 * MiB,
    ...extra,
  }
}

describeBlobDriver('s3', async () => {
  await started
  const prefix = swift.newPrefix()
  return { driver: driverAt(prefix), cleanup: () => swift.clear(prefix) }
})

/** Counts, while `fn` runs, the TCP connections this process opens and its HTTP requests by method. */
async function traffic(fn: () => Promise<void>): Promise<{ connections: number; requests: Record<string, number> }> {
  const seen = { connections: 0, requests: {} as Record<string, number> }
  const onSocket = () => void seen.connections++
  const onRequest = (m: unknown) => {
    const method = (m as { request: ClientRequest }).request.method
    seen.requests[method] = (seen.requests[method] ?? 0) + 1
  }
  dc.subscribe('net.client.socket', onSocket)
  dc.subscribe('http.client.request.start', onRequest)
  try {
    await fn()
  } finally {
    dc.unsubscribe('net.client.socket', onSocket)
    dc.unsubscribe('http.client.request.start', onRequest)
  }
  return seen
}

/** Writes `data` through one appender in 64 KiB chunks (as a request body arrives), honouring back-pressure. */
async function writeInChunks(d: BlobDriver, path: string, data: Buffer, opts?: { durable?: boolean }): Promise<void> {
  const out = await d.appender(path, 0, opts)
  for (let at = 0; at < data.length; at += 64 << 10)
    if (!out.write(data.subarray(at, at + (64 << 10)))) await new Promise((r) => out.once('drain', r))
  await new Promise<void>((ok, ko) => out.end((err?: Error | null) => (err ? ko(err) : ok())))
}

async function readAllBytes(d: BlobDriver, path: string): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const c of await d.reader(path)) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 13 + seed + (i >> 12)) & 0xff
  return b
}

describe('s3 driver specifics', () => {
  it('small chunks grow one file across appenders; the commit assembles parts of at least 5 MiB on the server and leaves only the blob', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const data = pattern(12 * MiB + 333, 1)
    // 700 KiB chunks, as a client sending small PATCHes would: every one below S3's smallest part.
    for (let at = 0; at < data.length; at += 700 << 10) await writeAt(d, 'uploads/u', at, data.subarray(at, at + (700 << 10)))
    assert.equal((await d.stat('uploads/u'))?.size, data.length)
    const keys = await swift.keys(`${prefix}uploads/`)
    assert.ok(keys.length >= 3, `a manifest and its segments: ${keys.join(' ')}`)
    await d.commit('uploads/u', 'blobs/sha256/ab/u')
    assert.deepEqual(await swift.keys(prefix), [`${prefix}blobs/sha256/ab/u`])
    const src = await d.reader('blobs/sha256/ab/u')
    const chunks: Buffer[] = []
    for await (const c of src) chunks.push(c as Buffer)
    assert.ok(Buffer.concat(chunks).equals(data))
    await swift.clear(prefix)
  })

  it('an upload continues on another driver instance (a restart, another node) and a crash past the offset is cut off', async () => {
    const prefix = swift.newPrefix()
    const a = driverAt(prefix)
    const data = pattern(11 * MiB, 2)
    await writeAt(a, 'uploads/x', 0, data.subarray(0, 6 * MiB))
    // Bytes a crashed request left past the recorded offset (6 MiB + 100) are dropped by the next appender.
    await writeAt(a, 'uploads/x', 6 * MiB, pattern(100, 9))
    const b = driverAt(prefix)
    assert.equal((await b.stat('uploads/x'))?.size, 6 * MiB + 100)
    await writeAt(b, 'uploads/x', 6 * MiB, data.subarray(6 * MiB))
    await b.commit('uploads/x', 'blobs/x')
    const out = await b.reader('blobs/x', { offset: 5 * MiB, length: 2 * MiB })
    const chunks: Buffer[] = []
    for await (const c of out) chunks.push(c as Buffer)
    assert.ok(Buffer.concat(chunks).equals(data.subarray(5 * MiB, 7 * MiB)))
    assert.equal((await b.stat('blobs/x'))?.size, data.length)
    await swift.clear(prefix)
  })

  it('a writer destroyed midway keeps the bytes it had received', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const out = await d.appender('uploads/broken', 0)
    out.on('error', () => {})
    out.write(pattern(7 * MiB, 3))
    await new Promise((r) => setTimeout(r, 50))
    out.destroy(new Error('client went away'))
    await new Promise((r) => out.once('close', r))
    assert.equal((await d.stat('uploads/broken'))?.size, 7 * MiB)
    await writeAt(d, 'uploads/broken', 7 * MiB, 'tail')
    assert.equal((await d.stat('uploads/broken'))?.size, 7 * MiB + 4)
    await d.delete('uploads/broken')
    assert.deepEqual(await swift.keys(prefix), [])
  })

  it('a writer aborted (its upload was taken over by another node) stores nothing more: no segment, no manifest', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    await writeAt(d, 'uploads/taken', 0, 'kept by the last writer')
    const out = await d.appender('uploads/taken', 23)
    out.on('error', () => {})
    out.write(pattern(3 * MiB, 4))
    await new Promise((r) => setTimeout(r, 50))
    out.destroy(new DOMException('the claim was lost', 'AbortError'))
    await new Promise((r) => out.once('close', r))
    assert.equal((await d.stat('uploads/taken'))?.size, 23, "the manifest is the last writer's")
    assert.equal((await swift.keys(`${prefix}uploads/`)).length, 2, 'its manifest and its one segment')
    await swift.clear(prefix)
  })

  it('a multipart upload a killed commit left is found in the bucket and aborted once older than the cutoff', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const other = swift.newPrefix()
    for (const k of [`${prefix}blobs/sha256/ab/left`, `${other}blobs/sha256/ab/elsewhere`])
      await swift.client.send(new CreateMultipartUploadCommand({ Bucket: swift.bucket, Key: k }))
    const pending = async (p: string) =>
      ((await swift.client.send(new ListMultipartUploadsCommand({ Bucket: swift.bucket, Prefix: p }))).Uploads ?? []).length
    assert.equal(await d.abortIncomplete!(new Date(Date.now() - 3600_000)), 0, 'a recent one may be a commit under way')
    assert.equal(await pending(prefix), 1)
    assert.equal(await d.abortIncomplete!(new Date(Date.now() + 60_000)), 1)
    assert.equal(await pending(prefix), 0)
    assert.equal(await pending(other), 1, 'another prefix (another installation) is left alone')
    await driverAt(other).abortIncomplete!(new Date(Date.now() + 60_000))
  })

  it('segments a writer left without a manifest are listed as their file, so a sweep can delete them', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const id = '0b4f7f6e-7f43-4c8e-9a51-2f6a0f3a1c11'
    await swift.client.send(
      new PutObjectCommand({ Bucket: swift.bucket, Key: `${prefix}uploads/${id}~seg/0000000000000000`, Body: Buffer.from('orphan') }),
    )
    await writeAt(d, 'uploads/live', 0, 'x')
    const listed: string[] = []
    for await (const f of d.list('uploads')) listed.push(f.path)
    assert.deepEqual(listed.sort(), [`uploads/${id}`, 'uploads/live'])
    await d.delete(`uploads/${id}`)
    assert.deepEqual(await swift.keys(`${prefix}uploads/${id}`), [])
    await swift.clear(prefix)
  })

  it('segment uploads reuse kept-alive connections (no new connection, nor a 100-continue wait, per segment)', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const data = pattern(20 * MiB, 5)
    // The first file fills the connection pool (up to one connection per upload in flight).
    await writeInChunks(d, 'uploads/first', data)
    const second = await traffic(() => writeInChunks(d, 'uploads/second', data))
    assert.equal(second.requests.PUT, 5, 'four 5 MiB segments and the manifest')
    assert.ok(second.connections <= 1, `connections opened for the second file's 4 segments: ${second.connections}`)
    await swift.clear(prefix)
  })

  it('a commit right after a durable writer reads nothing back; one after a plain writer still does', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const data = pattern(11 * MiB + 7, 6)
    await writeInChunks(d, 'uploads/durable', data, { durable: true })
    const synced = await traffic(() => d.commit('uploads/durable', 'blobs/sha256/du/durable', { synced: true }))
    assert.equal(synced.requests.GET, undefined, 'the segment list comes from the writer just closed')
    assert.ok((await readAllBytes(d, 'blobs/sha256/du/durable')).equals(data))
    // Another writer (another node, or a later chunk) may have changed the file: without `synced` it is read.
    await writeInChunks(d, 'uploads/plain', data)
    const plain = await traffic(() => d.commit('uploads/plain', 'blobs/sha256/pl/plain'))
    assert.equal(plain.requests.GET, 1)
    assert.ok((await readAllBytes(d, 'blobs/sha256/pl/plain')).equals(data))
    assert.deepEqual((await swift.keys(prefix)).sort(), [`${prefix}blobs/sha256/du/durable`, `${prefix}blobs/sha256/pl/plain`])
    await swift.clear(prefix)
  })

  it('reads of a file while it is written return its bytes, from segments in memory, in flight or stored', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix)
    const data = pattern(16 * MiB + 123, 7)
    const r = await d.openPositional('uploads/live-file').catch(() => undefined)
    assert.equal(r, undefined, 'no file yet')
    const out = await d.appender('uploads/live-file', 0)
    const reader = await d.openPositional('uploads/live-file')
    const buf = Buffer.alloc(200_000)
    let checks = 0
    for (let at = 0; at < data.length; at += 64 << 10) {
      const end = Math.min(data.length, at + (64 << 10))
      // 64 KiB chunks: a read of 200,000 bytes from a position before the newest one spans several chunks of a segment.
      // Once a write called back, its bytes are the writer's (pending, or in a segment): readable.
      await new Promise((ok) => out.write(data.subarray(at, end), ok))
      const pos = Math.max(0, end - 150_000)
      const n = await reader.read(buf, buf.length, pos)
      assert.ok(n > 0 && n <= end - pos, `read ${n} at ${pos} of ${end} written`)
      assert.ok(buf.subarray(0, n).equals(data.subarray(pos, pos + n)), `bytes at ${pos}`)
      checks++
    }
    await new Promise<void>((ok, ko) => out.end((err?: Error | null) => (err ? ko(err) : ok())))
    assert.ok(checks > 200)
    await reader.close()
    await d.delete('uploads/live-file')
    await swift.clear(prefix)
  })

  it('over plain http to a host other than loopback every body is hashed for the signature, and the store takes it', async () => {
    const prefix = swift.newPrefix()
    const signed = new Set<string>()
    const onRequest = (m: unknown) => void signed.add(String((m as { request: ClientRequest }).request.getHeader('x-amz-content-sha256')))
    // The IPv4-mapped form of 127.0.0.1: still this machine, but not a name the driver takes for loopback.
    const endpoint = swift.endpoint.replace('//127.0.0.1:', '//[::ffff:127.0.0.1]:')
    const d = createS3Driver({ ...driverOptions(prefix), endpoint })
    const data = pattern(6 * MiB, 8)
    dc.subscribe('http.client.request.start', onRequest)
    try {
      await writeInChunks(d, 'uploads/s', data, { durable: true })
      await d.commit('uploads/s', 'blobs/s', { synced: true })
    } finally {
      dc.unsubscribe('http.client.request.start', onRequest)
    }
    assert.ok(!signed.has('UNSIGNED-PAYLOAD'), [...signed].join(' '))
    assert.ok(
      signed.has(
        createHash('sha256')
          .update(data.subarray(0, 5 * MiB))
          .digest('hex'),
      ),
      'the first segment signed with its hash',
    )
    assert.ok((await readAllBytes(driverAt(prefix), 'blobs/s')).equals(data))
    await swift.clear(prefix)
  })

  it('presigned redirect URLs serve the object to a plain HTTP client; without the setting there are none', async () => {
    const prefix = swift.newPrefix()
    const d = driverAt(prefix, { redirectSeconds: 60 })
    await writeAt(d, 'uploads/t', 0, 'presigned content')
    await d.commit('uploads/t', 'blobs/p')
    const url = await d.redirectUrl!('blobs/p')
    assert.ok(url?.includes('X-Amz-Signature'), url)
    const res = await fetch(url!)
    assert.equal(res.status, 200)
    assert.equal(await res.text(), 'presigned content')
    const tampered = await fetch(url!.replace('blobs/p', 'blobs/q'))
    assert.equal(tampered.status, 403)
    await tampered.body?.cancel()
    assert.equal(await driverAt(prefix).redirectUrl!('blobs/p'), undefined)
    await swift.clear(prefix)
  })
})
