// REST API: project and group members. Maintainers manage members; only owners grant, change or
// remove the owner role; members may leave; a group keeps at least one owner.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

async function world(t: Parameters<typeof apiHarness>[0]) {
  const h = await apiHarness(t)
  const owner = await h.user('owner')
  const group = (await h.req('POST', '/api/v4/groups', { token: owner.token, body: { path: 'team' } })).json() as { id: number }
  const project = (
    await h.req('POST', '/api/v4/projects', { token: owner.token, body: { path: 'app', namespace_id: group.id } })
  ).json() as { id: number }
  const users: Record<string, { id: number; token: string }> = { owner: { id: owner.user.id, token: owner.token } }
  for (const name of ['guest', 'developer', 'maintainer', 'newbie', 'other']) {
    const u = await h.user(name)
    users[name] = { id: u.user.id, token: u.token }
  }
  for (const [name, level] of [
    ['guest', 10],
    ['developer', 30],
    ['maintainer', 40],
  ] as const) {
    const r = await h.req('POST', `/api/v4/projects/${project.id}/members`, {
      token: owner.token,
      body: { user_id: users[name]!.id, access_level: level },
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  return { h, group, project, users }
}

test('project members: list, get, add, update, remove with GitLab shapes', async (t) => {
  const { h, project, users } = await world(t)
  const base = `/api/v4/projects/${project.id}/members`
  const list = await h.req('GET', base, { token: users.guest!.token })
  assert.equal(list.statusCode, 200)
  const members = list.json() as Array<Record<string, unknown>>
  assert.deepEqual(
    members.map((m) => [m.username, m.access_level]),
    [
      ['developer', 30],
      ['guest', 10],
      ['maintainer', 40],
    ],
  )
  for (const k of ['id', 'username', 'name', 'state', 'access_level', 'expires_at', 'web_url']) assert.ok(k in members[0]!, k)
  assert.equal(list.headers['x-total'], '3')

  const add = await h.req('POST', base, {
    token: users.maintainer!.token,
    form: { user_id: String(users.newbie!.id), access_level: '20', expires_at: '2999-12-31' },
  })
  assert.equal(add.statusCode, 201, add.body)
  assert.deepEqual(
    [(add.json() as { access_level: number }).access_level, (add.json() as { expires_at: string }).expires_at],
    [20, '2999-12-31'],
  )
  assertProblem(await h.req('POST', base, { token: users.maintainer!.token, body: { user_id: users.newbie!.id, access_level: 30 } }), 409)
  assert.equal((await h.req('GET', `${base}/${users.newbie!.id}`, { token: users.guest!.token })).statusCode, 200)

  const upd = await h.req('PUT', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token, body: { access_level: 30 } })
  assert.equal(upd.statusCode, 200, upd.body)
  assert.equal((upd.json() as { access_level: number }).access_level, 30)
  assert.equal((upd.json() as { expires_at: string }).expires_at, '2999-12-31') // kept when not sent

  assert.equal((await h.req('DELETE', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token })).statusCode, 204)
  assertProblem(await h.req('GET', `${base}/${users.newbie!.id}`, { token: users.guest!.token }), 404)
  assertProblem(await h.req('DELETE', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token }), 404)
  assertProblem(await h.req('PUT', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token, body: { access_level: 30 } }), 404)

  // Inherited: members/all includes the group's owner.
  const all = (await h.req('GET', `${base}/all`, { token: users.guest!.token })).json() as Array<{ username: string; access_level: number }>
  assert.deepEqual(
    all.map((m) => [m.username, m.access_level]),
    [
      ['developer', 30],
      ['guest', 10],
      ['maintainer', 40],
      ['owner', 50],
    ],
  )
})

