// End-to-end: `wharf tls init`, then Wharf over HTTPS, used by clients that verify TLS with
// nothing but ca.crt: skopeo and podman (--cert-dir holding only ca.crt, tls-verify on) and curl
// (--cacert). The same commands without the CA fail with a certificate error, which proves the
// verification is real and not skipped for a loopback address.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { privateStorage, type PrivateStorage } from '../helpers/containers.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { sha256 } from '../helpers/registry.ts'

const PASSWORD = 'tls-e2e-root-password'
/** The project every push goes to (the registry accepts pushes only inside a project). */
const PROJECT = 'e2e-tls/app'
/** The port given to `tls init` for its instructions; the server itself gets a free port. */
const PRINTED_PORT = 5443

let wharf: Wharf
let images: TestImages
let work: string
let tlsDir: string
/** Holds only ca.crt, as /etc/docker/certs.d/<host:port>/ would. */
let caDir: string
/** Holds nothing: the system's roots only. */
let noCaDir: string
let initOutput: RunResult
let storage: PrivateStorage

async function ok(r: RunResult): Promise<RunResult> {
  assert.equal(r.code, 0, `${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return r
}

function skopeo(args: string[]): Promise<RunResult> {
  // --insecure-policy: do not depend on the machine's /etc/containers/policy.json; a private
  // auth file so no machine credentials are used.
  return run('skopeo', ['--insecure-policy', ...args], {
    timeoutMs: 120_000,
    env: { REGISTRY_AUTH_FILE: path.join(work, 'skopeo-auth.json') },
  })
}

function curl(args: string[]): Promise<RunResult> {
  return run('curl', ['-sS', '--noproxy', '*', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '20', ...args], {
    timeoutMs: 30_000,
    env: { CURL_CA_BUNDLE: undefined, SSL_CERT_FILE: undefined, SSL_CERT_DIR: undefined },
  })
}

function podman(args: string[]): Promise<RunResult> {
  return run(
    'podman',
    [...storage.args, '--tmpdir', storage.tmp, '--runtime', 'runc', '--cgroup-manager=cgroupfs', '--events-backend=file', ...args],
    { timeoutMs: 120_000, env: storage.env },
  )
}

const CERT_ERROR = /x509|certificate signed by unknown authority|certificate/i
const reg = (ref: string) => `docker://${wharf.host}/${PROJECT}/${ref}`

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-tls-'))
  tlsDir = path.join(work, 'tls')
  initOutput = await run(
    projectNode,
    [
      path.join(repoRoot, 'src', 'cli', 'main.ts'),
      'tls',
      'init',
      '--public-url',
      `https://127.0.0.1:${PRINTED_PORT}`,
      '--hostname',
      'localhost',
      '--ip',
      '127.0.0.1',
      '--out',
      tlsDir,
    ],
    { timeoutMs: 60_000, cwd: repoRoot, env: { WHARF_CONFIG: undefined, WHARF_DATA: undefined, WHARF_PUBLIC_URL: undefined } },
  )
  assert.equal(initOutput.code, 0, describeResult(initOutput))

  caDir = path.join(work, 'certs.d', 'with-ca')
  noCaDir = path.join(work, 'certs.d', 'empty')
  await mkdir(caDir, { recursive: true })
  await mkdir(noCaDir, { recursive: true })
  await copyFile(path.join(tlsDir, 'ca.crt'), path.join(caDir, 'ca.crt'))
  await writeFile(path.join(work, 'skopeo-auth.json'), '{"auths":{}}\n')

  wharf = await startWharf({
    rootPassword: PASSWORD,
    tls: { cert: path.join(tlsDir, 'server.crt'), key: path.join(tlsDir, 'server.key'), ca: path.join(tlsDir, 'ca.crt') },
  })
  // Through the REST API over HTTPS, verified with the same CA.
  await wharf.createProject(PROJECT)
  storage = await privateStorage(path.join(work, 'podman'))
})

after(async () => {
  await wharf?.stop()
  if (work && process.env.WHARF_E2E_KEEP !== '1') await rm(work, { recursive: true, force: true })
})

