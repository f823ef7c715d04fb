// The administrator area's API: the instance audit log (filters, paging), usage counts, signing
// keys, the masked settings and DELETE /users/:id. Every route refuses non-administrators.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { loadConfig, publicSettings } from '../../src/config/load.ts'
import { apiHarness, assertProblem, pushImage, ROOT_PASSWORD } from './api-harness.ts'

type Json = Record<string, unknown>

test('admin routes answer 403 to a non-administrator and 401 without a token', async (t) => {
  const h = await apiHarness(t)
  const alice = await h.user('alice')
  const root = await h.root()
  const target = (await h.user('victim')).user.id
  for (const [method, url] of [
    ['GET', '/api/v4/audit_events'],
    ['GET', '/api/v4/audit_events?created_after=not-a-date'],
    ['GET', '/api/v4/application/statistics'],
    ['GET', '/api/v4/admin/signing_keys'],
    ['POST', '/api/v4/admin/signing_keys/rotate'],
    ['GET', '/api/v4/admin/settings'],
    ['DELETE', `/api/v4/users/${target}`],
    ['DELETE', `/api/v4/users/${target}?hard_delete=true`],
    ['POST', `/api/v4/users/${target}/deactivate`],
    ['POST', `/api/v4/users/${target}/activate`],
  ] as const) {
    assert.match(String(assertProblem(await h.req(method, url, { token: alice.token }), 403).message), /administrator/, url)
    assertProblem(await h.req(method, url), 401)
    if (method === 'GET') assert.notEqual((await h.req(method, url, { token: root.token })).statusCode, 403, url)
  }
  assert.equal((await h.db.selectFrom('signing_keys').selectAll().execute()).length, 1, 'the refused rotate added no key')
  assert.ok(await h.services.users.findUserById(target), 'the refused delete removed no one')
})

test('GET /audit_events filters by actor, action (exact or prefix), entity and date, paged in SQL with GitLab headers', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const bob = await h.user('bob', { admin: true })
  const created: number[] = []
  for (const name of ['u1', 'u2', 'u3']) {
    const res = await h.req('POST', '/api/v4/users', { token: root.token, body: { username: name, password: 'password-123' } })
    assert.equal(res.statusCode, 201, res.body)
    created.push((res.json() as Json).id as number)
  }
  assert.equal((await h.req('POST', `/api/v4/users/${created[0]}/block`, { token: bob.token })).statusCode, 201)
  assert.equal(
    (await h.req('PUT', `/api/v4/users/${created[1]}`, { token: bob.token, body: { password: 'new-password-1' } })).statusCode,
    200,
  )
  const get = async (q: string) => {
    const res = await h.req('GET', `/api/v4/audit_events${q}`, { token: root.token })
    assert.equal(res.statusCode, 200, res.body)
    return { items: res.json() as Json[], headers: res.headers }
  }

  const byAction = await get('?action=user.created&per_page=2')
  assert.deepEqual(
    byAction.items.map((e) => e.target),
    [`user:${created[2]}`, `user:${created[1]}`],
    'newest first',
  )
  assert.deepEqual([byAction.headers['x-total'], byAction.headers['x-total-pages'], byAction.headers['x-next-page']], ['3', '2', '2'])
  const second = await get('?action=user.created&per_page=2&page=2')
  assert.deepEqual(
    second.items.map((e) => e.target),
    [`user:${created[0]}`],
  )
  assert.deepEqual(second.items[0], {
    ...second.items[0],
    actor: 'root',
    action: 'user.created',
    entity_type: 'User',
    entity_id: created[0],
    details: { username: 'u1', admin: false },
  })

  const bobs = await get('?actor=bob')
  assert.deepEqual(bobs.items.map((e) => e.action).sort(), ['user.blocked', 'user.updated'])
  assert.deepEqual((bobs.items.find((e) => e.action === 'user.updated')!.details as Json).fields, ['password'])
  assert.deepEqual((await get('?action=user.')).items.length, 5, 'a prefix ending in a dot')
  assert.deepEqual((await get('?action=user')).items.length, 0, 'no dot: exact')
  assert.deepEqual((await get('?action=user%25')).items.length, 0, '% is not a wildcard')
  assert.deepEqual(
    (await get(`?entity_type=User&entity_id=${created[0]}`)).items.map((e) => e.action),
    ['user.blocked', 'user.created'],
  )
  assert.ok((await get('?entity_type=User')).items.every((e) => e.entity_type === 'User'))
  assert.equal((await get(`?target=user:${created[1]}&actor=root`)).items.length, 1)
  assert.equal((await get('?created_after=2999-01-01T00:00:00Z')).items.length, 0)
  assert.equal((await get('?created_before=2000-01-01T00:00:00Z')).items.length, 0)
  assert.ok((await get('?created_after=2000-01-01T00:00:00Z')).items.length >= 5)
  assertProblem(await h.req('GET', '/api/v4/audit_events?entity_id=3', { token: root.token }), 400)
  assertProblem(await h.req('GET', '/api/v4/audit_events?entity_type=Runner', { token: root.token }), 400)
  assertProblem(await h.req('GET', '/api/v4/audit_events?created_after=yesterday', { token: root.token }), 400)
})

