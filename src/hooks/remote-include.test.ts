import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:https'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { issueServerCertificate } from '../tls/ca.ts'
import { RemoteIncludeFetcher } from './remote-include.ts'

// include:remote's fetcher against a real local HTTPS server (a certificate from Wharf's own CA):
// served files, HTTP errors, the size and time limits, and the local network refused unless allowed.

test('fetches over HTTPS within limits; refuses the local network by default, plain HTTP, and slow or big answers', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-remote-include-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const issued = await issueServerCertificate({ dir, names: ['127.0.0.1'] })
  const [cert, key, ca] = await Promise.all([
    readFile(issued.files.serverCert, 'utf8'),
    readFile(issued.files.serverKey, 'utf8'),
    readFile(issued.files.caCert, 'utf8'),
  ])
  const server = createServer({ cert, key }, (req, res) => {
    if (req.url === '/ci.yml') return res.end('remote:\n  script: [echo remote]\n')
    if (req.url === '/big.yml') return res.end('x'.repeat(4096))
    if (req.url === '/slow.yml') return setTimeout(() => res.end('late: {}\n'), 2_000)
    res.statusCode = 404
    res.end('no')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  server.on('connection', (s) => t.after(() => s.destroy()))
  const base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`

  const allowed = new RemoteIncludeFetcher({ policy: { allowLocalNetwork: true, allowedHosts: [] }, ca, maxBytes: 1024, timeoutMs: 500 })
  assert.deepEqual(await allowed.fetch(`${base}/ci.yml`), { content: 'remote:\n  script: [echo remote]\n' })
  assert.deepEqual(await allowed.fetch(`${base}/missing.yml`), {
    error: `Remote file \`${base}/missing.yml\` could not be fetched because of HTTP code \`404\` error!`,
  })
  assert.deepEqual(await allowed.fetch(`${base}/big.yml`), {
    error: `Remote file \`${base}/big.yml\` could not be fetched because of its size (over 1024 bytes)!`,
  })
  assert.deepEqual(await allowed.fetch(`${base}/slow.yml`), {
    error: `Remote file \`${base}/slow.yml\` could not be fetched because of a timeout error!`,
  })
  assert.deepEqual(await allowed.fetch(`http://127.0.0.1:1/ci.yml`), {
    error: 'Remote file `http://127.0.0.1:1/ci.yml` is not a valid HTTPS URL',
  })

  const guarded = new RemoteIncludeFetcher({ policy: { allowLocalNetwork: false, allowedHosts: [] }, ca })
  assert.deepEqual(await guarded.fetch(`${base}/ci.yml`), {
    error: `Remote file \`${base}/ci.yml\` could not be fetched: is blocked: Requests to the local network are not allowed`,
  })
  // Without the local CA, the server's certificate is not trusted.
  const untrusting = new RemoteIncludeFetcher({ policy: { allowLocalNetwork: true, allowedHosts: [] } })
  const r = await untrusting.fetch(`${base}/ci.yml`)
  assert.ok('error' in r && /could not be fetched because of an error/.test(r.error), JSON.stringify(r))
})
