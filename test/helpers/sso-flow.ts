// The steps the SSO browser tests share once a person is signed in through a provider or a
// directory: make a token in the UI and use it with docker and git, approve `wharf login` in the
// same session and pull through the credential helper, and, once the provider or directory said
// no, see all of those refused.
import assert from 'node:assert/strict'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import path from 'node:path'
import type { Page } from 'playwright-core'
import type { Engine } from './engine.ts'
import type { GitClient } from './git.ts'
import type { TestImages } from './images.ts'
import { describeResult } from './run.ts'
import type { Wharf } from './wharf.ts'
import { wharfLogin } from './wharf-login.ts'

export interface SsoWorld {
  page: Page
  wharf: Wharf
  engine: Engine
  images: TestImages
  git: GitClient
  /** A scratch directory of the test file (the credential helper goes to its bin/). */
  work: string
  /** The credential helper's world (loginEnv): on PATH, with its own docker config and store. */
  helperEnv: Record<string, string>
}

/** The image both flows push, in the group the provider's or directory's group maps to. */
const imageOf = (w: SsoWorld) => `${w.wharf.host}/platform/service:v1`

/** From the signed-in page: the account shows the link to `linkedAs`, then a PAT with registry and repository scopes is made. */
export async function createTokenInUi(w: SsoWorld, linkedAs: RegExp): Promise<string> {
  const { page } = w
  await page.getByRole('link', { name: 'Account' }).click()
  await page.getByRole('list', { name: 'Linked providers' }).getByText(linkedAs).waitFor()
  await page.getByRole('link', { name: 'Access tokens', exact: true }).click()
  await page.getByLabel('Token name').fill('workstation')
  for (const s of [/read_registry/, /write_registry/, /read_repository/, /write_repository/]) await page.getByLabel(s).check()
  await page.getByRole('button', { name: 'Create token' }).click()
  const token = (await page.locator('#new-token-value').innerText()).trim()
  assert.match(token, /^glpat-/)
  return token
}

/** `docker login` with the token as `user`, push an image, and push a new repository over git. */
export async function pushWithToken(w: SsoWorld, user: string, token: string): Promise<void> {
  const { engine, wharf, git } = w
  const login = await engine.docker(['login', '-u', user, '--password-stdin', wharf.host], { input: token, timeoutMs: 60_000 })
  assert.equal(login.code, 0, describeResult(login))
  assert.equal((await engine.docker(['load', '-i', w.images.dockerArchive])).code, 0)
  assert.equal((await engine.docker(['tag', w.images.dockerArchiveTag, imageOf(w)])).code, 0)
  const push = await engine.docker(['push', imageOf(w)], { timeoutMs: 120_000 })
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
    creds: { username: user, password: token },
  })
  assert.equal(gitPush.code, 0, describeResult(gitPush))
}

/** `wharf login` approved in the signed-in session; docker then pulls through the helper with no login of its own. */
export async function pullThroughHelper(w: SsoWorld, user: string): Promise<void> {
  const { page, wharf, engine, helperEnv } = w
  const cli = wharfLogin(wharf.url, path.join(w.work, 'bin'), helperEnv)
  await page.goto(await cli.complete)
  await page.getByRole('region', { name: 'Sign in a device?' }).waitFor()
  await page.getByRole('button', { name: 'Approve' }).click()
  await page.getByRole('heading', { name: 'Device signed in' }).waitFor()
  assert.equal(await cli.exited, 0, cli.output())
  assert.match(cli.output(), new RegExp(`Logged in to ${wharf.host.replace(/\./g, '\\.')} as ${user}`))
  const config = JSON.parse(await readFile(path.join(helperEnv.DOCKER_CONFIG!, 'config.json'), 'utf8')) as object
  assert.deepEqual(config, { credHelpers: { [wharf.host]: 'wharf' } })
  assert.equal((await engine.docker(['rmi', imageOf(w)])).code, 0)
  const pull = await engine.docker(['pull', imageOf(w)], { timeoutMs: 60_000, env: helperEnv })
  assert.equal(pull.code, 0, describeResult(pull))
}

/** Waits (≤ 30 s) for the sync to block `user`; then the token, the helper, git and the session are all refused. */
export async function expectBlockedEverywhere(w: SsoWorld, user: string, token: string): Promise<void> {
  const { page, wharf, engine, git } = w
  const deadline = Date.now() + 30_000
  while ((await wharf.api('GET', `/api/v4/users?username=${user}`)).json[0]?.state !== 'blocked') {
    assert.ok(Date.now() < deadline, `${user} was not blocked:\n${await wharf.logTail(30)}`)
    await new Promise((r) => setTimeout(r, 500))
  }
  assert.equal((await engine.docker(['rmi', imageOf(w)])).code, 0)
  const pull = await engine.docker(['pull', imageOf(w)], { timeoutMs: 60_000 })
  assert.notEqual(pull.code, 0, `pull after the block:\n${describeResult(pull)}`)
  const helperPull = await engine.docker(['pull', imageOf(w)], { timeoutMs: 60_000, env: w.helperEnv })
  assert.notEqual(helperPull.code, 0, `pull through the credential helper after the block:\n${describeResult(helperPull)}`)
  const clone = await git.git(['clone', `${wharf.url}/platform/service.git`, 'after-block'], { creds: { username: user, password: token } })
  assert.notEqual(clone.code, 0, `clone after the block:\n${describeResult(clone)}`)
  await page.reload()
  await page.getByRole('heading', { name: 'Sign in to Wharf' }).waitFor()
}
