// `wharf login`'s device flow end to end in Debian's Chromium (playwright-core) against a started
// Wharf: the CLI prints a URL and a code; a person who is not signed in opens the URL, signs in,
// enters the code, sees which client, device and scopes ask, and approves; the CLI completes and
// the login appears under Access tokens as "signed in on <host>", where revoking it ends it. A
// second sign-in is denied from the link with the code, and the CLI says so.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { hostname, tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { launchBrowser } from '../helpers/browser.ts'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let browser: Browser
let page: Page
let work: string

interface Cli {
  output(): string
  /** Resolves with the verification URI, the complete one and the code once printed. */
  prompt: Promise<{ uri: string; complete: string; code: string }>
  exited: Promise<number>
}

function wharfLogin(): Cli {
  const home = path.join(work, 'home')
  const child = spawn(
    projectNode,
    [path.join(repoRoot, 'src', 'cli', 'main.ts'), 'login', wharf.url, '--bin-dir', path.join(work, 'bin'), '--store', 'file'],
    {
      env: {
        ...process.env,
        HOME: home,
        XDG_CONFIG_HOME: path.join(home, '.config'),
        DOCKER_CONFIG: path.join(home, '.docker'),
        REGISTRY_AUTH_FILE: path.join(home, 'auth.json'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  let onPrompt: (v: { uri: string; complete: string; code: string }) => void = () => {}
  const prompt = new Promise<{ uri: string; complete: string; code: string }>((resolve) => {
    onPrompt = resolve
  })
  const take = (c: Buffer) => {
    out += c.toString()
    const m = /open (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})\n\s+\(or open (\S+)\)/.exec(out)
    if (m) onPrompt({ uri: m[1]!, code: m[2]!, complete: m[3]! })
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  return { output: () => out, prompt, exited: new Promise((resolve) => child.on('close', (code) => resolve(code ?? -1))) }
}

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'wharf-ui-device-'))
  wharf = await startWharf()
  browser = await launchBrowser()
  page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  page.setDefaultTimeout(15_000)
})

after(async () => {
  await browser?.close()
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('wharf login in the browser', { timeout: 180_000 }, () => {
  it('prints a code; a person signs in, enters it, sees the client and scopes, approves; the CLI completes', async () => {
    const cli = wharfLogin()
    const { uri, code } = await cli.prompt
    assert.equal(uri, `${wharf.url}/-/device`)
    await page.goto(uri)
    // Not signed in yet: the sign-in page, then back to the device page.
    await page.getByLabel('Username').fill('root')
    await page.getByLabel('Password').fill(wharf.rootPassword)
    await page.getByRole('button', { name: 'Sign in' }).click()
    await page.getByRole('heading', { name: 'Sign in a device' }).waitFor()
    await page.getByLabel('Code').fill(code.toLowerCase())
    await page.getByRole('button', { name: 'Continue' }).click()
    const panel = page.getByRole('region', { name: 'Sign in a device?' })
    await panel.waitFor()
    const text = await panel.innerText()
    assert.match(text, /Wharf CLI \(wharf login\)/)
    assert.ok(text.includes(hostname()), text)
    assert.ok(text.includes(code), text)
    assert.deepEqual(await page.getByRole('list', { name: 'Requested scopes' }).getByRole('listitem').allInnerTexts(), [
      'read_registry — pull images',
      'write_registry — push images',
    ])
    await page.getByRole('button', { name: 'Approve' }).click()
    await page.getByRole('heading', { name: 'Device signed in' }).waitFor()
    assert.equal(await cli.exited, 0, cli.output())
    assert.match(cli.output(), new RegExp(`Logged in to ${wharf.host.replace(/\./g, '\\.')} as root`))
    const config = JSON.parse(await readFile(path.join(work, 'home', '.docker', 'config.json'), 'utf8')) as { credHelpers: object }
    assert.deepEqual(config.credHelpers, { [wharf.host]: 'wharf' })
  })

  it('lists the login under Access tokens as "signed in on <host>" and revokes it there', async () => {
    await page.goto(`${wharf.url}/-/user/tokens`)
    const table = page.getByRole('table', { name: 'Signed-in devices' })
    await table.getByRole('cell', { name: `signed in on ${hostname()}`, exact: true }).waitFor()
    await page.getByRole('button', { name: `Revoke signed in on ${hostname()}` }).click()
    await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click()
    await page.getByText('No device is signed in.').waitFor()
    const logins = await wharf.api('GET', '/api/v4/user/device_logins')
    assert.deepEqual(logins.json, [])
  })

  it('a sign-in denied from the link with the code: the CLI reports it', async () => {
    const cli = wharfLogin()
    const { complete } = await cli.prompt
    await page.goto(complete)
    await page.getByRole('region', { name: 'Sign in a device?' }).waitFor()
    await page.getByRole('button', { name: 'Deny' }).click()
    await page.getByRole('heading', { name: 'Sign-in denied' }).waitFor()
    assert.equal(await cli.exited, 1, cli.output())
    assert.match(cli.output(), /the sign-in was denied/)
  })
})
