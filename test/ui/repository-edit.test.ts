// The Repository tab's files in Debian's Chromium (playwright-core) against a started Wharf: an empty
// project's first steps, a README added, edited, renamed and deleted in the browser (each a commit on
// the branch, checked through the API), the history and a commit's diff, the ref switcher, a conflict
// (the file changed since the editor opened) answered without committing, a malicious README
// rendered inert, and the CI editor validating with CI lint (templates, errors, merged YAML).
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { Browser, Locator, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let browser: Browser
let page: Page
/** Alerts and other dialogs the page opened: a README's script must never get to open one. */
const dialogs: string[] = []

/** Waits until the field's value passes `ok` (polled from here: the page's CSP refuses the eval a string waitForFunction needs). */
async function waitForValue(field: Locator, ok: (value: string) => boolean, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await field.inputValue()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`the field's value stayed ${JSON.stringify(value.slice(0, 200))}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

before(async () => {
  wharf = await startWharf()
  ;({ browser, page } = await signedInPage(wharf))
  page.on('dialog', (d) => {
    dialogs.push(`${d.type()}: ${d.message()}`)
    void d.dismiss()
  })
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
})

async function commits(projectId: number, ref = 'main'): Promise<Array<{ id: string; title: string }>> {
  const res = await wharf.api('GET', `/api/v4/projects/${projectId}/repository/commits?ref_name=${ref}&per_page=100`)
  assert.equal(res.status, 200, res.describe)
  return res.json
}

async function rawFile(projectId: number, path: string, ref = 'main'): Promise<{ status: number; text: string }> {
  const res = await wharf.api('GET', `/api/v4/projects/${projectId}/repository/files/${encodeURIComponent(path)}/raw?ref=${ref}`)
  return { status: res.status, text: res.text }
}

async function commitFile(projectId: number, path: string, content: string, message: string, branch = 'main') {
  const res = await wharf.api('POST', `/api/v4/projects/${projectId}/repository/commits`, {
    branch,
    commit_message: message,
    actions: [{ action: 'create', file_path: path, content }],
  })
  assert.equal(res.status, 201, res.describe)
}

describe('Repository: files in the browser', () => {
  it('adds a README to an empty project, edits, renames and deletes it: each a commit; history and diffs', async () => {
    const id = await wharf.createProject('web/files', 'private')
    await page.goto(`${wharf.url}/-/projects/${id}`)
    // The empty project's first steps, with the real clone URL.
    await page.getByRole('heading', { name: 'The repository is empty' }).waitFor()
    await page.getByText(`git remote add origin ${wharf.url}/web/files.git`).waitFor()
    await page.getByRole('link', { name: 'Add Dockerfile' }).waitFor()
    await page.getByRole('link', { name: 'Set up CI' }).waitFor()
    await page.getByRole('link', { name: 'Add README' }).click()

    await page.getByRole('heading', { name: 'New file' }).waitFor()
    assert.equal(await page.getByLabel('File path').inputValue(), 'README.md')
    await page.getByLabel('Content').fill('# Files\n\nFirst *version*.\n')
    assert.equal(await page.getByLabel('Commit message').inputValue(), 'Add README.md')
    await page.getByRole('button', { name: 'Commit changes' }).click()
    // The file's view renders Markdown.
    await page.getByRole('article', { name: 'README.md' }).getByRole('heading', { name: 'Files' }).waitFor()
    assert.deepEqual(
      (await commits(id)).map((c) => c.title),
      ['Add README.md'],
    )

    // Edit.
    await page.getByRole('link', { name: 'Edit' }).click()
    await page.getByRole('heading', { name: 'Edit README.md' }).waitFor()
    assert.equal(await page.getByLabel('Content').inputValue(), '# Files\n\nFirst *version*.\n')
    await page.getByLabel('Content').fill('# Files\n\nSecond version, ünïcode.\n')
    await page.getByLabel('Commit message').fill('Reword the README')
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByText('Second version, ünïcode.').waitFor()
    assert.equal((await rawFile(id, 'README.md')).text, '# Files\n\nSecond version, ünïcode.\n')

    // Rename (the path field), into a new folder.
    await page.getByRole('link', { name: 'Edit' }).click()
    await page.getByLabel('File path').fill('docs/INTRO.md')
    await page.getByLabel('Commit message').fill('Move the README to docs')
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByRole('navigation', { name: 'Path' }).getByText('INTRO.md').waitFor()
    assert.equal((await rawFile(id, 'docs/INTRO.md')).text, '# Files\n\nSecond version, ünïcode.\n')
    assert.equal((await rawFile(id, 'README.md')).status, 404)

    // The tree at the root shows the folder; a new file in it from the tree.
    await page.getByRole('navigation', { name: 'Path' }).getByRole('link', { name: 'docs' }).click()
    await page.getByRole('link', { name: 'INTRO.md' }).waitFor()
    await page.getByRole('link', { name: 'New file' }).click()
    assert.equal(await page.getByLabel('File path').inputValue(), 'docs/')
    await page.getByLabel('File path').fill('docs/notes.txt')
    await page.getByLabel('Content').fill('notes\n')
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByRole('region', { name: 'docs/notes.txt' }).or(page.getByLabel('docs/notes.txt')).first().waitFor()

    // Delete INTRO.md, confirmed.
    await page.goto(`${wharf.url}/-/projects/${id}/repository/blob?ref=main&path=docs/INTRO.md`)
    await page.getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click()
    await page.getByRole('link', { name: 'notes.txt' }).waitFor()
    assert.equal(await page.getByRole('link', { name: 'INTRO.md' }).count(), 0)
    assert.equal((await rawFile(id, 'docs/INTRO.md')).status, 404)
    const history = await commits(id)
    assert.deepEqual(
      history.map((c) => c.title),
      ['Delete docs/INTRO.md', 'Add docs/notes.txt', 'Move the README to docs', 'Reword the README', 'Add README.md'],
    )

    // History, then one commit with its diff.
    await page.goto(`${wharf.url}/-/projects/${id}/repository/commits?ref=main`)
    const list = page.getByRole('list', { name: 'Commits' })
    await list.getByRole('link', { name: 'Reword the README' }).click()
    await page.getByRole('heading', { name: 'Reword the README' }).waitFor()
    const diff = page.getByRole('article', { name: 'README.md' })
    await diff.getByText('-First *version*.').waitFor()
    await diff.getByText('+Second version, ünïcode.').waitFor()
    await page.goto(`${wharf.url}/-/projects/${id}/repository/commits/${history[2]!.id}`)
    await page.getByRole('article', { name: 'README.md → docs/INTRO.md' }).getByText('renamed').waitFor()
    assert.deepEqual(dialogs, [])
  })

  it('switches refs: a branch and a tag show their own tree', async () => {
    const id = await wharf.createProject('web/refs', 'private')
    await commitFile(id, 'main.txt', 'on main\n', 'main file')
    const branch = await wharf.api('POST', `/api/v4/projects/${id}/repository/branches`, { branch: 'feature', ref: 'main' })
    assert.equal(branch.status, 201, branch.describe)
    await commitFile(id, 'feature.txt', 'on feature\n', 'feature file', 'feature')
    const tag = await wharf.api('POST', `/api/v4/projects/${id}/repository/tags`, { tag_name: 'v1', ref: 'main' })
    assert.equal(tag.status, 201, tag.describe)

    await page.goto(`${wharf.url}/-/projects/${id}/repository`)
    await page.getByRole('link', { name: 'main.txt' }).waitFor()
    assert.equal(await page.getByRole('link', { name: 'feature.txt' }).count(), 0)
    await page.getByLabel('Branch or tag').selectOption('feature')
    await page.getByRole('link', { name: 'feature.txt' }).click()
    await page.getByText('on feature').waitFor()
    assert.match(page.url(), /\/repository\/blob\?ref=feature&path=feature\.txt$/)
    await page.getByLabel('Branch or tag').selectOption('v1')
    await page.getByText('There is no file feature.txt at v1.').waitFor()
    await page.goto(`${wharf.url}/-/projects/${id}/repository?ref=v1`)
    await page.getByRole('link', { name: 'main.txt' }).waitFor()
    // A tag is not a branch: no New file there.
    assert.equal(await page.getByRole('link', { name: 'New file' }).count(), 0)
  })

  it('a conflict: the file changed since the editor opened; nothing is committed and the text is kept', async () => {
    const id = await wharf.createProject('web/conflict', 'private')
    await commitFile(id, 'app.conf', 'port=1\n', 'config')
    await page.goto(`${wharf.url}/-/projects/${id}/repository/edit?ref=main&path=app.conf`)
    await page.getByLabel('Content').fill('port=2\n')
    // Meanwhile someone else changes the file.
    const other = await wharf.api('PUT', `/api/v4/projects/${id}/repository/files/app.conf`, {
      branch: 'main',
      content: 'port=3\n',
      commit_message: 'someone else',
    })
    assert.equal(other.status, 200, other.describe)
    await page.getByRole('button', { name: 'Commit changes' }).click()
    const alert = page.getByRole('alert')
    await alert.getByText('Someone changed app.conf on main since you opened it.').waitFor()
    await alert.getByText('The file has changed since you started editing it: app.conf').waitFor()
    await alert.getByText(/Nothing was committed/).waitFor()
    assert.equal(await page.getByLabel('Content').inputValue(), 'port=2\n', 'the text is kept')
    assert.equal((await rawFile(id, 'app.conf')).text, 'port=3\n')
    assert.deepEqual(
      (await commits(id)).map((c) => c.title),
      ['someone else', 'config'],
    )
  })

  it('renders a malicious README inert on the project page: no script runs, no handler, no javascript: link', async () => {
    const id = await wharf.createProject('web/xss', 'private')
    const readme = [
      '# Totally normal project',
      '',
      '<script>alert("script")</script>',
      '<img src="x" onerror="alert(\'img\')">',
      '<svg onload="alert(\'svg\')"></svg>',
      '<a href="javascript:alert(\'raw\')">raw link</a>',
      '',
      '[md link](javascript:alert("md")) and [ok](https://example.com/) and [guide](docs/guide.md)',
      '',
      '![pic](javascript:alert("pic"))',
    ].join('\n')
    await commitFile(id, 'README.md', readme, 'readme')
    await page.goto(`${wharf.url}/-/projects/${id}`)
    const article = page.getByRole('article', { name: 'README.md' })
    await article.getByRole('heading', { name: 'Totally normal project' }).waitFor()
    // The markup is shown as text, not run.
    await article.getByText('<script>alert("script")</script>').waitFor()
    for (const selector of ['script', 'img[onerror]', 'svg', '[onload]', '[onerror]', 'a[href^="javascript:"]', '[src^="javascript:"]'])
      assert.equal(await article.locator(selector).count(), 0, selector)
    assert.equal(await article.getByRole('link', { name: 'ok' }).getAttribute('href'), 'https://example.com/')
    // A relative link opens the repository's file.
    assert.equal(
      await article.getByRole('link', { name: 'guide' }).getAttribute('href'),
      `/-/projects/${id}/repository/blob?ref=main&path=docs%2Fguide.md`,
    )
    await page.waitForTimeout(300)
    assert.deepEqual(dialogs, [])
  })

  it('the CI editor: a template, CI lint errors as the API gives them, the merged YAML; the commit starts a pipeline', async () => {
    const id = await wharf.createProject('web/ci', 'private')
    await commitFile(id, 'Dockerfile', 'FROM scratch\n', 'dockerfile')
    await page.goto(`${wharf.url}/-/projects/${id}`)
    await page.getByRole('link', { name: 'Set up CI' }).click()
    await page.getByRole('heading', { name: 'CI configuration of main' }).waitFor()
    const bad = 'build:\n  script: [make]\n  colour: red\n'
    await page.getByLabel('.gitlab-ci.yml').fill(bad)
    await page.getByRole('button', { name: 'Validate' }).click()
    const lint = await wharf.api('POST', `/api/v4/projects/${id}/ci/lint`, { content: bad, ref: 'main' })
    assert.equal(lint.json.valid, false)
    const alert = page.getByRole('alert')
    await alert.getByText('This GitLab CI configuration is invalid:').waitFor()
    assert.deepEqual(await alert.getByRole('listitem').allTextContents(), lint.json.errors)
    // An invalid file is not committed.
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await alert.waitFor()
    assert.equal((await rawFile(id, '.gitlab-ci.yml')).status, 404)

    await page.getByLabel('Choose a template').selectOption('Docker')
    await waitForValue(page.getByLabel('.gitlab-ci.yml'), (v) => v.includes('docker:dind'))
    await page.getByRole('button', { name: 'Validate' }).click()
    await page.getByText('This GitLab CI configuration is valid: 1 job for main (docker-build).').waitFor()
    const merged = page.getByLabel('Merged YAML')
    await merged.getByText(/DOCKER_IMAGE_NAME: \$CI_REGISTRY_IMAGE:\$CI_COMMIT_REF_SLUG/).waitFor()

    // A file that includes the template: the merged YAML shows the template's job.
    await page.getByLabel('.gitlab-ci.yml').fill('include:\n  - template: Docker.gitlab-ci.yml\n')
    await page.getByRole('button', { name: 'Validate' }).click()
    await merged.getByText(/^docker-build:/m).waitFor()
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page
      .getByRole('heading', { name: 'Pipelines' })
      .or(page.getByRole('link', { name: /#\d+/ }))
      .first()
      .waitFor()
    assert.equal((await rawFile(id, '.gitlab-ci.yml')).text, 'include:\n  - template: Docker.gitlab-ci.yml\n')
    const pipelines = await wharf.api('GET', `/api/v4/projects/${id}/pipelines`)
    assert.equal(pipelines.json.length, 1, pipelines.describe)
    const jobs = await wharf.api('GET', `/api/v4/projects/${id}/pipelines/${pipelines.json[0].id}/jobs`)
    assert.deepEqual(
      jobs.json.map((j: { name: string }) => j.name),
      ['docker-build'],
    )

    // From the Pipelines tab, the editor opens the committed file.
    await page.getByRole('link', { name: 'CI editor' }).click()
    await page.getByRole('heading', { name: 'CI configuration of main' }).waitFor()
    await waitForValue(page.getByLabel('.gitlab-ci.yml'), (v) => v.startsWith('include:'))
    assert.equal(await page.getByLabel('Commit message').inputValue(), 'Update .gitlab-ci.yml')
  })
})
