// End-to-end: the real, unmodified skopeo against a freshly started Wharf.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import {
  deleteManifest,
  getManifest,
  http,
  layoutManifest,
  listTags,
  readLayoutBlob,
  sha256,
  type ImageIndex,
  type ImageManifest,
} from '../helpers/registry.ts'

let wharf: Wharf
let images: TestImages
let work: string

/** Root's credentials for every registry reference in the command (`--creds`, or `--src-creds`/`--dest-creds` for copy). */
function withCreds(args: string[]): string[] {
  const creds = `root:${wharf.rootPassword}`
  const i = args.findIndex((a) => ['copy', 'inspect', 'list-tags', 'delete'].includes(a))
  if (i < 0) return args
  const refs = args.slice(i + 1).filter((a) => !a.startsWith('-'))
  let extra: string[]
  if (args[i] === 'copy') {
    extra = []
    if (refs.at(-2)?.startsWith('docker://')) extra.push('--src-creds', creds)
    if (refs.at(-1)?.startsWith('docker://')) extra.push('--dest-creds', creds)
  } else {
    extra = ['--creds', creds]
  }
  return [...args.slice(0, i + 1), ...extra, ...args.slice(i + 1)]
}

function skopeo(args: string[]): Promise<RunResult> {
  // --insecure-policy: do not depend on the machine's /etc/containers/policy.json.
  return run('skopeo', ['--insecure-policy', ...withCreds(args)], { timeoutMs: 120_000 })
}

