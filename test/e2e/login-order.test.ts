// End-to-end: docker, podman and buildah log in to Wharf in either order while sharing one auth
// file (Docker's config.json, which podman and buildah read and write too), and all of them pull.
// This broke when `docker login` got a refresh token: docker stored it as an `identitytoken`, and
// podman and buildah then refused to log in ("auth file contains an Identity token").
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'

let wharf: Wharf
let engine: Engine
let images: TestImages
let storage: PrivateStorage
let work: string
let authFile: string

async function ok(what: string, r: Promise<RunResult>): Promise<RunResult> {
  const res = await r
  assert.equal(res.code, 0, `${what} failed:\n${describeResult(res)}\n--- server log ---\n${await wharf.logTail(20)}`)
  return res
}

const podman = (args: string[], input?: string) =>
  run(
    'podman',
    [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
    { timeoutMs: 120_000, env: storage.env, ...(input === undefined ? {} : { input }) },
  )
const buildah = (args: string[], input?: string) =>
  run('buildah', [...storage.args, ...args], { timeoutMs: 120_000, env: storage.env, ...(input === undefined ? {} : { input }) })
const docker = (args: string[], input?: string) => engine.docker(args, { timeoutMs: 120_000, ...(input === undefined ? {} : { input }) })

const image = () => `${wharf.host}/order/app:v1`

async function loginAll(order: Array<'docker' | 'podman' | 'buildah'>): Promise<void> {
  for (const client of order) {
    const args = ['login', '--username', 'root', '--password-stdin']
    if (client === 'docker') await ok('docker login', docker([...args, wharf.host], wharf.rootPassword))
    if (client === 'podman')
      await ok('podman login', podman([...args, '--tls-verify=false', '--authfile', authFile, wharf.host], wharf.rootPassword))
    if (client === 'buildah')
      await ok('buildah login', buildah([...args, '--tls-verify=false', '--authfile', authFile, wharf.host], wharf.rootPassword))
  }
}

async function pullAll(): Promise<void> {
  await ok('docker pull', docker(['pull', image()]))
  await ok('podman pull', podman(['pull', '--tls-verify=false', '--authfile', authFile, image()]))
  await ok('buildah pull', buildah(['pull', '--tls-verify=false', '--authfile', authFile, image()]))
}

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-login-order-'))
  storage = await privateStorage(work)
  ;[wharf, engine] = await Promise.all([startWharf(), startEngine()])
  authFile = path.join(engine.env.DOCKER_CONFIG!, 'config.json')
  await wharf.createProject('order/app', 'private')
  await ok(
    'skopeo copy',
    run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        `root:${wharf.rootPassword}`,
        images.oci('amd64'),
        `docker://${image()}`,
      ],
      { timeoutMs: 120_000 },
    ),
  )
})

after(async () => {
  await engine?.stop()
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('logins sharing one auth file', { timeout: 300_000 }, () => {
  it('docker, then podman, then buildah: no identity token is stored, every client pulls', async () => {
    await loginAll(['docker', 'podman', 'buildah'])
    const config = JSON.parse(await readFile(authFile, 'utf8')) as { auths: Record<string, { auth?: string; identitytoken?: string }> }
    assert.ok(config.auths[wharf.host]?.auth, JSON.stringify(config))
    assert.equal(config.auths[wharf.host]?.identitytoken, undefined)
    await pullAll()
  })

  it('the reverse order, after logging out: buildah, then podman, then docker', async () => {
    await ok('docker logout', docker(['logout', wharf.host]))
    await loginAll(['buildah', 'podman', 'docker'])
    await pullAll()
  })
})
