// Signing in with an LDAP directory password in Debian's Chromium: the sign-in page's form against
// a throwaway slapd that requires TLS (Wharf reaches it through StartTLS, verified with the test
// CA), back on the page that asked with the role the user's directory group maps to; a personal
// access token made in the UI logs docker in and pushes (real engine), and pushes over git; `wharf
// login` (the device flow) is approved in that directory-signed-in session and docker pulls through
// the credential helper; the directory then disables the user (an attribute the user filter
// excludes) and the next sync refuses their pulls (token and helper) and git clones. A second directory whose certificate Wharf cannot trust
// shows the user a clear message on the sign-in page, and the administrator the reason.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { launchBrowser, signIn } from '../helpers/browser.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { loginEnv, wharfLogin } from '../helpers/wharf-login.ts'
import { LDAP_ADMIN, LDAP_SUFFIX, startSlapd, type Slapd } from '../helpers/ldap.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { describeResult } from '../helpers/run.ts'

let wharf: Wharf
let slapd: Slapd
let engine: Engine
let images: TestImages
let git: GitClient
let browser: Browser
let page: Page
let token = ''
let work: string
/** The credential helper's world: on PATH, with its own docker config and store (the engine's config keeps the PAT login). */
let helperEnv: Record<string, string>

const LENA = `uid=lena,ou=people,${LDAP_SUFFIX}`
const SEED = `dn: ${LDAP_SUFFIX}
objectClass: dcObject
objectClass: organization
dc: corp
o: Corp

dn: ou=people,${LDAP_SUFFIX}
objectClass: organizationalUnit
ou: people

dn: ou=groups,${LDAP_SUFFIX}
objectClass: organizationalUnit
ou: groups

dn: ${LENA}
objectClass: inetOrgPerson
uid: lena
cn: Lena Marsh
sn: Marsh
mail: lena@corp.example
userPassword: lena-ldap-pw

dn: cn=platform-team,ou=groups,${LDAP_SUFFIX}
objectClass: groupOfNames
cn: platform-team
member: ${LENA}
`

before(async () => {
  slapd = await startSlapd(SEED)
  const dir = {
    bindDn: LDAP_ADMIN.dn,
    bindPassword: LDAP_ADMIN.password,
    baseDn: `ou=people,${LDAP_SUFFIX}`,
    // Disabled accounts stay in the directory, marked; they are not users for Wharf.
    userFilter: '(&(objectClass=inetOrgPerson)(!(employeeType=disabled)))',
    groupBaseDn: `ou=groups,${LDAP_SUFFIX}`,
    groups: [{ from: 'platform-team', group: 'platform', role: 'maintainer' }],
  }
  const otherCa = (await issueServerCertificate({ dir: path.join(slapd.caFile, '..', '..', 'other-ca'), names: ['127.0.0.1'] })).files
    .caCert
  images = await testImages()
  ;[wharf, engine, git] = await Promise.all([
    startWharf({
      port: await freePort(),
      env: {
        WHARF_SSO_LDAP: JSON.stringify([
          { id: 'corp', label: 'Corp directory', url: slapd.url, startTls: true, caFile: slapd.caFile, ...dir },
          { id: 'partner', label: 'Partner directory', url: slapd.url, startTls: true, caFile: otherCa, ...dir },
        ]),
        WHARF_SSO_SYNC_INTERVAL_SECONDS: '2',
        WHARF_AUTH_PASSWORD_SIGN_IN: 'false',
      },
    }),
    startEngine(),
    gitClient(),
  ])
  const group = await wharf.api('POST', '/api/v4/groups', { name: 'platform', path: 'platform', visibility: 'private' })
  assert.equal(group.status, 201, group.describe)
  await wharf.createProject('platform/service')
  work = await mkdtemp(path.join(tmpdir(), 'wharf-ui-ldap-'))
  helperEnv = loginEnv(path.join(work, 'home'), path.join(work, 'bin'), engine.env.DOCKER_HOST!)
  browser = await launchBrowser()
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  page.setDefaultTimeout(15_000)
})

after(async () => {
  await browser?.close()
  await Promise.all([wharf?.stop(), slapd?.stop(), engine?.stop(), git?.dispose()])
  if (work) await rm(work, { recursive: true, force: true })
})

async function signInForm(username: string, password: string): Promise<void> {
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
}

