// The built-in CI templates: GitLab's template API, `include: template:`, CI lint's merged YAML, and
// POST /markdown (the README renderer), over app.inject on a real git repository.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

async function setup(t: TestContext, files: Record<string, string>) {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'tpl', visibility: 'private' })
  const project = await h.services.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@x' }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim()
  git('init', '-q', '-b', 'main')
  for (const [name, content] of Object.entries(files)) await writeFile(join(work, name), content)
  git('add', '-A')
  git('commit', '-q', '-m', 'files')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  return { h, token, project }
}

const TEMPLATE_DIR = new URL('../../src/ci/templates/', import.meta.url)
const KEYS = ['Docker', 'Docker-Multiarch', 'Go', 'Nodejs', 'Python']

interface Lint {
  valid: boolean
  errors: string[]
  merged_yaml: string | null
  jobs?: Array<{ name: string; stage: string }>
}

describe('CI templates', () => {
  it('GET /templates/gitlab_ci_ymls lists the built-in set (Docker first), paged; /:key gives name and content, to anyone', async (t) => {
    const h = await apiHarness(t)
    let res = await h.req('GET', '/api/v4/templates/gitlab_ci_ymls')
    assert.equal(res.statusCode, 200, res.body)
    const list = res.json() as Array<{ key: string; name: string }>
    assert.deepEqual(
      list.map((x) => x.key),
      ['Docker', ...KEYS.filter((k) => k !== 'Docker')],
    )
    assert.deepEqual(list[0], { key: 'Docker', name: 'Docker' })
    assert.equal(res.headers['x-total'], String(KEYS.length))
    // With a trailing slash (gitbeaker's Templates.all()), the same list.
    res = await h.req('GET', '/api/v4/templates/gitlab_ci_ymls/')
    assert.deepEqual([res.statusCode, res.json()], [200, list])
    res = await h.req('GET', '/api/v4/templates/gitlab_ci_ymls?per_page=2&page=2')
    assert.deepEqual(
      (res.json() as Array<{ key: string }>).map((x) => x.key),
      ['Go', 'Nodejs'],
    )
    for (const key of KEYS) {
      res = await h.req('GET', `/api/v4/templates/gitlab_ci_ymls/${key}`)
      assert.equal(res.statusCode, 200, res.body)
      assert.deepEqual(res.json(), { name: key, content: await readFile(new URL(`${key}.gitlab-ci.yml`, TEMPLATE_DIR), 'utf8') })
    }
    const docker = (await h.req('GET', '/api/v4/templates/gitlab_ci_ymls/Docker')).json() as { content: string }
    assert.match(docker.content, /image: docker:cli/)
    assert.match(docker.content, /- docker:dind/)
    assert.match(docker.content, /docker login -u "\$CI_REGISTRY_USER" --password-stdin "\$CI_REGISTRY"/)
    assert.match(String(assertProblem(await h.req('GET', '/api/v4/templates/gitlab_ci_ymls/Nope'), 404).message), /Template Not Found/)
    assert.match(
      String(assertProblem(await h.req('GET', '/api/v4/templates/gitlab_ci_ymls/..%2F..%2Fpackage'), 404).message),
      /Template Not Found/,
    )
  })

  it("every template is valid for Wharf's parser as CI lint checks it (the multi-arch one once parallel:matrix is supported)", async (t) => {
    const { h, token, project } = await setup(t, { Dockerfile: 'FROM scratch\n', 'README.md': '# app\n' })
    for (const key of KEYS) {
      const content = await readFile(new URL(`${key}.gitlab-ci.yml`, TEMPLATE_DIR), 'utf8')
      const res = await h.req('POST', `/api/v4/projects/${project.id}/ci/lint`, { token, body: { content, include_jobs: true } })
      assert.equal(res.statusCode, 200, res.body)
      const lint = res.json() as Lint
      if (key === 'Docker-Multiarch' && !lint.valid && lint.errors.every((e) => /parallel/.test(e))) {
        t.diagnostic(`${key}: ${lint.errors.join('; ')} (parallel:matrix lands with the CI keywords)`)
        continue
      }
      assert.deepEqual([key, lint.valid, lint.errors], [key, true, []])
      assert.ok(lint.jobs!.length > 0, key)
    }
  })

  it('include: template: Docker.gitlab-ci.yml plans the Docker job; an unknown template is an error; lint shows the merged YAML', async (t) => {
    const { h, token, project } = await setup(t, { Dockerfile: 'FROM scratch\n' })
    const lint = async (content: string) => {
      const res = await h.req('POST', `/api/v4/projects/${project.id}/ci/lint`, { token, body: { content, include_jobs: true } })
      assert.equal(res.statusCode, 200, res.body)
      return res.json() as Lint
    }
    let l = await lint('include:\n  - template: Docker.gitlab-ci.yml\n')
    assert.deepEqual([l.valid, l.errors, l.jobs?.map((j) => [j.name, j.stage])], [true, [], [['docker-build', 'build']]])
    assert.match(l.merged_yaml!, /^docker-build:\n {2}image: docker:cli\n/m)
    assert.match(l.merged_yaml!, /docker build --pull -t "\$DOCKER_IMAGE_NAME" \./)
    // The including file wins over the template, as with include:local.
    l = await lint('include: { template: Docker.gitlab-ci.yml }\ndocker-build:\n  image: docker:27-cli\n')
    assert.equal(l.valid, true, l.errors.join())
    assert.match(l.merged_yaml!, /^ {2}image: docker:27-cli$/m)
    l = await lint('include:\n  - template: Nope.gitlab-ci.yml\n')
    assert.deepEqual([l.valid, l.errors, l.merged_yaml], [false, ['Included file `Nope.gitlab-ci.yml` is empty or does not exist!'], null])
    l = await lint('include:\n  - template: Docker\n')
    assert.deepEqual(l.errors, ['Included file `Docker` does not have YAML extension!'])
    l = await lint('include:\n  - template: Docker.gitlab-ci.yml\n    local: a.yml\n')
    assert.deepEqual(l.errors, ['Each include must use only one of: local, template'])

    // merged_yaml: extends expanded (the job has its template's keys; `extends` stays, as GitLab shows it);
    // an invalid file that expanded still shows it.
    l = await lint('.base:\n  image: alpine:3\n  script: [echo base]\njob:\n  extends: .base\n  stage: test\n')
    assert.equal(l.valid, true, l.errors.join())
    assert.match(l.merged_yaml!, /^job:\n {2}image: alpine:3\n {2}script:\n {4}- echo base\n {2}extends: \.base\n {2}stage: test\n/m)
    l = await lint('job:\n  script: [x]\n  colour: red\n')
    assert.equal(l.valid, false)
    assert.match(l.merged_yaml!, /colour: red/)

    // A push of a file including the template creates the pipeline with the template's job.
    const res = await h.req('POST', `/api/v4/projects/${project.id}/repository/files/.gitlab-ci.yml`, {
      token,
      body: { branch: 'main', content: 'include:\n  - template: Docker.gitlab-ci.yml\n', commit_message: 'Set up CI' },
    })
    assert.equal(res.statusCode, 201, res.body)
    const pipelines = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines`, { token })).json() as Array<{
      id: number
      status: string
    }>
    assert.equal(pipelines.length, 1)
    const jobs = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${pipelines[0]!.id}/jobs`, { token })).json() as Array<{
      name: string
    }>
    assert.deepEqual(
      jobs.map((j) => j.name),
      ['docker-build'],
    )
  })
})