test('GET /application/statistics counts users, groups, projects, image blobs and bytes, pipelines and runners', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const stats = async () => (await h.req('GET', '/api/v4/application/statistics', { token: root.token })).json() as Json
  const before = await stats()
  assert.deepEqual(before, {
    users: 1,
    active_users: 1,
    blocked_users: 0,
    admins: 1,
    groups: 0,
    projects: 0,
    repositories: 0,
    blobs: 0,
    blob_bytes: 0,
    container_registry_size: 0,
    pipelines: 0,
    jobs: 0,
    runners: 0,
    runners_online: 0,
  })
  const carol = await h.user('carol')
  await h.services.users.setUserState(carol.user.id, 'blocked')
  const group = await h.services.groups.createGroup(root.user, { path: 'grp', visibility: 'private' })
  await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  await pushImage(h, { username: 'root', password: ROOT_PASSWORD }, 'grp/app', ['1'])
  const blobs = await h.db.selectFrom('blobs').select(['size']).execute()
  assert.ok(blobs.length >= 2)
  const runner = await h.req('POST', '/api/v4/user/runners', { token: root.token, body: { runner_type: 'instance_type' } })
  assert.equal(runner.statusCode, 201, runner.body)
  const after = await stats()
  assert.deepEqual(after, {
    ...after,
    users: 2,
    active_users: 1,
    blocked_users: 1,
    admins: 1,
    groups: 1,
    projects: 1,
    repositories: 1,
    blobs: blobs.length,
    blob_bytes: blobs.reduce((n, b) => n + b.size, 0),
    runners: 1,
    runners_online: 0,
  })
  await h.db.updateTable('runners').set({ contacted_at: new Date().toISOString() }).execute()
  assert.equal((await stats()).runners_online, 1)
})

test('signing keys: listed without their private halves; rotate adds one that signs new registry tokens', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const list = async () => (await h.req('GET', '/api/v4/admin/signing_keys', { token: root.token })).json() as Json[]
  const [first] = await list()
  assert.deepEqual(Object.keys(first!).sort(), ['active', 'created_at', 'kid', 'retired_at'])
  const rotated = await h.req('POST', '/api/v4/admin/signing_keys/rotate', { token: root.token })
  assert.equal(rotated.statusCode, 201, rotated.body)
  const kid = (rotated.json() as Json).kid
  assert.notEqual(kid, first!.kid)
  assert.deepEqual((await list()).map((k) => k.kid).sort(), [kid, first!.kid].sort())
  // The next registry token is signed with the new key.
  const token = await h.req('GET', '/jwt/auth?service=container_registry&scope=registry:catalog:*', {
    headers: { authorization: `Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString('base64')}` },
  })
  assert.equal(token.statusCode, 200, token.body)
  const header = JSON.parse(Buffer.from(String((token.json() as Json).token).split('.')[0]!, 'base64url').toString()) as Json
  assert.equal(header.kid, kid)
  const audit = (await h.req('GET', '/api/v4/audit_events?action=signing_key.rotated', { token: root.token })).json() as Json[]
  assert.deepEqual(
    audit.map((e) => [e.actor, (e.details as Json).kid]),
    [['root', kid]],
  )
})

