// REST API: users (current, list, get, create, update, block/unblock), personal access tokens and
// deploy tokens (shown once, revocable at once).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

type Json = Record<string, unknown>

test('GET /user, /users and /users/:id; private fields only for admins and oneself', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('Alice')
  const bob = await h.user('bob')
  const me = (await h.req('GET', '/api/v4/user', { token: alice.token })).json() as Json
  assert.equal(me.username, 'Alice')
  assert.equal(me.is_admin, false)
  assert.equal(me.state, 'active')
  assert.ok('email' in me)
  const found = await h.req('GET', '/api/v4/users?username=alice', { token: bob.token })
  assert.equal(found.statusCode, 200)
  const list = found.json() as Json[]
  assert.equal(list.length, 1)
  assert.equal(list[0]!.id, alice.user.id)
  assert.ok(!('email' in list[0]!) && !('is_admin' in list[0]!), 'another user’s private fields are hidden')
  const asAdmin = (await h.req('GET', `/api/v4/users/${alice.user.id}`, { token: root.token })).json() as Json
  assert.ok('email' in asAdmin && asAdmin.is_admin === false)
  assertProblem(await h.req('GET', '/api/v4/users/9999', { token: bob.token }), 404)
  const all = await h.req('GET', '/api/v4/users?per_page=2', { token: bob.token })
  assert.equal(all.headers['x-total'], '3')
  assertProblem(await h.req('GET', '/api/v4/users'), 401)
})

test('POST /users (admin only), duplicate usernames in any case are 409', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice')
  assertProblem(await h.req('POST', '/api/v4/users', { token: alice.token, body: { username: 'eve', password: 'eve-password' } }), 403)
  const res = await h.req('POST', '/api/v4/users', {
    token: root.token,
    body: { username: 'carol', name: 'Carol C', email: 'c@example.com', password: 'carol-password', admin: true },
  })
  assert.equal(res.statusCode, 201, res.body)
  const carol = res.json() as Json
  assert.deepEqual([carol.username, carol.name, carol.email, carol.is_admin], ['carol', 'Carol C', 'c@example.com', true])
  assertProblem(await h.req('POST', '/api/v4/users', { token: root.token, body: { username: 'CAROL', password: 'carol-password' } }), 409)
  assertProblem(await h.req('POST', '/api/v4/users', { token: root.token, body: { username: 'dave', password: 'short' } }), 400)
  // The new user can sign in with the password (OAuth password grant).
  const login = await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'carol', password: 'carol-password' } })
  assert.equal(login.statusCode, 200, login.body)
})

test('PUT /users/:id: self may change name and password; admins everything', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice', { password: 'alice-password' })
  const bob = await h.user('bob')
  const url = `/api/v4/users/${alice.user.id}`
  const self = await h.req('PUT', url, { token: alice.token, body: { name: 'Alice A', password: 'new-alice-password' } })
  assert.equal(self.statusCode, 200, self.body)
  assert.equal((self.json() as Json).name, 'Alice A')
  assert.equal(
    (await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'new-alice-password' } }))
      .statusCode,
    200,
  )
  assert.equal(
    (await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'alice-password' } })).statusCode,
    400,
  )
  assertProblem(await h.req('PUT', url, { token: alice.token, body: { admin: true } }), 403)
  assertProblem(await h.req('PUT', url, { token: alice.token, body: { email: 'x@y' } }), 403)
  assertProblem(await h.req('PUT', url, { token: bob.token, body: { name: 'pwned' } }), 403)
  const admin = await h.req('PUT', url, { token: root.token, body: { email: 'alice@example.com', admin: true } })
  assert.equal(admin.statusCode, 200)
  assert.equal((admin.json() as Json).is_admin, true)
  assertProblem(await h.req('PUT', `/api/v4/users/${root.user.id}`, { token: root.token, body: { admin: false } }), 400)
  // GitLab's `username` (python-gitlab's save() always sends it, with name and email): the current one only.
  const same = await h.req('PUT', url, { token: root.token, body: { username: 'alice', name: 'Alice B', email: 'alice@example.com' } })
  assert.equal(same.statusCode, 200, same.body)
  assert.equal((same.json() as Json).name, 'Alice B')
  assert.equal(
    assertProblem(await h.req('PUT', url, { token: root.token, body: { username: 'eve', name: 'Eve' } }), 400).message,
    '400 changing a username is not supported',
  )
  assert.equal(((await h.req('GET', url, { token: root.token })).json() as Json).name, 'Alice B')
  // Search matches the display name in any case, on either database (PostgreSQL's LIKE is case-sensitive).
  const found = await h.req('GET', '/api/v4/users?search=ALICE%20b', { token: root.token })
  assert.deepEqual(
    (found.json() as Json[]).map((u) => u.username),
    ['alice'],
  )
})

