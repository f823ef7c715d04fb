// The first seed's web flow, end to end in Debian's Chromium (playwright-core) on a real runner: a new
// project → Add README → New file `Dockerfile` (`FROM` an image Wharf serves) → Set up CI → the
// Docker template → Commit changes → the pipeline runs on `wharf runner --executor docker` with a
// `docker:dind` service, and the image appears in the Registry tab.
//
// Nothing comes from the internet: `docker:cli` and `docker:dind` are the offline stand-ins of
// scripts/make-dind-images.sh on a stand-in Docker Hub behind Wharf's pull-through cache (the runner
// pulls through the mirror, as shipped); the base image is a busybox image pushed to Wharf first.
// The runner's configuration is README's docker-in-docker one (test/e2e/runner-dind.test.ts): the
// dind service gets capabilities instead of --privileged, which this sandbox refuses, and jobs share
// the host's network so the dind daemon reaches Wharf's registry on 127.0.0.1.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import type { Browser, Locator, Page } from 'playwright-core'
import { signedInPage } from '../helpers/browser.ts'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { dindImages, testImages } from '../helpers/images.ts'
import { getManifest, http, tarFiles } from '../helpers/registry.ts'
import { describeResult, run } from '../helpers/run.ts'
import { plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'

let engine: Engine
let wharf: Wharf
let hub: DockerHub
let runner: RunnerChild
let work: string
let browser: Browser
let page: Page

/** With `network_mode: host` the dind service listens on the host's port 2375: say so if it is taken. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`port ${port} is in use (${e.code}): the host-network dind service of this test needs it`)),
    )
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve()))
  })
}

/** Waits until the field's value passes `ok` (polled from here: the page's CSP refuses the eval a string waitForFunction needs). */
async function waitForValue(field: Locator, ok: (value: string) => boolean, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const value = await field.inputValue()
    if (ok(value)) return value
    if (Date.now() > deadline) throw new Error(`the field's value stayed ${JSON.stringify(value.slice(0, 200))}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

before(async () => {
  await assertPortFree(2375)
  work = await mkdtemp(path.join(tmpdir(), 'wharf-ui-seed-'))
  const [dind, images] = await Promise.all([dindImages(), testImages()])
  ;[engine, hub] = await Promise.all([startEngine(), startDockerHub()])
  await hub.seed(dind.oci('docker'), 'library/docker:cli')
  await hub.seed(dind.oci('dind'), 'library/docker:dind')
  const mirrorPort = await freePort()
  wharf = await startWharf({
    env: {
      WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([{ host: 'docker.io', url: hub.url }]),
      WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN: `127.0.0.1:${mirrorPort}`,
    },
  })
  // The base image the Dockerfile names: busybox, in a public project of this Wharf.
  await wharf.createProject('base/busybox', 'public')
  const copied = await run(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `root:${wharf.rootPassword}`,
      images.oci('amd64'),
      `docker://${wharf.host}/base/busybox:1`,
    ],
    { timeoutMs: 60_000 },
  )
  assert.equal(copied.code, 0, describeResult(copied))

  const config = path.join(work, 'runner.yml')
  await writeFile(
    config,
    [
      'runners:',
      '  - name: seed-dind',
      '    docker:',
      '      network_mode: host',
      '      services_cap_add: [ALL]',
      '      services_cap_drop: [SYS_RESOURCE]',
      '      services_security_opt: [seccomp=unconfined, apparmor=unconfined]',
      '      volumes:',
      '        - /sys/fs/cgroup:/sys/fs/cgroup',
      '',
    ].join('\n'),
  )
  const dockerConfig = await mkdtemp(path.join(work, 'dockercfg-'))
  runner = await startRunner(wharf, ['--config', config, '--executor', 'docker', '--docker-host', engine.dockerHost], {
    env: { DOCKER_CONFIG: dockerConfig, DOCKER_HOST: engine.dockerHost },
  })
  ;({ browser, page } = await signedInPage(wharf))
})

after(async () => {
  await browser?.close()
  await runner?.stop()
  await wharf?.stop()
  await hub?.close()
  await engine?.stop()
  if (work && process.env.WHARF_E2E_KEEP !== '1') await rm(work, { recursive: true, force: true })
})

