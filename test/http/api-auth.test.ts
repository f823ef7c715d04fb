// REST API authentication: PRIVATE-TOKEN / Bearer PATs with GitLab's scope rules, OAuth password and
// refresh grants, revocation and blocking taking effect at once, problem+json errors, no secrets in logs.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import { THROTTLE } from '../../src/auth/throttle.ts'
import { apiHarness, assertProblem, ROOT_PASSWORD } from './api-harness.ts'

test('POST /oauth/token: password grant (form or JSON) returns a GitLab-shaped token usable as Bearer', async (t) => {
  const h = await apiHarness(t)
  for (const send of ['form', 'body'] as const) {
    const res = await h.req('POST', '/oauth/token', { [send]: { grant_type: 'password', username: 'root', password: ROOT_PASSWORD } })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['cache-control'], 'no-store')
    const body = res.json() as Record<string, unknown>
    assert.deepEqual(Object.keys(body).sort(), ['access_token', 'created_at', 'expires_in', 'refresh_token', 'scope', 'token_type'])
    assert.equal(body.token_type, 'Bearer')
    assert.equal(body.expires_in, 7200)
    assert.equal(body.scope, 'api')
    assert.equal(typeof body.created_at, 'number')
    const me = await h.req('GET', '/api/v4/user', { bearer: body.access_token as string })
    assert.equal(me.statusCode, 200, me.body)
    assert.equal((me.json() as { username: string }).username, 'root')
  }
  // Stored as digests only.
  const rows = await h.db.selectFrom('oauth_tokens').selectAll().execute()
  assert.equal(rows.length, 2)
  for (const r of rows) assert.match(r.access_digest, /^[0-9a-f]{64}$/)
})

test('POST /oauth/token: refresh grant rotates the pair; old tokens stop working', async (t) => {
  const h = await apiHarness(t)
  const first = (
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'root', password: ROOT_PASSWORD } })
  ).json() as { access_token: string; refresh_token: string }
  const res = await h.req('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: first.refresh_token } })
  assert.equal(res.statusCode, 200, res.body)
  const second = res.json() as { access_token: string; refresh_token: string }
  assert.notEqual(second.access_token, first.access_token)
  assert.equal((await h.req('GET', '/api/v4/user', { bearer: second.access_token })).statusCode, 200)
  assertProblem(await h.req('GET', '/api/v4/user', { bearer: first.access_token }), 401)
  const reuse = await h.req('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: first.refresh_token } })
  assert.equal(reuse.statusCode, 400)
  assert.equal((reuse.json() as { error: string }).error, 'invalid_grant')
  // RFC 7009 revocation
  assert.equal((await h.req('POST', '/oauth/revoke', { form: { token: second.access_token } })).statusCode, 200)
  assertProblem(await h.req('GET', '/api/v4/user', { bearer: second.access_token }), 401)
})

test('POST /oauth/token failures are OAuth errors; failed logins are audited and throttled', async (t) => {
  const h = await apiHarness(t)
  const alice = await h.user('alice', { password: 'alice-password' })
  const cases: Array<[Record<string, string>, number, string]> = [
    [{ grant_type: 'password', username: 'root', password: 'wrong-password' }, 400, 'invalid_grant'],
    [{ grant_type: 'password', username: 'nobody', password: 'whatever-pw' }, 400, 'invalid_grant'],
    [{ grant_type: 'password', username: 'root' }, 400, 'invalid_request'],
    [{ grant_type: 'client_credentials' }, 400, 'unsupported_grant_type'],
    [{ grant_type: 'refresh_token', refresh_token: 'wharf-ort-nope' }, 400, 'invalid_grant'],
    // A PAT is not a password: the grant would widen a narrow token to `api`.
    [{ grant_type: 'password', username: 'alice', password: alice.token }, 400, 'invalid_grant'],
    [{ grant_type: 'password', username: 'alice', password: 'alice-password', scope: 'write_registry' }, 400, 'invalid_scope'],
    [{}, 400, 'invalid_request'],
  ]
  for (const [form, status, error] of cases) {
    const res = await h.req('POST', '/oauth/token', { form })
    assert.equal(res.statusCode, status, `${JSON.stringify(form)}: ${res.body}`)
    const body = res.json() as { error: string; error_description: string }
    assert.equal(body.error, error, JSON.stringify(form))
    assert.equal(typeof body.error_description, 'string')
  }
  const audit = await h.db.selectFrom('audit_events').selectAll().where('action', '=', 'login.failure').execute()
  assert.ok(audit.some((a) => a.actor === 'root'))
  // Throttled after repeated failures for one account from one address.
  for (let i = 0; i < THROTTLE.perAccountAddress; i++)
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: `bad-${i}-password` } })
  const throttled = await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'alice-password' } })
  assert.equal(throttled.statusCode, 429)
  assert.ok(Number(throttled.headers['retry-after']) > 0)
})

