// Smart HTTP through the whole app: buildApp() listening on an ephemeral port, the real git CLI as
// the client, accounts set up through the services on a real SQLite file in a temp dir.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { gzipSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../app.ts'
import { ACCESS_LEVELS, type PatScope, type Role, type Visibility } from '../auth/roles.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import type { Database, Project, User } from '../metadata/schema.ts'
import { upsertMember } from '../projects/queries.ts'
import { createServices, type Services } from '../services.ts'
import { createFsDriver } from '../storage/fs-driver.ts'
import { ZERO_SHA } from './refs.ts'
import type { GitHosting, PushEvent } from './service.ts'

const ROOT_PASSWORD = 'root-password-123'
const PASSWORD = 'password-1234'

let tmp: string
let db: Kysely<Database>
let services: Services
let git: GitHosting
let app: FastifyInstance
let base: string
let rootUser: User
const logLines: string[] = []
const events: PushEvent[] = []
let seq = 0

/** Runs git with an isolated configuration; `auth` goes in as an extra header, never into a URL. */
function gitCli(args: string[], opts: { cwd?: string; auth?: { username: string; password: string }; env?: Record<string, string> } = {}) {
  const pre = opts.auth
    ? ['-c', `http.extraHeader=Authorization: Basic ${Buffer.from(`${opts.auth.username}:${opts.auth.password}`).toString('base64')}`]
    : []
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn('git', [...pre, ...args], {
      cwd: opts.cwd ?? tmp,
      env: {
        PATH: process.env.PATH,
        HOME: tmp,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_TERMINAL_PROMPT: '0',
        GIT_AUTHOR_NAME: 'Dev',
        GIT_AUTHOR_EMAIL: 'dev@example.com',
        GIT_COMMITTER_NAME: 'Dev',
        GIT_COMMITTER_EMAIL: 'dev@example.com',
        ...opts.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (b) => (stdout += b))
    child.stderr.on('data', (b) => (stderr += b))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function gitOk(args: string[], opts: Parameters<typeof gitCli>[1] = {}) {
  const r = await gitCli(args, opts)
  assert.equal(r.code, 0, `git ${args.join(' ')} failed:\n${r.stderr}\n--- server log ---\n${logLines.slice(-10).join('')}`)
  return r
}

async function makeUser(
  role: Role | null,
  project: Project,
  scopes?: PatScope[],
): Promise<{ user: User; password: string; token?: string }> {
  const user = await services.users.createUser({ username: `u${++seq}`, password: PASSWORD })
  if (role) await upsertMember(db, 'project', project.id, user.id, ACCESS_LEVELS[role], null)
  if (!scopes) return { user, password: PASSWORD }
  const { token } = await services.accessTokens.createPat(user.id, { name: 't', scopes }, 'root')
  return { user, password: token, token }
}

async function makeProject(visibility: Visibility): Promise<Project> {
  const group = await services.groups.createGroup(rootUser, { path: `g${++seq}`, visibility: 'public' })
  return services.projects.createProject(rootUser, { namespaceId: group.id, path: `Proj${seq}`, visibility })
}

const root = () => ({ username: 'root', password: ROOT_PASSWORD })
const url = (p: Project) => `${base}/${p.full_path}.git`

/** A clone with one commit on main, ready to push. */
async function workTree(p: Project, name: string): Promise<string> {
  const dir = join(tmp, name)
  await gitOk(['clone', '--quiet', url(p), dir], { auth: root() })
  await mkdir(join(dir, 'src'), { recursive: true })
  await gitOk(['-C', dir, 'commit', '--quiet', '--allow-empty', '-m', 'first commit'])
  return dir
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wharf-smart-http-'))
  db = await openTestDb(join(tmp, 'data'))
  services = await createServices(db, createFsDriver(join(tmp, 'data', 'storage')), {
    publicUrl: 'http://wharf.test',
    tokenTtlSeconds: 300,
    pageMax: 1000,
    rootPassword: ROOT_PASSWORD,
    gitRoot: join(tmp, 'data', 'git'),
  })
  git = services.git!
  git.onPush((e) => void events.push(e))
  const sink = new Writable({
    write: (c, _e, cb) => {
      logLines.push(String(c))
      cb()
    },
  })
  app = await buildApp({
    logger: pino({ level: 'debug' }, sink),
    ...services,
    publicUrl: 'http://wharf.test',
    limits: { manifestBytes: 4 << 20 },
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
  rootUser = await services.users.actor({
    kind: 'user',
    userId: 1,
    username: 'root',
    isAdmin: true,
    credential: { kind: 'password', userId: 1 },
  })
})

after(async () => {
  await app?.close()
  await db?.destroy()
  await rm(tmp, { recursive: true, force: true })
})

describe('smart HTTP with the git CLI', () => {
  it('clones an empty project, pushes a branch and a tag, and reports each as a push event', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w1')
    const before = events.length
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main'], { auth: root() })
    const sha = (await gitOk(['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim()
    // The response ends only once the push is recorded: the event is there when git returns.
    assert.equal(events.length, before + 1)
    const e = events.at(-1)!
    assert.equal(e.projectId, p.id)
    assert.equal(e.projectPath, p.full_path)
    assert.equal(e.principal.kind === 'user' && e.principal.username, 'root')
    assert.deepEqual(e.updates, [{ ref: 'refs/heads/main', name: 'main', type: 'branch', oldSha: ZERO_SHA, newSha: sha, action: 'create' }])

    await gitOk(['-C', dir, 'tag', '-a', 'v1.0', '-m', 'release'])
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'v1.0'], { auth: root() })
    const tag = events.at(-1)!.updates[0]!
    assert.deepEqual([tag.ref, tag.type, tag.action], ['refs/tags/v1.0', 'tag', 'create'])
    assert.equal((await git.repos.commitInfo(p.id, tag.newSha))!.id, sha, 'an annotated tag peels to its commit')

    // A move, then a second branch and its deletion.
    await gitOk(['-C', dir, 'commit', '--quiet', '--allow-empty', '-m', 'second'])
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main', 'main:refs/heads/topic'], { auth: root() })
    const moved = events.at(-1)!.updates
    const sha2 = (await gitOk(['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim()
    assert.deepEqual(moved.map((u) => [u.name, u.action, u.oldSha, u.newSha]).sort(), [
      ['main', 'update', sha, sha2],
      ['topic', 'create', ZERO_SHA, sha2],
    ])
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', '--delete', 'topic'], { auth: root() })
    assert.deepEqual(
      events.at(-1)!.updates.map((u) => [u.name, u.action, u.newSha]),
      [['topic', 'delete', ZERO_SHA]],
    )

    // Each push's spooled updates (and who pushed them) are gone once it is recorded.
    assert.deepEqual(await readdir(git.repos.spoolDir), [])

    // What CI reads next.
    assert.equal(await git.repos.defaultBranch(p.id), 'main')
    assert.equal(await git.repos.resolveRef(p.id, 'main'), sha2)
    assert.equal((await git.repos.commitInfo(p.id, sha2))!.title, 'second')

    // And a fresh clone sees it all (case-insensitive path).
    const again = join(tmp, 'w1-again')
    await gitOk(['clone', '--quiet', `${base}/${p.full_path.toUpperCase()}.git`, again], { auth: root() })
    assert.equal((await gitOk(['-C', again, 'log', '--format=%s'])).stdout, 'second\nfirst commit\n')
    assert.equal((await gitOk(['-C', again, 'tag'])).stdout, 'v1.0\n')
  })

  it('streams a pack larger than http.postBuffer (a chunked request body) both ways', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-big')
    await writeFile(join(dir, 'big.bin'), randomBytes(12 << 20)) // incompressible: the pack is ~12 MiB
    await gitOk(['-C', dir, 'add', 'big.bin'])
    await gitOk(['-C', dir, 'commit', '--quiet', '-m', 'big'])
    await gitOk(['-C', dir, '-c', 'http.postBuffer=1048576', 'push', '--quiet', 'origin', 'main'], { auth: root() })
    const c = join(tmp, 'w-big-clone')
    await gitOk(['clone', '--quiet', url(p), c], { auth: root() })
    assert.equal((await gitOk(['-C', c, 'hash-object', 'big.bin'])).stdout, (await gitOk(['-C', dir, 'hash-object', 'big.bin'])).stdout)
  })

  it('speaks protocol v2 when the client asks for it (Git-Protocol header)', async () => {
    const p = await makeProject('public')
    const r = await gitOk(['-c', 'protocol.version=2', 'ls-remote', url(p)], { env: { GIT_TRACE_PACKET: '1' } })
    assert.match(r.stderr, /git< version 2/)
  })

  it('names the first pushed branch the default when main was not pushed', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-develop')
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main:develop'], { auth: root() })
    assert.equal(await git.repos.defaultBranch(p.id), 'develop')
    const c = join(tmp, 'w-develop-clone')
    await gitOk(['clone', '--quiet', url(p), c], { auth: root() })
    assert.equal((await gitOk(['-C', c, 'branch', '--show-current'])).stdout.trim(), 'develop')
  })

  it('keeps a push working when a listener fails, and logs the failure', async () => {
    const p = await makeProject('private')
    const off = git.onPush(() => {
      throw new Error('listener boom')
    })
    try {
      const dir = await workTree(p, 'w-boom')
      await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main'], { auth: root() })
      assert.ok(logLines.some((l) => l.includes('push listener failed') && l.includes('listener boom')))
    } finally {
      off()
    }
  })
})

describe('smart HTTP authorization', () => {
  it('clones public projects anonymously, asks for credentials for private ones', async () => {
    const pub = await makeProject('public')
    const priv = await makeProject('private')
    await gitOk(['clone', '--quiet', url(pub), join(tmp, 'anon-pub')])
    const r = await gitCli(['clone', '--quiet', url(priv), join(tmp, 'anon-priv')])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /could not read Username|Authentication failed/)
  })

  it('lets any signed-in user clone internal projects, not anonymous callers', async () => {
    const p = await makeProject('internal')
    const u = await makeUser(null, p)
    await gitOk(['ls-remote', url(p)], { auth: { username: u.user.username, password: u.password } })
    assert.notEqual((await gitCli(['ls-remote', url(p)])).code, 0)
  })

  it('refuses a reporter push with a message git shows', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-reporter')
    const u = await makeUser('reporter', p)
    const r = await gitCli(['-C', dir, 'push', 'origin', 'main'], { auth: { username: u.user.username, password: u.password } })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /Developer role/)
    assert.match(r.stderr, /403/)
  })

  it('lets a developer push, with a password or a write_repository token', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-dev')
    const u = await makeUser('developer', p)
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main'], { auth: { username: u.user.username, password: u.password } })
    const t = await makeUser('developer', p, ['write_repository'])
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main:t'], { auth: { username: t.user.username, password: t.token! } })
  })

  it('lets a read_repository token clone but not push', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-readtoken')
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main'], { auth: root() })
    const u = await makeUser('maintainer', p, ['read_repository'])
    const auth = { username: u.user.username, password: u.token! }
    await gitOk(['clone', '--quiet', url(p), join(tmp, 'w-readtoken-clone')], { auth })
    const r = await gitCli(['-C', dir, 'push', 'origin', 'main:x'], { auth })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /write_repository/)
    const noRepo = await makeUser('maintainer', p, ['read_api'])
    const r2 = await gitCli(['ls-remote', url(p)], { auth: { username: noRepo.user.username, password: noRepo.token! } })
    assert.match(r2.stderr, /read_repository/)
  })

  it('lets a deploy token with read_repository clone its project only', async () => {
    const p = await makeProject('private')
    const other = await makeProject('private')
    const { token, row } = await services.accessTokens.createDeployToken(
      { projectId: p.id },
      { name: 'd', scopes: ['read_repository'] },
      'root',
    )
    const auth = { username: row.username, password: token }
    await gitOk(['ls-remote', url(p)], { auth })
    assert.notEqual((await gitCli(['ls-remote', url(other)], { auth })).code, 0)
    assert.notEqual((await gitCli(['push', url(p), 'HEAD:x'], { auth, cwd: join(tmp, 'w-readtoken') })).code, 0)
  })
})

