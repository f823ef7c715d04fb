// End-to-end: the real, unmodified skopeo against a started Wharf with registry tag protection
// rules: an immutable tag is pushed once, re-pushing the same image is fine, and neither an
// overwrite with another image nor a delete gets through, even for the administrator.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import { getManifest } from '../helpers/registry.ts'

let wharf: Wharf
let images: TestImages
let projectId: number

function skopeo(args: string[]): Promise<RunResult> {
  // --insecure-policy: do not depend on the machine's /etc/containers/policy.json.
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })
}

const creds = () => `root:${wharf.rootPassword}`
const reg = (ref: string) => `docker://${wharf.host}/${ref}`
const copy = (src: string, dst: string) => skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds(), src, dst])

async function ok(r: RunResult): Promise<RunResult> {
  assert.equal(r.code, 0, `skopeo failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(40)}`)
  return r
}

before(async () => {
  images = await testImages()
  wharf = await startWharf()
  projectId = await wharf.createProject('e2e/locked')
  const rule = await wharf.api('POST', `/api/v4/projects/${projectId}/registry/protection/tag/rules`, { tag_name_pattern: 'release-.*' })
  assert.equal(rule.status, 201, rule.describe)
})

after(async () => {
  await wharf?.stop()
})

describe('protected tags with skopeo', { timeout: 170_000 }, () => {
  it('pushes an immutable tag once and again with the same image', async () => {
    await ok(await copy(images.oci('amd64'), reg('e2e/locked:release-1')))
    await ok(await copy(images.oci('amd64'), reg('e2e/locked:release-1')))
  })

  it('refuses to overwrite it with another image, naming the rule', async () => {
    const r = await copy(images.oci('arm64'), reg('e2e/locked:release-1'))
    assert.notEqual(r.code, 0, `skopeo should have failed:\n${describeResult(r)}`)
    assert.match(r.stderr, /denied/i, describeResult(r))
    assert.match(
      r.stderr,
      /tag 'release-1' is immutable \(protection rule \d+, pattern 'release-\.\*'\): nobody may overwrite it/,
      describeResult(r),
    )
    // A tag the rule does not match takes the other image.
    await ok(await copy(images.oci('arm64'), reg('e2e/locked:edge')))
  })

  it('refuses to delete it', async () => {
    const r = await skopeo(['delete', '--tls-verify=false', '--creds', creds(), reg('e2e/locked:release-1')])
    assert.notEqual(r.code, 0, `skopeo delete should have failed:\n${describeResult(r)}`)
    assert.match(r.stderr, /nobody may delete it/, describeResult(r))
  })

  it('still serves the first image under the tag', async () => {
    const m = await getManifest(wharf.url, 'e2e/locked', 'release-1')
    assert.equal(m.status, 200, m.describe)
    assert.equal(m.headers.get('docker-content-digest'), images.digests.amd64Manifest, m.describe)
  })
})
