// Environments, deployments and releases: the `environment:` and `release:` keywords on pipelines
// driven through the runner API (deployment status following the job, CI_ENVIRONMENT_* in the
// payload, on_stop through the stop endpoint, a release made when its job succeeds), and GitLab's
// /environments, /deployments and /releases APIs with their validation errors and roles.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { assertProblem } from './api-harness.ts'
import { runnerHarness, updateJob, type RunnerHarness } from './runner-harness.ts'

type Json = Record<string, any>

const REVIEW = `stages: [deploy]
deploy_review:
  stage: deploy
  script: [./deploy]
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    url: https://$CI_COMMIT_REF_SLUG.example.com
    on_stop: stop_review
    auto_stop_in: 1 week
stop_review:
  stage: deploy
  script: [./stop]
  when: manual
  environment:
    name: review/$CI_COMMIT_REF_SLUG
    action: stop
`

async function setup(t: Parameters<typeof runnerHarness>[0]) {
  const h = await runnerHarness(t)
  const { user: root, token: rootToken } = await h.root()
  const dev = await h.user('dev')
  const reporter = await h.user('rep')
  const guest = await h.user('guest')
  const stranger = await h.user('stranger')
  const project = await h.project(root, 'team', 'app', {
    members: [
      [dev.user, 'developer'],
      [reporter.user, 'reporter'],
      [guest.user, 'guest'],
    ],
  })
  const runner = await h.runner(rootToken, { runner_type: 'instance_type' })
  return { h, root, rootToken, dev, reporter, guest, stranger, project, runner }
}

const api = async (h: RunnerHarness, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string, body?: unknown) =>
  h.req(method, `/api/v4${url}`, { token, ...(body === undefined ? {} : { body }) })
