import assert from 'node:assert/strict'
import { randomUUID } from 'node:crypto'
import { appendFile, mkdir, readdir, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, it } from 'node:test'
import { parseRepoName } from '../../src/core/names.ts'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { assertOciError, harness, randomBlob, sha256, sha512, type Harness, type Response } from './harness.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/

async function start(h: Harness, repo: string): Promise<{ url: string; id: string; res: Response }> {
  const res = await h.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` })
  assert.equal(res.statusCode, 202, res.body)
  const url = String(res.headers.location)
  const id = String(res.headers['docker-upload-uuid'])
  return { url, id, res }
}

function patch(h: Harness, url: string, chunk: Buffer, contentRange?: string, extra: Record<string, string> = {}): Promise<Response> {
  const headers: Record<string, string> = { 'content-type': 'application/octet-stream', ...extra }
  if (contentRange !== undefined) headers['content-range'] = contentRange
  return h.inject({ method: 'PATCH', url, headers, payload: chunk })
}

function put(h: Harness, url: string, digest: string | undefined, body?: Buffer): Promise<Response> {
  const q = digest === undefined ? '' : `${url.includes('?') ? '&' : '?'}digest=${digest}`
  return h.inject({
    method: 'PUT',
    url: `${url}${q}`,
    ...(body ? { payload: body, headers: { 'content-type': 'application/octet-stream' } } : {}),
  })
}

async function readBlob(h: Harness, repo: string, digest: string): Promise<Response> {
  return h.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` })
}

function assertCreated(res: Response, repo: string, digest: string): void {
  assert.equal(res.statusCode, 201, res.body)
  assert.equal(res.headers.location, `/v2/${repo}/blobs/${digest}`)
  assert.equal(res.headers['docker-content-digest'], digest)
}

async function assertBlob(h: Harness, repo: string, digest: string, data: Buffer): Promise<void> {
  const res = await readBlob(h, repo, digest)
  assert.equal(res.statusCode, 200, res.body)
  assert.ok(res.rawPayload.equals(data), 'blob content')
  assert.equal(res.headers['content-length'], String(data.length))
}

async function uploadFiles(h: Harness): Promise<string[]> {
  try {
    return (await readdir(join(h.storageDir, 'uploads'))).sort()
  } catch {
    return []
  }
}

describe('blob push: monolithic', () => {
  it('POST ?digest= with the body → 201, Location, Docker-Content-Digest', async (t) => {
    const h = await harness(t)
    const data = randomBlob(1000)
    const digest = sha256(data)
    const res = await h.inject({
      method: 'POST',
      url: `/v2/t/lib/app/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    })
    assertCreated(res, 't/lib/app', digest)
    await assertBlob(h, 't/lib/app', digest, data)
    assert.deepEqual(await uploadFiles(h), [], 'no temp file left behind')
  })

  it('POST ?digest= with the wrong digest → 400 DIGEST_INVALID and nothing stored', async (t) => {
    const h = await harness(t)
    const data = randomBlob(100)
    const wrong = sha256('something else')
    const res = await h.inject({
      method: 'POST',
      url: `/v2/t/a/blobs/uploads/?digest=${wrong}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    })
    assertOciError(res, 400, 'DIGEST_INVALID')
    assertOciError(await readBlob(h, 't/a', wrong), 404, 'BLOB_UNKNOWN')
    assertOciError(await readBlob(h, 't/a', sha256(data)), 404, 'BLOB_UNKNOWN')
    assert.deepEqual(await uploadFiles(h), [])
  })

  it('POST with a malformed digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    for (const d of ['sha256:abc', 'nope', `SHA256:${'a'.repeat(64)}`, `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, '']) {
      const res = await h.inject({
        method: 'POST',
        url: `/v2/t/a/blobs/uploads/?digest=${encodeURIComponent(d)}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: 'x',
      })
      assertOciError(res, 400, 'DIGEST_INVALID')
    }
  })

  it('sha512 monolithic upload', async (t) => {
    const h = await harness(t)
    const data = randomBlob(300)
    const digest = sha512(data)
    const res = await h.inject({
      method: 'POST',
      url: `/v2/t/a/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: data,
    })
    assertCreated(res, 't/a', digest)
    await assertBlob(h, 't/a', digest, data)
  })

  it('zero-byte blob, monolithic', async (t) => {
    const h = await harness(t)
    const digest = sha256('')
    const res = await h.inject({
      method: 'POST',
      url: `/v2/t/a/blobs/uploads/?digest=${digest}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': '0' },
    })
    assertCreated(res, 't/a', digest)
    await assertBlob(h, 't/a', digest, Buffer.alloc(0))
    const head = await h.inject({ method: 'HEAD', url: `/v2/t/a/blobs/${digest}` })
    assert.equal(head.statusCode, 200)
    assert.equal(head.headers['content-length'], '0')
  })

  it('Content-Length not matching the body → 400 SIZE_INVALID', async (t) => {
    const h = await harness(t)
    const data = Buffer.from('0123456789')
    const res = await h.inject({
      method: 'POST',
      url: `/v2/t/a/blobs/uploads/?digest=${sha256(data)}`,
      headers: { 'content-type': 'application/octet-stream', 'content-length': '4' },
      payload: data,
    })
    assertOciError(res, 400, 'SIZE_INVALID')
    assertOciError(await readBlob(h, 't/a', sha256(data)), 404, 'BLOB_UNKNOWN')
  })

  it('pushing the same blob twice is fine', async (t) => {
    const h = await harness(t)
    const data = randomBlob(10)
    for (let i = 0; i < 2; i++) {
      const res = await h.inject({
        method: 'POST',
        url: `/v2/t/a/blobs/uploads/?digest=${sha256(data)}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: data,
      })
      assertCreated(res, 't/a', sha256(data))
    }
    await assertBlob(h, 't/a', sha256(data), data)
  })
})

