// Protected branches and tags (issue 12): GitLab's API to manage them (Maintainer+), enforced on the
// repository API and on a real `git push` over smart HTTP (the pre-receive hook), and followed by CI
// (protected refs get protected variables).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { test } from 'node:test'
import { run } from '../helpers/run.ts'
import { apiHarness, assertProblem } from './api-harness.ts'

type Json = Record<string, any>

test('protected branches and tags: managed by maintainers, enforced on the API and on git push, followed by CI', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = await h.services.groups.createGroup(root.user, { path: 'grp', visibility: 'private' })
  const project = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  const dev = await h.user('dev')
  const maint = await h.user('maint')
  const rep = await h.user('rep')
  for (const [u, level] of [
    [dev, 30],
    [maint, 40],
    [rep, 20],
  ] as const)
    await h.services.members.addMember(Number.POSITIVE_INFINITY, 'project', project.id, u.user.id, level, null)
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}/grp/app.git`

  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = {
    PATH: process.env.PATH,
    HOME: h.tmpDir,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'A',
    GIT_AUTHOR_EMAIL: 'a@x',
    GIT_COMMITTER_NAME: 'A',
    GIT_COMMITTER_EMAIL: 'a@x',
  }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' })
  /** git push as a user (password in a header, never in the URL); returns the exit code and stderr. */
  // Asynchronous: the server answering the push runs in this process.
  const push = async (user: string, ...refspecs: string[]) => {
    const auth = Buffer.from(`${user}:${user}-password`).toString('base64')
    const r = await run('git', ['-c', `http.extraHeader=Authorization: Basic ${auth}`, 'push', url, ...refspecs], { cwd: work, env })
    return { code: r.code, stderr: r.stderr }
  }
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, 'a.txt'), '1\n')
  git('add', '-A')
  git('commit', '-q', '-m', 'one')
  assert.equal((await push('dev', 'HEAD:refs/heads/main')).code, 0)

  const base = `/api/v4/projects/${project.id}`
  // Managing rules needs Maintainer; the query string form of GitLab's docs works as a body does.
  assertProblem(await h.req('POST', `${base}/protected_branches?name=main`, { token: dev.token }), 403)
  assertProblem(await h.req('GET', `${base}/protected_branches`, { token: rep.token }), 403)
  let res = await h.req('POST', `${base}/protected_branches?name=main&push_access_level=40&merge_access_level=40`, { token: maint.token })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual(
    [(res.json() as Json).name, (res.json() as Json).push_access_levels[0].access_level, (res.json() as Json).allow_force_push],
    ['main', 40, false],
  )
  res = await h.req('POST', `${base}/protected_branches`, {
    token: maint.token,
    body: { name: 'release/*', push_access_level: 30, allow_force_push: true },
  })
  assert.equal(res.statusCode, 201, res.body)
  assertProblem(await h.req('POST', `${base}/protected_branches`, { token: maint.token, body: { name: 'main' } }), 409)
  assertProblem(await h.req('POST', `${base}/protected_branches`, { token: maint.token, body: { name: 'x', push_access_level: 35 } }), 400)
  res = await h.req('POST', `${base}/protected_tags`, { token: maint.token, body: { name: 'v*', create_access_level: 40 } })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual(res.json(), {
    name: 'v*',
    create_access_levels: [
      {
        id: (res.json() as Json).create_access_levels[0].id,
        access_level: 40,
        access_level_description: 'Maintainers',
        deploy_key_id: null,
        user_id: null,
        group_id: null,
      },
    ],
  })
  res = await h.req('GET', `${base}/protected_branches?per_page=1`, { token: maint.token })
  assert.deepEqual([res.headers['x-total'], (res.json() as Json[])[0]!.name], ['2', 'main'])
  assert.equal(
    ((await h.req('GET', `${base}/protected_branches/${encodeURIComponent('release/*')}`, { token: maint.token })).json() as Json)
      .allow_force_push,
    true,
  )

  // main: developers can neither commit through the API nor push; maintainers can, but not force.
  res = await h.req('POST', `${base}/repository/files/b.txt`, {
    token: dev.token,
    body: { branch: 'main', content: 'b', commit_message: 'b' },
  })
  assert.match(String(assertProblem(res, 403).message), /not allowed to push code to protected branches/)
  await writeFile(join(work, 'a.txt'), '2\n')
  git('commit', '-q', '-am', 'two')
  let p = await push('dev', 'HEAD:refs/heads/main')
  assert.notEqual(p.code, 0)
  assert.match(p.stderr, /not allowed to push code to protected branches on this project/)
  assert.equal((await push('maint', 'HEAD:refs/heads/main')).code, 0)
  git('commit', '-q', '--amend', '-m', 'rewritten')
  p = await push('maint', '--force', 'HEAD:refs/heads/main')
  assert.match(p.stderr, /not allowed to force push/)
  p = await push('maint', ':refs/heads/main')
  assert.notEqual(p.code, 0)

  // release/*: developers push and force-push; a push never deletes it, the API does for maintainers.
  assert.equal((await push('dev', 'HEAD:refs/heads/release/1')).code, 0)
  git('commit', '-q', '--amend', '-m', 'again')
  assert.equal((await push('dev', '--force', 'HEAD:refs/heads/release/1')).code, 0)
  assert.match((await push('dev', ':refs/heads/release/1')).stderr, /only delete protected branches using the web interface/)
  assertProblem(await h.req('DELETE', `${base}/repository/branches/${encodeURIComponent('release/1')}`, { token: dev.token }), 403)
  // CI: a protected branch gets protected variables, an unprotected one does not.
  assert.equal(await h.services.ci!.pipelines.isProtectedRef(project.id, 'release/1', false), true)
  assert.equal(await h.services.ci!.pipelines.isProtectedRef(project.id, 'feature', false), false)
  assert.equal(await h.services.ci!.pipelines.isProtectedRef(project.id, 'v1', true), true)
  assert.equal(
    (await h.req('DELETE', `${base}/repository/branches/${encodeURIComponent('release/1')}`, { token: maint.token })).statusCode,
    204,
  )

  // Tags v*: only maintainers create them, and nobody moves or deletes one by pushing.
  assertProblem(await h.req('POST', `${base}/repository/tags`, { token: dev.token, body: { tag_name: 'v1', ref: 'main' } }), 403)
  git('tag', 'v2')
  assert.match((await push('dev', 'refs/tags/v2')).stderr, /not allowed to create this tag as it is protected/)
  assert.equal(
    (await h.req('POST', `${base}/repository/tags`, { token: maint.token, body: { tag_name: 'v1', ref: 'main' } })).statusCode,
    201,
  )
  assert.equal((await push('maint', 'refs/tags/v2')).code, 0)
  git('tag', '-f', 'v2', 'HEAD~1')
  assert.match((await push('maint', '--force', 'refs/tags/v2')).stderr, /not allowed to change existing tags/)
  assert.equal((await h.req('DELETE', `${base}/repository/tags/v1`, { token: maint.token })).statusCode, 204)
  // Unprotected names are not affected.
  assert.equal((await push('dev', 'HEAD:refs/heads/feature')).code, 0)

  // Unprotecting main lets developers in again.
  assertProblem(await h.req('DELETE', `${base}/protected_branches/nope`, { token: maint.token }), 404)
  assert.equal((await h.req('DELETE', `${base}/protected_branches/main`, { token: maint.token })).statusCode, 204)
  res = await h.req('POST', `${base}/repository/files/b.txt`, {
    token: dev.token,
    body: { branch: 'main', content: 'b', commit_message: 'b' },
  })
  assert.equal(res.statusCode, 201, res.body)
})
