import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { openTestDb } from '../../test/helpers/database.ts'
import { ACCESS_LEVELS } from '../auth/roles.ts'
import { GitRepos } from '../git/repos.ts'
import { createProjects } from '../projects/index.ts'
import { deleteRepositoriesUnder } from '../registry/index.ts'
import { Users } from '../users/index.ts'
import { Pipelines } from './pipelines.ts'
import * as q from './queries.ts'
import { nextRunAt, PipelineSchedules } from './schedules.ts'

const CI = `build:
  script: [make]
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
nightly-only:
  script: [make nightly]
  rules:
    - if: $NIGHTLY == "yes"
`

/** A project with one commit, and schedules on a clock the test moves (no waiting for cron). */
async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-sched-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openTestDb(dir)
  t.after(() => db.destroy())
  const { projects, groups, members, projectAccess } = createProjects(db, deleteRepositoriesUnder)
  const users = new Users(db)
  const root = await users.createUser({ username: 'root', password: 'rootpassword', isAdmin: true })
  const dev = await users.createUser({ username: 'dev', password: 'devpassword' })
  const group = await groups.createGroup(root, { path: 'team', visibility: 'private' })
  const project = await projects.createProject(root, { namespaceId: group.id, path: 'app' })
  await members.addMember(ACCESS_LEVELS.owner, 'project', project.id, dev.id, ACCESS_LEVELS.developer, null)
  const repos = new GitRepos(join(dir, 'git'))
  await repos.init()
  const bare = await repos.ensure(project.id, GitRepos.ownerOf(project))
  const work = join(dir, 'work')
  await mkdir(work)
  const env = { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@x' }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim()
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, '.gitlab-ci.yml'), CI)
  git('add', '-A')
  git('commit', '-q', '-m', 'ci')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  const clock = { now: Date.parse('2026-12-03T09:58:00.000Z') }
  const pipelines = new Pipelines({ db, repos, projectAccess, publicUrl: 'http://wharf.test', now: () => clock.now })
  t.after(() => pipelines.close())
  const make = () => new PipelineSchedules({ db, pipelines, projectAccess, now: () => clock.now })
  return { db, users, members, project, root, dev, clock, pipelines, schedules: make(), make }
}

describe('nextRunAt', () => {
  it('reads the cron in the schedule’s time zone, across both DST changes', () => {
    // 02:30 every day in New York: EST is UTC-5, EDT UTC-4; 8 March 2026 skips 02:00–03:00.
    const ny = (from: string) => nextRunAt('30 2 * * *', 'America/New_York', new Date(from))
    assert.equal(ny('2026-03-06T12:00:00Z'), '2026-03-07T07:30:00.000Z')
    assert.equal(ny('2026-03-07T12:00:00Z'), '2026-03-08T07:30:00.000Z', 'the skipped 02:30 runs at the first instant after: 03:30 EDT')
    assert.equal(ny('2026-03-08T12:00:00Z'), '2026-03-09T06:30:00.000Z')
    // 09:00 Berlin: CEST (UTC+2) until 25 October 2026, CET (UTC+1) after.
    const berlin = (from: string) => nextRunAt('0 9 * * 1-5', 'Europe/Berlin', new Date(from))
    assert.equal(berlin('2026-10-23T08:00:00Z'), '2026-10-26T08:00:00.000Z', 'Friday 10:00 local is past: Monday 09:00 CET')
    assert.equal(berlin('2026-10-22T06:00:00Z'), '2026-10-22T07:00:00.000Z')
    assert.equal(nextRunAt('@daily', 'Asia/Tokyo', new Date('2026-12-03T10:00:00Z')), '2026-12-03T15:00:00.000Z')
    assert.equal(nextRunAt('*/5 * * * *', 'UTC', new Date('2026-12-03T10:00:00Z')), '2026-12-03T10:05:00.000Z', 'strictly after')
  })

  it('refuses a bad cron line or an unknown zone, naming the attribute', () => {
    for (const cron of ['61 * * * *', '* * * *', '0 0 * * * *', 'every day', '@reboot', ''])
      assert.throws(() => nextRunAt(cron, 'UTC', new Date()), { code: 'BAD_REQUEST', message: 'cron is invalid syntax' }, cron)
    assert.throws(() => nextRunAt('0 0 * * *', 'Mars/Olympus', new Date()), { message: 'cron_timezone is invalid syntax' })
  })
})

