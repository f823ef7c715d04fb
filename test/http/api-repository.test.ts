// GitLab's repository API (issue 12): files, commits with actions, tree, compare, archives, branches
// and tags, over app.inject against a real bare repository. What the API writes is checked with the
// git CLI on that repository, and a commit made through the API starts a pipeline as a push does.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

type Json = Record<string, any>

async function setup(t: TestContext) {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = await h.services.groups.createGroup(root.user, { path: 'grp', visibility: 'private' })
  const project = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: h.tmpDir,
    GIT_AUTHOR_NAME: 'A',
    GIT_AUTHOR_EMAIL: 'a@x',
    GIT_COMMITTER_NAME: 'A',
    GIT_COMMITTER_EMAIL: 'a@x',
  }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' })
  /** git against the project's bare repository. */
  const bareGit = (...args: string[]) => execFileSync('git', [`--git-dir=${bare}`, ...args], { env, encoding: 'utf8' })
  git('init', '-q', '-b', 'main')
  await mkdir(join(work, 'src/lib'), { recursive: true })
  await writeFile(join(work, '.gitlab-ci.yml'), 'build: { script: [make] }\n')
  await writeFile(join(work, 'README.md'), 'hello\n')
  await writeFile(join(work, 'src/main.c'), 'int main() { return 0; }\n')
  await writeFile(join(work, 'src/lib/a.c'), 'a\n')
  git('add', '-A')
  git('commit', '-q', '-m', 'first')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  const reporter = await h.user('rep')
  const developer = await h.user('dev')
  await h.services.members.addMember(Number.POSITIVE_INFINITY, 'project', project.id, reporter.user.id, 20, null)
  await h.services.members.addMember(Number.POSITIVE_INFINITY, 'project', project.id, developer.user.id, 30, null)
  const base = `/api/v4/projects/${project.id}/repository`
  return { h, root, project, bare, bareGit, git, work, reporter, developer, base }
}

const enc = encodeURIComponent

