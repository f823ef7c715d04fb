// Operating a real `wharf serve`: a Prometheus scrape after registry and CI traffic checked by
// promtool, and graceful shutdown (SIGTERM mid-push: in-flight requests finish within the grace
// period, runner long polls end at once, a cut upload resumes after a restart on the same data
// directory and its blob is intact; a second signal exits at once).
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from 'node:fs/promises'
import { request, type ClientRequest } from 'node:http'
import { tmpdir } from 'node:os'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { testImages } from '../helpers/images.ts'
import { http, MANIFEST_ACCEPT } from '../helpers/registry.ts'
import { describeResult, run } from '../helpers/run.ts'
import { CiProject, createRunner } from '../helpers/runner.ts'
import { registryToken } from '../helpers/registry.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'

const METRICS_TOKEN = 'e2e-metrics-token-0123456789'
const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

interface Answer {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Buffer
}

/** One request over its own connection; `body` is sent whole (or nothing). */
function send(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers: { connection: 'close', ...headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A PATCH whose body the test writes piece by piece (chunked), to keep it in flight. */
function streamingPatch(url: string, token: string): { req: ClientRequest; answer: Promise<Answer> } {
  let req!: ClientRequest
  const answer = new Promise<Answer>((resolve, reject) => {
    req = request(
      url,
      { method: 'PATCH', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', connection: 'close' } },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
  })
  return { req, answer }
}

function waitExit(pid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  return new Promise((resolve) => {
    const tick = () => {
      try {
        process.kill(pid, 0)
      } catch {
        return resolve(true)
      }
      if (Date.now() > deadline) return resolve(false)
      setTimeout(tick, 50)
    }
    tick()
  })
}

async function pushToken(wharf: Wharf, repo: string): Promise<string> {
  return registryToken(
    { realm: `${wharf.url}/jwt/auth`, service: 'container_registry', scope: `repository:${repo}:pull,push` },
    { username: 'root', password: wharf.rootPassword },
  )
}

async function startUpload(wharf: Wharf, repo: string, token: string): Promise<string> {
  const r = await send('POST', `${wharf.url}/v2/${repo}/blobs/uploads/`, { authorization: `Bearer ${token}` })
  assert.equal(r.status, 202, r.body.toString())
  return new URL(String(r.headers.location), wharf.url).toString()
}

/** Bytes the server holds for an upload session (GET's Range), the offset to resume from. */
async function uploadOffset(location: string, token: string): Promise<number> {
  const r = await send('GET', location, { authorization: `Bearer ${token}` })
  assert.equal(r.status, 204, r.body.toString())
  const m = /^0-(\d+)$/.exec(String(r.headers.range))
  assert.ok(m, `Range ${r.headers.range}`)
  return Number(m[1]) + 1
}

/** `name{labels} value` → value (labels matched as a subset), 0 when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`)
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line)
    if (!m || m[1] !== name) continue
    const have = (m[2] ?? '').split(/,(?=[a-zA-Z_]+=")/)
    if (want.every((w) => have.includes(w))) return Number(m[3])
  }
  return 0
}

function promtool(text: string): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    p.stdout.on('data', (b: Buffer) => (output += b.toString()))
    p.stderr.on('data', (b: Buffer) => (output += b.toString()))
    p.on('error', reject)
    p.on('close', (code) => resolve({ code, output }))
    p.stdin.end(text)
  })
}

describe('metrics scrape of a running server', { timeout: 180_000 }, () => {
  let wharf: Wharf
  let metricsPort: number

  before(async () => {
    metricsPort = await freePort()
    wharf = await startWharf({ env: { WHARF_METRICS_TOKEN: METRICS_TOKEN }, extraArgs: ['--metrics-listen', `127.0.0.1:${metricsPort}`] })
  })
  after(() => wharf?.stop())

  const scrape = async (base: string, path = '/-/metrics') => {
    const r = await send('GET', `${base}${path}`, { authorization: `Bearer ${METRICS_TOKEN}` })
    assert.equal(r.status, 200, r.body.toString())
    return r.body.toString()
  }

  it('after registry and CI traffic, promtool accepts the exposition and the families hold the traffic', async () => {
    // CI: a pushed pipeline with two jobs, a runner that takes one of them.
    const ci = await CiProject.create(wharf, 'ops/ci')
    await ci.push({ '.gitlab-ci.yml': 'a:\n  script: [echo a]\nb:\n  script: [echo b]\n' })
    const runner = await createRunner(wharf)
    const claimed = await send(
      'POST',
      `${wharf.url}/api/v4/jobs/request`,
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify({ token: runner.token })),
    )
    assert.equal(claimed.status, 201, claimed.body.toString())

    // Registry: a blob and a manifest pushed, then the manifest pulled N times.
    await wharf.createProject('ops/img')
    const token = await pushToken(wharf, 'ops/img')
    const auth = { authorization: `Bearer ${token}` }
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
    const put = await send(
      'POST',
      `${wharf.url}/v2/ops/img/blobs/uploads/?digest=${sha256(config)}`,
      { ...auth, 'content-type': 'application/octet-stream' },
      config,
    )
    assert.equal(put.status, 201, put.body.toString())
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [],
      }),
    )
    const mput = await send(
      'PUT',
      `${wharf.url}/v2/ops/img/manifests/v1`,
      { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      manifest,
    )
    assert.equal(mput.status, 201, mput.body.toString())

    const before = await scrape(wharf.url)
    const N = 7
    for (let i = 0; i < N; i++)
      assert.equal(
        (await send('GET', `${wharf.url}/v2/ops/img/manifests/v1`, { ...auth, accept: 'application/vnd.oci.image.manifest.v1+json' }))
          .status,
        200,
      )
    const text = await scrape(wharf.url)

    const checked = await promtool(text)
    assert.equal(checked.code, 0, `promtool check metrics:\n${checked.output}`)

    const manifests = { route: '/v2/:name/manifests/:reference', method: 'GET', status: '200' }
    assert.equal(sample(text, 'wharf_http_requests_total', manifests) - sample(before, 'wharf_http_requests_total', manifests), N)
    assert.equal(
      sample(text, 'wharf_http_request_duration_seconds_count', { route: '/v2/:name/manifests/:reference', method: 'GET' }) -
        sample(before, 'wharf_http_request_duration_seconds_count', { route: '/v2/:name/manifests/:reference', method: 'GET' }),
      N,
    )
    assert.equal(
      sample(text, 'wharf_registry_bytes_total', { direction: 'out', kind: 'manifest' }) -
        sample(before, 'wharf_registry_bytes_total', { direction: 'out', kind: 'manifest' }),
      N * manifest.length,
    )
    assert.equal(sample(text, 'wharf_registry_bytes_total', { direction: 'in', kind: 'blob' }), config.length)
    assert.equal(sample(text, 'wharf_registry_bytes_total', { direction: 'in', kind: 'manifest' }), manifest.length)
    assert.equal(sample(text, 'wharf_registry_uploads_in_flight'), 0)
    // The push went through the job request's template, not its raw URL.
    assert.equal(sample(text, 'wharf_http_requests_total', { route: '/api/v4/jobs/request', method: 'POST', status: '201' }), 1)
    assert.ok(sample(text, 'wharf_http_requests_total', { route: '/:project.git/git-receive-pack', method: 'POST', status: '200' }) >= 1)
    // CI gauges read at scrape time: one job running (claimed), one pending, one runner online.
    assert.equal(sample(text, 'wharf_ci_jobs', { status: 'running' }), 1)
    assert.equal(sample(text, 'wharf_ci_jobs', { status: 'pending' }), 1)
    assert.equal(sample(text, 'wharf_ci_runners_online'), 1)
    assert.ok(sample(text, 'wharf_ci_oldest_pending_job_seconds') > 0)
    // The database and storage are timed at their entry points; process metrics are there.
    assert.ok(sample(text, 'wharf_db_query_duration_seconds_count', { operation: 'select', outcome: 'ok' }) > 0)
    assert.ok(sample(text, 'wharf_db_query_duration_seconds_count', { operation: 'insert', outcome: 'ok' }) > 0)
    assert.ok(sample(text, 'wharf_storage_operation_duration_seconds_count', { operation: 'commit', outcome: 'ok' }) >= 1)
    assert.ok(sample(text, 'wharf_storage_operation_duration_seconds_count', { operation: 'appender', outcome: 'ok' }) >= 1)
    assert.ok(sample(text, 'wharf_nodejs_eventloop_lag_seconds') > 0)
    assert.ok(sample(text, 'wharf_process_resident_memory_bytes') > 0)
    assert.ok(!/ops\/img|ops\/ci/.test(text), 'a repository name leaked into a label')
  })

  it('the separate metrics listener serves the same exposition and wants the token too', async () => {
    const base = `http://127.0.0.1:${metricsPort}`
    assert.equal((await send('GET', `${base}/metrics`)).status, 401)
    const text = await scrape(base, '/metrics')
    assert.ok(sample(text, 'wharf_http_requests_total', { route: '/-/metrics', method: 'GET', status: '200' }) >= 1)
    assert.equal((await promtool(text)).code, 0)
    assert.equal((await send('GET', `${base}/anything`, { authorization: `Bearer ${METRICS_TOKEN}` })).status, 404)
    // The public listener refuses a scrape without the token.
    assert.equal((await send('GET', `${wharf.url}/-/metrics`)).status, 401)
  })
})

describe('dependency proxy metrics', { timeout: 180_000 }, () => {
  const TTL_SECONDS = 2
  let hub: DockerHub
  let wharf: Wharf
  let mirror: string
  let amd64Manifest: string

  before(async () => {
    const images = await testImages()
    amd64Manifest = images.digests.amd64Manifest
    hub = await startDockerHub()
    await hub.seed(images.oci('amd64'), 'library/alpine:3')
    await hub.seed(images.oci('arm64'), 'library/rare:1')
    mirror = `127.0.0.1:${await freePort()}`
    wharf = await startWharf({
      env: {
        WHARF_METRICS_TOKEN: METRICS_TOKEN,
        WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([{ host: 'docker.io', url: hub.url }]),
        WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN: mirror,
        WHARF_DEPENDENCY_PROXY_TAG_TTL_SECONDS: String(TTL_SECONDS),
        WHARF_DEPENDENCY_PROXY_UPSTREAM_TIMEOUT_SECONDS: '5',
      },
    })
    await wharf.createProject('metrics/app')
  })
  after(async () => {
    await wharf?.stop()
    await hub?.close()
  })

  const scrape = async () => {
    const r = await send('GET', `${wharf.url}/-/metrics`, { authorization: `Bearer ${METRICS_TOKEN}` })
    assert.equal(r.status, 200, r.body.toString())
    return r.body.toString()
  }
  const pull = async (dest: string) => {
    const r = await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `root:${wharf.rootPassword}`,
        `docker://${wharf.host}/metrics/dependency_proxy/containers/alpine:3`,
        `oci:${dest}:x`,
      ],
      { timeoutMs: 120_000 },
    )
    assert.equal(r.code, 0, `skopeo copy:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  }
  const groupManifest = (image: string, ref: string) =>
    http('GET', `${wharf.url}/v2/metrics/dependency_proxy/containers/${image}/manifests/${ref}`, { headers: { accept: MANIFEST_ACCEPT } })

  it('hits, misses, coalesced waits, stale serves, upstream errors, bytes and rate limits move by exactly what the pulls cause; promtool accepts them', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-proxy-metrics-'))
    try {
      // What the image is: its manifest and blob sizes, read from the stand-in's backing registry.
      const m = await fetch(`http://${hub.backend}/v2/library/alpine/manifests/3`, {
        headers: { accept: 'application/vnd.oci.image.manifest.v1+json' },
      })
      const manifest = Buffer.from(await m.arrayBuffer())
      const parsed = JSON.parse(manifest.toString()) as { config: { size: number }; layers: Array<{ size: number }> }
      const blobs = 1 + parsed.layers.length
      const blobBytes = parsed.config.size + parsed.layers.reduce((n, l) => n + l.size, 0)
      const group = (kind: string) => ({ upstream: 'docker.io', kind, way: 'group' })
      const bytes = (kind: string, source: string) => ({ upstream: 'docker.io', kind, source })

      // Cold: everything fetched once from the upstream.
      await pull(path.join(dir, 'cold'))
      let text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_misses_total', group('manifest')), 1, text)
      assert.equal(sample(text, 'wharf_dependency_proxy_misses_total', group('blob')), blobs)
      assert.equal(sample(text, 'wharf_dependency_proxy_hits_total', group('manifest')), 0)
      assert.equal(sample(text, 'wharf_dependency_proxy_hits_total', group('blob')), 0)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('manifest', 'upstream')), manifest.length)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('blob', 'upstream')), blobBytes)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('blob', 'cache')), 0)
      // The stand-in's figures (1,000,000 per window, one manifest GET taken), as the upstream client recorded them.
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_ratelimit_limit', { upstream: 'docker.io' }), 1_000_000)
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_ratelimit_remaining', { upstream: 'docker.io' }), 999_999)

      // Warm: the same pull served from the cache (revalidated with a free HEAD if the TTL ran out).
      await pull(path.join(dir, 'warm'))
      text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_hits_total', group('manifest')), 1)
      assert.equal(sample(text, 'wharf_dependency_proxy_hits_total', group('blob')), blobs)
      assert.equal(sample(text, 'wharf_dependency_proxy_misses_total', group('blob')), blobs)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('manifest', 'cache')), manifest.length)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('blob', 'cache')), blobBytes)
      assert.equal(sample(text, 'wharf_dependency_proxy_bytes_total', bytes('blob', 'upstream')), blobBytes, 'nothing fetched again')

      // Ten requests at once for an uncached manifest: one fetch; the others joined it or found its copy.
      hub.resetCounts()
      const N = 10
      const all = await Promise.all(Array.from({ length: N }, () => groupManifest('rare', '1')))
      for (const r of all) assert.equal(r.status, 200, r.describe)
      assert.equal(hub.count('GET', '/v2/library/rare/manifests/1'), 1)
      text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_misses_total', group('manifest')), 2)
      assert.equal(
        sample(text, 'wharf_dependency_proxy_coalesced_total', group('manifest')) +
          sample(text, 'wharf_dependency_proxy_hits_total', group('manifest')),
        1 + N - 1,
      )

      // The mirror asks for the same manifest by digest: copied from the group's cache, a hit on the mirror way.
      const viaMirror = await http('GET', `http://${mirror}/v2/library/alpine/manifests/${amd64Manifest}`, {
        headers: { accept: MANIFEST_ACCEPT },
      })
      assert.equal(viaMirror.status, 200, viaMirror.describe)
      text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_hits_total', { upstream: 'docker.io', kind: 'manifest', way: 'mirror' }), 1)

      // Out of pulls: one rate-limited upstream answer, and the gauges say so.
      hub.setLimit(0)
      const limited = await groupManifest('other', '1')
      assert.equal(limited.status, 429, limited.describe)
      hub.setLimit(1_000_000)
      text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_errors_total', { upstream: 'docker.io', reason: 'rate_limited' }), 1)
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_ratelimit_limit', { upstream: 'docker.io' }), 0)
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_ratelimit_remaining', { upstream: 'docker.io' }), 0)

      // Upstream gone and the tag past its TTL: one unavailable error, one stale serve.
      await hub.stop()
      try {
        await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 200))
        const stale = await groupManifest('alpine', '3')
        assert.equal(stale.status, 200, stale.describe)
        assert.ok(stale.headers.get('warning'))
      } finally {
        await hub.start()
      }
      text = await scrape()
      assert.equal(sample(text, 'wharf_dependency_proxy_stale_served_total', { upstream: 'docker.io', way: 'group' }), 1)
      assert.equal(sample(text, 'wharf_dependency_proxy_upstream_errors_total', { upstream: 'docker.io', reason: 'unavailable' }), 1)

      const checked = await promtool(text)
      assert.equal(checked.code, 0, `promtool check metrics:\n${checked.output}`)
      assert.ok(
        !/alpine|rare|metrics\/app/.test(
          text
            .split('\n')
            .filter((l) => l.startsWith('wharf_dependency_proxy'))
            .join('\n'),
        ),
        'an image name leaked into a label',
      )
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('graceful shutdown', { timeout: 180_000 }, () => {
  let wharf: Wharf

  before(async () => {
    wharf = await startWharf({ extraArgs: ['--shutdown-grace-seconds', '3'] })
  })
  after(() => wharf?.stop())

  it('SIGTERM mid-push: the in-flight chunk finishes, the long poll ends at once, the cut upload resumes after a restart and the blob is intact', async () => {
    await wharf.createProject('ops/push')
    const token = await pushToken(wharf, 'ops/push')
    const runner = await createRunner(wharf)

    // Upload A: one chunk stored, a second one stalls mid-body (it is still stalled when the grace period ends).
    const blobA = randomBytes(3 << 20)
    const locA = await startUpload(wharf, 'ops/push', token)
    const first = await send(
      'PATCH',
      locA,
      { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
      blobA.subarray(0, 1 << 20),
    )
    assert.equal(first.status, 202)
    const stalled = streamingPatch(locA, token)
    stalled.req.write(blobA.subarray(1 << 20, (1 << 20) + (256 << 10)))
    stalled.answer.catch(() => {})

    // Upload B: a chunk in flight that the client completes during the grace period.
    const blobB = randomBytes(2 << 20)
    const locB = await startUpload(wharf, 'ops/push', token)
    const finishing = streamingPatch(locB, token)
    finishing.req.write(blobB.subarray(0, 1 << 20))

    // A runner's long poll (held up to 30 s when no job is pending).
    const poll = send(
      'POST',
      `${wharf.url}/api/v4/jobs/request`,
      { 'content-type': 'application/json' },
      Buffer.from(JSON.stringify({ token: runner.token })),
    )
    await new Promise((r) => setTimeout(r, 500))

    const pid = wharf.pid
    const signalled = Date.now()
    process.kill(pid, 'SIGTERM')

    const polled = await poll
    assert.equal(polled.status, 204)
    assert.ok(Date.now() - signalled < 2000, `the long poll took ${Date.now() - signalled} ms to end`)

    await new Promise((r) => setTimeout(r, 500))
    finishing.req.end(blobB.subarray(1 << 20))
    const finished = await finishing.answer
    assert.equal(finished.status, 202, finished.body.toString())
    assert.equal(finished.headers.range, `0-${blobB.length - 1}`)

    // The stalled chunk is cut at the deadline and the process exits cleanly.
    await assert.rejects(stalled.answer)
    assert.ok(await waitExit(pid, 10_000), 'the server exited')
    const log = await wharf.logTail(40)
    assert.match(log, /shutting down: finishing in-flight requests/)
    assert.match(log, /shutdown grace period over/)
    // The database was closed cleanly: SQLite checkpointed and removed its write-ahead log.
    await assert.rejects(stat(path.join(wharf.dataDir, 'wharf.db-wal')), { code: 'ENOENT' })

    // Restart on the same data directory: both sessions resume from what the server holds.
    await wharf.restart()
    const offA = await uploadOffset(locA, token)
    assert.ok(offA >= 1 << 20 && offA <= (1 << 20) + (256 << 10), `upload A resumes at ${offA}`)
    const rest = await send(
      'PATCH',
      locA,
      { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', 'content-range': `${offA}-${blobA.length - 1}` },
      blobA.subarray(offA),
    )
    assert.equal(rest.status, 202, rest.body.toString())
    for (const [loc, blob] of [
      [locA, blobA],
      [locB, blobB],
    ] as const) {
      const done = await send('PUT', `${loc}${loc.includes('?') ? '&' : '?'}digest=${sha256(blob)}`, { authorization: `Bearer ${token}` })
      assert.equal(done.status, 201, done.body.toString())
      const got = await send('GET', `${wharf.url}/v2/ops/push/blobs/${sha256(blob)}`, { authorization: `Bearer ${token}` })
      assert.equal(got.status, 200)
      assert.equal(sha256(got.body), sha256(blob))
    }
  })

  it('a second signal exits at once, without waiting for the grace period', async () => {
    await wharf.restart()
    const token = await pushToken(wharf, 'ops/push')
    const loc = await startUpload(wharf, 'ops/push', token)
    const stalled = streamingPatch(loc, token)
    stalled.req.write(randomBytes(64 << 10))
    stalled.answer.catch(() => {})
    await new Promise((r) => setTimeout(r, 300))
    const pid = wharf.pid
    process.kill(pid, 'SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
    assert.equal(await waitExit(pid, 0), false, 'still draining after the first signal')
    const second = Date.now()
    process.kill(pid, 'SIGTERM')
    assert.ok(await waitExit(pid, 1500), 'exited after the second signal')
    assert.ok(Date.now() - second < 1500)
    assert.match(await wharf.logTail(10), /SIGTERM again: exiting without waiting/)
  })
})

/** An OCI layout holding one image (tag `big`) with a layer of `size` random bytes; returns its digests. */
async function bigImageLayout(dir: string, size: number): Promise<{ manifest: string; layer: string; size: number }> {
  const blobs = path.join(dir, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const putBlob = async (b: Buffer) => {
    const d = sha256(b)
    await writeFile(path.join(blobs, d.slice(7)), b)
    return d
  }
  // Random bytes in a stored (level 0) gzip stream: skopeo sends a gzip layer as it is, so the
  // registry must end up with exactly these bytes (an uncompressed one it would compress itself).
  const tmp = path.join(dir, 'layer.tmp')
  const hash = createHash('sha256')
  let stored = 0
  await pipeline(
    (async function* () {
      for (let left = size; left > 0; left -= 8 << 20) yield randomBytes(Math.min(left, 8 << 20))
    })(),
    createGzip({ level: 0 }),
    async function* (src: AsyncIterable<Buffer>) {
      for await (const c of src) {
        hash.update(c)
        stored += c.length
        yield c
      }
    },
    createWriteStream(tmp),
  )
  const layer = `sha256:${hash.digest('hex')}`
  await rename(tmp, path.join(blobs, layer.slice(7)))
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }))
  const configDigest = await putBlob(config)
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: configDigest, size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: layer, size: stored }],
    }),
  )
  const manifestDigest = await putBlob(manifest)
  await writeFile(path.join(dir, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  await writeFile(
    path.join(dir, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        {
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          digest: manifestDigest,
          size: manifest.length,
          annotations: { 'org.opencontainers.image.ref.name': 'big' },
        },
      ],
    }),
  )
  return { manifest: manifestDigest, layer, size: stored }
}

