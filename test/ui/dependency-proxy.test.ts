// The group page's Dependency proxy section in Debian's Chromium (playwright-core): an image pulled
// with skopeo through the group path (from the stand-in Docker Hub, test/helpers/docker-hub.ts) is
// listed with its tag and size, the upstream's rate limit shows for an administrator, a Maintainer
// sees no purge button (GitLab lets Owners purge), and the purge empties the cache.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, signedInPage, signIn } from '../helpers/browser.ts'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { testImages } from '../helpers/images.ts'
import { describeResult, run } from '../helpers/run.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let hub: DockerHub
let wharf: Wharf
let browser: Browser
let page: Page
let groupId: number

before(async () => {
  const images = await testImages()
  hub = await startDockerHub()
  await hub.seed(images.oci('amd64'), 'library/alpine:3')
  wharf = await startWharf({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([{ host: 'docker.io', url: hub.url }]) } })
  await wharf.createProject('team/app')
  groupId = (await wharf.api('GET', '/api/v4/groups/team')).json.id
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
  await hub?.close()
})

/** The UI's byte format (dom.js formatBytes), to compare with the API's figure. */
function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = n
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}

describe('group page: dependency proxy', () => {
  it('shows how to pull, the pulled image with its tag and size, and the upstream rate limit', async () => {
    await page.goto(`${wharf.url}/-/groups/team`)
    const proxy = page.getByRole('region', { name: 'Dependency proxy' })
    await proxy.getByText(`docker pull ${wharf.host}/team/dependency_proxy/containers/alpine:3`).waitFor()
    await proxy.getByText('image: ${CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX}/alpine:3').waitFor()
    await proxy.getByText('Nothing cached yet.').waitFor()

    const dir = (await run('mktemp', ['-d'])).stdout.trim()
    const r = await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--src-tls-verify=false',
        '--src-creds',
        `root:${wharf.rootPassword}`,
        `docker://${wharf.host}/team/dependency_proxy/containers/alpine:3`,
        `oci:${dir}/a:x`,
      ],
      { timeoutMs: 120_000 },
    )
    await run('rm', ['-rf', dir])
    assert.equal(r.code, 0, describeResult(r))
    const cache = (await wharf.api('GET', `/api/v4/groups/${groupId}/dependency_proxy/cache`)).json
    assert.equal(cache.images.length, 1)
    const size = cache.images[0].size as number
    assert.ok(size > 0)

    await page.reload()
    const row = proxy.locator('tr[data-image="library/alpine"]')
    await row.waitFor()
    const cells = await row.locator('td').allInnerTexts()
    assert.deepEqual(cells.slice(0, 3), ['library/alpine', '3', formatBytes(size)])
    assert.equal(cells[3], 'just now')
    // Administrators see what Docker Hub (the stand-in: 1,000,000 per 6 h) reported on the pull.
    await proxy.locator('tr[data-upstream="docker.io"]').getByText('999999 of 1000000 per 6 h').waitFor()
  })

  it('a Maintainer sees the cache but neither the purge button nor the upstreams', async () => {
    const keeper = await wharf.api('POST', '/api/v4/users', {
      username: 'keeper',
      password: 'keeper-password-1',
      name: 'Keeper',
      email: 'keeper@example.com',
    })
    assert.equal(keeper.status, 201, keeper.describe)
    assert.equal((await wharf.api('POST', `/api/v4/groups/${groupId}/members`, { user_id: keeper.json.id, access_level: 40 })).status, 201)
    const other = await launchBrowser()
    try {
      const p = await (await other.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
      p.setDefaultTimeout(10_000)
      await signIn(p, wharf, 'keeper', 'keeper-password-1')
      await p.goto(`${wharf.url}/-/groups/team`)
      const proxy = p.getByRole('region', { name: 'Dependency proxy' })
      await proxy.locator('tr[data-image="library/alpine"]').waitFor()
      assert.equal(await proxy.getByRole('button', { name: 'Purge cache' }).count(), 0)
      assert.equal(await proxy.locator('tr[data-upstream]').count(), 0)
    } finally {
      await other.close()
    }
  })

  it('the purge asks first, then empties the cache', async () => {
    const proxy = page.getByRole('region', { name: 'Dependency proxy' })
    await proxy.getByRole('button', { name: 'Purge cache' }).click()
    const dialog = page.getByRole('dialog')
    await dialog.getByText(/The 1 cached image of team are removed/).waitFor()
    await dialog.getByRole('button', { name: 'Cancel' }).click()
    assert.equal((await wharf.api('GET', `/api/v4/groups/${groupId}/dependency_proxy/cache`)).json.images.length, 1)

    await proxy.getByRole('button', { name: 'Purge cache' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Purge cache' }).click()
    await page.getByText('Dependency proxy cache purged').waitFor()
    await proxy.getByText('Nothing cached yet.').waitFor()
    assert.deepEqual((await wharf.api('GET', `/api/v4/groups/${groupId}/dependency_proxy/cache`)).json, { size: 0, images: [] })
  })
})
