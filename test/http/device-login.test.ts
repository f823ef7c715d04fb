// `wharf login`'s server side: the OAuth 2.0 device authorization grant (RFC 8628) at GitLab's
// /oauth/authorize_device and /oauth/token, its error answers (invalid_client, invalid_scope,
// authorization_pending, slow_down, access_denied, expired_token, invalid_grant on reuse), the
// approval calls the web UI makes, and the login it creates: a refresh credential that only mints
// short-lived secrets, listed and revocable, whose revocation stops registry tokens at once.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { apiHarness, ROOT_PASSWORD, type ApiHarness } from './api-harness.ts'

const GRANT = 'urn:ietf:params:oauth:grant-type:device_code'

async function start(h: ApiHarness, form: Record<string, string> = {}) {
  const res = await h.req('POST', '/oauth/authorize_device', { form: { client_id: 'wharf-cli', device_name: 'laptop', ...form } })
  return { status: res.statusCode, json: res.json() as Record<string, any> }
}

async function poll(h: ApiHarness, deviceCode: string, clientId = 'wharf-cli') {
  const res = await h.req('POST', '/oauth/token', { form: { grant_type: GRANT, device_code: deviceCode, client_id: clientId } })
  return { status: res.statusCode, json: res.json() as Record<string, any>, headers: res.headers }
}

/** A person's sign-in (an OAuth token from the password grant: a password credential, as a web session is). */
async function signIn(h: ApiHarness, username = 'root', password = ROOT_PASSWORD): Promise<string> {
  const res = await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username, password } })
  assert.equal(res.statusCode, 200, res.body)
  return res.json().access_token as string
}

/** Lets the device's polling interval pass (the clock is the only thing faked: the row's last poll moves back). */
async function waitInterval(h: ApiHarness): Promise<void> {
  await h.db
    .updateTable('device_logins')
    .set({ last_poll_at: new Date(Date.now() - 60_000).toISOString() })
    .execute()
}

async function approved(h: ApiHarness, scope?: string) {
  const s = await start(h, scope ? { scope } : {})
  const person = await signIn(h)
  const ok = await h.req('POST', `/api/v4/user/device_authorizations/${s.json.user_code}/approve`, { bearer: person, body: {} })
  assert.equal(ok.statusCode, 204, ok.body)
  const got = await poll(h, s.json.device_code)
  assert.equal(got.status, 200, JSON.stringify(got.json))
  const tokens: Record<string, any> = got.json
  return Object.assign(tokens, { person, deviceCode: s.json.device_code as string })
}

async function jwtAuth(h: ApiHarness, username: string, secret: string, scope = 'repository:root/app:pull') {
  return h.app.inject({
    method: 'GET',
    url: `/jwt/auth?service=container_registry&scope=${encodeURIComponent(scope)}`,
    headers: { authorization: `Basic ${Buffer.from(`${username}:${secret}`).toString('base64')}` },
  })
}

describe('POST /oauth/authorize_device', () => {
  it('answers a device code, a short user code from an unambiguous alphabet, the verification URIs, expiry and interval', async (t) => {
    const h = await apiHarness(t)
    const s = await start(h)
    assert.equal(s.status, 200, JSON.stringify(s.json))
    assert.match(s.json.device_code, /^wharf-dc-[A-Za-z0-9_-]{32}$/)
    assert.match(s.json.user_code, /^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$/)
    assert.equal(s.json.verification_uri, 'http://wharf.test:5000/-/device')
    assert.equal(s.json.verification_uri_complete, `http://wharf.test:5000/-/device?user_code=${s.json.user_code}`)
    assert.equal(s.json.expires_in, 600)
    assert.equal(s.json.interval, 5)
    // Hashed at rest: neither code is stored as sent.
    const row = await h.db.selectFrom('device_logins').selectAll().executeTakeFirstOrThrow()
    assert.ok(!JSON.stringify(row).includes(s.json.device_code))
    assert.ok(!JSON.stringify(row).includes(s.json.user_code.replace('-', '')))
  })

  it('refuses an unknown client, a scope a device cannot get and unknown attributes, as OAuth errors', async (t) => {
    const h = await apiHarness(t)
    const client = await start(h, { client_id: 'evil-app' })
    assert.equal(client.status, 400)
    assert.equal(client.json.error, 'invalid_client')
    const scope = await start(h, { scope: 'read_registry write_repository' })
    assert.equal(scope.status, 400)
    assert.equal(scope.json.error, 'invalid_scope')
    assert.match(scope.json.error_description, /write_repository/)
    const extra = await start(h, { user_id: '1' })
    assert.equal(extra.status, 400)
    assert.equal(extra.json.error, 'invalid_request')
    assert.equal(
      await h.db
        .selectFrom('device_logins')
        .selectAll()
        .execute()
        .then((r) => r.length),
      0,
    )
  })

  it('throttles one address starting many flows', async (t) => {
    const h = await apiHarness(t)
    let last = 0
    for (let i = 0; i < 31; i++) last = (await start(h)).status
    assert.equal(last, 429)
  })
})

