// GitLab's artifact downloads by ref and by path inside the archive, job erase and "keep artifacts",
// against archives written by the runner's own zip code.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { createZip } from '../../src/runner/archive.ts'
import { multipartBody, patchTrace, runnerHarness, updateJob, type RunnerHarness } from './runner-harness.ts'

const CI = `stages: [build, test]
build:
  stage: build
  script: [make]
  artifacts:
    paths: [dist/]
test:
  stage: test
  script: [make test]
`

/** A zip of dist/app.txt, dist/deep/data.bin and an empty directory, made as the runner makes it. */
async function archive(h: RunnerHarness): Promise<{ zip: Buffer; app: string; data: Buffer }> {
  const base = join(h.dir, 'zip-src')
  const app = 'hello from the build\n'
  const data = randomBytes(300_000)
  await mkdir(join(base, 'dist/deep'), { recursive: true })
  await mkdir(join(base, 'dist/empty'), { recursive: true })
  await writeFile(join(base, 'dist/app.txt'), app)
  await writeFile(join(base, 'dist/deep/data.bin'), data)
  const dest = join(h.dir, 'artifacts.zip')
  await createZip(base, ['dist', 'dist/app.txt', 'dist/deep', 'dist/deep/data.bin', 'dist/empty'], dest)
  return { zip: await readFile(dest), app, data }
}

async function setUp(t: Parameters<typeof runnerHarness>[0]) {
  const h = await runnerHarness(t)
  const { user: root, token: rootToken } = await h.root()
  const dev = await h.user('dev')
  const dev2 = await h.user('dev2')
  const reporter = await h.user('rep')
  const outsider = await h.user('eve')
  const project = await h.project(root, 'team', 'app', {
    members: [
      [dev.user, 'developer'],
      [dev2.user, 'developer'],
      [reporter.user, 'reporter'],
    ],
  })
  const pipeline = await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': CI }), dev.user.id)
  const runner = await h.runner(rootToken, { runner_type: 'instance_type' })
  const build = await h.take(runner.token)
  const files = await archive(h)
  const { payload, contentType } = multipartBody('file', 'artifacts.zip', files.zip)
  const up = await h.req('POST', `/api/v4/jobs/${build.id}/artifacts?artifact_format=zip&artifact_type=archive`, {
    headers: { 'job-token': build.token, 'content-type': contentType },
    payload,
  })
  assert.equal(up.statusCode, 201, up.body)
  assert.equal((await patchTrace(h, build, 0, 'building\n')).statusCode, 202)
  return { h, rootToken, dev, dev2, reporter, outsider, project, pipeline, runner, build, files }
}

