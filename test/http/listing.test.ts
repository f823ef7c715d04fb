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
  sha256,
  type Harness,
  type Response,
} from './harness.ts'

const PAGINATION = OCI_ERRORS.PAGINATION_INVALID!.code

function nextLink(res: Response): string | undefined {
  const link = res.headers.link
  if (link === undefined) return undefined
  const m = /^<([^>]+)>; rel="next"$/.exec(String(link))
  assert.ok(m, `Link header format: ${String(link)}`)
  return m[1]
}

/** Follows Link headers from `url`, returning every page's items and the URLs visited. */
async function paginate(
  h: Harness,
  url: string,
  key: 'tags' | 'repositories',
): Promise<{ items: string[]; pages: string[][]; urls: string[] }> {
  const items: string[] = []
  const pages: string[][] = []
  const urls: string[] = []
  let next: string | undefined = url
  for (let i = 0; next !== undefined && i < 100; i++) {
    urls.push(next)
    const res = await h.inject({ method: 'GET', url: next })
    assert.equal(res.statusCode, 200, `${next}: ${res.body}`)
    const page = (res.json() as Record<string, string[]>)[key]!
    pages.push(page)
    items.push(...page)
    next = nextLink(res)
  }
  return { items, pages, urls }
}

const TAGS = ['b', 'a', 'c', 'A', 'latest', 'v1.0', '_x', 'Z9', 'a.b', 'a-b', 'a_b', '0']
const SORTED = [...TAGS].sort() // code-unit order = byte order for ASCII

async function tagged(t: Parameters<typeof harness>[0], opts: { pageMax?: number } = {}) {
  const h = await harness(t, opts)
  const m = await imageManifest(h, 't/r')
  for (const tag of TAGS) await pushManifest(h, 't/r', tag, m)
  return h
}

describe('tags/list', () => {
  it('lists every tag in lexical (byte) order', async (t) => {
    const h = await tagged(t)
    const res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list' })
    assert.equal(res.statusCode, 200)
    assert.match(String(res.headers['content-type']), /^application\/json/)
    assert.deepEqual(res.json(), { name: 't/r', tags: SORTED })
    assert.equal(res.headers.link, undefined)
  })

  it('n limits the page and Link points at the next one', async (t) => {
    const h = await tagged(t)
    const res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?n=5' })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { name: 't/r', tags: SORTED.slice(0, 5) })
    assert.equal(res.headers.link, `</v2/t/r/tags/list?n=5&last=${encodeURIComponent(SORTED[4]!)}>; rel="next"`)
    const all = await paginate(h, '/v2/t/r/tags/list?n=5', 'tags')
    assert.deepEqual(all.items, SORTED)
    assert.deepEqual(
      all.pages.map((p) => p.length),
      [5, 5, 2],
    )
  })

  it('a last page of exactly n items has no Link', async (t) => {
    const h = await tagged(t)
    const all = await paginate(h, '/v2/t/r/tags/list?n=6', 'tags')
    assert.deepEqual(
      all.pages.map((p) => p.length),
      [6, 6],
    )
    assert.deepEqual(all.items, SORTED)
  })

  it('last returns the tags after it', async (t) => {
    const h = await tagged(t)
    let res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?last=a' })
    assert.deepEqual(
      (res.json() as { tags: string[] }).tags,
      SORTED.filter((x) => x > 'a'),
    )
    res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?n=2&last=a' })
    assert.deepEqual((res.json() as { tags: string[] }).tags, SORTED.filter((x) => x > 'a').slice(0, 2))
    // A last that is not itself a tag still works.
    res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?last=aa' })
    assert.deepEqual(
      (res.json() as { tags: string[] }).tags,
      SORTED.filter((x) => x > 'aa'),
    )
    res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?last=zzz' })
    assert.deepEqual(res.json(), { name: 't/r', tags: [] })
    assert.equal(res.headers.link, undefined)
  })

  it('n above the server page size is clamped, and pagination still covers everything', async (t) => {
    const h = await tagged(t, { pageMax: 4 })
    const first = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list' })
    assert.equal((first.json() as { tags: string[] }).tags.length, 4)
    assert.ok(nextLink(first))
    const all = await paginate(h, '/v2/t/r/tags/list?n=1000', 'tags')
    assert.deepEqual(all.items, SORTED)
    for (const p of all.pages) assert.ok(p.length <= 4)
  })

  it('an invalid n → 400', async (t) => {
    const h = await tagged(t)
    for (const n of ['-1', 'abc', '1.5', '', '1e3', '9999999999', '0x10']) {
      assertOciError(await h.inject({ method: 'GET', url: `/v2/t/r/tags/list?n=${n}` }), 400, PAGINATION)
    }
    assertOciError(await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?n=1&n=2' }), 400, PAGINATION)
  })

  it('a repeated last parameter is a client error, not a 500', async (t) => {
    const h = await tagged(t)
    const res = await h.inject({ method: 'GET', url: '/v2/t/r/tags/list?last=a&last=b' })
    assert.ok(res.statusCode < 500, `GET /v2/t/r/tags/list?last=a&last=b → ${res.statusCode} ${res.body}`)
  })

  it('an unknown repository → 404 NAME_UNKNOWN', async (t) => {
    const h = await harness(t)
    assertOciError(await h.inject({ method: 'GET', url: '/v2/t/nope/tags/list' }), 404, 'NAME_UNKNOWN')
  })

  it('a repository with blobs but no tags lists no tags', async (t) => {
    const h = await harness(t)
    await pushBlob(h, 't/r', 'x')
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/r/tags/list' })).json(), { name: 't/r', tags: [] })
  })

  it('nested repository names', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/a/b/c')
    await pushManifest(h, 't/a/b/c', 'v1', m)
    const res = await h.inject({ method: 'GET', url: '/v2/t/a/b/c/tags/list?n=1' })
    assert.deepEqual(res.json(), { name: 't/a/b/c', tags: ['v1'] })
  })
})

