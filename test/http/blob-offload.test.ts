// storage.filesystem.accelRedirect: an authorised blob GET that came through a reverse proxy which
// sends files itself (X-Sendfile-Type: X-Accel-Redirect) is answered with the file's internal URI and
// an empty body; anything else streams as before. nginx itself is in test/e2e/blob-offload.test.ts.
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { offloadUri } from '../../src/registry/accel-redirect.ts'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { buildMirrorApp } from '../../src/proxy/index.ts'
import { createServices } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'
import { openTestDb } from '../helpers/database.ts'
import { oneImageUpstream } from '../helpers/one-image-upstream.ts'
import { assertOciError, harness, pushBlob, randomBlob, type Harness } from './harness.ts'

const PREFIX = '/_wharf_blobs/'
const VIA_NGINX = { 'x-sendfile-type': 'X-Accel-Redirect' }

/** Bytes the registry counted out for blobs. */
async function blobBytesOut(h: Harness): Promise<number> {
  const v = (await h.services.metrics.registryBytes.get()).values
  return v.find((x) => x.labels.direction === 'out' && x.labels.kind === 'blob')?.value ?? 0
}

/** The file an internal URI names, as nginx's `alias <data>/storage/blobs/` resolves it. */
const fileOf = (storageDir: string, uri: string) => join(storageDir, 'blobs', uri.slice(PREFIX.length))

describe('offloadUri', () => {
  it('offloads only when the request says its proxy sends files with X-Accel-Redirect, and Wharf has a location', () => {
    assert.equal(offloadUri({ 'x-sendfile-type': 'X-Accel-Redirect' }, '/p/x'), '/p/x')
    assert.equal(offloadUri({ 'x-sendfile-type': ' x-accel-redirect ' }, '/p/x'), '/p/x')
    assert.equal(offloadUri({ 'x-sendfile-type': 'X-Accel-Redirect' }, undefined), undefined)
    assert.equal(offloadUri({}, '/p/x'), undefined)
    // Apache's and lighttpd's X-Sendfile name a file system path: not supported.
    assert.equal(offloadUri({ 'x-sendfile-type': 'X-Sendfile' }, '/p/x'), undefined)
  })
})

