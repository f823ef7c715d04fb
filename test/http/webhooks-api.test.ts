// GitLab's webhook API (/projects/:id/hooks, /groups/:id/hooks): settings, roles, the write-only
// secret token, and the refusal of local-network targets (SSRF), over app.inject with the defaults.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

test("project hooks: maintainers manage them; the token is never shown; GitLab's fields come back", async (t) => {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'g', visibility: 'private' })
  const project = await h.services.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const dev = await h.user('dev')
  const maint = await h.user('maint')
  await h.req('POST', `/api/v4/projects/${project.id}/members`, { token, body: { user_id: dev.user.id, access_level: 30 } })
  await h.req('POST', `/api/v4/projects/${project.id}/members`, { token, body: { user_id: maint.user.id, access_level: 40 } })

  const created = await h.req('POST', `/api/v4/projects/${project.id}/hooks`, {
    token: maint.token,
    body: {
      url: 'https://8.8.8.8/hook',
      token: 'hook-secret',
      tag_push_events: true,
      pipeline_events: true,
      push_events_branch_filter: 'main',
    },
  })
  assert.equal(created.statusCode, 201, created.body)
  const hook = created.json()
  assert.equal(hook.project_id, project.id)
  assert.equal(hook.url, 'https://8.8.8.8/hook')
  assert.deepEqual(
    [hook.push_events, hook.tag_push_events, hook.pipeline_events, hook.job_events, hook.registry_events, hook.enable_ssl_verification],
    [true, true, true, false, false, true],
  )
  assert.equal(hook.push_events_branch_filter, 'main')
  assert.ok(!('token' in hook) && !created.body.includes('hook-secret'))
  const row = await h.db.selectFrom('webhooks').selectAll().where('id', '=', hook.id).executeTakeFirstOrThrow()
  assert.ok(row.token_sealed && !row.token_sealed.includes('hook-secret'), 'sealed at rest')

  const edited = await h.req('PUT', `/api/v4/projects/${project.id}/hooks/${hook.id}`, {
    token: maint.token,
    body: { job_events: true, push_events: false },
  })
  assert.equal(edited.statusCode, 200, edited.body)
  assert.deepEqual([edited.json().job_events, edited.json().push_events, edited.json().url], [true, false, 'https://8.8.8.8/hook'])
  const list = await h.req('GET', `/api/v4/projects/${project.id}/hooks`, { token: maint.token })
  assert.deepEqual(
    list.json().map((x: { id: number }) => x.id),
    [hook.id],
  )
  assert.equal(list.headers['x-total'], '1')

  // Developers cannot see or change hooks (they could read the receiver's responses otherwise).
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}/hooks`, { token: dev.token }), 403)
  assertProblem(await h.req('POST', `/api/v4/projects/${project.id}/hooks`, { token: dev.token, body: { url: 'https://8.8.8.8/x' } }), 403)

  // A test delivery is queued and listed with what would be sent (the token redacted).
  assert.equal(
    (await h.req('POST', `/api/v4/projects/${project.id}/hooks/${hook.id}/test/pipeline_events`, { token: maint.token })).statusCode,
    201,
  )
  const events = await h.req('GET', `/api/v4/projects/${project.id}/hooks/${hook.id}/events`, { token: maint.token })
  assert.equal(events.statusCode, 200, events.body)
  const [e] = events.json()
  assert.equal(e.trigger, 'pipeline_events')
  assert.equal(e.status, 'pending')
  assert.equal(e.request_headers['X-Gitlab-Event'], 'Pipeline Hook')
  assert.equal(e.request_headers['X-Gitlab-Token'], '[REDACTED]')
  assert.equal(e.request_data.object_kind, 'pipeline')
  assertProblem(await h.req('POST', `/api/v4/projects/${project.id}/hooks/${hook.id}/test/issues_events`, { token: maint.token }), 400)

  assert.equal((await h.req('DELETE', `/api/v4/projects/${project.id}/hooks/${hook.id}`, { token: maint.token })).statusCode, 204)
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}/hooks/${hook.id}`, { token: maint.token }), 404)
  assert.equal(await h.db.selectFrom('webhook_deliveries').select('id').executeTakeFirst(), undefined, 'deliveries go with their hook')
})

test("hooks aimed at the local network are refused with GitLab's message; so are other schemes", async (t) => {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'g', visibility: 'private' })
  const project = await h.services.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  for (const url of [
    'http://127.0.0.1:5000/api/v4/projects',
    'http://localhost/x',
    'http://169.254.169.254/latest/meta-data/',
    'http://[::1]/',
    'http://10.0.0.5/',
    'http://[::ffff:127.0.0.1]/',
  ]) {
    const res = await h.req('POST', `/api/v4/projects/${project.id}/hooks`, { token, body: { url } })
    assert.match(String(assertProblem(res, 400).message), /url is blocked: Requests to the local network are not allowed/, url)
  }
  assert.match(
    String(
      assertProblem(await h.req('POST', `/api/v4/projects/${project.id}/hooks`, { token, body: { url: 'file:///etc/passwd' } }), 400)
        .message,
    ),
    /Only allowed schemes are http, https/,
  )
  // Editing an existing hook to an internal address is refused the same way.
  const ok = await h.req('POST', `/api/v4/projects/${project.id}/hooks`, { token, body: { url: 'http://8.8.8.8/' } })
  assertProblem(
    await h.req('PUT', `/api/v4/projects/${project.id}/hooks/${ok.json().id}`, { token, body: { url: 'http://127.0.0.1/' } }),
    400,
  )
  assert.equal((await h.db.selectFrom('webhooks').select('url').executeTakeFirstOrThrow()).url, 'http://8.8.8.8/')
})

test('group hooks are for group owners; a project maintainer cannot add one', async (t) => {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'g', visibility: 'private' })
  const maint = await h.user('maint')
  await h.req('POST', `/api/v4/groups/${group.id}/members`, { token, body: { user_id: maint.user.id, access_level: 40 } })
  assertProblem(await h.req('POST', `/api/v4/groups/${group.id}/hooks`, { token: maint.token, body: { url: 'http://8.8.8.8/' } }), 403)
  const created = await h.req('POST', `/api/v4/groups/${group.id}/hooks`, {
    token,
    body: { url: 'http://8.8.8.8/', registry_events: true },
  })
  assert.equal(created.statusCode, 201, created.body)
  assert.equal(created.json().group_id, group.id)
  assert.equal(created.json().registry_events, true)
  assertProblem(await h.req('GET', `/api/v4/projects/${group.id}/hooks/${created.json().id}`, { token }), 404)
})
