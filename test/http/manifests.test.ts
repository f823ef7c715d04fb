import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import {
  artifactManifest,
  assertOciError,
  harness,
  imageManifest,
  indexManifest,
  MEDIA_TYPES,
  pushBlob,
  pushManifest,
  putManifest,
  sha256,
  sha512,
  type BuiltManifest,
  type Harness,
  type Response,
} from './harness.ts'

const ALL_TYPES = [MEDIA_TYPES.ociManifest, MEDIA_TYPES.ociIndex, MEDIA_TYPES.dockerManifest, MEDIA_TYPES.dockerList].join(', ')

function getManifest(h: Harness, repo: string, ref: string, accept?: string, method: 'GET' | 'HEAD' = 'GET'): Promise<Response> {
  return h.inject({ method, url: `/v2/${repo}/manifests/${ref}`, headers: accept === undefined ? {} : { accept } })
}

function assertServes(res: Response, m: BuiltManifest, method: 'GET' | 'HEAD' = 'GET'): void {
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['content-type'], m.mediaType)
  assert.equal(res.headers['docker-content-digest'], m.digest)
  assert.equal(res.headers.etag, `"${m.digest}"`)
  assert.equal(res.headers['content-length'], String(m.body.length))
  if (method === 'GET') assert.ok(res.rawPayload.equals(m.body), 'exact manifest bytes')
  else assert.equal(res.body, '')
}

/** A multi-platform index in `repo`: two image manifests pushed by digest, then the index itself (not pushed). */
async function platformIndex(h: Harness, repo: string, docker = false) {
  const amd64 = await imageManifest(h, repo, { docker, platform: { os: 'linux', architecture: 'amd64' } })
  const arm64 = await imageManifest(h, repo, { docker, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } })
  await pushManifest(h, repo, arm64.digest, arm64)
  await pushManifest(h, repo, amd64.digest, amd64)
  // arm64 first, so picking the default platform is not just "the first entry".
  const index = indexManifest([arm64.descriptor, amd64.descriptor], { docker })
  return { amd64, arm64, index }
}

