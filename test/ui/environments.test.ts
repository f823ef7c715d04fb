// Environments and Releases in Debian's Chromium (playwright-core) against a started Wharf and a
// shell runner: the Environments tab lists an environment a pipeline deployed to (state, last
// deployment, URL), Stop runs its on_stop job, the environment's page lists its deployments; the
// Releases tab shows a release's notes rendered from Markdown and its asset links.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, signIn } from '../helpers/browser.ts'
import { CiProject, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let runner: RunnerChild
let browser: Browser
let page: Page
let ci: CiProject

const CI = `deploy:
  script: [echo deploying]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    url: https://$CI_COMMIT_REF_SLUG.example.com
    on_stop: stop
stop:
  script: [echo stopping]
  when: manual
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    action: stop
`

before(async () => {
  wharf = await startWharf()
  runner = await startRunner(wharf, ['--executor', 'shell', '--name', 'ui-environments'])
  ci = await CiProject.create(wharf, 'team/app')
  const pushed = await ci.push({ '.gitlab-ci.yml': CI }, 'deploy')
  const done = await ci.wait(pushed.id, 60_000)
  assert.equal(done.pipeline.status, 'success', JSON.stringify(done.jobs))
  browser = await launchBrowser()
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  page.setDefaultTimeout(15_000)
  await signIn(page, wharf, 'root', wharf.rootPassword)
})

after(async () => {
  await browser?.close()
  await runner?.stop()
  await ci?.dispose()
  await wharf?.stop()
})

describe('web UI environments and releases', () => {
  it('lists an environment with its last deployment and URL, stops it through on_stop, and lists its deployments', async () => {
    await page.goto(`${wharf.url}/-/projects/${ci.id}`)
    await page.getByRole('navigation', { name: 'Project' }).getByRole('link', { name: 'Environments' }).click()
    const table = page.getByRole('table', { name: 'Environments' })
    const row = table.getByRole('row').filter({ hasText: 'review/main' })
    await row.waitFor()
    assert.match(await row.innerText(), /development[\s\S]*available[\s\S]*success[\s\S]*#1 deploy[\s\S]*main/)
    assert.equal(await row.getByRole('link', { name: 'https://main.example.com' }).getAttribute('href'), 'https://main.example.com')

    await row.getByRole('button', { name: 'Stop review/main' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Stop' }).click()
    // Stopping until the runner has run the stop job; the page reads the state again when opened.
    for (const deadline = Date.now() + 30_000; ; ) {
      await page.goto(`${wharf.url}/-/projects/${ci.id}/environments`)
      const text = await table.getByRole('row').filter({ hasText: 'review/main' }).innerText()
      if (/stopped/.test(text)) break
      assert.match(text, /stopping/)
      assert.ok(Date.now() < deadline, 'the environment was not stopped')
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.equal(await table.getByRole('button', { name: 'Stop review/main' }).count(), 0, 'a stopped environment has no Stop button')
    const [env] = (await wharf.api('GET', `/api/v4/projects/${ci.id}/environments`)).json
    assert.equal(env.state, 'stopped')

    await table.getByRole('link', { name: 'review/main' }).click()
    const deployments = page.getByRole('table', { name: 'Deployments' })
    await deployments.waitFor()
    const rows = deployments.getByRole('row')
    assert.equal(await rows.count(), 2, 'the header and one deployment (a stop job deploys nothing)')
    assert.match(await rows.nth(1).innerText(), /success[\s\S]*#1 deploy[\s\S]*root/)
  })

  it('shows releases with their Markdown notes rendered and their links', async () => {
    const created = await wharf.api('POST', `/api/v4/projects/${ci.id}/releases`, {
      tag_name: 'v1.0',
      ref: 'main',
      name: 'First release',
      description: '## Notes\n\n- **faster** pulls\n- <script>alert(1)</script> stays text',
      assets: { links: [{ name: 'Linux binary', url: 'https://dl.example.com/app-linux', link_type: 'package' }] },
    })
    assert.equal(created.status, 201, created.describe)
    await page.goto(`${wharf.url}/-/projects/${ci.id}`)
    await page.getByRole('navigation', { name: 'Project' }).getByRole('link', { name: 'Releases' }).click()
    const release = page.getByRole('region', { name: 'Release First release' })
    await release.waitFor()
    const notes = release.getByRole('article', { name: 'First release notes' })
    assert.equal(await notes.locator('h2').innerText(), 'Notes')
    assert.equal(await notes.locator('li strong').innerText(), 'faster')
    assert.equal(await notes.locator('script').count(), 0)
    assert.match(await notes.innerText(), /<script>alert\(1\)<\/script> stays text/)
    const link = release.getByRole('link', { name: 'Linux binary' })
    assert.equal(await link.getAttribute('href'), 'https://dl.example.com/app-linux')
    assert.match(await release.innerText(), /v1\.0[\s\S]*Released just now by root/)
  })
})
