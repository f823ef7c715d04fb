// Single sign-on against a real OpenID provider (the npm oidc-provider, its own process on
// loopback): sign-in creates or links accounts and sets the mapped group role; SSO users, who have
// no password, use docker (real client and engine) and git with a personal access token; local
// passwords are disabled except for the administrator (break glass); a user blocked at the
// provider loses registry and git access at the next sync, tokens included; misconfigured and
// unreachable providers give the user a reason and the administrator the cause.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { MiniBrowser, startIdp, type Idp } from '../helpers/oidc.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { describeResult } from '../helpers/run.ts'

let wharf: Wharf
let idp: Idp
let engine: Engine
let images: TestImages
let git: GitClient
let alicePat = ''

const SECRET = 'wharf-client-secret-0123456789'

before(async () => {
  const port = await freePort()
  const wharfUrl = `http://127.0.0.1:${port}`
  idp = await startIdp({
    accounts: [
      { id: 'alice', password: 'alice-idp-pw', email: 'alice@corp.example', name: 'Alice Liddell', groups: ['wharf-devs'] },
      { id: 'bob', password: 'bob-idp-pw', email: 'bob@elsewhere.example' },
      { id: 'carol', password: 'carol-idp-pw', email: 'Carol@corp.example', groups: [] },
      { id: 'erin', password: 'erin-idp-pw', email: 'erin@corp.example' },
    ],
    client: {
      client_id: 'wharf',
      client_secret: SECRET,
      redirect_uris: ['corp', 'badsecret'].map((p) => `${wharfUrl}/-/auth/oidc/${p}/callback`),
    },
  })
  const common = { clientId: 'wharf', scopes: ['openid', 'profile', 'email', 'groups'] }
  const providers = [
    {
      id: 'corp',
      label: 'Corp SSO',
      issuer: idp.issuer,
      ...common,
      clientSecret: SECRET,
      groupsClaim: 'groups',
      groups: [{ from: 'wharf-devs', group: 'team', role: 'developer' }],
      allowedDomains: ['corp.example'],
      linkByVerifiedEmail: true,
    },
    { id: 'badsecret', label: 'Bad secret', issuer: idp.issuer, ...common, clientSecret: 'not-the-secret' },
    { id: 'wrongissuer', label: 'Wrong issuer', issuer: `${idp.issuer}/alias`, ...common, clientSecret: SECRET },
    { id: 'down', label: 'Down', issuer: `http://127.0.0.1:${await freePort()}`, ...common, clientSecret: SECRET },
  ]
  images = await testImages()
  ;[wharf, engine, git] = await Promise.all([
    startWharf({
      port,
      env: {
        WHARF_SSO_OIDC: JSON.stringify(providers),
        WHARF_SSO_SYNC_INTERVAL_SECONDS: '2',
        WHARF_AUTH_PASSWORD_SIGN_IN: 'false',
      },
    }),
    startEngine(),
    gitClient(),
  ])
  // root signs in with its password through the break-glass path (wharf.api uses the OAuth password grant).
  const team = await wharf.api('POST', '/api/v4/groups', { name: 'team', path: 'team', visibility: 'private' })
  assert.equal(team.status, 201, team.describe)
  await wharf.createProject('team/app')
  const carol = await wharf.api('POST', '/api/v4/users', {
    username: 'carol',
    name: 'Carol',
    email: 'carol@corp.example',
    password: 'carol-local-pw',
  })
  assert.equal(carol.status, 201, carol.describe)
})

after(async () => {
  await Promise.all([wharf?.stop(), idp?.stop(), engine?.stop(), git?.dispose()])
})

async function session(b: MiniBrowser): Promise<{ status: number; user?: { username: string; id: number }; csrf_token?: string }> {
  const r = await b.request(`${wharf.url}/-/session`)
  return r.status === 200 ? { status: 200, ...((await r.json()) as object) } : { status: r.status }
}

async function audit(action: string): Promise<Array<{ actor: string; details: Record<string, unknown> | null }>> {
  const r = await wharf.api('GET', `/api/v4/audit_events?action=${encodeURIComponent(action)}&per_page=100`)
  assert.equal(r.status, 200, r.describe)
  return r.json
}

function signInError(url: string): string | null {
  const u = new URL(url)
  assert.equal(u.pathname, '/-/sign_in', url)
  return u.searchParams.get('sso_error')
}

