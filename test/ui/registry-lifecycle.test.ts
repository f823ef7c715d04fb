// The registry lifecycle in Debian's Chromium (playwright-core), after real skopeo pushes: the
// Settings tab's storage figures with the soft-quota warning, tag and image protection rules, the
// cleanup policy's preview and save; the Registry tab's quota warning and bulk delete, previewed
// (an immutable tag kept, with why) and then done.
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

before(async () => {
  wharf = await startWharf()
  projectId = await wharf.createProject('team/app', 'private')
  const images = await testImages()
  for (const tag of ['v1', 'dev-1', 'dev-2']) {
    const r = await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        `root:${wharf.rootPassword}`,
        images.oci('amd64'),
        `docker://${wharf.host}/team/app:${tag}`,
      ],
      { timeoutMs: 60_000 },
    )
    assert.equal(r.code, 0, describeResult(r))
  }
  // A soft quota of one byte: the project is over it at once, pushes still work.
  const q = await wharf.api('PUT', `/api/v4/projects/${projectId}/registry/quota`, { soft_limit_bytes: 1 })
  assert.equal(q.status, 200, q.describe)
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
})

const tags = async () => {
  const repos = await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories?tags=true`)
  return (repos.json as Array<{ tags: Array<{ name: string }> }>)[0]!.tags.map((t) => t.name).sort()
}

describe('registry lifecycle pages', () => {
  it('Settings: storage and the soft-quota warning, tag and image rules, the cleanup policy previewed then saved', async () => {
    await page.goto(`${wharf.url}/-/projects/${projectId}/settings`)
    const storage = page.getByRole('region', { name: 'Registry storage' })
    const used = (await wharf.api('GET', `/api/v4/projects/${projectId}/registry/quota`)).json as { used_bytes: number }
    assert.ok(used.used_bytes > 0)
    await storage.locator('[data-figure="Soft limit"]').getByText('1 B').waitFor()
    assert.match(await storage.getByRole('alert').innerText(), /Over the soft quota/)

    // An immutable-tag rule (no role) and an image rule.
    const tagRules = page.getByRole('region', { name: 'Tag protection rules' })
    await tagRules.getByLabel('Tag name pattern').fill('v.*')
    await tagRules.getByRole('button', { name: 'Add tag rule' }).click()
    await tagRules.locator('tr[data-tag-rule="v.*"]').waitFor()
    assert.match(await tagRules.locator('tr[data-tag-rule="v.*"]').innerText(), /immutable\s+immutable/)
    const imageRules = page.getByRole('region', { name: 'Image protection rules' })
    await imageRules.getByLabel(/Image path pattern/).fill('team/app/prod*')
    await imageRules.getByLabel('Minimum role to push').selectOption('maintainer')
    await imageRules.getByRole('button', { name: 'Add image rule' }).click()
    await imageRules.locator('tr[data-repository-rule="team/app/prod*"]').waitFor()
    const rules = await wharf.api('GET', `/api/v4/projects/${projectId}/registry/protection/repository/rules`)
    assert.deepEqual(
      (rules.json as Array<Record<string, unknown>>).map((r) => [
        r.repository_path_pattern,
        r.minimum_access_level_for_push,
        r.minimum_access_level_for_delete,
      ]),
      [['team/app/prod*', 'maintainer', null]],
    )
    // A bad pattern shows the API's message in the form.
    await imageRules.getByLabel(/Image path pattern/).fill('other/x')
    await imageRules.getByRole('button', { name: 'Add image rule' }).click()
    assert.match(await imageRules.getByRole('alert').innerText(), /must start with the project's path 'team\/app'/)

    // The cleanup policy: preview (nothing saved), then save.
    const cleanup = page.getByRole('region', { name: 'Cleanup policy' })
    await cleanup.getByLabel(/Delete tags matching/).fill('.*')
    await cleanup.getByLabel('Keep the newest').selectOption('')
    await cleanup.getByLabel('Only tags older than').selectOption('')
    await cleanup.getByRole('button', { name: 'Preview' }).click()
    const preview = cleanup.getByRole('table', { name: 'Cleanup preview' })
    await preview.waitFor()
    assert.match(await cleanup.getByRole('heading', { name: /^Preview:/ }).innerText(), /2 tags would be deleted now/)
    assert.match(await preview.locator('tr[data-preview="team/app:dev-1"]').innerText(), /delete\s+matches name_regex '\.\*'/)
    assert.match(await preview.locator('tr[data-preview="team/app:v1"]').innerText(), /keep\s+protected: a tag protection rule matches it/)
    assert.equal((await wharf.api('GET', `/api/v4/projects/${projectId}`)).json.container_expiration_policy.name_regex, '.*')
    await cleanup.getByLabel('Enabled').check()
    await cleanup.getByLabel(/Delete tags matching/).fill('dev-.*')
    await cleanup.getByLabel(/branches that no longer exist/).check()
    await cleanup.getByRole('button', { name: 'Save policy' }).click()
    await page.getByText('Cleanup policy saved').waitFor()
    const policy = (await wharf.api('GET', `/api/v4/projects/${projectId}`)).json.container_expiration_policy as Record<string, unknown>
    assert.deepEqual(
      [policy.enabled, policy.name_regex, policy.keep_n, policy.older_than, policy.remove_deleted_branch_tags],
      [true, 'dev-.*', null, null, true],
    )
    assert.deepEqual(await tags(), ['dev-1', 'dev-2', 'v1'], 'previews and saving delete nothing')
  })

  it('Registry: the quota warning, and a bulk delete previewed then confirmed keeps the immutable tag', async () => {
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry`)
    assert.match(await page.getByRole('alert').first().innerText(), /over its soft quota/)
    await page.getByText('Delete tags by pattern').click()
    await page.getByLabel(/Delete tags matching/).fill('.*')
    await page.getByRole('button', { name: 'Preview' }).click()
    const preview = page.getByRole('table', { name: 'Bulk delete preview' })
    await preview.waitFor()
    assert.match(await preview.locator('tr[data-bulk="v1"]').innerText(), /keep\s+protected/)
    assert.match(await preview.locator('tr[data-bulk="dev-2"]').innerText(), /delete\s+matches name_regex_delete '\.\*'/)
    assert.deepEqual(await tags(), ['dev-1', 'dev-2', 'v1'])
    await page.getByRole('button', { name: 'Delete previewed tags' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete tags' }).click()
    await page.locator('tr[data-tag="dev-1"]').waitFor({ state: 'detached' })
    assert.deepEqual(await tags(), ['v1'])
  })

  it('Registry: a tag’s history names who pushed which digest, and points the tag back at an earlier one', async () => {
    const images = await testImages()
    const copy = async (source: string) => {
      const r = await run(
        'skopeo',
        [
          '--insecure-policy',
          'copy',
          '--dest-tls-verify=false',
          '--dest-creds',
          `root:${wharf.rootPassword}`,
          source,
          `docker://${wharf.host}/team/app:edge`,
        ],
        { timeoutMs: 60_000 },
      )
      assert.equal(r.code, 0, describeResult(r))
    }
    await copy(images.oci('amd64'))
    await copy(images.oci('arm64'))
    const repo = ((await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories`)).json as Array<{ id: number }>)[0]!
    const detail = async () =>
      (await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories/${repo.id}/tags/edge`)).json.digest as string
    const second = await detail()
    await page.goto(`${wharf.url}/-/projects/${projectId}/registry`)
    await page.getByRole('button', { name: 'History of tag edge' }).click()
    const dialog = page.getByRole('dialog')
    const rows = dialog.locator('tbody tr')
    await rows.first().waitFor()
    assert.equal(await rows.count(), 2)
    assert.match(await rows.nth(0).innerText(), /root\s+current/)
    const first = String(await rows.nth(1).getAttribute('data-digest'))
    assert.notEqual(first, second)
    await rows.nth(1).getByRole('button', { name: 'Point tag here' }).click()
    await page.getByText(/Tag edge points at/).waitFor()
    assert.equal(await detail(), first)
  })
})
