// The group page in Debian's Chromium (playwright-core): /-/groups/<path> lists the group's
// projects, manages its members (add by username, change role, remove) and its visibility, with
// the API's error when a project inside is more open.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let browser: Browser
let page: Page
let groupId: number
let aliceId: number

before(async () => {
  wharf = await startWharf()
  await wharf.createProject('team/app', 'internal')
  await wharf.createProject('team/backend/server', 'private')
  groupId = (await wharf.api('GET', '/api/v4/groups/team')).json.id
  const sub = await wharf.api('PUT', `/api/v4/groups/${encodeURIComponent('team/backend')}`, { visibility: 'private' })
  assert.equal(sub.status, 200, sub.describe)
  const alice = await wharf.api('POST', '/api/v4/users', {
    username: 'alice',
    password: 'alice-password-1',
    name: 'Alice',
    email: 'alice@example.com',
  })
  assert.equal(alice.status, 201, alice.describe)
  aliceId = alice.json.id
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
})

describe('group page', () => {
  it('opens from the home page at /-/groups/<path> and lists the group’s projects', async () => {
    await page.getByRole('list', { name: 'Groups' }).getByRole('link', { name: 'team', exact: true }).click()
    await page.waitForURL(/\/-\/groups\/team$/)
    await page.getByRole('heading', { name: 'team', level: 1 }).waitFor()
    await page.getByRole('link', { name: /team \/ app/ }).waitFor()
    assert.equal(await page.locator('#group-visibility').innerText(), 'public')
    // A subgroup by its full path.
    await page.goto(`${wharf.url}/-/groups/team/backend`)
    await page.getByRole('heading', { name: 'backend', level: 1 }).waitFor()
    await page.getByRole('link', { name: /server/ }).waitFor()
    await page.locator('tr[data-member="root"]').waitFor()
  })

  it('adds a member, changes the role and removes them', async () => {
    await page.goto(`${wharf.url}/-/groups/team`)
    await page.getByLabel('Username').fill('nobody')
    await page.getByRole('button', { name: 'Add member' }).click()
    await page
      .getByRole('alert')
      .filter({ hasText: /no user named nobody/ })
      .waitFor()

    await page.getByLabel('Username').fill('alice')
    await page.getByLabel('Role', { exact: true }).selectOption({ label: 'Developer' })
    await page.getByRole('button', { name: 'Add member' }).click()
    await page.locator('tr[data-member="alice"]').waitFor()
    const member = () => wharf.api('GET', `/api/v4/groups/${groupId}/members/${aliceId}`)
    assert.equal((await member()).json.access_level, 30)

    await page.getByLabel('Role of alice').selectOption({ label: 'Maintainer' })
    await page.getByText('alice is now Maintainer').waitFor()
    assert.equal((await member()).json.access_level, 40)

    await page.getByRole('button', { name: 'Remove member alice' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Remove' }).click()
    await page.locator('tr[data-member="alice"]').waitFor({ state: 'detached' })
    assert.equal((await member()).status, 404)
  })

  it('changes the visibility; one below a project inside shows the API’s message', async () => {
    await page.getByLabel('private').check()
    await page.getByRole('button', { name: 'Save visibility' }).click()
    await page
      .getByRole('alert')
      .filter({ hasText: /visibility private is not allowed: team\/app inside it is internal/ })
      .waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/groups/${groupId}`)).json.visibility, 'public')

    await page.getByLabel('internal').check()
    await page.getByRole('button', { name: 'Save visibility' }).click()
    await page.getByText('The group is now internal').waitFor()
    assert.equal(await page.locator('#group-visibility').innerText(), 'internal')
    assert.equal((await wharf.api('GET', `/api/v4/groups/${groupId}`)).json.visibility, 'internal')
  })
})