test('block and unblock: admin only, not oneself; a blocked user’s tokens and password stop working', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice', { password: 'alice-password' })
  const bob = await h.user('bob')
  assertProblem(await h.req('POST', `/api/v4/users/${alice.user.id}/block`, { token: bob.token }), 403)
  assertProblem(await h.req('POST', `/api/v4/users/${root.user.id}/block`, { token: root.token }), 403)
  assertProblem(await h.req('POST', '/api/v4/users/9999/block', { token: root.token }), 404)
  const block = await h.req('POST', `/api/v4/users/${alice.user.id}/block`, { token: root.token })
  assert.equal(block.statusCode, 201)
  assert.equal(block.body, 'true')
  assert.equal(((await h.req('GET', `/api/v4/users/${alice.user.id}`, { token: root.token })).json() as Json).state, 'blocked')
  assertProblem(await h.req('GET', '/api/v4/user', { token: alice.token }), 401)
  // The registry refuses the blocked user too.
  const basic = `Basic ${Buffer.from('alice:alice-password').toString('base64')}`
  assert.equal(
    (await h.app.inject({ method: 'GET', url: '/jwt/auth?service=container_registry', headers: { authorization: basic } })).statusCode,
    401,
  )
  // Blocking again changes nothing and answers null, as GitLab.
  const again = await h.req('POST', `/api/v4/users/${alice.user.id}/block`, { token: root.token })
  assert.deepEqual([again.statusCode, again.json()], [201, null])
  assert.equal(
    assertProblem(await h.req('POST', `/api/v4/users/${alice.user.id}/deactivate`, { token: root.token }), 403).message,
    '403 A blocked user cannot be deactivated by the API',
  )
  assert.equal(
    assertProblem(await h.req('POST', `/api/v4/users/${alice.user.id}/activate`, { token: root.token }), 403).message,
    '403 A blocked user must be unblocked to be activated',
  )
  assert.equal((await h.req('POST', `/api/v4/users/${alice.user.id}/unblock`, { token: root.token })).statusCode, 201)
  assert.equal((await h.req('GET', '/api/v4/user', { token: alice.token })).statusCode, 200)
})

test('deactivate and activate: the account and its tokens stay but stop working until activated; admin only, not oneself', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice', { password: 'alice-password' })
  const bob = await h.user('bob')
  assertProblem(await h.req('POST', `/api/v4/users/${alice.user.id}/deactivate`, { token: bob.token }), 403)
  assertProblem(await h.req('POST', `/api/v4/users/${root.user.id}/deactivate`, { token: root.token }), 403)
  assertProblem(await h.req('POST', '/api/v4/users/9999/deactivate', { token: root.token }), 404)
  const off = await h.req('POST', `/api/v4/users/${alice.user.id}/deactivate`, { token: root.token })
  assert.deepEqual([off.statusCode, off.json()], [201, true])
  assert.equal(((await h.req('GET', `/api/v4/users/${alice.user.id}`, { token: root.token })).json() as Json).state, 'deactivated')
  assert.deepEqual(
    ((await h.req('GET', '/api/v4/users?per_page=100', { token: root.token })).json() as Json[]).map((u) => [u.username, u.state]).sort(),
    [
      ['alice', 'deactivated'],
      ['bob', 'active'],
      ['root', 'active'],
    ],
  )
  assertProblem(await h.req('GET', '/api/v4/user', { token: alice.token }), 401)
  const basic = `Basic ${Buffer.from('alice:alice-password').toString('base64')}`
  assert.equal(
    (await h.app.inject({ method: 'GET', url: '/jwt/auth?service=container_registry', headers: { authorization: basic } })).statusCode,
    401,
  )
  const again = await h.req('POST', `/api/v4/users/${alice.user.id}/deactivate`, { token: root.token })
  assert.deepEqual([again.statusCode, again.json()], [201, null])
  assert.equal(
    assertProblem(await h.req('POST', `/api/v4/users/${alice.user.id}/unblock`, { token: root.token }), 403).message,
    '403 Deactivated users cannot be unblocked by the API',
  )
  const on = await h.req('POST', `/api/v4/users/${alice.user.id}/activate`, { token: root.token })
  assert.deepEqual([on.statusCode, on.json()], [201, true])
  // Unlike blocking, deactivation revoked nothing: the same token works again.
  assert.equal((await h.req('GET', '/api/v4/user', { token: alice.token })).statusCode, 200)
})