const ok = async (h: RunnerHarness, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, token: string, body?: unknown) => {
  const res = await api(h, method, url, token, body)
  assert.ok(res.statusCode >= 200 && res.statusCode < 300, `${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.statusCode === 204 ? undefined : (res.json() as any)
}

describe('environment: deployments on pipelines', () => {
  it('a deployment follows its job, the job gets CI_ENVIRONMENT_*, and stopping runs on_stop', async (t) => {
    const { h, root, dev, project, runner } = await setup(t)
    const sha = await h.commit(project, { '.gitlab-ci.yml': REVIEW })
    const pipeline = await h.pipeline(project, sha, root.id)
    const p = `/projects/${project.id}`

    const [env] = (await ok(h, 'GET', `${p}/environments`, dev.token)) as Json[]
    assert.equal(env!.name, 'review/main')
    assert.match(env!.slug, /^review-main-[a-z0-9]{6}$/)
    assert.deepEqual([env!.state, env!.tier], ['available', 'development'])
    const created = (await ok(h, 'GET', `${p}/deployments`, dev.token)) as Json[]
    assert.deepEqual(
      created.map((d) => [d.iid, d.status, d.ref, d.sha, d.environment.name, d.deployable.name]),
      [[1, 'created', 'main', sha, 'review/main', 'deploy_review']],
    )

    const job = await h.take(runner.token)
    const vars = Object.fromEntries(job.variables.map((v) => [v.key, v.value]))
    assert.deepEqual(
      [vars.CI_ENVIRONMENT_NAME, vars.CI_ENVIRONMENT_SLUG, vars.CI_ENVIRONMENT_URL, vars.CI_ENVIRONMENT_ACTION, vars.CI_ENVIRONMENT_TIER],
      ['review/main', env!.slug, 'https://main.example.com', 'start', 'development'],
    )
    assert.equal((await ok(h, 'GET', `${p}/deployments/${created[0]!.id}`, dev.token)).status, 'running')
    assert.equal((await updateJob(h, job, { state: 'success' })).statusCode, 200)
    const deployed = await ok(h, 'GET', `${p}/environments/${env!.id}`, dev.token)
    assert.equal(deployed.last_deployment.status, 'success')
    assert.equal(deployed.external_url, 'https://main.example.com')
    const week = Date.parse(deployed.auto_stop_at) - Date.now()
    assert.ok(week > 6.9 * 86400_000 && week <= 7 * 86400_000, `auto_stop_at ${deployed.auto_stop_at}`)
    assert.equal((await h.jobs(pipeline.id)).stop_review, 'manual')

    // Only a stopped environment can be deleted.
    assertProblem(await api(h, 'DELETE', `${p}/environments/${env!.id}`, dev.token), 403)
    const stopping = await ok(h, 'POST', `${p}/environments/${env!.id}/stop`, dev.token)
    assert.equal(stopping.state, 'stopping')
    assert.equal(stopping.auto_stop_at, null)
    const stopJob = await h.take(runner.token)
    const stopVars = Object.fromEntries(stopJob.variables.map((v) => [v.key, v.value]))
    assert.deepEqual([stopJob.job_info.name, stopVars.CI_ENVIRONMENT_ACTION], ['stop_review', 'stop'])
    assert.equal((await updateJob(h, stopJob, { state: 'success' })).statusCode, 200)
    assert.equal((await ok(h, 'GET', `${p}/environments/${env!.id}`, dev.token)).state, 'stopped')
    // Stopping a stopped environment runs nothing again.
    assert.equal((await ok(h, 'POST', `${p}/environments/${env!.id}/stop`, dev.token)).state, 'stopped')
    assert.equal((await h.request(runner.token)).statusCode, 204)
    // A stop job creates no deployment.
    assert.equal(((await ok(h, 'GET', `${p}/deployments`, dev.token)) as Json[]).length, 1)
    assert.equal(await ok(h, 'DELETE', `${p}/environments/${env!.id}`, dev.token), undefined)
    assert.deepEqual(await ok(h, 'GET', `${p}/environments`, dev.token), [])
    // Another advance of the old pipeline does not bring it back; retrying its deployment does.
    await h.ci.pipelines.advance(pipeline.id)
    assert.deepEqual(await ok(h, 'GET', `${p}/environments`, dev.token), [])
    await ok(h, 'POST', `${p}/jobs/${job.id}/retry`, dev.token)
    const [back] = (await ok(h, 'GET', `${p}/environments`, dev.token)) as Json[]
    assert.deepEqual([back!.name, back!.state], ['review/main', 'available'])
    const again = await h.take(runner.token)
    assert.equal(Object.fromEntries(again.variables.map((v) => [v.key, v.value])).CI_ENVIRONMENT_NAME, 'review/main')
    assert.deepEqual(
      ((await ok(h, 'GET', `${p}/deployments`, dev.token)) as Json[]).map((d) => [d.status, d.deployable.id]),
      [['running', again.id]],
    )
  })

  it('a failed deployment fails, a new one makes the environment available again; a deleted branch stops its review app', async (t) => {
    const { h, root, dev, project, runner } = await setup(t)
    const p = `/projects/${project.id}`
    const sha = await h.commit(project, { '.gitlab-ci.yml': 'deploy:\n  script: [x]\n  environment: production\n' })
    await h.pipeline(project, sha, root.id)
    const job = await h.take(runner.token)
    assert.equal((await updateJob(h, job, { state: 'failed', failure_reason: 'script_failure' })).statusCode, 200)
    const [env] = (await ok(h, 'GET', `${p}/environments?name=production`, dev.token)) as Json[]
    assert.deepEqual([env!.tier, env!.last_deployment.status], ['production', 'failed'])
    // Stopped by hand (no on_stop: at once), then deployed again.
    assert.equal((await ok(h, 'POST', `${p}/environments/${env!.id}/stop`, dev.token)).state, 'stopped')
    await h.pipeline(project, sha, root.id)
    const again = await h.take(runner.token)
    assert.equal((await ok(h, 'GET', `${p}/environments/${env!.id}`, dev.token)).state, 'available')
    assert.equal((await updateJob(h, again, { state: 'success' })).statusCode, 200)
    const list = (await ok(h, 'GET', `${p}/deployments?environment=production&order_by=iid&sort=desc`, dev.token)) as Json[]
    assert.deepEqual(
      list.map((d) => [d.iid, d.status]),
      [
        [2, 'success'],
        [1, 'failed'],
      ],
    )
    assert.deepEqual(
      ((await ok(h, 'GET', `${p}/deployments?status=failed`, dev.token)) as Json[]).map((d) => d.iid),
      [1],
    )

    // A review app of branch `feature`: deleting the branch runs its on_stop job.
    const editor = await api(h, 'POST', `${p}/repository/commits`, dev.token, {
      branch: 'feature',
      start_branch: 'main',
      commit_message: 'review',
      actions: [{ action: 'update', file_path: '.gitlab-ci.yml', content: REVIEW }],
    })
    assert.equal(editor.statusCode, 201, editor.body)
    const review = await h.take(runner.token)
    assert.equal(review.job_info.name, 'deploy_review')
    assert.equal((await updateJob(h, review, { state: 'success' })).statusCode, 200)
    const [app] = (await ok(h, 'GET', `${p}/environments?search=REVIEW/`, dev.token)) as Json[]
    assert.equal(app!.name, 'review/feature')
    assert.equal((await api(h, 'DELETE', `${p}/repository/branches/feature`, dev.token)).statusCode, 204)
    assert.equal((await ok(h, 'GET', `${p}/environments/${app!.id}`, dev.token)).state, 'stopping')
    const stop = await h.take(runner.token)
    assert.equal(stop.job_info.name, 'stop_review')
    assert.equal((await updateJob(h, stop, { state: 'success' })).statusCode, 200)
    assert.deepEqual(
      ((await ok(h, 'GET', `${p}/environments?states=stopped`, dev.token)) as Json[]).map((e) => e.name),
      ['review/feature'],
    )
  })

  it('auto_stop_in: the scheduler tick stops an environment whose time is up, running its on_stop job', async (t) => {
    const { h, root, dev, project, runner } = await setup(t)
    const sha = await h.commit(project, { '.gitlab-ci.yml': REVIEW })
    const pipeline = await h.pipeline(project, sha, root.id)
    assert.equal((await updateJob(h, await h.take(runner.token), { state: 'success' })).statusCode, 200)
    assert.deepEqual(await h.ci.environments.stopExpired(), [], 'a week to go')
    await h.db
      .updateTable('environments')
      .set({ auto_stop_at: new Date(Date.now() - 1000).toISOString() })
      .execute()
    const [env] = (await ok(h, 'GET', `/projects/${project.id}/environments`, dev.token)) as Json[]
    assert.deepEqual(await h.ci.environments.stopExpired(), [env!.id])
    assert.equal((await h.jobs(pipeline.id)).stop_review, 'pending')
    assert.equal((await ok(h, 'GET', `/projects/${project.id}/environments/${env!.id}`, dev.token)).state, 'stopping')
    assert.deepEqual(await h.ci.environments.stopExpired(), [], 'stopped once')
  })
})

describe('environments API', () => {
  it('Reporters read, Developers create and edit; bad names, tiers and attributes are 400s', async (t) => {
    const { h, dev, reporter, stranger, project } = await setup(t)
    const p = `/projects/${project.id}/environments`
    assertProblem(await api(h, 'POST', p, reporter.token, { name: 'staging' }), 403)
    assertProblem(await api(h, 'GET', p, stranger.token), 404)
    const env = await ok(h, 'POST', p, dev.token, { name: 'staging', external_url: 'https://staging.example.com' })
    assert.deepEqual([env.name, env.slug, env.tier, env.state, env.last_deployment], ['staging', 'staging', 'staging', 'available', null])
    assert.match(String(assertProblem(await api(h, 'POST', p, dev.token, { name: 'staging' }), 400).message), /Name has already been taken/)
    assertProblem(await api(h, 'POST', p, dev.token, { name: 'bad name!' }), 400)
    assertProblem(await api(h, 'POST', p, dev.token, { name: '/leading' }), 400)
    assertProblem(await api(h, 'POST', p, dev.token, { name: 'x', tier: 'moon' }), 400)
    assertProblem(await api(h, 'POST', p, dev.token, { name: 'x', external_url: 'javascript:alert(1)' }), 400)
    assert.match(String(assertProblem(await api(h, 'POST', p, dev.token, { name: 'x', state: 'stopped' }), 400).message), /state/)
    assertProblem(await api(h, 'PUT', `${p}/${env.id}`, reporter.token, { tier: 'production' }), 403)
    const edited = await ok(h, 'PUT', `${p}/${env.id}`, dev.token, { tier: 'production', external_url: null })
    assert.deepEqual([edited.tier, edited.external_url], ['production', null])
    assert.equal((await ok(h, 'GET', `${p}/${env.id}`, reporter.token)).tier, 'production')
    assertProblem(await api(h, 'POST', `${p}/${env.id}/stop`, reporter.token), 403)
    assertProblem(await api(h, 'GET', `${p}/999999`, dev.token), 404)
    assertProblem(await api(h, 'GET', `/projects/${project.id}/deployments?order_by=name`, dev.token), 400)
    assertProblem(await api(h, 'GET', `/projects/${project.id}/deployments?status=done`, dev.token), 400)
    assert.deepEqual(await ok(h, 'GET', `/projects/${project.id}/deployments?environment=nope`, dev.token), [])
  })
})

describe('releases', () => {
  it('API: Developers create (the tag from ref), edit and delete; whoever sees the project reads; links in GitLab shape', async (t) => {
    const { h, dev, reporter, guest, stranger, project } = await setup(t)
    const sha = await h.commit(project, { 'README.md': '# app\n' })
    const p = `/projects/${project.id}/releases`
    const body = {
      tag_name: 'v1.0',
      ref: 'main',
      name: 'First',
      description: '## Changes\n\n- everything',
      assets: {
        links: [{ name: 'linux', url: 'https://dl.example.com/app-linux', direct_asset_path: '/bin/app-linux', link_type: 'package' }],
      },
    }
    assertProblem(await api(h, 'POST', p, reporter.token, body), 403)
    assert.match(String(assertProblem(await api(h, 'POST', p, dev.token, { tag_name: 'v9' }), 400).message), /Ref is not specified/)
    assert.match(String(assertProblem(await api(h, 'POST', p, dev.token, { ...body, author_id: 1 }), 400).message), /author_id/)
    assertProblem(await api(h, 'POST', p, dev.token, { ...body, assets: { links: [{ name: 'x', url: 'file:///etc/passwd' }] } }), 400)
    assertProblem(
      await api(h, 'POST', p, dev.token, { ...body, assets: { links: [{ name: 'x', url: 'https://a', filepath: 'no-slash' }] } }),
      400,
    )
    const created = await ok(h, 'POST', p, dev.token, body)
    assert.deepEqual([created.tag_name, created.name, created.commit.id, created.author.username], ['v1.0', 'First', sha, 'dev'])
    assert.deepEqual(created.assets.links, [
      {
        id: created.assets.links[0].id,
        name: 'linux',
        url: 'https://dl.example.com/app-linux',
        direct_asset_url: 'http://wharf.test:5000/team/app/-/releases/v1.0/downloads/bin/app-linux',
        link_type: 'package',
      },
    ])
    assert.equal((await h.services.git!.repos.tag(project.id, 'v1.0'))?.commit?.id, sha, 'the tag was created from ref')
    assert.match(String(assertProblem(await api(h, 'POST', p, dev.token, body), 409).message), /Release already exists/)

    // Reading: a guest of the private project may, a stranger sees no project.
    assert.deepEqual(
      ((await ok(h, 'GET', p, guest.token)) as Json[]).map((r) => r.tag_name),
      ['v1.0'],
    )
    assertProblem(await api(h, 'GET', `${p}/v1.0`, stranger.token), 404)
    assertProblem(await api(h, 'GET', `${p}/v2.0`, dev.token), 404)

    const edited = await ok(h, 'PUT', `${p}/v1.0`, dev.token, { name: 'One', released_at: '2026-01-02T03:04:05Z' })
    assert.deepEqual([edited.name, edited.released_at], ['One', '2026-01-02T03:04:05.000Z'])
    assertProblem(await api(h, 'PUT', `${p}/v1.0`, dev.token, { tag_name: 'v2' }), 400)

    const links = `${p}/v1.0/assets/links`
    const added = await ok(h, 'POST', links, dev.token, { name: 'docs', url: 'https://docs.example.com', link_type: 'runbook' })
    assert.match(
      String(assertProblem(await api(h, 'POST', links, dev.token, { name: 'docs', url: 'https://other' }), 400).message),
      /name has already been taken/,
    )
    assertProblem(await api(h, 'POST', links, reporter.token, { name: 'r', url: 'https://r' }), 403)
    assert.equal((await ok(h, 'PUT', `${links}/${added.id}`, dev.token, { name: 'manual' })).name, 'manual')
    assert.deepEqual(
      ((await ok(h, 'GET', links, reporter.token)) as Json[]).map((l) => l.name),
      ['linux', 'manual'],
    )
    assert.equal((await ok(h, 'DELETE', `${links}/${added.id}`, dev.token)).name, 'manual')
    assert.equal((await ok(h, 'DELETE', `${p}/v1.0`, dev.token)).tag_name, 'v1.0')
    assert.deepEqual(await ok(h, 'GET', p, dev.token), [])
    assert.ok(await h.services.git!.repos.tag(project.id, 'v1.0'), 'deleting a release keeps its tag')
  })

  it('release: is created by the server when its job succeeds, as the job user; one that cannot be fails the job', async (t) => {
    const { h, dev, project, runner } = await setup(t)
    // Tags the releases create would start tag pipelines; this test follows the branch's only.
    const ci = `workflow:
  rules:
    - if: $CI_COMMIT_BRANCH
release:
  script: [echo releasing]
  release:
    tag_name: v1.$CI_PIPELINE_IID
    name: Release $CI_PIPELINE_IID
    description: Built from $CI_COMMIT_SHORT_SHA
    assets:
      links:
        - name: image
          url: https://registry.example.com/app:v1.$CI_PIPELINE_IID
          link_type: image
fixed:
  script: [echo again]
  release:
    tag_name: fixed
    description: fixed
`
    const sha = await h.commit(project, { '.gitlab-ci.yml': ci })
    const first = await h.pipeline(project, sha, dev.user.id)
    for (let i = 0; i < 2; i++) assert.equal((await updateJob(h, await h.take(runner.token), { state: 'success' })).statusCode, 200)
    assert.deepEqual(await h.jobs(first.id), { release: 'success', fixed: 'success' })
    const made = await ok(h, 'GET', `/projects/${project.id}/releases/v1.1`, dev.token)
    assert.deepEqual(
      [made.name, made.description, made.commit.id, made.author.username, made.assets.links[0].url],
      ['Release 1', `Built from ${sha.slice(0, 8)}`, sha, 'dev', 'https://registry.example.com/app:v1.1'],
    )
    // The second pipeline's `fixed` release exists already: that job fails, saying why.
    const second = await h.pipeline(project, sha, dev.user.id)
    const jobs = [await h.take(runner.token), await h.take(runner.token)]
    for (const j of jobs) await updateJob(h, j, { state: 'success' })
    assert.deepEqual(await h.jobs(second.id), { release: 'success', fixed: 'failed' })
    const failed = jobs.find((j) => j.job_info.name === 'fixed')!
    assert.equal((await h.job(failed.id)).failure_reason, 'script_failure')
    const trace = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${failed.id}/trace`, { token: dev.token })
    assert.match(trace.body, /release: Release already exists/)
  })
})
