// End-to-end: the pull-through cache against a stand-in Docker Hub (test/helpers/docker-hub.ts),
// with the real skopeo and plain HTTP, through both ways in: GitLab's group path on the main
// listener and the anonymous mirror listener. Nothing comes from the internet.
import assert from 'node:assert/strict'
import { readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { http, MANIFEST_ACCEPT, sha256 } from '../helpers/registry.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'

const TTL_SECONDS = 2

let hub: DockerHub
let wharf: Wharf
let images: TestImages
let mirror: string
let groupId: number

/** A user with a password, as root through the API; optionally a member of `team` at `level`. */
async function user(name: string, level?: number): Promise<{ username: string; password: string }> {
  const password = `${name}-password-1`
  const u = await wharf.api('POST', '/api/v4/users', { username: name, password, email: `${name}@example.com` })
  assert.equal(u.status, 201, u.describe)
  if (level !== undefined) {
    const m = await wharf.api('POST', `/api/v4/groups/${groupId}/members`, { user_id: u.json.id, access_level: level })
    assert.equal(m.status, 201, m.describe)
  }
  return { username: name, password }
}

function skopeo(args: string[]): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })
}

async function skopeoOk(args: string[]): Promise<RunResult> {
  const r = await skopeo(args)
  assert.equal(r.code, 0, `skopeo failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return r
}

const rootCreds = () => ['--creds', `root:${wharf.rootPassword}`]
const group = (image: string) => `docker://${wharf.host}/team/dependency_proxy/containers/${image}`
const viaMirror = (image: string) => `docker://${mirror}/${image}`

/** GET of a manifest through the group path as root (token flow handled by http()). */
const groupManifest = (image: string, ref: string) =>
  http('GET', `${wharf.url}/v2/team/dependency_proxy/containers/${image}/manifests/${ref}`, { headers: { accept: MANIFEST_ACCEPT } })

async function blobFiles(): Promise<Set<string>> {
  const root = path.join(wharf.dataDir, 'storage', 'blobs', 'sha256')
  const out = new Set<string>()
  for (const d of await readdir(root).catch(() => [])) for (const f of await readdir(path.join(root, d))) out.add(`sha256:${f}`)
  return out
}

before(async () => {
  images = await testImages()
  hub = await startDockerHub()
  await hub.seed(images.oci('amd64'), 'library/alpine:3')
  await hub.seed(images.oci('index'), 'library/multi:1', { all: true })
  await hub.seed(images.oci('arm64'), 'library/rare:1')
  const mirrorPort = await freePort()
  mirror = `127.0.0.1:${mirrorPort}`
  wharf = await startWharf({
    env: {
      // The stand-in also plays a second registry, so containerd's ?ns= selection can be checked.
      WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([
        { host: 'docker.io', url: hub.url },
        { host: 'quay.io', url: hub.url },
      ]),
      WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN: mirror,
      WHARF_DEPENDENCY_PROXY_TAG_TTL_SECONDS: String(TTL_SECONDS),
      WHARF_DEPENDENCY_PROXY_UPSTREAM_TIMEOUT_SECONDS: '5',
    },
  })
  await wharf.createProject('team/app')
  groupId = (await wharf.api('GET', '/api/v4/groups/team')).json.id
})

after(async () => {
  await wharf?.stop()
  await hub?.close()
})

describe('pull-through cache', () => {
  it('100 concurrent cold pulls (24 skopeo through the mirror and the group path, 76 raw HTTP) cost exactly one upstream GET per manifest and per blob', async () => {
    hub.resetCounts()
    const { amd64Manifest, amd64Config, amd64Layers } = images.digests
    const dir = (await run('mktemp', ['-d'])).stdout.trim()
    const jobs: Array<Promise<unknown>> = []
    for (let i = 0; i < 12; i++) jobs.push(skopeoOk(['copy', '--src-tls-verify=false', viaMirror('alpine:3'), `oci:${dir}/m${i}:x`]))
    for (let i = 0; i < 12; i++)
      jobs.push(
        skopeoOk([
          'copy',
          '--src-tls-verify=false',
          ...rootCreds().map((a, j) => (j === 0 ? '--src-creds' : a)),
          group('alpine:3'),
          `oci:${dir}/g${i}:x`,
        ]),
      )
    for (let i = 0; i < 76; i++) {
      jobs.push(
        (async () => {
          const m = await http('GET', `http://${mirror}/v2/library/alpine/manifests/3`, { headers: { accept: MANIFEST_ACCEPT } })
          assert.equal(m.status, 200, m.describe)
          assert.equal(m.headers.get('docker-content-digest'), amd64Manifest)
          for (const d of [amd64Config, ...amd64Layers]) {
            const b = await http('GET', `http://${mirror}/v2/library/alpine/blobs/${d}`)
            assert.equal(b.status, 200, b.describe)
            assert.equal(sha256(b.body), d, 'the bytes served while the cache fills are the blob')
          }
        })(),
      )
    }
    await Promise.all(jobs)
    await run('rm', ['-rf', dir])
    assert.equal(hub.count('GET', '/v2/library/alpine/manifests/3'), 1, [...hub.counts].join('\n'))
    for (const d of [amd64Config, ...amd64Layers])
      assert.equal(hub.count('GET', `/v2/library/alpine/blobs/${d}`), 1, `blob ${d}: ${[...hub.counts].join('\n')}`)
    // The cached copy is Wharf's own store: the blobs are files in its content-addressed layout.
    const files = await blobFiles()
    for (const d of [amd64Config, ...amd64Layers]) assert.ok(files.has(d), `${d} in the store`)
    const status = await wharf.api('GET', '/api/v4/dependency_proxy/upstreams')
    assert.equal(status.status, 200, status.describe)
    assert.equal(status.json[0].host, 'docker.io')
    assert.equal(status.json[0].rate_limit.limit, 1_000_000)
    assert.ok(status.json[0].rate_limit.remaining < 1_000_000)
    assert.ok(!JSON.stringify(status.json).includes('password'))
  })

  it('a warm pull costs no upstream request within the TTL; after it, an unchanged tag costs one HEAD', async () => {
    // The first pull may revalidate (the test before took longer than the TTL); the next is free.
    assert.equal((await groupManifest('alpine', '3')).status, 200)
    hub.resetCounts()
    const warm = await groupManifest('alpine', '3')
    assert.equal(warm.status, 200, warm.describe)
    assert.equal(hub.counts.size, 0, [...hub.counts].join('\n'))
    hub.resetCounts()
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 200))
    const again = await groupManifest('alpine', '3')
    assert.equal(again.status, 200, again.describe)
    assert.equal(hub.count('HEAD', '/v2/library/alpine/manifests/3'), 1, [...hub.counts].join('\n'))
    assert.equal(hub.count('GET', '/v2/library/alpine/manifests/3'), 0)
  })

  it('a multi-arch index and its children pulled by digest; Docker Hub names (docker.io/, library/) are one image', async () => {
    hub.resetCounts()
    const dir = (await run('mktemp', ['-d'])).stdout.trim()
    await skopeoOk([
      'copy',
      '--all',
      '--src-tls-verify=false',
      '--src-creds',
      `root:${wharf.rootPassword}`,
      group('multi:1'),
      `oci:${dir}/all:x`,
    ])
    const index = await groupManifest('multi', '1')
    assert.equal(index.headers.get('docker-content-digest'), images.digests.indexManifest)
    const byDigest = await groupManifest('docker.io/library/multi', images.digests.arm64Manifest)
    assert.equal(byDigest.status, 200, byDigest.describe)
    assert.equal(sha256(byDigest.body), images.digests.arm64Manifest)
    await skopeoOk(['inspect', '--raw', '--tls-verify=false', ...rootCreds(), `${group('library/multi')}@${images.digests.amd64Manifest}`])
    assert.equal(hub.count('GET', '/v2/library/multi/manifests/1'), 1, [...hub.counts].join('\n'))
    assert.equal(
      hub.count('GET', `/v2/library/multi/manifests/${images.digests.arm64Manifest}`),
      1,
      'children are fetched once and never revalidated',
    )
    // Layers already cached for alpine are linked from the store, not fetched again.
    for (const d of images.digests.amd64Layers)
      assert.equal(hub.count('GET', `/v2/library/multi/blobs/${d}`), 0, `${d} was already in the store`)
    await run('rm', ['-rf', dir])
  })

  it('a tag moved upstream is served after the TTL', async () => {
    await hub.seed(images.oci('arm64'), 'library/alpine:3')
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 200))
    hub.resetCounts()
    const moved = await groupManifest('alpine', '3')
    assert.equal(moved.headers.get('docker-content-digest'), images.digests.arm64Manifest, moved.describe)
    assert.equal(hub.count('HEAD', '/v2/library/alpine/manifests/3'), 1)
    assert.equal(hub.count('GET', '/v2/library/alpine/manifests/3'), 1)
    await hub.seed(images.oci('amd64'), 'library/alpine:3')
  })

  it('upstream at its rate limit: cached images still pull, an uncached one gets a clear 429', async () => {
    hub.setLimit(0)
    await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 200))
    // Revalidation is a HEAD, which Docker Hub does not count: the moved-back tag is fetched once more...
    hub.resetCounts()
    const cached = await skopeo(['inspect', '--raw', '--tls-verify=false', ...rootCreds(), group('multi:1')])
    assert.equal(cached.code, 0, describeResult(cached))
    const uncached = await groupManifest('rare', '1')
    assert.equal(uncached.status, 429, uncached.describe)
    const err = JSON.parse(uncached.body.toString()).errors[0]
    assert.equal(err.code, 'TOOMANYREQUESTS')
    assert.equal(err.message, 'docker.io rate limit: 0 of 0 pulls left in 21600 s; retry after 1 s')
    assert.equal(uncached.headers.get('retry-after'), '1', "the upstream's Retry-After is passed on")
    const viaSkopeo = await skopeo(['inspect', '--retry-times', '0', '--raw', '--tls-verify=false', ...rootCreds(), group('rare:1')])
    assert.notEqual(viaSkopeo.code, 0)
    assert.match(viaSkopeo.stderr, /rate limit: 0 of 0 pulls left/)
    hub.setLimit(1_000_000)
    hub.resetWindow()
  })

  it('upstream stopped: a stale cached tag is served with a Warning, an uncached one is a prompt 503 saying why', async () => {
    await hub.stop()
    try {
      await new Promise((r) => setTimeout(r, TTL_SECONDS * 1000 + 200))
      const started = Date.now()
      const stale = await groupManifest('multi', '1')
      assert.equal(stale.status, 200, stale.describe)
      assert.match(stale.headers.get('warning') ?? '', /^111 wharf ".*docker\.io is unavailable.*serving the copy cached/)
      const pulled = await skopeo([
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `root:${wharf.rootPassword}`,
        group('alpine:3'),
        `oci:${wharf.tmpDir}/offline:x`,
      ])
      assert.equal(pulled.code, 0, describeResult(pulled))
      const missing = await groupManifest('rare', '1')
      assert.equal(missing.status, 503, missing.describe)
      const err = JSON.parse(missing.body.toString()).errors[0]
      assert.equal(err.code, 'UNAVAILABLE')
      assert.match(err.message, /^docker\.io is unavailable: ECONNREFUSED/)
      assert.ok(Date.now() - started < 4000, 'no hang')
    } finally {
      await hub.start()
    }
  })

  it('the mirror serves another upstream when containerd names it with ?ns=, and says which upstreams exist otherwise', async () => {
    const quay = await http('GET', `http://${mirror}/v2/library/alpine/manifests/3?ns=quay.io`, { headers: { accept: MANIFEST_ACCEPT } })
    assert.equal(quay.status, 200, quay.describe)
    const cache = await wharf.api('GET', '/api/v4/dependency_proxy/cache')
    assert.ok(
      cache.json.images.some(
        (i: { upstream: string; repository: string }) =>
          i.upstream === 'quay.io' && i.repository === 'dependency_proxy/quay.io/library/alpine',
      ),
      cache.describe,
    )
    const unknown = await http('GET', `http://${mirror}/v2/library/alpine/manifests/3?ns=ghcr.io`)
    assert.equal(unknown.status, 404, unknown.describe)
    assert.match(JSON.parse(unknown.body.toString()).errors[0].message, /no upstream ghcr\.io; configured: docker\.io, quay\.io/)
  })

  it('the group path and the mirror are pull-only', async () => {
    const push = await http('POST', `${wharf.url}/v2/team/dependency_proxy/containers/alpine/blobs/uploads/`)
    assert.equal(push.status, 405, push.describe)
    assert.equal(JSON.parse(push.body.toString()).errors[0].code, 'UNSUPPORTED')
    const del = await http('DELETE', `http://${mirror}/v2/library/alpine/manifests/3`)
    assert.equal(del.status, 405, del.describe)
    const r = await skopeo(['copy', '--dest-tls-verify=false', images.oci('amd64'), viaMirror('library/pushed:1')])
    assert.notEqual(r.code, 0, 'skopeo cannot push to the mirror')
  })

  it('lists a group cache with its size; purge frees the bytes no pushed image shares', async () => {
    // A project image sharing the amd64 layers: those bytes must survive the purge.
    await skopeoOk([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `root:${wharf.rootPassword}`,
      images.oci('amd64'),
      `docker://${wharf.host}/team/app:v1`,
    ])
    const listed = await wharf.api('GET', `/api/v4/groups/${groupId}/dependency_proxy/cache`)
    assert.equal(listed.status, 200, listed.describe)
    const names = listed.json.images.map((i: { name: string }) => i.name).sort()
    assert.deepEqual(names, ['library/alpine', 'library/multi'])
    assert.ok(listed.json.size > 0)
    const arm64Only = images.digests.arm64Layers.at(-1)!
    // Pull the arm64 layer through the group (multi's child) so the cache holds it.
    const layer = await http('GET', `${wharf.url}/v2/team/dependency_proxy/containers/multi/blobs/${arm64Only}`)
    assert.equal(layer.status, 200, layer.describe)
    assert.ok((await blobFiles()).has(arm64Only))
    const outsider = await user('stranger')
    const token = await wharf.api(
      'POST',
      '/oauth/token',
      { grant_type: 'password', username: outsider.username, password: outsider.password },
      { token: null },
    )
    const denied = await wharf.api('DELETE', `/api/v4/groups/${groupId}/dependency_proxy/cache`, undefined, {
      token: token.json.access_token,
    })
    assert.notEqual(denied.status, 202, denied.describe)
    // GitLab (17.0+) lets only the group's Owners purge; a Maintainer is refused.
    const keeper = await user('keeper', 40)
    const keeperToken = await wharf.api(
      'POST',
      '/oauth/token',
      { grant_type: 'password', username: keeper.username, password: keeper.password },
      { token: null },
    )
    const maintainer = await wharf.api('DELETE', `/api/v4/groups/${groupId}/dependency_proxy/cache`, undefined, {
      token: keeperToken.json.access_token,
    })
    assert.equal(maintainer.status, 403, maintainer.describe)
    const purged = await wharf.api('DELETE', `/api/v4/groups/${groupId}/dependency_proxy/cache`)
    assert.equal(purged.status, 202, purged.describe)
    const files = await blobFiles()
    assert.ok(!files.has(arm64Only), 'a blob only the purged cache held is deleted from disk')
    for (const d of images.digests.amd64Layers) assert.ok(files.has(d), `${d} is still used by team/app and the mirror cache`)
    const after = await wharf.api('GET', `/api/v4/groups/${groupId}/dependency_proxy/cache`)
    assert.deepEqual(after.json, { size: 0, images: [] })
    const pushed = await skopeo(['inspect', '--tls-verify=false', ...rootCreds(), `docker://${wharf.host}/team/app:v1`])
    assert.equal(pushed.code, 0, describeResult(pushed))
    // Pulled again after the purge: fetched from the upstream anew.
    hub.resetCounts()
    const again = await groupManifest('alpine', '3')
    assert.equal(again.status, 200, again.describe)
    assert.equal(hub.count('GET', '/v2/library/alpine/manifests/3'), 1)
  })

  it('group path auth: a non-member is denied, a Guest member pulls, anonymous is challenged', async () => {
    const stranger = { username: 'stranger', password: 'stranger-password-1' }
    const guest = await user('visitor', 10)
    const denied = await skopeo([
      'inspect',
      '--raw',
      '--tls-verify=false',
      '--creds',
      `${stranger.username}:${stranger.password}`,
      group('alpine:3'),
    ])
    assert.notEqual(denied.code, 0)
    assert.match(denied.stderr, /denied|unauthorized/i)
    await skopeoOk(['inspect', '--raw', '--tls-verify=false', '--creds', `${guest.username}:${guest.password}`, group('alpine:3')])
    const anon = await http('GET', `${wharf.url}/v2/team/dependency_proxy/containers/alpine/manifests/3`, { as: 'none' })
    assert.equal(anon.status, 401, anon.describe)
    const anonToken = await http('GET', `${wharf.url}/v2/team/dependency_proxy/containers/alpine/manifests/3`, { as: 'anonymous' })
    assert.equal(anonToken.status, 403, 'a public group still needs a signed-in member (GitLab)')
  })

  it('the data dir holds no upstream credentials in logs', async () => {
    const log = await wharf.logTail(100000)
    assert.ok(!/hub-[0-9a-f]{24}/.test(log), 'upstream tokens never logged')
    assert.ok((await stat(wharf.logFile)).size > 0)
  })
})
