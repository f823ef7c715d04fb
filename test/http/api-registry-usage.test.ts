// Registry storage figures: per project and group (GitLab's statistics=true:
// container_registry_size) and for the instance (admin statistics), each shared blob counted once.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { createHash } from 'node:crypto'
import { apiHarness, bearer, pushSeeded } from './api-harness.ts'

test('container_registry_size counts each blob once per project, group and instance; other paths stay out', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const as = { token: root.token }
  const group = (await h.req('POST', '/api/v4/groups', { ...as, body: { path: 'grp', name: 'grp' } })).json() as { id: number }
  const sub = (await h.req('POST', '/api/v4/groups', { ...as, body: { path: 'sub', name: 'sub', parent_id: group.id } })).json() as {
    id: number
  }
  const create = async (path: string, namespaceId: number) =>
    ((await h.req('POST', '/api/v4/projects', { ...as, body: { path, namespace_id: namespaceId } })).json() as { id: number }).id
  const app = await create('app', group.id)
  const app2 = await create('app2', group.id)
  const deep = await create('deep', sub.id)

  const size = async (url: string) => {
    const r = await h.req('GET', `${url}?statistics=true`, as)
    assert.equal(r.statusCode, 200, r.body)
    return (r.json() as { statistics: { container_registry_size: number } }).statistics.container_registry_size
  }
  assert.equal(await size(`/api/v4/projects/${app}`), 0)
  // Without statistics=true, no statistics (GitLab).
  assert.equal((await h.req('GET', `/api/v4/projects/${app}`, as)).json().statistics, undefined)

  for (const [name, tag, seed] of [
    ['grp/app', 'a', 'base'],
    ['grp/app', 'b', 'own'],
    ['grp/app/api', 'a', 'base'], // the same blobs again, below the project path
    ['grp/app2', 'a', 'base'], // a look-alike path: another project
    ['grp/sub/deep', 'a', 'deep'],
  ] as const)
    assert.equal((await pushSeeded(h, 'root', name, tag, seed)).statusCode, 201)

  // Independently: the bytes of each distinct blob the repositories link, from the tables.
  const expected = async (repos: string[]) => {
    const rows = await h.db
      .selectFrom('repository_blobs as rb')
      .innerJoin('repositories as r', 'r.id', 'rb.repository_id')
      .innerJoin('blobs as b', 'b.digest', 'rb.digest')
      .select(['b.digest', 'b.size'])
      .where('r.name', 'in', repos)
      .execute()
    return [...new Map(rows.map((r) => [r.digest, Number(r.size)])).values()].reduce((n, s) => n + s, 0)
  }
  const appBytes = await size(`/api/v4/projects/${app}`)
  assert.equal(appBytes, await expected(['grp/app', 'grp/app/api']))
  // Shared blobs count once: app/api added nothing, so app alone is the same figure.
  assert.equal(appBytes, await expected(['grp/app']))
  assert.ok(appBytes > 0)
  assert.equal(await size(`/api/v4/projects/${app2}`), await expected(['grp/app2']))
  assert.equal(await size(`/api/v4/projects/${deep}`), await expected(['grp/sub/deep']))
  const all = await expected(['grp/app', 'grp/app/api', 'grp/app2', 'grp/sub/deep'])
  assert.ok(all < appBytes + (await size(`/api/v4/projects/${app2}`)) + (await size(`/api/v4/projects/${deep}`)), 'app2 shares app’s base')
  assert.equal(await size(`/api/v4/groups/${group.id}`), all)
  assert.equal(await size(`/api/v4/groups/${sub.id}`), await expected(['grp/sub/deep']))
  const stats = (await h.req('GET', '/api/v4/application/statistics', as)).json() as { container_registry_size: number }
  assert.equal(stats.container_registry_size, all)
  // The Prometheus gauge reads the same figure at scrape time.
  const gauge = await h.services.registry.metrics.registry.getSingleMetricAsString('wharf_registry_storage_bytes')
  assert.match(gauge, new RegExp(`^wharf_registry_storage_bytes ${all}$`, 'm'))

  // A deleted repository no longer counts, even before garbage collection removes its blobs.
  const repos = (await h.req('GET', `/api/v4/projects/${deep}/registry/repositories`, as)).json() as Array<{ id: number }>
  assert.equal((await h.req('DELETE', `/api/v4/projects/${deep}/registry/repositories/${repos[0]!.id}`, as)).statusCode, 202)
  assert.equal(await size(`/api/v4/projects/${deep}`), 0)
  assert.equal(await size(`/api/v4/groups/${group.id}`), await expected(['grp/app', 'grp/app/api', 'grp/app2']))
})

test('limits.namespaceStorageBytes: a namespace at its quota gets no new upload (OCI DENIED), before any byte is stored; others still push', async (t) => {
  const h = await apiHarness(t, { namespaceStorageBytes: 10 })
  const root = await h.root()
  for (const path of ['full', 'free']) {
    const g = (await h.req('POST', '/api/v4/groups', { token: root.token, body: { path, name: path } })).json() as { id: number }
    assert.equal(
      (await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app', namespace_id: g.id } })).statusCode,
      201,
    )
  }
  const upload = async (name: string, blob: Buffer) =>
    h.app.inject({
      method: 'POST',
      url: `/v2/${name}/blobs/uploads/?digest=sha256:${createHash('sha256').update(blob).digest('hex')}`,
      headers: { ...(await bearer(h, 'root', name, 'pull,push')), 'content-type': 'application/octet-stream' },
      payload: blob,
    })
  // Under the quota (0 of 10 bytes): the upload goes through, and takes the namespace to 12 bytes.
  assert.equal((await upload('full/app', Buffer.from('twelve bytes'))).statusCode, 201)
  const refused = await upload('full/app/api', Buffer.from('more'))
  assert.equal(refused.statusCode, 403, refused.body)
  const e = (refused.json() as { errors: Array<{ code: string; message: string }> }).errors[0]!
  assert.equal(e.code, 'DENIED')
  assert.match(e.message, /the storage quota of namespace 'full' is used up \(12 of 10 bytes\)/)
  // Nothing of the refused upload was stored, and an upload session is refused too.
  assert.equal((await h.db.selectFrom('blobs').select('digest').execute()).length, 1)
  const session = await h.app.inject({
    method: 'POST',
    url: '/v2/full/app/blobs/uploads/',
    headers: await bearer(h, 'root', 'full/app', 'pull,push'),
  })
  assert.equal(session.statusCode, 403, session.body)
  // Another namespace has its own quota.
  assert.equal((await upload('free/app', Buffer.from('more'))).statusCode, 201)
})