describe('blob GET with storage.filesystem.accelRedirect', () => {
  it('through the proxy: 200, the usual headers, X-Accel-Redirect to the blob file, an empty body, the bytes counted', async (t) => {
    const h = await harness(t, { accelRedirect: PREFIX })
    const data = randomBlob(100_000)
    const d = await pushBlob(h, 't/a', data)
    const before = await blobBytesOut(h)
    const res = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${d}`, headers: VIA_NGINX })
    assert.equal(res.statusCode, 200)
    assert.equal(res.rawPayload.length, 0)
    const uri = String(res.headers['x-accel-redirect'])
    assert.equal(uri, `${PREFIX}sha256/${d.slice(7, 9)}/${d.slice(7)}`)
    assert.ok((await readFile(fileOf(h.storageDir, uri))).equals(data), 'the URI names the blob file under <storage>/blobs/')
    assert.equal(res.headers['docker-content-digest'], d)
    assert.equal(res.headers.etag, `"${d}"`)
    assert.equal(res.headers['content-type'], 'application/octet-stream')
    assert.equal(res.headers['accept-ranges'], 'bytes')
    assert.equal(await blobBytesOut(h), before + data.length)
  })

  it('a valid Range is left to the proxy (counted as its length); an unsatisfiable one is still a 416 from Wharf', async (t) => {
    const h = await harness(t, { accelRedirect: PREFIX })
    const d = await pushBlob(h, 't/a', '0123456789')
    const before = await blobBytesOut(h)
    const ranged = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${d}`, headers: { ...VIA_NGINX, range: 'bytes=2-5' } })
    assert.equal(ranged.statusCode, 200)
    assert.equal(ranged.body, '')
    assert.ok(ranged.headers['x-accel-redirect'])
    assert.equal(ranged.headers['content-range'], undefined)
    assert.equal(await blobBytesOut(h), before + 4)
    const bad = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${d}`, headers: { ...VIA_NGINX, range: 'bytes=10-' } })
    assertOciError(bad, 416, OCI_ERRORS.RANGE_NOT_SATISFIABLE!.code)
    assert.equal(bad.headers['x-accel-redirect'], undefined)
  })

  it('without the request header (a node reached directly), for a HEAD, or without the setting: Wharf streams as before', async (t) => {
    const h = await harness(t, { accelRedirect: PREFIX })
    const d = await pushBlob(h, 't/a', '0123456789')
    const direct = await h.inject({ method: 'GET', url: `/v2/t/a/blobs/${d}` })
    assert.equal(direct.statusCode, 200)
    assert.equal(direct.body, '0123456789')
    assert.equal(direct.headers['x-accel-redirect'], undefined)
    const head = await h.inject({ method: 'HEAD', url: `/v2/t/a/blobs/${d}`, headers: VIA_NGINX })
    assert.equal(head.headers['content-length'], '10')
    assert.equal(head.headers['x-accel-redirect'], undefined)

    const off = await harness(t)
    const d2 = await pushBlob(off, 't/a', '0123456789')
    const res = await off.inject({ method: 'GET', url: `/v2/t/a/blobs/${d2}`, headers: VIA_NGINX })
    assert.equal(res.body, '0123456789')
    assert.equal(res.headers['x-accel-redirect'], undefined)
  })

  it('authorisation comes first: no token, another repository, or an unknown blob never get the internal URI', async (t) => {
    const h = await harness(t, { accelRedirect: PREFIX })
    const d = await pushBlob(h, 't/a', '0123456789')
    const anonymous = await h.anonymous({ method: 'GET', url: `/v2/t/a/blobs/${d}`, headers: VIA_NGINX })
    assert.equal(anonymous.statusCode, 401)
    assert.equal(anonymous.headers['x-accel-redirect'], undefined)
    const elsewhere = await h.inject({ method: 'GET', url: `/v2/t/b/blobs/${d}`, headers: VIA_NGINX })
    assertOciError(elsewhere, 404, 'BLOB_UNKNOWN')
    assert.equal(elsewhere.headers['x-accel-redirect'], undefined)
  })
})

it('the mirror: a cold blob streams while it is fetched, the cached one is offloaded', async (t) => {
  const up = await oneImageUpstream(t, { layerBytes: 2 << 20 })
  const h = await harness(t)
  const db = await openTestDb(join(h.root, 'mirror'))
  const services = await createServices(db, createFsDriver(join(h.root, 'mirror', 'storage')), {
    publicUrl: 'http://wharf.test',
    tokenTtlSeconds: 300,
    pageMax: 100,
    accelRedirect: PREFIX,
    dependencyProxy: {
      upstreams: [{ host: 'docker.io', url: up.url }],
      tagTtlSeconds: 60,
      upstreamTimeoutSeconds: 5,
      manifestBytes: 4 << 20,
    },
  })
  const mirror = await buildMirrorApp({ logger: pino({ level: 'silent' }), proxy: services.dependencyProxy })
  t.after(async () => {
    await mirror.close()
    await db.destroy()
  })
  const manifest = await mirror.inject({ method: 'GET', url: '/v2/library/alpine/manifests/3', headers: VIA_NGINX })
  assert.equal(manifest.statusCode, 200, manifest.body)
  const url = `/v2/library/alpine/blobs/${up.layer}`
  const cold = await mirror.inject({ method: 'GET', url, headers: VIA_NGINX })
  assert.equal(cold.statusCode, 200)
  assert.equal(cold.headers['x-accel-redirect'], undefined)
  assert.ok(cold.rawPayload.equals(up.layerBytes))
  // The cold GET ends once its client has the bytes; the copy is committed and linked just after.
  let warm = await mirror.inject({ method: 'GET', url, headers: VIA_NGINX })
  for (let i = 0; i < 100 && warm.headers['x-accel-redirect'] === undefined; i++) {
    assert.ok(warm.rawPayload.equals(up.layerBytes), 'until it is stored, the blob streams whole')
    await setTimeout(20)
    warm = await mirror.inject({ method: 'GET', url, headers: VIA_NGINX })
  }
  assert.equal(warm.statusCode, 200)
  assert.equal(warm.rawPayload.length, 0)
  const uri = String(warm.headers['x-accel-redirect'])
  assert.ok((await readFile(fileOf(join(h.root, 'mirror', 'storage'), uri))).equals(up.layerBytes))
  assert.equal(warm.headers['docker-content-digest'], up.layer)
  // Reached directly, the mirror streams the cached copy itself.
  const direct = await mirror.inject({ method: 'GET', url })
  assert.equal(direct.headers['x-accel-redirect'], undefined)
  assert.ok(direct.rawPayload.equals(up.layerBytes))
})
