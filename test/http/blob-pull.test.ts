import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { assertOciError, harness, pushBlob, randomBlob, sha256, type Harness } from './harness.ts'

const DATA = Buffer.from('0123456789abcdefghij') // 20 bytes

async function get(h: Harness, repo: string, digest: string, headers: Record<string, string> = {}) {
  return h.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}`, headers })
}

async function head(h: Harness, repo: string, digest: string) {
  return h.inject({ method: 'HEAD', url: `/v2/${repo}/blobs/${digest}` })
}

describe('blob pull', () => {
  it('GET: 200 with the bytes, Content-Length, Docker-Content-Digest and ETag', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    const res = await get(h, 't/a', d)
    assert.equal(res.statusCode, 200)
    assert.ok(res.rawPayload.equals(DATA))
    assert.equal(res.headers['content-length'], '20')
    assert.equal(res.headers['docker-content-digest'], d)
    assert.equal(res.headers.etag, `"${d}"`)
    assert.equal(res.headers['content-type'], 'application/octet-stream')
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
  })

  it('HEAD: 200 with Content-Length, Docker-Content-Digest, ETag and no body', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    const res = await head(h, 't/a', d)
    assert.equal(res.statusCode, 200)
    assert.equal(res.body, '')
    assert.equal(res.headers['content-length'], '20')
    assert.equal(res.headers['docker-content-digest'], d)
    assert.equal(res.headers.etag, `"${d}"`)
  })

  it('large blobs stream intact', async (t) => {
    const h = await harness(t)
    const big = randomBlob(3 * (1 << 20) + 5)
    const d = await pushBlob(h, 't/a', big)
    const res = await get(h, 't/a', d)
    assert.equal(res.statusCode, 200)
    assert.equal(sha256(res.rawPayload), d)
  })

  const ranges: Array<[string, number, number]> = [
    ['bytes=0-4', 0, 4],
    ['bytes=5-', 5, 19],
    ['bytes=-3', 17, 19],
    ['bytes=10-1000', 10, 19],
    ['bytes=19-19', 19, 19],
  ]
  for (const [range, start, end] of ranges) {
    it(`Range ${range} → 206 with Content-Range bytes ${start}-${end}/20`, async (t) => {
      const h = await harness(t)
      const d = await pushBlob(h, 't/a', DATA)
      const res = await get(h, 't/a', d, { range })
      assert.equal(res.statusCode, 206, res.body)
      assert.equal(res.headers['content-range'], `bytes ${start}-${end}/20`)
      assert.equal(res.headers['content-length'], String(end - start + 1))
      assert.equal(res.body, DATA.subarray(start, end + 1).toString())
      assert.equal(res.headers['docker-content-digest'], d)
    })
  }

  it('an unsatisfiable Range → 416 with Content-Range bytes */size', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    for (const range of ['bytes=20-', 'bytes=100-200', 'bytes=9-5', 'bytes=-0']) {
      const res = await get(h, 't/a', d, { range })
      assertOciError(res, 416, OCI_ERRORS.RANGE_NOT_SATISFIABLE!.code)
      assert.equal(res.headers['content-range'], 'bytes */20', range)
    }
  })

  it('HEAD ignores Range', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    const res = await h.inject({ method: 'HEAD', url: `/v2/t/a/blobs/${d}`, headers: { range: 'bytes=0-1' } })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-length'], '20')
  })

  it('an unknown blob → 404 BLOB_UNKNOWN (GET and HEAD), also in an unknown repository', async (t) => {
    const h = await harness(t)
    await pushBlob(h, 't/a', DATA)
    const unknown = sha256('never pushed')
    assertOciError(await get(h, 't/a', unknown), 404, 'BLOB_UNKNOWN')
    assertOciError(await get(h, 't/nobody/here', unknown), 404, 'BLOB_UNKNOWN')
    const res = await head(h, 't/a', unknown)
    assert.equal(res.statusCode, 404)
    assert.equal(res.body, '')
  })

  it('a malformed digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    for (const d of ['sha256:abc', 'latest', `sha256:${'A'.repeat(64)}`, `sha999:${'a'.repeat(64)}`]) {
      assertOciError(await get(h, 't/a', d), 400, 'DIGEST_INVALID')
    }
  })

  it('an uppercase repository name → 400 NAME_INVALID', async (t) => {
    const h = await harness(t)
    assertOciError(await get(h, 'Upper/case', sha256('x')), 400, 'NAME_INVALID')
  })

  it('a blob pushed to repo A is not readable via repo B, though the digest is known', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/team/a', DATA)
    await pushBlob(h, 't/team/b', 'something else so B exists')
    assertOciError(await get(h, 't/team/b', d), 404, 'BLOB_UNKNOWN')
    assert.equal((await head(h, 't/team/b', d)).statusCode, 404)
    assertOciError(await get(h, 't/team/b', d, { range: 'bytes=0-1' }), 404, 'BLOB_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url: `/v2/t/team/b/blobs/${d}` }), 404, 'BLOB_UNKNOWN')
    // A prefix of the name is a different repository too.
    assertOciError(await get(h, 't/team', d), 404, 'BLOB_UNKNOWN')
    assert.equal((await get(h, 't/team/a', d)).statusCode, 200)
  })

  it('DELETE → 202, then 404 BLOB_UNKNOWN; other repositories keep it', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    await pushBlob(h, 't/b', DATA)
    const res = await h.inject({ method: 'DELETE', url: `/v2/t/a/blobs/${d}` })
    assert.equal(res.statusCode, 202)
    assertOciError(await get(h, 't/a', d), 404, 'BLOB_UNKNOWN')
    assert.equal((await head(h, 't/a', d)).statusCode, 404)
    assertOciError(await h.inject({ method: 'DELETE', url: `/v2/t/a/blobs/${d}` }), 404, 'BLOB_UNKNOWN')
    assert.equal((await get(h, 't/b', d)).body, DATA.toString())
    // It can be pushed again.
    await pushBlob(h, 't/a', DATA)
    assert.equal((await get(h, 't/a', d)).statusCode, 200)
  })
})

describe('cross-repository mount', () => {
  it('POST ?mount=D&from=A to B → 201 and readable in B', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/src/a', DATA)
    const res = await h.inject({ method: 'POST', url: `/v2/t/dst/b/blobs/uploads/?mount=${d}&from=t/src/a` })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers.location, `/v2/t/dst/b/blobs/${d}`)
    assert.equal(res.headers['docker-content-digest'], d)
    const got = await get(h, 't/dst/b', d)
    assert.equal(got.statusCode, 200)
    assert.ok(got.rawPayload.equals(DATA))
    // Unlinking from the source leaves the mount readable.
    assert.equal((await h.inject({ method: 'DELETE', url: `/v2/t/src/a/blobs/${d}` })).statusCode, 202)
    assert.equal((await get(h, 't/dst/b', d)).statusCode, 200)
  })

  it('mounting from a repository lacking the blob → 202 upload session', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/has', DATA)
    await pushBlob(h, 't/lacks', 'other')
    for (const from of ['t/lacks', 't/does/not/exist']) {
      const res = await h.inject({ method: 'POST', url: `/v2/t/b/blobs/uploads/?mount=${d}&from=${from}` })
      assert.equal(res.statusCode, 202, res.body)
      assert.match(String(res.headers.location), /^\/v2\/t\/b\/blobs\/uploads\/[0-9a-f-]{36}$/)
      assert.ok(res.headers['docker-upload-uuid'])
      assertOciError(await get(h, 't/b', d), 404, 'BLOB_UNKNOWN')
      // The session works.
      const put = await h.inject({
        method: 'PUT',
        url: `${res.headers.location}?digest=${d}`,
        payload: DATA,
        headers: { 'content-type': 'application/octet-stream' },
      })
      assert.equal(put.statusCode, 201)
      assert.equal((await h.inject({ method: 'DELETE', url: `/v2/t/b/blobs/${d}` })).statusCode, 202)
    }
  })

  it('mount of a blob that exists nowhere → 202', async (t) => {
    const h = await harness(t)
    await pushBlob(h, 't/a', 'x')
    const res = await h.inject({ method: 'POST', url: `/v2/t/b/blobs/uploads/?mount=${sha256('nowhere')}&from=t/a` })
    assert.equal(res.statusCode, 202)
  })

  it('POST ?mount=D without from (automatic content discovery) → 201 from a repository holding it, 202 when none does', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/src/a', DATA)
    const res = await h.inject({ method: 'POST', url: `/v2/t/dst/b/blobs/uploads/?mount=${d}` })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers.location, `/v2/t/dst/b/blobs/${d}`)
    assert.equal(res.headers['docker-content-digest'], d)
    assert.ok((await get(h, 't/dst/b', d)).rawPayload.equals(DATA))
    const none = await h.inject({ method: 'POST', url: `/v2/t/dst/b/blobs/uploads/?mount=${sha256('nowhere')}` })
    assert.equal(none.statusCode, 202)
    assert.match(String(none.headers.location), /^\/v2\/t\/dst\/b\/blobs\/uploads\/[0-9a-f-]{36}$/)
  })

  it('a malformed from → 400 NAME_INVALID', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a', DATA)
    for (const from of ['A', 'a//b', '-a', 'a/', '..', encodeURIComponent('../a')]) {
      assertOciError(await h.inject({ method: 'POST', url: `/v2/t/b/blobs/uploads/?mount=${d}&from=${from}` }), 400, 'NAME_INVALID')
    }
  })

  it('a malformed mount digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    await pushBlob(h, 't/a', DATA)
    assertOciError(await h.inject({ method: 'POST', url: `/v2/t/b/blobs/uploads/?mount=sha256:123&from=t/a` }), 400, 'DIGEST_INVALID')
  })
})

describe('blob pull over a real socket', () => {
  it('GET and ranged GET send the right headers and bytes', async (t) => {
    const h = await harness(t)
    const big = randomBlob(2 * (1 << 20) + 333)
    const d = await pushBlob(h, 't/a', big)
    const res = await h.raw('GET', `/v2/t/a/blobs/${d}`)
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['content-length'], String(big.length))
    assert.equal(res.headers['docker-content-digest'], d)
    assert.equal(res.headers.etag, `"${d}"`)
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
    assert.equal(res.headers['content-type'], 'application/octet-stream')
    assert.ok(res.rawBody.equals(big))
    const ranged = await h.raw('GET', `/v2/t/a/blobs/${d}`, undefined, { range: 'bytes=10-19' })
    assert.equal(ranged.statusCode, 206)
    assert.equal(ranged.headers['content-range'], `bytes 10-19/${big.length}`)
    assert.equal(ranged.headers['content-length'], '10')
    assert.ok(ranged.rawBody.equals(big.subarray(10, 20)))
  })

  it('a client that disconnects mid-download does not break the server', async (t) => {
    const h = await harness(t)
    const big = randomBlob(8 * (1 << 20))
    const d = await pushBlob(h, 't/a', big)
    await h.raw('GET', '/v2/') // make it listen
    const { request } = await import('node:http')
    const port = (h.app.server.address() as { port: number }).port
    const authorization = `Bearer ${await h.token(['repository:t/a:pull'])}`
    await new Promise<void>((resolve) => {
      const req = request(
        { host: '127.0.0.1', port, path: `/v2/t/a/blobs/${d}`, headers: { connection: 'close', authorization } },
        (res) => {
          res.once('data', () => {
            req.destroy()
            resolve()
          })
        },
      )
      req.on('error', () => resolve())
      req.end()
    })
    await new Promise((r) => setTimeout(r, 50))
    const again = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${d}` })
    assert.equal(again.statusCode, 200)
    assert.equal(sha256(again.rawPayload), d)
  })
})
