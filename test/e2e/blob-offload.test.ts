// End-to-end: Wharf with storage.filesystem.accelRedirect behind Debian's nginx running the shipped
// deploy/nginx.conf. skopeo pushes and pulls through nginx; blob GETs are authorised by Wharf and
// their bytes sent by nginx (its access log shows the X-Accel-Redirect it followed); Range works; the
// internal location is unreachable from outside; a request reaching Wharf without the proxy's header streams.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { describeResult, run } from '../helpers/run.ts'
import { http, readLayoutBlob, registerCredentials, sha256 } from '../helpers/registry.ts'

const PREFIX = '/_wharf_blobs/'
let wharf: Wharf
let images: TestImages
let work: string
let nginx: ChildProcess
let lb: string
let accessLog: string

/** deploy/nginx.conf on loopback: Wharf's address for the nodes, a free port, this data directory, files in `dir`. */
async function nginxConf(dir: string, port: number, dataDir: string): Promise<string> {
  let conf = await readFile(path.join(repoRoot, 'deploy', 'nginx.conf'), 'utf8')
  const edits: Array<[RegExp, string]> = [
    [/server wharf-a:\d+/, `server 127.0.0.1:${wharf.port}`],
    [/\n\s*server wharf-b:[^\n]*/, ''],
    [/listen 80;/, `listen 127.0.0.1:${port};`],
    [/alias \/var\/lib\/wharf\/storage\/blobs\/;/, `alias ${dataDir}/storage/blobs/;`],
    [/worker_processes auto;/, 'worker_processes 1;'],
    [
      /http \{/,
      `http {
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  log_format offload '"$request" $status $body_bytes_sent accel=$upstream_http_x_accel_redirect';
  access_log ${accessLog} offload;`,
    ],
  ]
  for (const [from, to] of edits) {
    assert.match(conf, from, `deploy/nginx.conf no longer has ${from}`)
    conf = conf.replace(from, to)
  }
  // As root, nginx's workers would switch to `nobody`, who cannot read the test's data directory.
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}${conf}`
}

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-offload-'))
  const port = await freePort()
  lb = `127.0.0.1:${port}`
  wharf = await startWharf({ extraArgs: ['--public-url', `http://${lb}`, '--filesystem-accel-redirect', PREFIX] })
  await wharf.createProject('e2e/offload')
  registerCredentials(`http://${lb}`, { username: 'root', password: wharf.rootPassword })
  accessLog = path.join(work, 'access.log')
  await mkdir(path.join(work, 'tmp'), { recursive: true })
  const conf = path.join(work, 'nginx.conf')
  await writeFile(conf, await nginxConf(work, port, wharf.dataDir))
  const bin = (await run('sh', ['-c', 'command -v nginx || echo /usr/sbin/nginx'])).stdout.trim()
  nginx = spawn(bin, ['-p', work, '-c', conf, '-e', path.join(work, 'error.log'), '-g', `daemon off; pid ${work}/nginx.pid;`], {
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  nginx.stderr!.on('data', (b: Buffer) => (stderr += b.toString()))
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://${lb}/-/readiness`).then(
      (r) => r.status === 200,
      () => false,
    )
    if (ok) break
    assert.ok(i < 100 && nginx.exitCode === null, `nginx did not start: ${stderr}`)
    await new Promise((r) => setTimeout(r, 100))
  }
})

