import { Type } from '@sinclair/typebox'
import type { FastifyReply } from 'fastify'
import { apiErrorHandler } from '../api/problem.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import { SIGN_IN_TTL_SECONDS, type Sso, ssoReason } from '../sso/index.ts'
import { readCookie, SESSION_COOKIE, type Sessions } from './sessions.ts'

export interface SsoRouteOptions {
  sso: Sso
  sessions: Sessions
  publicUrl: string
  /** Whether the sign-in page shows the password form (auth.passwordSignIn), and for administrators only (break glass). */
  passwords: { signIn: boolean; breakGlass: boolean }
}

/** Carries the sealed state, nonce and PKCE verifier from the start of a sign-in to its callback. */
const STATE_COOKIE = 'wharf_oidc'

const ProviderParams = Type.Object({ provider: Type.String({ maxLength: 64 }) })
const StartQuery = Type.Object({
  return_to: Type.Optional(Type.String({ maxLength: 2000 })),
  link: Type.Optional(Type.String({ maxLength: 8 })),
})

/**
 * Browser sign-in through an OpenID Connect provider: `/-/auth/oidc/<id>` sends the browser to the
 * provider with a state cookie binding the sign-in to it; `/-/auth/oidc/<id>/callback` completes it
 * and starts a session. Failures come back to the sign-in page with a reason the page words for the
 * user (never the provider's raw error, which the audit log and the admin page keep).
 */
export async function ssoWebRoutes(app: TypedApp, opts: SsoRouteOptions): Promise<void> {
  const { sso, sessions } = opts
  const secure = opts.publicUrl.startsWith('https:') ? '; Secure' : ''
  app.setErrorHandler(apiErrorHandler)

  // SameSite=Lax, unlike the session cookie: the provider's redirect back is a cross-site navigation, and it must carry this cookie.
  const stateCookie = (provider: string, value: string, maxAge: number) =>
    `${STATE_COOKIE}=${value}; Path=/-/auth/oidc/${provider}/; HttpOnly; SameSite=Lax; Max-Age=${maxAge}${secure}`
  const sessionCookie = (value: string, maxAge: number) =>
    `${SESSION_COOKIE}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure}`
  const failed = (reply: FastifyReply, provider: string, e: unknown, linking: boolean) => {
    const reason = ssoReason(e) ?? 'misconfigured'
    const page = linking ? '/-/user/account' : '/-/sign_in'
    return reply
      .header('Set-Cookie', stateCookie(provider, '', 0))
      .header('Cache-Control', 'no-store')
      .redirect(`${page}?sso_error=${reason}&provider=${encodeURIComponent(provider)}`, 303)
  }

  // What the sign-in page offers: a button per provider, and whether to show the password form.
  app.get('/-/auth/providers', async (_req, reply) => {
    reply.header('Cache-Control', 'no-store')
    return {
      providers: sso.providers().map((p) => ({ ...p, url: `/-/auth/oidc/${p.id}` })),
      // Directory (LDAP) accounts sign in on the password form.
      directories: sso.directories(),
      password_sign_in: opts.passwords.signIn,
      password_break_glass: !opts.passwords.signIn && opts.passwords.breakGlass,
    }
  })

  // The signed-in user's linked identities, and the providers they could link (the Account page).
  app.get('/-/auth/identities', async (req, reply) => {
    const session = await sessions.fromRequest(req)
    reply.header('Cache-Control', 'no-store')
    if (!session) throw new WharfError('UNAUTHORIZED', 'not signed in', {})
    const identities = await sso.identitiesOf(session.principal.userId)
    return {
      identities,
      linkable: sso
        .providers()
        .filter((p) => !identities.some((i) => i.provider === p.id))
        .map((p) => ({ ...p, url: `/-/auth/oidc/${p.id}?link=1&return_to=${encodeURIComponent('/-/user/account')}` })),
    }
  })

  app.get('/-/auth/oidc/:provider', { schema: { params: ProviderParams, querystring: StartQuery } }, async (req, reply) => {
    const { provider } = req.params
    const linking = req.query.link === '1'
    try {
      // Linking adds the identity to the account signed in in this browser.
      const session = linking ? await sessions.fromRequest(req) : undefined
      if (linking && !session) return reply.redirect(`/-/sign_in?return_to=${encodeURIComponent('/-/user/account')}`, 303)
      const started = await sso.begin(provider, {
        returnTo: req.query.return_to,
        linkUserId: session?.principal.userId ?? null,
        address: req.ip,
      })
      return reply
        .header('Set-Cookie', stateCookie(provider, started.cookie, SIGN_IN_TTL_SECONDS))
        .header('Cache-Control', 'no-store')
        .redirect(started.url, 302)
    } catch (e) {
      if (!ssoReason(e)) throw e
      req.log.warn({ provider, error: (e as Error).message }, 'sso sign-in could not start')
      return failed(reply, provider, e, linking)
    }
  })

  app.get('/-/auth/oidc/:provider/callback', { schema: { params: ProviderParams } }, async (req, reply) => {
    const { provider } = req.params
    const cookie = readCookie(req.headers.cookie, STATE_COOKIE)
    let done: Awaited<ReturnType<Sso['complete']>>
    try {
      done = await sso.complete(provider, new URL(req.url, opts.publicUrl), cookie, req.ip)
    } catch (e) {
      if (!ssoReason(e)) throw e
      req.log.warn({ provider, error: (e as Error).message }, 'sso sign-in failed')
      // A link attempt returns to the Account page; the state cookie is gone by then, so look at the session.
      return failed(reply, provider, e, (await sessions.fromRequest(req)) !== undefined)
    }
    const current = await sessions.fromRequest(req)
    reply.header('Cache-Control', 'no-store')
    if (current?.principal.userId === done.user.id)
      return reply.header('Set-Cookie', stateCookie(provider, '', 0)).redirect(done.returnTo, 303)
    const s = await sessions.startForUser(done.user.id, req.ip, req.headers['user-agent'], `sso:${provider}`)
    return reply.header('Set-Cookie', [stateCookie(provider, '', 0), sessionCookie(s.token, s.maxAge)]).redirect(done.returnTo, 303)
  })
}