describe('manifest push', () => {
  it('PUT by tag → 201 with Location and Docker-Content-Digest', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/lib/app')
    const res = await putManifest(h, 't/lib/app', 'v1', m)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers.location, `/v2/t/lib/app/manifests/${m.digest}`)
    assert.equal(res.headers['docker-content-digest'], m.digest)
    assert.equal(res.headers['oci-subject'], undefined)
    assertServes(await getManifest(h, 't/lib/app', 'v1'), m)
  })

  it('PUT by digest → 201, no tag is created', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const res = await putManifest(h, 't/a', m.digest, m)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers.location, `/v2/t/a/manifests/${m.digest}`)
    assert.equal(res.headers['docker-content-digest'], m.digest)
    assertServes(await getManifest(h, 't/a', m.digest), m)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/a/tags/list' })).json(), { name: 't/a', tags: [] })
  })

  it('PUT by a sha512 digest', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const d = sha512(m.body)
    const res = await putManifest(h, 't/a', d, m)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers['docker-content-digest'], d)
    assert.equal(res.headers.location, `/v2/t/a/manifests/${d}`)
    const got = await getManifest(h, 't/a', d)
    assert.equal(got.statusCode, 200)
    assert.ok(got.rawPayload.equals(m.body))
  })

  it('the exact bytes are kept (whitespace and key order), and the digest is of those bytes', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const pretty = Buffer.from(`${JSON.stringify(JSON.parse(m.body.toString()), null, 3)}\n`)
    const res = await putManifest(h, 't/a', 'pretty', { ...m, body: pretty })
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers['docker-content-digest'], sha256(pretty))
    const got = await getManifest(h, 't/a', 'pretty')
    assert.ok(got.rawPayload.equals(pretty))
  })

  it('pushing the same manifest twice is idempotent', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'x', m)
    await pushManifest(h, 't/a', 'x', m)
    await pushManifest(h, 't/a', m.digest, m)
    assertServes(await getManifest(h, 't/a', 'x'), m)
  })

  it('re-tagging moves the tag', async (t) => {
    const h = await harness(t)
    const m1 = await imageManifest(h, 't/a')
    const m2 = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'latest', m1)
    await pushManifest(h, 't/a', 'latest', m2)
    assertServes(await getManifest(h, 't/a', 'latest'), m2)
    assertServes(await getManifest(h, 't/a', m1.digest), m1)
  })

  it('PUT by digest with a mismatching digest → 400 DIGEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    assertOciError(await putManifest(h, 't/a', sha256('other'), m), 400, 'DIGEST_INVALID')
    assertOciError(await putManifest(h, 't/a', sha512('other'), m), 400, 'DIGEST_INVALID')
    assertOciError(await getManifest(h, 't/a', m.digest), 404, 'MANIFEST_UNKNOWN')
  })

  it('a missing layer or config → 400 MANIFEST_BLOB_UNKNOWN', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const doc = JSON.parse(m.body.toString())
    const missingLayer = {
      ...doc,
      layers: [...doc.layers, { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256('missing'), size: 7 }],
    }
    const e = assertOciError(
      await putManifest(h, 't/a', 'x', { ...m, body: Buffer.from(JSON.stringify(missingLayer)) }),
      400,
      'MANIFEST_BLOB_UNKNOWN',
    )
    assert.deepEqual(e.detail, { digest: sha256('missing') })
    const missingConfig = { ...doc, config: { ...doc.config, digest: sha256('no config'), size: 9 } }
    assertOciError(
      await putManifest(h, 't/a', 'x', { ...m, body: Buffer.from(JSON.stringify(missingConfig)) }),
      400,
      'MANIFEST_BLOB_UNKNOWN',
    )
    assertOciError(await getManifest(h, 't/a', 'x'), 404, 'MANIFEST_UNKNOWN')
  })

  it('blobs that exist only in another repository → 400 MANIFEST_BLOB_UNKNOWN', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/other')
    assertOciError(await putManifest(h, 't/a', 'x', m), 400, 'MANIFEST_BLOB_UNKNOWN')
  })

  it('a descriptor size that does not match the blob → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const doc = JSON.parse(m.body.toString())
    doc.layers[0].size += 1
    assertOciError(await putManifest(h, 't/a', 'x', { ...m, body: Buffer.from(JSON.stringify(doc)) }), 400, 'MANIFEST_INVALID')
  })

  it('foreign layers do not have to be in the registry', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const doc = JSON.parse(m.body.toString())
    doc.layers.push({
      mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
      digest: sha256('elsewhere'),
      size: 123,
      urls: ['https://example.com/blob'],
    })
    const res = await putManifest(h, 't/a', 'foreign', { ...m, body: Buffer.from(JSON.stringify(doc)) })
    assert.equal(res.statusCode, 201, res.body)
  })

  it('an index with a missing child → 400 MANIFEST_BLOB_UNKNOWN', async (t) => {
    const h = await harness(t)
    const { amd64, arm64 } = await platformIndex(h, 't/a')
    const ghost = {
      mediaType: MEDIA_TYPES.ociManifest,
      digest: sha256('ghost manifest'),
      size: 10,
      platform: { os: 'linux', architecture: 's390x' },
    }
    const index = indexManifest([amd64.descriptor, arm64.descriptor, ghost])
    const e = assertOciError(await putManifest(h, 't/a', 'multi', index), 400, 'MANIFEST_BLOB_UNKNOWN')
    assert.deepEqual(e.detail, { digest: ghost.digest })
  })

  it('an index whose children are only in another repository → 400 MANIFEST_BLOB_UNKNOWN', async (t) => {
    const h = await harness(t)
    const { index } = await platformIndex(h, 't/other')
    assertOciError(await putManifest(h, 't/a', 'multi', index), 400, 'MANIFEST_BLOB_UNKNOWN')
  })

  it('invalid JSON → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    for (const body of ['{', 'not json', '', '[]', '{"schemaVersion":2,']) {
      const res = await h.inject({
        method: 'PUT',
        url: '/v2/t/a/manifests/x',
        headers: { 'content-type': MEDIA_TYPES.ociManifest },
        payload: body,
      })
      assertOciError(res, 400, 'MANIFEST_INVALID')
    }
  })

  it('schemaVersion other than 2 → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a', { extra: { schemaVersion: 1 } })
    assertOciError(await putManifest(h, 't/a', 'x', m), 400, 'MANIFEST_INVALID')
    const m3 = await imageManifest(h, 't/a', { extra: { schemaVersion: 3 } })
    assertOciError(await putManifest(h, 't/a', 'x', m3), 400, 'MANIFEST_INVALID')
  })

  it('body mediaType disagreeing with Content-Type → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    assertOciError(await putManifest(h, 't/a', 'x', m, MEDIA_TYPES.ociIndex), 400, 'MANIFEST_INVALID')
    assertOciError(await putManifest(h, 't/a', 'x', m, MEDIA_TYPES.dockerManifest), 400, 'MANIFEST_INVALID')
  })

  it('an unknown manifest media type → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a', { extra: { mediaType: 'application/vnd.example.thing+json' } })
    assertOciError(await putManifest(h, 't/a', 'x', m, 'application/vnd.example.thing+json'), 400, 'MANIFEST_INVALID')
  })

  it('without Content-Type, the body mediaType decides', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a', { docker: true })
    const res = await putManifest(h, 't/a', 'x', m, undefined)
    assert.equal(res.statusCode, 201, res.body)
    assertServes(await getManifest(h, 't/a', 'x'), m)
  })

  it(`a manifest larger than limits.manifestBytes → 413`, async (t) => {
    const h = await harness(t, { manifestBytes: 4096 })
    const small = await imageManifest(h, 't/a')
    // Pad the manifest to exactly the limit: accepted.
    const pad = (n: number) => {
      const doc = JSON.parse(small.body.toString())
      doc.annotations = { pad: '' }
      const base = Buffer.byteLength(JSON.stringify(doc))
      doc.annotations.pad = 'x'.repeat(n - base)
      const body = Buffer.from(JSON.stringify(doc))
      assert.equal(body.length, n)
      return { ...small, body, digest: sha256(body) }
    }
    const atLimit = pad(4096)
    assert.equal((await putManifest(h, 't/a', 'fits', atLimit)).statusCode, 201)
    const over = pad(4097)
    assertOciError(await putManifest(h, 't/a', 'big', over), 413, OCI_ERRORS.MANIFEST_TOO_LARGE!.code)
    const huge = pad(200_000)
    assertOciError(await putManifest(h, 't/a', 'huge', huge), 413, OCI_ERRORS.MANIFEST_TOO_LARGE!.code)
    assertOciError(await getManifest(h, 't/a', 'big'), 404, 'MANIFEST_UNKNOWN')
  })

  it('a manifest with a subject → 201 with OCI-Subject', async (t) => {
    const h = await harness(t)
    const subject = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'v1', subject)
    const sig = await artifactManifest(h, 't/a', subject.descriptor, 'application/vnd.example.signature')
    const res = await putManifest(h, 't/a', sig.digest, sig)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers['oci-subject'], subject.digest)
  })

  it('a subject that is not (yet) in the registry is accepted', async (t) => {
    const h = await harness(t)
    const absent = { mediaType: MEDIA_TYPES.ociManifest, digest: sha256('not pushed yet'), size: 42 }
    const sig = await artifactManifest(h, 't/a', absent, 'application/vnd.example.signature')
    const res = await putManifest(h, 't/a', sig.digest, sig)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers['oci-subject'], absent.digest)
  })

  it('schema 1 manifests are refused with an OCI error', async (t) => {
    const h = await harness(t)
    const body = Buffer.from(
      JSON.stringify({ schemaVersion: 1, name: 'a', tag: 'x', architecture: 'amd64', fsLayers: [], history: [], signatures: [] }),
    )
    const res = await h.inject({
      method: 'PUT',
      url: '/v2/t/a/manifests/x',
      headers: { 'content-type': 'application/vnd.docker.distribution.manifest.v1+prettyjws' },
      payload: body,
    })
    assert.ok(res.statusCode >= 400 && res.statusCode < 500, String(res.statusCode))
    assert.ok(Array.isArray((res.json() as { errors: unknown }).errors))
  })
})

