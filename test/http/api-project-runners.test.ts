// Enabling a project runner for more projects (POST/DELETE /projects/:id/runners) and the jobs a
// runner took (GET /runners/:id/jobs), with GitLab's permissions, over the runner protocol.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runnerHarness, updateJob } from './runner-harness.ts'

const CI = 'build:\n  script: [make]\n'

describe('project runners across projects', () => {
  it('enables, lists and disables a project runner for another project; the runner takes its jobs only meanwhile', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token: rootToken } = await h.root()
    const maint = await h.user('maint')
    const maintA = await h.user('maint-a')
    const dev = await h.user('dev')
    const a = await h.project(root, 'team', 'a', {
      members: [
        [maint.user, 'maintainer'],
        [maintA.user, 'maintainer'],
      ],
    })
    const b = await h.project(root, 'team', 'b', {
      members: [
        [maint.user, 'maintainer'],
        [dev.user, 'developer'],
      ],
    })
    const c = await h.project(root, 'other', 'c')
    const runner = await h.runner(maint.token, { runner_type: 'project_type', project_id: a.id })
    const listB = async () =>
      ((await h.req('GET', `/api/v4/projects/${b.id}/runners`, { token: maint.token })).json() as Array<{ id: number }>).map((r) => r.id)

    // Not enabled for b yet: b's job waits.
    const pb1 = await h.pipeline(b, await h.commit(b, { '.gitlab-ci.yml': CI }), maint.user.id)
    assert.deepEqual(await listB(), [])
    assert.equal((await h.request(runner.token)).statusCode, 204)

    const enable = (project: number, token: string, runnerId = runner.id) =>
      h.req('POST', `/api/v4/projects/${project}/runners`, { token, body: { runner_id: runnerId } })
    assert.equal((await enable(b.id, dev.token)).statusCode, 403, 'developers do not enable runners')
    assert.equal((await enable(b.id, maint.token, 999_999)).statusCode, 404)
    assert.equal((await enable(b.id, maint.token, runner.id)).statusCode, 201)
    const again = await enable(b.id, maint.token)
    assert.equal(again.statusCode, 400, again.body)
    assert.equal((await enable(a.id, maint.token)).statusCode, 400, 'already its own project')
    assert.equal((await h.req('POST', `/api/v4/projects/${b.id}/runners`, { token: maint.token, body: {} })).statusCode, 400)
    assert.deepEqual(await listB(), [runner.id])
    // A runner the caller does not manage, group, instance and locked runners cannot be enabled.
    const foreign = await h.runner(rootToken, { runner_type: 'project_type', project_id: c.id })
    const noAccess = await enable(b.id, maint.token, foreign.id)
    assert.equal(noAccess.statusCode, 403, noAccess.body)
    const group = (await h.services.groups.findGroupRef('team'))!
    const groupRunner = await h.runner(rootToken, { runner_type: 'group_type', group_id: group.id })
    assert.equal((await enable(c.id, rootToken, groupRunner.id)).statusCode, 403)
    const shared = await h.runner(rootToken, { runner_type: 'instance_type' })
    assert.equal((await enable(c.id, rootToken, shared.id)).statusCode, 403)
    const locked = await h.runner(maint.token, { runner_type: 'project_type', project_id: a.id, locked: true })
    assert.equal((await enable(b.id, maint.token, locked.id)).statusCode, 403)

    // Now it takes b's job, and a's.
    const jb = await h.take(runner.token)
    assert.equal(jb.id, (await h.ci.pipelines.jobs(pb1.id))[0]!.id)
    await h.pipeline(a, await h.commit(a, { '.gitlab-ci.yml': CI }), maint.user.id)
    const ja = await h.take(runner.token)
    assert.equal((await updateJob(h, ja, { state: 'success', exit_code: 0 })).statusCode, 200)

    // The runner's jobs: newest first, filtered by status, paged; each names its project.
    const jobs = async (token: string, query = '') => {
      const res = await h.req('GET', `/api/v4/runners/${runner.id}/jobs${query}`, { token })
      assert.equal(res.statusCode, 200, res.body)
      const list = res.json() as Array<{ id: number; status: string; project: { id: number; path_with_namespace: string } }>
      return { total: res.headers['x-total'], list: list.map((j) => [j.id, j.status, j.project.path_with_namespace]) }
    }
    assert.deepEqual(await jobs(maint.token), {
      total: '2',
      list: [
        [ja.id, 'success', 'team/a'],
        [jb.id, 'running', 'team/b'],
      ],
    })
    assert.deepEqual(await jobs(maint.token, '?status=running'), { total: '1', list: [[jb.id, 'running', 'team/b']] })
    assert.deepEqual(await jobs(maint.token, '?per_page=1&page=2'), { total: '2', list: [[jb.id, 'running', 'team/b']] })
    assert.deepEqual(await jobs(maint.token, '?sort=asc&per_page=1'), { total: '2', list: [[jb.id, 'running', 'team/b']] })
    // maint-a manages the runner through project a, and reads only a's jobs.
    assert.deepEqual(await jobs(maintA.token), { total: '1', list: [[ja.id, 'success', 'team/a']] })
    assert.equal((await h.req('GET', `/api/v4/runners/${runner.id}/jobs?status=nope`, { token: maint.token })).statusCode, 400)
    assert.equal((await h.req('GET', `/api/v4/runners/${runner.id}/jobs`, { token: dev.token })).statusCode, 404)

    // Disable: never for its own project; then b's new jobs wait again.
    const disable = (project: number, token: string) => h.req('DELETE', `/api/v4/projects/${project}/runners/${runner.id}`, { token })
    assert.equal((await disable(b.id, dev.token)).statusCode, 403)
    assert.equal((await disable(a.id, maint.token)).statusCode, 403)
    assert.equal((await disable(b.id, maint.token)).statusCode, 204)
    assert.equal((await disable(b.id, maint.token)).statusCode, 404)
    assert.deepEqual(await listB(), [groupRunner.id, shared.id], 'the group and instance runners only')
    await h.pipeline(b, await h.commit(b, { 'x.txt': 'x' }), maint.user.id)
    assert.equal((await h.request(runner.token)).statusCode, 204)
  })
})