test('files API: create, read (JSON, HEAD, raw), update with last_commit_id, delete; each a commit that starts a pipeline', async (t) => {
  const { h, root, project, bareGit, base, developer } = await setup(t)
  const tok = developer.token
  const before = bareGit('rev-parse', 'main').trim()

  let res = await h.req('POST', `${base}/files/${enc('docs/guide.md')}`, {
    token: tok,
    body: { branch: 'main', content: '# Guide\n', commit_message: 'add guide', file_path: 'docs/guide.md' },
  })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual(res.json(), { file_path: 'docs/guide.md', branch: 'main' })
  const created = bareGit('rev-parse', 'main').trim()
  assert.notEqual(created, before)
  assert.equal(bareGit('rev-parse', 'main^').trim(), before, 'a commit on top of the branch')
  assert.equal(bareGit('show', 'main:docs/guide.md'), '# Guide\n')
  assert.match(bareGit('log', '-1', '--format=%an|%s', 'main'), /^dev\|add guide/)
  // The same push path as git push: a pipeline for the new commit, with the old head as before_sha.
  const pipelines = await h.services.ci!.pipelines.listPipelines(project.id, { limit: 10, offset: 0 } as never)
  const p = pipelines.find((x) => x.sha === created)
  assert.ok(p, 'a pipeline for the API commit')
  assert.equal(p.source, 'push')
  assert.equal(p.before_sha, before)

  res = await h.req('GET', `${base}/files/${enc('docs/guide.md')}?ref=main`, { token: tok })
  assert.equal(res.statusCode, 200, res.body)
  const file = res.json() as Json
  assert.equal(Buffer.from(file.content, 'base64').toString(), '# Guide\n')
  assert.deepEqual(
    [file.file_name, file.file_path, file.size, file.encoding, file.ref, file.commit_id, file.last_commit_id, file.execute_filemode],
    ['guide.md', 'docs/guide.md', 8, 'base64', 'main', created, created, false],
  )
  assert.equal(file.blob_id, bareGit('rev-parse', 'main:docs/guide.md').trim())
  assert.match(file.content_sha256, /^[0-9a-f]{64}$/)

  res = await h.req('HEAD', `${base}/files/${enc('docs/guide.md')}?ref=main`, { token: tok })
  assert.equal(res.statusCode, 200)
  assert.equal(res.body, '')
  assert.equal(res.headers['x-gitlab-blob-id'], file.blob_id)
  assert.equal(res.headers['x-gitlab-last-commit-id'], created)
  assert.equal(res.headers['x-gitlab-content-sha256'], file.content_sha256)

  res = await h.req('GET', `${base}/files/${enc('docs/guide.md')}/raw?ref=main`, { token: tok })
  assert.equal(res.statusCode, 200)
  assert.equal(res.body, '# Guide\n')
  assert.match(String(res.headers['content-type']), /^text\/plain/)
  // No ref: the default branch.
  assert.equal((await h.req('GET', `${base}/files/README.md/raw`, { token: tok })).body, 'hello\n')

  // A stale last_commit_id is GitLab's 400; the right one updates.
  await h.req('PUT', `${base}/files/README.md`, {
    token: root.token,
    body: { branch: 'main', content: 'hello again\n', commit_message: 'readme' },
  })
  res = await h.req('PUT', `${base}/files/README.md`, {
    token: tok,
    body: { branch: 'main', content: 'mine\n', commit_message: 'stale', last_commit_id: before },
  })
  assert.match(String(assertProblem(res, 400).message), /The file has changed since you started editing it/)
  const readmeLast = ((await h.req('GET', `${base}/files/README.md?ref=main`, { token: tok })).json() as Json).last_commit_id
  res = await h.req('PUT', `${base}/files/README.md`, {
    token: tok,
    body: {
      branch: 'main',
      content: Buffer.from('bin\0ary').toString('base64'),
      encoding: 'base64',
      commit_message: 'fresh',
      last_commit_id: readmeLast,
    },
  })
  assert.equal(res.statusCode, 200, res.body)
  res = await h.req('GET', `${base}/files/README.md/raw?ref=main`, { token: tok })
  assert.equal(res.rawPayload.toString('latin1'), 'bin\0ary')
  assert.equal(res.headers['content-type'], 'application/octet-stream')

  // DELETE with its attributes in the query string (python-gitlab) and in the body (gitbeaker).
  res = await h.req('DELETE', `${base}/files/${enc('docs/guide.md')}?branch=main&commit_message=${enc('drop guide')}`, { token: tok })
  assert.equal(res.statusCode, 204, res.body)
  res = await h.req('DELETE', `${base}/files/README.md`, { token: tok, body: { branch: 'main', commit_message: 'drop readme' } })
  assert.equal(res.statusCode, 204, res.body)
  assert.equal(bareGit('ls-tree', '--name-only', 'main').trim().split('\n').sort().join(','), '.gitlab-ci.yml,src')
  assertProblem(await h.req('GET', `${base}/files/README.md?ref=main`, { token: tok }), 404)
})

