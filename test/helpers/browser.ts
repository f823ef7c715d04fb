// Debian's Chromium through playwright-core (never a downloaded browser), as the UI tests use it.
import { chromium, type Browser, type Page } from 'playwright-core'
import type { Wharf } from './wharf.ts'

/** Launch flags for headless Chromium on these machines (no sandbox as root; no background traffic). */
export const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
}

export async function launchBrowser(): Promise<Browser> {
  return chromium.launch(CHROMIUM)
}

/** Signs in through the sign-in page and waits for the home page. */
export async function signIn(page: Page, wharf: Wharf, username = 'root', password = wharf.rootPassword): Promise<void> {
  await page.goto(`${wharf.url}/-/sign_in`)
  await page.getByLabel('Username').fill(username)
  await page.getByLabel('Password').fill(password)
  await page.getByRole('button', { name: 'Sign in' }).click()
  await page.getByRole('heading', { name: 'Your projects' }).waitFor()
}

/** A fresh browser with one 1280px-wide page, signed in as root. */
export async function signedInPage(wharf: Wharf): Promise<{ browser: Browser; page: Page }> {
  const browser = await launchBrowser()
  const page = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage()
  page.setDefaultTimeout(10_000)
  await signIn(page, wharf)
  return { browser, page }
}