test('PATs: PRIVATE-TOKEN or Bearer; api for everything, read_api only for reads, others refused', async (t) => {
  const h = await apiHarness(t)
  const api = await h.user('apiuser')
  const readApi = await h.user('reader', { scopes: ['read_api'] })
  const registryOnly = await h.user('pusher', { scopes: ['read_registry', 'write_registry'] })
  const readUser = await h.user('profile', { scopes: ['read_user'] })

  assert.equal((await h.req('GET', '/api/v4/user', { token: api.token })).statusCode, 200)
  assert.equal((await h.req('GET', '/api/v4/user', { bearer: api.token })).statusCode, 200)
  assert.equal((await h.req('POST', '/api/v4/groups', { token: api.token, body: { path: 'g1' } })).statusCode, 201)

  assert.equal((await h.req('GET', '/api/v4/projects', { token: readApi.token })).statusCode, 200)
  const denied = assertProblem(await h.req('POST', '/api/v4/groups', { token: readApi.token, body: { path: 'g2' } }), 403)
  assert.match(String(denied.detail), /insufficient_scope/)

  assertProblem(await h.req('GET', '/api/v4/projects', { token: registryOnly.token }), 403)
  assertProblem(await h.req('GET', '/api/v4/user', { token: registryOnly.token }), 403)

  assert.equal((await h.req('GET', '/api/v4/user', { token: readUser.token })).statusCode, 200)
  assertProblem(await h.req('GET', '/api/v4/projects', { token: readUser.token }), 403)
})

test('a bad token is 401 even on public routes; anonymous callers only reach public routes', async (t) => {
  const h = await apiHarness(t)
  for (const headers of [{ 'private-token': 'glpat-nope' }, { authorization: 'Bearer nope' }] as Array<Record<string, string>>) {
    const res = assertProblem(await h.req('GET', '/api/v4/projects', { headers }), 401)
    assert.match(String(res.detail), /invalid token/)
  }
  assert.equal((await h.req('GET', '/api/v4/projects')).statusCode, 200)
  const anon = await h.req('GET', '/api/v4/user')
  assertProblem(anon, 401)
  assert.match(String(anon.headers['www-authenticate']), /^Bearer/)
  assertProblem(await h.req('POST', '/api/v4/projects', { body: { path: 'x' } }), 401)
  // Deploy tokens are for the registry, not the API.
  const root = await h.root()
  const project = (await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'p' } })).json() as { id: number }
  const dt = (
    await h.req('POST', `/api/v4/projects/${project.id}/deploy_tokens`, {
      token: root.token,
      body: { name: 'd', scopes: ['read_registry'] },
    })
  ).json() as { token: string }
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}`, { token: dt.token }), 401)
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}`, { bearer: dt.token }), 401)
})

