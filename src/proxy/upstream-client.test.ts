import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { describe, it, type TestContext } from 'node:test'
import { WharfError } from '../core/errors.ts'
import { parseChallenge, redirectAllowed, UpstreamClient } from './upstream-client.ts'

/** A local HTTP server standing in for a registry (a process boundary: no Wharf module is faked). */
async function server(
  t: TestContext,
  handler: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<{ url: string; port: number; seen: IncomingMessage[] }> {
  const seen: IncomingMessage[] = []
  const s: Server = createServer((req, res) => {
    seen.push(req)
    handler(req, res)
  })
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))
  t.after(
    () =>
      new Promise<void>((r) => {
        s.closeAllConnections()
        s.close(() => r())
      }),
  )
  const port = (s.address() as AddressInfo).port
  return { url: `http://127.0.0.1:${port}`, port, seen }
}

async function rejection(p: Promise<unknown>): Promise<WharfError> {
  try {
    await p
  } catch (e) {
    assert.ok(e instanceof WharfError, String(e))
    return e
  }
  assert.fail('expected a rejection')
}

describe('parseChallenge', () => {
  it('reads Bearer and Basic challenges', () => {
    assert.deepEqual(
      parseChallenge('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"'),
      {
        scheme: 'bearer',
        params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/alpine:pull' },
      },
    )
    assert.deepEqual(parseChallenge('Basic realm="Registry"'), { scheme: 'basic', params: { realm: 'Registry' } })
    assert.equal(parseChallenge('Negotiate abc'), undefined)
    assert.equal(parseChallenge(undefined), undefined)
  })
})

