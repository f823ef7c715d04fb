// End-to-end: Wharf as a cluster (issue 15's proof). PostgreSQL, Swift's S3 API, two `wharf serve`
// nodes with identical settings and nginx round-robin in front, all on loopback (scripts/cluster.sh,
// started once for this file). Real clients go through nginx, so consecutive requests of one push
// land on alternating nodes; where a test needs a given node, it addresses that node directly.
// The node kill runs last: the others need both nodes.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startCluster, type Cluster, type ClusterNode } from '../helpers/cluster.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { getManifest, http, MANIFEST_ACCEPT, parseChallenge, registryToken, sha256, type ImageManifest } from '../helpers/registry.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { CiProject, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'

let cluster: Cluster
let engine: Engine
let images: TestImages
let storage: PrivateStorage
let work: string
/** Every manifest a client had acknowledged (repository and digest): all must stay readable. */
const acknowledged: Array<{ repo: string; digest: string }> = []

before(async () => {
  // Each assigned as it comes, and all settled first, so after() stops whatever started when another part failed.
  const started = await Promise.allSettled([
    startCluster().then((c) => (cluster = c)),
    startEngine().then((e) => (engine = e)),
    testImages().then((i) => (images = i)),
    mkdtemp(path.join(tmpdir(), 'wharf-cluster-e2e-')).then((w) => (work = w)),
  ])
  for (const r of started) if (r.status === 'rejected') throw r.reason
  storage = await privateStorage(path.join(work, 'podman'))
  for (const p of ['cluster/docker', 'cluster/podman', 'cluster/skopeo', 'cluster/chunked', 'cluster/big'])
    await cluster.lb.createProject(p)
  const login = await engine.docker(['login', '--username', 'root', '--password-stdin', cluster.lb.host], { input: cluster.rootPassword })
  assert.equal(login.code, 0, describeResult(login))
})