describe('PipelineSchedules', () => {
  it('runs a due schedule once as its owner with its variables and source schedule, then waits for the next run', async (t) => {
    const s = await setup(t)
    const sched = await s.schedules.create(s.project, s.dev.id, {
      description: 'nightly',
      ref: 'main',
      cron: '0 10 * * *',
      cron_timezone: 'UTC',
    })
    assert.equal(sched.next_run_at, '2026-12-03T10:00:00.000Z')
    await s.schedules.addVariable(sched, 'NIGHTLY', { value: 'yes' })
    assert.deepEqual(await s.schedules.runDue(), { ran: [], deactivated: [], failed: [] }, 'not due yet')

    s.clock.now = Date.parse('2026-12-03T10:00:30Z')
    const report = await s.schedules.runDue()
    assert.equal(report.ran.length, 1)
    const p = (await q.findPipeline(s.db, report.ran[0]![1]))!
    assert.deepEqual([p.source, p.ref, p.user_id, p.pipeline_schedule_id], ['schedule', 'main', s.dev.id, sched.id])
    assert.deepEqual(
      (await q.pipelineJobs(s.db, p.id)).map((j) => j.name),
      ['build', 'nightly-only'],
      'rules saw CI_PIPELINE_SOURCE=schedule and the schedule variable',
    )
    assert.deepEqual(JSON.parse(p.variables), [{ key: 'NIGHTLY', value: 'yes', variable_type: 'env_var' }])
    const after = await s.schedules.find(s.project, sched.id)
    assert.equal(after.next_run_at, '2026-12-04T10:00:00.000Z')
    assert.equal(after.last_pipeline_id, p.id)
    assert.deepEqual((await s.schedules.runDue()).ran, [], 'claimed: the same minute does not run twice')
  })

  it('two schedulers on one database run a due schedule once', async (t) => {
    const s = await setup(t)
    const sched = await s.schedules.create(s.project, s.dev.id, { description: 'x', ref: 'main', cron: '0 10 * * *' })
    s.clock.now = Date.parse('2026-12-03T10:00:05Z')
    const [a, b] = await Promise.all([s.make().runDue(), s.make().runDue()])
    assert.equal(a.ran.length + b.ran.length, 1)
    assert.equal(await q.countPipelines(s.db, s.project.id, { scheduleId: sched.id }), 1)
  })

  it('a server down for days runs a missed schedule once, then from now on', async (t) => {
    const s = await setup(t)
    const sched = await s.schedules.create(s.project, s.dev.id, { description: 'x', ref: 'main', cron: '0 * * * *' })
    s.clock.now = Date.parse('2026-12-06T07:20:00Z')
    assert.equal((await s.schedules.runDue()).ran.length, 1)
    assert.equal((await s.schedules.find(s.project, sched.id)).next_run_at, '2026-12-06T08:00:00.000Z')
  })

  it('deactivates a schedule whose owner is blocked, deleted or no longer a developer, as GitLab does', async (t) => {
    const s = await setup(t)
    const blocked = await s.schedules.create(s.project, s.dev.id, { description: 'a', ref: 'main', cron: '0 10 * * *' })
    const inactive = await s.schedules.create(s.project, s.root.id, { description: 'b', ref: 'main', cron: '0 10 * * *', active: false })
    const admin = await s.schedules.create(s.project, s.root.id, { description: 'c', ref: 'main', cron: '0 10 * * *' })
    await s.users.setUserState(s.dev.id, 'blocked')
    s.clock.now = Date.parse('2026-12-03T10:01:00Z')
    const report = await s.schedules.runDue()
    assert.deepEqual(report.deactivated, [blocked.id])
    assert.deepEqual(
      report.ran.map(([id]) => id),
      [admin.id],
      'an inactive schedule never runs',
    )
    assert.equal((await s.schedules.find(s.project, blocked.id)).active, 0)
    assert.equal((await s.schedules.find(s.project, inactive.id)).active, 0)

    // Unblocked but demoted to Reporter: still not allowed to run pipelines.
    await s.users.setUserState(s.dev.id, 'active')
    await s.members.updateMember(ACCESS_LEVELS.owner, 'project', s.project.id, s.dev.id, ACCESS_LEVELS.reporter, null)
    const again = await s.schedules.update(await s.schedules.find(s.project, blocked.id), { active: true })
    assert.equal(again.next_run_at, '2026-12-04T10:00:00.000Z', 'reactivating works the next run out from now')
    s.clock.now = Date.parse('2026-12-04T10:00:00Z')
    assert.deepEqual((await s.schedules.runDue()).deactivated, [blocked.id])
  })

  it('reports a schedule whose ref is gone and keeps its next run', async (t) => {
    const s = await setup(t)
    const sched = await s.schedules.create(s.project, s.dev.id, { description: 'x', ref: 'refs/heads/gone', cron: '0 10 * * *' })
    s.clock.now = Date.parse('2026-12-03T10:00:00Z')
    const r = await s.schedules.runDue()
    assert.deepEqual(r.failed, [[sched.id, 'Reference not found: gone']])
    assert.equal((await s.schedules.find(s.project, sched.id)).next_run_at, '2026-12-04T10:00:00.000Z')
  })
})