test('revoked or expired PATs and blocked users stop working at once', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const alice = await h.user('alice', { password: 'alice-password' })
  const oauth = (
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'alice-password' } })
  ).json() as { access_token: string; refresh_token: string }
  assert.equal((await h.req('GET', '/api/v4/user', { token: alice.token })).statusCode, 200)
  assert.equal((await h.req('GET', '/api/v4/user', { bearer: oauth.access_token })).statusCode, 200)

  assert.equal((await h.req('POST', `/api/v4/users/${alice.user.id}/block`, { token: root.token })).statusCode, 201)
  assertProblem(await h.req('GET', '/api/v4/user', { token: alice.token }), 401)
  assertProblem(await h.req('GET', '/api/v4/user', { bearer: oauth.access_token }), 401)
  assert.equal(
    (await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'alice-password' } })).statusCode,
    400,
  )
  assert.equal(
    (await h.req('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: oauth.refresh_token } })).statusCode,
    400,
  )
  assert.equal((await h.req('POST', `/api/v4/users/${alice.user.id}/unblock`, { token: root.token })).statusCode, 201)
  assert.equal((await h.req('GET', '/api/v4/user', { token: alice.token })).statusCode, 200)

  // Expiry
  await h.db.updateTable('personal_access_tokens').set({ expires_at: '2000-01-01' }).where('user_id', '=', alice.user.id).execute()
  assertProblem(await h.req('GET', '/api/v4/user', { token: alice.token }), 401)
  const fresh = await h.services.accessTokens.createPat(alice.user.id, { name: 'n', scopes: ['api'] }, 'test')
  const oauth2 = (
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'alice', password: 'alice-password' } })
  ).json() as { access_token: string }
  await h.db.updateTable('oauth_tokens').set({ expires_at: '2000-01-01T00:00:00.000Z' }).where('user_id', '=', alice.user.id).execute()
  assertProblem(await h.req('GET', '/api/v4/user', { bearer: oauth2.access_token }), 401)

  // Revocation through the API takes effect on the very next request.
  const list = (await h.req('GET', '/api/v4/personal_access_tokens', { token: fresh.token })).json() as Array<{ id: number }>
  assert.equal((await h.req('DELETE', `/api/v4/personal_access_tokens/${fresh.row.id}`, { token: fresh.token })).statusCode, 204)
  assert.ok(list.some((x) => x.id === fresh.row.id))
  assertProblem(await h.req('GET', '/api/v4/user', { token: fresh.token }), 401)
})

test('errors are problem+json with GitLab’s message; unknown routes 404; unexpected failures are a bare 500', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const bad = assertProblem(await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'p', visibility: 'secret' } }), 400)
  assert.match(String(bad.detail), /visibility/)
  assert.equal(bad.message, `400 ${bad.detail}`)
  assertProblem(await h.req('GET', '/api/v4/projects?per_page=abc', { token: root.token }), 400)
  assertProblem(await h.req('GET', '/api/v4/no/such/route', { token: root.token }), 404)
  assertProblem(await h.req('GET', '/api/v4/projects/999', { token: root.token }), 404)
  const notJson = await h.req('POST', '/api/v4/groups', { token: root.token, headers: { 'content-type': 'application/json' } })
  assert.equal(notJson.statusCode, 400)
  // A database failure: generic 500, no stack, no SQL.
  await sql`drop table oauth_tokens`.execute(h.db)
  const boom = assertProblem(await h.req('GET', '/api/v4/user', { bearer: 'some-oauth-token' }), 500)
  assert.equal(boom.detail, 'internal server error')
  assert.doesNotMatch(JSON.stringify(boom), /oauth_tokens|at |\.ts/)
})

test('no secret reaches the logs', async (t) => {
  const logs: string[] = []
  const h = await apiHarness(t, { logs })
  const root = await h.root()
  const oauth = (
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'root', password: ROOT_PASSWORD } })
  ).json() as { access_token: string; refresh_token: string }
  await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'root', password: 'wrong-secret-pw' } })
  await h.req('GET', '/api/v4/user', { bearer: oauth.access_token })
  const pat = (
    await h.req('POST', '/api/v4/user/personal_access_tokens', { token: root.token, body: { name: 'x', scopes: ['api'] } })
  ).json() as { token: string }
  await h.req('GET', '/api/v4/user', { token: pat.token })
  await h.req('GET', '/api/v4/user', { token: 'glpat-invalid-secret' })
  assert.ok(logs.length > 0)
  const all = logs.join('\n')
  for (const secret of [
    ROOT_PASSWORD,
    'wrong-secret-pw',
    oauth.access_token,
    oauth.refresh_token,
    root.token,
    pat.token,
    'glpat-invalid-secret',
  ]) {
    assert.ok(!all.includes(secret), `a secret was logged: ${secret.slice(0, 8)}...`)
  }
})
