// End-to-end: the real podman against a freshly started Wharf, with a private
// storage root (the machine's global podman storage is never touched).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import { getManifest, http, sha256, type ImageIndex, type ImageManifest } from '../helpers/registry.ts'

let wharf: Wharf
let images: TestImages
let work: string
let storage: PrivateStorage
let pushedDigest = ''

const RUN_LIMITS = ['--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1000:1000']

function podmanRaw(args: string[], input?: string): Promise<RunResult> {
  return run(
    'podman',
    [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
    { timeoutMs: 120_000, env: storage.env, ...(input === undefined ? {} : { input }) },
  )
}

async function podman(args: string[]): Promise<RunResult> {
  const r = await podmanRaw(args)
  assert.equal(r.code, 0, `podman failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

interface PodmanImage {
  Id: string
  Digest: string
  RepoDigests: string[]
  Architecture: string
}

async function inspect(ref: string): Promise<PodmanImage> {
  const r = await podman(['image', 'inspect', ref])
  const [info] = JSON.parse(r.stdout) as PodmanImage[]
  assert.ok(info, r.stdout)
  return info
}

async function removeAllImages(): Promise<void> {
  await podman(['rmi', '--all', '--force'])
  assert.equal((await podman(['images', '-q'])).stdout.trim(), '')
}

const hex = (d: string) => d.replace(/^sha256:/, '')

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-podman-'))
  storage = await privateStorage(work)
  wharf = await startWharf()
  for (const p of ['e2e/pod', 'e2e/pod-multi']) await wharf.createProject(p)
  // Credentials go to the private auth file (REGISTRY_AUTH_FILE) of this suite's storage.
  const login = await podmanRaw(['login', '--tls-verify=false', '--username', 'root', '--password-stdin', wharf.host], wharf.rootPassword)
  assert.equal(login.code, 0, `podman login failed:\n${describeResult(login)}\n--- server log ---\n${await wharf.logTail(40)}`)
})

after(async () => {
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('podman', { timeout: 170_000 }, () => {
  it('pushes an image', async () => {
    await podman(['pull', images.oci('amd64')])
    await podman(['tag', hex(images.digests.amd64Config), `${wharf.host}/e2e/pod:v1`])
    const digestFile = path.join(work, 'push.digest')
    await podman(['push', '--tls-verify=false', '--digestfile', digestFile, `${wharf.host}/e2e/pod:v1`])
    pushedDigest = (await readFile(digestFile, 'utf8')).trim()
    assert.match(pushedDigest, /^sha256:[0-9a-f]{64}$/)

    const m = await getManifest(wharf.url, 'e2e/pod', 'v1')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), pushedDigest)
    assert.equal(m.headers.get('docker-content-digest'), pushedDigest, m.describe)
    const manifest = JSON.parse(m.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.config.digest, images.digests.amd64Config)
    assert.equal(manifest.layers.length, 4)
    for (const l of manifest.layers) {
      const blob = await http('GET', `${wharf.url}/v2/e2e/pod/blobs/${l.digest}`)
      assert.equal(blob.status, 200, blob.describe)
      assert.equal(sha256(blob.body), l.digest)
    }
  })

  it('pulls it back with the same digest', async () => {
    await removeAllImages()
    await podman(['pull', '--tls-verify=false', `${wharf.host}/e2e/pod:v1`])
    const info = await inspect(`${wharf.host}/e2e/pod:v1`)
    assert.equal(info.Id, hex(images.digests.amd64Config))
    assert.equal(info.Digest, pushedDigest)
    assert.ok(info.RepoDigests.includes(`${wharf.host}/e2e/pod@${pushedDigest}`), JSON.stringify(info.RepoDigests))
  })

  it('pulls by digest and runs a container', async () => {
    await removeAllImages()
    const ref = `${wharf.host}/e2e/pod@${pushedDigest}`
    await podman(['pull', '--tls-verify=false', ref])
    assert.equal((await inspect(ref)).Id, hex(images.digests.amd64Config))
    const r = await podman(['run', '--rm', '--network', 'none', ...RUN_LIMITS, ref, '/bin/busybox', 'echo', 'hi'])
    assert.equal(r.stdout, 'hi\n')
    const files = await podman([
      'run',
      '--rm',
      '--network',
      'none',
      ...RUN_LIMITS,
      ref,
      '/bin/sh',
      '-c',
      'cat /etc/wharf/hello.txt /etc/wharf/arch.txt',
    ])
    assert.equal(files.stdout, 'hello from wharf layer 2\namd64\n')
  })

  it('pushes a multi-platform manifest list', async () => {
    await podman(['manifest', 'create', 'wharf-e2e-list'])
    await podman(['manifest', 'add', 'wharf-e2e-list', images.oci('amd64')])
    await podman(['manifest', 'add', 'wharf-e2e-list', images.oci('arm64')])
    const digestFile = path.join(work, 'list.digest')
    await podman([
      'manifest',
      'push',
      '--all',
      '--tls-verify=false',
      '--digestfile',
      digestFile,
      'wharf-e2e-list',
      `docker://${wharf.host}/e2e/pod-multi:v1`,
    ])
    const listDigest = (await readFile(digestFile, 'utf8')).trim()

    const m = await getManifest(wharf.url, 'e2e/pod-multi', 'v1')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), listDigest)
    assert.equal(m.headers.get('docker-content-digest'), listDigest, m.describe)
    const index = JSON.parse(m.body.toString('utf8')) as ImageIndex
    assert.ok(
      ['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json'].includes(
        m.headers.get('content-type') ?? '',
      ),
      m.describe,
    )
    assert.equal(m.headers.get('content-type'), index.mediaType, m.describe)
    // podman may re-encode the per-platform manifests on push (their digests
    // need not be the originals), but each must carry the original config.
    const byArch = new Map(index.manifests.map((d) => [d.platform?.architecture, d.digest]))
    assert.deepEqual([...byArch.keys()].sort(), ['amd64', 'arm64'], m.describe)
    const wantConfig = new Map([
      ['amd64', images.digests.amd64Config],
      ['arm64', images.digests.arm64Config],
    ])
    // Every child manifest and all its blobs are in the repository.
    for (const [arch, digest] of byArch) {
      const child = await getManifest(wharf.url, 'e2e/pod-multi', digest!)
      assert.equal(child.status, 200, child.describe)
      assert.equal(sha256(child.body), digest)
      const cm = JSON.parse(child.body.toString('utf8')) as ImageManifest
      assert.equal(cm.config.digest, wantConfig.get(arch!), child.describe)
      assert.equal(cm.layers.length, 4, child.describe)
      for (const d of [cm.config, ...cm.layers]) {
        const blob = await http('GET', `${wharf.url}/v2/e2e/pod-multi/blobs/${d.digest}`)
        assert.equal(blob.status, 200, `${arch}: ${blob.describe}`)
        assert.equal(sha256(blob.body), d.digest)
      }
    }
  })

  it('pulls one platform out of the list', async () => {
    await removeAllImages()
    await podman(['pull', '--tls-verify=false', '--arch', 'arm64', `${wharf.host}/e2e/pod-multi:v1`])
    const info = await inspect(`${wharf.host}/e2e/pod-multi:v1`)
    assert.equal(info.Architecture, 'arm64')
    assert.equal(info.Id, hex(images.digests.arm64Config))
  })
})
