// Runners as GitLab 16+ has them: created by users (POST /user/runners: admins instance runners,
// maintainers group and project ones; glrt- token shown once), verified and unregistered by the
// runner itself, listed and managed through the API with contacted_at/online.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { runnerHarness } from './runner-harness.ts'

describe('runner creation, verification and management', () => {
  it('creates runners by role and shows the token once', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token: rootToken } = await h.root()
    const { user: maint, token: maintToken } = await h.user('maint')
    const { user: dev, token: devToken } = await h.user('dev')
    const project = await h.project(root, 'team', 'app', {
      members: [
        [maint, 'maintainer'],
        [dev, 'developer'],
      ],
    })

    const inst = await h.req('POST', '/api/v4/user/runners', {
      token: rootToken,
      body: { runner_type: 'instance_type', description: 'shared', tag_list: ['docker'] },
    })
    assert.equal(inst.statusCode, 201, inst.body)
    const created = inst.json() as { id: number; token: string; token_expires_at: null }
    assert.match(created.token, /^glrt-/)
    assert.equal(created.token_expires_at, null)

    assert.equal(
      (await h.req('POST', '/api/v4/user/runners', { token: maintToken, body: { runner_type: 'instance_type' } })).statusCode,
      403,
    )
    assert.equal(
      (await h.req('POST', '/api/v4/user/runners', { token: devToken, body: { runner_type: 'project_type', project_id: project.id } }))
        .statusCode,
      403,
    )
    const own = await h.req('POST', '/api/v4/user/runners', {
      token: maintToken,
      body: { runner_type: 'project_type', project_id: project.id },
    })
    assert.equal(own.statusCode, 201, own.body)
    assert.equal(
      (await h.req('POST', '/api/v4/user/runners', { token: maintToken, body: { runner_type: 'project_type' } })).statusCode,
      400,
    )

    const shown = await h.req('GET', `/api/v4/runners/${created.id}`, { token: rootToken })
    assert.equal(shown.statusCode, 200)
    const entity = shown.json() as Record<string, unknown>
    assert.equal(entity.token, undefined, 'never shown again')
    assert.equal(entity.runner_type, 'instance_type')
    assert.equal(entity.is_shared, true)
    assert.deepEqual(entity.tag_list, ['docker'])
    assert.equal(entity.run_untagged, false, 'a tagged runner does not run untagged jobs unless asked')
    assert.equal(entity.online, false)
    assert.equal(entity.status, 'never_contacted')
    assert.equal(entity.contacted_at, null)
    void dev
  })

  it('verifies and unregisters with the runner token (POST /runners/verify, DELETE /runners)', async (t) => {
    const h = await runnerHarness(t)
    const { token } = await h.root()
    const r = await h.runner(token, { runner_type: 'instance_type' })
    const ok = await h.req('POST', '/api/v4/runners/verify', { body: { token: r.token, system_id: 's_1' } })
    assert.equal(ok.statusCode, 200, ok.body)
    assert.deepEqual(ok.json(), { id: r.id, token: r.token, token_expires_at: null })
    assert.equal((await h.req('POST', '/api/v4/runners/verify', { body: { token: 'glrt-unknown' } })).statusCode, 403)

    const seen = (await h.req('GET', `/api/v4/runners/${r.id}`, { token })).json() as {
      online: boolean
      contacted_at: string
      status: string
    }
    assert.equal(seen.online, true)
    assert.equal(seen.status, 'online')
    assert.ok(seen.contacted_at)

    // Registration tokens (the pre-16.0 flow) are not supported, with a message saying what to do.
    const legacy = await h.req('POST', '/api/v4/runners', { body: { token: 'GR1348941xyz' } })
    assert.equal(legacy.statusCode, 403)
    assert.match(legacy.body, /user\/runners/)

    assert.equal((await h.req('DELETE', '/api/v4/runners/managers', { body: { token: r.token, system_id: 's_1' } })).statusCode, 204)
    assert.equal(
      (await h.req('POST', '/api/v4/runners/verify', { body: { token: r.token } })).statusCode,
      200,
      'a manager going away keeps the runner',
    )

    const reset = await h.req('POST', '/api/v4/runners/reset_authentication_token', { body: { token: r.token } })
    assert.equal(reset.statusCode, 201)
    const fresh = (reset.json() as { token: string }).token
    assert.match(fresh, /^glrt-/)
    assert.equal((await h.req('POST', '/api/v4/runners/verify', { body: { token: r.token } })).statusCode, 403, 'the old token is dead')

    assert.equal((await h.req('DELETE', '/api/v4/runners', { body: { token: fresh } })).statusCode, 204)
    assert.equal((await h.req('POST', '/api/v4/runners/verify', { body: { token: fresh } })).statusCode, 403)
    assert.equal((await h.req('DELETE', '/api/v4/runners', { body: { token: fresh } })).statusCode, 403)
  })

  it('lists, updates and deletes runners by who manages them; the last request records the runner info', async (t) => {
    const h = await runnerHarness(t, { longPollMs: 20 })
    const { user: root, token: rootToken } = await h.root()
    const { user: maint, token: maintToken } = await h.user('maint')
    const { token: strangerToken } = await h.user('stranger')
    const project = await h.project(root, 'team', 'app', { members: [[maint, 'maintainer']] })
    const group = (await h.services.groups.findGroupRef('team'))!
    const inst = await h.runner(rootToken, { runner_type: 'instance_type' })
    const grp = await h.runner(rootToken, { runner_type: 'group_type', group_id: group.id })
    const prj = await h.runner(maintToken, { runner_type: 'project_type', project_id: project.id, description: 'mine' })

    assert.equal((await h.request(prj.token)).statusCode, 204)
    const info = (await h.req('GET', `/api/v4/runners/${prj.id}`, { token: maintToken })).json() as Record<string, unknown>
    assert.equal(info.executor, 'shell')
    assert.equal(info.version, '1.0.0')
    assert.equal(info.platform, 'linux')
    assert.equal(info.architecture, 'amd64')
    assert.equal(info.online, true)

    const ids = (res: { json(): unknown }) => (res.json() as Array<{ id: number }>).map((r) => r.id).sort((a, b) => a - b)
    assert.deepEqual(ids(await h.req('GET', '/api/v4/runners/all', { token: rootToken })), [inst.id, grp.id, prj.id])
    assert.equal((await h.req('GET', '/api/v4/runners/all', { token: maintToken })).statusCode, 403)
    assert.deepEqual(ids(await h.req('GET', '/api/v4/runners', { token: maintToken })), [prj.id])
    assert.deepEqual(ids(await h.req('GET', '/api/v4/runners', { token: strangerToken })), [])
    assert.deepEqual(ids(await h.req('GET', `/api/v4/projects/${project.id}/runners`, { token: maintToken })), [inst.id, grp.id, prj.id])
    assert.deepEqual(ids(await h.req('GET', `/api/v4/projects/${project.id}/runners?type=project_type`, { token: maintToken })), [prj.id])
    assert.equal((await h.req('GET', `/api/v4/projects/${project.id}/runners`, { token: strangerToken })).statusCode, 404)

    const upd = await h.req('PUT', `/api/v4/runners/${prj.id}`, {
      token: maintToken,
      body: { paused: true, tag_list: 'a, b', run_untagged: false, description: 'renamed' },
    })
    assert.equal(upd.statusCode, 200, upd.body)
    const after = upd.json() as { paused: boolean; active: boolean; tag_list: string[]; run_untagged: boolean; description: string }
    assert.deepEqual(
      { paused: after.paused, active: after.active, tags: after.tag_list, untagged: after.run_untagged, d: after.description },
      { paused: true, active: false, tags: ['a', 'b'], untagged: false, d: 'renamed' },
    )
    assert.deepEqual(ids(await h.req('GET', '/api/v4/runners/all?paused=true', { token: rootToken })), [prj.id])
    assert.deepEqual(ids(await h.req('GET', '/api/v4/runners/all?tag_list=a', { token: rootToken })), [prj.id])

    assert.equal(
      (await h.req('PUT', `/api/v4/runners/${inst.id}`, { token: maintToken, body: { paused: true } })).statusCode,
      404,
      'instance runners are for admins',
    )
    assert.equal((await h.req('DELETE', `/api/v4/runners/${prj.id}`, { token: strangerToken })).statusCode, 404)
    assert.equal((await h.req('DELETE', `/api/v4/runners/${prj.id}`, { token: maintToken })).statusCode, 204)
    assert.equal((await h.request(prj.token)).statusCode, 403, 'a deleted runner is refused')
  })
})
