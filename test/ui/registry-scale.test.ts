// A repository with 5,000 tags in the Registry tab (Debian's Chromium, playwright-core): one small
// image pushed over the registry API, then 5,000 tags as manifest PUTs; the tab's first page and a
// filter must each render within a small bound.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { http, parseChallenge, registryToken, sha256 } from '../helpers/registry.ts'

const TAGS = 5000
const BOUND_MS = 2000
let wharf: Wharf
let browser: Browser
let page: Page
let projectId: number

async function pushTags(name: string): Promise<void> {
  const base = wharf.url
  const probe = await fetch(`${base}/v2/${name}/blobs/uploads/`, { method: 'POST' })
  const challenge = parseChallenge(probe.headers.get('www-authenticate'))!
  const token = await registryToken(challenge, { username: 'root', password: wharf.rootPassword })
  const auth = { authorization: `Bearer ${token}` }
  const blob = async (data: Buffer) => {
    const digest = sha256(data)
    const start = await http('POST', `${base}/v2/${name}/blobs/uploads/`, { headers: auth })
    assert.equal(start.status, 202, start.describe)
    const loc = new URL(start.headers.get('location')!, base)
    loc.searchParams.set('digest', digest)
    const put = await http('PUT', loc.toString(), { headers: { ...auth, 'content-type': 'application/octet-stream' }, body: data })
    assert.equal(put.status, 201, put.describe)
    return { digest, size: data.length }
  }
  const config = await blob(
    Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] }, config: {} })),
  )
  const layer = await blob(Buffer.from('not really a layer'))
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  )
  const names = Array.from({ length: TAGS }, (_, i) => `v${String(i).padStart(4, '0')}`)
  const workers = Array.from({ length: 16 }, async (_, w) => {
    for (let i = w; i < names.length; i += 16) {
      const r = await fetch(`${base}/v2/${name}/manifests/${names[i]}`, {
        method: 'PUT',
        headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
        body: manifest,
      })
      assert.equal(r.status, 201, `${names[i]}: ${r.status} ${await r.text()}`)
      await r.arrayBuffer().catch(() => undefined)
    }
  })
  await Promise.all(workers)
}

before(async () => {
  wharf = await startWharf()
  projectId = await wharf.createProject('big/app', 'private')
  const t0 = Date.now()
  await pushTags('big/app')
  process.stderr.write(`pushed ${TAGS} tags in ${Date.now() - t0} ms\n`)
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
})

describe('Registry tab with 5,000 tags', () => {
  it('renders the first page and narrows with a filter, each within 2 s', async () => {
    const t0 = Date.now()
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry`)
    await page.locator('tr[data-tag="v0000"]').waitFor()
    const first = Date.now() - t0
    assert.match(
      await page
        .getByRole('row', { name: /big\/app/ })
        .first()
        .innerText(),
      /\b5000\b/,
      'the tag count',
    )
    assert.match(await page.locator('.pager').innerText(), /5000 tags/)

    const t1 = Date.now()
    await page.getByLabel('Filter tags').fill('v4321')
    await page.locator('tr[data-tag="v4321"]').waitFor()
    await page.locator('tr[data-tag="v0000"]').waitFor({ state: 'detached' })
    const filtered = Date.now() - t1
    assert.equal(await page.locator('tr[data-tag]').count(), 1)
    assert.match(await page.locator('.pager').innerText(), /1 tag matching/)

    await page.getByLabel('Filter tags').fill('')
    await page.locator('tr[data-tag="v0000"]').waitFor()
    const t2 = Date.now()
    await page.getByRole('button', { name: 'Next' }).click()
    await page.locator('tr[data-tag="v0020"]').waitFor()
    const next = Date.now() - t2
    process.stderr.write(`first page ${first} ms, filter ${filtered} ms, next page ${next} ms\n`)
    assert.ok(first < BOUND_MS, `first page in ${first} ms`)
    assert.ok(filtered < BOUND_MS, `filter in ${filtered} ms`)
    assert.ok(next < BOUND_MS, `next page in ${next} ms`)
  })
})