describe('manifest pull and content negotiation', () => {
  const kinds = [
    ['OCI image manifest', false, 'image'],
    ['Docker schema2 manifest', true, 'image'],
    ['OCI image index', false, 'index'],
    ['Docker manifest list', true, 'index'],
  ] as const

  for (const [label, docker, kind] of kinds) {
    it(`${label}: GET/HEAD by tag and by digest serve the stored type`, async (t) => {
      const h = await harness(t)
      const m = kind === 'image' ? await imageManifest(h, 't/a', { docker }) : (await platformIndex(h, 't/a', docker)).index
      await pushManifest(h, 't/a', 'tag', m)
      for (const ref of ['tag', m.digest]) {
        for (const accept of [undefined, ALL_TYPES, m.mediaType, '*/*', `text/plain, ${m.mediaType};q=0.5`]) {
          assertServes(await getManifest(h, 't/a', ref, accept), m)
          assertServes(await getManifest(h, 't/a', ref, accept, 'HEAD'), m, 'HEAD')
        }
      }
    })
  }

  it('an OCI index requested with only a single-manifest Accept gets the linux/amd64 child', async (t) => {
    const h = await harness(t)
    const { amd64, index } = await platformIndex(h, 't/a')
    await pushManifest(h, 't/a', 'multi', index)
    assertServes(await getManifest(h, 't/a', 'multi', MEDIA_TYPES.ociManifest), amd64)
    assertServes(await getManifest(h, 't/a', 'multi', MEDIA_TYPES.ociManifest, 'HEAD'), amd64, 'HEAD')
    // With the index type acceptable, the index itself.
    assertServes(await getManifest(h, 't/a', 'multi', `${MEDIA_TYPES.ociManifest}, ${MEDIA_TYPES.ociIndex}`), index)
  })

  it('a Docker manifest list requested with only the schema2 Accept gets the linux/amd64 child', async (t) => {
    const h = await harness(t)
    const { amd64, index } = await platformIndex(h, 't/a', true)
    await pushManifest(h, 't/a', 'multi', index)
    assertServes(await getManifest(h, 't/a', 'multi', MEDIA_TYPES.dockerManifest), amd64)
  })

  it('by digest, the exact manifest is served whatever the Accept header', async (t) => {
    const h = await harness(t)
    const { index } = await platformIndex(h, 't/a')
    await pushManifest(h, 't/a', index.digest, index)
    assertServes(await getManifest(h, 't/a', index.digest, MEDIA_TYPES.ociManifest), index)
  })

  it('a tag whose type the Accept header rules out → 404 MANIFEST_UNKNOWN', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'oci', m)
    assertOciError(await getManifest(h, 't/a', 'oci', MEDIA_TYPES.dockerManifest), 404, 'MANIFEST_UNKNOWN')
  })

  it('an unknown tag or digest → 404 MANIFEST_UNKNOWN', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'v1', m)
    assertOciError(await getManifest(h, 't/a', 'v2'), 404, 'MANIFEST_UNKNOWN')
    assertOciError(await getManifest(h, 't/a', sha256('nope')), 404, 'MANIFEST_UNKNOWN')
    const head = await getManifest(h, 't/a', 'v2', undefined, 'HEAD')
    assert.equal(head.statusCode, 404)
    assert.equal(head.body, '')
  })

  it('an unknown repository → 404 NAME_UNKNOWN', async (t) => {
    const h = await harness(t)
    assertOciError(await getManifest(h, 't/no/such/repo', 'latest'), 404, 'NAME_UNKNOWN')
    assertOciError(await getManifest(h, 't/no/such/repo', sha256('x')), 404, 'NAME_UNKNOWN')
    assert.equal((await getManifest(h, 't/no/such/repo', 'latest', undefined, 'HEAD')).statusCode, 404)
  })

  it('a reference that is not a valid tag names no manifest: GET, HEAD and DELETE → 404 MANIFEST_UNKNOWN, PUT → 400 MANIFEST_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'v1', m)
    // The first is the conformance suite's "nonexistent manifest".
    for (const ref of ['.INVALID_MANIFEST_NAME', '-bad', '.bad', 'a'.repeat(129), 'bad+tag', '%20']) {
      for (const method of ['GET', 'DELETE'] as const) {
        const e = assertOciError(await h.inject({ method, url: `/v2/t/a/manifests/${ref}` }), 404, 'MANIFEST_UNKNOWN')
        assert.equal(e.message, 'manifest unknown to registry', `${method} ${ref}`)
      }
      const head = await h.inject({ method: 'HEAD', url: `/v2/t/a/manifests/${ref}` })
      assert.equal(head.statusCode, 404, `HEAD ${ref}`)
      assert.equal(head.body, '')
      assertOciError(await putManifest(h, 't/a', ref, m), 400, 'MANIFEST_INVALID')
    }
    // An unknown repository is still NAME_UNKNOWN, and the token is checked first.
    assertOciError(await h.inject({ method: 'GET', url: '/v2/t/none/manifests/.INVALID_MANIFEST_NAME' }), 404, 'NAME_UNKNOWN')
    const anon = await h.anonymous({ method: 'GET', url: '/v2/t/a/manifests/.INVALID_MANIFEST_NAME' })
    assertOciError(anon, 401, 'UNAUTHORIZED')
    assert.match(String(anon.headers['www-authenticate']), /scope="repository:t\/a:pull"/)
    // Nothing was stored or removed under those names.
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/a/tags/list' })).json(), { name: 't/a', tags: ['v1'] })
    // A 128-character tag is fine.
    assert.equal((await putManifest(h, 't/a', 'a'.repeat(128), m)).statusCode, 201)
  })

  it('a malformed digest reference → 400 DIGEST_INVALID, never 500', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'v1', m)
    for (const ref of ['sha256:xyz', `sha256:${'A'.repeat(64)}`, `md5:${'a'.repeat(32)}`, 'foo:bar']) {
      for (const method of ['GET', 'HEAD', 'DELETE'] as const) {
        const res = await h.inject({ method, url: `/v2/t/a/manifests/${ref}` })
        assert.equal(res.statusCode, 400, `${method} ${ref}: ${res.statusCode} ${res.body}`)
        if (method !== 'HEAD') assertOciError(res, 400, 'DIGEST_INVALID')
      }
      assert.equal((await putManifest(h, 't/a', ref, m)).statusCode, 400, `PUT ${ref}`)
    }
  })

  it('an uppercase repository name → 400 NAME_INVALID', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    assertOciError(await getManifest(h, 'Library/App', 'latest'), 400, 'NAME_INVALID')
    assertOciError(await putManifest(h, 'Library/App', 'latest', m), 400, 'NAME_INVALID')
    assertOciError(await h.inject({ method: 'DELETE', url: '/v2/Library/App/manifests/latest' }), 400, 'NAME_INVALID')
    assertOciError(await h.inject({ method: 'GET', url: '/v2/Library/App/tags/list' }), 400, 'NAME_INVALID')
    assertOciError(await h.inject({ method: 'POST', url: '/v2/Library/App/blobs/uploads/' }), 400, 'NAME_INVALID')
  })
})