describe('UpstreamClient', () => {
  it('answers a Bearer challenge with a token fetched with the configured credentials, then caches it per scope', async (t) => {
    let tokens = 0
    const up = await server(t, (req, res) => {
      if (req.url!.startsWith('/token')) {
        tokens++
        assert.equal(req.headers.authorization, `Basic ${Buffer.from('bot:s3cret').toString('base64')}`)
        const q = new URL(req.url!, 'http://x').searchParams
        assert.equal(q.get('service'), 'hub')
        assert.equal(q.get('scope'), 'repository:library/alpine:pull')
        res.end(JSON.stringify({ token: 'T1', expires_in: 300 }))
        return
      }
      if (req.headers.authorization !== 'Bearer T1') {
        res.writeHead(401, { 'www-authenticate': `Bearer realm="http://127.0.0.1:${req.socket.localPort}/token",service="hub"` }).end()
        return
      }
      res.writeHead(200, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '97;w=21600' }).end('ok')
    })
    const c = new UpstreamClient({ host: 'docker.io', url: up.url, username: 'bot', password: 's3cret' }, { timeoutMs: 2000 })
    for (let i = 0; i < 3; i++) {
      const r = await c.request('GET', '/v2/library/alpine/manifests/3', { scope: 'repository:library/alpine:pull' })
      assert.equal(r.status, 200)
      assert.equal((await c.readBody(r, 100)).toString(), 'ok')
    }
    assert.equal(tokens, 1)
    assert.deepEqual({ ...c.rateLimit, observedAt: undefined }, { limit: 100, remaining: 97, windowSeconds: 21600, observedAt: undefined })
  })

  it('429: TOOMANYREQUESTS saying how many pulls are left and when to retry', async (t) => {
    const up = await server(t, (_req, res) =>
      res.writeHead(429, { 'ratelimit-limit': '100;w=21600', 'ratelimit-remaining': '0;w=21600', 'retry-after': '120' }).end(),
    )
    const c = new UpstreamClient({ host: 'docker.io', url: up.url }, { timeoutMs: 2000 })
    const e = await rejection(c.request('GET', '/v2/library/alpine/manifests/3', { scope: 's' }))
    assert.equal(e.code, 'TOOMANYREQUESTS')
    assert.equal(e.message, 'docker.io rate limit: 0 of 100 pulls left in 21600 s; retry after 120 s')
    assert.equal(e.detail.retryAfter, 120)
  })

  it('5xx, refused connections and silence are UPSTREAM_UNAVAILABLE, promptly, never with credentials in the message', async (t) => {
    const up = await server(t, (req, res) => {
      if (req.url === '/v2/slow') return // never answers
      res.writeHead(502).end()
    })
    const c = new UpstreamClient({ host: 'quay.io', url: up.url, username: 'bot', password: 'hunter2-secret' }, { timeoutMs: 300 })
    const bad = await rejection(c.request('GET', '/v2/x', { scope: 's' }))
    assert.equal(bad.code, 'UPSTREAM_UNAVAILABLE')
    assert.equal(bad.message, 'quay.io is unavailable: answered 502')
    const started = Date.now()
    const slow = await rejection(c.request('GET', '/v2/slow', { scope: 's' }))
    assert.equal(slow.message, 'quay.io is unavailable: no answer within 0.3 s')
    assert.ok(Date.now() - started < 2000)
    const gone = new UpstreamClient(
      { host: 'gone.example', url: 'http://127.0.0.1:1', username: 'bot', password: 'hunter2-secret' },
      { timeoutMs: 1000 },
    )
    const refused = await rejection(gone.request('GET', '/v2/', { scope: 's' }))
    assert.match(refused.message, /^gone\.example is unavailable: ECONNREFUSED/)
    for (const e of [bad, slow, refused]) assert.ok(!JSON.stringify({ m: e.message, d: e.detail }).includes('hunter2'))
  })

  it('follows blob redirects to another host without the registry credentials; refuses redirects for manifests', async (t) => {
    const cdn = await server(t, (req, res) => {
      res.end(req.headers.authorization ? 'leaked' : 'blob-bytes')
    })
    const reg = await server(t, (_req, res) => {
      res.writeHead(307, { location: `http://localhost:${cdn.port}/blob?sig=1` }).end()
    })
    const c = new UpstreamClient({ host: 'docker.io', url: reg.url, token: 'static-token' }, { timeoutMs: 2000 })
    const blob = await c.request('GET', '/v2/library/alpine/blobs/sha256:abc', { scope: 's', followRedirects: true })
    assert.equal((await c.readBody(blob, 100)).toString(), 'blob-bytes')
    assert.equal(reg.seen[0]!.headers.authorization, 'Bearer static-token')
    const manifest = await rejection(c.request('GET', '/v2/library/alpine/manifests/3', { scope: 's' }))
    assert.match(manifest.message, /redirected a GET it should have answered/)
  })

  it("frees each socket read of a body once Node's parser copied it out, and the body arrives intact", async (t) => {
    const blob = randomBytes(4 << 20)
    const up = await server(t, (_req, res) => res.writeHead(200, { 'content-length': blob.length }).end(blob))
    const c = new UpstreamClient({ host: 'docker.io', url: up.url }, { timeoutMs: 2000 })
    const res = await c.request('GET', '/v2/library/alpine/blobs/sha256:abc', { scope: 's', followRedirects: true })
    // Registered after the client's own listener: sees each read once the client is through with it.
    const reads: Buffer[] = []
    const socket = (res.body as IncomingMessage).socket
    socket.on('data', (d: Buffer) => reads.push(d))
    const body = await c.readBody(res, blob.length)
    assert.ok(body.equals(blob))
    assert.ok(reads.length > 10, `${reads.length} reads`)
    // All but the last (the one that completed the response is left alone) were detached: their memory is gone.
    assert.deepEqual(
      reads.slice(0, -1).filter((d) => !(d.buffer as ArrayBuffer).detached),
      [],
    )
    // The kept-alive socket's next response is parsed as usual.
    const again = await c.request('GET', '/v2/library/alpine/blobs/sha256:abc', { scope: 's', followRedirects: true })
    assert.ok((await c.readBody(again, blob.length)).equals(blob))
  })

  it('never follows a redirect from HTTPS down to HTTP, nor to other schemes', () => {
    const https = new URL('https://registry-1.docker.io/v2/x')
    const http = new URL('http://127.0.0.1:5000/v2/x')
    assert.equal(redirectAllowed(https, new URL('https://cdn.example/blob')), true)
    assert.equal(redirectAllowed(https, new URL('http://cdn.example/blob')), false)
    assert.equal(redirectAllowed(http, new URL('http://cdn.example/blob')), true)
    assert.equal(redirectAllowed(http, new URL('file:///etc/passwd')), false)
  })
})
