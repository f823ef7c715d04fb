// The web UI in Debian's Chromium (playwright-core, no downloaded browser) against a started Wharf:
// sign in, create a project, the empty Registry tab naming this server, an image pushed with
// skopeo appearing, copy-pull to the clipboard, deleting one of two tags on one digest, a job log
// streaming live, personal access tokens created and revoked (`docker login` on a private engine,
// and skopeo, refused after).
// WHARF_SCREENSHOTS=1 saves the main pages to docs/screenshots/.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import type { Browser, BrowserContext, Page } from 'playwright-core'
import { launchBrowser, signIn } from '../helpers/browser.ts'
import { repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { run, describeResult } from '../helpers/run.ts'
import { CiProject, createRunner } from '../helpers/runner.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'

const SHOTS = process.env.WHARF_SCREENSHOTS === '1'
let wharf: Wharf
let images: TestImages
let engine: Engine
let browser: Browser
let context: BrowserContext
let page: Page
let projectId: number

async function shot(name: string, width = 1280): Promise<void> {
  if (!SHOTS) return
  const size = page.viewportSize()
  if (width !== size?.width) await page.setViewportSize({ width, height: 900 })
  await page.screenshot({ path: path.join(repoRoot, 'docs', 'screenshots', `${name}.png`), fullPage: true })
  if (size && width !== size.width) await page.setViewportSize(size)
}

/** What the page's clipboard holds (evaluated in the browser; this file has no DOM types). */
function clipboard(): Promise<string> {
  return page.evaluate('navigator.clipboard.readText()') as Promise<string>
}

async function skopeo(args: string[]): Promise<void> {
  const r = await run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, describeResult(r))
}

before(async () => {
  ;[images, wharf, engine] = await Promise.all([testImages(), startWharf(), startEngine()])
  browser = await launchBrowser()
  context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: wharf.url })
  page = await context.newPage()
  page.setDefaultTimeout(10_000)
})

after(async () => {
  await browser?.close()
  await Promise.all([wharf?.stop(), engine?.stop()])
})