describe('manifest delete', () => {
  it('two tags on one digest: DELETE one tag → 202 and the other tag still resolves', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'one', m)
    await pushManifest(h, 't/a', 'two', m)
    const res = await h.inject({ method: 'DELETE', url: '/v2/t/a/manifests/one' })
    assert.equal(res.statusCode, 202)
    assertOciError(await getManifest(h, 't/a', 'one'), 404, 'MANIFEST_UNKNOWN')
    assertServes(await getManifest(h, 't/a', 'two'), m)
    assertServes(await getManifest(h, 't/a', m.digest), m)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/a/tags/list' })).json(), { name: 't/a', tags: ['two'] })
    assertOciError(await h.inject({ method: 'DELETE', url: '/v2/t/a/manifests/one' }), 404, 'MANIFEST_UNKNOWN')
  })

  it('DELETE by digest → 202 and every tag on it is gone', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a')
    const other = await imageManifest(h, 't/a')
    await pushManifest(h, 't/a', 'one', m)
    await pushManifest(h, 't/a', 'two', m)
    await pushManifest(h, 't/a', 'keep', other)
    const res = await h.inject({ method: 'DELETE', url: `/v2/t/a/manifests/${m.digest}` })
    assert.equal(res.statusCode, 202)
    assertOciError(await getManifest(h, 't/a', 'one'), 404, 'MANIFEST_UNKNOWN')
    assertOciError(await getManifest(h, 't/a', 'two'), 404, 'MANIFEST_UNKNOWN')
    assertOciError(await getManifest(h, 't/a', m.digest), 404, 'MANIFEST_UNKNOWN')
    assertServes(await getManifest(h, 't/a', 'keep'), other)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/a/tags/list' })).json(), { name: 't/a', tags: ['keep'] })
    assertOciError(await h.inject({ method: 'DELETE', url: `/v2/t/a/manifests/${m.digest}` }), 404, 'MANIFEST_UNKNOWN')
    // It can be pushed again.
    await pushManifest(h, 't/a', 'one', m)
    assertServes(await getManifest(h, 't/a', 'one'), m)
  })

  it('DELETE in one repository leaves the same manifest in another', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a', { seed: 'same' })
    const m2 = await imageManifest(h, 't/b', { seed: 'same' })
    assert.equal(m.digest, m2.digest)
    await pushManifest(h, 't/a', 'x', m)
    await pushManifest(h, 't/b', 'x', m2)
    assert.equal((await h.inject({ method: 'DELETE', url: `/v2/t/a/manifests/${m.digest}` })).statusCode, 202)
    assertServes(await getManifest(h, 't/b', 'x'), m2)
  })

  it('DELETE of an unknown tag → 404 MANIFEST_UNKNOWN; in an unknown repository → 404 NAME_UNKNOWN', async (t) => {
    const h = await harness(t)
    await pushBlob(h, 't/a', 'x')
    assertOciError(await h.inject({ method: 'DELETE', url: '/v2/t/a/manifests/nope' }), 404, 'MANIFEST_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url: `/v2/t/a/manifests/${sha256('x')}` }), 404, 'MANIFEST_UNKNOWN')
    assertOciError(await h.inject({ method: 'DELETE', url: '/v2/t/nobody/manifests/nope' }), 404, 'NAME_UNKNOWN')
  })
})
