// Docker token authentication, the registry side: what a token lets a request do on /v2.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { importJWK, SignJWT, type JWK } from 'jose'
import { findNamespaceByPath } from '../../src/projects/queries.ts'
import {
  assertOciError,
  harness,
  imageManifest,
  pushBlob,
  pushManifest,
  PUBLIC_URL,
  REALM,
  REGISTRY_SERVICE,
  sha256,
  type Harness,
  type Response,
} from './harness.ts'

type Creds = { username: string; password: string }

/** A registry token from GET /jwt/auth for `creds` (anonymous when undefined); never fails on denied scopes. */
async function tokenFor(h: Harness, scopes: string[], creds?: Creds): Promise<string> {
  const qs = new URLSearchParams({ service: REGISTRY_SERVICE })
  for (const s of scopes) qs.append('scope', s)
  const res = await h.anonymous({
    method: 'GET',
    url: `/jwt/auth?${qs}`,
    headers: creds ? { authorization: `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}` } : {},
  })
  assert.equal(res.statusCode, 200, res.body)
  return (res.json() as { token: string }).token
}

function as(
  h: Harness,
  token: string,
  method: string,
  url: string,
  payload?: string | Buffer,
  headers: Record<string, string> = {},
): Promise<Response> {
  return h.anonymous({
    method: method as 'GET',
    url,
    headers: {
      authorization: `Bearer ${token}`,
      ...(payload !== undefined ? { 'content-type': 'application/octet-stream' } : {}),
      ...headers,
    },
    ...(payload !== undefined ? { payload } : {}),
  })
}

/** Monolithic blob push with a given token; returns the response. */
function pushBlobAs(h: Harness, token: string, repo: string, data: string): Promise<Response> {
  return as(h, token, 'POST', `/v2/${repo}/blobs/uploads/?digest=${sha256(data)}`, data)
}

async function user(h: Harness, name: string): Promise<Creds & { id: number }> {
  const password = `${name}-password-123`
  const u = await h.createUser(name, password)
  return { username: name, password, id: u.id }
}

/** An image pushed as root to `repo` (whose project must exist); returns its manifest digest. */
async function seed(h: Harness, repo: string): Promise<string> {
  const m = await imageManifest(h, repo)
  await pushManifest(h, repo, 'v1', m)
  return m.digest
}

