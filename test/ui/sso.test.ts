// Signing in through an OpenID provider in Debian's Chromium: the sign-in page's button, the
// provider's own form (the npm oidc-provider as its own process on loopback), back in Wharf with
// the role the provider's groups map to; a personal access token made in the UI logs docker in and
// pushes (real engine); `wharf login` (the device flow) approved in that SSO session signs the
// credential helper in; the provider blocks the user and the next sync refuses their pulls (token
// and helper) and git clones. The sign-in page words each failure for the user.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser } from '../helpers/browser.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { loginEnv } from '../helpers/wharf-login.ts'
import { startIdp, type Idp } from '../helpers/oidc.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { createTokenInUi, expectBlockedEverywhere, pullThroughHelper, pushWithToken, type SsoWorld } from '../helpers/sso-flow.ts'

let wharf: Wharf
let idp: Idp
let engine: Engine
let images: TestImages
let git: GitClient
let browser: Browser
let page: Page
let token = ''
let work: string
/** A user's world with the credential helper and no docker login (the engine's own config keeps the PAT login). */
let helperEnv: Record<string, string>
const world = (): SsoWorld => ({ page, wharf, engine, images, git, work, helperEnv })

before(async () => {
  const port = await freePort()
  idp = await startIdp({
    accounts: [{ id: 'dana', password: 'dana-idp-pw', email: 'dana@corp.example', name: 'Dana Scully', groups: ['platform'] }],
    client: {
      client_id: 'wharf',
      client_secret: 'ui-client-secret',
      redirect_uris: [`http://127.0.0.1:${port}/-/auth/oidc/corp/callback`],
    },
  })
  const providers = [
    {
      id: 'corp',
      label: 'Corp SSO',
      issuer: idp.issuer,
      clientId: 'wharf',
      clientSecret: 'ui-client-secret',
      scopes: ['openid', 'profile', 'email', 'groups'],
      groupsClaim: 'groups',
      groups: [{ from: 'platform', group: 'platform', role: 'maintainer' }],
    },
  ]
  images = await testImages()
  ;[wharf, engine, git] = await Promise.all([
    startWharf({ port, env: { WHARF_SSO_OIDC: JSON.stringify(providers), WHARF_SSO_SYNC_INTERVAL_SECONDS: '2' } }),
    startEngine(),
    gitClient(),
  ])
  const group = await wharf.api('POST', '/api/v4/groups', { name: 'platform', path: 'platform', visibility: 'private' })
  assert.equal(group.status, 201, group.describe)
  await wharf.createProject('platform/service')
  work = await mkdtemp(path.join(tmpdir(), 'wharf-ui-sso-'))
  helperEnv = loginEnv(path.join(work, 'home'), path.join(work, 'bin'), engine.env.DOCKER_HOST!)
  browser = await launchBrowser()
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  page.setDefaultTimeout(15_000)
})

after(async () => {
  await browser?.close()
  await Promise.all([wharf?.stop(), idp?.stop(), engine?.stop(), git?.dispose()])
  if (work) await rm(work, { recursive: true, force: true })
})

describe('SSO in the browser', { timeout: 240_000 }, () => {
  it('signs in with the provider’s button and lands in Wharf with the mapped group role', async () => {
    await page.goto(`${wharf.url}/-/groups/platform`)
    // Not signed in: the app shows the sign-in page, remembering where to return.
    await page.getByRole('link', { name: 'Sign in with Corp SSO' }).click()
    await page.waitForURL(new RegExp(`^${idp.issuer}/interaction/`))
    await page.getByLabel('IdP username').fill('dana')
    await page.getByLabel('IdP password').fill('dana-idp-pw')
    await page.getByRole('button', { name: 'Continue to Wharf' }).click()
    // Back where the sign-in started: the group page, where dana is a Maintainer through her provider group.
    await page.waitForURL(`${wharf.url}/-/groups/platform`)
    await page.getByText('dana', { exact: true }).first().waitFor()
    const row = page.locator('tr[data-member="dana"]')
    await row.waitFor()
    assert.equal(await row.getByLabel('Role of dana').inputValue(), '40')
  })

  it('creates a personal access token that logs docker in and pushes', async () => {
    token = await createTokenInUi(world(), /^Corp SSO, linked/)
    await pushWithToken(world(), 'dana', token)
  })

  it('signs the credential helper in through the SSO session (wharf login) and pulls with it', async () => {
    await pullThroughHelper(world(), 'dana')
  })

  it('refuses pulls and git clones once the provider blocked the user, and the page asks to sign in again', async () => {
    await idp.block('dana')
    await expectBlockedEverywhere(world(), 'dana', token)
  })

  it('shows the user why a sign-in failed', async () => {
    await page.goto(`${wharf.url}/-/auth/oidc/corp/callback?code=x&state=y`)
    await page
      .getByRole('alert')
      .getByText(/took too long or was started in another browser tab/)
      .waitFor()
  })
})
