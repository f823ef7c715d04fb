// End-to-end: `wharf login` and docker-credential-wharf with unmodified docker, podman, buildah
// and skopeo. No client ever logs in: the device flow is approved through the API (as the web UI
// does; test/ui/device-login.test.ts clicks it in Chromium), `wharf login` installs the helper and
// names it in credHelpers, and every pull and push goes through it. Docker's config.json and
// containers' auth.json hold no secret; the secret the helper hands out is short-lived (a 10 s TTL
// here) and replaced without the clients noticing; revoking the login stops the next pull even
// though the helper still has a cached, unexpired secret; `wharf logout` revokes and cleans up.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'

const SECRET_TTL_SECONDS = 10

let wharf: Wharf
let engine: Engine
let images: TestImages
let storage: PrivateStorage
let work: string
let binDir: string
/** What every client runs with: the helper on PATH, the private config files, the helper's store under XDG_CONFIG_HOME. */
let env: Record<string, string>

const image = (tag = 'v1') => `${wharf.host}/cred/app:${tag}`

async function ok(what: string, r: Promise<RunResult>): Promise<RunResult> {
  const res = await r
  assert.equal(res.code, 0, `${what} failed:\n${describeResult(res)}\n--- server log ---\n${await wharf.logTail(20)}`)
  return res
}

const docker = (args: string[]) => engine.docker(args, { timeoutMs: 120_000, env })
const podman = (args: string[]) =>
  run(
    'podman',
    [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
    { timeoutMs: 120_000, env: { ...storage.env, ...env } },
  )
const buildah = (args: string[]) => run('buildah', [...storage.args, ...args], { timeoutMs: 120_000, env: { ...storage.env, ...env } })
const skopeo = (args: string[]) => run('skopeo', args, { timeoutMs: 120_000, env: { ...storage.env, ...env } })
const helper = (command: string, input: string) =>
  run(path.join(binDir, 'docker-credential-wharf'), [command], { input, env, timeoutMs: 30_000 })
const wharfCli = (args: string[]) => run(projectNode, [path.join(repoRoot, 'src', 'cli', 'main.ts'), ...args], { env, timeoutMs: 120_000 })

/** `wharf login`, approved through the API as root (a password sign-in, as the web UI's session is) once it prints the code. */
async function deviceLogin(): Promise<string> {
  const child = spawn(
    projectNode,
    [path.join(repoRoot, 'src', 'cli', 'main.ts'), 'login', wharf.url, '--bin-dir', binDir, '--store', 'file'],
    {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  let out = ''
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString()
  })
  child.stderr.on('data', (c: Buffer) => {
    out += c.toString()
  })
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)))
  const deadline = Date.now() + 60_000
  let code: string | undefined
  while (!code && Date.now() < deadline) {
    code = /enter the code ([A-Z]{4}-[A-Z]{4})/.exec(out)?.[1]
    if (!code) await new Promise((r) => setTimeout(r, 200))
  }
  assert.ok(code, `wharf login printed no code:\n${out}`)
  const approve = await wharf.api('POST', `/api/v4/user/device_authorizations/${code}/approve`, {})
  assert.equal(approve.status, 204, approve.describe)
  const status = await exited
  assert.equal(status, 0, `wharf login failed:\n${out}`)
  assert.match(out, new RegExp(`Logged in to ${wharf.host.replace(/\./g, '\\.')} as root`))
  return out
}

async function configFiles(): Promise<{ docker: string; containers: string }> {
  return {
    docker: await readFile(path.join(env.DOCKER_CONFIG!, 'config.json'), 'utf8'),
    containers: await readFile(env.REGISTRY_AUTH_FILE!, 'utf8'),
  }
}

async function helperSecret(): Promise<string> {
  const got = await ok('docker-credential-wharf get', helper('get', wharf.host))
  const creds = JSON.parse(got.stdout) as { ServerURL: string; Username: string; Secret: string }
  assert.equal(creds.Username, 'root')
  assert.equal(creds.ServerURL, wharf.host)
  return creds.Secret
}