test('DELETE /users/:id removes a user with their personal projects, refuses a group’s only Owner unless hard_delete, never oneself', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const admin2 = await h.user('admin2', { admin: true })
  const erin = await h.user('erin')
  const dave = await h.user('dave') // the newest account: SQLite would reuse its id without AUTOINCREMENT
  const group = await h.services.groups.createGroup(root.user, { path: 'team', visibility: 'private' })
  const project = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  assert.equal(
    (
      await h.req('POST', `/api/v4/projects/${project.id}/members`, {
        token: root.token,
        body: { user_id: dave.user.id, access_level: 30 },
      })
    ).statusCode,
    201,
  )
  const erinNs = await h.db.selectFrom('namespaces').where('full_path', '=', 'erin').select('id').executeTakeFirstOrThrow()
  await h.services.projects.createProject(erin.user, { namespaceId: erinNs.id, path: 'mine' })

  // Erin alone owns a group, as GitLab refuses that without hard_delete; with it, the group goes too.
  const erinGroup = await h.services.groups.createGroup(erin.user, { path: 'erins', visibility: 'private' })
  await h.services.projects.createProject(erin.user, { namespaceId: erinGroup.id, path: 'lib' })
  const refused = assertProblem(await h.req('DELETE', `/api/v4/users/${erin.user.id}`, { token: root.token }), 409)
  assert.equal(refused.message, '409 User cannot be removed while is the sole-owner of a group (erins)')
  assert.ok(await h.services.projects.findProjectRef('erin/mine'), 'a refused deletion deletes nothing')
  // Another Owner beside her: the group is not hers alone, and stays.
  const shared = await h.services.groups.createGroup(root.user, { path: 'shared', visibility: 'private' })
  await h.services.members.addMember(50, 'namespace', shared.id, erin.user.id, 50, null)
  assert.equal((await h.req('DELETE', `/api/v4/users/${erin.user.id}?hard_delete=true`, { token: root.token })).statusCode, 204)
  assert.equal(await h.services.projects.findProjectRef('erin/mine'), undefined, 'personal projects go with the user')
  assert.equal(await h.services.projects.findProjectRef('erins/lib'), undefined, 'hard_delete took the group she alone owned')
  assert.equal((await h.req('GET', `/api/v4/groups/${shared.id}`, { token: root.token })).statusCode, 200)
  assertProblem(await h.req('DELETE', `/api/v4/users/${root.user.id}`, { token: root.token }), 403)
  assertProblem(await h.req('DELETE', '/api/v4/users/99999', { token: root.token }), 404)
  // The group's only Owner (root) cannot be deleted by another admin without hard_delete.
  assert.match(
    String(assertProblem(await h.req('DELETE', `/api/v4/users/${root.user.id}`, { token: admin2.token }), 409).message),
    /sole-owner of a group \(shared, team\)/,
  )

  assert.equal((await h.req('DELETE', `/api/v4/users/${dave.user.id}`, { token: root.token })).statusCode, 204)
  assertProblem(await h.req('GET', `/api/v4/users/${dave.user.id}`, { token: root.token }), 404)
  assertProblem(await h.req('GET', '/api/v4/user', { token: dave.token }), 401)
  const members = (await h.req('GET', `/api/v4/projects/${project.id}/members`, { token: root.token })).json() as Json[]
  assert.ok(!members.some((m) => m.username === 'dave'))
  assert.equal(
    await h.db.selectFrom('namespaces').where('full_path', '=', 'dave').selectAll().executeTakeFirst(),
    undefined,
    'their namespace is gone, so the name can be taken again',
  )
  const again = await h.req('POST', '/api/v4/users', { token: root.token, body: { username: 'dave', password: 'password-123' } })
  assert.equal(again.statusCode, 201)
  // Ids are never reused, so nothing that still names the old id (a refresh token, a registry token's credential) reaches the new account.
  assert.notEqual((again.json() as Json).id, dave.user.id)
  const audit = (await h.req('GET', '/api/v4/audit_events?action=user.deleted', { token: root.token })).json() as Json[]
  assert.deepEqual(
    audit.map((e) => [e.actor, e.entity_id, (e.details as Json).username]),
    [
      ['root', dave.user.id, 'dave'],
      ['root', erin.user.id, 'erin'],
    ],
  )
})

test('GET /admin/settings is the effective configuration with secrets masked', async (t) => {
  const config = loadConfig({
    env: {
      WHARF_ROOT_PASSWORD: 'root-secret-password',
      WHARF_METRICS_TOKEN: 'metrics-secret-0123456789',
      WHARF_AUTH_TOKEN_TTL_SECONDS: '123',
    },
  })
  const h = await apiHarness(t, { settings: publicSettings(config) })
  const root = await h.root()
  const res = await h.req('GET', '/api/v4/admin/settings', { token: root.token })
  assert.equal(res.statusCode, 200, res.body)
  const body = res.json() as { auth: Json; metrics: Json; limits: Json; dependencyProxy: Json }
  assert.equal(body.auth.tokenTtlSeconds, 123)
  assert.deepEqual([body.auth.rootPassword, body.metrics.token, body.dependencyProxy.upstreams], ['(set)', '(set)', '(set)'])
  assert.equal(body.limits.manifestBytes, config.limits.manifestBytes)
  // The values, not the word: the `secrets` setting group itself is shown (its key file's path is no secret).
  assert.ok(!res.body.includes('root-secret-password') && !res.body.includes('metrics-secret-'), res.body)
  // Without a configuration (an app built by a test), there is nothing to show.
  const bare = await apiHarness(t)
  assertProblem(await bare.req('GET', '/api/v4/admin/settings', { token: (await bare.root()).token }), 404)
})