describe('LDAP sign-in in the browser', { timeout: 240_000 }, () => {
  it('signs in with the directory password on the sign-in page and lands with the mapped group role', async () => {
    await page.goto(`${wharf.url}/-/groups/platform`)
    // Not signed in: the sign-in page, which names the directories and remembers where to return.
    await page.getByText('Sign in with your Corp directory or Partner directory username and password.').waitFor()
    await signInForm('lena', 'lena-ldap-pw')
    await page.waitForURL(`${wharf.url}/-/groups/platform`)
    const row = page.locator('tr[data-member="lena"]')
    await row.waitFor()
    assert.equal(await row.getByLabel('Role of lena').inputValue(), '40')
    const audit = await wharf.api('GET', '/api/v4/audit_events?actor=lena&action=sso.sign_in')
    assert.equal((audit.json as Array<{ details: { provider: string } }>)[0]?.details.provider, 'corp')
  })

  it('creates a personal access token that logs docker in and pushes, and pushes over git', async () => {
    await page.getByRole('link', { name: 'Account' }).click()
    await page
      .getByRole('list', { name: 'Linked providers' })
      .getByText(/^Corp directory, linked/)
      .waitFor()
    await page.getByRole('link', { name: 'Access tokens', exact: true }).click()
    await page.getByLabel('Token name').fill('workstation')
    for (const s of [/read_registry/, /write_registry/, /read_repository/, /write_repository/]) await page.getByLabel(s).check()
    await page.getByRole('button', { name: 'Create token' }).click()
    token = (await page.locator('#new-token-value').innerText()).trim()
    assert.match(token, /^glpat-/)
    const login = await engine.docker(['login', '-u', 'lena', '--password-stdin', wharf.host], { input: token, timeoutMs: 60_000 })
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
      creds: { username: 'lena', password: token },
    })
    assert.equal(gitPush.code, 0, describeResult(gitPush))
  })

  it('signs the credential helper in through the directory-signed-in session (wharf login) and pulls with it', async () => {
    const cli = wharfLogin(wharf.url, path.join(work, 'bin'), helperEnv)
    await page.goto(await cli.complete)
    await page.getByRole('region', { name: 'Sign in a device?' }).waitFor()
    await page.getByRole('button', { name: 'Approve' }).click()
    await page.getByRole('heading', { name: 'Device signed in' }).waitFor()
    assert.equal(await cli.exited, 0, cli.output())
    assert.match(cli.output(), new RegExp(`Logged in to ${wharf.host.replace(/\./g, '\\.')} as lena`))
    // This docker config has no login of its own: the pull below goes through the helper.
    const config = JSON.parse(await readFile(path.join(helperEnv.DOCKER_CONFIG!, 'config.json'), 'utf8')) as object
    assert.deepEqual(config, { credHelpers: { [wharf.host]: 'wharf' } })
    const tag = `${wharf.host}/platform/service:v1`
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 60_000, env: helperEnv })
    assert.equal(pull.code, 0, describeResult(pull))
  })

  it('refuses pulls and git clones once the directory disables the user, and the page asks to sign in again', async () => {
    await slapd.modify(`dn: ${LENA}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n`)
    const deadline = Date.now() + 30_000
    while ((await wharf.api('GET', '/api/v4/users?username=lena')).json[0]?.state !== 'blocked') {
      assert.ok(Date.now() < deadline, `lena was not blocked:\n${await wharf.logTail(30)}`)
      await new Promise((r) => setTimeout(r, 500))
    }
    const tag = `${wharf.host}/platform/service:v1`
    assert.equal((await engine.docker(['rmi', tag])).code, 0)
    const pull = await engine.docker(['pull', tag], { timeoutMs: 60_000 })
    assert.notEqual(pull.code, 0, `pull after the block:\n${describeResult(pull)}`)
    const helperPull = await engine.docker(['pull', tag], { timeoutMs: 60_000, env: helperEnv })
    assert.notEqual(helperPull.code, 0, `pull through the credential helper after the block:\n${describeResult(helperPull)}`)
    const clone = await git.git(['clone', `${wharf.url}/platform/service.git`, 'after-block'], {
      creds: { username: 'lena', password: token },
    })
    assert.notEqual(clone.code, 0, `clone after the block:\n${describeResult(clone)}`)
    await page.reload()
    await page.getByRole('heading', { name: 'Sign in to Wharf' }).waitFor()
  })

  it('tells the user a directory cannot check their password, and the administrator why', async () => {
    // The Corp directory no longer lists lena; the Partner directory might, but Wharf cannot trust its certificate.
    await signInForm('lena', 'lena-ldap-pw')
    await page
      .getByRole('alert')
      .getByText(/Partner directory cannot check your password right now\. Try again later/)
      .waitFor()
    // Local passwords are off, but an administrator's still works (break glass) and sees the reason.
    await signIn(page, wharf)
    await page.goto(`${wharf.url}/-/admin/settings`)
    const row = page.getByRole('table', { name: 'Identity providers' }).getByRole('row', { name: /Partner directory/ })
    await row.getByText(/TLS certificate of ldap:\/\/127\.0\.0\.1:\d+ is not trusted .*set caFile to the CA that issued it/).waitFor()
    await page
      .getByRole('table', { name: 'Identity providers' })
      .getByRole('row', { name: /Corp directory/ })
      .getByText('working')
      .waitFor()
  })
})