test('personal access tokens: created for oneself or by an admin, shown once, listed, revoked at once', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice')
  const bob = await h.user('bob')
  const res = await h.req('POST', '/api/v4/user/personal_access_tokens', {
    token: alice.token,
    form: { name: 'ci', 'scopes[]': ['read_registry', 'write_registry'], expires_at: '2999-01-01' },
  })
  assert.equal(res.statusCode, 201, res.body)
  assert.equal(res.headers['cache-control'], 'no-store')
  const created = res.json() as Json
  assert.match(String(created.token), /^glpat-/)
  assert.deepEqual(created.scopes, ['read_registry', 'write_registry'])
  assert.equal(created.expires_at, '2999-01-01')
  assert.equal(created.active, true)
  assert.equal(created.user_id, alice.user.id)
  // Never again.
  const got = (await h.req('GET', `/api/v4/personal_access_tokens/${created.id}`, { token: alice.token })).json() as Json
  assert.equal(got.token, undefined)
  assert.equal(got.name, 'ci')
  const mine = (await h.req('GET', '/api/v4/personal_access_tokens', { token: alice.token })).json() as Json[]
  assert.ok(mine.every((x) => x.token === undefined && x.user_id === alice.user.id))
  assert.equal(mine.length, 2)
  const stored = await h.db
    .selectFrom('personal_access_tokens')
    .select('token_digest')
    .where('id', '=', created.id as number)
    .executeTakeFirstOrThrow()
  assert.notEqual(stored.token_digest, created.token)
  // The new token works for the registry but not the API (its scopes).
  assertProblem(await h.req('GET', '/api/v4/projects', { token: created.token as string }), 403)

  // Others cannot see or revoke it; admins can.
  assertProblem(await h.req('GET', `/api/v4/personal_access_tokens/${created.id}`, { token: bob.token }), 404)
  assertProblem(await h.req('DELETE', `/api/v4/personal_access_tokens/${created.id}`, { token: bob.token }), 404)
  const everyone = (await h.req('GET', '/api/v4/personal_access_tokens', { token: root.token })).json() as Json[]
  assert.ok(everyone.some((x) => x.user_id === bob.user.id) && everyone.some((x) => x.user_id === alice.user.id))
  const ofAlice = (await h.req('GET', `/api/v4/personal_access_tokens?user_id=${alice.user.id}`, { token: root.token })).json() as Json[]
  assert.ok(ofAlice.every((x) => x.user_id === alice.user.id))

  // Admin creates for a user; non-admins cannot use that route, even for themselves.
  assertProblem(
    await h.req('POST', `/api/v4/users/${alice.user.id}/personal_access_tokens`, {
      token: alice.token,
      body: { name: 'x', scopes: ['api'] },
    }),
    403,
  )
  const byAdmin = await h.req('POST', `/api/v4/users/${alice.user.id}/personal_access_tokens`, {
    token: root.token,
    body: { name: 'admin-made', scopes: ['api'] },
  })
  assert.equal(byAdmin.statusCode, 201)
  const adminMade = byAdmin.json() as { id: number; token: string }
  assert.equal((await h.req('GET', '/api/v4/user', { token: adminMade.token })).statusCode, 200)

  // Revocation (by id, and via `self`) is effective on the next request; the row stays, inactive.
  assert.equal((await h.req('DELETE', `/api/v4/personal_access_tokens/${adminMade.id}`, { token: root.token })).statusCode, 204)
  assertProblem(await h.req('GET', '/api/v4/user', { token: adminMade.token }), 401)
  const after = (await h.req('GET', `/api/v4/personal_access_tokens/${adminMade.id}`, { token: alice.token })).json() as Json
  assert.deepEqual([after.revoked, after.active], [true, false])
  const inactive = (await h.req('GET', '/api/v4/personal_access_tokens?state=inactive', { token: alice.token })).json() as Json[]
  assert.deepEqual(
    inactive.map((x) => x.id),
    [adminMade.id],
  )
  const selfInfo = (await h.req('GET', '/api/v4/personal_access_tokens/self', { token: alice.token })).json() as Json
  assert.equal(selfInfo.user_id, alice.user.id)
  assert.equal((await h.req('DELETE', '/api/v4/personal_access_tokens/self', { token: alice.token })).statusCode, 204)
  assertProblem(await h.req('GET', '/api/v4/user', { token: alice.token }), 401)

  // Bad input
  assertProblem(
    await h.req('POST', '/api/v4/user/personal_access_tokens', { token: bob.token, body: { name: 'x', scopes: ['sudo'] } }),
    400,
  )
  assertProblem(await h.req('POST', '/api/v4/user/personal_access_tokens', { token: bob.token, body: { name: 'x', scopes: [] } }), 400)
  assertProblem(
    await h.req('POST', '/api/v4/user/personal_access_tokens', {
      token: bob.token,
      body: { name: 'x', scopes: ['api'], expires_at: '2001-01-01' },
    }),
    400,
  )
})

