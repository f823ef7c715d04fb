import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { Type } from '@sinclair/typebox'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { addFormParser } from '../api/form.ts'
import { apiErrorHandler } from '../api/problem.ts'
import { Body } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { readCookie, SESSION_COOKIE, type Sessions } from './sessions.ts'
import { shellHtml } from './shell.ts'
import { PAGES } from './static/pages.js'

export interface WebOptions {
  sessions: Sessions
  publicUrl: string
}

const STATIC_DIR = path.join(import.meta.dirname, 'static')
const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
}
/** The app talks only to this origin: no CDN, no inline script, no framing. */
const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

const SignInBody = Body({
  username: Type.String({ minLength: 1, maxLength: 255 }),
  password: Type.String({ minLength: 1, maxLength: 1024 }),
})

interface Asset {
  body: Buffer
  type: string
  etag: string
}

/** Reads the UI's files once at start-up: they are small, and a running server serves one version. */
function loadAssets(): Map<string, Asset> {
  const assets = new Map<string, Asset>()
  for (const name of readdirSync(STATIC_DIR)) {
    const type = CONTENT_TYPES[path.extname(name)]
    if (!type) continue
    const body = readFileSync(path.join(STATIC_DIR, name))
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 16)}"` })
  }
  return assets
}

/**
 * The web UI: a single-page app (plain ES modules from ./static) served at `/` and under `/-/`,
 * which calls only the public REST API; plus the session endpoints that sign a browser in and out.
 */
export async function webRoutes(app: TypedApp, opts: WebOptions): Promise<void> {
  const { sessions } = opts
  const secure = opts.publicUrl.startsWith('https:')
  const assets = loadAssets()
  const version = createHash('sha256')
    .update([...assets.values()].map((a) => a.etag).join())
    .digest('base64url')
    .slice(0, 10)
  const shell = shellHtml(version)

  app.setErrorHandler(apiErrorHandler)
  addFormParser(app)

  const cookie = (value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`

  /** Login CSRF: a browser's sign-in form must come from this origin (clients without Origin are not browsers posting cross-site). */
  const checkOrigin = (req: FastifyRequest) => {
    const origin = req.headers.origin
    if (!origin) return
    let host: string
    try {
      host = new URL(origin).host
    } catch {
      host = ''
    }
    if (host !== req.headers.host && origin !== new URL(opts.publicUrl).origin)
      throw new WharfError('FORBIDDEN', 'cross-origin sign-in refused', {})
  }

  const sendShell = (_req: FastifyRequest, reply: FastifyReply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('Content-Security-Policy', CSP)
      .header('X-Content-Type-Options', 'nosniff')
      .header('Referrer-Policy', 'same-origin')
      .header('Cache-Control', 'no-cache')
      .send(shell)

  app.get('/', sendShell)
  // Every app page lives under /-/ so no UI path collides with /<namespace>/<project>.git or /v2.
  // Only the app's own pages get its HTML: any other path there is a 404, never a "healthy" 200.
  const pages = Object.values(PAGES)
  app.get('/-/*', async (req, reply) => {
    const path = req.url.split('?', 1)[0]!
    if (!pages.some((re) => re.test(path))) throw new WharfError('NOT_FOUND', `no page at ${path.slice(0, 200)}`, {})
    return sendShell(req, reply)
  })

  app.get('/-/static/:name', { schema: { params: Type.Object({ name: Type.String() }) } }, async (req, reply) => {
    const asset = assets.get(req.params.name)
    if (!asset) return reply.code(404).type('text/plain').send('not found')
    reply.header('ETag', asset.etag).header('Cache-Control', 'no-cache').header('X-Content-Type-Options', 'nosniff')
    if (req.headers['if-none-match'] === asset.etag) return reply.code(304).send()
    return reply.type(asset.type).send(asset.body)
  })

  // Who is signed in, and the CSRF token the app sends as X-CSRF-Token on state-changing API calls.
  app.get('/-/session', async (req, reply) => {
    const session = await sessions.fromRequest(req)
    reply.header('Cache-Control', 'no-store')
    if (!session) throw new WharfError('UNAUTHORIZED', 'not signed in', {})
    return {
      user: { id: session.principal.userId, username: session.principal.username, is_admin: session.principal.isAdmin },
      csrf_token: session.csrfToken,
    }
  })

  // Sign in (JSON or form): Credentials.authenticate throttles and audits.
  app.post('/-/session', { schema: { body: SignInBody } }, async (req, reply) => {
    checkOrigin(req)
    const body = req.body
    const s = await sessions.signIn(body.username, body.password, req.ip, req.headers['user-agent'])
    reply.header('Set-Cookie', cookie(s.token, s.maxAge)).header('Cache-Control', 'no-store')
    if (String(req.headers['content-type'] ?? '').startsWith('application/x-www-form-urlencoded')) return reply.redirect('/', 303)
    return reply
      .code(201)
      .send({ user: { id: s.principal.userId, username: s.principal.username, is_admin: s.principal.isAdmin }, csrf_token: s.csrfToken })
  })

  // Sign out: needs the CSRF token too, so another site cannot sign the user out.
  app.delete('/-/session', async (req, reply) => {
    const token = readCookie(req.headers.cookie, SESSION_COOKIE)
    if (token) {
      const session = await sessions.resolve(token)
      if (session && req.headers['x-csrf-token'] !== session.csrfToken)
        throw new WharfError('FORBIDDEN', 'missing or invalid CSRF token', {})
      await sessions.signOut(token, req.ip)
    }
    return reply.header('Set-Cookie', cookie('', 0)).code(204).send()
  })
}