describe('OIDC sign-in', { timeout: 240_000 }, () => {
  it('offers a button per provider, and tells the sign-in page that passwords are for administrators only', async () => {
    const r = await fetch(`${wharf.url}/-/auth/providers`)
    assert.equal(r.status, 200)
    const body = (await r.json()) as { providers: Array<{ id: string; label: string; url: string }>; password_sign_in: boolean }
    assert.deepEqual(
      body.providers.map((p) => [p.id, p.label, p.url]),
      [
        ['corp', 'Corp SSO', '/-/auth/oidc/corp'],
        ['badsecret', 'Bad secret', '/-/auth/oidc/badsecret'],
        ['wrongissuer', 'Wrong issuer', '/-/auth/oidc/wrongissuer'],
        ['down', 'Down', '/-/auth/oidc/down'],
      ],
    )
    assert.deepEqual(body, { ...body, password_sign_in: false, password_break_glass: true })
  })

  it('starts with PKCE, state and nonce, and a state cookie for the callback only', async () => {
    const r = await fetch(`${wharf.url}/-/auth/oidc/corp?return_to=/-/user/tokens`, { redirect: 'manual' })
    assert.equal(r.status, 302)
    const to = new URL(r.headers.get('location')!)
    assert.equal(to.origin, idp.issuer)
    for (const p of ['state', 'nonce', 'code_challenge']) assert.ok(to.searchParams.get(p), p)
    assert.equal(to.searchParams.get('code_challenge_method'), 'S256')
    assert.equal(to.searchParams.get('redirect_uri'), `${wharf.url}/-/auth/oidc/corp/callback`)
    const cookie = r.headers.get('set-cookie') ?? ''
    assert.match(cookie, /^wharf_oidc=v1:[^;]+; Path=\/-\/auth\/oidc\/corp\/; HttpOnly; SameSite=Lax; Max-Age=600/)
    assert.ok(!cookie.includes(to.searchParams.get('state')!), 'the state is sealed, not readable in the cookie')
  })

  it('creates the account at the first sign-in, with the group role its provider groups map to', async () => {
    const b = new MiniBrowser()
    const done = await b.signInWith(wharf.url, 'corp', 'alice', 'alice-idp-pw')
    assert.equal(new URL(done.url).pathname, '/', done.url)
    const s = await session(b)
    assert.equal(s.user?.username, 'alice')
    const user = await wharf.api('GET', `/api/v4/users/${s.user!.id}`)
    assert.equal(user.json.name, 'Alice Liddell')
    assert.equal(user.json.email, 'alice@corp.example')
    const members = await wharf.api('GET', '/api/v4/groups/team/members')
    assert.deepEqual(
      (members.json as Array<{ username: string; access_level: number }>).filter((m) => m.username === 'alice').map((m) => m.access_level),
      [30],
    )
    assert.equal((await audit('sso.created')).filter((e) => e.actor === 'alice').length, 1)
    assert.ok((await audit('sso.sign_in')).some((e) => e.actor === 'alice' && e.details?.provider === 'corp'))

    // Signing in again finds the same account (no second one).
    const again = new MiniBrowser()
    await again.signInWith(wharf.url, 'corp', 'alice', 'alice-idp-pw')
    assert.equal((await session(again)).user?.id, s.user!.id)

    // alice has no password, so she makes a personal access token in her session for docker and git.
    const pat = await b.request(`${wharf.url}/api/v4/user/personal_access_tokens`, { method: 'POST' })
    assert.equal(pat.status, 403, 'a cookie-authenticated write needs the CSRF token')
    const made = await fetch(`${wharf.url}/api/v4/user/personal_access_tokens`, {
      method: 'POST',
      headers: {
        cookie: `wharf_session=${b.cookie(wharf.url, 'wharf_session')}`,
        'x-csrf-token': s.csrf_token!,
        'content-type': 'application/json',
      },
      body: JSON.stringify({ name: 'laptop', scopes: ['read_registry', 'write_registry', 'read_repository', 'write_repository'] }),
    })
    assert.equal(made.status, 201, await made.clone().text())
    alicePat = ((await made.json()) as { token: string }).token
  })

  it('lets the SSO user docker login with their username and the token, and push and pull', async () => {
    const login = await engine.docker(['login', '--username', 'alice', '--password-stdin', wharf.host], { input: alicePat })
    assert.equal(login.code, 0, describeResult(login))
    const load = await engine.docker(['load', '-i', images.dockerArchive])
    assert.equal(load.code, 0, describeResult(load))
    const tag = `${wharf.host}/team/app:sso`
    assert.equal((await engine.docker(['tag', images.dockerArchiveTag, tag])).code, 0)
    const push = await engine.docker(['push', tag], { timeoutMs: 120_000 })
    assert.equal(push.code, 0, `${describeResult(push)}\n${await wharf.logTail(30)}`)
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 120_000 })
    assert.equal(pull.code, 0, describeResult(pull))
  })

  it('lets the SSO user push and clone over git with the token', async () => {
    const creds = { username: 'alice', password: alicePat }
    const repo = path.join(git.work, 'src')
    await mkdir(repo)
    await writeFile(path.join(repo, 'README'), 'sso\n')
    for (const args of [
      ['init', '-b', 'main'],
      ['add', '.'],
      ['commit', '-m', 'first'],
    ]) {
      const r = await git.git(args, { cwd: repo })
      assert.equal(r.code, 0, describeResult(r))
    }
    const push = await git.git(['push', `${wharf.url}/team/app.git`, 'main'], { cwd: repo, creds })
    assert.equal(push.code, 0, describeResult(push))
    const clone = await git.git(['clone', `${wharf.url}/team/app.git`, 'clone1'], { creds })
    assert.equal(clone.code, 0, describeResult(clone))
  })

  it('refuses local passwords except the administrator’s, saying why', async () => {
    const carol = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'carol', password: 'carol-local-pw' }),
    })
    assert.equal(carol.status, 401)
    assert.match(((await carol.json()) as { message: string }).message, /password sign-in is disabled on this instance/)
    const token = await fetch(`${wharf.url}/jwt/auth?service=container_registry`, {
      headers: { authorization: `Basic ${Buffer.from('carol:carol-local-pw').toString('base64')}` },
    })
    assert.equal(token.status, 401)
    const root = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password: wharf.rootPassword }),
    })
    assert.equal(root.status, 201, 'break glass: the administrator keeps a local password')
  })

  it('links a first sign-in to the account with the same verified email', async () => {
    const carol = await wharf.api('GET', '/api/v4/users?username=carol')
    const b = new MiniBrowser()
    await b.signInWith(wharf.url, 'corp', 'carol', 'carol-idp-pw')
    assert.equal((await session(b)).user?.id, carol.json[0].id)
    assert.ok((await audit('sso.linked')).some((e) => e.actor === 'carol' && e.details?.how === 'verified email'))
  })

  it('links the provider to the signed-in account on request', async () => {
    const b = new MiniBrowser()
    const signIn = await b.request(`${wharf.url}/-/session`, { method: 'POST', form: { username: 'root', password: wharf.rootPassword } })
    assert.equal(signIn.status, 303)
    const page = await b.follow(`${wharf.url}/-/auth/oidc/corp?link=1&return_to=/-/user/account`)
    const action = /action="([^"]+)"/.exec(await page.res.text())![1]!
    const done = await b.follow(new URL(action, page.url).href, { method: 'POST', form: { username: 'erin', password: 'erin-idp-pw' } })
    assert.equal(new URL(done.url).pathname, '/-/user/account', done.url)
    assert.ok((await audit('sso.linked')).some((e) => e.actor === 'root' && e.details?.how === 'signed-in user'))
    const mine = (await (await b.request(`${wharf.url}/-/auth/identities`)).json()) as {
      identities: Array<{ provider: string }>
      linkable: Array<{ id: string }>
    }
    assert.deepEqual(
      mine.identities.map((i) => i.provider),
      ['corp'],
    )
    assert.ok(!mine.linkable.some((p) => p.id === 'corp'))
    assert.equal((await fetch(`${wharf.url}/-/auth/identities`)).status, 401)
    // From now on erin's provider account signs in as root (no account was made for her).
    const erin = new MiniBrowser()
    await erin.signInWith(wharf.url, 'corp', 'erin', 'erin-idp-pw')
    assert.equal((await session(erin)).user?.username, 'root')
    assert.equal((await wharf.api('GET', '/api/v4/users?username=erin')).json.length, 0)
  })

  it('refuses an email domain that is not allowed, with a reason for the user', async () => {
    const b = new MiniBrowser()
    const done = await b.signInWith(wharf.url, 'corp', 'bob', 'bob-idp-pw')
    assert.equal(signInError(done.url), 'not_allowed')
    assert.equal((await session(b)).status, 401)
    assert.ok((await audit('sso.failure')).some((e) => e.details?.reason === 'not_allowed'))
    assert.equal((await wharf.api('GET', '/api/v4/users?username=bob')).json.length, 0)
  })

  it('refuses a callback without the state cookie of this browser', async () => {
    const b = new MiniBrowser()
    const start = await b.request(`${wharf.url}/-/auth/oidc/corp`)
    const state = new URL(start.headers.get('location')!).searchParams.get('state')
    const other = new MiniBrowser()
    const done = await other.follow(`${wharf.url}/-/auth/oidc/corp/callback?code=forged&state=${state}`)
    assert.equal(signInError(done.url), 'expired')
  })

  it('reports a refused client secret, a wrong issuer and an unreachable provider: a reason to the user, the cause to the administrator', async () => {
    const bad = await new MiniBrowser().signInWith(wharf.url, 'badsecret', 'alice', 'alice-idp-pw')
    assert.equal(signInError(bad.url), 'misconfigured')
    assert.equal(signInError((await new MiniBrowser().follow(`${wharf.url}/-/auth/oidc/wrongissuer`)).url), 'misconfigured')
    assert.equal(signInError((await new MiniBrowser().follow(`${wharf.url}/-/auth/oidc/down`)).url), 'unreachable')
    // Every failure is audited: at the callback (badsecret), and when the sign-in could not even start.
    const failures = (await audit('sso.failure')).map((e) => `${e.details?.provider}:${e.details?.reason}`)
    for (const f of ['badsecret:misconfigured', 'wrongissuer:misconfigured', 'down:unreachable']) assert.ok(failures.includes(f), f)
    const status = await wharf.api('GET', '/api/v4/admin/sso')
    assert.equal(status.status, 200, status.describe)
    const by = Object.fromEntries((status.json.providers as Array<{ id: string; ok: boolean; error: string | null }>).map((p) => [p.id, p]))
    assert.equal(by.corp!.ok, true)
    assert.equal(by.badsecret!.ok, false)
    assert.match(by.badsecret!.error!, /refused Wharf's client credentials \(invalid_client\)/)
    assert.match(by.wrongissuer!.error!, /names another issuer/)
    assert.match(by.down!.error!, /cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/)
    assert.ok(!status.text.includes(SECRET) && !status.text.includes('not-the-secret'))
    const settings = await wharf.api('GET', '/api/v4/admin/settings')
    assert.ok(!settings.text.includes(SECRET), 'client secrets are masked in the settings')
    // The unusable providers were logged at start-up, and nothing was a 500.
    const log = await wharf.logTail(400)
    assert.match(log, /sso provider unusable/)
    assert.doesNotMatch(log, /"status":500/)
    assert.ok(!log.includes(SECRET), 'the client secret is never logged')
  })

  it('blocks a user the provider disabled at the next sync: registry, git, session and tokens refused', async () => {
    const b = new MiniBrowser()
    await b.signInWith(wharf.url, 'corp', 'alice', 'alice-idp-pw')
    assert.equal((await session(b)).status, 200)
    await idp.block('alice')
    const deadline = Date.now() + 30_000
    for (;;) {
      const u = await wharf.api('GET', '/api/v4/users?username=alice')
      if (u.json[0]?.state === 'blocked') break
      assert.ok(Date.now() < deadline, `alice was not blocked by the sync: ${u.describe}\n${await wharf.logTail(30)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
    assert.ok((await audit('sso.blocked')).some((e) => e.actor === 'alice'))
    assert.equal((await session(b)).status, 401, 'the session ended')
    const tag = `${wharf.host}/team/app:sso`
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 60_000 })
    assert.notEqual(pull.code, 0, 'docker pull with the stored PAT must fail')
    const login = await engine.docker(['login', '--username', 'alice', '--password-stdin', wharf.host], { input: alicePat })
    assert.notEqual(login.code, 0, describeResult(login))
    const clone = await git.git(['clone', `${wharf.url}/team/app.git`, 'clone2'], { creds: { username: 'alice', password: alicePat } })
    assert.notEqual(clone.code, 0, 'git clone with the PAT must fail')
    // Signing in again is refused by the provider itself.
    const again = await new MiniBrowser().signInWith(wharf.url, 'corp', 'alice', 'alice-idp-pw')
    assert.equal(new URL(again.url).origin, idp.issuer, 'the provider refuses the sign-in')
  })

  it('lifts the block when the provider lets the user in again, but revoked tokens stay revoked', async () => {
    await idp.unblock('alice')
    const b = new MiniBrowser()
    const done = await b.signInWith(wharf.url, 'corp', 'alice', 'alice-idp-pw')
    assert.equal(new URL(done.url).pathname, '/', done.url)
    assert.equal((await session(b)).user?.username, 'alice')
    assert.ok((await audit('sso.unblocked')).some((e) => e.actor === 'alice'))
    const token = await fetch(`${wharf.url}/jwt/auth?service=container_registry`, {
      headers: { authorization: `Basic ${Buffer.from(`alice:${alicePat}`).toString('base64')}` },
    })
    assert.equal(token.status, 401)
  })
})
