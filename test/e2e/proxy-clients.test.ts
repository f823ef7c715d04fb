// End-to-end: real container clients pull Docker Hub images through Wharf's cache, with Docker
// Hub itself unreachable (only the stand-in in test/helpers/docker-hub.ts exists): a Docker engine
// with Wharf as its `registry-mirrors`, containerd's `ctr` with a hosts.toml, podman with a
// registries.conf mirror, and docker/podman through GitLab's group path. All at once on a cold
// cache, they cost one upstream GET per manifest and per blob.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'

let hub: DockerHub
let wharf: Wharf
let engine: Engine
let images: TestImages
let mirror: string
let work: string
let storage: PrivateStorage
let registriesConf: string
let hostsDir: string

function podman(args: string[], input?: string): Promise<RunResult> {
  return run(
    'podman',
    [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
    {
      timeoutMs: 180_000,
      env: { ...storage.env, CONTAINERS_REGISTRIES_CONF: registriesConf },
      ...(input === undefined ? {} : { input }),
    },
  )
}

/** containerd of the private engine (dockerd starts its own under its exec root). */
const containerdSocket = () => path.join(engine.dir, 'exec', 'containerd', 'containerd.sock')
const ctr = (args: string[]) => run('ctr', ['--address', containerdSocket(), '--namespace', 'wharf-e2e', ...args], { timeoutMs: 180_000 })

async function ok(r: Promise<RunResult>, what: string): Promise<RunResult> {
  const res = await r
  assert.equal(res.code, 0, `${what} failed:\n${describeResult(res)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return res
}

before(async () => {
  images = await testImages()
  hub = await startDockerHub()
  await hub.seed(images.oci('amd64'), 'library/alpine:3')
  await hub.seed(images.oci('amd64'), 'library/nginx:latest')
  mirror = `127.0.0.1:${await freePort()}`
  wharf = await startWharf({
    env: {
      WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([{ host: 'docker.io', url: hub.url }]),
      WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN: mirror,
    },
  })
  await wharf.createProject('team/app')
  engine = await startEngine({ registryMirror: `http://${mirror}` })
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-proxy-'))
  storage = await privateStorage(path.join(work, 'podman'))
  registriesConf = path.join(work, 'registries.conf')
  await writeFile(
    registriesConf,
    [
      'unqualified-search-registries = ["docker.io"]',
      '[[registry]]',
      'prefix = "docker.io"',
      'location = "docker.io"',
      '[[registry.mirror]]',
      `location = "${mirror}"`,
      'insecure = true',
      '',
    ].join('\n'),
  )
  hostsDir = path.join(work, 'hosts')
  await mkdir(path.join(hostsDir, 'docker.io'), { recursive: true })
  await writeFile(
    path.join(hostsDir, 'docker.io', 'hosts.toml'),
    ['server = "https://registry-1.docker.io"', '', `[host."http://${mirror}"]`, '  capabilities = ["pull", "resolve"]', ''].join('\n'),
  )
})

after(async () => {
  await engine?.stop()
  await wharf?.stop()
  await hub?.close()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('container clients through the pull-through cache', () => {
  it('docker (registry-mirrors), ctr (hosts.toml), podman (registries.conf) and skopeo pull alpine:3 at once on a cold cache: one upstream GET per manifest and blob', async () => {
    assert.ok(existsSync(containerdSocket()), `no containerd socket at ${containerdSocket()}`)
    hub.resetCounts()
    const pulls: Array<Promise<RunResult>> = [
      ok(engine.docker(['pull', 'alpine:3'], { timeoutMs: 180_000 }), 'docker pull alpine:3'),
      ok(ctr(['images', 'pull', '--hosts-dir', hostsDir, 'docker.io/library/alpine:3']), 'ctr images pull'),
      ok(podman(['pull', 'docker.io/library/alpine:3']), 'podman pull'),
    ]
    for (let i = 0; i < 8; i++)
      pulls.push(
        ok(
          run(
            'skopeo',
            ['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${mirror}/library/alpine:3`, `oci:${work}/sk${i}:x`],
            { timeoutMs: 180_000 },
          ),
          'skopeo copy',
        ),
      )
    await Promise.all(pulls)
    const { amd64Manifest, amd64Config, amd64Layers } = images.digests
    assert.equal(hub.count('GET', '/v2/library/alpine/manifests/3'), 1, [...hub.counts].join('\n'))
    for (const d of [amd64Config, ...amd64Layers])
      assert.equal(hub.count('GET', `/v2/library/alpine/blobs/${d}`), 1, `${d}:\n${[...hub.counts].join('\n')}`)
    // Each client has the image Docker Hub serves.
    const inspect = await ok(engine.docker(['image', 'inspect', '--format', '{{.Id}}', 'alpine:3']), 'docker image inspect')
    assert.equal(inspect.stdout.trim(), amd64Config)
    const listed = await ok(ctr(['images', 'ls', '-q']), 'ctr images ls')
    assert.match(listed.stdout, /docker\.io\/library\/alpine:3/)
    const podmanDigest = await ok(
      podman(['image', 'inspect', '--format', '{{.Digest}}', 'docker.io/library/alpine:3']),
      'podman image inspect',
    )
    assert.equal(podmanDigest.stdout.trim(), amd64Manifest)
  })

  it('docker and podman pull through the group path with a login; an unchanged warm pull costs nothing upstream', async () => {
    const login = await engine.docker(['login', '--username', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    assert.equal(login.code, 0, describeResult(login))
    hub.resetCounts()
    await ok(
      engine.docker(['pull', `${wharf.host}/team/dependency_proxy/containers/nginx:latest`], { timeoutMs: 180_000 }),
      'docker pull (group path)',
    )
    assert.equal(hub.count('GET', '/v2/library/nginx/manifests/latest'), 1)
    // nginx's layers are alpine's: already in the store, so no blob is fetched again.
    assert.equal([...hub.counts.keys()].filter((k) => k.includes('/blobs/')).length, 0, [...hub.counts].join('\n'))
    await ok(
      podman(['login', '--tls-verify=false', '--username', 'root', '--password-stdin', wharf.host], wharf.rootPassword),
      'podman login',
    )
    hub.resetCounts()
    await ok(
      podman(['pull', '--tls-verify=false', `${wharf.host}/team/dependency_proxy/containers/library/nginx:latest`]),
      'podman pull (group path)',
    )
    assert.equal(hub.counts.size, 0, [...hub.counts].join('\n'))
  })

  it('with the upstream gone, docker still pulls a cached image through the mirror; an uncached one fails with the reason', async () => {
    await hub.stop()
    try {
      await ok(engine.docker(['rmi', 'alpine:3']), 'docker rmi')
      await ok(engine.docker(['pull', 'alpine:3'], { timeoutMs: 180_000 }), 'docker pull alpine:3 (upstream down)')
      const missing = await engine.docker(['pull', 'busybox:1'], { timeoutMs: 180_000 })
      assert.notEqual(missing.code, 0, describeResult(missing))
      // Docker then falls back to Docker Hub itself and reports that; what the mirror said is this:
      const res = await fetch(`http://${mirror}/v2/library/busybox/manifests/1`)
      assert.equal(res.status, 503)
      const body = (await res.json()) as { errors: Array<{ code: string; message: string }> }
      assert.equal(body.errors[0]!.code, 'UNAVAILABLE')
      assert.match(body.errors[0]!.message, /^docker\.io is unavailable: ECONNREFUSED/)
    } finally {
      await hub.start()
    }
  })
})