/** Size of the largest upload temp file the server holds now (0 when none). */
async function largestUpload(dataDir: string): Promise<number> {
  const dir = path.join(dataDir, 'storage', 'uploads')
  let max = 0
  for (const f of await readdir(dir).catch(() => [] as string[]))
    max = Math.max(max, (await stat(path.join(dir, f)).catch(() => ({ size: 0 }))).size)
  return max
}

describe('skopeo pushes through a restart', { timeout: 300_000 }, () => {
  let wharf: Wharf
  let work: string

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-ops-'))
    // The default grace (30 s): the layer upload in flight at SIGTERM finishes, then the server is gone.
    wharf = await startWharf()
  })
  after(async () => {
    await wharf?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  // skopeo (1.9) retries a copy on a refused or reset connection, not on a request whose connection
  // was closed under it: so this is the graceful path (the upload finishes, the next request finds
  // the server gone and is retried after the restart); the cut-and-resume path is the test above.
  it('SIGTERM while skopeo uploads a layer: the upload finishes, skopeo retries after the restart and the image pulls intact', async () => {
    await wharf.createProject('ops/skopeo')
    const layout = path.join(work, 'layout')
    const size = 384 << 20
    const image = await bigImageLayout(layout, size)
    const dest = `docker://${wharf.host}/ops/skopeo:big`
    const copy = run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--retry-times',
        '6',
        '--dest-tls-verify=false',
        '--dest-creds',
        `root:${wharf.rootPassword}`,
        `oci:${layout}:big`,
        dest,
      ],
      { timeoutMs: 240_000 },
    )

    // SIGTERM once the layer is partly stored, then start again on the same data directory.
    const deadline = Date.now() + 60_000
    let seen = await largestUpload(wharf.dataDir)
    for (; seen < 16 << 20; seen = await largestUpload(wharf.dataDir)) {
      assert.ok(Date.now() < deadline, 'the layer upload never started')
      await new Promise((r) => setTimeout(r, 20))
    }
    assert.ok(seen < image.size, 'the upload was still in flight')
    const pid = wharf.pid
    process.kill(pid, 'SIGTERM')
    assert.ok(await waitExit(pid, 40_000), 'the server exited')
    const log = await wharf.logTail(200)
    assert.match(log, /shutting down: finishing in-flight requests/)
    assert.doesNotMatch(log, /shutdown grace period over/)
    await wharf.restart()

    const r = await copy
    assert.equal(r.code, 0, `skopeo copy:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
    assert.match(r.stderr + r.stdout, /retry|Retrying|attempt/i, 'skopeo had to retry')

    // The manifest is the one pushed, and the layer's bytes hash to its digest.
    const token = await registryToken(
      { realm: `${wharf.url}/jwt/auth`, service: 'container_registry', scope: 'repository:ops/skopeo:pull' },
      { username: 'root', password: wharf.rootPassword },
    )
    const m = await send('GET', `${wharf.url}/v2/ops/skopeo/manifests/big`, {
      authorization: `Bearer ${token}`,
      accept: 'application/vnd.oci.image.manifest.v1+json',
    })
    assert.equal(m.status, 200)
    assert.equal(sha256(m.body), image.manifest)
    const res = await fetch(`${wharf.url}/v2/ops/skopeo/blobs/${image.layer}`, { headers: { authorization: `Bearer ${token}` } })
    assert.equal(res.status, 200)
    const h = createHash('sha256')
    let n = 0
    for await (const chunk of res.body!) {
      h.update(chunk)
      n += chunk.length
    }
    assert.equal(n, image.size)
    assert.equal(`sha256:${h.digest('hex')}`, image.layer)
  })
})