describe('tokens are bound to repositories and actions', () => {
  it('a token for repository A cannot be used on B (403 DENIED, insufficient_scope)', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/a')
    await h.ensureProject('ns/b')
    await seed(h, 'ns/a')
    await seed(h, 'ns/b')
    const tokA = await h.token(['repository:ns/a:pull,push,delete'])
    assert.equal((await as(h, tokA, 'GET', '/v2/ns/a/manifests/v1')).statusCode, 200)
    for (const [method, url] of [
      ['GET', '/v2/ns/b/manifests/v1'],
      ['GET', '/v2/ns/b/tags/list'],
      ['POST', '/v2/ns/b/blobs/uploads/'],
      ['DELETE', '/v2/ns/b/manifests/v1'],
      ['GET', '/v2/ns/a/sub/tags/list'], // an image below A is another repository
      ['GET', '/v2/ns/tags/list'],
    ] as const) {
      const res = await as(h, tokA, method, url)
      const e = assertOciError(res, 403, 'DENIED')
      assert.match(String(res.headers['www-authenticate']), /error="insufficient_scope"/, `${method} ${url}`)
      assert.match(e.message, /denied/, `${method} ${url}`)
    }
    // The images in B are untouched.
    assert.equal((await h.inject({ method: 'GET', url: '/v2/ns/b/manifests/v1' })).statusCode, 200)
  })

  it('a pull-only token cannot push or delete; the message says what is missing', async (t) => {
    const h = await harness(t)
    const project = await h.ensureProject('ns/p')
    const digest = await seed(h, 'ns/p')
    const reporter = await user(h, 'reporter')
    await h.addMember(project, reporter, 'reporter')
    const tok = await tokenFor(h, ['repository:ns/p:pull,push,delete'], reporter)
    assert.equal((await as(h, tok, 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200)
    const push = assertOciError(await pushBlobAs(h, tok, 'ns/p', 'x'), 403, 'DENIED')
    assert.match(push.message, /push access to ns\/p denied: this needs the Developer role/)
    const del = assertOciError(await as(h, tok, 'DELETE', `/v2/ns/p/manifests/${digest}`), 403, 'DENIED')
    assert.match(del.message, /delete access to ns\/p denied: this needs the Maintainer role/)
    assert.equal((await h.inject({ method: 'GET', url: `/v2/ns/p/manifests/${digest}` })).statusCode, 200)
  })

  it('an expired token → 401 with the challenge', async (t) => {
    const h = await harness(t, { tokenTtlSeconds: 0 })
    await h.ensureProject('ns/p')
    const tok = await h.token(['repository:ns/p:pull'])
    const res = await as(h, tok, 'GET', '/v2/ns/p/tags/list')
    const e = assertOciError(res, 401, 'UNAUTHORIZED')
    assert.match(e.message, /invalid or expired/)
    assert.equal(res.headers['www-authenticate'], `Bearer realm="${REALM}",service="container_registry",scope="repository:ns/p:pull"`)
  })

  it('a token whose lifetime ran out while it was cached stops working', async (t) => {
    const h = await harness(t, { tokenTtlSeconds: 1 })
    await h.ensureProject('ns/p')
    const tok = await h.token(['repository:ns/p:pull'])
    assertOciError(await as(h, tok, 'GET', '/v2/ns/p/tags/list'), 404, 'NAME_UNKNOWN')
    await new Promise((r) => setTimeout(r, 2100))
    assertOciError(await as(h, tok, 'GET', '/v2/ns/p/tags/list'), 401, 'UNAUTHORIZED')
  })

  it('a tampered token (access widened, signature kept) → 401', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/a')
    await h.ensureProject('ns/b')
    const tok = await h.token(['repository:ns/a:pull'])
    const [head, body, sig] = tok.split('.') as [string, string, string]
    const payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as { access: Array<{ name: string }> }
    payload.access[0]!.name = 'ns/b'
    const forged = `${head}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}.${sig}`
    assertOciError(await as(h, forged, 'GET', '/v2/ns/b/tags/list'), 401, 'UNAUTHORIZED')
  })

  it('a token signed with the server’s own key but without exp or iat, with a lifetime past the TTL or issued in the future → 401', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/p')
    await seed(h, 'ns/p')
    const row = await h.db.selectFrom('signing_keys').selectAll().where('retired_at', 'is', null).executeTakeFirstOrThrow()
    const key = await importJWK(JSON.parse(row.private_jwk) as JWK, 'ES256')
    const now = Math.floor(Date.now() / 1000)
    const sign = (claims: { iat?: number; exp?: number }) => {
      const jwt = new SignJWT({ access: [{ type: 'repository', name: 'ns/p', actions: ['pull'] }] })
        .setProtectedHeader({ alg: 'ES256', kid: row.kid, typ: 'JWT' })
        .setIssuer(PUBLIC_URL)
        .setAudience(REGISTRY_SERVICE)
        .setSubject('root')
      if (claims.iat !== undefined) jwt.setIssuedAt(claims.iat)
      if (claims.exp !== undefined) jwt.setExpirationTime(claims.exp)
      return jwt.sign(key)
    }
    for (const [what, claims] of [
      ['no exp', { iat: now }],
      ['no iat', { exp: now + 300 }],
      ['ten years', { iat: now, exp: now + 10 * 365 * 86400 }],
      ['one second past the TTL', { iat: now, exp: now + 301 }],
      ['issued in the future', { iat: now + 3600, exp: now + 3900 }],
    ] as const) {
      const res = await as(h, await sign(claims), 'GET', '/v2/ns/p/manifests/v1')
      const e = assertOciError(res, 401, 'UNAUTHORIZED')
      assert.match(e.message, /invalid or expired/, what)
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm=/, what)
    }
    // The same key and claims with a lifetime the server itself issues work.
    assert.equal((await as(h, await sign({ iat: now, exp: now + 300 }), 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200)
  })

  it('tokens survive a restart (the signing key is in the database)', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/p')
    await seed(h, 'ns/p')
    const tok = await h.token(['repository:ns/p:pull'])
    await h.restart()
    assert.equal((await as(h, tok, 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200)
  })
})

describe('credentials behind tokens', () => {
  it('a registry token minted from a PAT stops working as soon as the PAT is revoked', async (t) => {
    const h = await harness(t)
    const project = await h.ensureProject('ns/p')
    await seed(h, 'ns/p')
    const u = await user(h, 'patty')
    const pat = await h.services.accessTokens.createPat(u.id, { name: 'laptop', scopes: ['read_registry'] }, 'root')
    await h.addMember(project, u, 'reporter')
    const tok = await tokenFor(h, ['repository:ns/p:pull'], { username: u.username, password: pat.token })
    assert.equal((await as(h, tok, 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200)
    assert.equal((await as(h, tok, 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200, 'a cached answer')
    await h.services.accessTokens.revokePat(pat.row, 'root')
    const res = await as(h, tok, 'GET', '/v2/ns/p/manifests/v1')
    const e = assertOciError(res, 401, 'UNAUTHORIZED')
    assert.match(e.message, /revoked/)
    // And the PAT no longer logs in.
    const login = await h.anonymous({
      method: 'GET',
      url: `/jwt/auth?service=${REGISTRY_SERVICE}`,
      headers: { authorization: `Basic ${Buffer.from(`${u.username}:${pat.token}`).toString('base64')}` },
    })
    assert.equal(login.statusCode, 401)
  })

  it('a PAT is only accepted with its owner’s username; an expired PAT is refused', async (t) => {
    const h = await harness(t)
    const u = await user(h, 'owner1')
    await user(h, 'other1')
    const pat = await h.services.accessTokens.createPat(u.id, { name: 'x', scopes: ['read_registry'] }, 'root')
    const login = (username: string, password: string) =>
      h.anonymous({
        method: 'GET',
        url: `/jwt/auth?service=${REGISTRY_SERVICE}`,
        headers: { authorization: `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}` },
      })
    assert.equal((await login('owner1', pat.token)).statusCode, 200)
    assert.equal((await login('other1', pat.token)).statusCode, 401)
    await h.db.updateTable('personal_access_tokens').set({ expires_at: '2000-01-01' }).where('id', '=', pat.row.id).execute()
    assert.equal((await login('owner1', pat.token)).statusCode, 401)
  })

  it('PAT scopes: read_registry pulls only, write_registry pushes (for a developer)', async (t) => {
    const h = await harness(t)
    const project = await h.ensureProject('ns/p')
    await seed(h, 'ns/p')
    const u = await user(h, 'dev')
    await h.addMember(project, u, 'developer')
    const read = await h.services.accessTokens.createPat(u.id, { name: 'r', scopes: ['read_registry'] }, 'root')
    const write = await h.services.accessTokens.createPat(u.id, { name: 'w', scopes: ['write_registry'] }, 'root')
    const api = await h.services.accessTokens.createPat(u.id, { name: 'a', scopes: ['read_api', 'read_repository'] }, 'root')
    const rt = await tokenFor(h, ['repository:ns/p:pull,push'], { username: 'dev', password: read.token })
    assert.equal((await as(h, rt, 'GET', '/v2/ns/p/manifests/v1')).statusCode, 200)
    assertOciError(await pushBlobAs(h, rt, 'ns/p', 'read-only'), 403, 'DENIED')
    const wt = await tokenFor(h, ['repository:ns/p:pull,push'], { username: 'dev', password: write.token })
    assert.equal((await pushBlobAs(h, wt, 'ns/p', 'written')).statusCode, 201)
    const at = await tokenFor(h, ['repository:ns/p:pull,push'], { username: 'dev', password: api.token })
    assertOciError(await as(h, at, 'GET', '/v2/ns/p/manifests/v1'), 403, 'DENIED')
  })
})

describe('deploy tokens', () => {
  async function setup(t: Parameters<typeof harness>[0]) {
    const h = await harness(t)
    const a = await h.ensureProject('team/a')
    const b = await h.ensureProject('team/b')
    const pub = await h.ensureProject('team/pub', 'public')
    const digestA = await seed(h, 'team/a')
    await seed(h, 'team/b')
    await seed(h, 'team/pub')
    const read = await h.services.accessTokens.createDeployToken({ projectId: a.id }, { name: 'pull', scopes: ['read_registry'] }, 'root')
    const write = await h.services.accessTokens.createDeployToken(
      { projectId: a.id },
      { name: 'push', scopes: ['read_registry', 'write_registry'] },
      'root',
    )
    return {
      h,
      a,
      b,
      pub,
      digestA,
      read: { username: read.row.username, password: read.token, row: read.row },
      write: { username: write.row.username, password: write.token, row: write.row },
    }
  }

  it('read_registry can pull but not push (nor delete)', async (t) => {
    const { h, read, digestA } = await setup(t)
    assert.match(read.username, /^gitlab\+deploy-token-\d+$/)
    const tok = await tokenFor(h, ['repository:team/a:pull,push,delete'], read)
    assert.deepEqual((JSON.parse(Buffer.from(tok.split('.')[1]!, 'base64url').toString()) as { access: unknown }).access, [
      { type: 'repository', name: 'team/a', actions: ['pull'] },
    ])
    assert.equal((await as(h, tok, 'GET', '/v2/team/a/manifests/v1')).statusCode, 200)
    const e = assertOciError(await pushBlobAs(h, tok, 'team/a', 'nope'), 403, 'DENIED')
    assert.match(e.message, /push access to team\/a denied/)
    assertOciError(await as(h, tok, 'DELETE', `/v2/team/a/manifests/${digestA}`), 403, 'DENIED')
  })

  it('write_registry can push, and the pushed image can be pulled back', async (t) => {
    const { h, write } = await setup(t)
    const tok = await tokenFor(h, ['repository:team/a/api:pull,push'], write)
    assert.equal((await pushBlobAs(h, tok, 'team/a/api', 'deployed layer')).statusCode, 201)
    assert.equal((await as(h, tok, 'GET', `/v2/team/a/api/blobs/${sha256('deployed layer')}`)).body, 'deployed layer')
  })

  it('a deploy token of project A cannot pull private project B, but can pull a public project', async (t) => {
    const { h, write } = await setup(t)
    const tok = await tokenFor(h, ['repository:team/b:pull', 'repository:team/pub:pull,push'], write)
    assertOciError(await as(h, tok, 'GET', '/v2/team/b/manifests/v1'), 403, 'DENIED')
    assertOciError(await pushBlobAs(h, tok, 'team/b', 'x'), 403, 'DENIED')
    assert.equal((await as(h, tok, 'GET', '/v2/team/pub/manifests/v1')).statusCode, 200)
    assertOciError(await pushBlobAs(h, tok, 'team/pub', 'x'), 403, 'DENIED')
  })

  it('a group deploy token reaches the group’s projects only', async (t) => {
    const { h } = await setup(t)
    await h.ensureProject('other/c')
    await seed(h, 'other/c')
    const group = (await findNamespaceByPath(h.db, 'team'))!
    const dt = await h.services.accessTokens.createDeployToken(
      { namespaceId: group.id },
      { name: 'group', scopes: ['read_registry'] },
      'root',
    )
    const tok = await tokenFor(h, ['repository:team/a:pull', 'repository:team/b:pull', 'repository:other/c:pull'], {
      username: dt.row.username,
      password: dt.token,
    })
    assert.equal((await as(h, tok, 'GET', '/v2/team/a/manifests/v1')).statusCode, 200)
    assert.equal((await as(h, tok, 'GET', '/v2/team/b/manifests/v1')).statusCode, 200)
    assertOciError(await as(h, tok, 'GET', '/v2/other/c/manifests/v1'), 403, 'DENIED')
  })

  it('a revoked deploy token stops working at once', async (t) => {
    const { h, read } = await setup(t)
    const tok = await tokenFor(h, ['repository:team/a:pull'], read)
    assert.equal((await as(h, tok, 'GET', '/v2/team/a/manifests/v1')).statusCode, 200)
    await h.services.accessTokens.revokeDeployToken(read.row, 'root')
    assertOciError(await as(h, tok, 'GET', '/v2/team/a/manifests/v1'), 401, 'UNAUTHORIZED')
  })
})

describe('repositories belong to projects', () => {
  it('push to a path with no project → 403 with a message saying no project exists', async (t) => {
    const h = await harness(t)
    await h.ensureProject('ns/p')
    for (const repo of ['nope/none', 'ns/none', 'solo', 'ns']) {
      const tok = await h.token([`repository:${repo}:pull,push`])
      const res = await pushBlobAs(h, tok, repo, 'x')
      const e = assertOciError(res, 403, 'DENIED')
      assert.match(e.message, new RegExp(`push access to ${repo} denied: no project you can access exists at that path`), repo)
      assert.match(e.message, /Create the project first/)
      assertOciError(await as(h, tok, 'POST', `/v2/${repo}/blobs/uploads/`), 403, 'DENIED')
      assertOciError(await as(h, tok, 'PUT', `/v2/${repo}/manifests/v1`, '{}'), 403, 'DENIED')
    }
  })

  it('a private project someone cannot read is described exactly like a missing one', async (t) => {
    const h = await harness(t)
    await h.ensureProject('secret/p')
    const u = await user(h, 'outsider')
    const tok = await tokenFor(h, ['repository:secret/p:pull,push', 'repository:missing/p:pull,push'], u)
    const secret = assertOciError(await pushBlobAs(h, tok, 'secret/p', 'x'), 403, 'DENIED')
    const missing = assertOciError(await pushBlobAs(h, tok, 'missing/p', 'x'), 403, 'DENIED')
    assert.equal(secret.message.replace('secret/p', 'X'), missing.message.replace('missing/p', 'X'))
    // Anonymous, likewise.
    const anon = await tokenFor(h, ['repository:secret/p:pull'])
    const e = assertOciError(await as(h, anon, 'GET', '/v2/secret/p/tags/list'), 403, 'DENIED')
    assert.match(e.message, /no project you can access exists/)
  })

  it('Team/App has the registry path team/app; look-alike paths reach nothing', async (t) => {
    const h = await harness(t)
    const app = await h.ensureProject('Team/App')
    assert.equal(app.full_path, 'Team/App')
    assert.equal(app.full_path_lower, 'team/app')
    // Neighbours owned by root, private, each with an image.
    await h.ensureProject('Team/App2')
    await h.ensureProject('TeamX/App')
    for (const repo of ['team/app2', 'teamx/app']) await seed(h, repo)
    // Paths are unique regardless of case.
    await assert.rejects(
      h.services.projects.createProject(
        await h.services.db.selectFrom('users').selectAll().where('username', '=', 'root').executeTakeFirstOrThrow(),
        { namespaceId: app.namespace_id, path: 'app' },
      ),
      /already taken/,
    )

    const dev = await user(h, 'appdev')
    await h.addMember(app, dev, 'maintainer')
    const tok = await tokenFor(h, ['repository:team/app:pull,push', 'repository:team/app/api:pull,push'], dev)
    assert.equal((await pushBlobAs(h, tok, 'team/app', 'mine')).statusCode, 201)
    assert.equal((await pushBlobAs(h, tok, 'team/app/api', 'mine too')).statusCode, 201)
    // The uppercase spelling is not a repository name at all.
    assertOciError(await as(h, tok, 'GET', '/v2/Team/App/tags/list'), 400, 'NAME_INVALID')
    assertOciError(await as(h, tok, 'POST', `/v2/Team/App/blobs/uploads/?digest=${sha256('x')}`, 'x'), 400, 'NAME_INVALID')

    const scopes = ['team/app2', 'team/ap', 'teamx/app', 'team', 'team/app-', 'team/appx/api', 'Team/App', 'TEAM/APP'].map(
      (r) => `repository:${r}:pull,push,delete`,
    )
    const wide = await tokenFor(h, scopes, dev)
    assert.deepEqual(
      (JSON.parse(Buffer.from(wide.split('.')[1]!, 'base64url').toString()) as { access: unknown[] }).access,
      [],
      'nothing granted on look-alike paths',
    )
    for (const repo of ['team/app2', 'team/ap', 'teamx/app']) {
      assertOciError(await as(h, wide, 'GET', `/v2/${repo}/tags/list`), 403, 'DENIED')
      assertOciError(await pushBlobAs(h, wide, repo, 'intruder'), 403, 'DENIED')
      assertOciError(await as(h, wide, 'GET', `/v2/${repo}/manifests/v1`), 403, 'DENIED')
    }
    // A token for team/app does not stretch to its neighbours either.
    for (const repo of ['team/app2', 'teamx/app']) assertOciError(await as(h, tok, 'GET', `/v2/${repo}/manifests/v1`), 403, 'DENIED')
  })
})

describe('_catalog and mounts', () => {
  async function visibilityZoo(t: Parameters<typeof harness>[0]) {
    const h = await harness(t)
    const mine = await h.ensureProject('vis/mine')
    await h.ensureProject('vis/priv')
    await h.ensureProject('vis/pub', 'public')
    await h.ensureProject('vis/internal', 'internal')
    for (const repo of ['vis/mine', 'vis/mine/api', 'vis/priv', 'vis/pub', 'vis/internal']) await seed(h, repo)
    const reader = await user(h, 'reader')
    await h.addMember(mine, reader, 'reporter')
    return { h, reader }
  }

  async function catalog(h: Harness, token: string): Promise<string[]> {
    const res = await as(h, token, 'GET', '/v2/_catalog')
    assert.equal(res.statusCode, 200, res.body)
    return (res.json() as { repositories: string[] }).repositories
  }

  it('lists only the repositories the caller may read', async (t) => {
    const { h, reader } = await visibilityZoo(t)
    assert.deepEqual(await catalog(h, await h.token(['registry:catalog:*'])), [
      'vis/internal',
      'vis/mine',
      'vis/mine/api',
      'vis/priv',
      'vis/pub',
    ])
    assert.deepEqual(await catalog(h, await tokenFor(h, ['registry:catalog:*'], reader)), [
      'vis/internal',
      'vis/mine',
      'vis/mine/api',
      'vis/pub',
    ])
    assert.deepEqual(await catalog(h, await tokenFor(h, ['registry:catalog:*'])), ['vis/pub'])
    const guestUser = await user(h, 'nobody')
    assert.deepEqual(await catalog(h, await tokenFor(h, ['registry:catalog:*'], guestUser)), ['vis/internal', 'vis/pub'])
  })

  it('the catalog needs the registry:catalog:* grant', async (t) => {
    const { h } = await visibilityZoo(t)
    const tok = await h.token(['repository:vis/pub:pull'])
    const res = await as(h, tok, 'GET', '/v2/_catalog')
    assertOciError(res, 401, 'UNAUTHORIZED')
    assert.equal(
      res.headers['www-authenticate'],
      `Bearer realm="${REALM}",service="container_registry",scope="registry:catalog:*",error="insufficient_scope"`,
    )
  })

  it('paginating the catalog never reveals unreadable repositories', async (t) => {
    const { h, reader } = await visibilityZoo(t)
    const tok = await tokenFor(h, ['registry:catalog:*'], reader)
    const seen: string[] = []
    let url: string | undefined = '/v2/_catalog?n=1'
    for (let i = 0; url && i < 20; i++) {
      const res = await as(h, tok, 'GET', url)
      assert.equal(res.statusCode, 200, res.body)
      seen.push(...(res.json() as { repositories: string[] }).repositories)
      const link = res.headers.link === undefined ? undefined : /^<([^>]+)>/.exec(String(res.headers.link))?.[1]
      url = link
    }
    assert.deepEqual(seen, ['vis/internal', 'vis/mine', 'vis/mine/api', 'vis/pub'])
  })

  it('a mount from a repository the token cannot pull falls back to an upload session (202)', async (t) => {
    const { h, reader } = await visibilityZoo(t)
    const secretBlob = await pushBlob(h, 'vis/priv', 'secret layer')
    const dev = await user(h, 'mounter')
    const dst = await h.ensureProject('mnt/dst')
    await h.addMember(dst, dev, 'developer')
    const tok = await tokenFor(h, ['repository:mnt/dst:pull,push', 'repository:vis/priv:pull'], dev)
    const res = await as(h, tok, 'POST', `/v2/mnt/dst/blobs/uploads/?mount=${secretBlob}&from=vis/priv`)
    assert.equal(res.statusCode, 202, res.body)
    assert.match(String(res.headers.location), /^\/v2\/mnt\/dst\/blobs\/uploads\/[0-9a-f-]{36}$/)
    assertOciError(await as(h, tok, 'GET', `/v2/mnt/dst/blobs/${secretBlob}`), 404, 'BLOB_UNKNOWN')
    // The same mount by someone who can read the source succeeds.
    await h.addMember(dst, reader, 'developer')
    const readerTok = await tokenFor(h, ['repository:mnt/dst:pull,push', 'repository:vis/mine:pull'], reader)
    const mineBlob = await pushBlob(h, 'vis/mine', 'shared layer')
    const ok = await as(h, readerTok, 'POST', `/v2/mnt/dst/blobs/uploads/?mount=${mineBlob}&from=vis/mine`)
    assert.equal(ok.statusCode, 201, ok.body)
    // A readable source that the token was not minted for is still not mounted.
    const narrow = await tokenFor(h, ['repository:mnt/dst:pull,push'], reader)
    const other = await pushBlob(h, 'vis/mine', 'another layer')
    assert.equal((await as(h, narrow, 'POST', `/v2/mnt/dst/blobs/uploads/?mount=${other}&from=vis/mine`)).statusCode, 202)
  })

  it('the challenge for a mount also names pull on `from`; a client asking for exactly that mounts (201)', async (t) => {
    const { h, reader } = await visibilityZoo(t)
    const dst = await h.ensureProject('mnt/dst')
    await h.addMember(dst, reader, 'developer')
    const blob = await pushBlob(h, 'vis/mine', 'layer to mount')
    const url = `/v2/mnt/dst/blobs/uploads/?mount=${blob}&from=vis/mine`
    const both = `Bearer realm="${REALM}",service="container_registry",scope="repository:mnt/dst:pull,push repository:vis/mine:pull"`
    const anon = await h.anonymous({ method: 'POST', url })
    assertOciError(anon, 401, 'UNAUTHORIZED')
    assert.equal(anon.headers['www-authenticate'], both)
    // A token without push on the target is challenged the same way.
    const pullOnly = await tokenFor(h, ['repository:vis/mine:pull'], reader)
    const denied = await as(h, pullOnly, 'POST', url)
    assertOciError(denied, 403, 'DENIED')
    assert.equal(denied.headers['www-authenticate'], `${both},error="insufficient_scope"`)
    // What a challenge-following client does: one scope parameter with the challenge's value.
    const scope = /scope="([^"]+)"/.exec(both)![1]!
    const tok = await tokenFor(h, [scope], reader)
    const res = await as(h, tok, 'POST', url)
    assert.equal(res.statusCode, 201, res.body)
    assert.equal(res.headers.location, `/v2/mnt/dst/blobs/${blob}`)
    assert.equal(res.headers['docker-content-digest'], blob)
    assert.equal((await as(h, tok, 'GET', `/v2/mnt/dst/blobs/${blob}`)).body, 'layer to mount')
    // Without `from`, with `from` equal to the target, or with an invalid `from`, only the target is named.
    const only = `Bearer realm="${REALM}",service="container_registry",scope="repository:mnt/dst:pull,push"`
    for (const q of [`mount=${blob}`, `mount=${blob}&from=mnt/dst`, `mount=${blob}&from=Not..Valid`, `from=vis/mine`]) {
      assert.equal((await h.anonymous({ method: 'POST', url: `/v2/mnt/dst/blobs/uploads/?${q}` })).headers['www-authenticate'], only, q)
    }
  })
})

describe('mount without from (automatic content discovery)', () => {
  async function setup(t: Parameters<typeof harness>[0]) {
    const h = await harness(t)
    const mine = await h.ensureProject('vis/mine')
    await h.ensureProject('vis/priv')
    await h.ensureProject('vis/pub', 'public')
    const dst = await h.ensureProject('mnt/dst')
    const dev = await user(h, 'dev')
    await h.addMember(mine, dev, 'reporter')
    await h.addMember(dst, dev, 'developer')
    // A token for the target only, as a client asks for a plain push.
    const tok = await tokenFor(h, ['repository:mnt/dst:pull,push'], dev)
    const mount = (blob: string) => as(h, tok, 'POST', `/v2/mnt/dst/blobs/uploads/?mount=${blob}`)
    const readable = async (blob: string) => (await as(h, tok, 'GET', `/v2/mnt/dst/blobs/${blob}`)).statusCode === 200
    return { h, dev, tok, mount, readable }
  }

  it('a blob in a repository the caller may read (not named in its token) is mounted: 201 with Location and Docker-Content-Digest', async (t) => {
    const { h, mount, readable } = await setup(t)
    for (const repo of ['vis/mine', 'vis/pub']) {
      const blob = await pushBlob(h, repo, `layer in ${repo}`)
      const res = await mount(blob)
      assert.equal(res.statusCode, 201, `${repo}: ${res.body}`)
      assert.equal(res.headers.location, `/v2/mnt/dst/blobs/${blob}`)
      assert.equal(res.headers['docker-content-digest'], blob)
      assert.equal(res.headers['docker-upload-uuid'], undefined)
      assert.ok(await readable(blob), repo)
    }
  })

  it('a blob only in repositories the caller cannot read → 202 upload session, nothing linked; the same as a blob that exists nowhere', async (t) => {
    const { h, mount, readable } = await setup(t)
    const secret = await pushBlob(h, 'vis/priv', 'private layer')
    for (const blob of [secret, sha256('exists nowhere')]) {
      const res = await mount(blob)
      assert.equal(res.statusCode, 202, res.body)
      assert.match(String(res.headers.location), /^\/v2\/mnt\/dst\/blobs\/uploads\/[0-9a-f-]{36}$/)
      assert.equal(res.headers['docker-content-digest'], undefined)
      assert.equal(await readable(blob), false)
    }
    // Also in a readable repository: that copy is used.
    await pushBlob(h, 'vis/pub', 'private layer')
    assert.equal((await mount(secret)).statusCode, 201)
    assert.ok(await readable(secret))
  })

  it('the principal’s own rules decide: a deploy token mounts from its project and public ones only; an administrator from anywhere', async (t) => {
    const { h } = await setup(t)
    const dst = await h.ensureProject('mnt/dst')
    const deploy = await h.services.accessTokens.createDeployToken(
      { projectId: dst.id },
      { name: 'push', scopes: ['read_registry', 'write_registry'] },
      'root',
    )
    const tok = await tokenFor(h, ['repository:mnt/dst:pull,push'], { username: deploy.row.username, password: deploy.token })
    const mount = (token: string, blob: string) => as(h, token, 'POST', `/v2/mnt/dst/blobs/uploads/?mount=${blob}`)
    const [inMine, inPub, inOwn] = [
      await pushBlob(h, 'vis/mine', 'a'),
      await pushBlob(h, 'vis/pub', 'b'),
      await pushBlob(h, 'mnt/dst/sub', 'c'),
    ]
    assert.equal((await mount(tok, inMine)).statusCode, 202, 'vis/mine is private and not the token’s project')
    assert.equal((await mount(tok, inPub)).statusCode, 201)
    assert.equal((await mount(tok, inOwn)).statusCode, 201)
    const root = await h.token(['repository:mnt/dst:pull,push'])
    assert.equal((await mount(root, await pushBlob(h, 'vis/priv', 'admin layer'))).statusCode, 201)
  })

  it('a readable copy near the target is found even when many unreadable repositories hold the blob', async (t) => {
    const { h, mount, readable } = await setup(t)
    const data = 'common base layer'
    // More private repositories than the candidates looked at, all sorting before the target's project.
    await h.ensureProject('hid/den')
    for (let i = 0; i < 33; i++) await pushBlob(h, `hid/den/r${String(i).padStart(2, '0')}`, data)
    const blob = await pushBlob(h, 'mnt/dst/other', data)
    assert.equal((await mount(blob)).statusCode, 201)
    assert.ok(await readable(blob))
  })

  it('a malformed mount digest → 400 DIGEST_INVALID', async (t) => {
    const { mount } = await setup(t)
    assertOciError(await mount('sha256:123'), 400, 'DIGEST_INVALID')
  })
})