/** One raw HTTP request to the listening app. */
function raw(method: string, path: string, opts: { headers?: Record<string, string>; body?: Buffer } = {}) {
  return new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }>((resolve, reject) => {
    const req = request(`${base}${path}`, { method, headers: opts.headers ?? {} }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }))
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

const basic = (u: string, p: string) => ({ authorization: `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}` })

describe('smart HTTP routing and answers', () => {
  it('claims only the three smart HTTP endpoints under a .git path', async () => {
    const p = await makeProject('public')
    for (const path of [
      `/${p.full_path}.git/HEAD`,
      `/${p.full_path}.git/objects/info/packs`,
      `/${p.full_path}.git`,
      `/${p.full_path}/info/refs`,
      '/nothing-here',
    ]) {
      const r = await raw('GET', path)
      assert.equal(r.status, 404, path)
      assert.match(String(r.headers['content-type']), /json/, `${path}: Fastify's own not-found answer`)
    }
    assert.equal((await raw('GET', `/${p.full_path}.git/git-upload-pack`)).status, 404, 'GET of a POST endpoint')
    assert.equal((await raw('GET', `/${p.full_path}.git/info/refs?service=git-upload-pack`)).status, 200)
    assert.equal((await raw('GET', '/v2/')).status, 401, 'the registry still answers /v2/')
  })

  it('hides missing and private projects alike', async () => {
    const priv = await makeProject('private')
    const outsider = await makeUser(null, priv)
    const anonMissing = await raw('GET', '/nope/missing.git/info/refs?service=git-upload-pack')
    const anonPrivate = await raw('GET', `/${priv.full_path}.git/info/refs?service=git-upload-pack`)
    for (const r of [anonMissing, anonPrivate]) {
      assert.equal(r.status, 401)
      assert.equal(r.headers['www-authenticate'], 'Basic realm="Wharf"')
    }
    const h = basic(outsider.user.username, outsider.password)
    const missing = await raw('GET', '/nope/missing.git/info/refs?service=git-upload-pack', { headers: h })
    const hidden = await raw('GET', `/${priv.full_path}.git/info/refs?service=git-upload-pack`, { headers: h })
    assert.equal(missing.status, 404)
    assert.equal(hidden.status, 404)
    assert.equal(hidden.body.toString(), missing.body.toString())
    assert.match(String(hidden.headers['content-type']), /^text\/plain/)
  })

  it('answers wrong credentials with a Basic challenge, and refuses dumb HTTP', async () => {
    const p = await makeProject('public')
    const r = await raw('GET', `/${p.full_path}.git/info/refs?service=git-upload-pack`, { headers: basic('root', 'wrong-password') })
    assert.equal(r.status, 401)
    assert.equal(r.headers['www-authenticate'], 'Basic realm="Wharf"')
    assert.equal((await raw('GET', `/${p.full_path}.git/info/refs`)).status, 403)
    const anonPush = await raw('GET', `/${p.full_path}.git/info/refs?service=git-receive-pack`)
    assert.equal(anonPush.status, 401, 'anonymous push to a public project: sign in')
  })

  it('accepts gzip-encoded upload-pack requests', async () => {
    const p = await makeProject('public')
    const dir = await workTree(p, 'w-gzip')
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main'], { auth: root() })
    const sha = (await gitOk(['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim()
    const pkt = (s: string) => `${(s.length + 4).toString(16).padStart(4, '0')}${s}`
    const body = gzipSync(Buffer.from(`${pkt(`want ${sha}\n`)}0000${pkt('done\n')}`))
    const r = await raw('POST', `/${p.full_path}.git/git-upload-pack`, {
      headers: {
        'content-type': 'application/x-git-upload-pack-request',
        'content-encoding': 'gzip',
        'content-length': String(body.length),
      },
      body,
    })
    assert.equal(r.status, 200)
    assert.equal(r.headers['content-type'], 'application/x-git-upload-pack-result')
    assert.ok(r.body.includes(Buffer.from('PACK')), 'a pack comes back')
  })

  it('kills http-backend when the client goes away mid-request', async () => {
    const p = await makeProject('public')
    const marker = `wharf-test-${process.pid}-${Date.now()}`
    const req = request(`${base}/${p.full_path}.git/git-upload-pack`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-git-upload-pack-request', 'user-agent': marker, 'transfer-encoding': 'chunked' },
    })
    req.on('error', () => {})
    req.write('0032want ') // an incomplete request: http-backend waits for more
    const root = git.repos.root
    const running = async () => {
      const found: number[] = []
      for (const pid of await readdir('/proc').catch(() => [] as string[])) {
        if (!/^\d+$/.test(pid)) continue
        const env = await readFile(`/proc/${pid}/environ`, 'latin1').catch(() => '')
        if (env.includes(`GIT_PROJECT_ROOT=${root}\0`)) found.push(Number(pid))
      }
      return found
    }
    let seen: number[] = []
    for (let i = 0; i < 50 && seen.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 50))
      seen = await running()
    }
    assert.ok(seen.length > 0, 'http-backend started')
    req.destroy()
    let left = seen
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 50))
      left = await running()
    }
    assert.deepEqual(left, [], 'no git process left behind')
  })
})