test('deploy tokens: maintainers manage them per project or group; shown once; revocation stops registry logins', async (t) => {
  const h = await apiHarness(t)
  const owner = await h.user('owner')
  const dev = await h.user('dev')
  const maint = await h.user('maint')
  const group = (await h.req('POST', '/api/v4/groups', { token: owner.token, body: { path: 'team' } })).json() as { id: number }
  const project = (
    await h.req('POST', '/api/v4/projects', { token: owner.token, body: { path: 'app', namespace_id: group.id } })
  ).json() as { id: number }
  const other = (
    await h.req('POST', '/api/v4/projects', { token: owner.token, body: { path: 'other', namespace_id: group.id } })
  ).json() as { id: number }
  await h.req('POST', `/api/v4/projects/${project.id}/members`, { token: owner.token, body: { user_id: dev.user.id, access_level: 30 } })
  await h.req('POST', `/api/v4/projects/${project.id}/members`, { token: owner.token, body: { user_id: maint.user.id, access_level: 40 } })
  const base = `/api/v4/projects/${project.id}/deploy_tokens`

  assertProblem(await h.req('POST', base, { token: dev.token, body: { name: 'd', scopes: ['read_registry'] } }), 403)
  assertProblem(await h.req('GET', base, { token: dev.token }), 403)
  const res = await h.req('POST', base, {
    token: maint.token,
    body: { name: 'pull-only', scopes: ['read_registry'], expires_at: '2999-01-01T00:00:00Z' },
  })
  assert.equal(res.statusCode, 201, res.body)
  const dt = res.json() as {
    id: number
    name: string
    username: string
    token: string
    scopes: string[]
    expires_at: string
    revoked: boolean
    expired: boolean
  }
  assert.match(dt.token, /^gldt-/)
  assert.equal(dt.username, `gitlab+deploy-token-${dt.id}`)
  assert.deepEqual([dt.scopes, dt.expires_at, dt.revoked, dt.expired], [['read_registry'], '2999-01-01', false, false])
  const listed = (await h.req('GET', base, { token: maint.token })).json() as Json[]
  assert.equal(listed.length, 1)
  assert.equal(listed[0]!.token, undefined)
  assertProblem(await h.req('POST', base, { token: maint.token, body: { name: 'x', scopes: ['api'] } }), 400)

  // The token logs in to the registry with pull only.
  const basic = `Basic ${Buffer.from(`${dt.username}:${dt.token}`).toString('base64')}`
  const grant = async () =>
    await h.app.inject({
      method: 'GET',
      url: '/jwt/auth?service=container_registry&scope=repository:team/app:pull,push',
      headers: { authorization: basic },
    })
  const g = await grant()
  assert.equal(g.statusCode, 200)
  const claims = JSON.parse(Buffer.from((g.json() as { token: string }).token.split('.')[1]!, 'base64url').toString()) as {
    access: Array<{ actions: string[] }>
  }
  assert.deepEqual(claims.access[0]!.actions, ['pull'])

  // Deleting through another project is 404; through its own, 204 and logins stop.
  assertProblem(await h.req('DELETE', `/api/v4/projects/${other.id}/deploy_tokens/${dt.id}`, { token: owner.token }), 404)
  assert.equal((await h.req('DELETE', `${base}/${dt.id}`, { token: maint.token })).statusCode, 204)
  assert.equal((await grant()).statusCode, 401)
  const active = (await h.req('GET', `${base}?active=true`, { token: maint.token })).json() as Json[]
  assert.deepEqual(active, [])

  // Group deploy tokens: the group's maintainers (here its owner).
  assertProblem(
    await h.req('POST', `/api/v4/groups/${group.id}/deploy_tokens`, { token: dev.token, body: { name: 'g', scopes: ['read_registry'] } }),
    404,
  )
  const gt = await h.req('POST', `/api/v4/groups/${group.id}/deploy_tokens`, {
    token: owner.token,
    body: { name: 'g', scopes: ['read_registry', 'write_registry'], username: 'ci-bot' },
  })
  assert.equal(gt.statusCode, 201, gt.body)
  assert.equal((gt.json() as { username: string }).username, 'ci-bot')
  const gl = (await h.req('GET', `/api/v4/groups/${group.id}/deploy_tokens`, { token: owner.token })).json() as Json[]
  assert.equal(gl.length, 1)
  assert.equal(
    (await h.req('DELETE', `/api/v4/groups/${group.id}/deploy_tokens/${(gt.json() as { id: number }).id}`, { token: owner.token }))
      .statusCode,
    204,
  )
})
