// The job side of GitLab's runner API: the /jobs/request long poll, matching (scope, tags,
// run_untagged, paused), atomic claims, the job payload, PUT /jobs/:id (success advances the
// pipeline, cancel is reported through Job-Status, retry:), and the heartbeat/timeout sweep.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { patchTrace, runnerHarness, updateJob, PUBLIC_URL, REGISTRY } from './runner-harness.ts'

const TWO_STAGES = `stages: [build, test]
build:
  stage: build
  script: [make]
test:
  stage: test
  script: [make test]
`

describe('POST /jobs/request', () => {
  it('answers 204 with X-GitLab-Last-Update when there is no job, and 201 with the job once a pipeline makes one pending', async (t) => {
    // A long poll well above the time a pipeline takes to create on a busy machine (PostgreSQL adds
    // round trips), so "woken" and "timed out" stay far apart.
    const h = await runnerHarness(t, { longPollMs: 15_000 })
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const runner = await h.runner(token, { runner_type: 'instance_type' })

    const quick = await runnerHarness(t, { longPollMs: 50 })
    const r2 = await quick.runner((await quick.root()).token, { runner_type: 'instance_type' })
    const empty = await quick.request(r2.token)
    assert.equal(empty.statusCode, 204)
    assert.ok(empty.headers['x-gitlab-last-update'])

    const sha = await h.commit(project, { '.gitlab-ci.yml': TWO_STAGES })
    const started = Date.now()
    const waiting = h.request(runner.token)
    await new Promise((r) => setTimeout(r, 150))
    const pipeline = await h.pipeline(project, sha, root.id)
    const res = await waiting
    assert.equal(res.statusCode, 201, res.body)
    assert.ok(Date.now() - started < 12_000, 'the waiting request was woken, not timed out')
    const job = res.json() as { id: number; job_info: { name: string; project_id: number } }
    assert.equal(job.job_info.name, 'build')
    assert.equal(job.job_info.project_id, project.id)
    assert.equal((await h.job(job.id)).status, 'running')
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))!.status, 'running')
  })

  it('ends waiting long polls at once when the server closes', async (t) => {
    const h = await runnerHarness(t, { longPollMs: 10_000 })
    const runner = await h.runner((await h.root()).token, { runner_type: 'instance_type' })
    const started = Date.now()
    const waiting = h.request(runner.token)
    await new Promise((r) => setTimeout(r, 100))
    h.ci.jobQueue.close()
    assert.equal((await waiting).statusCode, 204)
    assert.ok(Date.now() - started < 2000)
  })

  it('rejects an unknown runner token with 403', async (t) => {
    const h = await runnerHarness(t)
    const res = await h.request('glrt-nope')
    assert.equal(res.statusCode, 403)
  })

  it('builds the job payload in GitLab shape: steps, image, services, variables, credentials, git info, timeout', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const ci = `image: ${REGISTRY}/team/app/builder:1
services:
  - name: postgres:16
    alias: db
variables:
  GLOBAL: g
before_script: [echo before]
after_script: [echo after]
build:
  timeout: 10m
  variables:
    JOB_VAR: j
  script: [echo $SECRET, make]
  artifacts:
    paths: [out/]
    expire_in: 1 week
  cache:
    key: deps
    paths: [vendor/]
`
    const sha = await h.commit(project, { '.gitlab-ci.yml': ci })
    await h.ci.variables.create('project', project.id, { key: 'SECRET', value: 'super-secret-value', masked: true })
    await h.ci.variables.create('project', project.id, { key: 'PROT', value: 'protected-value', protected: true })
    await h.req('POST', `/api/v4/projects/${project.id}/variables`, {
      token,
      body: { key: 'FILEVAR', value: 'file contents', variable_type: 'file' },
    })
    await h.pipeline(project, sha, root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type', description: 'r1' })
    const job = await h.take(runner.token)

    assert.match(job.token, /^glcbt-[A-Za-z0-9_-]{43}$/)
    assert.equal(job.allow_git_fetch, true)
    assert.deepEqual(job.steps, [
      { name: 'script', script: ['echo before', 'echo $SECRET', 'make'], timeout: 600, when: 'on_success', allow_failure: false },
      { name: 'after_script', script: ['echo after'], timeout: 600, when: 'always', allow_failure: true },
    ])
    assert.equal(job.runner_info.timeout, 600)
    assert.equal(job.image.name, `${REGISTRY}/team/app/builder:1`)
    assert.equal(job.services[0]!.name, 'postgres:16')
    assert.equal(job.services[0]!.alias, 'db')
    assert.deepEqual(job.credentials, [{ type: 'registry', url: REGISTRY, username: 'gitlab-ci-token', password: job.token }])
    assert.equal(job.git_info.repo_url, `http://gitlab-ci-token:${job.token}@wharf.test:5000/team/app.git`)
    assert.equal(job.git_info.sha, sha)
    assert.equal(job.git_info.ref, 'main')
    assert.equal(job.git_info.ref_type, 'branch')
    assert.deepEqual(job.git_info.refspecs, ['+refs/heads/main:refs/remotes/origin/main'])
    assert.equal(job.job_info.stage, 'test')
    assert.equal(job.artifacts[0]!.paths[0], 'out/')
    assert.equal(job.artifacts[0]!.artifact_type, 'archive')
    assert.equal(job.artifacts[0]!.expire_in, '604800 seconds')
    assert.equal(job.cache[0]!.key, 'deps-protected')
    assert.equal(job.cache[0]!.policy, 'pull-push')
    assert.ok(job.features.token_mask_prefixes.includes('glcbt-'))

    const vars = new Map(job.variables.map((v) => [v.key, v]))
    assert.equal(vars.get('CI_JOB_TOKEN')!.value, job.token)
    assert.equal(vars.get('CI_JOB_TOKEN')!.masked, true)
    assert.equal(vars.get('CI_BUILD_TOKEN')!.value, job.token)
    assert.equal(vars.get('CI_REGISTRY')!.value, REGISTRY)
    assert.equal(vars.get('CI_REGISTRY_USER')!.value, 'gitlab-ci-token')
    assert.equal(vars.get('CI_REGISTRY_PASSWORD')!.value, job.token)
    assert.equal(vars.get('CI_SERVER_URL')!.value, PUBLIC_URL)
    assert.equal(vars.get('CI_JOB_ID')!.value, String(job.id))
    assert.equal(vars.get('GLOBAL')!.value, 'g')
    assert.equal(vars.get('JOB_VAR')!.value, 'j')
    assert.deepEqual(
      { ...vars.get('SECRET')! },
      { key: 'SECRET', value: 'super-secret-value', public: false, masked: true, file: false, raw: false },
    )
    // main is the default branch, protected: protected variables are given.
    assert.equal(vars.get('PROT')!.value, 'protected-value')
    assert.equal(vars.get('FILEVAR')!.file, true)
    assert.equal(vars.get('CI_RUNNER_DESCRIPTION')!.value, 'r1')
  })

  it("gives the job token for the dependency proxy server too when its name differs from the registry's (the port written out)", async (t) => {
    const h = await runnerHarness(t, { publicUrl: 'https://wharf.test' })
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const sha = await h.commit(project, {
      '.gitlab-ci.yml': 'build:\n  image: ${CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX}/alpine:3\n  script: [echo hi]\n',
    })
    await h.pipeline(project, sha, root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type', description: 'r1' })
    const job = await h.take(runner.token)
    const vars = new Map(job.variables.map((v) => [v.key, v.value]))
    assert.equal(vars.get('CI_DEPENDENCY_PROXY_SERVER'), 'wharf.test:443')
    assert.equal(vars.get('CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX'), 'wharf.test:443/team/dependency_proxy/containers')
    assert.deepEqual(job.credentials, [
      { type: 'registry', url: 'wharf.test', username: 'gitlab-ci-token', password: job.token },
      { type: 'registry', url: 'wharf.test:443', username: 'gitlab-ci-token', password: job.token },
    ])
  })

  it('matches tags: a tagged job needs all its tags; an untagged job needs run_untagged; paused runners get nothing', async (t) => {
    const h = await runnerHarness(t, { longPollMs: 50 })
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const sha = await h.commit(project, { '.gitlab-ci.yml': 'tagged:\n  tags: [docker, linux]\n  script: [x]\nplain:\n  script: [y]\n' })
    await h.pipeline(project, sha, root.id)
    const untaggedOnly = await h.runner(token, { runner_type: 'instance_type' })
    const dockerOnly = await h.runner(token, { runner_type: 'instance_type', tag_list: ['docker'], run_untagged: false })
    const both = await h.runner(token, { runner_type: 'instance_type', tag_list: 'docker,linux,extra', run_untagged: false })
    const paused = await h.runner(token, { runner_type: 'instance_type', tag_list: ['docker', 'linux'], paused: true })

    assert.equal((await h.request(dockerOnly.token)).statusCode, 204, 'one of two tags is not enough, and it does not run untagged jobs')
    assert.equal((await h.request(paused.token)).statusCode, 204, 'paused')
    const a = await h.take(both.token)
    assert.equal(a.job_info.name, 'tagged')
    assert.equal((await h.request(both.token)).statusCode, 204, 'run_untagged false')
    const b = await h.take(untaggedOnly.token)
    assert.equal(b.job_info.name, 'plain')
  })

  it('scopes runners: project runners take their project only, group runners their group and subgroups', async (t) => {
    const h = await runnerHarness(t, { longPollMs: 50 })
    const { user: root, token } = await h.root()
    const team = await h.services.groups.createGroup(root, { path: 'team' })
    const sub = await h.services.groups.createGroup(root, { path: 'sub', parentId: team.id })
    const inSub = await h.services.projects.createProject(root, { namespaceId: sub.id, path: 'deep' })
    const other = await h.project(root, 'other', 'x')
    await h.pipeline(inSub, await h.commit(inSub, { '.gitlab-ci.yml': 'a:\n  script: [x]\n' }), root.id)

    const otherRunner = await h.runner(token, { runner_type: 'project_type', project_id: other.id })
    assert.equal((await h.request(otherRunner.token)).statusCode, 204)
    const groupRunner = await h.runner(token, { runner_type: 'group_type', group_id: team.id })
    assert.equal((await h.take(groupRunner.token)).job_info.project_id, inSub.id)

    await h.pipeline(other, await h.commit(other, { '.gitlab-ci.yml': 'b:\n  script: [x]\n' }), root.id)
    assert.equal((await h.request(groupRunner.token)).statusCode, 204, 'not in the group')
    assert.equal((await h.take(otherRunner.token)).job_info.name, 'b')
  })

  it('never gives one job to two runners, however many ask at once', async (t) => {
    const h = await runnerHarness(t, { longPollMs: 300 })
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    await h.pipeline(
      project,
      await h.commit(project, { '.gitlab-ci.yml': 'a:\n  script: [x]\nb:\n  script: [x]\nc:\n  script: [x]\n' }),
      root.id,
    )
    const runners = await Promise.all(Array.from({ length: 4 }, () => h.runner(token, { runner_type: 'instance_type' })))
    const results = await Promise.all([...runners, ...runners].map((r) => h.request(r.token)))
    const ids = results.filter((r) => r.statusCode === 201).map((r) => (r.json() as { id: number }).id)
    assert.equal(ids.length, 3, results.map((r) => r.statusCode).join(','))
    assert.equal(new Set(ids).size, 3)
    assert.ok(results.every((r) => r.statusCode === 201 || r.statusCode === 204))
  })
})