describe("the seed's flow in the browser", { timeout: 420_000 }, () => {
  it('new project → README → Dockerfile → Set up CI with the Docker template → the pipeline builds and pushes; the image is in the Registry tab', async (t) => {
    // A new project.
    await page.getByRole('link', { name: 'New project' }).click()
    await page.getByLabel('Project name').fill('seed')
    await page.getByRole('button', { name: 'Create project' }).click()
    await page.getByRole('heading', { name: 'The repository is empty' }).waitFor()
    const projectId = Number(/\/-\/projects\/(\d+)$/.exec(page.url())?.[1])
    assert.ok(projectId > 0, page.url())

    // README → Commit changes.
    await page.getByRole('link', { name: 'Add README' }).click()
    await page.getByLabel('Content').fill('# seed\n\nBuilt by Wharf CI.\n')
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByRole('article', { name: 'README.md' }).getByRole('heading', { name: 'seed' }).waitFor()

    // Repository → New file → Dockerfile FROM the image Wharf serves → Commit changes.
    await page.getByRole('link', { name: 'Repository' }).click()
    await page.getByRole('link', { name: 'New file' }).click()
    await page.getByLabel('File path').fill('Dockerfile')
    await page.getByLabel('Content').fill(`FROM ${wharf.host}/base/busybox:1\nCOPY README.md /seed/README.md\n`)
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByText(`FROM ${wharf.host}/base/busybox:1`).waitFor()

    // Back on the project: its README, and Set up CI → the Docker template → Commit changes.
    await page.getByRole('link', { name: 'Projects', exact: true }).first().click()
    await page.getByRole('link', { name: 'seed' }).first().click()
    await page.getByRole('article', { name: 'README.md' }).getByText('Built by Wharf CI.').waitFor()
    await page.getByRole('link', { name: 'Set up CI' }).click()
    await page.getByLabel('Choose a template').selectOption('Docker')
    await waitForValue(page.getByLabel('.gitlab-ci.yml'), (v) => v.includes('docker:dind'))
    await page.getByRole('button', { name: 'Commit changes' }).click()
    await page.getByRole('heading', { name: 'Pipelines' }).waitFor()

    // The pipeline runs on the runner.
    const started = Date.now()
    let pipeline: { id: number; status: string } | undefined
    while (Date.now() - started < 360_000) {
      const res = await wharf.api('GET', `/api/v4/projects/${projectId}/pipelines`)
      pipeline = res.json[0]
      if (pipeline && ['success', 'failed', 'canceled'].includes(pipeline.status)) break
      await new Promise((r) => setTimeout(r, 1000))
    }
    assert.ok(pipeline, 'a pipeline was created by the commit')
    const jobs = (await wharf.api('GET', `/api/v4/projects/${projectId}/pipelines/${pipeline.id}/jobs`)).json as Array<{
      id: number
      name: string
    }>
    const log = plainLog((await wharf.api('GET', `/api/v4/projects/${projectId}/jobs/${jobs[0]!.id}/trace`)).text)
    t.diagnostic(`pipeline took ${((Date.now() - started) / 1000).toFixed(1)} s; job log:\n${log}`)
    assert.equal(pipeline.status, 'success', `${log}\n--- runner ---\n${runner.output().slice(-4000)}`)
    assert.deepEqual(
      jobs.map((j) => j.name),
      ['docker-build'],
    )
    assert.match(log, /Starting service docker:dind/)
    for (const image of ['docker:cli', 'docker:dind'])
      assert.ok(log.includes(`Image ${image} came from Wharf's pull-through cache of docker.io`), `${image}: ${log}`)
    assert.match(log, /Login Succeeded/)
    assert.match(log, /main: digest: sha256:[0-9a-f]{64}/)
    assert.match(log, /latest: digest: sha256:[0-9a-f]{64}/)

    // The pipeline shows as passed in the UI, and the image is in the Registry tab with both tags.
    await page.reload()
    await page.getByText('success').or(page.getByText('passed')).first().waitFor()
    await page.getByRole('link', { name: 'Registry' }).click()
    await page.getByRole('heading', { name: 'Images' }).waitFor()
    await page
      .getByRole('row', { name: /root\/seed/ })
      .first()
      .waitFor()
    await page.locator('tr[data-tag="main"]').waitFor()
    await page.locator('tr[data-tag="latest"]').waitFor()

    // What was pushed is the Dockerfile's: busybox's layers plus the README.
    const served = await getManifest(wharf.url, 'root/seed', 'main')
    assert.equal(served.status, 200, served.describe)
    const manifest = JSON.parse(served.body.toString('utf8')) as { layers: Array<{ digest: string }> }
    const base = JSON.parse((await getManifest(wharf.url, 'base/busybox', '1')).body.toString('utf8')) as {
      layers: Array<{ digest: string }>
    }
    assert.deepEqual(
      manifest.layers.slice(0, base.layers.length).map((l) => l.digest),
      base.layers.map((l) => l.digest),
    )
    assert.equal(manifest.layers.length, base.layers.length + 1)
    const layer = await http('GET', `${wharf.url}/v2/root/seed/blobs/${manifest.layers.at(-1)!.digest}`)
    assert.equal(layer.status, 200, layer.describe)
    assert.equal(tarFiles(layer.body).get('seed/README.md')?.toString('utf8'), '# seed\n\nBuilt by Wharf CI.\n')
  })
})
