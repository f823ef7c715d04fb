// End-to-end: a real Wharf server runs out of file descriptors. Its limit is lowered with
// prlimit(1) (util-linux) once it is up, and idle TCP connections are held open until every
// descriptor is taken. Then real `git ls-remote` / `git clone` runs and REST API calls that start
// git hit EMFILE — at accept(), when git is spawned, when a blob file is opened. The server must
// stay up, answer what it accepts with 503 (plain text for git, an RFC 9457 problem in application/json for the API, OCI
// error JSON for a blob) and a Retry-After, and serve normally again once the connections are gone.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { readdirSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import { connect, type Socket } from 'node:net'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, runOk } from '../helpers/run.ts'
import { http, parseChallenge, registryToken, sha256 } from '../helpers/registry.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'

/** Descriptors left above what the idle server uses: room for a few requests, few enough to fill fast. */
const HEADROOM = 48

let wharf: Wharf
let client: GitClient
let projectId: number
let limit = Number.POSITIVE_INFINITY
/** A blob pushed to the project's registry repository, and a pull token for it. */
let blob: { digest: string; token: string }
const held = new Set<Socket>()

/**
 * Descriptors the server has open below its limit: a descriptor numbered above it (opened before
 * the limit was lowered) does not take one of the slots open() and accept() can still use.
 */
const openFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).filter((n) => Number(n) < limit).length
const alive = () => {
  try {
    process.kill(wharf.pid, 0)
    return true
  } catch {
    return false
  }
}

async function waitFor(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!ok()) {
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what} (server has ${openFds(wharf.pid)} of ${limit} descriptors open)`)
    await sleep(20)
  }
}

/**
 * Opens idle connections until the server holds `limit - free` descriptors (all of them for
 * free = 0), and holds them steadily: the end of an earlier request may free one a moment later.
 */
async function fill(free = 0): Promise<void> {
  for (let round = 0; round < 20; round++) {
    await fillOnce(limit - free)
    await sleep(150)
    if (openFds(wharf.pid) === limit - free) return
  }
  throw new Error(`the server's descriptors do not settle at ${limit - free}: ${openFds(wharf.pid)}`)
}

async function fillOnce(target: number): Promise<void> {
  for (let tries = 0; openFds(wharf.pid) < target; tries++) {
    if (tries > 4 * limit) throw new Error(`cannot fill the server's descriptors: ${openFds(wharf.pid)} of ${limit}`)
    const before = openFds(wharf.pid)
    const s = connect(wharf.port, '127.0.0.1')
    s.on('error', () => held.delete(s))
    s.on('close', () => held.delete(s))
    held.add(s)
    // Accepted when the server's count goes up; refused (accepted and closed by libuv) when full.
    await Promise.race([
      waitFor('an accept', () => openFds(wharf.pid) > before || s.destroyed, 2000).catch(() => {}),
      new Promise((r) => s.once('close', r)),
    ])
  }
  // Over the target (a held connection may be accepted late): give some back.
  await release(openFds(wharf.pid) - target)
}

/** Closes `n` held connections and waits until the server has closed its ends. */
async function release(n: number): Promise<void> {
  if (n <= 0) return
  const goal = openFds(wharf.pid) - n
  for (const s of [...held].slice(0, n)) {
    s.destroy()
    held.delete(s)
  }
  await waitFor(`${n} descriptors freed`, () => openFds(wharf.pid) <= goal)
}

interface HttpResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
}

