// Docker token authentication, the token side: the /v2 challenge, GET and POST /jwt/auth,
// scope intersection, refresh tokens, failed-login throttling, audit events, secrets in logs.
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import { describe, it } from 'node:test'
import { THROTTLE } from '../../src/auth/throttle.ts'
import { findNamespaceByPath } from '../../src/projects/queries.ts'
import { assertOciError, harness, imageManifest, pushManifest, REALM, REGISTRY_SERVICE, type Harness, type Response } from './harness.ts'

interface AccessEntry {
  type: string
  name: string
  actions: string[]
}

/** The access claim of a registry token (the JWT's payload, not verified here). */
function claims(token: string): { access: AccessEntry[]; sub: string; aud: string; iss: string; exp: number; iat: number } {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8'))
}

function basic(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`
}

function jwtAuth(
  h: Harness,
  scopes: string[],
  auth?: { username: string; password: string },
  extra: Record<string, string> = {},
  remoteAddress?: string,
): Promise<Response> {
  const qs = new URLSearchParams({ service: REGISTRY_SERVICE, ...extra })
  for (const s of scopes) qs.append('scope', s)
  return h.anonymous({
    method: 'GET',
    url: `/jwt/auth?${qs}`,
    headers: auth ? { authorization: basic(auth.username, auth.password) } : {},
    ...(remoteAddress ? { remoteAddress } : {}),
  })
}

function postJwtAuth(h: Harness, form: Record<string, string>): Promise<Response> {
  return h.anonymous({
    method: 'POST',
    url: '/jwt/auth',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams(form).toString(),
  })
}

function tokenOf(res: Response): string {
  assert.equal(res.statusCode, 200, res.body)
  const body = res.json() as { token?: string; access_token?: string }
  return (body.token ?? body.access_token)!
}

/** A project `path` (created as root) and a user with `role` in it. */
async function projectWithUser(
  h: Harness,
  path: string,
  role: 'guest' | 'reporter' | 'developer' | 'maintainer' | 'owner',
  visibility: 'private' | 'internal' | 'public' = 'private',
) {
  const project = await h.ensureProject(path, visibility)
  const password = `pw-${role}-secret-1234`
  const user = await h.createUser(`${role}-${project.id}`, password)
  await h.addMember(project, user, role)
  return { project, user, creds: { username: user.username, password } }
}

describe('the /v2 challenge', () => {
  it('GET /v2/ without a token → 401 with the exact Bearer challenge', async (t) => {
    const h = await harness(t)
    for (const method of ['GET', 'HEAD'] as const) {
      const res = await h.anonymous({ method, url: '/v2/' })
      assert.equal(res.statusCode, 401)
      assert.equal(res.headers['www-authenticate'], `Bearer realm="${REALM}",service="container_registry"`)
      assert.equal(res.headers['docker-distribution-api-version'], 'registry/2.0')
    }
    assertOciError(await h.anonymous({ method: 'GET', url: '/v2/' }), 401, 'UNAUTHORIZED')
  })

  it('names the scope to ask for: pull for reads, pull,push for writes, delete for deletes, the catalog scope', async (t) => {
    const h = await harness(t)
    const d = `sha256:${'a'.repeat(64)}`
    const cases: Array<[string, string, string]> = [
      ['GET', '/v2/ns/p/manifests/latest', 'repository:ns/p:pull'],
      ['HEAD', `/v2/ns/p/blobs/${d}`, 'repository:ns/p:pull'],
      ['GET', '/v2/ns/p/api/tags/list', 'repository:ns/p/api:pull'],
      ['POST', '/v2/ns/p/blobs/uploads/', 'repository:ns/p:pull,push'],
      ['PUT', '/v2/ns/p/manifests/v1', 'repository:ns/p:pull,push'],
      ['DELETE', '/v2/ns/p/manifests/v1', 'repository:ns/p:delete'],
      ['DELETE', `/v2/ns/p/blobs/${d}`, 'repository:ns/p:delete'],
      ['GET', '/v2/_catalog', 'registry:catalog:*'],
    ]
    for (const [method, url, scope] of cases) {
      const res = await h.anonymous({ method: method as 'GET', url })
      assert.equal(res.statusCode, 401, `${method} ${url}`)
      assert.equal(
        res.headers['www-authenticate'],
        `Bearer realm="${REALM}",service="container_registry",scope="${scope}"`,
        `${method} ${url}`,
      )
    }
  })

  it('a malformed, foreign or non-Bearer Authorization → 401 with the challenge', async (t) => {
    const h = await harness(t)
    const other = await harness(t) // another server: another signing key
    const foreign = await other.token([])
    for (const authorization of ['Bearer', 'Bearer nonsense', 'Bearer a.b.c', `Bearer ${foreign}`, basic('root', h.rootPassword)]) {
      const res = await h.anonymous({ method: 'GET', url: '/v2/', headers: { authorization } })
      assertOciError(res, 401, 'UNAUTHORIZED')
      assert.equal(res.headers['www-authenticate'], `Bearer realm="${REALM}",service="container_registry"`, authorization)
    }
  })

  it('a valid token opens /v2/', async (t) => {
    const h = await harness(t)
    const res = await h.anonymous({ method: 'GET', url: '/v2/', headers: { authorization: `Bearer ${tokenOf(await jwtAuth(h, []))}` } })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(res.json(), {})
  })
})

describe('GET /jwt/auth', () => {
  it('good Basic credentials → a token with the granted access, expiry and no-store', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/p')
    const res = await jwtAuth(h, ['repository:ns/p:pull,push'], { username: 'root', password: h.rootPassword })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['cache-control'], 'no-store')
    const body = res.json() as { token: string; access_token: string; expires_in: number; issued_at: string; refresh_token?: string }
    assert.equal(body.token, body.access_token)
    assert.equal(body.expires_in, 300)
    assert.ok(!Number.isNaN(Date.parse(body.issued_at)))
    assert.equal(body.refresh_token, undefined, 'no refresh token unless offline_token=true')
    const c = claims(body.token)
    assert.deepEqual(c.access, [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }])
    assert.equal(c.sub, 'root')
    assert.equal(c.aud, 'container_registry')
    assert.equal(c.iss, 'http://wharf.test')
    assert.equal(c.exp - c.iat, 300)
  })

  it('bad Basic credentials → 401 with an OAuth-style body and a Basic challenge', async (t) => {
    const h = await harness(t)
    const user = await h.createUser('alice', 'alice-password-1')
    for (const [username, password] of [
      ['root', 'wrong-password'],
      [user.username, 'wrong-password'],
      ['nobody', 'whatever-password'],
      ['root', ''],
    ] as const) {
      const res = await jwtAuth(h, ['repository:ns/p:pull'], { username, password })
      assert.equal(res.statusCode, 401, `${username}: ${res.body}`)
      assert.equal(res.headers['www-authenticate'], 'Basic realm="Wharf"')
      const body = res.json() as { error: string; error_description: string; errors: Array<{ code: string; message: string }> }
      assert.equal(body.error, 'invalid_grant')
      assert.match(body.error_description, /invalid username or password/)
      assert.equal(body.errors[0]?.code, 'UNAUTHORIZED')
      assert.doesNotMatch(res.body, /wrong-password|whatever-password/)
    }
  })

  it('no credentials → an anonymous token: pull on public projects only, never a failure', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/public', 'public')
    await h.ensureProject('ns/internal', 'internal')
    await h.ensureProject('ns/private', 'private')
    const res = await jwtAuth(h, [
      'repository:ns/public:pull,push',
      'repository:ns/internal:pull',
      'repository:ns/private:pull',
      'repository:no/project:pull',
    ])
    const c = claims(tokenOf(res))
    assert.equal(c.sub, 'anonymous')
    assert.deepEqual(c.access, [{ type: 'repository', name: 'ns/public', actions: ['pull'] }])
  })

  it('grants the intersection: a developer asking for pull,push,delete gets pull,push', async (t) => {
    const h = await harness(t)
    const { creds } = await projectWithUser(h, 'ns/p', 'developer')
    const res = await jwtAuth(h, ['repository:ns/p:pull,push,delete'], creds)
    assert.deepEqual(claims(tokenOf(res)).access, [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }])
    // `*` means every action; images below the project path are the project's.
    const star = await jwtAuth(h, ['repository:ns/p/api:*'], creds)
    assert.deepEqual(claims(tokenOf(star)).access, [{ type: 'repository', name: 'ns/p/api', actions: ['pull', 'push'] }])
  })

  it('per role: guest nothing, reporter pull, developer pull+push, maintainer and owner everything', async (t) => {
    const h = await harness(t)
    const want = {
      guest: [],
      reporter: ['pull'],
      developer: ['pull', 'push'],
      maintainer: ['pull', 'push', 'delete'],
      owner: ['pull', 'push', 'delete'],
    } as const
    for (const [role, actions] of Object.entries(want)) {
      const { creds } = await projectWithUser(h, `roles/${role}`, role as keyof typeof want)
      const access = claims(tokenOf(await jwtAuth(h, [`repository:roles/${role}:pull,push,delete`], creds))).access
      assert.deepEqual(access, actions.length ? [{ type: 'repository', name: `roles/${role}`, actions: [...actions] }] : [], role)
    }
  })

  it('group membership is inherited by the group’s projects and subgroups', async (t) => {
    const h = await harness(t)
    await h.ensureProject('grp/sub/app')
    const user = await h.createUser('grouper', 'grouper-password')
    await h.addMember((await findNamespaceByPath(h.db, 'grp'))!, user, 'maintainer')
    const access = claims(
      tokenOf(await jwtAuth(h, ['repository:grp/sub/app:pull,push,delete'], { username: 'grouper', password: 'grouper-password' })),
    ).access
    assert.deepEqual(access, [{ type: 'repository', name: 'grp/sub/app', actions: ['pull', 'push', 'delete'] }])
  })

  it('several scopes in one request, in separate parameters or space-separated', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/a')
    await h.ensureProject('ns/b')
    const root = { username: 'root', password: h.rootPassword }
    const a = claims(tokenOf(await jwtAuth(h, ['repository:ns/a:pull', 'repository:ns/b:push'], root))).access
    const b = claims(tokenOf(await jwtAuth(h, ['repository:ns/a:pull repository:ns/b:push'], root))).access
    const want = [
      { type: 'repository', name: 'ns/a', actions: ['pull'] },
      { type: 'repository', name: 'ns/b', actions: ['push'] },
    ]
    assert.deepEqual(a, want)
    assert.deepEqual(b, want)
  })

  it('malformed or unknown scopes are ignored, not failures', async (t) => {
    const h = await harness(t)
    const root = { username: 'root', password: h.rootPassword }
    for (const scope of [
      'nonsense',
      'repository:',
      'repository:Upper/Case:pull',
      'repository:a//b:pull',
      'foo:bar:baz',
      'repository:ns/p:',
    ]) {
      const res = await jwtAuth(h, [scope], root)
      assert.deepEqual(claims(tokenOf(res)).access, [], scope)
    }
  })

  it('an unknown service → 400', async (t) => {
    const h = await harness(t)
    const res = await jwtAuth(h, [], undefined, { service: 'someone-else' })
    assert.equal(res.statusCode, 400)
    assert.equal((res.json() as { error: string }).error, 'invalid_request')
  })

  it('docker login (GET, offline_token=true) gets no refresh token, as with GitLab: nothing for docker to keep as an identitytoken', async (t) => {
    const h = await harness(t)
    const { creds } = await projectWithUser(h, 'ns/p', 'developer')
    const res = await jwtAuth(h, ['repository:ns/p:pull'], creds, { offline_token: 'true', client_id: 'docker' })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal((res.json() as { refresh_token?: string }).refresh_token, undefined)
  })

  it('access_type=offline (POST) returns a refresh token usable with POST grant_type=refresh_token', async (t) => {
    const h = await harness(t)
    const { creds } = await projectWithUser(h, 'ns/p', 'developer')
    const res = await postJwtAuth(h, {
      grant_type: 'password',
      username: creds.username,
      password: creds.password,
      access_type: 'offline',
      service: REGISTRY_SERVICE,
      scope: 'repository:ns/p:pull',
      client_id: 'containerd',
    })
    const { refresh_token } = res.json() as { refresh_token: string }
    assert.ok(refresh_token, res.body)
    const refreshed = await postJwtAuth(h, {
      grant_type: 'refresh_token',
      refresh_token,
      service: REGISTRY_SERVICE,
      scope: 'repository:ns/p:pull,push',
      client_id: 'docker',
    })
    assert.equal(refreshed.statusCode, 200, refreshed.body)
    const body = refreshed.json() as { access_token: string; token_type: string; expires_in: number; scope: string; refresh_token?: string }
    assert.equal(body.token_type, 'Bearer')
    assert.equal(body.expires_in, 300)
    assert.equal(body.scope, 'repository:ns/p:pull,push')
    assert.deepEqual(claims(body.access_token).access, [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }])
    assert.equal(claims(body.access_token).sub, creds.username)
    // The refreshed token works against the registry.
    const tags = await h.anonymous({ method: 'GET', url: '/v2/ns/p/tags/list', headers: { authorization: `Bearer ${body.access_token}` } })
    assertOciError(tags, 404, 'NAME_UNKNOWN')
  })

  it('a bogus refresh token → 401 invalid_grant', async (t) => {
    const h = await harness(t)
    const res = await postJwtAuth(h, { grant_type: 'refresh_token', refresh_token: 'wharf-rt-bogus', service: REGISTRY_SERVICE })
    assert.equal(res.statusCode, 401)
    assert.equal((res.json() as { error: string }).error, 'invalid_grant')
  })

  it('a refresh token stops working when the PAT behind it is revoked', async (t) => {
    const h = await harness(t)
    const { user } = await projectWithUser(h, 'ns/p', 'developer')
    const { token, row } = await h.services.accessTokens.createPat(user.id, { name: 'ci', scopes: ['read_registry'] }, 'root')
    const res = await postJwtAuth(h, {
      grant_type: 'password',
      username: user.username,
      password: token,
      access_type: 'offline',
      service: REGISTRY_SERVICE,
      scope: 'repository:ns/p:pull',
    })
    const { refresh_token } = res.json() as { refresh_token: string }
    assert.equal((await postJwtAuth(h, { grant_type: 'refresh_token', refresh_token, service: REGISTRY_SERVICE })).statusCode, 200)
    await h.services.accessTokens.revokePat(row, 'root')
    assert.equal((await postJwtAuth(h, { grant_type: 'refresh_token', refresh_token, service: REGISTRY_SERVICE })).statusCode, 401)
  })
})

describe('POST /jwt/auth (OAuth2, as containerd and podman use it)', () => {
  it('grant_type=password returns a token for the requested scope', async (t) => {
    const h = await harness(t)
    const { creds } = await projectWithUser(h, 'ns/p', 'maintainer')
    const res = await postJwtAuth(h, {
      grant_type: 'password',
      username: creds.username,
      password: creds.password,
      service: REGISTRY_SERVICE,
      scope: 'repository:ns/p:pull,push,delete',
      client_id: 'containerd',
    })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['cache-control'], 'no-store')
    const body = res.json() as { access_token: string; scope: string; refresh_token?: string }
    assert.equal(body.scope, 'repository:ns/p:pull,push,delete')
    assert.equal(body.refresh_token, undefined)
    assert.deepEqual(claims(body.access_token).access, [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push', 'delete'] }])
  })

  it('access_type=offline adds a refresh token', async (t) => {
    const h = await harness(t)
    const res = await postJwtAuth(h, {
      grant_type: 'password',
      username: 'root',
      password: h.rootPassword,
      service: REGISTRY_SERVICE,
      access_type: 'offline',
    })
    assert.equal(res.statusCode, 200, res.body)
    assert.match((res.json() as { refresh_token: string }).refresh_token, /^wharf-rt-/)
  })

  it('a wrong password → 401 invalid_grant; missing fields or another grant type → 400', async (t) => {
    const h = await harness(t)
    const bad = await postJwtAuth(h, { grant_type: 'password', username: 'root', password: 'nope-nope', service: REGISTRY_SERVICE })
    assert.equal(bad.statusCode, 401)
    assert.equal((bad.json() as { error: string }).error, 'invalid_grant')
    const missing = await postJwtAuth(h, { grant_type: 'password', username: 'root' })
    assert.equal(missing.statusCode, 400)
    assert.equal((missing.json() as { error: string }).error, 'invalid_request')
    const other = await postJwtAuth(h, { grant_type: 'client_credentials' })
    assert.equal(other.statusCode, 400)
    assert.equal((other.json() as { error: string }).error, 'unsupported_grant_type')
  })
})

describe('failed-login throttling', () => {
  it(`${THROTTLE.perAccountAddress} failures for (user, address) → 429 with Retry-After; the user still signs in from another address`, async (t) => {
    const h = await harness(t)
    await h.createUser('victim', 'victim-password')
    const attacker = '203.0.113.7'
    for (let i = 0; i < THROTTLE.perAccountAddress; i++) {
      const res = await jwtAuth(h, [], { username: 'victim', password: `guess-${i}` }, {}, attacker)
      assert.equal(res.statusCode, 401, `attempt ${i + 1}: ${res.body}`)
    }
    const blocked = await jwtAuth(h, [], { username: 'victim', password: 'guess-x' }, {}, attacker)
    assert.equal(blocked.statusCode, 429, blocked.body)
    const retryAfter = Number(blocked.headers['retry-after'])
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= THROTTLE.windowMs / 1000,
      `Retry-After ${blocked.headers['retry-after']}`,
    )
    assert.equal((blocked.json() as { error: string }).error, 'slow_down')
    // Even the right password is refused from the throttled address...
    assert.equal((await jwtAuth(h, [], { username: 'victim', password: 'victim-password' }, {}, attacker)).statusCode, 429)
    assert.equal(
      (await postJwtAuth(h, { grant_type: 'password', username: 'victim', password: 'victim-password' })).statusCode,
      200,
      'POST from another address',
    )
    // ...while the real user, from their own address, is not locked out.
    assert.equal((await jwtAuth(h, [], { username: 'victim', password: 'victim-password' }, {}, '198.51.100.20')).statusCode, 200)
    // Other accounts from the attacker's address are not affected by this account's counter.
    assert.equal((await jwtAuth(h, [], { username: 'root', password: h.rootPassword }, {}, attacker)).statusCode, 200)
  })

  it('a success clears the account’s failures from that address', async (t) => {
    const h = await harness(t)
    await h.createUser('forgetful', 'forgetful-password')
    const addr = '192.0.2.50'
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < THROTTLE.perAccountAddress - 1; i++) {
        assert.equal((await jwtAuth(h, [], { username: 'forgetful', password: 'typo-typo' }, {}, addr)).statusCode, 401)
      }
      assert.equal(
        (await jwtAuth(h, [], { username: 'forgetful', password: 'forgetful-password' }, {}, addr)).statusCode,
        200,
        `round ${round}`,
      )
    }
  })
})

describe('audit and logs', () => {
  it('sign-in successes, failures and throttling are audited with the address', async (t) => {
    const h = await harness(t)
    await h.createUser('audited', 'audited-password')
    assert.equal((await jwtAuth(h, [], { username: 'audited', password: 'audited-password' }, {}, '192.0.2.1')).statusCode, 200)
    assert.equal((await jwtAuth(h, [], { username: 'audited', password: 'bad-password' }, {}, '192.0.2.2')).statusCode, 401)
    for (let i = 0; i < THROTTLE.perAccountAddress; i++)
      await jwtAuth(h, [], { username: 'audited', password: 'bad-password' }, {}, '192.0.2.3')
    assert.equal((await jwtAuth(h, [], { username: 'audited', password: 'bad-password' }, {}, '192.0.2.3')).statusCode, 429)
    const rows = await h.db.selectFrom('audit_events').selectAll().where('actor', '=', 'audited').orderBy('id').execute()
    const seen = rows.map((r) => [r.action, r.ip])
    assert.deepEqual(seen[0], ['login.success', '192.0.2.1'])
    assert.deepEqual(seen[1], ['login.failure', '192.0.2.2'])
    assert.equal(seen.filter(([a, ip]) => a === 'login.failure' && ip === '192.0.2.3').length, THROTTLE.perAccountAddress)
    assert.deepEqual(seen.at(-1), ['login.throttled', '192.0.2.3'])
    assert.deepEqual(JSON.parse(rows[0]!.detail!), { via: 'password' })
    for (const r of rows) assert.doesNotMatch(`${r.detail} ${r.target}`, /audited-password|bad-password/)
  })

  it('no password, PAT, deploy token, refresh token or registry token appears in the logs', async (t) => {
    const lines: string[] = []
    const logStream = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(chunk.toString('utf8'))
        done()
      },
    })
    const h = await harness(t, { logStream })
    const { user, project, creds } = await projectWithUser(h, 'ns/p', 'maintainer')
    const pat = await h.services.accessTokens.createPat(user.id, { name: 'ci', scopes: ['write_registry'] }, 'root')
    const dt = await h.services.accessTokens.createDeployToken(
      { projectId: project.id },
      { name: 'deploy', scopes: ['read_registry'] },
      'root',
    )
    const secrets = [h.rootPassword, creds.password, pat.token, dt.token, 'wrong-password-9']
    // Every way a secret reaches the server: Basic on GET, form on POST, refresh tokens, bearer tokens, failures.
    const offline = tokenOf(await jwtAuth(h, ['repository:ns/p:pull,push'], creds, { offline_token: 'true' }))
    const refresh = (
      await postJwtAuth(h, {
        grant_type: 'password',
        username: creds.username,
        password: creds.password,
        access_type: 'offline',
        service: REGISTRY_SERVICE,
        scope: 'repository:ns/p:pull',
      })
    ).json() as { refresh_token: string }
    secrets.push(offline, refresh.refresh_token)
    const viaPat = tokenOf(await jwtAuth(h, ['repository:ns/p:pull,push'], { username: user.username, password: pat.token }))
    const viaDeploy = tokenOf(await jwtAuth(h, ['repository:ns/p:pull'], { username: dt.row.username, password: dt.token }))
    const viaPost = tokenOf(
      await postJwtAuth(h, {
        grant_type: 'password',
        username: creds.username,
        password: creds.password,
        service: REGISTRY_SERVICE,
        scope: 'repository:ns/p:pull',
      }),
    )
    const viaRefresh = tokenOf(
      await postJwtAuth(h, {
        grant_type: 'refresh_token',
        refresh_token: refresh.refresh_token,
        service: REGISTRY_SERVICE,
        scope: 'repository:ns/p:pull',
      }),
    )
    secrets.push(viaPat, viaDeploy, viaPost, viaRefresh)
    await jwtAuth(h, [], { username: creds.username, password: 'wrong-password-9' })
    await postJwtAuth(h, { grant_type: 'password', username: creds.username, password: 'wrong-password-9' })
    await postJwtAuth(h, { grant_type: 'refresh_token', refresh_token: `${refresh.refresh_token}x` })
    for (const tok of [offline, viaPat, viaDeploy, viaPost, viaRefresh]) {
      await h.anonymous({ method: 'GET', url: '/v2/ns/p/tags/list', headers: { authorization: `Bearer ${tok}` } })
      await h.anonymous({ method: 'DELETE', url: '/v2/ns/p/manifests/x', headers: { authorization: `Bearer ${tok}` } })
    }
    await h.anonymous({ method: 'GET', url: '/v2/', headers: { authorization: `Bearer ${viaPat}broken` } })
    const m = await imageManifest(h, 'ns/p')
    await pushManifest(h, 'ns/p', 'v1', m)
    const log = lines.join('')
    assert.ok(lines.length > 20, `the logger captured the requests (${lines.length} lines)`)
    assert.match(log, /\/jwt\/auth/)
    for (const s of [...secrets, ...secrets.map((s) => Buffer.from(`${creds.username}:${s}`).toString('base64'))]) {
      assert.ok(!log.includes(s), `a secret (${s.slice(0, 12)}…) appears in the log`)
    }
    // Nor a fragment long enough to matter (e.g. a JWT's signature).
    for (const tok of [offline, viaPat, viaDeploy, viaPost, viaRefresh])
      assert.ok(!log.includes(tok.split('.')[2]!), 'a token signature appears in the log')
  })
})
