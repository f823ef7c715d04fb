// Artifacts: a runner uploads a job's archive (multipart `file`, JOB-TOKEN), the next job gets it
// as a dependency and downloads it with its own token, users download it through the API.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { multipartBody, runnerHarness, updateJob } from './runner-harness.ts'

const CI = `stages: [build, test]
build:
  stage: build
  script: [make]
  artifacts:
    paths: [dist/]
    expire_in: 2 days
test:
  stage: test
  script: [make test]
`

describe('job artifacts', () => {
  it('round-trips: upload by the job, dependency of the next job, download with its token and by users', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': CI }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const build = await h.take(runner.token)
    const archive = randomBytes(200_000)

    const pre = await h.req('POST', `/api/v4/jobs/${build.id}/artifacts/authorize?filesize=${archive.length}`, {
      headers: { 'job-token': build.token },
    })
    assert.equal(pre.statusCode, 200, pre.body)
    assert.ok((pre.json() as { MaximumSize: number }).MaximumSize >= archive.length)
    const tooBig = await h.req('POST', `/api/v4/jobs/${build.id}/artifacts/authorize?filesize=${h.ci.artifacts.maxBytes + 1}`, {
      headers: { 'job-token': build.token },
    })
    assert.equal(tooBig.statusCode, 413)

    const { payload, contentType } = multipartBody('file', 'artifacts.zip', archive)
    const noToken = await h.req('POST', `/api/v4/jobs/${build.id}/artifacts?artifact_format=zip&artifact_type=archive`, {
      headers: { 'content-type': contentType },
      payload,
    })
    assert.equal(noToken.statusCode, 403)
    const up = await h.req('POST', `/api/v4/jobs/${build.id}/artifacts?artifact_format=zip&artifact_type=archive&expire_in=2+days`, {
      headers: { 'job-token': build.token, 'content-type': contentType },
      payload,
    })
    assert.equal(up.statusCode, 201, up.body)
    const row = (await h.ci.artifacts.find(build.id))!
    assert.equal(row.size, archive.length)
    assert.equal(row.file_format, 'zip')
    const expires = new Date(row.expire_at!).getTime() - Date.now()
    assert.ok(expires > 47 * 3600_000 && expires <= 48 * 3600_000, row.expire_at!)

    assert.equal((await updateJob(h, build, { state: 'success', exit_code: 0 })).statusCode, 200)
    const test = await h.take(runner.token)
    assert.deepEqual(test.dependencies, [
      { id: build.id, name: 'build', token: test.token, artifacts_file: { filename: 'artifacts.zip', size: archive.length } },
    ])

    const dl = await h.req('GET', `/api/v4/jobs/${build.id}/artifacts`, { headers: { 'job-token': test.token } })
    assert.equal(dl.statusCode, 200, dl.body)
    assert.ok(dl.rawPayload.equals(archive), 'byte-identical')
    assert.equal(dl.headers['content-type'], 'application/zip')
    // The finished build job's own token is dead.
    assert.equal((await h.req('GET', `/api/v4/jobs/${build.id}/artifacts`, { headers: { 'job-token': build.token } })).statusCode, 403)

    const user = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${build.id}/artifacts`, { token })
    assert.equal(user.statusCode, 200)
    assert.ok(user.rawPayload.equals(archive))
    const viaJobToken = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${build.id}/artifacts`, {
      headers: { 'job-token': test.token },
    })
    assert.equal(viaJobToken.statusCode, 200, viaJobToken.body)
    const none = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${test.id}/artifacts`, { token })
    assert.equal(none.statusCode, 404)
    const { token: outsider } = await h.user('eve')
    assert.equal((await h.req('GET', `/api/v4/projects/${project.id}/jobs/${build.id}/artifacts`, { token: outsider })).statusCode, 404)
    assert.deepEqual(await h.jobs(pipeline.id), { build: 'success', test: 'running' })

    // The job JSON names the runner and the stored artifacts, in GitLab's shapes.
    const job = (await h.req('GET', `/api/v4/projects/${project.id}/jobs/${build.id}`, { token })).json() as Record<string, any>
    assert.deepEqual(Object.keys(job.runner).sort(), [
      'active',
      'description',
      'id',
      'is_shared',
      'name',
      'online',
      'paused',
      'runner_type',
      'status',
    ])
    assert.deepEqual(
      [job.runner.id, job.runner.runner_type, job.runner.is_shared, job.runner.active, job.runner.paused],
      [runner.id, 'instance_type', true, true, false],
    )
    assert.deepEqual(job.artifacts, [{ file_type: 'archive', size: archive.length, filename: 'artifacts.zip', file_format: 'zip' }])
    assert.deepEqual(job.artifacts_file, { filename: 'artifacts.zip', size: archive.length })
    assert.equal(job.artifacts_expire_at, row.expire_at)
    const running = (await h.req('GET', `/api/v4/projects/${project.id}/jobs/${test.id}`, { token })).json() as Record<string, any>
    assert.deepEqual([running.runner.id, running.artifacts, running.artifacts_file], [runner.id, [], undefined])
  })

  it('refuses a job token from another project unless that project is allow-listed', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const a = await h.project(root, 'team', 'a')
    const b = await h.project(root, 'team', 'b')
    await h.pipeline(a, await h.commit(a, { '.gitlab-ci.yml': 'build:\n  script: [x]\n  artifacts:\n    paths: [x]\n' }), root.id)
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const ja = await h.take(runner.token)
    const { payload, contentType } = multipartBody('file', 'a.zip', Buffer.from('zipzip'))
    assert.equal(
      (await h.req('POST', `/api/v4/jobs/${ja.id}/artifacts`, { headers: { 'job-token': ja.token, 'content-type': contentType }, payload }))
        .statusCode,
      201,
    )
    await h.pipeline(b, await h.commit(b, { '.gitlab-ci.yml': 'use:\n  script: [x]\n' }), root.id)
    const jb = await h.take(runner.token)
    assert.equal((await h.req('GET', `/api/v4/jobs/${ja.id}/artifacts`, { headers: { 'job-token': jb.token } })).statusCode, 403)
    await h.req('POST', `/api/v4/projects/${a.id}/job_token_scope/allowlist`, { token, body: { target_project_id: b.id } })
    const ok = await h.req('GET', `/api/v4/jobs/${ja.id}/artifacts`, { headers: { 'job-token': jb.token } })
    assert.equal(ok.statusCode, 200)
    assert.equal(ok.body, 'zipzip')
  })

  it('expires artifacts past their expire_in in the sweep', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': 'build:\n  script: [x]\n' }), root.id)
    const job = await h.take((await h.runner(token, { runner_type: 'instance_type' })).token)
    const { payload, contentType } = multipartBody('file', 'old.zip', Buffer.from('old'))
    assert.equal(
      (
        await h.req('POST', `/api/v4/jobs/${job.id}/artifacts?expire_in=1`, {
          headers: { 'job-token': job.token, 'content-type': contentType },
          payload,
        })
      ).statusCode,
      201,
    )
    await new Promise((r) => setTimeout(r, 1100))
    assert.equal((await h.ci.jobSweeper.sweep()).expiredArtifacts, 1)
    assert.equal(await h.ci.artifacts.find(job.id), undefined)
  })
})