test('files API refuses what GitLab refuses, with 4xx problems and nothing written', async (t) => {
  const { h, base, bareGit, reporter, developer, project } = await setup(t)
  const head = bareGit('rev-parse', 'main').trim()
  const body = { branch: 'main', content: 'x', commit_message: 'm' }
  // Reporters read but do not write; strangers do not see a private project.
  assertProblem(await h.req('POST', `${base}/files/new.txt`, { token: reporter.token, body }), 403)
  assert.equal((await h.req('GET', `${base}/files/README.md?ref=main`, { token: reporter.token })).statusCode, 200)
  const stranger = await h.user('stranger')
  assertProblem(await h.req('GET', `${base}/files/README.md?ref=main`, { token: stranger.token }), 404)
  assertProblem(await h.req('GET', `${base}/files/README.md?ref=main`), 404)

  const tok = developer.token
  assert.match(String(assertProblem(await h.req('POST', `${base}/files/README.md`, { token: tok, body }), 400).message), /already exists/)
  assert.match(String(assertProblem(await h.req('PUT', `${base}/files/nope.txt`, { token: tok, body }), 400).message), /doesn't exist/)
  assert.match(
    String(assertProblem(await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, branch: 'nobranch' } }), 400).message),
    /on a branch/,
  )
  assert.match(
    String(
      assertProblem(
        await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, branch: 'b', start_branch: 'nobranch' } }),
        400,
      ).message,
    ),
    /Invalid reference name/,
  )
  // A path through a file, and paths that are not relative paths.
  assert.match(
    String(assertProblem(await h.req('POST', `${base}/files/${enc('README.md/inner')}`, { token: tok, body }), 400).message),
    /already exists: README.md$/,
  )
  for (const bad of ['../x', 'a//b', '.', 'a/./b'])
    assertProblem(await h.req('POST', `${base}/files/${enc(bad)}`, { token: tok, body }), 400)
  assertProblem(await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, branch: '-x' } }), 400)
  assertProblem(await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, encoding: 'base64', content: '%%%' } }), 400)
  assertProblem(await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, author_email: 'a>b <c@d>' } }), 400)
  assertProblem(await h.req('POST', `${base}/files/x.txt`, { token: tok, body: { ...body, wharf: 1 } }), 400)
  assertProblem(await h.req('GET', `${base}/files/README.md?ref=nope`, { token: tok }), 404)
  assertProblem(await h.req('GET', `${base}/files/src?ref=main`, { token: tok }), 404)
  assert.equal(bareGit('rev-parse', 'main').trim(), head, 'nothing committed')
  assert.deepEqual(bareGit('for-each-ref', '--format=%(refname)').trim().split('\n'), ['refs/heads/main'])
  assert.ok(project)
})

