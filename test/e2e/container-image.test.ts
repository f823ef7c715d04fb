// The container image: the repository's Dockerfile built in a private docker engine from the local
// stand-in for the official Node image (scripts/make-node-base-image.sh: Docker Hub is out of reach),
// run until its HEALTHCHECK says healthy, used as a registry by the docker client, stopped with
// SIGTERM and started again on the same volume.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, cp, mkdir, mkdtemp, readFile, rm, stat, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { describeResult, run, runOk, type RunResult } from '../helpers/run.ts'
import { freePort, repoRoot } from '../helpers/wharf.ts'

const BASE = 'wharf-test/node-base:24'
const IMAGE = 'wharf-test/wharf:latest'
const CONTAINER = 'wharf'
const VOLUME = 'wharf-data'
const ROOT_PASSWORD = 'container-image-test-password'
// The uid:gid the Dockerfile gives the wharf user.
const WHARF_UID = 10001

let engine: Engine
let images: TestImages
let context: string
let port: number
let host: string

/** npm without the test runner's WHARF_* settings (npm pack runs the prepack build). */
const bareEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))

async function docker(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  const r = await engine.docker(args, { timeoutMs, env: { DOCKER_BUILDKIT: '0' } })
  if (r.code !== 0) {
    const logs = await engine.docker(['logs', '--tail', '40', CONTAINER], { timeoutMs: 10_000 })
    assert.fail(`docker failed:\n${describeResult(r)}\n--- container log ---\n${logs.stdout}${logs.stderr}`)
  }
  return r
}

async function health(): Promise<{ running: boolean; status: string; log: string }> {
  const r = await docker(['inspect', '-f', '{{json .State}}', CONTAINER])
  const state = JSON.parse(r.stdout) as { Running: boolean; Health?: { Status: string; Log?: Array<{ ExitCode: number; Output: string }> } }
  return { running: state.Running, status: state.Health?.Status ?? 'none', log: JSON.stringify(state.Health?.Log?.slice(-2) ?? []) }
}

/** Waits for the image's own HEALTHCHECK (GET /-/readiness) to report healthy. */
async function waitHealthy(): Promise<void> {
  const deadline = Date.now() + 120_000
  let h = await health()
  while (h.status !== 'healthy') {
    assert.ok(h.running, `the container exited: ${h.log}\n${(await engine.docker(['logs', CONTAINER])).stderr}`)
    assert.notEqual(h.status, 'unhealthy', h.log)
    assert.ok(Date.now() < deadline, `not healthy after 120 s: ${h.status} ${h.log}`)
    await new Promise((r) => setTimeout(r, 500))
    h = await health()
  }
}

function pushedDigest(r: RunResult): string {
  const m = /digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(r.stdout)
  assert.ok(m?.[1], `no digest in docker push output:\n${describeResult(r)}`)
  return m[1]
}

/** Pulls repo:tag after removing it locally, so the bytes really come from the container; returns its repo digest. */
async function pullFresh(repo: string, tag: string): Promise<string> {
  await engine.docker(['rmi', '-f', `${repo}:${tag}`], { timeoutMs: 60_000 })
  await docker(['pull', `${repo}:${tag}`])
  const r = await docker(['image', 'inspect', '-f', '{{json .RepoDigests}}', `${repo}:${tag}`])
  const digest = (JSON.parse(r.stdout) as string[]).find((d) => d.startsWith(`${repo}@`))?.slice(repo.length + 1)
  assert.ok(digest, r.stdout)
  return digest
}

