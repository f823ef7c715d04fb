// End-to-end: the real buildah against a freshly started Wharf: build on top
// of an image pulled from Wharf, push the result, pull it back with skopeo.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import { getManifest, layoutManifest, readLayoutBlob, sha256, tarFiles, type ImageManifest } from '../helpers/registry.ts'

let wharf: Wharf
let images: TestImages
let work: string
let storage: PrivateStorage
let builtDigest = ''

const ADDED = 'added by buildah, pushed to wharf\n'

async function check(r: RunResult, what: string): Promise<RunResult> {
  assert.equal(r.code, 0, `${what} failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

async function buildah(args: string[]): Promise<RunResult> {
  return check(await run('buildah', [...storage.args, ...args], { timeoutMs: 120_000, env: storage.env }), 'buildah')
}

async function skopeo(args: string[]): Promise<RunResult> {
  return check(await run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 }), 'skopeo')
}

interface ImageConfig {
  architecture: string
  config: { Labels?: Record<string, string> }
  rootfs: { diff_ids: string[] }
}

async function originalConfig(): Promise<ImageConfig> {
  return JSON.parse((await readLayoutBlob(images.ociLayout, images.digests.amd64Config)).toString('utf8')) as ImageConfig
}

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-buildah-'))
  storage = await privateStorage(work)
  wharf = await startWharf()
  for (const p of ['e2e/base', 'e2e/built']) await wharf.createProject(p)
  // buildah keeps the credentials in this suite's private auth file (REGISTRY_AUTH_FILE).
  await check(
    await run('buildah', ['login', '--tls-verify=false', '--username', 'root', '--password-stdin', wharf.host], {
      timeoutMs: 60_000,
      env: storage.env,
      input: wharf.rootPassword,
    }),
    'buildah login',
  )
  // The base image, pushed with skopeo.
  await skopeo([
    'copy',
    '--dest-tls-verify=false',
    '--dest-creds',
    `root:${wharf.rootPassword}`,
    images.oci('amd64'),
    `docker://${wharf.host}/e2e/base:v1`,
  ])
})

after(async () => {
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('buildah', { timeout: 170_000 }, () => {
  it('builds on an image pulled from Wharf and pushes the result', async () => {
    const from = await buildah(['from', '--tls-verify=false', '--name', 'wharf-e2e-ctr', `docker://${wharf.host}/e2e/base:v1`])
    assert.match(from.stdout, /wharf-e2e-ctr/)
    const file = path.join(work, 'added.txt')
    await writeFile(file, ADDED)
    await buildah(['copy', '--chmod', '0644', 'wharf-e2e-ctr', file, '/etc/wharf/added.txt'])
    await buildah(['config', '--label', 'org.example.built-by=wharf-e2e', 'wharf-e2e-ctr'])
    await buildah(['commit', '--format', 'oci', 'wharf-e2e-ctr', `${wharf.host}/e2e/built:v1`])
    const digestFile = path.join(work, 'built.digest')
    await buildah([
      'push',
      '--tls-verify=false',
      '--digestfile',
      digestFile,
      `${wharf.host}/e2e/built:v1`,
      `docker://${wharf.host}/e2e/built:v1`,
    ])
    builtDigest = (await readFile(digestFile, 'utf8')).trim()
    const m = await getManifest(wharf.url, 'e2e/built', 'v1')
    assert.equal(m.status, 200, m.describe)
    assert.equal(sha256(m.body), builtDigest)
    const manifest = JSON.parse(m.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.layers.length, 5, m.describe)
  })

  it('pulls the built image back with skopeo: base layers plus the new one', async () => {
    const dest = path.join(work, 'pulled')
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      '--src-creds',
      `root:${wharf.rootPassword}`,
      `docker://${wharf.host}/e2e/built:v1`,
      `oci:${dest}:v1`,
    ])
    const { digest, manifest } = await layoutManifest(dest, 'v1')
    assert.equal(digest, builtDigest)
    assert.equal(manifest.layers.length, 5)

    const cfg = JSON.parse((await readLayoutBlob(dest, manifest.config.digest)).toString('utf8')) as ImageConfig
    const base = await originalConfig()
    assert.deepEqual(cfg.rootfs.diff_ids.slice(0, 4), base.rootfs.diff_ids, 'base layers changed')
    assert.equal(cfg.rootfs.diff_ids.length, 5)
    assert.equal(cfg.config.Labels?.['org.example.built-by'], 'wharf-e2e')

    for (const d of manifest.layers) {
      assert.equal(sha256(await readLayoutBlob(dest, d.digest)), d.digest, `layer ${d.digest} corrupt`)
    }
    const newLayer = manifest.layers[4]!
    const files = tarFiles(await readLayoutBlob(dest, newLayer.digest))
    assert.equal(files.get('etc/wharf/added.txt')?.toString('utf8'), ADDED, [...files.keys()].join(', '))
    // The base image's files are untouched in the lower layers.
    const l2 = tarFiles(await readLayoutBlob(dest, manifest.layers[1]!.digest))
    assert.equal(l2.get('etc/wharf/hello.txt')?.toString('utf8'), 'hello from wharf layer 2\n')
  })

  it('pulls the built image into fresh storage with buildah', async () => {
    await buildah(['rm', '--all'])
    await buildah(['rmi', '--all', '--force'])
    await buildah(['pull', '--tls-verify=false', `docker://${wharf.host}/e2e/built:v1`])
    const r = await buildah(['inspect', '--type', 'image', `${wharf.host}/e2e/built:v1`])
    const info = JSON.parse(r.stdout) as { FromImageDigest: string; OCIv1: ImageConfig }
    assert.equal(info.FromImageDigest, builtDigest)
    assert.equal(info.OCIv1.rootfs.diff_ids.length, 5)
  })
})
