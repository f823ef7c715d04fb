import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { harness, imageManifest, pushManifest, putManifest, randomBlob, sha256 } from './harness.ts'

describe('concurrency', () => {
  it('two concurrent monolithic uploads of the same blob to two repositories both succeed', async (t) => {
    const h = await harness(t)
    const data = randomBlob(2 * (1 << 20))
    const digest = sha256(data)
    const push = (repo: string) =>
      h.inject({
        method: 'POST',
        url: `/v2/${repo}/blobs/uploads/?digest=${digest}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: data,
      })
    const results = await Promise.all([push('t/one'), push('t/two'), push('t/one'), push('t/three')])
    for (const r of results) assert.equal(r.statusCode, 201, r.body)
    for (const repo of ['t/one', 't/two', 't/three']) {
      const res = await h.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` })
      assert.equal(res.statusCode, 200)
      assert.equal(sha256(res.rawPayload), digest)
    }
  })

  it('concurrent chunked sessions for the same blob in two repositories both complete', async (t) => {
    const h = await harness(t)
    const data = randomBlob(100_000)
    const digest = sha256(data)
    const upload = async (repo: string) => {
      const post = await h.inject({ method: 'POST', url: `/v2/${repo}/blobs/uploads/` })
      const url = String(post.headers.location)
      const p = await h.inject({
        method: 'PATCH',
        url,
        headers: { 'content-type': 'application/octet-stream' },
        payload: data.subarray(0, 50_000),
      })
      assert.equal(p.statusCode, 202)
      return h.inject({
        method: 'PUT',
        url: `${url}?digest=${digest}`,
        headers: { 'content-type': 'application/octet-stream' },
        payload: data.subarray(50_000),
      })
    }
    const results = await Promise.all([upload('t/a'), upload('t/b')])
    for (const r of results) assert.equal(r.statusCode, 201, r.body)
    for (const repo of ['t/a', 't/b'])
      assert.equal(sha256((await h.inject({ method: 'GET', url: `/v2/${repo}/blobs/${digest}` })).rawPayload), digest)
  })

  it('concurrent PUTs of one tag to different manifests end with one consistent tag', async (t) => {
    const h = await harness(t)
    const candidates = await Promise.all(Array.from({ length: 6 }, () => imageManifest(h, 't/app')))
    const results = await Promise.all(candidates.map((m) => putManifest(h, 't/app', 'latest', m)))
    for (const r of results) assert.equal(r.statusCode, 201, r.body)

    const got = await h.inject({ method: 'GET', url: '/v2/t/app/manifests/latest' })
    assert.equal(got.statusCode, 200)
    const winner = candidates.find((m) => m.digest === got.headers['docker-content-digest'])
    assert.ok(winner, 'the tag points at one of the pushed manifests')
    assert.ok(got.rawPayload.equals(winner.body), 'body and Docker-Content-Digest agree')
    const head = await h.inject({ method: 'HEAD', url: '/v2/t/app/manifests/latest' })
    assert.equal(head.headers['docker-content-digest'], winner.digest)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/app/tags/list' })).json(), { name: 't/app', tags: ['latest'] })
    // Every manifest is still reachable by digest.
    for (const m of candidates) assert.equal((await h.inject({ method: 'HEAD', url: `/v2/t/app/manifests/${m.digest}` })).statusCode, 200)
  })

  it('concurrent pushes of the same manifest to different tags and repositories', async (t) => {
    const h = await harness(t)
    const m = await imageManifest(h, 't/app', { seed: 'shared' })
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((tag) => putManifest(h, 't/app', tag, m)))
    for (const r of results) assert.equal(r.statusCode, 201, r.body)
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/t/app/tags/list' })).json(), { name: 't/app', tags: ['a', 'b', 'c', 'd'] })
  })

  it('concurrent first pushes create a repository once', async (t) => {
    const h = await harness(t)
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => {
        const data = Buffer.from(`blob ${i}`)
        return h.inject({
          method: 'POST',
          url: `/v2/t/fresh/repo/blobs/uploads/?digest=${sha256(data)}`,
          payload: data,
          headers: { 'content-type': 'application/octet-stream' },
        })
      }),
    )
    for (const r of results) assert.equal(r.statusCode, 201, r.body)
    await pushManifest(h, 't/fresh/repo', 'v1', await imageManifest(h, 't/fresh/repo', { seed: 'fresh' }))
    assert.deepEqual((await h.inject({ method: 'GET', url: '/v2/_catalog' })).json(), { repositories: ['t/fresh/repo'] })
  })
})
