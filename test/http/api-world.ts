// A small populated Wharf for tests that sweep many routes: a group with two projects, the first with
// a commit on main (.gitlab-ci.yml), a pipeline and its job, CI variables, a trigger, a runner and a
// second user. Setup goes through the services (and the runner through the API).
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ApiHarness } from './api-harness.ts'

export type World = Awaited<ReturnType<typeof world>>

/** The world; `git` runs in a work tree whose main is pushed to the first project's repository (`bare`). */
export async function world(h: ApiHarness) {
  const root = await h.root()
  const other = await h.user('other')
  const group = await h.services.groups.createGroup(root.user, { path: 'grp', visibility: 'private' })
  const project = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'app' })
  const target = await h.services.projects.createProject(root.user, { namespaceId: group.id, path: 'lib' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: h.tmpDir,
    GIT_AUTHOR_NAME: 'A',
    GIT_AUTHOR_EMAIL: 'a@x',
    GIT_COMMITTER_NAME: 'A',
    GIT_COMMITTER_EMAIL: 'a@x',
  }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' })
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, '.gitlab-ci.yml'), 'build: { script: [make] }\ntest: { script: [make test] }\nlint: { script: [make lint] }\n')
  git('add', '-A')
  git('commit', '-q', '-m', 'ci')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  const ci = h.services.ci!
  const pipeline = await ci.pipelines.createForRef(project, 'main', 'api', root.user.id, [])
  const job = (await ci.pipelines.jobs(pipeline.id, false))[0]!
  await ci.variables.create('project', project.id, { key: 'K', value: 'v' })
  await ci.variables.create('group', group.id, { key: 'K', value: 'v' })
  const created = await h.req('POST', '/api/v4/user/runners', {
    token: root.token,
    body: { runner_type: 'project_type', project_id: project.id },
  })
  assert.equal(created.statusCode, 201, created.body)
  const runner = created.json() as { id: number }
  const trigger = await ci.triggers.create(project.id, root.user.id, 't')
  const schedule = await ci.schedules.create(project, root.user.id, { description: 'nightly', ref: 'main', cron: '0 2 * * *' })
  await ci.schedules.addVariable(schedule, 'V', { value: 'v' })
  // Hooks at a public address (the harness allows no local targets); the sender is not started, so nothing is sent.
  const hook = await h.services.hooks.create({ projectId: project.id }, { url: 'http://8.8.8.8/hook', push_events: true })
  const groupHook = await h.services.hooks.create({ groupId: group.id }, { url: 'http://8.8.8.8/hook', push_events: true })
  await h.services.hooks.test(hook, 'push_events', { test: true })
  await h.services.hooks.test(groupHook, 'push_events', { test: true })
  const delivery = (await h.services.hooks.deliveries(hook, { limit: 1, offset: 0 })).rows[0]!
  const groupDelivery = (await h.services.hooks.deliveries(groupHook, { limit: 1, offset: 0 })).rows[0]!
  return {
    root,
    other,
    group,
    project,
    target,
    pipeline,
    job,
    runner,
    trigger,
    schedule,
    git,
    bare,
    hook,
    groupHook,
    delivery,
    groupDelivery,
  }
}
