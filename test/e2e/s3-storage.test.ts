// End-to-end: Wharf with `storage: s3` on a real S3-compatible store (Swift's s3api on loopback,
// started once for this file). docker and skopeo push and pull through it, a chunked upload in
// small PATCHes lands as one blob, blob GETs redirect to presigned URLs the clients follow, and a
// shell-runner job's log and artifacts live in the bucket. Nothing of it lands in the data directory.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { getManifest, http, sha256 } from '../helpers/registry.ts'
import { describeResult, run } from '../helpers/run.ts'
import { CiProject, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { startSwift, type SwiftS3 } from '../helpers/swift.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

const PREFIX = 'e2e/'
const MiB = 1 << 20
let swift: SwiftS3
let wharf: Wharf
let engine: Engine
let images: TestImages
let work: string

before(async () => {
  ;[swift, engine, images, work] = await Promise.all([
    startSwift(),
    startEngine(),
    testImages(),
    mkdtemp(path.join(tmpdir(), 'wharf-s3-e2e-')),
  ])
  wharf = await startWharf({
    env: {
      WHARF_STORAGE: 's3',
      // Another host name than Wharf's 127.0.0.1: clients following a presigned redirect do not send Wharf's token along.
      WHARF_S3_ENDPOINT: swift.endpoint.replace('127.0.0.1', 'localhost'),
      WHARF_S3_REGION: swift.region,
      WHARF_S3_BUCKET: swift.bucket,
      WHARF_S3_PREFIX: PREFIX,
      WHARF_S3_ACCESS_KEY_ID: swift.accessKeyId,
      WHARF_S3_SECRET_ACCESS_KEY: swift.secretAccessKey,
      WHARF_S3_FORCE_PATH_STYLE: 'true',
      WHARF_S3_REDIRECT: 'true',
    },
  })
  for (const p of ['e2e/app', 'e2e/multi', 'e2e/chunked']) await wharf.createProject(p)
})

after(async () => {
  await wharf?.stop()
  await engine?.stop()
  await swift?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

async function ok(cmd: string, args: string[]) {
  const r = await run(cmd, args, { timeoutMs: 120_000 })
  assert.equal(r.code, 0, `${cmd} failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

describe('storage: s3', { timeout: 240_000 }, () => {
  it('docker pushes and pulls; the blobs are objects in the bucket, none in the data directory', async () => {
    const docker = (args: string[]) => engine.docker(args, { timeoutMs: 120_000 })
    const login = await engine.docker(['login', '--username', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    assert.equal(login.code, 0, describeResult(login))
    for (const args of [
      ['load', '-i', images.dockerArchive],
      ['tag', images.dockerArchiveTag, `${wharf.host}/e2e/app:v1`],
      ['push', `${wharf.host}/e2e/app:v1`],
    ]) {
      const r = await docker(args)
      assert.equal(r.code, 0, `docker ${args[0]}:\n${describeResult(r)}\n${await wharf.logTail(40)}`)
    }
    const keys = await swift.keys(`${PREFIX}blobs/`)
    const manifest = await getManifest(wharf.url, 'e2e/app', 'v1')
    assert.equal(manifest.status, 200, manifest.describe)
    const { layers } = JSON.parse(manifest.body.toString('utf8')) as { layers: Array<{ digest: string }> }
    for (const layer of layers.map((l) => l.digest)) {
      const hex = layer.slice('sha256:'.length)
      assert.ok(keys.includes(`${PREFIX}blobs/sha256/${hex.slice(0, 2)}/${hex}`), `layer ${layer} in the bucket: ${keys.join(' ')}`)
    }
    assert.deepEqual(await swift.keys(`${PREFIX}uploads/`), [], 'no upload temp objects left')
    assert.ok(!existsSync(path.join(wharf.dataDir, 'storage', 'blobs')), 'no blob on local disk')
    // A pull after removing the local copy downloads every layer again (through the presigned redirects).
    const ids = (await docker(['images', '-aq'])).stdout.split('\n').filter(Boolean)
    await docker(['rmi', '-f', ...new Set(ids)])
    const pulled = await docker(['pull', `${wharf.host}/e2e/app:v1`])
    assert.equal(pulled.code, 0, `docker pull:\n${describeResult(pulled)}\n${await wharf.logTail(40)}`)
    const inspected = await docker(['image', 'inspect', '--format', '{{.Id}}', `${wharf.host}/e2e/app:v1`])
    assert.equal(inspected.stdout.trim(), images.digests.amd64Config)
  })

  it('skopeo copies an image in and out again byte for byte', async () => {
    const creds = `root:${wharf.rootPassword}`
    const ref = `docker://${wharf.host}/e2e/multi:amd64`
    await ok('skopeo', ['--insecure-policy', 'copy', '--dest-tls-verify=false', '--dest-creds', creds, images.oci('amd64'), ref])
    const out = path.join(work, 'out')
    await ok('skopeo', ['--insecure-policy', 'copy', '--src-tls-verify=false', '--src-creds', creds, ref, `oci:${out}:x`])
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    assert.equal(index.manifests[0]!.digest, images.digests.amd64Manifest)
    for (const layer of images.digests.amd64Layers) {
      const bytes = await readFile(path.join(out, 'blobs', 'sha256', layer.slice(7)))
      assert.equal(sha256(bytes), layer)
    }
  })

  it('a chunked upload in PATCHes smaller than an S3 part becomes one blob; GET redirects to the store; ranges work', async () => {
    const blob = Buffer.alloc(13 * MiB + 4321)
    for (let i = 0; i < blob.length; i++) blob[i] = (i * 7 + (i >> 13)) & 0xff
    const digest = sha256(blob)
    const base = `${wharf.url}/v2/e2e/chunked`
    const start = await http('POST', `${base}/blobs/uploads/`)
    assert.equal(start.status, 202, start.describe)
    let location = new URL(start.headers.get('location')!, wharf.url).toString()
    const chunk = 3 * MiB
    for (let at = 0; at < blob.length; at += chunk) {
      const part = blob.subarray(at, at + chunk)
      const r = await http('PATCH', location, {
        body: part,
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${at}-${at + part.length - 1}` },
      })
      assert.equal(r.status, 202, r.describe)
      location = new URL(r.headers.get('location')!, wharf.url).toString()
    }
    const put = await http('PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${digest}`)
    assert.equal(put.status, 201, put.describe)
    const get = await http('GET', `${base}/blobs/${digest}`, { redirect: 'manual' })
    assert.equal(get.status, 307, get.describe)
    assert.match(get.headers.get('location')!, /^http:\/\/localhost:\d+\/wharf-test\/e2e\/blobs\/sha256\/.*X-Amz-Signature=/)
    const followed = await http('GET', `${base}/blobs/${digest}`)
    assert.equal(followed.status, 200)
    assert.equal(sha256(followed.body), digest)
    const ranged = await http('GET', `${base}/blobs/${digest}`, { headers: { range: `bytes=${5 * MiB}-${5 * MiB + 99}` } })
    assert.equal(ranged.status, 206)
    assert.ok(ranged.body.equals(blob.subarray(5 * MiB, 5 * MiB + 100)))
    assert.deepEqual(await swift.keys(`${PREFIX}uploads/`), [])
  })
})

describe('storage: s3, CI', { timeout: 120_000 }, () => {
  let runner: RunnerChild | undefined
  let project: CiProject | undefined
  after(async () => {
    await runner?.stop()
    await project?.dispose()
  })

  it("a shell-runner job's log and artifacts are stored in the bucket and served from it", async () => {
    project = await CiProject.create(wharf, 'e2e-s3/ci')
    runner = await startRunner(wharf, ['--executor', 'shell', '--name', 'e2e-s3'])
    const ci = `
build:
  script:
    - mkdir -p out && echo "made on s3" > out/result.txt
    - for i in $(seq 1 200); do echo "log line $i of the s3 job"; done
  artifacts:
    paths: [out/]
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'ci on s3')
    const { pipeline, jobs } = await project.wait(p.id)
    const job = jobs[0]!
    const log = plainLog(await project.trace(job.id))
    assert.equal(pipeline.status, 'success', log)
    assert.match(log, /log line 200 of the s3 job/)
    assert.match(log, /Job succeeded/)
    const traceKey = `${PREFIX}ci/traces/${job.id}.log`
    assert.ok((await swift.keys(`${PREFIX}ci/traces/`)).includes(traceKey))
    const archives = await swift.keys(`${PREFIX}ci/artifacts/${job.id}/`)
    assert.deepEqual(archives, [`${PREFIX}ci/artifacts/${job.id}/artifacts.zip`])
    assert.ok(!existsSync(path.join(wharf.dataDir, 'ci', 'traces')), 'no job log on local disk')
    const file = await wharf.api('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/artifacts/out/result.txt`)
    assert.equal(file.status, 200, file.describe)
    assert.equal(file.text, 'made on s3\n')
  })
})
