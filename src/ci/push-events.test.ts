import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import type { Principal } from '../auth/principals.ts'
import { PUSH_EVENT_ATTEMPTS } from '../git/index.ts'
import * as gitQueries from '../git/queries.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import * as userQueries from '../users/queries.ts'
import { createServices } from '../services.ts'
import { createFsDriver } from '../storage/fs-driver.ts'
import * as q from './queries.ts'

// A push's pipelines survive a crash and a failing listener: the push event is recorded when the
// hook's file is read, and delivered (again) until every update is acknowledged. "Restarts" build
// the services anew over the same database and repositories, as `wharf serve` does.

const log = pino({ level: 'silent' }) as unknown as FastifyBaseLogger
const ZERO = '0'.repeat(40)

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-push-events-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  /** A server start: database, migrations, services (git hosting with CI listening). */
  const start = async () => {
    const db = await openTestDb(join(dir, 'data'))
    const services = await createServices(db, createFsDriver(join(dir, 'data', 'storage')), {
      publicUrl: 'http://wharf.test',
      tokenTtlSeconds: 300,
      pageMax: 1000,
      rootPassword: 'rootpassword',
      gitRoot: join(dir, 'data', 'git'),
    })
    const stop = async () => {
      services.git!.close()
      await services.ci!.pipelines.close()
      await db.destroy()
    }
    t.after(stop)
    return { db, git: services.git!, ci: services.ci!, projects: services.projects, groups: services.groups, stop }
  }
  const first = await start()
  const root = (await userQueries.findUserByUsername(first.db, 'root'))!
  const principal: Principal = {
    kind: 'user',
    userId: root.id,
    username: 'root',
    isAdmin: true,
    credential: { kind: 'password', userId: root.id },
  }
  const group = await first.groups.createGroup(root, { path: 'team', visibility: 'private' })
  const project = await first.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const bare = await first.git.repository(project)

  const work = join(dir, 'work')
  await mkdir(work)
  const git = (...args: string[]) =>
    execFileSync('git', args, {
      cwd: work,
      encoding: 'utf8',
      env: {
        ...process.env,
        GIT_AUTHOR_NAME: 'Ada',
        GIT_AUTHOR_EMAIL: 'ada@example.com',
        GIT_COMMITTER_NAME: 'Ada',
        GIT_COMMITTER_EMAIL: 'ada@example.com',
      },
    }).trim()
  git('init', '-q', '-b', 'main')
  /** Commits and pushes straight into the bare repository (no hook): returns what the hook would have written. */
  const push = async (files: Record<string, string>): Promise<{ sha: string; spool: string }> => {
    for (const [path, text] of Object.entries(files)) await writeFile(join(work, path), text)
    git('add', '-A')
    git('commit', '-q', '-m', 'change')
    let before = ZERO
    try {
      before = execFileSync('git', ['--git-dir', bare, 'rev-parse', 'refs/heads/main'], { encoding: 'utf8' }).trim()
    } catch {
      /* first push */
    }
    git('push', '-q', bare, 'HEAD:refs/heads/main')
    const sha = git('rev-parse', 'HEAD')
    return { sha, spool: `${before} ${sha} refs/heads/main\n` }
  }
  /** The hook's file for one push, where the smart HTTP route would find it. */
  const spoolFile = async (git: typeof first.git, text: string): Promise<string> => {
    const file = git.repos.spoolFile()
    await writeFile(file, text)
    return file
  }
  const pipelinesFor = async (db: typeof first.db, sha: string) => q.listPipelines(db, project.id, { sha, limit: 100, offset: 0 })
  return { first, start, project, principal, push, spoolFile, pipelinesFor }
}