before(async () => {
  images = await testImages()
  engine = await startEngine()
  // The debootstrap root filesystem is cached across runs (the script is a no-op once built).
  const baseDir = process.env.WHARF_E2E_NODE_BASE ?? path.join(tmpdir(), 'wharf-node-base')
  await runOk('sh', [path.join(repoRoot, 'scripts', 'make-node-base-image.sh'), baseDir], { timeoutMs: 900_000 })
  await docker(
    [
      'import',
      '--change',
      'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      '--change',
      'CMD ["node"]',
      path.join(baseDir, 'rootfs.tar'),
      BASE,
    ],
    300_000,
  )
  // The build context the README's `npm pack` makes (the tarball and the lockfile), plus the npm
  // cache `npm ci` filled here, as the Dockerfile's optional npm-cache: the build runs without network.
  context = await mkdtemp(path.join(tmpdir(), 'wharf-image-'))
  // Packed from a copy: npm pack's prepack writes dist/ in the package directory, and
  // test/e2e/packaging.test.ts packs the repository itself, maybe at the same time.
  const copy = path.join(context, 'repo')
  await mkdir(path.join(copy, 'docs'), { recursive: true })
  for (const f of [
    'package.json',
    'package-lock.json',
    'README.md',
    'tsconfig.json',
    'tsconfig.build.json',
    'bin',
    'src',
    'packaging',
    'docs/architecture.md',
  ]) {
    await cp(path.join(repoRoot, f), path.join(copy, f), { recursive: true })
  }
  await symlink(path.join(repoRoot, 'node_modules'), path.join(copy, 'node_modules'))
  const pack = await runOk('npm', ['pack', '--json', '--pack-destination', context], {
    cwd: copy,
    env: bareEnv,
    replaceEnv: true,
    timeoutMs: 300_000,
  })
  await rm(copy, { recursive: true, force: true })
  assert.ok((JSON.parse(pack.stdout) as Array<{ filename: string }>)[0]?.filename)
  await copyFile(path.join(repoRoot, 'package-lock.json'), path.join(context, 'package-lock.json'))
  const npmCache = (await runOk('npm', ['config', 'get', 'cache'], { cwd: repoRoot, env: bareEnv, replaceEnv: true })).stdout.trim()
  await mkdir(path.join(context, 'npm-cache'))
  // Hard links when the cache is on the same file system: the cache is a few hundred MB.
  const link = await run('cp', ['-al', path.join(npmCache, '_cacache'), path.join(context, 'npm-cache', '_cacache')])
  if (link.code !== 0)
    await runOk('cp', ['-a', path.join(npmCache, '_cacache'), path.join(context, 'npm-cache', '_cacache')], { timeoutMs: 300_000 })
  port = await freePort()
  host = `127.0.0.1:${port}`
})

after(async () => {
  await engine?.stop()
  if (context) await rm(context, { recursive: true, force: true })
})

