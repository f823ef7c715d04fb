// End-to-end: the real docker client and engine (a private dockerd) against a
// freshly started Wharf. Registries on 127.0.0.1 are insecure-allowed by
// default, so the engine talks plain HTTP to Wharf without configuration.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import { getManifest, http, sha256, type ImageManifest } from '../helpers/registry.ts'

let wharf: Wharf
let engine: Engine
let images: TestImages
let pushedDigest = ''

async function docker(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  const r = await engine.docker(args, { timeoutMs })
  assert.equal(r.code, 0, `docker failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

async function inspect(ref: string): Promise<{ Id: string; RepoDigests: string[]; RepoTags: string[] }> {
  const r = await docker(['image', 'inspect', ref])
  const [info] = JSON.parse(r.stdout) as { Id: string; RepoDigests: string[]; RepoTags: string[] }[]
  assert.ok(info, r.stdout)
  return info
}

/** Remove every local image so that the next pull really downloads. */
async function removeAllImages(): Promise<void> {
  const ids = (await docker(['images', '-aq'])).stdout.split('\n').filter(Boolean)
  if (ids.length > 0) await docker(['rmi', '-f', ...new Set(ids)])
  assert.equal((await docker(['images', '-aq'])).stdout.trim(), '')
}

/** The digest docker push reports: "v1: digest: sha256:... size: N". */
function pushDigest(r: RunResult): string {
  const m = /digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(r.stdout)
  assert.ok(m?.[1], `no digest in docker push output:\n${describeResult(r)}`)
  return m[1]
}

before(async () => {
  images = await testImages()
  ;[wharf, engine] = await Promise.all([startWharf(), startEngine()])
  for (const p of ['e2e/app', 'e2e/other', 'e2e/multiarch']) await wharf.createProject(p)
  const login = await engine.docker(['login', '--username', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
  assert.equal(login.code, 0, `docker login failed:\n${describeResult(login)}\n--- server log ---\n${await wharf.logTail(40)}`)
})

after(async () => {
  await Promise.all([engine?.stop(), wharf?.stop()])
})

describe('docker', { timeout: 170_000 }, () => {
  it('loads the test image into the engine', async () => {
    await docker(['load', '-i', images.dockerArchive])
    const info = await inspect(images.dockerArchiveTag)
    assert.equal(info.Id, images.digests.amd64Config)
  })

  it('pushes an image', async () => {
    await docker(['tag', images.dockerArchiveTag, `${wharf.host}/e2e/app:v1`])
    const r = await docker(['push', `${wharf.host}/e2e/app:v1`])
    pushedDigest = pushDigest(r)
    assert.equal((r.stdout.match(/: Pushed$/gm) ?? []).length, 4, describeResult(r))

    const m = await getManifest(wharf.url, 'e2e/app', 'v1')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), pushedDigest)
    assert.equal(m.headers.get('docker-content-digest'), pushedDigest, m.describe)
    assert.equal(m.headers.get('content-type'), 'application/vnd.docker.distribution.manifest.v2+json', m.describe)
    const manifest = JSON.parse(m.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.config.digest, images.digests.amd64Config)
    assert.equal(manifest.layers.length, 4)
    for (const l of manifest.layers) {
      const blob = await http('GET', `${wharf.url}/v2/e2e/app/blobs/${l.digest}`)
      assert.equal(blob.status, 200, blob.describe)
      assert.equal(sha256(blob.body), l.digest)
      assert.equal(blob.body.length, l.size)
    }
  })

  it('pulls the image back with the same id and digest', async () => {
    await removeAllImages()
    const r = await docker(['pull', `${wharf.host}/e2e/app:v1`])
    assert.match(r.stdout, new RegExp(`Digest: ${pushedDigest}`), describeResult(r))
    const info = await inspect(`${wharf.host}/e2e/app:v1`)
    assert.equal(info.Id, images.digests.amd64Config)
    assert.deepEqual(info.RepoDigests, [`${wharf.host}/e2e/app@${pushedDigest}`])
  })

  it('re-push finds every layer already there', async () => {
    const r = await docker(['push', `${wharf.host}/e2e/app:v1`])
    assert.equal((r.stdout.match(/: Layer already exists$/gm) ?? []).length, 4, describeResult(r))
    assert.equal(pushDigest(r), pushedDigest)
  })

  it('pulls by digest', async () => {
    await removeAllImages()
    const ref = `${wharf.host}/e2e/app@${pushedDigest}`
    await docker(['pull', ref])
    const info = await inspect(ref)
    assert.equal(info.Id, images.digests.amd64Config)
    assert.deepEqual(info.RepoDigests, [ref])
  })

  it('pushes the same image to a second repository by mounting its layers', async () => {
    await docker(['tag', `${wharf.host}/e2e/app@${pushedDigest}`, `${wharf.host}/e2e/other:v1`])
    const r = await docker(['push', `${wharf.host}/e2e/other:v1`])
    assert.equal(pushDigest(r), pushedDigest)
    // The engine remembers the layers came from e2e/app and mounts them.
    assert.equal((r.stdout.match(/: Mounted from e2e\/app$/gm) ?? []).length, 4, describeResult(r))
    await removeAllImages()
    await docker(['pull', `${wharf.host}/e2e/other:v1`])
    assert.equal((await inspect(`${wharf.host}/e2e/other:v1`)).Id, images.digests.amd64Config)
  })

  it('runs a container from the pulled image', async () => {
    const ref = `${wharf.host}/e2e/app:v1`
    await docker(['pull', ref])
    const r = await docker(['run', '--rm', '--network', 'none', ref, '/bin/busybox', 'echo', 'hi'])
    assert.equal(r.stdout, 'hi\n')
    const files = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      ref,
      '/bin/sh',
      '-c',
      'cat /etc/wharf/hello.txt /etc/wharf/arch.txt && /bin/busybox wc -l /srv/data.txt',
    ])
    assert.equal(files.stdout, 'hello from wharf layer 2\namd64\n100000 /srv/data.txt\n')
  })

  it('pulls the right platform out of a multi-platform index', async () => {
    // The index is pushed with skopeo (docker itself cannot push one).
    const push = await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--all',
        '--dest-tls-verify=false',
        '--dest-creds',
        `root:${wharf.rootPassword}`,
        images.oci('index'),
        `docker://${wharf.host}/e2e/multiarch:v1`,
      ],
      { timeoutMs: 120_000 },
    )
    assert.equal(push.code, 0, describeResult(push))
    await removeAllImages()
    const ref = `${wharf.host}/e2e/multiarch:v1`
    const r = await docker(['pull', ref])
    assert.match(r.stdout, new RegExp(`Digest: ${images.digests.indexManifest}`), describeResult(r))
    const amd = await inspect(ref)
    assert.equal(amd.Id, images.digests.amd64Config)
    assert.deepEqual(amd.RepoDigests, [`${wharf.host}/e2e/multiarch@${images.digests.indexManifest}`])
    await docker(['pull', '--platform', 'linux/arm64', ref])
    assert.equal((await inspect(ref)).Id, images.digests.arm64Config)
    await removeAllImages()
  })

  it('pushes a committed container on top of the pushed image', async () => {
    const base = `${wharf.host}/e2e/app:v1`
    const derived = `${wharf.host}/e2e/app:v2`
    await docker(['rm', '-f', 'wharf-e2e-commit'])
    await docker([
      'run',
      '--name',
      'wharf-e2e-commit',
      '--network',
      'none',
      base,
      '/bin/sh',
      '-c',
      'echo committed by docker > /etc/wharf/commit.txt',
    ])
    await docker(['commit', 'wharf-e2e-commit', derived])
    await docker(['rm', 'wharf-e2e-commit'])
    const r = await docker(['push', derived])
    const digest = pushDigest(r)
    assert.equal((r.stdout.match(/: Layer already exists$/gm) ?? []).length, 4, describeResult(r))
    assert.equal((r.stdout.match(/: Pushed$/gm) ?? []).length, 1, describeResult(r))
    const m = await getManifest(wharf.url, 'e2e/app', 'v2')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), digest)
    assert.equal((JSON.parse(m.body.toString('utf8')) as ImageManifest).layers.length, 5)

    await removeAllImages()
    await docker(['pull', derived])
    const out = await docker(['run', '--rm', '--network', 'none', derived, '/bin/busybox', 'cat', '/etc/wharf/commit.txt'])
    assert.equal(out.stdout, 'committed by docker\n')
  })
})
