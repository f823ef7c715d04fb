// Pipelines → Schedules in Debian's Chromium (playwright-core) against a started Wharf: create a
// schedule with a cron line and a time zone, see its next run, run it now (a pipeline with source
// schedule), edit it, delete it; a bad cron line shows the API's message.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser, signIn } from '../helpers/browser.ts'
import { CiProject } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let browser: Browser
let page: Page
let ci: CiProject

before(async () => {
  wharf = await startWharf()
  ci = await CiProject.create(wharf, 'team/app')
  await ci.push({
    '.gitlab-ci.yml':
      'build:\n  script: [echo build]\nnightly:\n  script: [echo nightly]\n  rules:\n    - if: $CI_PIPELINE_SOURCE == "schedule"\n',
  })
  browser = await launchBrowser()
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, timezoneId: 'Europe/Berlin' })
  page = await context.newPage()
  page.setDefaultTimeout(10_000)
  await signIn(page, wharf, 'root', wharf.rootPassword)
})

after(async () => {
  await browser?.close()
  await ci?.dispose()
  await wharf?.stop()
})

describe('web UI pipeline schedules', () => {
  it('creates, runs now, edits and deletes a schedule', async () => {
    await page.goto(`${wharf.url}/-/projects/${ci.id}/pipelines`)
    await page.getByRole('link', { name: 'Schedules' }).click()
    await page.getByText('No schedules yet.').waitFor()
    await page.getByRole('link', { name: 'New schedule' }).click()
    // The browser's zone is offered first.
    assert.equal(await page.getByLabel('Time zone').inputValue(), 'Europe/Berlin')
    await page.getByLabel('Description').fill('Nightly build')
    await page.getByLabel(/Interval pattern/).fill('0 25 * * *')
    await page.getByRole('button', { name: 'Create schedule' }).click()
    await page.getByRole('alert').filter({ hasText: 'cron is invalid syntax' }).waitFor()
    await page.getByLabel(/Interval pattern/).fill('30 2 * * *')
    await page.getByLabel('Time zone').fill('America/New_York')
    await page.getByRole('button', { name: 'Create schedule' }).click()

    const table = page.getByRole('table', { name: 'Pipeline schedules' })
    const row = table.getByRole('row').filter({ hasText: 'Nightly build' })
    await row.waitFor()
    assert.match(await row.innerText(), /30 2 \* \* \*\s+America\/New_York/)
    const [s] = (await wharf.api('GET', `/api/v4/projects/${ci.id}/pipeline_schedules`)).json
    assert.equal(s.cron_timezone, 'America/New_York')
    assert.match(s.next_run_at, /T07:30:00\.000Z$/, '02:30 in New York in winter')
    assert.equal(await row.locator('time').getAttribute('datetime'), s.next_run_at)

    await page.getByRole('button', { name: 'Run Nightly build now' }).click()
    await row
      .locator('.badge')
      .filter({ hasText: /pending|running|created/ })
      .waitFor()
    const pipelines = (await wharf.api('GET', `/api/v4/projects/${ci.id}/pipeline_schedules/${s.id}/pipelines`)).json
    assert.equal(pipelines.length, 1)
    assert.equal(pipelines[0].source, 'schedule')

    await row.getByRole('link', { name: 'Edit' }).click()
    assert.equal(await page.getByLabel('Description').inputValue(), 'Nightly build')
    await page.getByLabel(/Interval pattern/).fill('0 6 * * 1-5')
    await page.getByLabel('Active').uncheck()
    await page.getByRole('button', { name: 'Save changes' }).click()
    const edited = table.getByRole('row').filter({ hasText: 'Nightly build' })
    await edited.getByText('inactive').waitFor()
    const after = (await wharf.api('GET', `/api/v4/projects/${ci.id}/pipeline_schedules/${s.id}`)).json
    assert.deepEqual([after.cron, after.active], ['0 6 * * 1-5', false])

    await page.getByRole('button', { name: 'Delete Nightly build' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByText('No schedules yet.').waitFor()
    assert.deepEqual((await wharf.api('GET', `/api/v4/projects/${ci.id}/pipeline_schedules`)).json, [])
  })

  it('a delayed job shows when it starts, and Run now queues it early', async () => {
    const p = await ci.push({ '.gitlab-ci.yml': 'later:\n  script: [echo later]\n  when: delayed\n  start_in: 1 hour\n' }, 'delayed')
    const [job] = (await wharf.api('GET', `/api/v4/projects/${ci.id}/pipelines/${p.id}/jobs`)).json
    assert.equal(job.status, 'scheduled')
    assert.ok(Date.parse(job.scheduled_at) - Date.now() > 55 * 60_000, job.scheduled_at)
    await page.goto(`${wharf.url}/-/projects/${ci.id}/jobs/${job.id}`)
    await page.getByText(/starts /).waitFor()
    await page.getByRole('button', { name: 'Run now' }).click()
    await page.locator('h2 .badge').filter({ hasText: 'pending' }).waitFor()
    assert.equal((await wharf.api('GET', `/api/v4/projects/${ci.id}/jobs/${job.id}`)).json.status, 'pending')
  })
})