after(async () => {
  await cluster?.stop()
  await engine?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

async function ok(r: Promise<RunResult>): Promise<RunResult> {
  const res = await r
  assert.equal(res.code, 0, `${describeResult(res)}\n${await cluster.lb.logTail(30)}`)
  return res
}

const docker = (args: string[]) => ok(engine.docker(args, { timeoutMs: 180_000 }))
const podman = (args: string[], input?: string) =>
  ok(
    run(
      'podman',
      [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
      { timeoutMs: 120_000, env: storage.env, ...(input === undefined ? {} : { input }) },
    ),
  )
const skopeo = (args: string[]) => ok(run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 }))

/** The manifest and every blob it names, through the balancer, each matching its digest. */
async function assertReadable(repo: string, digest: string): Promise<void> {
  const m = await getManifest(cluster.lb.url, repo, digest)
  assert.equal(m.status, 200, m.describe)
  assert.equal(sha256(m.body), digest)
  const manifest = JSON.parse(m.body.toString('utf8')) as ImageManifest
  for (const d of [manifest.config, ...manifest.layers]) {
    const blob = await http('GET', `${cluster.lb.url}/v2/${repo}/blobs/${d.digest}`, { signal: AbortSignal.timeout(120_000) })
    assert.equal(blob.status, 200, blob.describe)
    assert.equal(sha256(blob.body), d.digest, `${repo}@${d.digest}`)
  }
}

/** Requests nginx sent to each node, from its access log. */
async function requestsPerNode(): Promise<Record<string, number>> {
  const counts: Record<string, number> = {}
  for (const m of (await cluster.accessLog()).matchAll(/upstream=(\S+)/g)) counts[m[1]!] = (counts[m[1]!] ?? 0) + 1
  return counts
}

describe('a two-node cluster behind nginx', { timeout: 600_000 }, () => {
  it('docker pushes and pulls through the balancer; both nodes served the push', async () => {
    const ref = `${cluster.lb.host}/cluster/docker:v1`
    await docker(['load', '-i', images.dockerArchive])
    await docker(['tag', images.dockerArchiveTag, ref])
    await docker(['push', ref])
    await docker(['rmi', ref, images.dockerArchiveTag])
    await docker(['pull', ref])
    const m = await getManifest(cluster.lb.url, 'cluster/docker', 'v1')
    assert.equal(m.status, 200, m.describe)
    acknowledged.push({ repo: 'cluster/docker', digest: sha256(m.body) })
    const counts = await requestsPerNode()
    assert.ok(counts[cluster.a.host]! > 5 && counts[cluster.b.host]! > 5, JSON.stringify(counts))
  })

  it('podman pushes and pulls through the balancer', async () => {
    await podman(['login', '--tls-verify=false', '--username', 'root', '--password-stdin', cluster.lb.host], cluster.rootPassword)
    await podman(['pull', images.oci('arm64')])
    const ref = `${cluster.lb.host}/cluster/podman:v1`
    await podman(['tag', images.digests.arm64Config.slice('sha256:'.length), ref])
    const digestFile = path.join(work, 'podman-digest')
    await podman(['push', '--tls-verify=false', '--digestfile', digestFile, ref])
    await podman(['rmi', '--all', '--force'])
    await podman(['pull', '--tls-verify=false', ref])
    const m = await getManifest(cluster.lb.url, 'cluster/podman', 'v1')
    assert.equal(m.status, 200, m.describe)
    acknowledged.push({ repo: 'cluster/podman', digest: sha256(m.body) })
  })

  it('skopeo copies an image index in and out through the balancer', async () => {
    const creds = `root:${cluster.rootPassword}`
    const dest = `docker://${cluster.lb.host}/cluster/skopeo:multi`
    await skopeo(['copy', '--all', '--preserve-digests', '--dest-tls-verify=false', '--dest-creds', creds, images.oci('index'), dest])
    const out = path.join(work, 'skopeo-out')
    await skopeo(['copy', '--all', '--src-tls-verify=false', '--src-creds', creds, dest, `oci:${out}:multi`])
    const m = await getManifest(cluster.lb.url, 'cluster/skopeo', 'multi')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), images.digests.indexManifest)
    for (const digest of [images.digests.amd64Manifest, images.digests.arm64Manifest]) acknowledged.push({ repo: 'cluster/skopeo', digest })
  })

  it('a chunked upload whose requests alternate between the nodes completes', async () => {
    const repo = 'cluster/chunked'
    const chunks = [randomBytes(3 << 20), randomBytes(1 << 20), randomBytes(2 << 20), randomBytes(12_345)]
    const blob = Buffer.concat(chunks)
    const digest = sha256(blob)
    const nodes: ClusterNode[] = [cluster.a, cluster.b]
    // The session is opened on a, then every request goes to the other node than the one before.
    const started = await http('POST', `${cluster.a.url}/v2/${repo}/blobs/uploads/`)
    assert.equal(started.status, 202, started.describe)
    let location = new URL(started.headers.get('location')!, cluster.a.url)
    let offset = 0
    for (const [i, chunk] of chunks.entries()) {
      const node = nodes[(i + 1) % 2]!
      const other = nodes[i % 2]!
      const res = await http('PATCH', `${node.url}${location.pathname}${location.search}`, {
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${offset}-${offset + chunk.length - 1}` },
        body: chunk,
      })
      assert.equal(res.status, 202, `chunk ${i} on node ${node.name}: ${res.describe}`)
      offset += chunk.length
      assert.equal(res.headers.get('range'), `0-${offset - 1}`, res.describe)
      location = new URL(res.headers.get('location')!, node.url)
      // The other node reports the same offset.
      const status = await http('GET', `${other.url}${location.pathname}${location.search}`)
      assert.equal(status.status, 204, `status on node ${other.name}: ${status.describe}`)
      assert.equal(status.headers.get('range'), `0-${offset - 1}`, `status on node ${other.name}: ${status.describe}`)
    }
    const closer = nodes[(chunks.length + 1) % 2]!
    const url = new URL(`${closer.url}${location.pathname}${location.search}`)
    url.searchParams.set('digest', digest)
    const put = await http('PUT', url.toString())
    assert.equal(put.status, 201, `commit on node ${closer.name}: ${put.describe}`)
    for (const node of nodes) {
      const got = await http('GET', `${node.url}/v2/${repo}/blobs/${digest}`)
      assert.equal(got.status, 200, `node ${node.name}: ${got.describe}`)
      assert.equal(sha256(got.body), digest, `node ${node.name}`)
    }
  })

  it('a git push through node a starts a pipeline whose job a runner long-polling node b picks up within a second; its log reads from either node', async () => {
    let runner: RunnerChild | undefined
    const project = await CiProject.create(cluster.a, 'cluster/ci')
    try {
      runner = await startRunner(cluster.b, ['--executor', 'shell', '--name', 'cluster-shell'])
      // Past its first (empty) request: the runner now waits in a long poll on node b.
      await new Promise((r) => setTimeout(r, 2000))
      const ci = `
job:
  script:
    - echo "first line from $CI_JOB_NAME"
    - sleep 4
    - echo "second line"
`
      const p = await project.push({ '.gitlab-ci.yml': ci }, 'cluster pipeline')
      const picked = await project.wait(p.id, 10_000, (_, jobs) => jobs.some((j) => j.status !== 'created' && j.status !== 'pending'))
      const job = picked.jobs[0]!
      const queued = (await project.api<{ queued_duration: number | null }>('GET', `/projects/${project.id}/jobs/${job.id}`))
        .queued_duration
      assert.ok(queued !== null && queued < 1, `the job waited ${queued} s for the runner on node b (the push went through node a)`)

      // While it runs, node a (which the runner never talks to) serves the log so far.
      const trace = (node: ClusterNode) => node.api('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`)
      const deadline = Date.now() + 10_000
      for (;;) {
        const [live, status] = await Promise.all([
          trace(cluster.a),
          project.api<{ status: string }>('GET', `/projects/${project.id}/jobs/${job.id}`),
        ])
        assert.equal(live.status, 200, live.describe)
        if (plainLog(live.text).includes('first line from job')) {
          assert.equal(status.status, 'running', 'the log was read while the job ran')
          break
        }
        assert.ok(status.status === 'running' && Date.now() < deadline, `node a never showed the running job's log: ${live.describe}`)
        await new Promise((r) => setTimeout(r, 200))
      }
      const done = await project.wait(p.id, 30_000)
      assert.equal(done.pipeline.status, 'success', JSON.stringify(done.jobs))
      const [fromA, fromB] = await Promise.all([trace(cluster.a), trace(cluster.b)])
      assert.equal(fromA.status, 200, fromA.describe)
      assert.equal(fromA.text, fromB.text)
      assert.match(plainLog(fromA.text), /first line from job[\s\S]*second line/)
    } finally {
      await runner?.stop()
      await project.dispose()
    }
  })

  it('a personal access token revoked on node a is refused by node b at once', async () => {
    const made = await cluster.a.api('POST', '/api/v4/user/personal_access_tokens', { name: 'cluster', scopes: ['api', 'read_registry'] })
    assert.equal(made.status, 201, made.describe)
    const pat = made.json.token as string
    const creds = { username: 'root', password: pat }
    // Node b's own token endpoint (the challenge names the balancer's).
    const challengeOnB = async () => {
      const r = await http('GET', `${cluster.b.url}/v2/cluster/docker/tags/list`, { as: 'none' })
      const challenge = parseChallenge(r.headers.get('www-authenticate'))!
      return { ...challenge, realm: `${cluster.b.url}${new URL(challenge.realm!).pathname}` }
    }
    // Node b has seen (and may have cached) the token before it is revoked.
    const before = await cluster.b.api('GET', '/api/v4/user', undefined, { token: pat })
    assert.equal(before.status, 200, before.describe)
    await registryToken(await challengeOnB(), creds)

    const revoked = await cluster.a.api('DELETE', `/api/v4/personal_access_tokens/${made.json.id}`)
    assert.equal(revoked.status, 204, revoked.describe)
    const after = await cluster.b.api('GET', '/api/v4/user', undefined, { token: pat })
    assert.equal(after.status, 401, after.describe)
    await assert.rejects(registryToken(await challengeOnB(), creds), /-> 401/)
  })

  it('kill -9 of the node receiving a big layer: docker retries through nginx and finishes on the other; nothing acknowledged is lost', async () => {
    // One layer of 128 MiB that does not compress: the upload runs for seconds.
    const tar = path.join(work, 'big.tar')
    const dir = path.join(work, 'big')
    await ok(run('mkdir', ['-p', dir]))
    await writeFile(path.join(dir, 'random.bin'), randomBytes(128 << 20))
    await ok(run('tar', ['-cf', tar, '-C', dir, 'random.bin']))
    const ref = `${cluster.lb.host}/cluster/big:v1`
    await docker(['import', tar, ref])

    const inFlight = async (node: ClusterNode) => {
      const r = await fetch(`${node.url}/-/metrics`, { headers: { authorization: `Bearer ${cluster.metricsToken}` } }).catch(
        () => undefined,
      )
      const text = r ? await r.text() : ''
      return Number(/^wharf_registry_uploads_in_flight (\d+)/m.exec(text)?.[1] ?? 0)
    }
    const push = engine.docker(['push', ref], { timeoutMs: 300_000 })
    // The node that has been receiving an upload body for a while (the layer, not the small config).
    let victim: ClusterNode | undefined
    const seen = { a: 0, b: 0 }
    const deadline = Date.now() + 120_000
    while (!victim && Date.now() < deadline) {
      for (const node of [cluster.a, cluster.b]) {
        seen[node.name] = (await inFlight(node)) > 0 ? seen[node.name] + 1 : 0
        if (seen[node.name] >= 3) victim = node
      }
      await new Promise((r) => setTimeout(r, 150))
    }
    assert.ok(victim, 'no node received the layer')
    await victim.kill()

    const pushed = await push
    assert.equal(pushed.code, 0, `${describeResult(pushed)}\n${await cluster.lb.logTail(40)}`)
    // The killed node's request failed at nginx (the kill hit the upload), and the push still finished.
    const log = await cluster.accessLog()
    assert.match(log, new RegExp(`/v2/cluster/big/blobs/uploads/\\S* HTTP/1.1" 502 \\d+ upstream=[^\\n]*${victim.host}`), log.slice(-3000))

    const m = await getManifest(cluster.lb.url, 'cluster/big', 'v1', MANIFEST_ACCEPT)
    assert.equal(m.status, 200, m.describe)
    acknowledged.push({ repo: 'cluster/big', digest: sha256(m.body) })
    for (const { repo, digest } of acknowledged) await assertReadable(repo, digest)
    await docker(['rmi', ref])
    await docker(['pull', ref])
    // The killed node starts again on the same settings and serves what the other one stored.
    await victim.start()
    const again = await getManifest(victim.url, 'cluster/big', 'v1', MANIFEST_ACCEPT)
    assert.equal(again.status, 200, again.describe)
    assert.equal(sha256(again.body), acknowledged.at(-1)!.digest)
  })
})