describe('job artifacts API', () => {
  it('downloads the archive and single files of the latest successful job of a ref, and files of a job', async (t) => {
    const { h, dev, outsider, reporter, project, pipeline, runner, build, files } = await setUp(t)
    const base = `/api/v4/projects/${project.id}/jobs`
    // Before the pipeline succeeded there is no "latest successful" job.
    assert.equal((await h.req('GET', `${base}/artifacts/main/download?job=build`, { token: dev.token })).statusCode, 404)

    // A file of the job's archive by path, before and after the job finished.
    const file = await h.req('GET', `${base}/${build.id}/artifacts/dist/app.txt`, { token: reporter.token })
    assert.equal(file.statusCode, 200, file.body)
    assert.equal(file.body, files.app)
    assert.equal(file.headers['content-disposition'], 'attachment; filename="app.txt"')
    const deep = await h.req('GET', `${base}/${build.id}/artifacts/dist/deep/data.bin`, { token: dev.token })
    assert.equal(deep.statusCode, 200)
    assert.ok(deep.rawPayload.equals(files.data), 'byte-identical file out of the archive')
    assert.equal(deep.headers['content-length'], String(files.data.length))
    for (const missing of ['dist/nope.txt', 'dist/empty/', 'dist', '%2E%2E/artifacts.zip']) {
      const res = await h.req('GET', `${base}/${build.id}/artifacts/${missing}`, { token: dev.token })
      assert.equal(res.statusCode, 404, `${missing}: ${res.body}`)
      assert.match(res.headers['content-type'] as string, /json/)
    }
    assert.equal((await h.req('GET', `${base}/${build.id}/artifacts/dist/app.txt`, { token: outsider.token })).statusCode, 404)

    assert.equal((await updateJob(h, build, { state: 'success', exit_code: 0 })).statusCode, 200)
    const test = await h.take(runner.token)
    assert.equal((await h.req('GET', `${base}/${test.id}/artifacts/dist/app.txt`, { token: dev.token })).statusCode, 404)
    assert.equal((await updateJob(h, test, { state: 'success', exit_code: 0 })).statusCode, 200)
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))?.status, 'success')

    const zip = await h.req('GET', `${base}/artifacts/main/download?job=build`, { token: dev.token })
    assert.equal(zip.statusCode, 200, zip.body)
    assert.equal(zip.headers['content-type'], 'application/zip')
    assert.ok(zip.rawPayload.equals(files.zip), 'the uploaded archive, byte for byte')
    const raw = await h.req('GET', `${base}/artifacts/main/raw/dist/deep/data.bin?job=build`, { token: reporter.token })
    assert.equal(raw.statusCode, 200, raw.body)
    assert.ok(raw.rawPayload.equals(files.data))
    // The running test job's token reads its own project's artifacts by ref too.
    const notFound = [
      `${base}/artifacts/main/download?job=test`, // succeeded, but has no artifacts
      `${base}/artifacts/main/download?job=deploy`,
      `${base}/artifacts/other/download?job=build`,
      `${base}/artifacts/main/raw/dist/missing.txt?job=build`,
    ]
    for (const url of notFound) assert.equal((await h.req('GET', url, { token: dev.token })).statusCode, 404, url)
    assert.equal((await h.req('GET', `${base}/artifacts/main/download`, { token: dev.token })).statusCode, 400)
    assert.equal((await h.req('GET', `${base}/artifacts/main/download?job=build`, { token: outsider.token })).statusCode, 404)
    assert.equal((await h.req('GET', `${base}/artifacts/main/download?job=build`)).statusCode, 404)
  })

  it('keeps artifacts and erases jobs with GitLab’s permissions', async (t) => {
    const { h, dev, dev2, reporter, project, runner, build } = await setUp(t)
    const base = `/api/v4/projects/${project.id}/jobs`
    assert.ok((await h.ci.artifacts.find(build.id))?.expire_at, 'expires by default')

    assert.equal((await h.req('POST', `${base}/${build.id}/artifacts/keep`, { token: reporter.token })).statusCode, 403)
    const kept = await h.req('POST', `${base}/${build.id}/artifacts/keep`, { token: dev.token })
    assert.equal(kept.statusCode, 200, kept.body)
    assert.equal((kept.json() as { artifacts_expire_at: unknown }).artifacts_expire_at, null)
    assert.equal((await h.ci.artifacts.find(build.id))?.expire_at, null)
    assert.equal(await h.ci.artifacts.sweepExpired(new Date(Date.now() + 365 * 86_400_000).toISOString()), 0)

    // A running job is not erasable.
    const running = await h.req('POST', `${base}/${build.id}/erase`, { token: dev.token })
    assert.equal(running.statusCode, 403, running.body)
    assert.match((running.json() as { message: string }).message, /not erasable/)
    assert.equal((await updateJob(h, build, { state: 'success', exit_code: 0 })).statusCode, 200)
    const test = await h.take(runner.token)
    assert.equal((await h.req('POST', `${base}/${test.id}/artifacts/keep`, { token: dev.token })).statusCode, 404)

    // Developers erase their own jobs only; the pipeline (and so the build job) is dev's.
    assert.equal((await h.req('POST', `${base}/${build.id}/erase`, { token: dev2.token })).statusCode, 403)
    assert.equal((await h.req('POST', `${base}/${build.id}/erase`, { token: reporter.token })).statusCode, 403)
    const erased = await h.req('POST', `${base}/${build.id}/erase`, { token: dev.token })
    assert.equal(erased.statusCode, 201, erased.body)
    const job = erased.json() as { erased_at: string | null; artifacts: unknown[]; artifacts_file?: unknown; status: string }
    assert.ok(job.erased_at && Math.abs(new Date(job.erased_at).getTime() - Date.now()) < 60_000, String(job.erased_at))
    assert.deepEqual([job.status, job.artifacts, job.artifacts_file], ['success', [], undefined])
    assert.equal((await h.req('GET', `${base}/${build.id}/artifacts`, { token: dev.token })).statusCode, 404)
    const trace = await h.req('GET', `${base}/${build.id}/trace`, { token: dev.token })
    assert.deepEqual([trace.statusCode, trace.body], [200, ''])
    assert.equal(((await h.req('GET', `${base}/${build.id}`, { token: dev.token })).json() as typeof job).erased_at, job.erased_at)
    // Nothing left to erase.
    assert.equal((await h.req('POST', `${base}/${build.id}/erase`, { token: dev.token })).statusCode, 403)

    // Maintainers erase anyone's job.
    assert.equal((await patchTrace(h, test, 0, 'testing\n')).statusCode, 202)
    assert.equal((await updateJob(h, test, { state: 'failed', exit_code: 1 })).statusCode, 200)
    const { token: rootToken } = await h.root()
    assert.equal((await h.req('POST', `${base}/${test.id}/erase`, { token: dev2.token })).statusCode, 403)
    assert.equal((await h.req('POST', `${base}/${test.id}/erase`, { token: rootToken })).statusCode, 201)
    assert.equal((await h.req('POST', `${base}/999999/erase`, { token: rootToken })).statusCode, 404)
  })
})