describe('_catalog', () => {
  const REPOS = ['t/b', 't/a/x', 't/a', 't/c/d/e', 't/a-b', 't/a.b', 't/a_b', 't/z']
  const SORTED_REPOS = [...REPOS].sort()

  async function repos(t: Parameters<typeof harness>[0]) {
    const h = await harness(t)
    for (const r of REPOS) await pushManifest(h, r, 'v1', await imageManifest(h, r, { seed: r }))
    return h
  }

  it('does not list a repository that holds only blobs (an upload alone is no image)', async (t) => {
    const h = await repos(t)
    await pushBlob(h, 't/only/blobs', 'orphan blob')
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/_catalog' })).json(), { repositories: SORTED_REPOS })
  })

  it('lists repositories in lexical order', async (t) => {
    const h = await repos(t)
    const res = await h.inject({ method: 'GET', url: '/v2/_catalog' })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), { repositories: SORTED_REPOS })
    assert.equal(res.headers.link, undefined)
  })

  it('n, last and Link', async (t) => {
    const h = await repos(t)
    const res = await h.inject({ method: 'GET', url: '/v2/_catalog?n=3' })
    assert.deepEqual(res.json(), { repositories: SORTED_REPOS.slice(0, 3) })
    assert.equal(res.headers.link, `</v2/_catalog?n=3&last=${encodeURIComponent(SORTED_REPOS[2]!)}>; rel="next"`)
    const all = await paginate(h, '/v2/_catalog?n=3', 'repositories')
    assert.deepEqual(all.items, SORTED_REPOS)
    const after = await h.inject({ method: 'GET', url: `/v2/_catalog?last=${encodeURIComponent('t/a/x')}` })
    assert.deepEqual(
      (after.json() as { repositories: string[] }).repositories,
      SORTED_REPOS.filter((r) => r > 't/a/x'),
    )
  })

  it('an empty registry has an empty catalog', async (t) => {
    const h = await harness(t)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/_catalog' })).json(), { repositories: [] })
  })

  it('an invalid n → 400', async (t) => {
    const h = await repos(t)
    for (const n of ['-5', 'x', '2.0', '']) {
      assertOciError(await h.inject({ method: 'GET', url: `/v2/_catalog?n=${n}` }), 400, PAGINATION)
    }
  })

  it('a repeated last parameter is a client error, not a 500', async (t) => {
    const h = await repos(t)
    const res = await h.inject({ method: 'GET', url: '/v2/_catalog?last=a&last=b' })
    assert.ok(res.statusCode < 500, `GET /v2/_catalog?last=a&last=b → ${res.statusCode} ${res.body}`)
  })
})

