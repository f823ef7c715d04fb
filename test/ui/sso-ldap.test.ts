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
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { launchBrowser, signIn } from '../helpers/browser.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'
import { loginEnv } from '../helpers/wharf-login.ts'
import { LDAP_ADMIN, LDAP_SUFFIX, startSlapd, type Slapd } from '../helpers/ldap.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { createTokenInUi, expectBlockedEverywhere, pullThroughHelper, pushWithToken, type SsoWorld } from '../helpers/sso-flow.ts'

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
const world = (): SsoWorld => ({ page, wharf, engine, images, git, work, helperEnv })

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
    token = await createTokenInUi(world(), /^Corp directory, linked/)
    await pushWithToken(world(), 'lena', token)
  })

  it('signs the credential helper in through the directory-signed-in session (wharf login) and pulls with it', async () => {
    await pullThroughHelper(world(), 'lena')
  })

  it('refuses pulls and git clones once the directory disables the user, and the page asks to sign in again', async () => {
    await slapd.modify(`dn: ${LENA}\nchangetype: modify\nadd: employeeType\nemployeeType: disabled\n`)
    await expectBlockedEverywhere(world(), 'lena', token)
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