after(async () => {
  if (nginx && nginx.exitCode === null) {
    const exited = new Promise((r) => nginx.once('exit', r))
    nginx.kill('SIGTERM')
    await exited
  }
  await wharf?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('blob downloads sent by nginx (X-Accel-Redirect)', { timeout: 170_000 }, () => {
  const ref = () => `docker://${lb}/e2e/offload:v1`
  const skopeo = (...args: string[]) =>
    run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 }).then(async (r) => {
      assert.equal(r.code, 0, `${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
      return r
    })
  const creds = () => `root:${wharf.rootPassword}`

  it('skopeo pushes and pulls through nginx; each layer GET was authorised by Wharf and sent by nginx', async () => {
    await skopeo('copy', '--dest-tls-verify=false', '--dest-creds', creds(), images.oci('amd64'), ref())
    const out = path.join(work, 'pulled')
    await skopeo('copy', '--src-tls-verify=false', '--src-creds', creds(), ref(), `oci:${out}:v1`)
    const log = await readFile(accessLog, 'utf8')
    for (const layer of images.digests.amd64Layers) {
      assert.ok((await readLayoutBlob(out, layer)).equals(await readLayoutBlob(images.ociLayout, layer)), layer)
      const hex = layer.slice('sha256:'.length)
      // The client's GET, answered by nginx with the file's bytes after Wharf's X-Accel-Redirect.
      const line = log.split('\n').find((l) => l.includes(`GET /v2/e2e/offload/blobs/${layer} `) && / 200 [1-9]\d* /.test(l))
      assert.ok(line, `no 200 with a body for ${layer} in nginx's log:\n${log}`)
      assert.ok(line.endsWith(`accel=${PREFIX}sha256/${hex.slice(0, 2)}/${hex}`), line)
    }
  })

  it('a GET through nginx has the registry headers; a Range gets 206 with those bytes', async () => {
    const layer = images.digests.amd64Layers[0]!
    const bytes = await readLayoutBlob(images.ociLayout, layer)
    const url = `http://${lb}/v2/e2e/offload/blobs/${layer}`
    const whole = await http('GET', url)
    assert.equal(whole.status, 200, whole.describe)
    assert.equal(sha256(whole.body), layer)
    assert.equal(whole.headers.get('docker-content-digest'), layer, whole.describe)
    assert.equal(whole.headers.get('etag'), `"${layer}"`, whole.describe)
    assert.equal(whole.headers.get('content-type'), 'application/octet-stream', whole.describe)
    assert.equal(whole.headers.get('content-length'), String(bytes.length), whole.describe)
    const part = await http('GET', url, { headers: { range: 'bytes=10-109' } })
    assert.equal(part.status, 206, part.describe)
    assert.equal(part.headers.get('content-range'), `bytes 10-109/${bytes.length}`, part.describe)
    assert.ok(part.body.equals(bytes.subarray(10, 110)), part.describe)
  })

  it('the internal location answers 404 to clients; nothing but Wharf chooses the file', async () => {
    const layer = images.digests.amd64Layers[0]!
    const hex = layer.slice('sha256:'.length)
    const res = await fetch(`http://${lb}${PREFIX}sha256/${hex.slice(0, 2)}/${hex}`)
    assert.equal(res.status, 404)
    assert.ok(!(await res.text()).includes('\x1f\x8b'), 'no layer bytes')
    // A client's own X-Sendfile-Type is replaced by nginx's: the pull works as any other.
    const spoofed = await http('GET', `http://${lb}/v2/e2e/offload/blobs/${layer}`, { headers: { 'x-sendfile-type': 'none' } })
    assert.equal(sha256(spoofed.body), layer, spoofed.describe)
  })

  it('reached directly, Wharf streams; with the proxy header it answers X-Accel-Redirect and an empty body', async () => {
    const layer = images.digests.amd64Layers[0]!
    const hex = layer.slice('sha256:'.length)
    const url = `${wharf.url}/v2/e2e/offload/blobs/${layer}`
    const direct = await http('GET', url)
    assert.equal(direct.status, 200, direct.describe)
    assert.equal(sha256(direct.body), layer)
    assert.equal(direct.headers.get('x-accel-redirect'), null)
    const asNginx = await http('GET', url, { headers: { 'x-sendfile-type': 'X-Accel-Redirect' } })
    assert.equal(asNginx.status, 200, asNginx.describe)
    assert.equal(asNginx.body.length, 0)
    assert.equal(asNginx.headers.get('x-accel-redirect'), `${PREFIX}sha256/${hex.slice(0, 2)}/${hex}`)
  })

  // Last: it damages the store under the database.
  it('a blob whose file is gone answers 404 in the registry error format, not with an nginx page', async () => {
    const layer = images.digests.amd64Layers[0]!
    const hex = layer.slice('sha256:'.length)
    await rm(path.join(wharf.dataDir, 'storage', 'blobs', 'sha256', hex.slice(0, 2), hex))
    const res = await http('GET', `http://${lb}/v2/e2e/offload/blobs/${layer}`)
    assert.equal(res.status, 404, res.describe)
    assert.equal(res.headers.get('content-type'), 'application/json', res.describe)
    assert.equal((JSON.parse(res.body.toString()) as { errors: Array<{ code: string }> }).errors[0]?.code, 'BLOB_UNKNOWN')
  })
})
