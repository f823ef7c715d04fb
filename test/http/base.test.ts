import assert from 'node:assert/strict'
import { lstat, readdir, readFile, writeFile } from 'node:fs/promises'
import { join, relative } from 'node:path'
import { describe, it } from 'node:test'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { assertOciError, harness, pushBlob, sha256 } from './harness.ts'

describe('GET /v2/', () => {
  it('answers 200 with the API version header', async (t) => {
    const h = await harness(t)
    for (const url of ['/v2/', '/v2']) {
      const res = await h.inject({ method: 'GET', url })
      assert.equal(res.statusCode, 200, url)
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
      assert.match(String(res.headers['content-type']), /^application\/json/)
      assert.deepEqual(res.json(), {})
    }
  })

  it('HEAD /v2/ answers 200 with no body', async (t) => {
    const h = await harness(t)
    const res = await h.inject({ method: 'HEAD', url: '/v2/' })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
    assert.equal(res.body, '')
  })
})

describe('unknown endpoints and methods', () => {
  it('an unknown endpoint under /v2 is a 404 OCI JSON error', async (t) => {
    const h = await harness(t)
    for (const url of [
      '/v2/t/a/foo',
      '/v2/t/a',
      '/v2/t/a/blobs',
      '/v2/t/a/manifests',
      '/v2/t/a/tags',
      '/v2/t/a/tags/list/x',
      '/v2/t/a/referrers',
      '/v2/_catalog/x',
    ]) {
      const res = await h.inject({ method: 'GET', url })
      const ocicode = OCI_ERRORS.ROUTE_UNKNOWN!.code
      assertOciError(res, 404, ocicode)
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0', url)
    }
  })

  it('a method an endpoint does not support is 405 UNSUPPORTED', async (t) => {
    const h = await harness(t)
    const d = sha256('x')
    const cases: Array<[string, string]> = [
      ['DELETE', '/v2/'],
      ['POST', '/v2/'],
      ['POST', '/v2/_catalog'],
      ['DELETE', '/v2/_catalog'],
      ['PATCH', '/v2/t/a/manifests/latest'],
      ['POST', '/v2/t/a/manifests/latest'],
      ['PUT', '/v2/t/a/tags/list'],
      ['DELETE', '/v2/t/a/tags/list'],
      ['POST', `/v2/t/a/blobs/${d}`],
      ['PUT', `/v2/t/a/blobs/${d}`],
      ['PATCH', `/v2/t/a/blobs/${d}`],
      ['GET', '/v2/t/a/blobs/uploads/'],
      ['PUT', '/v2/t/a/blobs/uploads/'],
      ['DELETE', '/v2/t/a/blobs/uploads/'],
      ['POST', `/v2/t/a/referrers/${d}`],
      ['DELETE', `/v2/t/a/referrers/${d}`],
    ]
    for (const [method, url] of cases) {
      const res = await h.inject({ method: method as 'GET', url })
      assertOciError(res, 405, 'UNSUPPORTED')
    }
  })

  it('a method outside the six the API uses is still an OCI error (405 UNSUPPORTED)', async (t) => {
    const h = await harness(t)
    for (const method of ['OPTIONS', 'PROPFIND'] as const) {
      const res = await h.inject({ method: method as 'OPTIONS', url: '/v2/t/a/manifests/latest' })
      assertOciError(res, 405, 'UNSUPPORTED')
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
    }
  })
})

describe('error catalog (the rest in error-catalog.test.ts)', () => {
  it('spec codes keep their spec wire value and status', () => {
    const spec: Record<string, number> = {
      BLOB_UNKNOWN: 404,
      BLOB_UPLOAD_INVALID: 400,
      BLOB_UPLOAD_UNKNOWN: 404,
      DIGEST_INVALID: 400,
      MANIFEST_BLOB_UNKNOWN: 400,
      MANIFEST_INVALID: 400,
      MANIFEST_UNKNOWN: 404,
      NAME_INVALID: 400,
      NAME_UNKNOWN: 404,
      SIZE_INVALID: 400,
      UNAUTHORIZED: 401,
      DENIED: 403,
      UNSUPPORTED: 405,
      TOOMANYREQUESTS: 429,
    }
    for (const [code, status] of Object.entries(spec)) {
      const e = OCI_ERRORS[code as keyof typeof OCI_ERRORS]
      assert.equal(e?.code, code)
      assert.equal(e?.status, status, code)
    }
  })
})

/** Every file under dir, relative to it, with its content hash and mtime, to detect any change. */
async function snapshot(dir: string, skip: string): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  const walk = async (d: string) => {
    for (const ent of await readdir(d, { withFileTypes: true })) {
      const p = join(d, ent.name)
      if (p === skip) continue
      if (ent.isDirectory()) await walk(p)
      else {
        const s = await lstat(p)
        out.set(relative(dir, p), `${sha256(await readFile(p))} ${s.mtimeMs}`)
      }
    }
  }
  await walk(dir)
  return out
}

