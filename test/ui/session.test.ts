// Web UI sessions over HTTP against a started server: cookie flags, CSRF on cookie-authenticated
// state-changing API calls, token-authenticated calls unaffected, sign-out, throttled sign-in.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf

before(async () => {
  wharf = await startWharf()
})
after(async () => {
  await wharf?.stop()
})

async function signIn(username = 'root', password = wharf.rootPassword): Promise<{ cookie: string; csrf: string; setCookie: string }> {
  const res = await fetch(`${wharf.url}/-/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  assert.equal(res.status, 201, await res.clone().text())
  const setCookie = res.headers.get('set-cookie') ?? ''
  const body = (await res.json()) as { csrf_token: string; user: { username: string } }
  assert.equal(body.user.username, username)
  return { cookie: setCookie.split(';')[0]!, csrf: body.csrf_token, setCookie }
}

describe('web sessions', () => {
  it('sets an HTTP-only SameSite=Strict cookie holding an opaque token, and GET /-/session names the user', async () => {
    const s = await signIn()
    assert.match(s.setCookie, /^wharf_session=wharf-ses-[A-Za-z0-9_-]+;/)
    assert.match(s.setCookie, /HttpOnly/)
    assert.match(s.setCookie, /SameSite=Strict/)
    const res = await fetch(`${wharf.url}/-/session`, { headers: { cookie: s.cookie } })
    assert.equal(res.status, 200)
    const body = (await res.json()) as { user: { username: string }; csrf_token: string }
    assert.equal(body.user.username, 'root')
    assert.equal(body.csrf_token, s.csrf)
    assert.equal((await fetch(`${wharf.url}/-/session`)).status, 401)
  })

  it('accepts the cookie on API reads; writes need the CSRF header; tokens need none', async () => {
    const s = await signIn()
    const user = await fetch(`${wharf.url}/api/v4/user`, { headers: { cookie: s.cookie } })
    assert.equal(user.status, 200)
    assert.equal(((await user.json()) as { username: string }).username, 'root')

    const body = JSON.stringify({ name: 'Csrf', path: 'csrf' })
    const noCsrf = await fetch(`${wharf.url}/api/v4/groups`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'content-type': 'application/json' },
      body,
    })
    assert.equal(noCsrf.status, 403)
    assert.match(((await noCsrf.json()) as { message: string }).message, /CSRF/)
    const wrong = await fetch(`${wharf.url}/api/v4/groups`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'content-type': 'application/json', 'x-csrf-token': 'nope' },
      body,
    })
    assert.equal(wrong.status, 403)
    const ok = await fetch(`${wharf.url}/api/v4/groups`, {
      method: 'POST',
      headers: { cookie: s.cookie, 'content-type': 'application/json', 'x-csrf-token': s.csrf },
      body,
    })
    assert.equal(ok.status, 201, await ok.clone().text())

    // A token-authenticated call ignores the cookie and needs no CSRF header.
    const r = await wharf.api('POST', '/api/v4/groups', { name: 'Tok', path: 'tok' })
    assert.equal(r.status, 201, r.describe)
  })

  it('signs out: the cookie stops working at once and is cleared', async () => {
    const s = await signIn()
    const refused = await fetch(`${wharf.url}/-/session`, { method: 'DELETE', headers: { cookie: s.cookie } })
    assert.equal(refused.status, 403, 'sign-out needs the CSRF token too')
    const out = await fetch(`${wharf.url}/-/session`, { method: 'DELETE', headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } })
    assert.equal(out.status, 204)
    assert.match(out.headers.get('set-cookie') ?? '', /wharf_session=;.*Max-Age=0/)
    assert.equal((await fetch(`${wharf.url}/-/session`, { headers: { cookie: s.cookie } })).status, 401)
    assert.equal((await fetch(`${wharf.url}/api/v4/user`, { headers: { cookie: s.cookie } })).status, 401)
  })

  it('refuses bad passwords with the API message, tokens as passwords, and cross-origin sign-in', async () => {
    const bad = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password: 'wrong-password' }),
    })
    assert.equal(bad.status, 401)
    assert.match(((await bad.json()) as { message: string }).message, /invalid username or password/)

    const pat = await wharf.api('POST', '/api/v4/user/personal_access_tokens', { name: 'ui', scopes: ['api'] })
    assert.equal(pat.status, 201, pat.describe)
    const withToken = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: 'root', password: pat.json.token }),
    })
    assert.equal(withToken.status, 401)

    const cross = await fetch(`${wharf.url}/-/session`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', origin: 'https://evil.example' },
      body: JSON.stringify({ username: 'root', password: wharf.rootPassword }),
    })
    assert.equal(cross.status, 403)
  })

  it('serves the app shell at / and under /-/ with a strict CSP, and its assets', async () => {
    for (const p of ['/', '/-/projects/1/registry']) {
      const res = await fetch(`${wharf.url}${p}`)
      assert.equal(res.status, 200)
      assert.match(res.headers.get('content-type') ?? '', /text\/html/)
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/)
      assert.match(await res.text(), /<main id="main"/)
    }
    const js = await fetch(`${wharf.url}/-/static/app.js`)
    assert.equal(js.status, 200)
    assert.match(js.headers.get('content-type') ?? '', /javascript/)
    assert.equal((await fetch(`${wharf.url}/-/static/nope.js`)).status, 404)
    // The registry and git routes are untouched.
    assert.equal((await fetch(`${wharf.url}/v2/`)).status, 401)
  })
})