test('project members: authorization by role', async (t) => {
  const { h, project, users } = await world(t)
  const base = `/api/v4/projects/${project.id}/members`
  // Below maintainer: no management.
  for (const who of ['guest', 'developer']) {
    assertProblem(await h.req('POST', base, { token: users[who]!.token, body: { user_id: users.newbie!.id, access_level: 10 } }), 403)
    assertProblem(await h.req('PUT', `${base}/${users.guest!.id}`, { token: users[who]!.token, body: { access_level: 20 } }), 403)
  }
  assertProblem(await h.req('DELETE', `${base}/${users.guest!.id}`, { token: users.developer!.token }), 403)
  // Outsiders do not even see the private project.
  assertProblem(await h.req('GET', base, { token: users.other!.token }), 404)
  assertProblem(await h.req('GET', base), 404)
  // Maintainers cannot grant owner; owners can; maintainers cannot then touch that owner.
  assertProblem(await h.req('POST', base, { token: users.maintainer!.token, body: { user_id: users.newbie!.id, access_level: 50 } }), 403)
  assertProblem(await h.req('PUT', `${base}/${users.developer!.id}`, { token: users.maintainer!.token, body: { access_level: 50 } }), 403)
  assert.equal(
    (await h.req('POST', base, { token: users.owner!.token, body: { user_id: users.newbie!.id, access_level: 50 } })).statusCode,
    201,
  )
  assertProblem(await h.req('PUT', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token, body: { access_level: 30 } }), 403)
  assertProblem(await h.req('DELETE', `${base}/${users.newbie!.id}`, { token: users.maintainer!.token }), 403)
  // Anyone may leave.
  assert.equal((await h.req('DELETE', `${base}/${users.guest!.id}`, { token: users.guest!.token })).statusCode, 204)
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}`, { token: users.guest!.token }), 404)
  // Bad input
  assertProblem(await h.req('POST', base, { token: users.owner!.token, body: { user_id: 99999, access_level: 30 } }), 404)
  assertProblem(await h.req('POST', base, { token: users.owner!.token, body: { user_id: users.other!.id, access_level: 35 } }), 400)
  assertProblem(
    await h.req('POST', base, {
      token: users.owner!.token,
      body: { user_id: users.other!.id, access_level: 30, expires_at: '2001-01-01' },
    }),
    400,
  )
  assertProblem(
    await h.req('POST', base, { token: users.owner!.token, body: { user_id: users.other!.id, access_level: 30, expires_at: 'tomorrow' } }),
    400,
  )
})

test('membership gives access, and stops at once when removed or expired', async (t) => {
  const { h, project, users } = await world(t)
  const url = `/api/v4/projects/${project.id}`
  assertProblem(await h.req('GET', url, { token: users.other!.token }), 404)
  assert.equal(
    (await h.req('POST', `${url}/members`, { token: users.owner!.token, body: { user_id: users.other!.id, access_level: 20 } })).statusCode,
    201,
  )
  assert.equal((await h.req('GET', url, { token: users.other!.token })).statusCode, 200)
  await h.db.updateTable('members').set({ expires_at: '2000-01-01' }).where('user_id', '=', users.other!.id).execute()
  assertProblem(await h.req('GET', url, { token: users.other!.token }), 404)
  const listed = (await h.req('GET', '/api/v4/projects', { token: users.other!.token })).json() as unknown[]
  assert.deepEqual(listed, [])
})

test('group members: inherited by projects and subgroups; the last owner stays', async (t) => {
  const { h, group, project, users } = await world(t)
  const base = `/api/v4/groups/${group.id}/members`
  const owners = (await h.req('GET', base, { token: users.owner!.token })).json() as Array<{ username: string; access_level: number }>
  assert.deepEqual(
    owners.map((m) => [m.username, m.access_level]),
    [['owner', 50]],
  )
  // A group developer sees the group's private project and its members.
  assert.equal(
    (await h.req('POST', base, { token: users.owner!.token, body: { user_id: users.other!.id, access_level: 30 } })).statusCode,
    201,
  )
  assert.equal((await h.req('GET', `/api/v4/projects/${project.id}`, { token: users.other!.token })).statusCode, 200)
  // ... but cannot manage the group's members.
  assertProblem(await h.req('POST', base, { token: users.other!.token, body: { user_id: users.newbie!.id, access_level: 10 } }), 403)
  // A group maintainer manages the project's members through inheritance.
  assert.equal(
    (await h.req('PUT', `${base}/${users.other!.id}`, { token: users.owner!.token, body: { access_level: 40 } })).statusCode,
    200,
  )
  assert.equal(
    (
      await h.req('POST', `/api/v4/projects/${project.id}/members`, {
        token: users.other!.token,
        body: { user_id: users.newbie!.id, access_level: 10 },
      })
    ).statusCode,
    201,
  )
  // The last owner can neither leave nor be demoted.
  assertProblem(await h.req('DELETE', `${base}/${users.owner!.id}`, { token: users.owner!.token }), 403)
  assertProblem(await h.req('PUT', `${base}/${users.owner!.id}`, { token: users.owner!.token, body: { access_level: 40 } }), 403)
  // With a second owner, the first may leave.
  assert.equal(
    (await h.req('POST', base, { token: users.owner!.token, body: { user_id: users.newbie!.id, access_level: 50 } })).statusCode,
    201,
  )
  assert.equal((await h.req('DELETE', `${base}/${users.owner!.id}`, { token: users.owner!.token })).statusCode, 204)
  const all = (await h.req('GET', `${base}/all`, { token: users.newbie!.token })).json() as Array<{ username: string }>
  assert.deepEqual(
    all.map((m) => m.username),
    ['newbie', 'other'],
  )
})