// Long timeouts: the engine's vfs storage copies the whole root filesystem for every build step.
describe('container image', { timeout: 3_000_000 }, () => {
  it('builds from the Dockerfile with the npm pack tarball and production dependencies only', async (t) => {
    // No network: git comes with the base, the dependencies from the npm cache in the context.
    await docker(
      ['build', '--network', 'none', '--build-arg', `NODE_IMAGE=${BASE}`, '-f', path.join(repoRoot, 'Dockerfile'), '-t', IMAGE, context],
      2_400_000,
    )
    const version = await docker(['run', '--rm', '--network', 'none', IMAGE, '--version'])
    const { version: expected } = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
    assert.equal(version.stdout, `wharf ${expected}\n`)
    // No dev dependency, no tests, no sources in the image.
    const files = await docker([
      'run',
      '--rm',
      '--network',
      'none',
      '--entrypoint',
      'sh',
      IMAGE,
      '-c',
      'cd /opt/wharf && ls node_modules && ls -d src test node_modules/typescript node_modules/node 2>&1; true',
    ])
    assert.match(files.stdout, /^fastify$/m)
    for (const gone of ['src', 'test', 'node_modules/typescript', 'node_modules/node'])
      assert.match(files.stdout, new RegExp(`cannot access '${gone}'`), files.stdout)
    const size = Number((await docker(['image', 'inspect', '-f', '{{.Size}}', IMAGE])).stdout.trim())
    const baseSize = Number((await docker(['image', 'inspect', '-f', '{{.Size}}', BASE])).stdout.trim())
    t.diagnostic(
      `image ${(size / 1e6).toFixed(0)} MB, of which the base ${(baseSize / 1e6).toFixed(0)} MB and the Dockerfile's layers ${((size - baseSize) / 1e6).toFixed(0)} MB`,
    )
  })

  it('runs as a non-root user and becomes healthy through its own HEALTHCHECK', async () => {
    await docker(['volume', 'create', VOLUME])
    // Host network: the engine has no bridge, and the registry on 127.0.0.1 is one docker trusts over HTTP.
    await docker([
      'run',
      '-d',
      '--name',
      CONTAINER,
      '--network',
      'host',
      '--stop-timeout',
      '40',
      '-e',
      `WHARF_LISTEN=${host}`,
      '-e',
      `WHARF_PUBLIC_URL=http://${host}`,
      '-e',
      `WHARF_ROOT_PASSWORD=${ROOT_PASSWORD}`,
      '-v',
      `${VOLUME}:/var/lib/wharf`,
      IMAGE,
    ])
    await waitHealthy()
    const status = await docker(['exec', CONTAINER, 'cat', '/proc/1/status'])
    assert.match(status.stdout, new RegExp(`^Uid:\\s+${WHARF_UID}\\s+${WHARF_UID}\\s`, 'm'))
    assert.match((await docker(['exec', CONTAINER, 'cat', '/proc/1/cmdline'])).stdout, /wharf.*serve/)
    const ready = await fetch(`http://${host}/-/readiness`)
    assert.equal(ready.status, 200)
  })

  let digest = ''
  it('takes a docker push and serves the pull, with the data in the volume', async () => {
    const token = await fetch(`http://${host}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'password', username: 'root', password: ROOT_PASSWORD }),
    })
    assert.equal(token.status, 200)
    const { access_token } = (await token.json()) as { access_token: string }
    const project = await fetch(`http://${host}/api/v4/projects`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${access_token}` },
      body: JSON.stringify({ name: 'app', path: 'app' }),
    })
    assert.equal(project.status, 201, await project.text())

    const login = await engine.docker(['login', '--username', 'root', '--password-stdin', host], {
      input: ROOT_PASSWORD,
      timeoutMs: 60_000,
    })
    assert.equal(login.code, 0, describeResult(login))
    await docker(['load', '-i', images.dockerArchive])
    const repo = `${host}/root/app`
    await docker(['tag', images.dockerArchiveTag, `${repo}:v1`])
    digest = pushedDigest(await docker(['push', `${repo}:v1`]))
    assert.equal(await pullFresh(repo, 'v1'), digest)

    // The blobs and the database are in the named volume, owned by the wharf user.
    const mount = (await docker(['volume', 'inspect', '-f', '{{.Mountpoint}}', VOLUME])).stdout.trim()
    const hex = images.digests.amd64Config.slice('sha256:'.length)
    const blob = await stat(path.join(mount, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex))
    assert.equal(blob.uid, WHARF_UID)
    assert.equal((await stat(path.join(mount, 'wharf.db'))).uid, WHARF_UID)
  })

  it('stops cleanly on SIGTERM and starts again with its data', async () => {
    await docker(['stop', CONTAINER], 60_000)
    const exit = await docker(['inspect', '-f', '{{.State.ExitCode}}', CONTAINER])
    assert.equal(exit.stdout.trim(), '0', "docker stop: SIGTERM ends the server gracefully, not by the engine's SIGKILL")
    await docker(['start', CONTAINER])
    await waitHealthy()
    // The private project (database) and its blobs (storage) came back from the volume.
    assert.equal(await pullFresh(`${host}/root/app`, 'v1'), digest)
    const pulled = await docker(['image', 'inspect', '-f', '{{.Id}}', `${host}/root/app:v1`])
    assert.equal(pulled.stdout.trim(), images.digests.amd64Config)
  })
})