test('commits API: actions create/update/move/chmod/delete in one commit; start_branch; list, one, diff, compare', async (t) => {
  const { h, base, bare, bareGit, developer } = await setup(t)
  const tok = developer.token
  const first = bareGit('rev-parse', 'main').trim()
  const actions = [
    { action: 'create', file_path: 'bin/run.sh', content: '#!/bin/sh\necho hi\n', execute_filemode: true },
    { action: 'update', file_path: 'README.md', content: 'updated\n' },
    { action: 'move', previous_path: 'src/lib/a.c', file_path: 'src/a.c' },
    { action: 'chmod', file_path: 'src/main.c', execute_filemode: true },
    { action: 'delete', file_path: '.gitlab-ci.yml' },
    { action: 'create', file_path: 'data.bin', content: Buffer.from([0, 1, 2, 255]).toString('base64'), encoding: 'base64' },
  ]
  let res = await h.req('POST', `${base}/commits`, {
    token: tok,
    body: {
      branch: 'feature',
      start_branch: 'main',
      commit_message: 'many things\n\nbody',
      actions,
      author_name: 'Ann Author',
      author_email: 'ann@example.com',
    },
  })
  assert.equal(res.statusCode, 201, res.body)
  const c = res.json() as Json
  assert.equal(c.id, bareGit('rev-parse', 'feature').trim())
  assert.deepEqual(c.parent_ids, [first])
  assert.deepEqual(
    [c.title, c.message, c.author_name, c.author_email, c.committer_name],
    ['many things', 'many things\n\nbody\n', 'Ann Author', 'ann@example.com', 'dev'],
  )
  assert.deepEqual(c.stats, { additions: 3, deletions: 2, total: 5 })
  assert.equal(bareGit('rev-parse', 'main').trim(), first, 'main untouched')
  const tree = bareGit('ls-tree', '-r', 'feature')
    .trim()
    .split('\n')
    .map((l) => l.replace(/ [0-9a-f]{40}\t/, ' '))
  assert.deepEqual(
    tree.sort(),
    ['100644 blob README.md', '100644 blob data.bin', '100644 blob src/a.c', '100755 blob bin/run.sh', '100755 blob src/main.c'].sort(),
  )
  assert.deepEqual(execFileSync('git', [`--git-dir=${bare}`, 'cat-file', 'blob', 'feature:data.bin']), Buffer.from([0, 1, 2, 255]))
  bareGit('fsck', '--no-dangling')

  // An action against a missing file fails the whole commit.
  res = await h.req('POST', `${base}/commits`, {
    token: tok,
    body: {
      branch: 'feature',
      commit_message: 'x',
      actions: [
        { action: 'create', file_path: 'ok.txt', content: '' },
        { action: 'delete', file_path: 'gone.txt' },
      ],
    },
  })
  assertProblem(res, 400)
  assertProblem(
    await h.req('POST', `${base}/commits`, {
      token: tok,
      body: { branch: 'feature', commit_message: 'x', actions: [{ action: 'rename', file_path: 'a' }] },
    }),
    400,
  )
  assertProblem(await h.req('POST', `${base}/commits`, { token: tok, body: { branch: 'feature', commit_message: 'x', actions: [] } }), 400)
  assert.match(
    String(
      assertProblem(
        await h.req('POST', `${base}/commits`, {
          token: tok,
          body: {
            branch: 'feature',
            start_branch: 'main',
            commit_message: 'x',
            actions: [{ action: 'create', file_path: 'y', content: '' }],
          },
        }),
        400,
      ).message,
    ),
    /already exists/,
  )
  assert.equal(bareGit('rev-parse', 'feature').trim(), c.id)

  // History: newest first, paged with GitLab's headers, filtered by path.
  res = await h.req('GET', `${base}/commits?ref_name=feature&per_page=1`, { token: tok })
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual([res.headers['x-total'], res.headers['x-next-page'], (res.json() as Json[])[0]!.id], ['2', '2', c.id])
  res = await h.req('GET', `${base}/commits?ref_name=feature&path=bin/run.sh`, { token: tok })
  assert.deepEqual(
    (res.json() as Json[]).map((x) => x.id),
    [c.id],
  )
  res = await h.req('GET', `${base}/commits`, { token: tok })
  assert.deepEqual(
    (res.json() as Json[]).map((x) => x.id),
    [first],
    'the default branch',
  )
  res = await h.req('GET', `${base}/commits/feature`, { token: tok })
  assert.equal((res.json() as Json).id, c.id)
  assertProblem(await h.req('GET', `${base}/commits/${'0'.repeat(40)}`, { token: tok }), 404)

  res = await h.req('GET', `${base}/commits/${c.id}/diff`, { token: tok })
  const diffs = res.json() as Json[]
  const moved = diffs.find((d) => d.new_path === 'src/a.c')!
  assert.deepEqual([moved.old_path, moved.renamed_file], ['src/lib/a.c', true])
  assert.equal(diffs.find((d) => d.old_path === '.gitlab-ci.yml')!.deleted_file, true)
  assert.match(diffs.find((d) => d.new_path === 'README.md')!.diff, /^@@ -1 \+1 @@\n-hello\n\+updated\n/)

  res = await h.req('GET', `${base}/compare?from=main&to=feature`, { token: tok })
  const cmp = res.json() as Json
  assert.deepEqual([cmp.commits.map((x: Json) => x.id), cmp.commit.id, cmp.compare_same_ref], [[c.id], c.id, false])
  assert.equal(cmp.diffs.length, 6)
  assertProblem(await h.req('GET', `${base}/compare?from=main&to=nope`, { token: tok }), 404)
})