describe('web UI', () => {
  it('signs in (an error shows the API message first)', async () => {
    await page.goto(`${wharf.url}/`)
    await page.waitForURL(/\/-\/sign_in/)
    await shot('sign-in')
    await page.getByLabel('Username').fill('root')
    await page.getByLabel('Password').fill('not-the-password')
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').filter({ hasText: 'invalid username or password' }).waitFor()
    await page.getByLabel('Password').fill(wharf.rootPassword)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Your projects' }).waitFor()
    await page.getByRole('button', { name: 'Sign out' }).waitFor()
  })

  it('creates a group and a project in it; the empty Registry tab names this server', async () => {
    await page.getByRole('link', { name: 'New group' }).click()
    await page.getByLabel('Group name').fill('Team')
    assert.equal(await page.getByLabel('Path').inputValue(), 'team')
    await page.getByLabel('internal').check()
    await page.getByRole('button', { name: 'Create group' }).click()
    await page.getByRole('heading', { name: 'Team' }).waitFor()

    await page.getByRole('link', { name: 'New project in this group' }).click()
    await page.getByLabel('Project name').fill('App')
    await page.getByLabel('internal').check()
    await shot('new-project')
    await page.getByRole('button', { name: 'Create project' }).click()
    await page.getByRole('heading', { name: 'No container images yet' }).waitFor()
    projectId = Number(/\/-\/projects\/(\d+)/.exec(page.url())![1])
    const text = await page.locator('main').innerText()
    for (const cmd of [
      `docker login ${wharf.host}`,
      `docker build -t ${wharf.host}/team/app .`,
      `docker push ${wharf.host}/team/app`,
      '$CI_REGISTRY_IMAGE',
    ]) {
      assert.ok(text.includes(cmd), `the empty state shows ${cmd}:\n${text}`)
    }
    await page.getByRole('button', { name: `Copy command: docker login ${wharf.host}` }).click()
    assert.equal(await clipboard(), `docker login ${wharf.host}`)
    await shot('registry-empty')
    await shot('registry-empty-phone', 390)

    // A duplicate shows the API's message.
    await page.goto(`${wharf.url}/-/projects/new`)
    await page.getByLabel('Project name').fill('App')
    await page.getByLabel('Namespace').selectOption({ label: 'team' })
    await page.getByRole('button', { name: 'Create project' }).click()
    await page.getByRole('alert').waitFor()
    assert.match(await page.getByRole('alert').innerText(), /already|taken|exists/i)
  })

  it('lists a pushed image; copy puts the exact pull command on the clipboard', async () => {
    const creds = `root:${wharf.rootPassword}`
    await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds, images.oci('amd64'), `docker://${wharf.host}/team/app:v1`])
    await skopeo([
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      '--src-creds',
      creds,
      '--dest-creds',
      creds,
      `docker://${wharf.host}/team/app:v1`,
      `docker://${wharf.host}/team/app:v2`,
    ])
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry`)
    await page.getByRole('heading', { name: 'Images' }).waitFor()
    await page.locator('tr[data-tag="v1"]').waitFor()
    const row = await page.locator('tr[data-tag="v1"]').innerText()
    assert.ok(row.includes(images.digests.amd64Manifest.slice(7, 19)), `short digest in ${row}`)
    assert.match(row, /KiB|B/)
    assert.match(
      await page
        .getByRole('row', { name: /team\/app/ })
        .first()
        .innerText(),
      /\b2\b/,
      'two tags counted',
    )
    await page.getByRole('button', { name: 'Copy pull command for v2' }).click()
    assert.equal(await clipboard(), `docker pull ${wharf.host}/team/app:v2`)
    await shot('registry')
    await shot('registry-phone', 390)
    // Phone width: nothing wider than the screen.
    await page.setViewportSize({ width: 390, height: 800 })
    assert.ok(await page.evaluate('document.documentElement.scrollWidth <= 390'), 'no horizontal scrolling at 390px')
    await page.setViewportSize({ width: 1280, height: 900 })
  })

  it('filters tags, and deletes one of two tags sharing a digest: the other stays', async () => {
    await page.getByLabel('Filter tags').fill('2')
    await page.locator('tr[data-tag="v1"]').waitFor({ state: 'detached' })
    await page.getByLabel('Filter tags').fill('')
    await page.locator('tr[data-tag="v1"]').waitFor()

    await page.getByRole('button', { name: 'Delete tag v1' }).click()
    const dialog = page.getByRole('dialog')
    assert.match(await dialog.innerText(), /Other tags of the same image/)
    await shot('registry-delete-confirm')
    await dialog.getByRole('button', { name: 'Delete tag' }).click()
    await page.locator('tr[data-tag="v1"]').waitFor({ state: 'detached' })
    await page.locator('tr[data-tag="v2"]').waitFor()

    const tags = await fetch(`${wharf.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${await registryToken()}` } })
    assert.deepEqual(((await tags.json()) as { tags: string[] }).tags, ['v2'])
    const api = await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories?tags=true`)
    assert.deepEqual(
      api.json[0].tags.map((t: { name: string }) => t.name),
      ['v2'],
    )
  })

  it('an index pushed with copy --all shows its platforms; the image shows its total size', async () => {
    const creds = `root:${wharf.rootPassword}`
    await skopeo([
      'copy',
      '--all',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      images.oci('index'),
      `docker://${wharf.host}/team/app:multi`,
    ])
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry`)
    await page.locator('tr[data-tag="multi"]').waitFor()
    assert.match(await page.locator('tr[data-tag="multi"]').innerText(), /linux\/amd64, linux\/arm64/)
    assert.doesNotMatch(await page.locator('tr[data-tag="v2"]').innerText(), /linux\//)
    assert.match(
      await page
        .getByRole('row', { name: /team\/app/ })
        .first()
        .innerText(),
      /\d+(\.\d+)? (B|KiB|MiB)/,
      'image size shown',
    )
  })

  it('follows a running job’s log live, with colours, without reloading', async () => {
    const ci = await CiProject.create(wharf, 'team/ci', 'internal')
    try {
      const runner = await createRunner(wharf)
      const pipeline = await ci.push({
        '.gitlab-ci.yml': 'build:\n  stage: build\n  script: [echo hi]\ntest:\n  stage: test\n  script: [echo ok]\n',
      })
      const req = await fetch(`${wharf.url}/api/v4/jobs/request`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: runner.token, info: { name: 'ui-test', features: { masking: true } } }),
      })
      assert.equal(req.status, 201, await req.clone().text())
      const job = (await req.json()) as { id: number; token: string }
      let offset = 0
      const append = async (text: string) => {
        const body = Buffer.from(text)
        const r = await fetch(`${wharf.url}/api/v4/jobs/${job.id}/trace`, {
          method: 'PATCH',
          headers: { 'job-token': job.token, 'content-type': 'text/plain', 'content-range': `${offset}-${offset + body.length - 1}` },
          body,
        })
        assert.equal(r.status, 202, await r.text())
        offset += body.length
      }
      await append('\x1b[32;1mRunning with wharf\x1b[0;m\n<script>alert(1)</script> first line\n')

      await page.goto(`${wharf.url}/-/projects/${ci.id}/pipelines`)
      await page.getByRole('link', { name: `#${pipeline.id}` }).click()
      await page.getByRole('region', { name: 'Stage build' }).waitFor()
      assert.doesNotMatch(await page.locator('main').innerText(), /\bnull\b/, 'no empty value is printed as "null"')
      await shot('pipeline')
      await page.locator('a[data-job="build"]').click()
      const log = page.locator('#job-log')
      await log.getByText('first line').waitFor()
      assert.equal(await log.locator('script').count(), 0, 'log text is never markup')
      assert.equal(await log.locator('span.ansi-fg-2.ansi-bold').innerText(), 'Running with wharf')
      await page.getByRole('button', { name: 'Cancel' }).waitFor()

      const url = page.url()
      await append('second line arrives live\n')
      await log.getByText('second line arrives live').waitFor()
      assert.equal(page.url(), url)
      await shot('job')
      await page.getByRole('button', { name: 'Cancel' }).click()
      await page.locator('.badge', { hasText: 'canceled' }).first().waitFor()
      // Retry makes a new job and opens it.
      await page.getByRole('button', { name: 'Retry' }).click()
      await page.waitForURL((u) => !u.pathname.endsWith(`/jobs/${job.id}`))
      await page
        .locator('.badge', { hasText: /pending|created/ })
        .first()
        .waitFor()

      // The session ends while a second tab follows that pending job: the page says so instead of going quiet.
      const other = await browser.newContext({ viewport: { width: 1280, height: 900 } })
      try {
        const tab = await other.newPage()
        tab.setDefaultTimeout(10_000)
        await signIn(tab, wharf)
        await tab.goto(page.url())
        await tab.getByText('Following the log live').waitFor()
        await other.clearCookies()
        const alert = tab.locator('#session-ended')
        await alert.waitFor()
        assert.match(await alert.innerText(), /session has ended/)
        assert.match(
          (await alert.getByRole('link', { name: 'Sign in again' }).getAttribute('href')) ?? '',
          /^\/-\/sign_in\?return_to=%2F-%2Fprojects%2F/,
        )
      } finally {
        await other.close()
      }

      // Run a pipeline for a ref with a variable.
      await page.getByRole('link', { name: 'Pipelines' }).click()
      await page.getByRole('link', { name: 'Run pipeline' }).click()
      await page.getByLabel('Branch or tag').fill('main')
      await page.getByLabel('Variable 1 key').fill('DEPLOY_TO')
      await page.getByLabel('Variable 1 value').fill('staging')
      await page.getByRole('button', { name: 'Run pipeline' }).click()
      await page.getByRole('heading', { name: /Pipeline #\d+/ }).waitFor()
      const newId = Number(/pipelines\/(\d+)/.exec(page.url())![1])
      assert.notEqual(newId, pipeline.id)
      const vars = await wharf.api('GET', `/api/v4/projects/${ci.id}/pipelines/${newId}/variables`)
      assert.deepEqual(
        vars.json.map((v: { key: string; value: string }) => [v.key, v.value]),
        [['DEPLOY_TO', 'staging']],
      )
    } finally {
      await ci.dispose()
    }
  })

  it('creates a personal access token (shown once), which docker-logs-in until revoked', async () => {
    await page.getByRole('link', { name: 'Access tokens' }).click()
    await page.getByLabel('Token name').fill('laptop')
    await page.getByLabel(/read_registry/).check()
    await page.getByLabel(/write_registry/).check()
    await page.getByRole('button', { name: 'Create token' }).click()
    const token = (await page.locator('#new-token-value').innerText()).trim()
    assert.match(token, /^glpat-/)
    await page.locator('tr[data-token="laptop"]').waitFor()
    await shot('tokens')
    const dockerLogin = () => engine.docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: token, timeoutMs: 60_000 })
    const login = () =>
      run(
        'skopeo',
        ['login', '--tls-verify=false', '--authfile', path.join(wharf.tmpDir, 'auth.json'), '-u', 'root', '-p', token, wharf.host],
        { timeoutMs: 30_000 },
      )
    const okDocker = await dockerLogin()
    assert.equal(okDocker.code, 0, describeResult(okDocker))
    assert.match(okDocker.stdout, /Login Succeeded/)
    const okLogin = await login()
    assert.equal(okLogin.code, 0, describeResult(okLogin))

    await page.getByRole('button', { name: 'Revoke token laptop' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click()
    await page.locator('tr[data-token="laptop"]').waitFor({ state: 'detached' })
    const refusedDocker = await dockerLogin()
    assert.notEqual(refusedDocker.code, 0, `docker login with a revoked token fails:\n${describeResult(refusedDocker)}`)
    assert.match(refusedDocker.stderr, /unauthorized|denied|revoked|incorrect|401/i, describeResult(refusedDocker))
    const refused = await login()
    assert.notEqual(refused.code, 0, 'login with a revoked token fails')
  })

  it('signs out', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(/\/-\/sign_in/)
    const status = await page.evaluate("fetch('/api/v4/user').then((r) => r.status)")
    assert.equal(status, 401)
  })
})

async function registryToken(): Promise<string> {
  const res = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:team/app:pull`, {
    headers: { authorization: `Basic ${Buffer.from(`root:${wharf.rootPassword}`).toString('base64')}` },
  })
  return ((await res.json()) as { token: string }).token
}