describe('blob push: sessions', () => {
  it('POST opens a session: 202, Location, Docker-Upload-UUID, Range 0-0', async (t) => {
    const h = await harness(t)
    const { res, id, url } = await start(h, 't/a/b')
    assert.match(id, UUID)
    assert.equal(url, `/v2/t/a/b/blobs/uploads/${id}`)
    assert.equal(res.headers.range, '0-0')
    assert.equal(res.headers['content-length'], '0')
    assert.equal((await h.inject({ method: 'GET', url })).statusCode, 204)
  })

  it('POST then PUT with the whole body', async (t) => {
    const h = await harness(t)
    const data = randomBlob(5000)
    const { url } = await start(h, 't/a')
    const res = await put(h, url, sha256(data), data)
    assertCreated(res, 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
    // The session is gone and so is its temp file.
    assertOciError(await h.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assert.deepEqual(await uploadFiles(h), [])
  })

  it('chunked PATCHes without Content-Range, then PUT with no body', async (t) => {
    const h = await harness(t)
    const data = randomBlob(3000)
    const chunks = [data.subarray(0, 1000), data.subarray(1000, 1001), data.subarray(1001)]
    const { url, id } = await start(h, 't/a')
    let offset = 0
    let next = url
    for (const c of chunks) {
      const res = await patch(h, next, c)
      assert.equal(res.statusCode, 202, res.body)
      offset += c.length
      assert.equal(res.headers.range, `0-${offset - 1}`)
      assert.equal(res.headers['docker-upload-uuid'], id)
      assert.equal(res.headers.location, `/v2/t/a/blobs/uploads/${id}`)
      next = String(res.headers.location)
    }
    const res = await put(h, next, sha256(data))
    assertCreated(res, 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('chunked PATCHes with Content-Range, last chunk in the PUT', async (t) => {
    const h = await harness(t)
    const data = randomBlob(2500)
    const { url } = await start(h, 't/a')
    let res = await patch(h, url, data.subarray(0, 1000), '0-999')
    assert.equal(res.statusCode, 202, res.body)
    assert.equal(res.headers.range, '0-999')
    res = await patch(h, url, data.subarray(1000, 2000), 'bytes 1000-1999/*')
    assert.equal(res.statusCode, 202, res.body)
    assert.equal(res.headers.range, '0-1999')
    res = await put(h, url, sha256(data), data.subarray(2000))
    assertCreated(res, 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('GET on a session: 204 with Range, Location and Docker-Upload-UUID', async (t) => {
    const h = await harness(t)
    const { url, id } = await start(h, 't/a')
    let res = await h.inject({ method: 'GET', url })
    assert.equal(res.statusCode, 204)
    assert.equal(res.headers.range, '0-0')
    assert.equal(res.headers['docker-upload-uuid'], id)
    assert.equal(res.headers.location, url)
    await patch(h, url, Buffer.from('hello'))
    res = await h.inject({ method: 'GET', url })
    assert.equal(res.statusCode, 204)
    assert.equal(res.headers.range, '0-4')
    assert.equal(res.body, '')
  })

  it('an out-of-order chunk → 416, and the session keeps its offset', async (t) => {
    const h = await harness(t)
    const data = randomBlob(30)
    const { url } = await start(h, 't/a')
    assert.equal((await patch(h, url, data.subarray(0, 10), '0-9')).statusCode, 202)
    const res = await patch(h, url, data.subarray(20, 30), '20-29')
    assertOciError(res, 416, OCI_ERRORS.RANGE_INVALID!.code)
    const status = await h.inject({ method: 'GET', url })
    assert.equal(status.headers.range, '0-9')
    // The upload can still be completed correctly.
    assert.equal((await patch(h, url, data.subarray(10, 30), '10-29')).statusCode, 202)
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('an overlapping chunk → 416, and no bytes are duplicated', async (t) => {
    const h = await harness(t)
    const data = randomBlob(30)
    const { url } = await start(h, 't/a')
    assert.equal((await patch(h, url, data.subarray(0, 10), '0-9')).statusCode, 202)
    assertOciError(await patch(h, url, data.subarray(5, 15), '5-14'), 416, OCI_ERRORS.RANGE_INVALID!.code)
    assertOciError(await patch(h, url, data.subarray(0, 10), '0-9'), 416, OCI_ERRORS.RANGE_INVALID!.code)
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-9')
    assert.equal((await patch(h, url, data.subarray(10), '10-29')).statusCode, 202)
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('a malformed Content-Range is rejected without consuming the chunk', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    for (const cr of ['abc', '0-', '-9', 'bytes=0-9', '0-9-10']) {
      const res = await patch(h, url, Buffer.from('0123456789'), cr)
      assert.ok(res.statusCode === 400 || res.statusCode === 416, `${cr}: ${res.statusCode}`)
      assert.ok(Array.isArray((res.json() as { errors: unknown }).errors))
    }
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-0')
  })

  it('Content-Range length not matching Content-Length → 400 SIZE_INVALID', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    assertOciError(await patch(h, url, Buffer.from('0123456789'), '0-4'), 400, 'SIZE_INVALID')
  })

  it('PATCH Content-Length not matching the body → 400 SIZE_INVALID, the offset does not move', async (t) => {
    const h = await harness(t)
    const data = Buffer.from('0123456789abcdef')
    const { url } = await start(h, 't/a')
    assertOciError(await patch(h, url, data.subarray(0, 10), undefined, { 'content-length': '3' }), 400, 'SIZE_INVALID')
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-0')
    assert.equal((await patch(h, url, data)).statusCode, 202)
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('DELETE cancels: 204, then the session is 404 BLOB_UPLOAD_UNKNOWN and its temp file is gone', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    await patch(h, url, Buffer.from('some bytes'))
    const res = await h.inject({ method: 'DELETE', url })
    assert.equal(res.statusCode, 204)
    assertOciError(await h.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await patch(h, url, Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await put(h, url, sha256('some bytes')), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assert.deepEqual(await uploadFiles(h), [])
  })

  it('PUT with the wrong digest → 400 DIGEST_INVALID and the blob is not stored', async (t) => {
    const h = await harness(t)
    const data = randomBlob(50)
    const { url } = await start(h, 't/a')
    await patch(h, url, data)
    const wrong = sha256('other')
    assertOciError(await put(h, url, wrong), 400, 'DIGEST_INVALID')
    assertOciError(await readBlob(h, 't/a', wrong), 404, 'BLOB_UNKNOWN')
    assertOciError(await readBlob(h, 't/a', sha256(data)), 404, 'BLOB_UNKNOWN')
  })

  it('PUT with the wrong sha512 digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    assertOciError(await put(h, url, sha512('other'), Buffer.from('data')), 400, 'DIGEST_INVALID')
  })

  it('PUT without a digest → 400 DIGEST_INVALID, the session survives', async (t) => {
    const h = await harness(t)
    const data = Buffer.from('abc')
    const { url } = await start(h, 't/a')
    await patch(h, url, data)
    assertOciError(await put(h, url, undefined), 400, 'DIGEST_INVALID')
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
  })

  it('PUT with a malformed digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    for (const d of ['sha256:123', 'sha256', `sha256:${'G'.repeat(64)}`, `sha1:${'a'.repeat(40)}`]) {
      assertOciError(await put(h, url, encodeURIComponent(d), Buffer.from('x')), 400, 'DIGEST_INVALID')
    }
  })

  it('sha512 chunked upload', async (t) => {
    const h = await harness(t)
    const data = randomBlob(4000)
    const { url } = await start(h, 't/a')
    await patch(h, url, data.subarray(0, 1500))
    const res = await put(h, url, sha512(data), data.subarray(1500))
    assertCreated(res, 't/a', sha512(data))
    await assertBlob(h, 't/a', sha512(data), data)
  })

  it('zero-byte blob through POST + PUT', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    assertCreated(await put(h, url, sha256('')), 't/a', sha256(''))
    await assertBlob(h, 't/a', sha256(''), Buffer.alloc(0))
  })

  it('an upload id that is not a UUID → 404 BLOB_UPLOAD_UNKNOWN', async (t) => {
    const h = await harness(t)
    for (const id of ['nope', '123', 'ABCDEF01-2345-6789-ABCD-EF0123456789', `${randomUUID()}x`]) {
      const url = `/v2/t/a/blobs/uploads/${id}`
      assertOciError(await h.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
      assertOciError(await patch(h, url, Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN')
      assertOciError(await put(h, url, sha256('x'), Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN')
      assertOciError(await h.inject({ method: 'DELETE', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    }
  })

  it('a well-formed but unknown upload id → 404 BLOB_UPLOAD_UNKNOWN', async (t) => {
    const h = await harness(t)
    const url = `/v2/t/a/blobs/uploads/${randomUUID()}`
    assertOciError(await h.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await patch(h, url, Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await put(h, url, sha256('x'), Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assert.deepEqual(await uploadFiles(h), [], 'no temp file is created for an unknown session')
  })

  it("an upload of repo A used through repo B → 404, and A's session is unaffected", async (t) => {
    const h = await harness(t)
    const data = Buffer.from('0123456789')
    const { id, url } = await start(h, 't/repo-a')
    await patch(h, url, data.subarray(0, 5))
    await start(h, 't/repo-b') // B exists too
    const viaB = `/v2/t/repo-b/blobs/uploads/${id}`
    assertOciError(await h.inject({ method: 'GET', url: viaB }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await patch(h, viaB, Buffer.from('XXXXX')), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await put(h, viaB, sha256(data), data.subarray(5)), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url: viaB }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assertOciError(await h.inject({ method: 'GET', url: `/v2/t/never/blobs/uploads/${id}` }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-4')
    assertCreated(await put(h, url, sha256(data), data.subarray(5)), 't/repo-a', sha256(data))
    assertOciError(await readBlob(h, 't/repo-b', sha256(data)), 404, 'BLOB_UNKNOWN')
  })

  it('concurrent PATCHes on one session are serialised', async (t) => {
    const h = await harness(t)
    const { url } = await start(h, 't/a')
    const parts = [Buffer.alloc(1000, 1), Buffer.alloc(1000, 2), Buffer.alloc(1000, 3)]
    const results = await Promise.all(parts.map((p) => patch(h, url, p)))
    for (const r of results) assert.equal(r.statusCode, 202, r.body)
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-2999')
  })
})

describe('blob push: resumable after restart', () => {
  it('PATCH, restart, PATCH the rest, PUT: the digest is right', async (t) => {
    const h = await harness(t)
    const data = randomBlob(10_000)
    const { url } = await start(h, 't/a')
    assert.equal((await patch(h, url, data.subarray(0, 4000), '0-3999')).statusCode, 202)

    await h.restart()

    const status = await h.inject({ method: 'GET', url })
    assert.equal(status.statusCode, 204)
    assert.equal(status.headers.range, '0-3999')
    assert.equal((await patch(h, url, data.subarray(4000, 9000), '4000-8999')).statusCode, 202)
    const res = await put(h, url, sha256(data), data.subarray(9000))
    assertCreated(res, 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('bytes past the recorded offset (a crash mid-chunk) are truncated when the upload resumes', async (t) => {
    const h = await harness(t)
    const data = randomBlob(2000)
    const { url, id } = await start(h, 't/a')
    await patch(h, url, data.subarray(0, 1000))
    await h.restart()
    // Simulate a crash after bytes hit the disk but before the size was recorded.
    await appendFile(join(h.storageDir, 'uploads', id), Buffer.from('garbage from a torn write'))
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-999')
    assert.equal((await patch(h, url, data.subarray(1000), '1000-1999')).statusCode, 202)
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('a chunk that breaks off (client gone, body idle) keeps the bytes that reached the temp file; the upload resumes there', async (t) => {
    const h = await harness(t)
    const data = randomBlob(10_000)
    const { url, id } = await start(h, 't/a')
    assert.equal((await patch(h, url, data.subarray(0, 1000), '0-999')).statusCode, 202)
    const broken = Readable.from(
      (async function* () {
        yield data.subarray(1000, 4000)
        await new Promise((r) => setTimeout(r, 20))
        throw Object.assign(new Error('aborted'), { code: 'ECONNRESET' })
      })(),
    )
    await assert.rejects(
      h.registry.uploads.append(parseRepoName('t/a'), id, { stream: broken, length: 9000, rangeStart: 1000, rangeEnd: 9999 }),
      /aborted/,
    )
    assert.equal((await h.inject({ method: 'GET', url })).headers.range, '0-3999')
    assert.equal((await stat(join(h.storageDir, 'uploads', id))).size, 4000)
    assert.equal((await patch(h, url, data.subarray(4000), '4000-9999')).statusCode, 202)
    assertCreated(await put(h, url, sha256(data)), 't/a', sha256(data))
    await assertBlob(h, 't/a', sha256(data), data)
  })

  it('PUT straight after a restart, with sha512', async (t) => {
    const h = await harness(t)
    const data = randomBlob(3000)
    const { url } = await start(h, 't/a')
    await patch(h, url, data)
    await h.restart()
    assertCreated(await put(h, url, sha512(data)), 't/a', sha512(data))
    await assertBlob(h, 't/a', sha512(data), data)
  })
})

describe('upload expiry', () => {
  it('sweep with a future `now` removes stale sessions, their temp files and orphan temp files', async (t) => {
    const h = await harness(t)
    const { url, id } = await start(h, 't/a')
    await patch(h, url, Buffer.from('partial'))
    const orphan = randomUUID()
    await mkdir(join(h.storageDir, 'uploads'), { recursive: true })
    await writeFile(join(h.storageDir, 'uploads', orphan), 'orphan bytes')
    await writeFile(join(h.storageDir, 'uploads', 'not-an-upload'), 'left alone')
    assert.deepEqual(await uploadFiles(h), [id, orphan, 'not-an-upload'].sort())

    // Nothing is stale yet.
    assert.deepEqual(await h.registry.uploads.sweep(3600, Date.now()), { expired: 0, orphans: 0 })
    assert.equal((await h.inject({ method: 'GET', url })).statusCode, 204)

    const result = await h.registry.uploads.sweep(3600, Date.now() + 2 * 3600 * 1000)
    assert.deepEqual(result, { expired: 1, orphans: 1 })
    assertOciError(await h.inject({ method: 'GET', url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    const rows = await h.db.selectFrom('uploads').selectAll().execute()
    assert.deepEqual(rows, [])
    assert.deepEqual(await uploadFiles(h), ['not-an-upload'])
  })

  it('sweep keeps sessions touched within the TTL', async (t) => {
    const h = await harness(t)
    const old = await start(h, 't/a')
    const fresh = await start(h, 't/a')
    assert.equal((await patch(h, old.url, Buffer.from('old bytes'))).statusCode, 202)
    assert.equal((await patch(h, fresh.url, Buffer.from('fresh bytes'))).statusCode, 202)
    // Age the first session in the database and on disk.
    const past = new Date(Date.now() - 2 * 3600 * 1000)
    await h.db.updateTable('uploads').set({ updated_at: past.toISOString() }).where('id', '=', old.id).execute()
    const { utimes } = await import('node:fs/promises')
    await utimes(join(h.storageDir, 'uploads', old.id), past, past)
    assert.deepEqual(await h.registry.uploads.sweep(3600), { expired: 1, orphans: 0 })
    assertOciError(await h.inject({ method: 'GET', url: old.url }), 404, 'BLOB_UPLOAD_UNKNOWN')
    assert.equal((await h.inject({ method: 'GET', url: fresh.url })).statusCode, 204)
    assert.deepEqual(await uploadFiles(h), [fresh.id])
  })

  it('a sweep does not touch committed blobs', async (t) => {
    const h = await harness(t)
    const data = Buffer.from('committed')
    const res = await h.inject({ method: 'POST', url: `/v2/t/a/blobs/uploads/?digest=${sha256(data)}`, payload: data })
    assert.equal(res.statusCode, 201)
    await mkdir(join(h.storageDir, 'uploads'), { recursive: true })
    await h.registry.uploads.sweep(60, Date.now() + 24 * 3600 * 1000)
    await assertBlob(h, 't/a', sha256(data), data)
    const hex = sha256(data).slice(7)
    assert.ok((await stat(join(h.storageDir, 'blobs', 'sha256', hex.slice(0, 2), hex))).isFile())
  })
})

describe('upload expiry races', () => {
  const tick = (ms = 30) => new Promise((r) => setTimeout(r, ms))

  it('a session resumed while a sweep waits for it is not expired', async (t) => {
    const h = await harness(t)
    const { PassThrough } = await import('node:stream')
    const { url, id } = await start(h, 't/a')
    await h.prepare(url)
    // The session has been idle for longer than the TTL...
    const past = new Date(Date.now() - 2 * 3600 * 1000).toISOString()
    await h.db.updateTable('uploads').set({ updated_at: past }).where('id', '=', id).execute()
    // ...when the client resumes it with a PATCH that is still streaming...
    const body = new PassThrough()
    const patching = h.inject({ method: 'PATCH', url, headers: { 'content-type': 'application/octet-stream' }, payload: body })
    body.write(Buffer.from('first half '))
    await tick()
    // ...and the periodic sweep runs.
    const sweeping = h.registry.uploads.sweep(3600)
    await tick()
    body.end(Buffer.from('second half'))
    const res = await patching
    assert.equal(res.statusCode, 202, res.body)
    await sweeping
    // The client was just told 202; its session must still be there.
    const status = await h.inject({ method: 'GET', url })
    assert.equal(status.statusCode, 204, `session expired right after a successful PATCH: ${status.body}`)
    assert.equal(status.headers.range, `0-${'first half second half'.length - 1}`)
  })

  it('a monolithic upload whose temp file looks orphaned to a sweep never fails with 500', async (t) => {
    const h = await harness(t)
    const { PassThrough } = await import('node:stream')
    const data = Buffer.from('slow monolithic upload body')
    await h.prepare(`/v2/t/a/blobs/uploads/?digest=${sha256(data)}`)
    const body = new PassThrough()
    const posting = h.inject({
      method: 'POST',
      url: `/v2/t/a/blobs/uploads/?digest=${sha256(data)}`,
      headers: { 'content-type': 'application/octet-stream' },
      payload: body,
    })
    body.write(data.subarray(0, 10))
    // The client stalls for longer than the TTL (temp file mtime is old) and a sweep runs. On a
    // loaded machine the temp file can take longer than one tick to appear: wait for it (bounded).
    let files = await uploadFiles(h)
    for (let i = 0; files.length === 0 && i < 200; i++) {
      await tick()
      files = await uploadFiles(h)
    }
    assert.equal(files.length, 1)
    const { utimes } = await import('node:fs/promises')
    const past = new Date(Date.now() - 2 * 3600 * 1000)
    await utimes(join(h.storageDir, 'uploads', files[0]!), past, past)
    await h.registry.uploads.sweep(3600)
    body.end(data.subarray(10))
    const res = await posting
    assert.ok(res.statusCode < 500, `monolithic upload after a sweep → ${res.statusCode} ${res.body}`)
    if (res.statusCode === 201) await assertBlob(h, 't/a', sha256(data), data)
  })
})

describe('blob push over a real socket', () => {
  it('chunked Transfer-Encoding PATCHes and PUT (as Docker sends them), and a POST without Content-Type', async (t) => {
    const h = await harness(t)
    const mono = await h.raw('POST', `/v2/t/a/blobs/uploads/?digest=${sha256('abc')}`, 'abc')
    assert.equal(mono.statusCode, 201, mono.body)
    const s = await h.raw('POST', '/v2/t/a/blobs/uploads/')
    assert.equal(s.statusCode, 202)
    const url = String(s.headers.location)
    let res = await h.raw('PATCH', url, 'hello ', { 'transfer-encoding': 'chunked', 'content-type': 'application/octet-stream' })
    assert.equal(res.statusCode, 202, res.body)
    assert.equal(res.headers.range, '0-5')
    res = await h.raw('PATCH', url, 'world', { 'transfer-encoding': 'chunked' })
    assert.equal(res.statusCode, 202, res.body)
    assert.equal(res.headers.range, '0-10')
    res = await h.raw('PUT', `${url}?digest=${sha256('hello world')}`, '', { 'transfer-encoding': 'chunked' })
    assert.equal(res.statusCode, 201, res.body)
    const got = await h.raw('GET', `/v2/t/a/blobs/${sha256('hello world')}`)
    assert.equal(got.body, 'hello world')
  })
})
