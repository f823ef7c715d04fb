import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import * as gitQueries from '../git/queries.ts'
import type { RefUpdate } from '../git/refs.ts'
import { GitRepos } from '../git/repos.ts'
import { WharfError } from '../core/errors.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import type { Executor, Project } from '../metadata/schema.ts'
import { createProjects } from '../projects/index.ts'
import { deleteRepositoriesUnder } from '../registry/index.ts'
import { Users } from '../users/index.ts'
import { Pipelines } from './pipelines.ts'
import * as q from './queries.ts'

const SERVER = 'http://wharf.test:5000'

async function setup(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-ci-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openTestDb(dir)
  t.after(() => db.destroy())
  const { projects, groups, projectAccess } = createProjects(db, deleteRepositoriesUnder)
  const users = new Users(db)
  const root = await users.createUser({ username: 'root', password: 'rootpassword', isAdmin: true })
  const group = await groups.createGroup(root, { path: 'Team', visibility: 'private' })
  const project = await projects.createProject(root, { namespaceId: group.id, path: 'App' })
  const repos = new GitRepos(join(dir, 'git'))
  await repos.init()
  const bare = await repos.ensure(project.id, GitRepos.ownerOf(project))
  const work = join(dir, 'work')
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
  await mkdir(work)
  git('init', '-q', '-b', 'main')
  /** Commits files and pushes the branch (or tag) straight into the bare repository; returns the sha. */
  const commit = async (files: Record<string, string>, message = 'change'): Promise<string> => {
    for (const [path, text] of Object.entries(files)) {
      await mkdir(dirname(join(work, path)), { recursive: true })
      await writeFile(join(work, path), text)
    }
    git('add', '-A')
    git('commit', '-q', '-m', message)
    git('push', '-q', bare, 'HEAD:refs/heads/main')
    return git('rev-parse', 'HEAD')
  }
  // Delayed jobs are timed by this clock; tests move it instead of sleeping.
  const clock = { now: Date.parse('2026-12-03T12:00:00.000Z') }
  const pipelines = new Pipelines({ db, repos, projectAccess, publicUrl: SERVER, now: () => clock.now })
  const run = (sha: string, extra: Partial<Parameters<Pipelines['create']>[0]> = {}) =>
    pipelines.create({ project, ref: 'main', refType: 'branch', sha, beforeSha: '0'.repeat(40), source: 'push', userId: root.id, ...extra })
  const jobs = async (pipelineId: number) => Object.fromEntries((await q.pipelineJobs(db, pipelineId)).map((j) => [j.name, j.status]))
  return { db, project: project as Project, pipelines, commit, run, jobs, git, bare, root, repos, projects, projectAccess, clock }
}

const SEED = `image: docker:latest
services:
  - docker:dind

stages:
  - build

variables:
  DOCKER_DRIVER: overlay

before_script:
  - docker login -u gitlab-ci-token -p "$CI_BUILD_TOKEN" $CI_REGISTRY

build:
  stage: build
  script:
    - docker build --pull -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .
    - docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"
`