async function skopeoOk(args: string[]): Promise<RunResult> {
  const r = await skopeo(args)
  assert.equal(r.code, 0, `skopeo failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

// --debug: skopeo only reports reused ("skipped") and mounted blobs in its
// debug log when its output is not a terminal.
const copy = (src: string, dst: string, ...extra: string[]) =>
  skopeoOk(['--debug', 'copy', '--src-tls-verify=false', '--dest-tls-verify=false', ...extra, src, dst])

async function inspectRaw(ref: string): Promise<Buffer> {
  const r = await skopeoOk(['inspect', '--tls-verify=false', '--raw', ref])
  return Buffer.from(r.stdout, 'utf8')
}

const reg = (repoAndRef: string) => `docker://${wharf.host}/${repoAndRef}`

/** Blobs skopeo copy handled ("Copying blob sha256:..."), in order. */
function copiedBlobs(r: RunResult): string[] {
  return [...r.stdout.matchAll(/^Copying blob (sha256:[0-9a-f]{64})/gm)].map((m) => m[1]!)
}

/** Blobs skopeo found already present at the destination (debug log), sorted. */
function skippedBlobs(r: RunResult): string[] {
  return [...r.stderr.matchAll(/Skipping blob (sha256:[0-9a-f]{64}) \(already present\)/g)].map((m) => m[1]!).sort()
}

/** Number of successful cross-repository mounts (debug log). */
function mounts(r: RunResult): number {
  return [...r.stderr.matchAll(/\.\.\. mount OK/g)].length
}

const sorted = (a: readonly string[]) => [...a].sort()

/** Compact output for assertion messages (the debug log is long). */
function brief(r: RunResult): string {
  const keep = r.stderr
    .split('\n')
    .filter((l) => !l.includes('level=debug') || /Skipping|mount|error|status/i.test(l))
    .join('\n')
  return describeResult({ ...r, stderr: keep })
}

before(async () => {
  images = await testImages()
  wharf = await startWharf()
  // Every image lives in a project; these suites' repositories are each a project of group e2e.
  for (const p of ['e2e/multi', 'e2e/multiarch', 'e2e/a', 'e2e/b', 'e2e/t']) await wharf.createProject(p)
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-skopeo-'))
})

after(async () => {
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('skopeo', { timeout: 170_000 }, () => {
  it('pushes a multi-layer OCI image', async () => {
    const r = await copy(images.oci('amd64'), reg('e2e/multi:v1'))
    assert.deepEqual(copiedBlobs(r), images.digests.amd64Layers, brief(r))
    assert.deepEqual(skippedBlobs(r), [], brief(r))
  })

  it('inspect --raw returns the manifest byte for byte', async () => {
    const raw = await inspectRaw(reg('e2e/multi:v1'))
    assert.equal(sha256(raw), images.digests.amd64Manifest)
    const m = JSON.parse(raw.toString('utf8')) as ImageManifest
    assert.deepEqual(
      m.layers.map((l) => l.digest),
      images.digests.amd64Layers,
    )
    const r = await skopeoOk(['inspect', '--tls-verify=false', reg('e2e/multi:v1')])
    const info = JSON.parse(r.stdout) as { Digest: string; Architecture: string; Layers: string[] }
    assert.equal(info.Digest, images.digests.amd64Manifest)
    assert.equal(info.Architecture, 'amd64')
    assert.deepEqual(info.Layers, images.digests.amd64Layers)

    const direct = await getManifest(wharf.url, 'e2e/multi', 'v1')
    assert.equal(direct.status, 200, direct.describe)
    assert.equal(direct.headers.get('docker-content-digest'), images.digests.amd64Manifest, direct.describe)
    assert.equal(direct.headers.get('content-type'), 'application/vnd.oci.image.manifest.v1+json')
  })

  it('pulls back byte-identical layers and config', async () => {
    const dest = path.join(work, 'back')
    await copy(reg('e2e/multi:v1'), `oci:${dest}:v1`)
    const back = await layoutManifest(dest, 'v1')
    assert.equal(back.digest, images.digests.amd64Manifest)
    const orig = await layoutManifest(images.ociLayout, 'amd64')
    assert.deepEqual(back.manifest, orig.manifest)
    for (const d of [back.manifest.config, ...back.manifest.layers]) {
      const got = await readLayoutBlob(dest, d.digest)
      const want = await readLayoutBlob(images.ociLayout, d.digest)
      assert.equal(sha256(got), d.digest, `blob ${d.digest} pulled back corrupt`)
      assert.ok(got.equals(want), `blob ${d.digest} differs from the original`)
      assert.equal(got.length, d.size)
    }
  })

  it('skips blobs that already exist on re-push', async () => {
    const r = await copy(images.oci('amd64'), reg('e2e/multi:v1'))
    assert.deepEqual(skippedBlobs(r), sorted(images.digests.amd64Layers), brief(r))
  })

  it('pulls by digest', async () => {
    const ref = `e2e/multi@${images.digests.amd64Manifest}`
    const raw = await inspectRaw(reg(ref))
    assert.equal(sha256(raw), images.digests.amd64Manifest)
    const dest = path.join(work, 'bydigest')
    await copy(reg(ref), `oci:${dest}:x`)
    const got = await layoutManifest(dest, 'x')
    assert.equal(got.digest, images.digests.amd64Manifest)
  })

  it('lists tags and the catalog', async () => {
    await copy(reg('e2e/multi:v1'), reg('e2e/multi:v2'))
    const tags = await listTags(wharf.url, 'e2e/multi')
    assert.equal(tags.status, 200, tags.describe)
    assert.deepEqual(tags.tags, ['v1', 'v2'])
    const r = await skopeoOk(['list-tags', '--tls-verify=false', reg('e2e/multi')])
    assert.deepEqual((JSON.parse(r.stdout) as { Tags: string[] }).Tags.sort(), ['v1', 'v2'])
    const cat = await http('GET', `${wharf.url}/v2/_catalog`)
    assert.equal(cat.status, 200, cat.describe)
    const repos = (JSON.parse(cat.body.toString('utf8')) as { repositories: string[] }).repositories
    assert.ok(repos.includes('e2e/multi'), cat.describe)
  })

  it('pushes a multi-platform index with --all and pulls one platform', async () => {
    const r = await copy(images.oci('index'), reg('e2e/multiarch:v1'), '--all')
    // Both platforms' layers were pushed (the shared ones are already present
    // in e2e/multiarch, or mounted, for the second image).
    const all = new Set([...images.digests.amd64Layers, ...images.digests.arm64Layers])
    assert.deepEqual(new Set(copiedBlobs(r)), all, brief(r))

    const raw = await inspectRaw(reg('e2e/multiarch:v1'))
    assert.equal(sha256(raw), images.digests.indexManifest)
    const index = JSON.parse(raw.toString('utf8')) as ImageIndex
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json')
    assert.deepEqual(
      index.manifests.map((m) => [m.platform?.architecture, m.digest]),
      [
        ['amd64', images.digests.amd64Manifest],
        ['arm64', images.digests.arm64Manifest],
      ],
    )
    const direct = await getManifest(wharf.url, 'e2e/multiarch', 'v1')
    assert.equal(direct.status, 200, direct.describe)
    assert.equal(direct.headers.get('content-type'), 'application/vnd.oci.image.index.v1+json', direct.describe)

    // The arm64 image, by platform selection...
    const dest = path.join(work, 'arm64')
    await copy(reg('e2e/multiarch:v1'), `oci:${dest}:v1`, '--override-arch', 'arm64')
    const arm = await layoutManifest(dest, 'v1')
    assert.equal(arm.digest, images.digests.arm64Manifest)
    assert.deepEqual(
      arm.manifest.layers.map((l) => l.digest),
      images.digests.arm64Layers,
    )
    const archFile = await readLayoutBlob(dest, images.digests.arm64Layers[3]!)
    assert.equal(sha256(archFile), images.digests.arm64Layers[3])
    const cfg = JSON.parse((await readLayoutBlob(dest, arm.manifest.config.digest)).toString('utf8')) as {
      architecture: string
    }
    assert.equal(cfg.architecture, 'arm64')

    // ...and the amd64 one by digest inside the same repository.
    const amd = await inspectRaw(reg(`e2e/multiarch@${images.digests.amd64Manifest}`))
    assert.equal(sha256(amd), images.digests.amd64Manifest)
  })

  it('copies between two repositories of the registry (cross-repo mount)', async () => {
    await copy(images.oci('amd64'), reg('e2e/a:v1'))
    const r = await copy(reg('e2e/a:v1'), reg('e2e/b:v1'))
    // skopeo knows (from its blob info cache) that the blobs are in e2e/a of
    // this registry and mounts them (POST ...?mount=&from=e2e/a) instead of
    // uploading them again.
    assert.equal(mounts(r), 4, brief(r))
    assert.deepEqual(skippedBlobs(r), sorted(images.digests.amd64Layers), brief(r))
    const raw = await inspectRaw(reg('e2e/b:v1'))
    assert.equal(sha256(raw), images.digests.amd64Manifest)
    for (const d of images.digests.amd64Layers) {
      const head = await http('HEAD', `${wharf.url}/v2/e2e/b/blobs/${d}`)
      assert.equal(head.status, 200, head.describe)
    }
    const dest = path.join(work, 'b')
    await copy(reg('e2e/b:v1'), `oci:${dest}:v1`)
    assert.equal((await layoutManifest(dest, 'v1')).digest, images.digests.amd64Manifest)
  })

  it('deletes a tag only, then the manifest by digest', async (t) => {
    await copy(images.oci('amd64'), reg('e2e/t:one'))
    await copy(reg('e2e/t:one'), reg('e2e/t:two'))
    assert.deepEqual((await listTags(wharf.url, 'e2e/t')).tags, ['one', 'two'])

    if (wharf.kind === 'reference') {
      t.diagnostic('reference registry (distribution 2.8) cannot delete a tag alone; skipping that part')
    } else {
      // OCI distribution 1.1: DELETE /v2/<name>/manifests/<tag> removes the tag only.
      const del = await deleteManifest(wharf.url, 'e2e/t', 'one')
      assert.equal(del.status, 202, del.describe)
      const gone = await skopeo(['inspect', '--tls-verify=false', '--raw', reg('e2e/t:one')])
      assert.notEqual(gone.code, 0, `e2e/t:one still resolves after DELETE of the tag:\n${describeResult(gone)}`)
      assert.match(gone.stderr, /manifest unknown|not found/i, describeResult(gone))
      const still = await inspectRaw(reg('e2e/t:two'))
      assert.equal(sha256(still), images.digests.amd64Manifest)
      const byDigest = await getManifest(wharf.url, 'e2e/t', images.digests.amd64Manifest)
      assert.equal(byDigest.status, 200, byDigest.describe)
      assert.deepEqual((await listTags(wharf.url, 'e2e/t')).tags, ['two'])
      // Put tag one back for the delete-by-digest part.
      await copy(reg('e2e/t:two'), reg('e2e/t:one'))
    }

    // skopeo delete resolves the tag and deletes the manifest by digest: both tags go.
    await skopeoOk(['delete', '--tls-verify=false', reg('e2e/t:one')])
    for (const tag of ['one', 'two']) {
      const r = await skopeo(['inspect', '--tls-verify=false', '--raw', reg(`e2e/t:${tag}`)])
      assert.notEqual(r.code, 0, `e2e/t:${tag} still resolves after skopeo delete:\n${describeResult(r)}`)
    }
    const byDigest = await getManifest(wharf.url, 'e2e/t', images.digests.amd64Manifest)
    assert.equal(byDigest.status, 404, byDigest.describe)
    // Other repositories holding the same manifest are untouched.
    assert.equal(sha256(await inspectRaw(reg('e2e/a:v1'))), images.digests.amd64Manifest)
  })

  it('keeps everything across a server restart', async () => {
    const pidBefore = wharf.pid
    await wharf.restart()
    assert.notEqual(wharf.pid, pidBefore)
    assert.equal(sha256(await inspectRaw(reg('e2e/multi:v1'))), images.digests.amd64Manifest)
    assert.equal(sha256(await inspectRaw(reg('e2e/multiarch:v1'))), images.digests.indexManifest)
    const dest = path.join(work, 'after-restart')
    await copy(reg('e2e/multi:v1'), `oci:${dest}:v1`)
    const back = await layoutManifest(dest, 'v1')
    for (const d of back.manifest.layers) {
      assert.equal(sha256(await readLayoutBlob(dest, d.digest)), d.digest)
    }
    const again = await copy(images.oci('amd64'), reg('e2e/multi:v1'))
    assert.deepEqual(skippedBlobs(again), sorted(images.digests.amd64Layers), brief(again))
  })
})
