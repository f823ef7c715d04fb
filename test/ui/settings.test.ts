// The web UI's settings pages in Debian's Chromium (playwright-core) against a started Wharf:
// the project Settings tab (CI/CD variables with the API's masking error, deploy tokens created
// and revoked, a project runner registered with its token and start command, the job-token
// allowlist, visibility), the Members tab, and changing your own password. WHARF_SCREENSHOTS=1 saves the pages to docs/screenshots/.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, signIn as signInAs } from '../helpers/browser.ts'
import { repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'

const SHOTS = process.env.WHARF_SCREENSHOTS === '1'
let wharf: Wharf
let browser: Browser
let page: Page
let projectId: number
let receiver: Server
const received: Array<{ headers: IncomingHttpHeaders; body: { object_kind?: string } }> = []
const ALICE_PASSWORD = 'alice-old-password-1'
const ALICE_NEW_PASSWORD = 'alice-new-password-2'

async function shot(name: string, width = 1280): Promise<void> {
  if (!SHOTS) return
  const size = page.viewportSize()
  if (width !== size?.width) await page.setViewportSize({ width, height: 900 })
  await page.screenshot({ path: path.join(repoRoot, 'docs', 'screenshots', `${name}.png`), fullPage: true })
  if (size && width !== size.width) await page.setViewportSize(size)
}

async function signIn(username: string, password: string): Promise<void> {
  await signInAs(page, wharf, username, password)
}

async function noHorizontalScroll(): Promise<void> {
  await page.setViewportSize({ width: 390, height: 800 })
  assert.ok(await page.evaluate('document.documentElement.scrollWidth <= 390'), 'no horizontal scrolling at 390px')
  await page.setViewportSize({ width: 1280, height: 900 })
}

before(async () => {
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
      res.end('ok')
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  // Webhooks may reach `localhost` (named by the administrator); any other local address is refused.
  wharf = await startWharf({ env: { WHARF_WEBHOOKS_ALLOWED_HOSTS: 'localhost' } })
  projectId = await wharf.createProject('team/app', 'private')
  await wharf.createProject('team/deployer', 'private')
  browser = await launchBrowser()
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await signIn('root', wharf.rootPassword)
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
  receiver?.close()
})

describe('web UI settings', () => {
  it('adds, edits and deletes CI/CD variables; an unmaskable value shows the API message', async () => {
    await page.goto(`${wharf.url}/-/projects/${projectId}`)
    await page.getByRole('link', { name: 'Settings' }).click()
    await page.getByRole('heading', { name: 'CI/CD variables' }).waitFor()
    await page.getByText('No variables yet').waitFor()

    await page.getByLabel('Key').fill('SHORT')
    await page.getByLabel('Value', { exact: true }).fill('abc')
    await page.getByLabel(/Masked/).check()
    await page.getByRole('button', { name: 'Add variable' }).click()
    await page.getByRole('alert').filter({ hasText: 'cannot be masked' }).waitFor()

    await page.getByLabel('Value', { exact: true }).fill('s3cr3t-value-123')
    await page.getByLabel(/Protected/).check()
    await page.getByRole('button', { name: 'Add variable' }).click()
    const row = page.locator('tr[data-variable="SHORT"]')
    await row.waitFor()
    const text = await row.innerText()
    assert.ok(!text.includes('s3cr3t'), `masked value hidden: ${text}`)
    assert.match(text, /protected/)
    assert.match(text, /masked/)

    await page.getByRole('button', { name: 'Edit variable SHORT' }).click()
    await page.getByLabel('New value of SHORT').fill('another-value-456')
    await page.getByRole('button', { name: 'Save', exact: true }).click()
    await page.getByRole('button', { name: 'Edit variable SHORT' }).waitFor()
    const api = await wharf.api('GET', `/api/v4/projects/${projectId}/variables/SHORT`)
    assert.equal(api.json.value, 'another-value-456')
    assert.equal(api.json.masked, true)
    assert.equal(api.json.protected, true)
    await shot('settings-variables')

    // An unmaskable new value is refused with the API's message, and the old one stays.
    await page.getByRole('button', { name: 'Edit variable SHORT' }).click()
    await page.getByLabel('New value of SHORT').fill('no')
    await page.getByRole('button', { name: 'Save', exact: true }).click()
    await page.getByRole('alert').filter({ hasText: 'cannot be masked' }).waitFor()
    await page.getByRole('button', { name: 'Cancel' }).click()

    await page.getByRole('button', { name: 'Delete variable SHORT' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByText('No variables yet').waitFor()
  })

  it('creates a deploy token (shown once) and revokes it', async () => {
    await page.getByLabel('Name', { exact: true }).fill('k8s pull')
    await page.getByLabel(/read_registry/).check()
    await page.getByRole('button', { name: 'Create deploy token' }).click()
    const token = (await page.locator('#new-deploy-token').innerText()).trim()
    assert.match(token, /^gldt-/)
    const row = page.locator('tr[data-deploy-token="k8s pull"]')
    await row.waitFor()
    const username = (await row.locator('td').nth(1).innerText()).trim()
    const auth = `Basic ${Buffer.from(`${username}:${token}`).toString('base64')}`
    const ok = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:team/app:pull`, {
      headers: { authorization: auth },
    })
    assert.equal(ok.status, 200)

    await page.getByRole('button', { name: 'Revoke deploy token k8s pull' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click()
    await row.waitFor({ state: 'detached' })
    await page.getByText('No active deploy tokens.').waitFor()
    const refused = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:team/app:pull`, {
      headers: { authorization: auth },
    })
    assert.equal(refused.status, 401)
  })

  it('registers a project runner: its token and the command to start it, then pause and resume', async () => {
    await page.getByLabel('Description (optional)').fill('builder')
    await page.getByLabel('Tags (optional)').fill('docker, linux')
    await page.getByRole('button', { name: 'Register runner' }).click()
    const token = (await page.locator('#new-runner-token').innerText()).trim()
    assert.match(token, /^glrt-/)
    const command = (await page.locator('#new-runner-command').innerText()).trim()
    assert.equal(command, `wharf runner --url ${wharf.url} --token ${token} --executor docker`)
    const row = page.locator('tr[data-runner]').filter({ hasText: 'builder' })
    await row.waitFor()
    assert.match(await row.innerText(), /never contacted/)
    assert.match(await row.innerText(), /docker, linux/)
    await shot('settings-runner')

    const id = Number(await row.getAttribute('data-runner'))
    await page.getByRole('button', { name: `Pause runner #${id}` }).click()
    await page.getByRole('button', { name: `Resume runner #${id}` }).waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/runners/${id}`)).json.paused, true)
    await page.getByRole('button', { name: `Resume runner #${id}` }).click()
    await page.getByRole('button', { name: `Pause runner #${id}` }).waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/runners/${id}`)).json.paused, false)
  })

  it('adds a project to the job-token allowlist by path and removes it', async () => {
    await page.getByLabel('Project path').fill('team/nope')
    await page.getByRole('button', { name: 'Add project' }).click()
    await page.getByRole('alert').filter({ hasText: 'No project team/nope' }).waitFor()
    await page.getByLabel('Project path').fill('team/deployer')
    await page.getByRole('button', { name: 'Add project' }).click()
    await page.locator('[data-allowed="team/deployer"]').waitFor()
    const list = await wharf.api('GET', `/api/v4/projects/${projectId}/job_token_scope/allowlist`)
    assert.deepEqual(
      list.json.map((p: { path_with_namespace: string }) => p.path_with_namespace),
      ['team/deployer'],
    )
    await shot('settings')
    await shot('settings-phone', 390)
    await noHorizontalScroll()
    await page.getByRole('button', { name: 'Remove team/deployer from the allowlist' }).click()
    await page.getByText('No other project may use its job token here.').waitFor()
  })

  it("adds a webhook (a local address is refused with the API's reason), tests it, reads its deliveries and deletes it", async () => {
    const port = (receiver.address() as AddressInfo).port
    await page.goto(`${wharf.url}/-/projects/${projectId}/settings`)
    await page.getByRole('heading', { name: 'Webhooks' }).waitFor()
    await page.getByText('No webhooks yet').waitFor()
    await page.getByLabel('URL').fill(`http://127.0.0.1:${port}/hook`)
    await page.getByRole('button', { name: 'Add webhook' }).click()
    await page.getByRole('alert').filter({ hasText: 'Requests to the local network are not allowed' }).waitFor()

    await page.getByLabel('URL').fill(`http://localhost:${port}/hook`)
    await page.getByLabel('Secret token (optional)').fill('ui-hook-secret')
    await page.getByLabel(/Registry events/).check()
    await page.getByRole('button', { name: 'Add webhook' }).click()
    const row = page.locator('tr[data-hook]')
    await row.waitFor()
    assert.deepEqual(await row.locator('[data-event]').evaluateAll((els) => els.map((e) => e.getAttribute('data-event'))), [
      'push_events',
      'registry_events',
    ])

    await page.getByRole('button', { name: `Test the webhook to http://localhost:${port}/hook` }).click()
    const until = Date.now() + 15_000
    while (!received.some((r) => r.headers['x-gitlab-token'] === 'ui-hook-secret') && Date.now() < until)
      await new Promise((r) => setTimeout(r, 100))
    const got = received.find((r) => r.headers['x-gitlab-token'] === 'ui-hook-secret')
    assert.ok(got, 'the test delivery reached the receiver with the token')
    assert.equal(got.headers['x-gitlab-event'], 'Push Hook')
    await page.getByRole('button', { name: `Deliveries of the webhook to http://localhost:${port}/hook` }).click()
    await page
      .getByRole('table', { name: `Deliveries of the webhook to http://localhost:${port}/hook` })
      .getByText('200')
      .waitFor()
    await shot('settings-webhooks')

    await page.getByRole('button', { name: `Delete the webhook to http://localhost:${port}/hook` }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByText('No webhooks yet').waitFor()
  })

  it('adds a member by username, changes their role and removes them; unknown users are named', async () => {
    const created = await wharf.api('POST', '/api/v4/users', { username: 'alice', name: 'Alice Liddell', password: ALICE_PASSWORD })
    assert.equal(created.status, 201, created.describe)
    await page.goto(`${wharf.url}/-/projects/${projectId}`)
    await page.getByRole('link', { name: 'Members' }).click()
    await page.getByRole('heading', { name: 'Members' }).waitFor()
    await page.locator('tr[data-inherited="root"], tr[data-member="root"]').first().waitFor()

    await page.getByLabel('Username').fill('ghost')
    await page.getByRole('button', { name: 'Add member' }).click()
    await page.getByRole('alert').filter({ hasText: 'There is no user named ghost' }).waitFor()

    await page.getByLabel('Username').fill('alice')
    await page.getByLabel('Role', { exact: true }).selectOption({ label: 'Developer' })
    await page.getByRole('button', { name: 'Add member' }).click()
    await page.locator('tr[data-member="alice"]').waitFor()
    assert.equal(await page.getByLabel('Role of alice').inputValue(), '30')
    await page.getByLabel('Role of alice').selectOption({ label: 'Maintainer' })
    await page.locator('#toast', { hasText: 'alice is now Maintainer' }).waitFor()
    const member = await wharf.api('GET', `/api/v4/projects/${projectId}/members/${created.json.id}`)
    assert.equal(member.json.access_level, 40)
    await shot('members')
    await noHorizontalScroll()

    await page.getByRole('button', { name: 'Remove member alice' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click()
    await page.locator('tr[data-member="alice"]').waitFor({ state: 'detached' })
    assert.equal((await wharf.api('GET', `/api/v4/projects/${projectId}/members/${created.json.id}`)).status, 404)
  })

  it('changes the project visibility (maintainers); a developer sees why they cannot', async () => {
    await page.getByRole('link', { name: 'Settings' }).click()
    await page.getByLabel(/^internal/).check()
    await page.getByRole('button', { name: 'Save visibility' }).click()
    await page.locator('#project-visibility', { hasText: 'internal' }).waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/projects/${projectId}`)).json.visibility, 'internal')

    const alice = (await wharf.api('GET', '/api/v4/users?username=alice')).json[0]
    const added = await wharf.api('POST', `/api/v4/projects/${projectId}/members`, { user_id: alice.id, access_level: 30 })
    assert.equal(added.status, 201, added.describe)
    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(/\/-\/sign_in/)
    await signIn('alice', ALICE_PASSWORD)
    await page.goto(`${wharf.url}/-/projects/${projectId}/settings`)
    await page.getByLabel(/^public/).check()
    await page.getByRole('button', { name: 'Save visibility' }).click()
    await page.getByRole('alert').filter({ hasText: 'only maintainers and owners can change the visibility' }).waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/projects/${projectId}`)).json.visibility, 'internal')
  })

  it('changes your own password; the old one stops signing in, the new one does', async () => {
    // Signed in as alice since the previous test.
    await page.getByRole('link', { name: 'Account' }).click()
    await page.getByRole('heading', { name: 'Change your password' }).waitFor()
    await page.getByLabel('New password', { exact: true }).fill('short')
    await page.getByLabel('Confirm new password').fill('different')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByRole('alert').filter({ hasText: 'The two passwords differ.' }).waitFor()
    await page.getByLabel('New password', { exact: true }).fill('short')
    await page.getByLabel('Confirm new password').fill('short')
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByRole('alert').filter({ hasText: /8/ }).waitFor()

    await page.getByLabel('New password', { exact: true }).fill(ALICE_NEW_PASSWORD)
    await page.getByLabel('Confirm new password').fill(ALICE_NEW_PASSWORD)
    await page.getByRole('button', { name: 'Change password' }).click()
    await page.getByText('Password changed. Use it the next time you sign in.').waitFor()
    await shot('account')
    await noHorizontalScroll()

    await page.getByRole('button', { name: 'Sign out' }).click()
    await page.waitForURL(/\/-\/sign_in/)
    await page.getByLabel('Username').fill('alice')
    await page.getByLabel('Password').fill(ALICE_PASSWORD)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('alert').filter({ hasText: 'invalid username or password' }).waitFor()
    await signIn('alice', ALICE_NEW_PASSWORD)
    await page.getByRole('button', { name: 'Sign out' }).waitFor()
  })
})