describe('pipelines', () => {
  it("creates the seed's pipeline with predefined variables, including the old aliases", async (t) => {
    const s = await setup(t)
    const sha = await s.commit({ '.gitlab-ci.yml': SEED, Dockerfile: 'FROM scratch\n' }, 'Add CI\n\nWith a body.')
    const p = (await s.run(sha))!
    assert.equal(p.status, 'pending')
    assert.equal(p.iid, 1)
    const [job] = await q.pipelineJobs(s.db, p.id)
    assert.equal(job!.name, 'build')
    assert.equal(job!.status, 'pending')
    const vars = Object.fromEntries((JSON.parse(job!.variables) as Array<{ key: string; value: string }>).map((v) => [v.key, v.value]))
    assert.equal(vars.CI_REGISTRY, 'wharf.test:5000')
    assert.equal(vars.CI_REGISTRY_IMAGE, 'wharf.test:5000/team/app')
    assert.equal(vars.CI_DEPENDENCY_PROXY_SERVER, 'wharf.test:5000')
    assert.equal(vars.CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX, 'wharf.test:5000/team/dependency_proxy/containers')
    assert.equal(vars.CI_DEPENDENCY_PROXY_DIRECT_GROUP_IMAGE_PREFIX, 'wharf.test:5000/team/dependency_proxy/containers')
    assert.equal(vars.CI_DEPENDENCY_PROXY_USER, 'gitlab-ci-token')
    assert.equal(vars.CI_BUILD_REF_NAME, 'main')
    assert.equal(vars.CI_COMMIT_REF_NAME, 'main')
    assert.equal(vars.CI_COMMIT_BRANCH, 'main')
    assert.equal(vars.CI_COMMIT_SHA, sha)
    assert.equal(vars.CI_BUILD_REF, sha)
    assert.equal(vars.CI_COMMIT_SHORT_SHA, sha.slice(0, 8))
    assert.equal(vars.CI_COMMIT_TITLE, 'Add CI')
    assert.equal(vars.CI_COMMIT_MESSAGE, 'Add CI\n\nWith a body.\n')
    assert.equal(vars.CI_PROJECT_PATH, 'Team/App')
    assert.equal(vars.CI_PROJECT_NAMESPACE, 'Team')
    assert.equal(vars.CI_PIPELINE_ID, String(p.id))
    assert.equal(vars.CI_PIPELINE_IID, '1')
    assert.equal(vars.CI_PIPELINE_SOURCE, 'push')
    assert.equal(vars.CI_JOB_ID, String(job!.id))
    assert.equal(vars.CI_BUILD_ID, String(job!.id))
    assert.equal(vars.CI_JOB_NAME, 'build')
    assert.equal(vars.CI_JOB_STAGE, 'build')
    assert.equal(vars.CI_REGISTRY_USER, 'gitlab-ci-token')
    assert.equal(vars.GITLAB_USER_LOGIN, 'root')
    assert.equal(vars.CI_JOB_TOKEN, undefined, 'the job token exists only while a runner runs the job')
    const def = JSON.parse(job!.definition) as {
      image: { name: string }
      services: Array<{ name: string }>
      beforeScript: string[]
      variables: Record<string, string>
    }
    assert.equal(def.image.name, 'docker:latest')
    assert.equal(def.services[0]!.name, 'docker:dind')
    assert.deepEqual(def.beforeScript, ['docker login -u gitlab-ci-token -p "$CI_BUILD_TOKEN" $CI_REGISTRY'])
    assert.equal(def.variables.DOCKER_DRIVER, 'overlay')
  })

  it('runs stages in order, skips dependants of a failure and finishes the pipeline', async (t) => {
    const s = await setup(t)
    const sha = await s.commit({
      '.gitlab-ci.yml': `stages: [build, test, deploy]
build: { stage: build, script: [make] }
unit: { stage: test, script: [make test] }
lint: { stage: test, script: [make lint], allow_failure: true }
deploy: { stage: deploy, script: [make deploy] }
cleanup: { stage: deploy, script: [make clean], when: always }
`,
    })
    const p = (await s.run(sha))!
    assert.deepEqual(await s.jobs(p.id), { build: 'pending', unit: 'created', lint: 'created', deploy: 'created', cleanup: 'created' })
    const byName = async (n: string) => (await q.pipelineJobs(s.db, p.id)).find((j) => j.name === n)!
    await q.updateJob(s.db, (await byName('build')).id, { status: 'success', started_at: new Date().toISOString() })
    await s.pipelines.advance(p.id)
    assert.deepEqual(await s.jobs(p.id), { build: 'success', unit: 'pending', lint: 'pending', deploy: 'created', cleanup: 'created' })
    assert.equal((await q.findPipeline(s.db, p.id))!.status, 'running')
    await q.updateJob(s.db, (await byName('lint')).id, { status: 'failed' })
    await q.updateJob(s.db, (await byName('unit')).id, { status: 'failed' })
    await s.pipelines.advance(p.id)
    assert.deepEqual(await s.jobs(p.id), { build: 'success', unit: 'failed', lint: 'failed', deploy: 'skipped', cleanup: 'pending' })
    await q.updateJob(s.db, (await byName('cleanup')).id, { status: 'success' })
    await s.pipelines.advance(p.id)
    const done = (await q.findPipeline(s.db, p.id))!
    assert.equal(done.status, 'failed')
    assert.ok(done.finished_at)

    // Retrying the failed job brings the skipped deploy back.
    await s.pipelines.retryJob(await byName('unit'))
    assert.deepEqual(await s.jobs(p.id), { build: 'success', unit: 'pending', lint: 'failed', deploy: 'created', cleanup: 'success' })
    assert.equal((await q.pipelineJobs(s.db, p.id, true)).filter((j) => j.name === 'unit').length, 2)
  })

  it('an invalid file fails the pipeline at creation with errors naming the job and key', async (t) => {
    const s = await setup(t)
    const sha = await s.commit({ '.gitlab-ci.yml': 'build:\n  stage: build\n  scirpt: [make]\n' })
    const p = (await s.run(sha))!
    assert.equal(p.status, 'failed')
    assert.match(p.yaml_errors ?? '', /jobs:build config contains unknown keys: scirpt/)
    assert.deepEqual(await s.jobs(p.id), {})
  })

  it('a file over a limit gives a failed pipeline whose yaml_errors name the limit', async (t) => {
    const s = await setup(t)
    const jobs = (n: number) => Array.from({ length: n }, (_, i) => `job${i}:\n  script: echo ${i}\n`).join('')
    const failed = async (files: Record<string, string>) => {
      const p = (await s.run(await s.commit(files)))!
      assert.equal(p.status, 'failed')
      assert.equal((await q.pipelineJobs(s.db, p.id)).length, 0)
      return p.yaml_errors
    }
    assert.equal(await failed({ '.gitlab-ci.yml': jobs(10_000) }), 'The number of jobs has exceeded the limit of 500.')
    assert.equal(
      await failed({
        '.gitlab-ci.yml': `j0:\n  script: x\n${Array.from({ length: 30 }, (_, i) => `j${i + 1}:\n  extends: j${i}\n`).join('')}`,
      }),
      'j12: nesting too deep in `extends`',
    )
    // Bigger than git's 10 MiB read limit too: never read whole, still a failed pipeline.
    assert.equal(
      await failed({ '.gitlab-ci.yml': `a:\n  script: x\n# ${'x'.repeat(11 << 20)}\n` }),
      '`.gitlab-ci.yml`: The parsed YAML is too big',
    )
    assert.equal(
      await failed({ '.gitlab-ci.yml': 'include: big.yml\na:\n  script: x\n', 'big.yml': `# ${'x'.repeat(11 << 20)}\n` }),
      '`big.yml`: The parsed YAML is too big',
    )
    const limited = new Pipelines({ db: s.db, repos: s.repos, projectAccess: s.projectAccess, publicUrl: SERVER, maxJobs: 3 })
    t.after(() => limited.close())
    const sha = await s.commit({ '.gitlab-ci.yml': jobs(4) })
    const p = (await limited.create({
      project: s.project,
      ref: 'main',
      refType: 'branch',
      sha,
      beforeSha: '0'.repeat(40),
      source: 'push',
      userId: s.root.id,
    }))!
    assert.equal(p.yaml_errors, 'The number of jobs has exceeded the limit of 3.')
  })

  it('no CI file, or workflow rules that exclude the ref, create no pipeline on push', async (t) => {
    const s = await setup(t)
    assert.equal(await s.run(await s.commit({ 'README.md': 'hi' })), undefined)
    const sha = await s.commit({ '.gitlab-ci.yml': 'workflow:\n  rules:\n    - if: $CI_COMMIT_TAG\nbuild:\n  script: [make]\n' })
    assert.equal(await s.run(sha), undefined)
    assert.equal((await s.run(sha, { ref: 'v1', refType: 'tag' }))!.status, 'pending')
  })

  it('API pipelines resolve the ref, carry their variables and cancel', async (t) => {
    const s = await setup(t)
    await s.commit({ '.gitlab-ci.yml': 'build:\n  script: [make]\n  rules:\n    - if: $DEPLOY == "yes"\n' })
    await assert.rejects(s.pipelines.createForRef(s.project, 'main', 'api', s.root.id, []), /prevented any jobs/)
    const p = await s.pipelines.createForRef(s.project, 'main', 'api', s.root.id, [{ key: 'DEPLOY', value: 'yes' }])
    assert.equal(p.source, 'api')
    assert.deepEqual(JSON.parse(p.variables), [{ key: 'DEPLOY', value: 'yes' }])
    await assert.rejects(s.pipelines.createForRef(s.project, 'nope', 'api', null, []), /Reference not found/)
    await s.pipelines.cancel(p.id)
    assert.equal((await q.findPipeline(s.db, p.id))!.status, 'canceled')
  })

  it('a push event starts pipelines for created and moved refs, not for deletions', async (t) => {
    const s = await setup(t)
    const sha = await s.commit({ '.gitlab-ci.yml': 'build:\n  script: [make]\n' })
    const principal = {
      kind: 'user' as const,
      userId: s.root.id,
      username: 'root',
      isAdmin: true,
      credential: { kind: 'password' as const, userId: s.root.id },
    }
    const zero = '0'.repeat(40)
    const updates: RefUpdate[] = [
      { ref: 'refs/heads/main', name: 'main', type: 'branch', oldSha: zero, newSha: sha, action: 'create' },
      { ref: 'refs/tags/v1', name: 'v1', type: 'tag', oldSha: zero, newSha: sha, action: 'create' },
      { ref: 'refs/heads/old', name: 'old', type: 'branch', oldSha: sha, newSha: zero, action: 'delete' },
    ]
    const at = new Date().toISOString()
    const id = await gitQueries.insertPushEvent(s.db, {
      projectId: s.project.id,
      projectPath: s.project.full_path,
      principal: JSON.stringify(principal),
      updates: JSON.stringify(updates),
      at,
    })
    const acked: number[] = []
    const ack = async (db: Executor, index: number) => {
      if (!(await gitQueries.acknowledgePushUpdate(db, id, index))) throw new WharfError('CONFLICT', 'already handled')
      acked.push(index)
    }
    const event = { id, handled: 0, projectId: s.project.id, projectPath: s.project.full_path, principal, at, updates }
    const created = await s.pipelines.handlePush(event, ack)
    assert.deepEqual(
      created.map((p) => [p.ref, p.tag, p.iid]),
      [
        ['main', 0, 1],
        ['v1', 1, 2],
      ],
    )
    assert.deepEqual(acked, [0, 1, 2])
    assert.equal((await gitQueries.findPushEvent(s.db, id))!.handled, 3, 'every update acknowledged')
    // Delivered again from the start (a stale copy): the first acknowledgement conflicts and rolls its pipeline back.
    await assert.rejects(s.pipelines.handlePush(event, ack), { code: 'CONFLICT' })
    assert.equal(await q.countPipelines(s.db, s.project.id), 2)
  })

  it('a delayed job waits out its start_in as scheduled, then is queued; play runs it early, cancel stops it', async (t) => {
    const s = await setup(t)
    const sha = await s.commit({
      '.gitlab-ci.yml': `stages: [build, deploy]
build: { stage: build, script: [make] }
deploy:
  stage: deploy
  script: [make deploy]
  when: delayed
  start_in: 30 minutes
notify:
  stage: deploy
  script: [echo]
  rules:
    - when: delayed
      start_in: 1 hour
`,
    })
    const p = (await s.run(sha))!
    const byName = async () => Object.fromEntries((await q.pipelineJobs(s.db, p.id)).map((j) => [j.name, j]))
    // The delay starts once the job could run: after build.
    assert.equal((await byName()).deploy!.status, 'created')
    await q.updateJob(s.db, (await byName()).build!.id, { status: 'success' })
    s.clock.now += 60_000
    await s.pipelines.advance(p.id)
    let jobs = await byName()
    assert.deepEqual([jobs.deploy!.status, jobs.notify!.status], ['scheduled', 'scheduled'])
    assert.equal(jobs.deploy!.scheduled_at, '2026-12-03T12:31:00.000Z')
    assert.equal(jobs.notify!.scheduled_at, '2026-12-03T13:01:00.000Z')
    assert.equal((await q.findPipeline(s.db, p.id))!.status, 'scheduled')

    s.clock.now += 29 * 60_000
    assert.deepEqual(await s.pipelines.releaseDelayed(), [], 'a minute early: nothing yet')
    s.clock.now += 60_000
    assert.deepEqual(await s.pipelines.releaseDelayed(), [jobs.deploy!.id])
    jobs = await byName()
    assert.equal(jobs.deploy!.status, 'pending')
    assert.equal((await q.findPipeline(s.db, p.id))!.status, 'running')

    // notify's hour is not up: played early it is queued now; the same on a second pipeline, cancelled instead.
    assert.equal((await s.pipelines.playJob(jobs.notify!)).status, 'pending')
    await assert.rejects(s.pipelines.playJob((await byName()).build!), /not a manual or delayed job/)
    const p2 = (await s.run(sha, { source: 'web' }))!
    const j2 = Object.fromEntries((await q.pipelineJobs(s.db, p2.id)).map((j) => [j.name, j]))
    await q.updateJob(s.db, j2.build!.id, { status: 'success' })
    await s.pipelines.advance(p2.id)
    const delayed = (await q.findJob(s.db, j2.deploy!.id))!
    assert.equal(delayed.status, 'scheduled')
    assert.equal((await s.pipelines.cancelJob(delayed)).status, 'canceled')
    s.clock.now += 2 * 3600_000
    assert.deepEqual(await s.pipelines.releaseDelayed(), [j2.notify!.id], 'a cancelled delayed job is never released')
  })

  it('a delayed job of a resource group waits for the resource once released; a manual bridge played creates its pipeline', async (t) => {
    const s = await setup(t)
    const sha = await s.commit({
      '.gitlab-ci.yml': `stages: [build, deploy]
build: { stage: build, script: [make] }
deploy-a: { stage: deploy, script: [a], resource_group: prod }
deploy-b: { stage: deploy, script: [b], resource_group: prod, when: delayed, start_in: 5 minutes }
child:
  stage: deploy
  trigger: { include: child.yml }
  when: manual
`,
      'child.yml': 'c: { script: [x] }\n',
    })
    const p = (await s.run(sha))!
    const byName = async () => Object.fromEntries((await q.pipelineJobs(s.db, p.id)).map((j) => [j.name, j]))
    await q.updateJob(s.db, (await byName()).build!.id, { status: 'success' })
    await s.pipelines.advance(p.id)
    assert.deepEqual(await s.jobs(p.id), { build: 'success', 'deploy-a': 'pending', 'deploy-b': 'scheduled', child: 'manual' })

    // Its delay is over while deploy-a holds the resource: it waits for it instead of joining the queue.
    s.clock.now += 5 * 60_000
    const jobs = await byName()
    assert.deepEqual(await s.pipelines.releaseDelayed(), [jobs['deploy-b']!.id])
    assert.equal((await q.findJob(s.db, jobs['deploy-b']!.id))!.status, 'waiting_for_resource')
    await q.updateJob(s.db, jobs['deploy-a']!.id, { status: 'success' })
    await s.pipelines.advance(p.id)
    assert.equal((await q.findJob(s.db, jobs['deploy-b']!.id))!.status, 'pending')

    // Played, the bridge runs at once: its child pipeline exists and the bridge (no strategy: depend) succeeded.
    assert.equal((await s.pipelines.playJob(jobs.child!)).status, 'success')
    const [child] = await s.pipelines.downstreamPipelines([jobs.child!.id])
    assert.equal(child?.source, 'parent_pipeline')
    assert.deepEqual(await s.jobs(child!.id), { c: 'pending' })
  })

  it('a new pipeline on a branch auto-cancels older ones unless a non-interruptible job started', async (t) => {
    const s = await setup(t)
    const ci = `stages: [test, deploy]
test: { stage: test, script: [make test], interruptible: true }
lint: { stage: test, script: [make lint], interruptible: true }
deploy: { stage: deploy, script: [make deploy] }
`
    const first = (await s.run(await s.commit({ '.gitlab-ci.yml': ci }, 'one')))!
    const [test1] = await q.pipelineJobs(s.db, first.id)
    await q.updateJob(s.db, test1!.id, { status: 'running', started_at: new Date().toISOString() })
    await s.pipelines.advance(first.id)
    // A second pipeline for the same commit (the API, say) makes nothing redundant.
    const sameSha = (await s.run(first.sha, { source: 'api' }))!
    assert.equal((await q.findPipeline(s.db, first.id))!.status, 'running')

    const second = (await s.run(await s.commit({ 'a.txt': 'a' }, 'two')))!
    assert.deepEqual(await s.jobs(first.id), { test: 'canceled', lint: 'canceled', deploy: 'canceled' })
    assert.equal((await q.findPipeline(s.db, first.id))!.status, 'canceled')
    assert.equal((await q.findPipeline(s.db, sameSha.id))!.status, 'canceled', 'the older pipeline of the first commit too')

    // deploy is not interruptible: once it has run, the pipeline is committed and stays.
    const jobs2 = await q.pipelineJobs(s.db, second.id)
    for (const j of jobs2.filter((j) => j.stage === 'test')) await q.updateJob(s.db, j.id, { status: 'success' })
    await s.pipelines.advance(second.id)
    const deploy2 = jobs2.find((j) => j.name === 'deploy')!
    await q.updateJob(s.db, deploy2.id, { status: 'running', started_at: new Date().toISOString() })
    await s.pipelines.advance(second.id)
    const third = (await s.run(await s.commit({ 'b.txt': 'b' }, 'three')))!
    assert.equal((await q.findPipeline(s.db, second.id))!.status, 'running')
    // Other branches and tags are never touched.
    await s.run(third.sha, { ref: 'feature' })
    await s.run(third.sha, { ref: 'v1', refType: 'tag' })
    assert.equal((await q.findPipeline(s.db, third.id))!.status, 'pending')
  })

  it('workflow:auto_cancel:on_new_commit: interruptible cancels only interruptible jobs, none cancels nothing', async (t) => {
    const s = await setup(t)
    const ci = (mode: string) => `workflow:
  auto_cancel:
    on_new_commit: ${mode}
test: { script: [make test], interruptible: true }
deploy: { script: [make deploy] }
`
    const first = (await s.run(await s.commit({ '.gitlab-ci.yml': ci('none') }, 'one')))!
    const deploy = (await q.pipelineJobs(s.db, first.id)).find((j) => j.name === 'deploy')!
    await q.updateJob(s.db, deploy.id, { status: 'running', started_at: new Date().toISOString() })
    // The new pipeline's mode decides: interruptible cancels test, though deploy (not interruptible) runs.
    const second = (await s.run(await s.commit({ '.gitlab-ci.yml': ci('interruptible') }, 'two')))!
    assert.deepEqual(await s.jobs(first.id), { test: 'canceled', deploy: 'running' })
    await s.run(await s.commit({ '.gitlab-ci.yml': ci('none') }, 'three'))
    assert.deepEqual(await s.jobs(second.id), { test: 'pending', deploy: 'pending' }, 'on_new_commit: none')
    // on_job_failure is stored with the pipeline (a failed job then cancels the rest: runner-jobs.test.ts).
    const onFailure = (mode: string) =>
      `workflow:\n  auto_cancel:\n    on_job_failure: ${mode}\n${ci('none').split('\n').slice(3).join('\n')}`
    const all = (await s.run(await s.commit({ '.gitlab-ci.yml': onFailure('all') }, 'four')))!
    assert.equal(all.auto_cancel_on_job_failure, 'all')
    const bad = (await s.run(await s.commit({ '.gitlab-ci.yml': onFailure('sometimes') }, 'five')))!
    assert.equal(bad.yaml_errors, 'workflow:auto_cancel on job failure must be one of: none, all')
  })
})
