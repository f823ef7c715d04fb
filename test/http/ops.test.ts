// Probes, the metrics endpoint's access rules, the UI shell's 404s under /-/, and what request log
// lines carry (route template, actor; probes at debug), against the in-process app.
import assert from 'node:assert/strict'
import { rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { PassThrough } from 'node:stream'
import { describe, it } from 'node:test'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { harness, imageManifest, pushBlob, pushManifest, PUBLIC_URL } from './harness.ts'

interface LogLine {
  level: number
  msg: string
  reqId?: string
  route?: string
  actor?: { kind: string; id?: number; username?: string }
  url?: string
  status?: number
}

function logCapture() {
  const stream = new PassThrough()
  const lines: LogLine[] = []
  let buf = ''
  stream.on('data', (c: Buffer) => {
    buf += c.toString('utf8')
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as LogLine)
      buf = buf.slice(i + 1)
    }
  })
  return { stream, lines }
}

/** The value of one sample line (`name{labels} value`) in an exposition, 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue
    const m = /^[^{ ]+(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m) continue
    const have = (m[1] ?? '').split(/,(?=[a-z_]+=")/)
    if (want.every((w) => have.includes(w))) return Number(m[2])
  }
  return 0
}

describe('probes', () => {
  it('liveness, readiness and health answer JSON; readiness names the dependency that fails', async (t) => {
    const h = await harness(t)
    for (const path of ['/-/liveness', '/-/readiness', '/-/health']) {
      const res = await h.anonymous({ method: 'GET', url: path })
      assert.equal(res.statusCode, 200, `${path}: ${res.body}`)
      assert.match(String(res.headers['content-type']), /^application\/json/)
      assert.equal(res.json().status, 'ok', path)
    }
    const ok = (await h.anonymous({ method: 'GET', url: '/-/readiness' })).json()
    assert.deepEqual(Object.keys(ok.checks).sort(), ['database', 'storage'])

    // Storage gone bad: its directory replaced by a file, so every stat fails (ENOTDIR).
    await rm(h.storageDir, { recursive: true, force: true })
    await writeFile(h.storageDir, 'not a directory')
    const bad = await h.anonymous({ method: 'GET', url: '/-/readiness' })
    assert.equal(bad.statusCode, 503, bad.body)
    assert.deepEqual(bad.json().failed, ['storage'])
    assert.equal(bad.json().checks.storage.status, 'failed')
    assert.equal(bad.json().checks.storage.error, 'ENOTDIR')
    assert.equal(bad.json().checks.database.status, 'ok')
    // Liveness checks nothing but the process.
    assert.equal((await h.anonymous({ method: 'GET', url: '/-/liveness' })).statusCode, 200)
  })

  it('readiness fails with "shutdown" once draining, while liveness stays up', async (t) => {
    const h = await harness(t)
    h.services.probes.drain()
    const res = await h.anonymous({ method: 'GET', url: '/-/readiness' })
    assert.equal(res.statusCode, 503)
    assert.deepEqual(res.json().failed, ['shutdown'])
    assert.equal((await h.anonymous({ method: 'GET', url: '/-/liveness' })).statusCode, 200)
    assert.equal((await h.anonymous({ method: 'GET', url: '/-/health' })).json().status, 'shutting_down')
  })

  it('readiness reports the database when it no longer answers', async (t) => {
    const h = await harness(t)
    await h.db.destroy()
    const res = await h.anonymous({ method: 'GET', url: '/-/readiness' })
    assert.equal(res.statusCode, 503)
    assert.deepEqual(res.json().failed, ['database'])
  })
})

describe('the UI shell under /-/', () => {
  it("serves the app's HTML only for its own pages; any other /-/ path is a 404", async (t) => {
    const h = await harness(t)
    for (const path of [
      '/',
      '/-/sign_in',
      '/-/projects/12',
      '/-/projects/12/pipelines/3',
      '/-/groups/a/b.c',
      '/-/user/tokens',
      '/-/projects/new?x=1',
    ]) {
      const res = await h.anonymous({ method: 'GET', url: path })
      assert.equal(res.statusCode, 200, path)
      assert.match(String(res.headers['content-type']), /^text\/html/, path)
    }
    for (const path of ['/-/nonsense', '/-/healthz', '/-/metrics/x', '/-/projects/abc', '/-/projects/1/unknown', '/-/static', '/-/']) {
      const res = await h.anonymous({ method: 'GET', url: path })
      assert.equal(res.statusCode, 404, `${path}: ${res.body.slice(0, 100)}`)
      assert.match(String(res.headers['content-type']), /^application\/json/, path)
    }
    // The app's own resources are still there.
    assert.equal((await h.anonymous({ method: 'GET', url: '/-/static/pages.js' })).statusCode, 200)
    assert.equal((await h.anonymous({ method: 'GET', url: '/-/static/app.js' })).statusCode, 200)
  })
})

describe('metrics endpoint', () => {
  it('is not served on the public listener without metrics.token', async (t) => {
    const h = await harness(t)
    const res = await h.anonymous({ method: 'GET', url: '/-/metrics' })
    assert.equal(res.statusCode, 404)
    assert.match(res.json().detail, /metrics\.token/)
  })

  it('with metrics.token: 401 without it or with a wrong one, the exposition with it; registry requests counted by template', async (t) => {
    const h = await harness(t)
    const token = 'scrape-token-0123456789'
    const app = await buildApp({
      logger: pino({ level: 'silent' }),
      ...h.services,
      metricsToken: token,
      publicUrl: PUBLIC_URL,
      limits: { manifestBytes: 4 << 20 },
    })
    t.after(() => app.close())
    assert.equal((await app.inject({ method: 'GET', url: '/-/metrics' })).statusCode, 401)
    assert.equal(
      (await app.inject({ method: 'GET', url: '/-/metrics', headers: { authorization: 'Bearer wrong-token-0123456789' } })).statusCode,
      401,
    )
    const scrape = async () => {
      const res = await app.inject({ method: 'GET', url: '/-/metrics', headers: { authorization: `Bearer ${token}` } })
      assert.equal(res.statusCode, 200)
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/)
      return res.body
    }
    // h.inject drives h.app; both apps share the services' Metrics, so the scrape sees its requests.
    const m = await imageManifest(h, 'ops/metrics')
    await pushManifest(h, 'ops/metrics', 'v1', m)
    const before = await scrape()
    for (let i = 0; i < 3; i++) assert.equal((await h.inject({ method: 'GET', url: '/v2/ops/metrics/manifests/v1' })).statusCode, 200)
    const after = await scrape()
    const labels = { route: '/v2/:name/manifests/:reference', method: 'GET', status: '200' }
    assert.equal(sample(after, 'wharf_http_requests_total', labels) - sample(before, 'wharf_http_requests_total', labels), 3)
    const out = { direction: 'out', kind: 'manifest' }
    assert.equal(sample(after, 'wharf_registry_bytes_total', out) - sample(before, 'wharf_registry_bytes_total', out), 3 * m.body.length)
    // A blob download bypasses Fastify's reply (the socket is written directly) and is still counted.
    const layer = m.body.toString().match(/"digest":"(sha256:[0-9a-f]{64})","size":(\d+)\}\]/)!
    assert.equal((await h.inject({ method: 'GET', url: `/v2/ops/metrics/blobs/${layer[1]}` })).statusCode, 200)
    const last = await scrape()
    assert.equal(sample(last, 'wharf_http_requests_total', { route: '/v2/:name/blobs/:digest', method: 'GET', status: '200' }), 1)
    assert.equal(sample(last, 'wharf_registry_bytes_total', { direction: 'out', kind: 'blob' }), Number(layer[2]))
    // No series carries a repository name.
    assert.ok(!last.includes('ops/metrics'), 'a raw URL leaked into a label')
  })
})

describe('request logs', () => {
  it('probes log their request line at debug, other requests at info, with the route template', async (t) => {
    const { stream, lines } = logCapture()
    const h = await harness(t, { logStream: stream })
    await h.anonymous({ method: 'GET', url: '/-/liveness' })
    await h.anonymous({ method: 'GET', url: '/-/readiness' })
    await h.anonymous({ method: 'GET', url: '/-/nonsense' })
    await new Promise((r) => setImmediate(r))
    const request = (url: string) => lines.find((l) => l.msg === 'request' && l.url === url)
    assert.equal(request('/-/liveness')?.level, 20)
    assert.equal(request('/-/readiness')?.level, 20)
    assert.equal(request('/-/nonsense')?.level, 30)
    assert.equal(request('/-/nonsense')?.route, '/-/*')
  })

  it('an error line carries the request id, the route template and the actor', async (t) => {
    const { stream, lines } = logCapture()
    const h = await harness(t, { logStream: stream })
    const digest = await pushBlob(h, 'ops/logs', Buffer.from('some bytes'))
    // The blob is recorded but its storage fails (not a missing file): a server-side error.
    await rm(join(h.storageDir, 'blobs'), { recursive: true, force: true })
    await writeFile(join(h.storageDir, 'blobs'), 'not a directory')
    const res = await h.inject({ method: 'GET', url: `/v2/ops/logs/blobs/${digest}` })
    assert.equal(res.statusCode, 500)
    await new Promise((r) => setImmediate(r))
    const errors = lines.filter((l) => l.level >= 50)
    assert.ok(errors.length > 0, 'an error was logged')
    for (const e of errors) {
      assert.ok(e.reqId, `reqId in ${JSON.stringify(e)}`)
      assert.equal(e.route, '/v2/:name/blobs/:digest')
      assert.equal(e.actor?.kind, 'user')
      assert.equal(e.actor?.username, 'root')
      assert.equal(typeof e.actor?.id, 'number')
    }
  })

  it('API requests carry the authenticated user as actor, anonymous ones say so', async (t) => {
    const { stream, lines } = logCapture()
    const h = await harness(t, { logStream: stream })
    const grant = await h.anonymous({
      method: 'POST',
      url: '/oauth/token',
      payload: { grant_type: 'password', username: 'root', password: h.rootPassword },
    })
    assert.equal(grant.statusCode, 200, grant.body)
    const me = await h.anonymous({ method: 'GET', url: '/api/v4/user', headers: { authorization: `Bearer ${grant.json().access_token}` } })
    assert.equal(me.statusCode, 200)
    assert.equal((await h.anonymous({ method: 'GET', url: '/api/v4/user?anon=1' })).statusCode, 401)
    await new Promise((r) => setImmediate(r))
    const user = lines.find((l) => l.msg === 'request' && l.url === '/api/v4/user')
    assert.equal(user?.route, '/api/v4/user')
    assert.deepEqual(user?.actor, { kind: 'user', id: me.json().id, username: 'root' })
    const anon = lines.find((l) => l.msg === 'request' && l.url === '/api/v4/user?anon=1')
    assert.deepEqual(anon?.actor, { kind: 'anonymous' })
  })
})
