// Git on a shared volume (issue 15): two Wharf nodes, each its own app, services and database
// handle, over one database and one git root (`git.repositoriesDir` pointing every node at the
// same directory), served to the real git CLI on two ports. Pushes through one node are cloned
// through the other, pushes race through both, repositories are made and removed from both, and a
// node starting up leaves the other's work in the shared directory alone.
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, rm, stat, writeFile } from 'node:fs/promises'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { insertPushEvent } from '../../src/git/queries.ts'
import type { Principal } from '../../src/auth/principals.ts'
import type { Database, Project, User } from '../../src/metadata/schema.ts'
import { createServices, type Services } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'
import { openTestDb, TEST_DIALECT } from '../helpers/database.ts'

const ROOT_PASSWORD = 'root-password-123'
const log = pino({ level: 'silent' })

interface Node {
  db: Kysely<Database>
  services: Services
  app: FastifyInstance
  base: string
}

let tmp: string
let gitRoot: string
let a: Node
let b: Node
let root: User
let seq = 0

async function startNode(): Promise<Node> {
  const db = await openTestDb(join(tmp, 'data'))
  const services = await createServices(db, createFsDriver(join(tmp, 'data', 'storage')), {
    publicUrl: 'http://wharf.test',
    tokenTtlSeconds: 300,
    pageMax: 1000,
    rootPassword: ROOT_PASSWORD,
    gitRoot,
  })
  const app = await buildApp({ logger: log, ...services, publicUrl: 'http://wharf.test', limits: { manifestBytes: 4 << 20 } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return { db, services, app, base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}` }
}

function git(args: string[], cwd = tmp): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const auth = `Authorization: Basic ${Buffer.from(`root:${ROOT_PASSWORD}`).toString('base64')}`
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['-c', `http.extraHeader=${auth}`, ...args], {
      cwd,
      env: {
        PATH: process.env.PATH,
        HOME: tmp,
        GIT_CONFIG_NOSYSTEM: '1',
        GIT_TERMINAL_PROMPT: '0',
        GIT_AUTHOR_NAME: 'Dev',
        GIT_AUTHOR_EMAIL: 'dev@example.com',
        GIT_COMMITTER_NAME: 'Dev',
        GIT_COMMITTER_EMAIL: 'dev@example.com',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (c) => (stdout += c))
    child.stderr.on('data', (c) => (stderr += c))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

async function gitOk(args: string[], cwd?: string): Promise<string> {
  const r = await git(args, cwd)
  assert.equal(r.code, 0, `git ${args.join(' ')}:\n${r.stderr}`)
  return r.stdout.trim()
}

async function project(): Promise<Project> {
  const group = await a.services.groups.createGroup(root, { path: `g${++seq}`, visibility: 'private' })
  return a.services.projects.createProject(root, { namespaceId: group.id, path: `p${seq}` })
}

const url = (node: Node, p: Project) => `${node.base}/${p.full_path}.git`

/** A work tree cloned through `node` with one new commit on `branch`. */
async function commitOn(node: Node, p: Project, name: string, branch: string): Promise<string> {
  const dir = join(tmp, `w${++seq}`)
  await gitOk(['clone', '--quiet', url(node, p), dir])
  await gitOk(['checkout', '--quiet', '-B', branch], dir)
  await writeFile(join(dir, `${name}.txt`), `${name}\n`)
  await gitOk(['add', '-A'], dir)
  await gitOk(['commit', '--quiet', '-m', name], dir)
  return dir
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'wharf-git-nodes-'))
  // Outside the data directory, as a mounted volume would be.
  gitRoot = join(tmp, 'shared-volume', 'repositories')
  a = await startNode()
  b = await startNode()
  root = (await a.db.selectFrom('users').selectAll().where('username', '=', 'root').executeTakeFirst())!
})

after(async () => {
  for (const n of [a, b]) {
    await n?.app.close()
    await n?.db.destroy()
  }
  await rm(tmp, { recursive: true, force: true })
})

describe('git on a root two nodes share', () => {
  it('a push through A is cloned through B, and B sees A’s push event', async () => {
    const p = await project()
    const work = await commitOn(a, p, 'one', 'main')
    await gitOk(['push', '--quiet', 'origin', 'main'], work)
    const sha = await gitOk(['rev-parse', 'HEAD'], work)
    const clone = join(tmp, `c${++seq}`)
    await gitOk(['clone', '--quiet', url(b, p), clone])
    assert.equal(await gitOk(['rev-parse', 'HEAD'], clone), sha)
    assert.equal((await b.services.git!.pushHistory(p.id, { limit: 10, offset: 0 })).total, 1)
    assert.deepEqual(await b.services.git!.repos.list(), await a.services.git!.repos.list())
  })

  it('pushes racing through both nodes: different branches both land; the same branch lands once, the other is refused', async () => {
    const p = await project()
    const seed = await commitOn(a, p, 'seed', 'main')
    await gitOk(['push', '--quiet', 'origin', 'main'], seed)
    const works = await Promise.all([
      commitOn(a, p, 'x', 'feature-a'),
      commitOn(b, p, 'y', 'feature-b'),
      commitOn(a, p, 'm1', 'main'),
      commitOn(b, p, 'm2', 'main'),
    ])
    const results = await Promise.all(works.map((w) => git(['push', '--porcelain', 'origin', 'HEAD'], w)))
    assert.equal(results[0]!.code, 0, results[0]!.stderr)
    assert.equal(results[1]!.code, 0, results[1]!.stderr)
    const main = results.slice(2).map((r) => r.code)
    assert.deepEqual(
      main.sort(),
      [0, 1],
      `one push to main wins, the other is refused:\n${results
        .slice(2)
        .map((r) => r.stdout + r.stderr)
        .join('\n')}`,
    )
    const heads = await gitOk(['ls-remote', '--heads', url(b, p)])
    assert.equal(heads.split('\n').length, 3, heads)
    const bare = join(gitRoot, `${p.id}.git`)
    await gitOk(['--git-dir', bare, 'fsck', '--no-progress'])
  })

  it('repositories made at once through both nodes end up one, and a project deleted through A is gone through B', async () => {
    const projects = await Promise.all([project(), project(), project()])
    const repos = await Promise.all(projects.flatMap((p) => [a.services.git!.repository(p), b.services.git!.repository(p)]))
    for (const [i, p] of projects.entries()) assert.equal(repos[2 * i], repos[2 * i + 1], `project ${p.id}: one directory`)
    for (const p of projects) await gitOk(['--git-dir', join(gitRoot, `${p.id}.git`), 'rev-parse', '--git-dir'])
    assert.deepEqual(await readdir(join(gitRoot, '.wharf', 'tmp')), [], 'no half-made repository left behind')

    const p = projects[0]!
    const work = await commitOn(b, p, 'doomed', 'main')
    await gitOk(['push', '--quiet', 'origin', 'main'], work)
    await a.services.projects.deleteProject(p)
    for (let i = 0; i < 100 && (await stat(join(gitRoot, `${p.id}.git`)).catch(() => undefined)); i++)
      await new Promise((r) => setTimeout(r, 20))
    await assert.rejects(stat(join(gitRoot, `${p.id}.git`)), 'the repository is removed')
    const r = await git(['ls-remote', url(b, p)])
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /not found|404/i)
  })

  it('a node starting up leaves the scratch files of the other node in the shared root alone, and rewrites the hooks whole', async () => {
    const scratch = a.services.git!.repos.scratchFile()
    await writeFile(scratch, 'an index A is building a commit with')
    try {
      // What B's start does to the shared root: the layout and hooks.
      await b.services.git!.repos.init()
      await stat(scratch)
      const hooks = await readdir(join(gitRoot, '.wharf', 'hooks'))
      assert.deepEqual(hooks.sort(), ['post-receive', 'pre-receive'])
    } finally {
      await rm(scratch, { force: true })
    }
  })

  it('a push event node A is delivering is not delivered again by node B’s redelivery sweep meanwhile', {
    // On SQLite there is one node: a claim another process holds is a dead one's (ci-limits' restart test).
    skip: TEST_DIALECT !== 'postgres' && 'one node on SQLite',
  }, async () => {
    const p = await project()
    const id = await insertPushEvent(a.db, {
      projectId: p.id,
      projectPath: p.full_path,
      principal: JSON.stringify({ kind: 'anonymous' }),
      updates: '[]',
      at: new Date().toISOString(),
    })
    let release!: () => void
    let entered!: () => void
    const inListener = new Promise<void>((r) => (entered = r))
    const offA = a.services.git!.onPush(async (e) => {
      if (e.id !== id) return
      entered()
      await new Promise<void>((r) => (release = r))
    })
    const heardByB: number[] = []
    const offB = b.services.git!.onPush((e) => void heardByB.push(e.id))
    try {
      const event = {
        id,
        handled: 0,
        projectId: p.id,
        projectPath: p.full_path,
        principal: { kind: 'anonymous' as const },
        updates: [],
        at: '',
      }
      const delivering = a.services.git!.publish(event, log)
      await inListener
      assert.equal(await b.services.git!.redeliverPending(log), 0)
      assert.deepEqual(heardByB, [], 'B left the event to A')
      release()
      assert.equal(await delivering, true)
      for (let i = 0; i < 100; i++) {
        const row = await a.db.selectFrom('push_events').select('done_at').where('id', '=', id).executeTakeFirstOrThrow()
        if (row.done_at) break
        await new Promise((r) => setTimeout(r, 20))
      }
      assert.equal(await b.services.git!.redeliverPending(log), 0)
      assert.deepEqual(heardByB, [])
    } finally {
      offA()
      offB()
    }
  })

  it('recovering dead nodes’ pushes leaves a push another node is running alone', {
    skip: TEST_DIALECT !== 'postgres' && 'one node on SQLite',
  }, async () => {
    const p = await project()
    const principal: Principal = {
      kind: 'user',
      userId: root.id,
      username: 'root',
      isAdmin: true,
      credential: { kind: 'password', userId: root.id },
    }
    const live = await a.services.git!.pushSpool(p, principal)
    try {
      assert.equal(await b.services.git!.recoverSpooled(log), 0)
      const left = await readdir(b.services.git!.repos.spoolDir)
      assert.ok(
        left.some((n) => join(b.services.git!.repos.spoolDir, n).startsWith(live)),
        `A's push in flight keeps its spool files: ${left}`,
      )
    } finally {
      await a.services.git!.completePush(p, principal, live, '127.0.0.1', log)
    }
  })
})