describe('POST /oauth/token with the device_code grant', () => {
  it('authorization_pending, then slow_down when polled faster than the interval (which grows by 5 s)', async (t) => {
    const h = await apiHarness(t)
    const s = await start(h)
    const first = await poll(h, s.json.device_code)
    assert.equal(first.status, 400)
    assert.equal(first.json.error, 'authorization_pending')
    assert.equal(first.headers['cache-control'], 'no-store')
    const fast = await poll(h, s.json.device_code)
    assert.equal(fast.status, 400)
    assert.equal(fast.json.error, 'slow_down')
    const row = await h.db.selectFrom('device_logins').select('interval_seconds').executeTakeFirstOrThrow()
    assert.equal(row.interval_seconds, 10)
    await waitInterval(h)
    assert.equal((await poll(h, s.json.device_code)).json.error, 'authorization_pending')
  })

  it('access_denied once the person denies it', async (t) => {
    const h = await apiHarness(t)
    const s = await start(h)
    const person = await signIn(h)
    const res = await h.req('POST', `/api/v4/user/device_authorizations/${s.json.user_code}/deny`, { bearer: person, body: {} })
    assert.equal(res.statusCode, 204, res.body)
    const got = await poll(h, s.json.device_code)
    assert.equal(got.status, 400)
    assert.equal(got.json.error, 'access_denied')
  })

  it('expired_token after the code expired, invalid_grant for an unknown code or another client', async (t) => {
    const h = await apiHarness(t)
    const s = await start(h)
    assert.equal((await poll(h, s.json.device_code, 'other-client')).json.error, 'invalid_grant')
    assert.equal((await poll(h, 'wharf-dc-unknown')).json.error, 'invalid_grant')
    await h.db
      .updateTable('device_logins')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .execute()
    const got = await poll(h, s.json.device_code)
    assert.equal(got.status, 400)
    assert.equal(got.json.error, 'expired_token')
    const missing = await h.req('POST', '/oauth/token', { form: { grant_type: GRANT } })
    assert.equal(missing.statusCode, 400)
    assert.equal(missing.json().error, 'invalid_request')
  })

  it('approved: a short-lived secret, the refresh credential and the username, once (the code is single use)', async (t) => {
    const h = await apiHarness(t)
    const got = await approved(h)
    assert.match(got.access_token, /^wharf-ls-/)
    assert.match(got.refresh_token, /^wharf-dl-/)
    assert.equal(got.username, 'root')
    assert.equal(got.expires_in, 300)
    assert.equal(got.scope, 'read_registry write_registry')
    const again = await poll(h, got.deviceCode)
    assert.equal(again.status, 400)
    assert.equal(again.json.error, 'invalid_grant')
  })
})

describe('approving a code (the web UI calls)', () => {
  it('shows the client, device and scopes to a signed-in person; tokens cannot approve; wrong codes are 404 then throttled', async (t) => {
    const h = await apiHarness(t)
    const s = await start(h, { scope: 'read_registry' })
    const person = await signIn(h)
    const code = s.json.user_code as string
    // Typed loosely: lower case, no dash.
    const shown = await h.req('GET', `/api/v4/user/device_authorizations/${code.toLowerCase().replace('-', '')}`, { bearer: person })
    assert.equal(shown.statusCode, 200, shown.body)
    assert.deepEqual(shown.json(), {
      user_code: code,
      client_id: 'wharf-cli',
      client_name: 'Wharf CLI (wharf login)',
      device_name: 'laptop',
      scopes: ['read_registry'],
      expires_at: shown.json().expires_at,
    })
    const { token } = await h.root()
    const byPat = await h.req('POST', `/api/v4/user/device_authorizations/${code}/approve`, { token, body: {} })
    assert.equal(byPat.statusCode, 403)
    assert.match(byPat.json().message, /signed in with their password/)
    const anonymous = await h.req('GET', `/api/v4/user/device_authorizations/${code}`)
    assert.equal(anonymous.statusCode, 401)
    const extra = await h.req('POST', `/api/v4/user/device_authorizations/${code}/approve`, { bearer: person, body: { user_id: 2 } })
    assert.equal(extra.statusCode, 400)
    for (let i = 0; i < 10; i++) {
      const wrong = await h.req('GET', '/api/v4/user/device_authorizations/BBBB-BBBB', { bearer: person })
      assert.equal(wrong.statusCode, 404)
    }
    const throttled = await h.req('GET', `/api/v4/user/device_authorizations/${code}`, { bearer: person })
    assert.equal(throttled.statusCode, 429)
  })
})