async function jwtAuthStatus(secret: string): Promise<number> {
  const res = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:cred/app:pull`, {
    headers: { authorization: `Basic ${Buffer.from(`root:${secret}`).toString('base64')}` },
  })
  await res.arrayBuffer()
  return res.status
}

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-cred-'))
  storage = await privateStorage(work)
  binDir = path.join(work, 'bin')
  const home = path.join(work, 'home')
  await mkdir(home, { recursive: true })
  ;[wharf, engine] = await Promise.all([
    startWharf({ extraArgs: ['--login-secret-ttl-seconds', String(SECRET_TTL_SECONDS)] }),
    startEngine(),
  ])
  env = {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    DOCKER_CONFIG: engine.env.DOCKER_CONFIG!,
    DOCKER_HOST: engine.env.DOCKER_HOST!,
    REGISTRY_AUTH_FILE: storage.env.REGISTRY_AUTH_FILE!,
    PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}`,
  }
  await wharf.createProject('cred/app', 'private')
  await ok(
    'skopeo copy (setup, with the password)',
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

describe('docker-credential-wharf after wharf login', { timeout: 600_000 }, () => {
  it('wharf login: the device flow, then only credHelpers entries in config.json and auth.json (no secret)', async () => {
    // Without a login the private image is out of reach.
    assert.notEqual((await docker(['pull', image()])).code, 0)
    await deviceLogin()
    const files = await configFiles()
    assert.deepEqual(JSON.parse(files.docker).credHelpers, { [wharf.host]: 'wharf' })
    assert.deepEqual(JSON.parse(files.containers).credHelpers, { [wharf.host]: 'wharf' })
    const stored = JSON.parse(await readFile(path.join(env.XDG_CONFIG_HOME!, 'wharf', 'secrets.json'), 'utf8')) as Record<string, string>
    const refresh = stored[wharf.host]
    assert.match(refresh ?? '', /^wharf-dl-/)
    const secret = await helperSecret()
    for (const text of [files.docker, files.containers]) {
      for (const needle of [refresh!, secret, 'wharf-dl-', 'wharf-ls-', wharf.rootPassword, '"auth"', 'identitytoken']) {
        assert.ok(!text.includes(needle), `a client config file holds ${needle.slice(0, 12)}…:\n${text}`)
      }
    }
  })

  it('docker pulls and pushes with no docker login', async () => {
    await ok('docker pull', docker(['pull', image()]))
    await ok('docker tag', docker(['tag', image(), image('pushed')]))
    await ok('docker push', docker(['push', image('pushed')]))
    const tags = await wharf.api('GET', `/api/v4/projects/${encodeURIComponent('cred/app')}/registry/repositories?tags=true`)
    assert.ok(JSON.stringify(tags.json).includes('"pushed"'), tags.describe)
    // Still nothing stored by docker itself.
    assert.ok(!(await configFiles()).docker.includes('"auths": {\n\t\t"'))
  })

  it('podman, buildah and skopeo pull through the helper', async () => {
    await ok('podman pull', podman(['pull', '--tls-verify=false', image()]))
    await ok('buildah pull', buildah(['pull', '--tls-verify=false', image('pushed')]))
    await ok('skopeo inspect', skopeo(['inspect', '--tls-verify=false', `docker://${image()}`]))
    await ok(
      'skopeo copy',
      skopeo(['--insecure-policy', 'copy', '--src-tls-verify=false', `docker://${image()}`, `oci:${path.join(work, 'copy')}:v1`]),
    )
  })

  it('docker login without arguments signs in through the helper and leaves the device login in place', async () => {
    const r = await ok('docker login', docker(['login', wharf.host]))
    assert.match(r.stdout, /Login Succeeded/)
    // docker stored what it used (a minted secret) through the helper: a no-op, the login stays.
    const logins = JSON.parse(await readFile(path.join(env.XDG_CONFIG_HOME!, 'wharf', 'logins.json'), 'utf8'))
    assert.equal(logins.logins[wharf.host].kind, 'device')
    const files = await configFiles()
    assert.ok(!files.docker.includes('wharf-ls-') && !files.docker.includes('"auth"'), files.docker)
  })

  it('the secret expires and is replaced without the clients noticing', async () => {
    const first = await helperSecret()
    assert.equal(await helperSecret(), first, 'a fresh secret is reused from the cache')
    assert.equal(await jwtAuthStatus(first), 200)
    await new Promise((r) => setTimeout(r, (SECRET_TTL_SECONDS + 1) * 1000))
    assert.equal(await jwtAuthStatus(first), 401, 'the first secret has expired on the server')
    await ok('docker pull after expiry', docker(['pull', image()]))
    await ok('podman pull after expiry', podman(['pull', '--tls-verify=false', image()]))
    const second = await helperSecret()
    assert.notEqual(second, first)
    assert.equal(await jwtAuthStatus(second), 200)
  })

  it('revoking the login stops the next pull although the helper still has a cached secret', async () => {
    const cached = await helperSecret()
    const logins = await wharf.api('GET', '/api/v4/user/device_logins')
    assert.equal(logins.status, 200, logins.describe)
    assert.equal(logins.json.length, 1, logins.describe)
    assert.match(logins.json[0].name, /^signed in on /)
    const revoke = await wharf.api('DELETE', `/api/v4/user/device_logins/${logins.json[0].id}`)
    assert.equal(revoke.status, 204, revoke.describe)
    // The helper hands out the same unexpired secret...
    assert.equal(await helperSecret(), cached)
    // ...and the server refuses it: every client's next pull fails.
    const pulled = await docker(['pull', image()])
    assert.notEqual(pulled.code, 0, describeResult(pulled))
    assert.notEqual((await podman(['pull', '--tls-verify=false', image()])).code, 0)
    assert.equal(await jwtAuthStatus(cached), 401)
  })

  it('wharf logout revokes the login on the server, forgets it and removes the credHelpers entries', async () => {
    await deviceLogin()
    await ok('docker pull with the new login', docker(['pull', image()]))
    const out = await ok('wharf logout', wharfCli(['logout', wharf.url]))
    assert.match(out.stdout, /Revoked the login/)
    assert.equal((await wharf.api('GET', '/api/v4/user/device_logins')).json.length, 0)
    const files = await configFiles()
    assert.deepEqual(JSON.parse(files.docker).credHelpers, {})
    assert.deepEqual(JSON.parse(files.containers).credHelpers, {})
    const miss = await helper('get', wharf.host)
    assert.equal(miss.code, 1)
    assert.equal(miss.stdout.trim(), 'credentials not found in native keychain')
  })

  it('wharf login --token: a personal access token through the same helper', async () => {
    const pat = await wharf.api('POST', '/api/v4/user/personal_access_tokens', { name: 'machine', scopes: ['read_registry'] })
    assert.equal(pat.status, 201, pat.describe)
    const r = await run(
      projectNode,
      [
        path.join(repoRoot, 'src', 'cli', 'main.ts'),
        'login',
        wharf.url,
        '--token',
        '-',
        '--username',
        'root',
        '--bin-dir',
        binDir,
        '--store',
        'file',
      ],
      { env, input: pat.json.token as string, timeoutMs: 120_000 },
    )
    assert.equal(r.code, 0, describeResult(r))
    await ok('podman pull with the token', podman(['pull', '--tls-verify=false', image()]))
    const files = await configFiles()
    assert.ok(!files.docker.includes(pat.json.token) && !files.containers.includes(pat.json.token))
    const list = await ok('docker-credential-wharf list', helper('list', ''))
    assert.deepEqual(JSON.parse(list.stdout), { [wharf.host]: 'root' })
  })
})