describe('PUT /jobs/:id', () => {
  it('success finishes the job, revokes its token and advances the pipeline to the next stage', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': TWO_STAGES }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const build = await h.take(runner.token)

    const alive = await updateJob(h, build, { state: 'running' })
    assert.equal(alive.statusCode, 200)
    assert.equal(alive.headers['job-status'], 'running')
    assert.ok((await h.job(build.id)).heartbeat_at)

    const done = await updateJob(h, build, { state: 'success', exit_code: 0, output: { checksum: 'crc32:0', bytesize: 0 } })
    assert.equal(done.statusCode, 200, done.body)
    const row = await h.job(build.id)
    assert.equal(row.status, 'success')
    assert.equal(row.exit_code, 0)
    assert.equal(row.token_digest, null)
    assert.ok(row.finished_at)
    assert.deepEqual(await h.jobs(pipeline.id), { build: 'success', test: 'pending' })

    const again = await updateJob(h, build, { state: 'success' })
    assert.equal(again.statusCode, 403, 'the token died with the job')

    const test = await h.take(runner.token)
    assert.equal(test.job_info.name, 'test')
    await updateJob(h, test, { state: 'failed', failure_reason: 'script_failure', exit_code: 2 })
    const failed = await h.job(test.id)
    assert.equal(failed.status, 'failed')
    assert.equal(failed.failure_reason, 'script_failure')
    assert.equal(failed.exit_code, 2)
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))!.status, 'failed')
  })

  it("coverage: the percentage its regular expression finds last in the log is the job's, and the pipeline's mean", async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const ci = "unit:\n  script: [x]\n  coverage: '/Lines: \\d+\\.\\d+%/'\nplain:\n  script: [x]\n"
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': ci }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    for (const job of [await h.take(runner.token), await h.take(runner.token)]) {
      const log = 'Lines: 10.00%\nLines: 81.25% (13/16)\ndone\n'
      assert.equal((await patchTrace(h, job, 0, log)).statusCode, 202)
      assert.equal((await updateJob(h, job, { state: 'success', exit_code: 0 })).statusCode, 200)
    }
    const jobs = await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${pipeline.id}/jobs`, { token })
    assert.deepEqual((jobs.json() as Array<{ name: string; coverage: number | null }>).map((j) => [j.name, j.coverage]).sort(), [
      ['plain', null],
      ['unit', 81.25],
    ])
    const one = await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${pipeline.id}`, { token })
    assert.equal((one.json() as { coverage: string | null }).coverage, '81.25')
  })

  it('workflow:auto_cancel:on_job_failure: all: a failure cancels the rest of the pipeline; an allowed failure does not', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const ci = `workflow:
  auto_cancel:
    on_job_failure: all
stages: [build, test]
lint: { stage: build, script: [x], allow_failure: true }
unit: { stage: build, script: [x] }
slow: { stage: build, script: [x] }
deploy: { stage: test, script: [x] }
`
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': ci }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const taken = new Map<string, { id: number; token: string }>()
    for (let i = 0; i < 3; i++) {
      const job = await h.take(runner.token)
      taken.set(job.job_info.name, job)
    }
    await updateJob(h, taken.get('lint')!, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })
    assert.deepEqual(await h.jobs(pipeline.id), { lint: 'failed', unit: 'running', slow: 'running', deploy: 'created' })
    await updateJob(h, taken.get('unit')!, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })
    assert.deepEqual(await h.jobs(pipeline.id), { lint: 'failed', unit: 'failed', slow: 'canceled', deploy: 'canceled' })
  })

  it('tells the runner a canceled job is canceled (Job-Status: canceled) on PUT and PATCH', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': TWO_STAGES }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const job = await h.take(runner.token)
    const cancel = await h.req('POST', `/api/v4/projects/${project.id}/pipelines/${pipeline.id}/cancel`, { token })
    assert.equal(cancel.statusCode, 200, cancel.body)

    const patch = await patchTrace(h, job, 0, 'still going\n')
    assert.equal(patch.headers['job-status'], 'canceled')
    const put = await updateJob(h, job, { state: 'running' })
    assert.equal(put.statusCode, 200)
    assert.equal(put.headers['job-status'], 'canceled')
    const last = await updateJob(h, job, { state: 'failed', failure_reason: 'job_canceled', exit_code: 137 })
    assert.equal(last.headers['job-status'], 'canceled')
    const row = await h.job(job.id)
    assert.equal(row.status, 'canceled')
    assert.equal(row.token_digest, null)
  })

  it('retries a failed job when retry: allows, as a new attempt', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const pipeline = await h.pipeline(
      project,
      await h.commit(project, { '.gitlab-ci.yml': 'flaky:\n  retry:\n    max: 1\n    when: script_failure\n  script: [x]\n' }),
      root.id,
    )
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const first = await h.take(runner.token)
    await updateJob(h, first, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })
    assert.equal((await h.job(first.id)).retried, 1)
    const second = await h.take(runner.token)
    assert.notEqual(second.id, first.id)
    await updateJob(h, second, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })
    assert.equal((await h.job(second.id)).retried, 0, 'no attempts left')
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))!.status, 'failed')
  })

  it("refuses another job's token (403) and unknown jobs (404)", async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': 'a:\n  script: [x]\nb:\n  script: [x]\n' }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const a = await h.take(runner.token)
    const b = await h.take(runner.token)
    assert.equal((await updateJob(h, { id: a.id, token: b.token }, { state: 'success' })).statusCode, 403)
    assert.equal((await updateJob(h, { id: 999999, token: a.token }, { state: 'success' })).statusCode, 404)
    assert.equal((await h.job(a.id)).status, 'running')
  })
})

