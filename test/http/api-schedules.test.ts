// Pipeline schedules over the API: GitLab's shapes, validation and permissions (Reporters read,
// Developers create and play, the owner or a Maintainer edits, a Maintainer takes ownership).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { ACCESS_LEVELS } from '../../src/auth/roles.ts'
import { apiHarness, assertProblem } from './api-harness.ts'

async function setup(t: TestContext) {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = await h.services.groups.createGroup(root.user, { path: 'sched', visibility: 'private' })
  const project = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@x' }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' })
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, '.gitlab-ci.yml'), 'nightly:\n  script: [make]\n  rules:\n    - if: $CI_PIPELINE_SOURCE == "schedule"\n')
  git('add', '-A')
  git('commit', '-q', '-m', 'ci')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  const member = async (name: string, level: number) => {
    const u = await h.user(name)
    await h.services.members.addMember(ACCESS_LEVELS.owner, 'project', project.id, u.user.id, level, null)
    return u
  }
  const reporter = await member('rep', ACCESS_LEVELS.reporter)
  const dev = await member('dev', ACCESS_LEVELS.developer)
  const dev2 = await member('dev2', ACCESS_LEVELS.developer)
  const maintainer = await member('maint', ACCESS_LEVELS.maintainer)
  const base = `/api/v4/projects/${project.id}/pipeline_schedules`
  return { h, project, reporter, dev, dev2, maintainer, base }
}

test('pipeline schedules: create, read, edit, play, variables and delete in GitLab’s shapes', async (t) => {
  const { h, project, dev, base } = await setup(t)
  const created = await h.req('POST', base, {
    token: dev.token,
    body: { description: 'Nightly', ref: 'main', cron: '30 2 * * *', cron_timezone: 'Europe/Berlin' },
  })
  assert.equal(created.statusCode, 201, created.body)
  const s = created.json()
  assert.deepEqual(
    { ...s, id: 0, created_at: '', updated_at: '', next_run_at: '' },
    {
      id: 0,
      description: 'Nightly',
      ref: 'main',
      cron: '30 2 * * *',
      cron_timezone: 'Europe/Berlin',
      next_run_at: '',
      active: true,
      created_at: '',
      updated_at: '',
      owner: {
        id: dev.user.id,
        username: 'dev',
        name: dev.user.name,
        state: 'active',
        avatar_url: null,
        web_url: 'http://wharf.test:5000/dev',
      },
      last_pipeline: null,
      variables: [],
    },
  )
  // 02:30 in Berlin is 01:30 UTC in winter.
  assert.match(s.next_run_at, /T01:30:00\.000Z$/)
  assert.ok(Date.parse(s.next_run_at) > Date.now())

  // Form bodies (python-gitlab's CLI, curl -F) work too; active false lists under scope=inactive.
  const off = await h.req('POST', base, { token: dev.token, form: { description: 'Off', ref: 'main', cron: '@hourly', active: 'false' } })
  assert.equal(off.statusCode, 201, off.body)
  assert.deepEqual([off.json().active, off.json().cron_timezone], [false, 'UTC'])
  const ids = async (q = '') => ((await h.req('GET', `${base}${q}`, { token: dev.token })).json() as Array<{ id: number }>).map((x) => x.id)
  assert.deepEqual(await ids(), [s.id, off.json().id])
  assert.deepEqual(await ids('?scope=active'), [s.id])
  assert.deepEqual(await ids('?scope=inactive'), [off.json().id])

  const v = await h.req('POST', `${base}/${s.id}/variables`, { token: dev.token, body: { key: 'TARGET', value: 'staging' } })
  assert.equal(v.statusCode, 201, v.body)
  assert.deepEqual(v.json(), { key: 'TARGET', variable_type: 'env_var', value: 'staging', raw: false })
  assert.equal(
    assertProblem(await h.req('POST', `${base}/${s.id}/variables`, { token: dev.token, body: { key: 'TARGET', value: 'x' } }), 400).message,
    '400 key has already been taken',
  )
  const changed = await h.req('PUT', `${base}/${s.id}/variables/TARGET`, {
    token: dev.token,
    body: { value: 'prod', variable_type: 'file' },
  })
  assert.deepEqual(changed.json(), { key: 'TARGET', variable_type: 'file', value: 'prod', raw: false })
  assertProblem(await h.req('PUT', `${base}/${s.id}/variables/NOPE`, { token: dev.token, body: { value: 'x' } }), 404)

  const edited = await h.req('PUT', `${base}/${s.id}`, { token: dev.token, body: { cron: '0 6 * * 1', cron_timezone: 'America/New_York' } })
  assert.equal(edited.statusCode, 200, edited.body)
  assert.equal(edited.json().description, 'Nightly')
  assert.match(edited.json().next_run_at, /T11:00:00\.000Z$/, 'Monday 06:00 EST')
  assert.equal(new Date(edited.json().next_run_at).getUTCDay(), 1)

  // Play: a pipeline now, as the caller, with source schedule and the schedule's variables.
  const played = await h.req('POST', `${base}/${s.id}/play`, { token: dev.token })
  assert.equal(played.statusCode, 201, played.body)
  assert.deepEqual(played.json(), { message: '201 Created' })
  const details = (await h.req('GET', `${base}/${s.id}`, { token: dev.token })).json()
  assert.equal(details.last_pipeline.source, 'schedule')
  assert.equal(details.last_pipeline.ref, 'main')
  assert.deepEqual(details.variables, [{ key: 'TARGET', variable_type: 'file', value: 'prod', raw: false }])
  assert.equal(details.next_run_at, edited.json().next_run_at, 'play leaves the schedule as it was')
  const pipelines = await h.req('GET', `${base}/${s.id}/pipelines`, { token: dev.token })
  assert.equal(pipelines.headers['x-total'], '1')
  assert.deepEqual(
    pipelines.json().map((p: { id: number }) => p.id),
    [details.last_pipeline.id],
  )
  const vars = await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${details.last_pipeline.id}/variables`, { token: dev.token })
  assert.deepEqual(vars.json(), [{ key: 'TARGET', value: 'prod', variable_type: 'file' }])

  const removed = await h.req('DELETE', `${base}/${s.id}/variables/TARGET`, { token: dev.token })
  assert.equal(removed.statusCode, 202, removed.body)
  assert.equal(removed.json().key, 'TARGET')
  assert.equal((await h.req('DELETE', `${base}/${s.id}`, { token: dev.token })).statusCode, 204)
  assert.equal(assertProblem(await h.req('GET', `${base}/${s.id}`, { token: dev.token }), 404).message, '404 Pipeline Schedule Not Found')
  // The pipelines it started stay.
  assert.equal(
    (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${details.last_pipeline.id}`, { token: dev.token })).statusCode,
    200,
  )
})