describe('push events', () => {
  it('a push recorded just before a crash gets its pipeline after the restart, exactly once', async (t) => {
    const s = await setup(t)
    const { sha, spool } = await s.push({ '.gitlab-ci.yml': 'build:\n  script: make\n' })
    // What completePush writes before any listener runs: the crash comes right after it.
    const id = await gitQueries.insertPushEvent(s.first.db, {
      projectId: s.project.id,
      projectPath: s.project.full_path,
      principal: JSON.stringify(s.principal),
      updates: JSON.stringify([
        { ref: 'refs/heads/main', name: 'main', type: 'branch', oldSha: spool.split(' ')[0], newSha: sha, action: 'create' },
      ]),
      at: new Date().toISOString(),
    })
    await s.first.stop()

    const second = await s.start()
    assert.equal((await s.pipelinesFor(second.db, sha)).length, 0)
    assert.equal(await second.git.redeliverPending(log), 1)
    const [p, ...more] = await s.pipelinesFor(second.db, sha)
    assert.equal(more.length, 0)
    assert.equal(p!.status, 'pending')
    assert.equal(p!.source, 'push')
    assert.ok((await gitQueries.findPushEvent(second.db, id))!.done_at)
    // Another sweep, and another restart: still one pipeline.
    assert.equal(await second.git.redeliverPending(log), 0)
    await second.stop()
    const third = await s.start()
    assert.equal(await third.git.redeliverPending(log), 0)
    assert.equal((await s.pipelinesFor(third.db, sha)).length, 1)
  })

  it('ref updates a crash left unread (the server died during the push) are recorded at the next start', async (t) => {
    const s = await setup(t)
    const { sha, spool } = await s.push({ '.gitlab-ci.yml': 'build:\n  script: make\n' })
    // What the push route leaves when the server dies after the hook ran: the hook's file and its pusher file.
    const file = await s.first.git.pushSpool(s.project, s.principal)
    await writeFile(file, spool)
    // And a push that never got to its hook (rejected, or cut off before): only the pusher file.
    await s.first.git.pushSpool(s.project, s.principal)
    await s.first.stop()
    // The restart comes minutes later: on PostgreSQL (several nodes may share the spool) a spooled
    // push is taken once its node has stopped keeping it fresh for a while.
    const minutesAgo = new Date(Date.now() - 10 * 60_000)
    const spooled = await readdir(s.first.git.repos.spoolDir)
    for (const name of spooled) await utimes(join(s.first.git.repos.spoolDir, name), minutesAgo, minutesAgo)

    const second = await s.start()
    assert.equal(await second.git.recoverSpooled(log), 1)
    assert.deepEqual(await readdir(second.git.repos.spoolDir), [], 'both pushes cleared')
    assert.equal(await second.git.redeliverPending(log), 1)
    const [p, ...more] = await s.pipelinesFor(second.db, sha)
    assert.equal(more.length, 0)
    assert.equal(p!.status, 'pending')
    assert.equal(p!.user_id, s.principal.kind === 'user' ? s.principal.userId : -1)
    assert.equal(await second.git.recoverSpooled(log), 0)
    assert.equal(await second.git.redeliverPending(log), 0)
    assert.equal((await s.pipelinesFor(second.db, sha)).length, 1)
  })

  it('a push whose pipeline creation failed is retried until the pipeline exists', async (t) => {
    const s = await setup(t)
    const { sha, spool } = await s.push({ '.gitlab-ci.yml': 'build:\n  script: make\n' })
    // The planner is gone (a server shutting down while a push completes): creating the pipeline throws.
    await s.first.ci.pipelines.close()
    const event = await s.first.git.completePush(s.project, s.principal, await s.spoolFile(s.first.git, spool), '127.0.0.1', log)
    assert.ok(event)
    const row = (await gitQueries.findPushEvent(s.first.db, event.id))!
    assert.deepEqual([row.done_at, row.handled, row.attempts], [null, 0, 1])
    assert.match(row.last_error ?? '', /planner is closed/)
    assert.equal((await s.pipelinesFor(s.first.db, sha)).length, 0)

    const second = await s.start()
    assert.equal(await second.git.redeliverPending(log), 1)
    assert.equal((await s.pipelinesFor(second.db, sha)).length, 1)
    const done = (await gitQueries.findPushEvent(second.db, event.id))!
    assert.deepEqual([Boolean(done.done_at), done.handled], [true, 1])
    assert.equal(await second.git.redeliverPending(log), 0)
    assert.equal((await s.pipelinesFor(second.db, sha)).length, 1)
  })

  it('a listener that keeps failing gets the event again, without a second pipeline, and is given up after the last attempt', async (t) => {
    const s = await setup(t)
    const { sha, spool } = await s.push({ '.gitlab-ci.yml': 'build:\n  script: make\n' })
    let calls = 0
    s.first.git.onPush(() => {
      calls++
      throw new Error('webhook down')
    })
    const event = (await s.first.git.completePush(s.project, s.principal, await s.spoolFile(s.first.git, spool), '127.0.0.1', log))!
    for (let i = 1; i < PUSH_EVENT_ATTEMPTS; i++) assert.equal(await s.first.git.redeliverPending(log), 1)
    assert.equal(calls, PUSH_EVENT_ATTEMPTS)
    const row = (await gitQueries.findPushEvent(s.first.db, event.id))!
    assert.deepEqual([Boolean(row.done_at), row.attempts, row.last_error], [true, PUSH_EVENT_ATTEMPTS, 'webhook down'])
    assert.equal(await s.first.git.redeliverPending(log), 0)
    assert.equal((await s.pipelinesFor(s.first.db, sha)).length, 1, 'CI acknowledged its update the first time')
  })
})