describe('the job sweep', () => {
  it('fails a running job whose runner went silent (runner_system_failure, with a line in the log saying why)', async (t) => {
    const h = await runnerHarness(t, { heartbeatSeconds: 1 })
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': TWO_STAGES }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const job = await h.take(runner.token)
    assert.equal((await patchTrace(h, job, 0, 'working\n')).statusCode, 202)
    assert.deepEqual((await h.ci.jobSweeper.sweep()).stale, [], 'recently heard from')
    await new Promise((r) => setTimeout(r, 1300))
    assert.deepEqual((await h.ci.jobSweeper.sweep()).stale, [job.id])
    const row = await h.job(job.id)
    assert.equal(row.status, 'failed')
    assert.equal(row.failure_reason, 'runner_system_failure')
    assert.equal(row.token_digest, null)
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))!.status, 'failed')
    const log = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.match(log.body, /^working\n/)
    assert.match(log.body, /runner sent no update for 1 seconds/)
    // The runner comes back too late: its token is gone.
    assert.equal((await updateJob(h, job, { state: 'success' })).statusCode, 403)
  })

  it('fails a job running past its timeout (job_execution_timeout)', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': 'slow:\n  timeout: 1m\n  script: [sleep 1000]\n' }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const job = await h.take(runner.token)
    // Started long ago, still sending heartbeats.
    await h.db
      .updateTable('ci_jobs')
      .set({ started_at: new Date(Date.now() - 3600_000).toISOString() })
      .where('id', '=', job.id)
      .execute()
    assert.equal((await updateJob(h, job, { state: 'running' })).statusCode, 200)
    const r = await h.ci.jobSweeper.sweep()
    assert.deepEqual(r.timedOut, [job.id])
    assert.equal((await h.job(job.id)).failure_reason, 'job_execution_timeout')
  })
})