describe('TLS', { timeout: 170_000 }, () => {
  it('tls init writes the four files and prints the settings and the one file Docker needs', async () => {
    const out = initOutput.stdout
    const file = (f: string) => path.join(tlsDir, f)
    for (const f of ['ca.crt', 'ca.key', 'server.crt', 'server.key']) await stat(file(f))
    assert.equal((await stat(file('ca.key'))).mode & 0o777, 0o600)
    assert.equal((await stat(file('server.key'))).mode & 0o777, 0o600)
    assert.ok(out.includes(`--tls-cert ${file('server.crt')} --tls-key ${file('server.key')}`), out)
    assert.ok(out.includes('WHARF_TLS_CERT') && out.includes('WHARF_TLS_KEY'), out)
    assert.ok(out.includes(`/etc/docker/certs.d/127.0.0.1:${PRINTED_PORT}/ca.crt`), out)
    assert.ok(out.includes(`/etc/containers/certs.d/127.0.0.1:${PRINTED_PORT}/ca.crt`), out)
    assert.ok(out.includes(`--cacert ${file('ca.crt')}`), out)
    assert.match(out, /names: localhost, 127\.0\.0\.1\b/)
    assert.ok(wharf.url.startsWith('https://'), wharf.url)
  })

  it('curl verifies the server with --cacert, and fails without it or for a name not in the certificate', async () => {
    // TLS verified; Wharf then asks for credentials (the reference registry runs without auth).
    const status = wharf.kind === 'reference' ? '200' : '401'
    const withCa = await ok(await curl(['--cacert', path.join(tlsDir, 'ca.crt'), `${wharf.url}/v2/`]))
    assert.equal(withCa.stdout, status)
    const asLocalhost = await ok(
      await curl([
        '--cacert',
        path.join(tlsDir, 'ca.crt'),
        '--resolve',
        `localhost:${wharf.port}:127.0.0.1`,
        `https://localhost:${wharf.port}/v2/`,
      ]),
    )
    assert.equal(asLocalhost.stdout, status)

    const withoutCa = await curl([`${wharf.url}/v2/`])
    assert.equal(withoutCa.code, 60, describeResult(withoutCa))
    assert.match(withoutCa.stderr, /certificate/i)
    const otherName = await curl([
      '--cacert',
      path.join(tlsDir, 'ca.crt'),
      '--resolve',
      `other.test:${wharf.port}:127.0.0.1`,
      `https://other.test:${wharf.port}/v2/`,
    ])
    assert.equal(otherName.code, 60, describeResult(otherName))
    assert.match(otherName.stderr, /subject|name/i)

    const plain = await curl([`http://${wharf.host}/v2/`])
    assert.notEqual(plain.stdout, '200', 'no plain HTTP registry on the TLS port')
  })

  it('skopeo with only ca.crt in --cert-dir pushes an image and inspects it, TLS verification on', async () => {
    const creds = `root:${PASSWORD}`
    await ok(
      await skopeo(['copy', '--dest-tls-verify=true', '--dest-cert-dir', caDir, '--dest-creds', creds, images.oci('amd64'), reg('app:v1')]),
    )
    const raw = await ok(await skopeo(['inspect', '--raw', '--tls-verify=true', '--cert-dir', caDir, '--creds', creds, reg('app:v1')]))
    assert.equal(sha256(Buffer.from(raw.stdout, 'utf8')), images.digests.amd64Manifest)
    const info = await ok(await skopeo(['inspect', '--tls-verify=true', '--cert-dir', caDir, '--creds', creds, reg('app:v1')]))
    assert.equal((JSON.parse(info.stdout) as { Digest: string }).Digest, images.digests.amd64Manifest)
  })

  it('skopeo without the CA fails with a certificate error', async () => {
    const creds = `root:${PASSWORD}`
    const push = await skopeo([
      'copy',
      '--dest-tls-verify=true',
      '--dest-cert-dir',
      noCaDir,
      '--dest-creds',
      creds,
      images.oci('amd64'),
      reg('app:v2'),
    ])
    assert.notEqual(push.code, 0, describeResult(push))
    assert.match(push.stderr, CERT_ERROR, describeResult(push))
    const inspect = await skopeo(['inspect', '--raw', '--tls-verify=true', '--cert-dir', noCaDir, '--creds', creds, reg('app:v1')])
    assert.notEqual(inspect.code, 0, describeResult(inspect))
    assert.match(inspect.stderr, /x509|certificate/i, describeResult(inspect))
  })

  it('podman logs in and pushes with --cert-dir, and refuses the server without the CA', async () => {
    const login = await podman(['login', '--tls-verify=true', '--cert-dir', caDir, '-u', 'root', '-p', PASSWORD, wharf.host])
    await ok(login)
    const refused = await podman(['login', '--tls-verify=true', '--cert-dir', noCaDir, '-u', 'root', '-p', PASSWORD, wharf.host])
    assert.notEqual(refused.code, 0, describeResult(refused))
    assert.match(refused.stderr, CERT_ERROR, describeResult(refused))

    await ok(await podman(['pull', images.oci('amd64')]))
    const local = `${wharf.host}/${PROJECT}/pod:v1`
    await ok(await podman(['tag', images.digests.amd64Config.replace(/^sha256:/, ''), local]))
    const digestFile = path.join(work, 'podman.digest')
    await ok(await podman(['push', '--tls-verify=true', '--cert-dir', caDir, '--digestfile', digestFile, local]))
    const pushed = (await readFile(digestFile, 'utf8')).trim()
    assert.match(pushed, /^sha256:[0-9a-f]{64}$/)
    const raw = await ok(
      await skopeo(['inspect', '--raw', '--tls-verify=true', '--cert-dir', caDir, '--creds', `root:${PASSWORD}`, reg('pod:v1')]),
    )
    assert.equal(sha256(Buffer.from(raw.stdout, 'utf8')), pushed)
  })
})