describe('referrers', () => {
  const X = 'application/vnd.example.sbom'
  const Y = 'application/vnd.example.signature'

  async function setup(t: Parameters<typeof harness>[0]) {
    const h = await harness(t)
    const subject = await imageManifest(h, 't/app')
    await pushManifest(h, 't/app', 'v1', subject)
    const sbom = await artifactManifest(h, 't/app', subject.descriptor, X, { 'org.example.kind': 'sbom' })
    const sig = await artifactManifest(h, 't/app', subject.descriptor, Y, {
      'org.example.kind': 'signature',
      'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
    })
    await pushManifest(h, 't/app', sbom.digest, sbom)
    await pushManifest(h, 't/app', sig.digest, sig)
    return { h, subject, sbom, sig }
  }

  type Index = { schemaVersion: number; mediaType: string; manifests: Array<Record<string, unknown>> }
  const byDigest = (a: { digest?: unknown }, b: { digest?: unknown }) => String(a.digest).localeCompare(String(b.digest))

  it('lists both referrers with artifactType and annotations', async (t) => {
    const { h, subject, sbom, sig } = await setup(t)
    const res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}` })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['content-type'], MEDIA_TYPES.ociIndex)
    assert.equal(res.headers['oci-filters-applied'], undefined)
    const index = res.json() as Index
    assert.equal(index.schemaVersion, 2)
    assert.equal(index.mediaType, MEDIA_TYPES.ociIndex)
    assert.deepEqual(index.manifests.sort(byDigest), [sbom.descriptor, sig.descriptor].sort(byDigest))
  })

  it('?artifactType= filters and sets OCI-Filters-Applied', async (t) => {
    const { h, subject, sbom, sig } = await setup(t)
    let res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}?artifactType=${encodeURIComponent(X)}` })
    assert.equal(res.statusCode, 200)
    assert.equal(res.headers['oci-filters-applied'], 'artifactType')
    assert.equal(res.headers['content-type'], MEDIA_TYPES.ociIndex)
    assert.deepEqual((res.json() as Index).manifests, [sbom.descriptor])
    res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}?artifactType=${encodeURIComponent(Y)}` })
    assert.deepEqual((res.json() as Index).manifests, [sig.descriptor])
    res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}?artifactType=application/none` })
    assert.equal(res.headers['oci-filters-applied'], 'artifactType')
    assert.deepEqual((res.json() as Index).manifests, [])
  })

  it('a repeated artifactType parameter is not a 500', async (t) => {
    const { h, subject } = await setup(t)
    const url = `/v2/t/app/referrers/${subject.digest}?artifactType=${encodeURIComponent(X)}&artifactType=${encodeURIComponent(Y)}`
    const res = await h.inject({ method: 'GET', url })
    assert.ok(res.statusCode < 500, `GET ${url} → ${res.statusCode} ${res.body}`)
  })

  it('an unknown digest → 200 with an empty index', async (t) => {
    const { h } = await setup(t)
    for (const repo of ['t/app', 't/no/such/repo']) {
      const res = await h.inject({ method: 'GET', url: `/v2/${repo}/referrers/${sha256('unknown')}` })
      assert.equal(res.statusCode, 200)
      assert.equal(res.headers['content-type'], MEDIA_TYPES.ociIndex)
      assert.deepEqual(res.json(), { schemaVersion: 2, mediaType: MEDIA_TYPES.ociIndex, manifests: [] })
    }
  })

  it('a malformed digest → 400 DIGEST_INVALID', async (t) => {
    const { h } = await setup(t)
    for (const d of ['latest', 'sha256:abc', `sha256:${'Z'.repeat(64)}`]) {
      assertOciError(await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${d}` }), 400, 'DIGEST_INVALID')
    }
  })

  it('referrers in another repository are not listed', async (t) => {
    const { h, subject } = await setup(t)
    const res = await h.inject({ method: 'GET', url: `/v2/t/other/referrers/${subject.digest}` })
    assert.deepEqual((res.json() as Index).manifests, [])
  })

  it('a deleted referrer disappears from the list', async (t) => {
    const { h, subject, sbom, sig } = await setup(t)
    assert.equal((await h.inject({ method: 'DELETE', url: `/v2/t/app/manifests/${sbom.digest}` })).statusCode, 202)
    const res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}` })
    assert.deepEqual((res.json() as Index).manifests, [sig.descriptor])
  })

  it('an image manifest without artifactType is listed with its config media type', async (t) => {
    const h = await harness(t)
    const subject = await imageManifest(h, 't/app')
    await pushManifest(h, 't/app', 'v1', subject)
    const ref = await imageManifest(h, 't/app', {
      extra: { subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.body.length } },
    })
    await pushManifest(h, 't/app', ref.digest, ref)
    const res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}` })
    assert.deepEqual((res.json() as Index).manifests, [
      {
        mediaType: MEDIA_TYPES.ociManifest,
        digest: ref.digest,
        size: ref.body.length,
        artifactType: 'application/vnd.oci.image.config.v1+json',
      },
    ])
  })

  it('an index can be a referrer', async (t) => {
    const { h, subject } = await setup(t)
    const child = await imageManifest(h, 't/app')
    await pushManifest(h, 't/app', child.digest, child)
    const idx = indexManifest([child.descriptor], {
      extra: {
        artifactType: 'application/vnd.example.bundle',
        subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.body.length },
      },
    })
    await pushManifest(h, 't/app', idx.digest, idx)
    const res = await h.inject({ method: 'GET', url: `/v2/t/app/referrers/${subject.digest}?artifactType=application/vnd.example.bundle` })
    assert.deepEqual((res.json() as Index).manifests, [
      { mediaType: MEDIA_TYPES.ociIndex, digest: idx.digest, size: idx.body.length, artifactType: 'application/vnd.example.bundle' },
    ])
  })
})