describe('repository API (/api/v4)', () => {
  it('lists branches, tags and push events with GitLab shapes', async () => {
    const p = await makeProject('private')
    const dir = await workTree(p, 'w-api')
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main', 'main:feature'], { auth: root() })
    await gitOk(['-C', dir, 'tag', 'v2'])
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'v2'], { auth: root() })
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', '--delete', 'feature'], { auth: root() })
    const sha = (await gitOk(['-C', dir, 'rev-parse', 'HEAD'])).stdout.trim()
    const reader = await makeUser('reporter', p, ['read_api'])
    const headers = { 'private-token': reader.token! }

    const branches = await app.inject({ url: `/api/v4/projects/${encodeURIComponent(p.full_path)}/repository/branches`, headers })
    assert.equal(branches.statusCode, 200, branches.body)
    assert.equal(branches.headers['x-total'], '1')
    const [main] = branches.json()
    assert.equal(main.name, 'main')
    assert.equal(main.default, true)
    assert.equal(main.protected, false)
    assert.equal(main.can_push, false, 'a reporter cannot push')
    assert.deepEqual(
      [main.commit.id, main.commit.title, main.commit.message, main.commit.author_email],
      [sha, 'first commit', 'first commit\n', 'dev@example.com'],
    )

    const one = await app.inject({ url: `/api/v4/projects/${p.id}/repository/branches/main`, headers })
    assert.equal(one.json().commit.id, sha)
    assert.equal((await app.inject({ url: `/api/v4/projects/${p.id}/repository/branches/nope`, headers })).statusCode, 404)

    const tags = await app.inject({ url: `/api/v4/projects/${p.id}/repository/tags`, headers })
    assert.deepEqual(
      tags.json().map((t: { name: string; target: string; message: string }) => [t.name, t.target, t.message]),
      [['v2', sha, '']],
    )

    const ev = await app.inject({ url: `/api/v4/projects/${p.id}/events?action=pushed`, headers })
    assert.equal(ev.statusCode, 200, ev.body)
    const list = ev.json() as Array<{
      action_name: string
      author_username: string
      push_data: {
        action: string
        ref: string
        ref_type: string
        commit_from: string | null
        commit_to: string | null
        commit_title: string | null
      }
    }>
    assert.deepEqual(
      list.map((e) => [e.action_name, e.push_data.action, e.push_data.ref_type, e.push_data.ref]),
      [
        ['deleted', 'removed', 'branch', 'feature'],
        ['pushed new', 'created', 'tag', 'v2'],
        ['pushed new', 'created', 'branch', 'feature'],
        ['pushed new', 'created', 'branch', 'main'],
      ],
      JSON.stringify(list),
    )
    assert.equal(list[0]!.push_data.commit_to, null)
    assert.equal(list[0]!.push_data.commit_from, sha)
    assert.equal(list.at(-1)!.push_data.commit_title, 'first commit')
    assert.equal(list[0]!.author_username, 'root')
    assert.deepEqual((await app.inject({ url: `/api/v4/projects/${p.id}/events?action=commented`, headers })).json(), [])
    // Branch names with slashes, URL-encoded as GitLab wants them.
    await gitOk(['-C', dir, 'push', '--quiet', 'origin', 'main:feature/x'], { auth: root() })
    const slash = await app.inject({ url: `/api/v4/projects/${p.id}/repository/branches/${encodeURIComponent('feature/x')}`, headers })
    assert.equal(slash.statusCode, 200, slash.body)
    assert.equal(slash.json().name, 'feature/x')
  })

  it('hides private projects and enforces API scopes', async () => {
    const p = await makeProject('private')
    const outsider = await makeUser(null, p, ['api'])
    const repoOnly = await makeUser('developer', p, ['read_repository'])
    const guest = await makeUser('guest', p, ['api'])
    const path = `/api/v4/projects/${p.id}/repository/branches`
    assert.equal((await app.inject({ url: path })).statusCode, 404, 'anonymous: like a missing project')
    assert.equal((await app.inject({ url: path, headers: { 'private-token': 'glpat-bogus' } })).statusCode, 401)
    assert.equal((await app.inject({ url: path, headers: { 'private-token': outsider.token! } })).statusCode, 404)
    assert.equal((await app.inject({ url: path, headers: { 'private-token': repoOnly.token! } })).statusCode, 403)
    assert.equal((await app.inject({ url: path, headers: { 'private-token': guest.token! } })).statusCode, 403)
    const pub = await makeProject('public')
    const anon = await app.inject({ url: `/api/v4/projects/${pub.id}/repository/branches` })
    assert.equal(anon.statusCode, 200)
    assert.deepEqual(anon.json(), [])
  })
})
