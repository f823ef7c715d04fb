// The Registry tab in Debian's Chromium (playwright-core): deleting an image repository, after real
// skopeo pushes of two images of one project. The other image stays, pulls of the deleted one stop.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages } from '../helpers/images.ts'
import { describeResult, run } from '../helpers/run.ts'

let wharf: Wharf
let browser: Browser
let page: Page
let projectId: number

async function skopeo(args: string[]) {
  const r = await run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, describeResult(r))
  return r
}

before(async () => {
  wharf = await startWharf()
  projectId = await wharf.createProject('team/app', 'private')
  const images = await testImages()
  const creds = `root:${wharf.rootPassword}`
  for (const name of ['team/app:v1', 'team/app/api:v1'])
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds, images.oci('amd64'), `docker://${wharf.host}/${name}`])
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
})

describe('Registry tab', () => {
  it('deletes an image repository after a confirmation naming it; the other image stays', async () => {
    const repos = await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories`)
    const api = (repos.json as Array<{ id: number; path: string }>).find((r) => r.path === 'team/app/api')!
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry?repository=${api.id}`)
    await page.getByRole('button', { name: `Delete image ${wharf.host}/team/app/api` }).click()
    const dialog = page.getByRole('dialog')
    assert.match(await dialog.innerText(), /Its 1 tag and manifests are deleted now/)
    await dialog.getByRole('button', { name: 'Delete image' }).click()
    // The Images table links each image by its location.
    await page.getByRole('link', { name: `${wharf.host}/team/app/api`, exact: true }).waitFor({ state: 'detached' })
    await page.getByRole('link', { name: `${wharf.host}/team/app`, exact: true }).waitFor()

    const after = await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories`)
    assert.deepEqual(
      (after.json as Array<{ path: string }>).map((r) => r.path),
      ['team/app'],
    )
    const pull = await run(
      'skopeo',
      [
        '--insecure-policy',
        'inspect',
        '--tls-verify=false',
        '--creds',
        `root:${wharf.rootPassword}`,
        `docker://${wharf.host}/team/app/api:v1`,
      ],
      { timeoutMs: 60_000 },
    )
    assert.notEqual(pull.code, 0)
    assert.match(pull.stderr, /manifest unknown|name unknown|not found/i)
  })
})
