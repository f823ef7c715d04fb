// The test OpenID provider (test/fixtures/oidc-provider/server.js, the npm oidc-provider) as a child
// process on loopback, and a minimal browser (cookie jar + redirects) to walk its sign-in over HTTP.
import { spawn } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort, projectNode, repoRoot } from './wharf.ts'

export interface IdpAccount {
  id: string
  password: string
  email: string
  email_verified?: boolean
  name?: string
  groups?: string[]
}

export interface Idp {
  issuer: string
  port: number
  block(id: string): Promise<void>
  unblock(id: string): Promise<void>
  stop(): Promise<void>
}

/** Starts the provider with one confidential client whose redirect URIs are given. */
export async function startIdp(opts: {
  accounts: IdpAccount[]
  client: { client_id: string; client_secret: string; redirect_uris: string[] }
}): Promise<Idp> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-idp-'))
  const port = await freePort()
  const configFile = path.join(dir, 'idp.json')
  await writeFile(configFile, JSON.stringify({ port, clients: [opts.client], accounts: opts.accounts }))
  const child = spawn(projectNode, [path.join(repoRoot, 'test', 'fixtures', 'oidc-provider', 'server.js'), configFile], {
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()))
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`the test OIDC provider did not start: ${stderr}`)), 20_000)
    child.stdout.on('data', (c: Buffer) => {
      if (c.toString().includes('listening')) {
        clearTimeout(t)
        resolve()
      }
    })
    child.once('exit', (code) => reject(new Error(`the test OIDC provider exited (${code}): ${stderr}`)))
  })
  const issuer = `http://127.0.0.1:${port}`
  const control = async (what: string, id: string) => {
    const r = await fetch(`${issuer}/-test/${what}/${encodeURIComponent(id)}`, { method: 'POST' })
    if (r.status !== 204) throw new Error(`${what} ${id}: ${r.status}`)
  }
  return {
    issuer,
    port,
    block: (id) => control('block', id),
    unblock: (id) => control('unblock', id),
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM')
        await new Promise((r) => child.once('exit', r))
      }
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** A browser reduced to what a sign-in needs: cookies per host:port and following redirects. */
export class MiniBrowser {
  private readonly jar = new Map<string, Map<string, string>>()

  cookie(origin: string, name: string): string | undefined {
    return this.jar.get(new URL(origin).host)?.get(name)
  }

  private store(url: URL, res: Response): void {
    for (const line of res.headers.getSetCookie()) {
      const [pair, ...attrs] = line.split(';')
      const i = pair!.indexOf('=')
      const name = pair!.slice(0, i).trim()
      const value = pair!.slice(i + 1).trim()
      const cookies = this.jar.get(url.host) ?? new Map<string, string>()
      this.jar.set(url.host, cookies)
      if (attrs.some((a) => /^\s*max-age=0\s*$/i.test(a)) || value === '') cookies.delete(name)
      else cookies.set(name, value)
    }
  }

  /** One request with this browser's cookies for the host (path scoping is left out: every test cookie is meant for its URL). */
  async request(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<Response> {
    const u = new URL(url)
    const cookies = this.jar.get(u.host)
    const headers: Record<string, string> = {}
    if (cookies?.size) headers.cookie = [...cookies].map(([k, v]) => `${k}=${v}`).join('; ')
    let body: string | undefined
    if (init.form) {
      headers['content-type'] = 'application/x-www-form-urlencoded'
      body = new URLSearchParams(init.form).toString()
    }
    const res = await fetch(u, { method: init.method ?? 'GET', headers, body, redirect: 'manual' })
    this.store(u, res)
    return res
  }

  /** Follows redirects from `url`; returns the last response and its URL. */
  async follow(url: string, init: { method?: string; form?: Record<string, string> } = {}): Promise<{ res: Response; url: string }> {
    let res = await this.request(url, init)
    let at = url
    for (let hops = 0; hops < 20 && res.status >= 300 && res.status < 400; hops++) {
      await res.arrayBuffer()
      at = new URL(res.headers.get('location')!, at).href
      res = await this.request(at)
    }
    return { res, url: at }
  }

  /** Signs in to Wharf with provider `provider` as the IdP account: Wharf's button, the IdP's form, back to Wharf. */
  async signInWith(wharfUrl: string, provider: string, username: string, password: string): Promise<{ res: Response; url: string }> {
    const page = await this.follow(`${wharfUrl}/-/auth/oidc/${provider}`)
    if (!page.url.includes('/interaction/')) return page
    const html = await page.res.text()
    const action = /action="([^"]+)"/.exec(html)?.[1]
    if (!action) throw new Error(`no sign-in form at ${page.url}: ${html.slice(0, 500)}`)
    return this.follow(new URL(action.replaceAll('&#47;', '/'), page.url).href, { method: 'POST', form: { username, password } })
  }
}