/** One request on a fresh connection that is closed after it; rejects when the server drops it. */
function get(urlPath: string, headers: Record<string, string> = {}): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${wharf.url}${urlPath}`,
      { agent: false, headers: { connection: 'close', ...headers }, timeout: 20_000 },
      (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', reject)
      },
    )
    req.on('timeout', () => req.destroy(new Error(`GET ${urlPath}: timeout`)))
    req.on('error', reject)
    req.end()
  })
}

const repoUrl = () => `${wharf.url}/fd/app.git`
const gitApiPaths = () => [
  `/api/v4/projects/${projectId}/repository/branches`,
  `/api/v4/projects/${projectId}/repository/tags`,
  `/api/v4/projects/${projectId}/repository/branches/main`,
]

function assert503Problem(r: HttpResult, what: string): void {
  assert.equal(r.status, 503, `${what}: ${r.status} ${r.text.slice(0, 300)}`)
  assert.match(String(r.headers['content-type']), /^application\/json/)
  assert.match(String(r.headers['retry-after']), /^[1-9][0-9]*$/)
  const body = JSON.parse(r.text)
  assert.equal(body.status, 503)
  assert.equal(body.code, 'UNAVAILABLE')
  assert.match(body.message, /^503 .*EMFILE/)
  assert.doesNotMatch(r.text, /\bat .*\.ts:\d+/, 'no stack trace')
}

before(async () => {
  client = await gitClient()
  wharf = await startWharf()
  projectId = await wharf.createProject('fd/app', 'public')
  const src = path.join(client.work, 'src')
  await runOk('git', ['init', '-q', '-b', 'main', src])
  await writeFile(path.join(src, 'README.md'), '# fd\n')
  const author = {
    GIT_AUTHOR_NAME: 'E2E',
    GIT_AUTHOR_EMAIL: 'e2e@example.com',
    GIT_COMMITTER_NAME: 'E2E',
    GIT_COMMITTER_EMAIL: 'e2e@example.com',
  }
  await runOk('git', ['-C', src, 'add', '.'], { env: author })
  await runOk('git', ['-C', src, 'commit', '-qm', 'first'], { env: author })
  await runOk('git', ['-C', src, 'tag', 'v1'], { env: author })
  const push = await client.git(['push', repoUrl(), 'main', 'v1'], { cwd: src, creds: { username: 'root', password: wharf.rootPassword } })
  assert.equal(push.code, 0, describeResult(push))
  const content = randomBytes(4096)
  const digest = sha256(content)
  const pushed = await http('POST', `${wharf.url}/v2/fd/app/blobs/uploads/?digest=${digest}`, {
    body: content,
    headers: { 'content-type': 'application/octet-stream' },
  })
  assert.equal(pushed.status, 201, pushed.describe)
  const challenge = parseChallenge((await fetch(`${wharf.url}/v2/fd/app/blobs/${digest}`)).headers.get('www-authenticate'))
  blob = { digest, token: await registryToken(challenge!, { username: 'root', password: wharf.rootPassword }) }
  // Warm up what a first request opens once (the repository, lazily loaded modules).
  for (const p of gitApiPaths()) assert.equal((await get(p)).status, 200)
  assert.equal((await client.git(['ls-remote', repoUrl()])).code, 0)
  assert.equal((await get(`/v2/fd/app/blobs/${digest}`, { authorization: `Bearer ${blob.token}` })).status, 200)
  await sleep(200)
  limit = openFds(wharf.pid) + HEADROOM
  await runOk('prlimit', ['--pid', String(wharf.pid), `--nofile=${limit}:${limit}`])
})

after(async () => {
  for (const s of held) s.destroy()
  await wharf?.stop()
  await client?.dispose()
})

describe('a server out of file descriptors', () => {
  it('with every descriptor taken, git and API requests are refused or dropped, and the server stays up', async () => {
    await fill(0)
    assert.equal(openFds(wharf.pid), limit)
    const results = await Promise.allSettled([
      ...Array.from({ length: 4 }, () => client.git(['ls-remote', repoUrl()])),
      ...Array.from({ length: 3 }, () => gitApiPaths().map((p) => get(p))).flat(),
    ])
    for (const r of results) {
      if (r.status === 'rejected') continue // dropped at accept(): a connection error for the client
      const v = r.value
      if ('status' in v) assert.ok(v.status === 200 || v.status === 503, `API answered ${v.status}: ${v.text.slice(0, 300)}`)
      else
        assert.ok(
          v.code === 0 || /503|Empty reply|reset|Recv failure|Failed to connect|unable to access/i.test(v.stderr),
          describeResult(v),
        )
    }
    await sleep(300)
    assert.ok(alive(), `the server exited:\n${await wharf.logTail(40)}`)
  })

  it('with a connection accepted but no descriptors for git, the API answers a 503 problem and git sees a 503 in plain text', async () => {
    // Two free descriptors: one for the accepted connection, one too few for git's pipes.
    for (const p of gitApiPaths()) {
      await fill(2)
      assert503Problem(await get(p), p)
    }
    await fill(2)
    const refs = await get('/fd/app.git/info/refs?service=git-upload-pack')
    assert.equal(refs.status, 503, refs.text)
    assert.match(String(refs.headers['content-type']), /^text\/plain/)
    assert.match(String(refs.headers['retry-after']), /^[1-9][0-9]*$/)
    assert.match(refs.text, /cannot start git: the server is out of resources \(EMFILE\); retry later/)

    await fill(2)
    const ls = await client.git(['ls-remote', repoUrl()])
    assert.notEqual(ls.code, 0)
    assert.match(ls.stderr, /503/, describeResult(ls))

    // A blob whose file cannot be opened: the registry's own error format, 503 UNAVAILABLE.
    await fill(1)
    const pull = await get(`/v2/fd/app/blobs/${blob.digest}`, { authorization: `Bearer ${blob.token}` })
    assert.equal(pull.status, 503, pull.text.slice(0, 300))
    assert.match(String(pull.headers['retry-after']), /^[1-9][0-9]*$/)
    assert.equal(JSON.parse(pull.text).errors[0].code, 'UNAVAILABLE')

    // A burst at once: each is answered (200 or 503) or dropped, none takes the server down.
    await fill(4)
    const burst = await Promise.allSettled([
      ...Array.from({ length: 8 }, () => gitApiPaths().map((p) => get(p))).flat(),
      ...Array.from({ length: 4 }, () => client.git(['ls-remote', repoUrl()])),
    ])
    let answered503 = 0
    for (const r of burst) {
      if (r.status === 'rejected' || !('status' in r.value)) continue
      assert.ok(r.value.status === 200 || r.value.status === 503, `${r.value.status} ${r.value.text.slice(0, 300)}`)
      if (r.value.status === 503) {
        assert503Problem(r.value, 'burst')
        answered503++
      }
    }
    assert.ok(answered503 > 0, 'some API requests were accepted and refused with 503')
    await sleep(300)
    assert.ok(alive(), `the server exited:\n${await wharf.logTail(40)}`)
  })

  it('once the held connections are gone, git clone and the API work again', async () => {
    await release(held.size)
    assert.ok(alive(), `the server exited:\n${await wharf.logTail(40)}`)
    const dest = path.join(client.work, 'clone')
    const clone = await client.git(['clone', '-q', repoUrl(), dest])
    assert.equal(clone.code, 0, `${describeResult(clone)}\n--- server log ---\n${await wharf.logTail(40)}`)
    const log = await runOk('git', ['-C', dest, 'log', '--format=%s'])
    assert.equal(log.stdout.trim(), 'first')
    for (const p of gitApiPaths()) assert.equal((await get(p)).status, 200, p)
    assert.equal((await get(`/v2/fd/app/blobs/${blob.digest}`, { authorization: `Bearer ${blob.token}` })).status, 200)
    const serverLog = await wharf.logTail(400)
    assert.match(serverLog, /request refused: server busy/)
    assert.doesNotMatch(serverLog, /uncaught exception|unhandled promise rejection/)
  })
})