describe('POST /markdown', () => {
  it('renders Markdown as HTML with raw HTML escaped and script URLs refused (a malicious README)', async (t) => {
    const h = await apiHarness(t)
    const { token } = await h.root()
    const readme = [
      '# Wharf app',
      '',
      'Some **bold** text, `code` and a [link](https://example.com/docs).',
      '',
      '<script>alert(1)</script>',
      '<img src=x onerror="alert(2)">',
      '<iframe src="https://evil.example"></iframe>',
      '',
      '[click](javascript:alert(3)) [data](data:text/html;base64,PHNjcmlwdD5hbGVydCg0KTwvc2NyaXB0Pg==) [vb](vbscript:msgbox)',
      '',
      '![pic](javascript:alert(5))',
      '',
      '| a | b |',
      '|---|---|',
      '| 1 | 2 |',
    ].join('\n')
    const res = await h.req('POST', '/api/v4/markdown', { token, body: { text: readme, gfm: true } })
    assert.equal(res.statusCode, 201, res.body)
    const { html } = res.json() as { html: string }
    assert.match(html, /<h1>Wharf app<\/h1>/)
    assert.match(html, /<strong>bold<\/strong>/)
    assert.match(html, /<a href="https:\/\/example\.com\/docs" rel="nofollow noreferrer noopener">link<\/a>/)
    assert.match(html, /<table>/)
    assert.match(html, /&lt;script&gt;alert\(1\)&lt;\/script&gt;/)
    assert.doesNotMatch(html, /<script|<img[^>]*onerror|<iframe/i)
    assert.doesNotMatch(html, /href="(javascript|data|vbscript):/i)
    assert.doesNotMatch(html, /src="javascript:/i)
    assert.match(String(assertProblem(await h.req('POST', '/api/v4/markdown', { body: { text: '# x' } }), 401).message), /./)
    assert.match(String(assertProblem(await h.req('POST', '/api/v4/markdown', { token, body: {} }), 400).message), /text/)
  })
})