test('concurrent API commits to one branch all land (the ref update is compare-and-swap, retried)', async (t) => {
  const { h, base, bareGit, developer } = await setup(t)
  const results = await Promise.all(
    Array.from({ length: 6 }, (_, i) =>
      h.req('POST', `${base}/files/f${i}.txt`, {
        token: developer.token,
        body: { branch: 'main', content: `${i}\n`, commit_message: `f${i}` },
      }),
    ),
  )
  const codes = results.map((r) => r.statusCode)
  // Each either landed or was told to retry (409) after three lost races; none lost silently.
  assert.ok(
    codes.every((s) => s === 201 || s === 409),
    codes.join(','),
  )
  const landed = codes.filter((s) => s === 201).length
  assert.ok(landed >= 1)
  const files = bareGit('ls-tree', '--name-only', 'main')
    .split('\n')
    .filter((f) => /^f\d\.txt$/.test(f))
  assert.equal(files.length, landed)
  assert.equal(Number(bareGit('rev-list', '--count', 'main').trim()), 1 + landed)
})

test('tree: a directory, paths, recursive, pages; 404 for a missing path', async (t) => {
  const { h, base, developer } = await setup(t)
  const tok = developer.token
  let res = await h.req('GET', `${base}/tree`, { token: tok })
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual(
    (res.json() as Json[]).map((e) => `${e.type} ${e.path} ${e.mode}`),
    ['tree src 040000', 'blob .gitlab-ci.yml 100644', 'blob README.md 100644'],
  )
  res = await h.req('GET', `${base}/tree?path=src&ref=main`, { token: tok })
  assert.deepEqual(
    (res.json() as Json[]).map((e) => [e.name, e.path]),
    [
      ['lib', 'src/lib'],
      ['main.c', 'src/main.c'],
    ],
  )
  res = await h.req('GET', `${base}/tree?recursive=true&per_page=2&page=2`, { token: tok })
  assert.deepEqual([res.headers['x-total'], res.headers['x-total-pages']], ['6', '3'])
  assert.equal((res.json() as Json[]).length, 2)
  assertProblem(await h.req('GET', `${base}/tree?path=nope`, { token: tok }), 404)
  assertProblem(await h.req('GET', `${base}/tree?path=README.md`, { token: tok }), 404)
  assertProblem(await h.req('GET', `${base}/tree?ref=nope`, { token: tok }), 404)
})

test('archive: tar.gz (default), zip and a sub-directory, streamed from git archive', async (t) => {
  const { h, base, developer, bareGit, project } = await setup(t)
  const sha = bareGit('rev-parse', 'main').trim()
  let res = await h.req('GET', `${base}/archive`, { token: developer.token })
  assert.equal(res.statusCode, 200, res.body)
  assert.equal(res.headers['content-type'], 'application/gzip')
  assert.equal(res.headers['content-disposition'], `attachment; filename="${project.path}-${sha}.tar.gz"`)
  const listed = execFileSync('tar', ['tz'], { input: res.rawPayload, encoding: 'utf8' }).trim().split('\n')
  assert.ok(listed.includes(`app-${sha}/src/lib/a.c`), listed.join(','))

  res = await h.req('GET', `${base}/archive.zip?sha=main&path=src/lib`, { token: developer.token })
  assert.equal(res.statusCode, 200, res.body)
  const zip = join(h.tmpDir, 'a.zip')
  await writeFile(zip, res.rawPayload)
  const entries = execFileSync('unzip', ['-Z1', zip], { encoding: 'utf8' }).trim().split('\n')
  assert.deepEqual(
    entries.filter((e) => !e.endsWith('/')),
    [`app-main-${sha}-src-lib/src/lib/a.c`],
  )
  assertProblem(await h.req('GET', `${base}/archive.rar`, { token: developer.token }), 404)
  assertProblem(await h.req('GET', `${base}/archive.tar?sha=nope`, { token: developer.token }), 404)
  assertProblem(await h.req('GET', `${base}/archive.tar?path=nope`, { token: developer.token }), 404)
})

