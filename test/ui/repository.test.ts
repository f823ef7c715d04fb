// The Repository tab in Debian's Chromium (playwright-core): the clone URL, branches with their last
// commit and tags, after a real `git push` of a branch and an annotated tag.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { describeResult } from '../helpers/run.ts'

let wharf: Wharf
let client: GitClient
let browser: Browser
let page: Page
let projectId: number

async function git(args: string[], cwd?: string) {
  const r = await client.git(args, { ...(cwd ? { cwd } : {}), creds: { username: 'root', password: wharf.rootPassword } })
  assert.equal(r.code, 0, describeResult(r))
}

before(async () => {
  wharf = await startWharf()
  client = await gitClient('wharf-ui-repo-')
  projectId = await wharf.createProject('team/site', 'private')
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
  await client?.dispose()
})

describe('Repository tab', () => {
  it('shows how to push while empty, then branches with their last commit and tags', async () => {
    await page.goto(`${wharf.url}/-/projects/${projectId}/repository`)
    await page.getByText(`git clone ${wharf.url}/team/site.git`).first().waitFor()
    await page.getByText('The repository is empty').waitFor()

    await git(['clone', `${wharf.url}/team/site.git`, 'site'])
    const dir = path.join(client.work, 'site')
    await writeFile(path.join(dir, 'index.html'), '<h1>hi</h1>\n')
    await git(['add', '.'], dir)
    await git(['commit', '-q', '-m', 'First page'], dir)
    await git(['tag', '-a', 'v1.0.0', '-m', 'First release'], dir)
    await git(['push', '-q', 'origin', 'main', 'v1.0.0'], dir)

    await page.reload()
    const branches = page.getByRole('region', { name: 'Branches' })
    await branches.getByRole('row', { name: /main \(default\).*First page/ }).waitFor()
    const tags = page.getByRole('region', { name: 'Tags' })
    await tags.getByRole('row', { name: /v1\.0\.0.*First release/ }).waitFor()
  })
})