test('pipeline schedules: a bad cron, time zone or attribute is a 400 naming it; nothing is stored', async (t) => {
  const { h, dev, base } = await setup(t)
  const bad = async (body: Record<string, unknown>, message: string) =>
    assert.equal(assertProblem(await h.req('POST', base, { token: dev.token, body }), 400).message, message)
  const ok = { description: 'x', ref: 'main', cron: '0 1 * * *' }
  await bad({ ...ok, cron: '0 25 * * *' }, '400 cron is invalid syntax')
  await bad({ ...ok, cron: '* * * *' }, '400 cron is invalid syntax')
  await bad({ ...ok, cron_timezone: 'Atlantis/Lost' }, '400 cron_timezone is invalid syntax')
  await bad({ ...ok, owner_id: 1 }, '400 unknown attribute: owner_id')
  await bad({ ...ok, next_run_at: '2020-01-01T00:00:00Z' }, '400 unknown attribute: next_run_at')
  assert.equal(assertProblem(await h.req('POST', base, { token: dev.token, body: { ref: 'main', cron: '0 1 * * *' } }), 400).status, 400)
  assert.equal((await h.req('GET', base, { token: dev.token })).headers['x-total'], '0')
  const s = (await h.req('POST', base, { token: dev.token, body: ok })).json()
  assert.equal(
    assertProblem(await h.req('PUT', `${base}/${s.id}`, { token: dev.token, body: { cron_timezone: 'Nowhere' } }), 400).message,
    '400 cron_timezone is invalid syntax',
  )
  assert.equal((await h.req('GET', `${base}/${s.id}`, { token: dev.token })).json().cron_timezone, 'UTC')
})

test('pipeline schedules: Reporters read, Developers create and play, the owner or a Maintainer edits, a Maintainer takes ownership', async (t) => {
  const { h, reporter, dev, dev2, maintainer, base } = await setup(t)
  const outsider = await h.user('outsider')
  const body = { description: 'x', ref: 'main', cron: '0 1 * * *' }
  assertProblem(await h.req('POST', base, { token: reporter.token, body }), 403)
  assertProblem(await h.req('GET', base, { token: outsider.token }), 404)
  const s = (await h.req('POST', base, { token: dev.token, body })).json()
  assert.equal((await h.req('GET', `${base}/${s.id}`, { token: reporter.token })).statusCode, 200)
  assertProblem(await h.req('POST', `${base}/${s.id}/play`, { token: reporter.token }), 403)

  // Another Developer may run it but not change it.
  assert.equal((await h.req('POST', `${base}/${s.id}/play`, { token: dev2.token })).statusCode, 201)
  for (const [method, url, b] of [
    ['PUT', `${base}/${s.id}`, { description: 'mine' }],
    ['POST', `${base}/${s.id}/variables`, { key: 'A', value: 'b' }],
    ['POST', `${base}/${s.id}/take_ownership`, undefined],
    ['DELETE', `${base}/${s.id}`, undefined],
  ] as const)
    assertProblem(await h.req(method, url, { token: dev2.token, ...(b ? { body: b } : {}) }), 403)

  // A Maintainer edits anyone's and may take it over; then the first owner no longer edits it.
  assert.equal((await h.req('PUT', `${base}/${s.id}`, { token: maintainer.token, body: { description: 'edited' } })).statusCode, 200)
  const taken = await h.req('POST', `${base}/${s.id}/take_ownership`, { token: maintainer.token })
  assert.equal(taken.statusCode, 201, taken.body)
  assert.equal(taken.json().owner.username, 'maint')
  assertProblem(await h.req('PUT', `${base}/${s.id}`, { token: dev.token, body: { active: false } }), 403)
  assert.equal((await h.req('DELETE', `${base}/${s.id}`, { token: maintainer.token })).statusCode, 204)
})
