// Signing in through an OpenID provider in Debian's Chromium: the sign-in page's button, the
// provider's own form (the npm oidc-provider as its own process on loopback), back in Wharf with
// the role the provider's groups map to; a personal access token made in the UI logs docker in and
// pushes (real engine); `wharf login` (the device flow) approved in that SSO session signs the
// credential helper in; the provider blocks the user and the next sync refuses their pulls (token
// and helper) and git clones. The sign-in page words each failure for the user.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser } from '../helpers/browser.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { loginEnv, wharfLogin } from '../helpers/wharf-login.ts'
import { startIdp, type Idp } from '../helpers/oidc.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { describeResult } from '../helpers/run.ts'

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
    await page.getByRole('link', { name: 'Account' }).click()
    await page
      .getByRole('list', { name: 'Linked providers' })
      .getByText(/^Corp SSO, linked/)
      .waitFor()
    await page.getByRole('link', { name: 'Access tokens', exact: true }).click()
    await page.getByLabel('Token name').fill('workstation')
    for (const s of [/read_registry/, /write_registry/, /read_repository/, /write_repository/]) await page.getByLabel(s).check()
    await page.getByRole('button', { name: 'Create token' }).click()
    token = (await page.locator('#new-token-value').innerText()).trim()
    assert.match(token, /^glpat-/)
    const login = await engine.docker(['login', '-u', 'dana', '--password-stdin', wharf.host], { input: token, timeoutMs: 60_000 })
    assert.equal(login.code, 0, describeResult(login))
    assert.equal((await engine.docker(['load', '-i', images.dockerArchive])).code, 0)
    const tag = `${wharf.host}/platform/service:v1`
    assert.equal((await engine.docker(['tag', images.dockerArchiveTag, tag])).code, 0)
    const push = await engine.docker(['push', tag], { timeoutMs: 120_000 })
    assert.equal(push.code, 0, describeResult(push))
    const repo = path.join(git.work, 'service')
    await mkdir(repo)
    await writeFile(path.join(repo, 'README'), 'service\n')
    for (const args of [
      ['init', '-b', 'main'],
      ['add', '.'],
      ['commit', '-m', 'first'],
    ])
      assert.equal((await git.git(args, { cwd: repo })).code, 0)
    const gitPush = await git.git(['push', `${wharf.url}/platform/service.git`, 'main'], {
      cwd: repo,
      creds: { username: 'dana', password: token },
    })
    assert.equal(gitPush.code, 0, describeResult(gitPush))
  })

  it('signs the credential helper in through the SSO session (wharf login) and pulls with it', async () => {
    const cli = wharfLogin(wharf.url, path.join(work, 'bin'), helperEnv)
    await page.goto(await cli.complete)
    await page.getByRole('region', { name: 'Sign in a device?' }).waitFor()
    await page.getByRole('button', { name: 'Approve' }).click()
    await page.getByRole('heading', { name: 'Device signed in' }).waitFor()
    assert.equal(await cli.exited, 0, cli.output())
    assert.match(cli.output(), new RegExp(`Logged in to ${wharf.host.replace(/\./g, '\\.')} as dana`))
    // This docker config has no login of its own: the pull below goes through the helper.
    const config = JSON.parse(await readFile(path.join(helperEnv.DOCKER_CONFIG!, 'config.json'), 'utf8')) as object
    assert.deepEqual(config, { credHelpers: { [wharf.host]: 'wharf' } })
    const tag = `${wharf.host}/platform/service:v1`
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 60_000, env: helperEnv })
    assert.equal(pull.code, 0, describeResult(pull))
  })

  it('refuses pulls and git clones once the provider blocked the user, and the page asks to sign in again', async () => {
    await idp.block('dana')
    const deadline = Date.now() + 30_000
    while ((await wharf.api('GET', '/api/v4/users?username=dana')).json[0]?.state !== 'blocked') {
      assert.ok(Date.now() < deadline, `dana was not blocked:\n${await wharf.logTail(30)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
    const tag = `${wharf.host}/platform/service:v1`
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 60_000 })
    assert.notEqual(pull.code, 0, `pull after the block:\n${describeResult(pull)}`)
    const helperPull = await engine.docker(['pull', tag], { timeoutMs: 60_000, env: helperEnv })
    assert.notEqual(helperPull.code, 0, `pull through the credential helper after the block:\n${describeResult(helperPull)}`)
    const clone = await git.git(['clone', `${wharf.url}/platform/service.git`, 'after-block'], {
      creds: { username: 'dana', password: token },
    })
    assert.notEqual(clone.code, 0, `clone after the block:\n${describeResult(clone)}`)
    await page.reload()
    await page.getByRole('heading', { name: 'Sign in to Wharf' }).waitFor()
  })

  it('shows the user why a sign-in failed', async () => {
    await page.goto(`${wharf.url}/-/auth/oidc/corp/callback?code=x&state=y`)
    await page
      .getByRole('alert')
      .getByText(/took too long or was started in another browser tab/)
      .waitFor()
  })
})