describe('the login', () => {
  it('mints registry tokens through /jwt/auth; revoking it stops the secret, the refresh and registry tokens already issued', async (t) => {
    const h = await apiHarness(t)
    await h.services.projects.createProject((await h.root()).user, {
      namespaceId: (await h.services.groups.createGroup((await h.root()).user, { path: 'team', visibility: 'private' })).id,
      path: 'app',
    })
    const got = await approved(h)
    const issued = await jwtAuth(h, 'root', got.access_token, 'repository:team/app:pull,push')
    assert.equal(issued.statusCode, 200, issued.body)
    const registryToken = issued.json().token as string
    const tags = () => h.app.inject({ method: 'GET', url: '/v2/team/app/tags/list', headers: { authorization: `Bearer ${registryToken}` } })
    assert.notEqual((await tags()).statusCode, 401)
    // The secret is the user's only: another username does not get it through.
    assert.equal((await jwtAuth(h, 'someone', got.access_token)).statusCode, 401)

    // Refresh: a new secret, the same refresh credential.
    const refreshed = await h.req('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: got.refresh_token } })
    assert.equal(refreshed.statusCode, 200, refreshed.body)
    assert.match(refreshed.json().access_token, /^wharf-ls-/)
    assert.equal(refreshed.json().refresh_token, undefined)

    // Listed as "signed in on <device>".
    const list = await h.req('GET', '/api/v4/user/device_logins', { bearer: got.person })
    assert.equal(list.statusCode, 200, list.body)
    const [login] = list.json()
    assert.equal(login.name, 'signed in on laptop')
    assert.deepEqual(login.scopes, ['read_registry', 'write_registry'])
    assert.equal(list.headers['x-total'], '1')

    // Another user can neither see nor revoke it.
    const other = await h.user('other')
    assert.equal((await h.req('DELETE', `/api/v4/user/device_logins/${login.id}`, { token: other.token })).statusCode, 404)

    const revoked = await h.req('DELETE', `/api/v4/user/device_logins/${login.id}`, { bearer: got.person })
    assert.equal(revoked.statusCode, 204, revoked.body)
    assert.equal((await tags()).statusCode, 401)
    assert.equal((await jwtAuth(h, 'root', got.access_token)).statusCode, 401)
    const after = await h.req('POST', '/oauth/token', { form: { grant_type: 'refresh_token', refresh_token: got.refresh_token } })
    assert.equal(after.statusCode, 400)
    assert.equal(after.json().error, 'invalid_grant')
    assert.equal((await h.req('GET', '/api/v4/user/device_logins', { bearer: got.person })).json().length, 0)
  })

  it('is revoked by RFC 7009 with its refresh credential (wharf logout), and a registry-only secret is not an API token', async (t) => {
    const h = await apiHarness(t)
    const got = await approved(h)
    const api = await h.req('GET', '/api/v4/user', { bearer: got.access_token })
    assert.equal(api.statusCode, 403, api.body)
    const res = await h.req('POST', '/oauth/revoke', { form: { token: got.refresh_token } })
    assert.equal(res.statusCode, 200)
    assert.equal((await jwtAuth(h, 'root', got.access_token)).statusCode, 401)
  })

  it('with the api scope, its secret is also an API Bearer token', async (t) => {
    const h = await apiHarness(t)
    const got = await approved(h, 'read_registry api')
    const api = await h.req('GET', '/api/v4/user', { bearer: got.access_token })
    assert.equal(api.statusCode, 200, api.body)
    assert.equal(api.json().username, 'root')
  })
})