test('branches and tags: create (query or body), get, delete; the default branch stays; reporters cannot', async (t) => {
  const { h, base, bareGit, developer, reporter } = await setup(t)
  const tok = developer.token
  const sha = bareGit('rev-parse', 'main').trim()
  let res = await h.req('POST', `${base}/branches?branch=topic&ref=main`, { token: tok })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual([(res.json() as Json).name, (res.json() as Json).commit.id], ['topic', sha])
  res = await h.req('POST', `${base}/branches`, { token: tok, body: { branch: 'topic2', ref: sha } })
  assert.equal(res.statusCode, 201, res.body)
  assert.match(
    String(assertProblem(await h.req('POST', `${base}/branches`, { token: tok, body: { branch: 'topic', ref: 'main' } }), 400).message),
    /Branch already exists/,
  )
  assertProblem(await h.req('POST', `${base}/branches`, { token: tok, body: { branch: 'x', ref: 'nope' } }), 400)
  assertProblem(await h.req('POST', `${base}/branches`, { token: tok, body: { branch: 'bad..name', ref: 'main' } }), 400)
  assertProblem(await h.req('POST', `${base}/branches`, { token: reporter.token, body: { branch: 'r', ref: 'main' } }), 403)
  assert.equal((await h.req('DELETE', `${base}/branches/topic2`, { token: tok })).statusCode, 204)
  assertProblem(await h.req('DELETE', `${base}/branches/topic2`, { token: tok }), 404)
  assertProblem(await h.req('DELETE', `${base}/branches/main`, { token: tok }), 403)
  assert.deepEqual(bareGit('for-each-ref', '--format=%(refname)', 'refs/heads').trim().split('\n'), ['refs/heads/main', 'refs/heads/topic'])

  res = await h.req('POST', `${base}/tags`, { token: tok, body: { tag_name: 'v1.0', ref: 'main', message: 'release 1.0' } })
  assert.equal(res.statusCode, 201, res.body)
  const tag = res.json() as Json
  assert.deepEqual([tag.name, tag.message, tag.commit.id], ['v1.0', 'release 1.0\n', sha])
  assert.equal(bareGit('cat-file', '-t', 'v1.0').trim(), 'tag')
  assert.equal(tag.target, bareGit('rev-parse', 'v1.0').trim())
  res = await h.req('POST', `${base}/tags?tag_name=light&ref=topic`, { token: tok })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual([(res.json() as Json).target, (res.json() as Json).message], [sha, ''])
  assertProblem(await h.req('POST', `${base}/tags`, { token: tok, body: { tag_name: 'v1.0', ref: 'main' } }), 400)
  assert.equal(((await h.req('GET', `${base}/tags/v1.0`, { token: reporter.token })).json() as Json).name, 'v1.0')
  assertProblem(await h.req('DELETE', `${base}/tags/v1.0`, { token: reporter.token }), 403)
  assert.equal((await h.req('DELETE', `${base}/tags/v1.0`, { token: tok })).statusCode, 204)
  assertProblem(await h.req('GET', `${base}/tags/v1.0`, { token: tok }), 404)
  assertProblem(await h.req('DELETE', `${base}/tags/v1.0`, { token: tok }), 404)
})

test('the first commit of an empty repository, through the commits API', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const project = await h.services.projects.createProject(root.user, {
    namespaceId: (await h.services.groups.userNamespaceOf(root.user.id)).id,
    path: 'empty',
  })
  const base = `/api/v4/projects/${project.id}/repository`
  let res = await h.req('GET', `${base}/tree`, { token: root.token })
  assert.deepEqual([res.statusCode, res.json()], [200, []])
  res = await h.req('POST', `${base}/commits`, {
    token: root.token,
    body: { branch: 'main', commit_message: 'init', actions: [{ action: 'create', file_path: 'README.md', content: 'hi' }] },
  })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual((res.json() as Json).parent_ids, [])
  res = await h.req('GET', `${base}/branches`, { token: root.token })
  assert.deepEqual(
    (res.json() as Json[]).map((b) => [b.name, b.default]),
    [['main', true]],
  )
})