describe('path safety', () => {
  it('traversal attempts in names, digests, upload ids and query parameters never 500 and never touch files outside the data dir', async (t) => {
    const h = await harness(t)
    // Bait outside the data dir (the data dir is <root>/data, storage is <root>/data/storage).
    await writeFile(join(h.root, 'sentinel'), 'outside')
    await writeFile(join(h.root, 'etc'), 'outside')
    const blob = await pushBlob(h, 't/a', 'inside')
    const hex = blob.slice('sha256:'.length)
    const before = await snapshot(h.root, h.dataDir)
    const session = await h.inject({ method: 'POST', url: '/v2/t/a/blobs/uploads/' })
    const uploadUrl = String(session.headers.location)

    const cases: Array<[string, string, string?]> = [
      ['GET', `/v2/..%2F..%2Fsentinel/blobs/${blob}`],
      ['GET', `/v2/%2e%2e/blobs/${blob}`],
      ['GET', `/v2/%2e%2e%2f%2e%2e/tags/list`],
      ['GET', `/v2/t/a%2F..%2F..%2Fsentinel/tags/list`],
      ['GET', `/v2/t/a/%2e%2e/%2e%2e/tags/list`],
      ['GET', `/v2/%252e%252e/tags/list`],
      ['GET', `/v2/../../sentinel/tags/list`],
      ['GET', `/v2/t/a/../../blobs/${blob}`],
      ['GET', `/v2/t/a/blobs/../../../sentinel`],
      ['GET', '/v2/t/a/blobs/sha256:..%2F..%2Fsentinel'],
      ['GET', '/v2/t/a/blobs/sha256:..%2F..%2F..%2F..%2Fsentinel'],
      ['GET', `/v2/t/a/blobs/sha256%3A${hex}%2F..%2F..`],
      ['GET', '/v2/t/a/blobs/..%2F..%2F..%2Fsentinel'],
      ['HEAD', '/v2/t/a/blobs/sha256:%2e%2e'],
      ['DELETE', '/v2/t/a/blobs/sha256:..%2F..%2Fsentinel'],
      ['GET', '/v2/t/a/manifests/..%2F..%2Fsentinel'],
      ['GET', '/v2/t/a/manifests/%2e%2e'],
      ['PUT', '/v2/t/a/manifests/..%2F..%2Fsentinel', '{}'],
      ['DELETE', '/v2/t/a/manifests/%2e%2e%2f%2e%2e%2fsentinel'],
      ['GET', '/v2/t/a/referrers/..%2F..%2Fsentinel'],
      ['GET', '/v2/t/a/blobs/uploads/..%2F..%2F..%2Fsentinel'],
      ['PATCH', '/v2/t/a/blobs/uploads/..%2F..%2F..%2Fsentinel', 'overwrite'],
      ['PUT', `/v2/t/a/blobs/uploads/..%2F..%2F..%2Fsentinel?digest=${sha256('overwrite')}`, 'overwrite'],
      ['DELETE', '/v2/t/a/blobs/uploads/..%2F..%2F..%2Fsentinel'],
      ['DELETE', '/v2/t/a/blobs/uploads/%2e%2e'],
      ['POST', '/v2/t/a/blobs/uploads/?digest=sha256:..%2F..%2F..%2Fsentinel', 'x'],
      ['POST', `/v2/t/a/blobs/uploads/?mount=sha256:..%2F..%2Fsentinel&from=t/a`],
      ['POST', `/v2/t/a/blobs/uploads/?mount=${blob}&from=..%2F..%2Fsentinel`],
      ['POST', `/v2/t/a/blobs/uploads/?mount=${blob}&from=%2e%2e`],
      ['PUT', `${uploadUrl}?digest=sha256:..%2F..%2F..%2Fsentinel`, 'x'],
      ['PUT', `${uploadUrl}?digest=..%2F..%2F..%2Fsentinel`, 'x'],
      ['GET', `/v2/_catalog?last=..%2F..%2Fsentinel`],
      ['GET', `/v2/t/a/tags/list?last=..%2F..`],
      ['GET', `/v2/t/a/referrers/${blob}?artifactType=..%2F..%2Fsentinel`],
    ]
    for (const [method, url, payload] of cases) {
      const res = await h.raw(method, url, payload, payload !== undefined ? { 'content-type': 'application/octet-stream' } : {})
      assert.ok(res.statusCode < 500, `${method} ${url} → ${res.statusCode} ${res.body}`)
      assert.ok(res.statusCode >= 200, `${method} ${url} → ${res.statusCode}`)
      if (res.statusCode >= 400 && method !== 'HEAD') {
        assert.ok(Array.isArray((JSON.parse(res.body) as { errors?: unknown }).errors), `${method} ${url}: OCI error body, got ${res.body}`)
      }
    }
    assert.deepEqual(await snapshot(h.root, h.dataDir), before)
    assert.equal(await readFile(join(h.root, 'sentinel'), 'utf8'), 'outside')
    // The original blob is intact and readable.
    const res = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${blob}` })
    assert.equal(res.body, 'inside')
  })

  it('an encoded slash in a name addresses the same repository as a plain slash', async (t) => {
    const h = await harness(t)
    const d = await pushBlob(h, 't/a/b', 'x')
    const res = await h.inject({ method: 'GET', url: `/v2/t/a%2Fb/blobs/${d}` })
    assert.ok(res.statusCode === 200 || res.statusCode === 404, `${res.statusCode}`)
  })

  it('malformed percent-encoding under /v2 is a 400 OCI error, not a framework error body', async (t) => {
    const h = await harness(t)
    for (const url of ['/v2/t/a/blobs/%zz', '/v2/%E0%A4%A/tags/list', '/v2/t/a/manifests/%']) {
      const res = await h.inject({ method: 'GET', url })
      assert.ok(res.statusCode < 500, `${url} → ${res.statusCode}`)
      assert.equal(res.statusCode, 400, url)
      const body = res.json() as { errors?: Array<{ code: string }> }
      assert.ok(Array.isArray(body.errors), `${url}: expected an OCI error body, got ${res.body}`)
    }
  })
})
