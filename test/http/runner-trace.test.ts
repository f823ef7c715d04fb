// PATCH /jobs/:id/trace (GitLab's Content-Range appends: 202 + Range, 416 to resync) and the
// user's GET /projects/:id/jobs/:job_id/trace, with masked values never stored.
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { readFile } from 'node:fs/promises'
import { describe, it } from 'node:test'
import { patchTrace, runnerHarness, updateJob } from './runner-harness.ts'

async function running(t: Parameters<typeof runnerHarness>[0]) {
  const h = await runnerHarness(t)
  const { user: root, token } = await h.root()
  const project = await h.project(root, 'team', 'app')
  await h.ci.variables.create('project', project.id, { key: 'API_KEY', value: 'abcd1234efgh5678', masked: true })
  await h.pipeline(project, await h.commit(project, { '.gitlab-ci.yml': 'a:\n  script: [x]\n' }), root.id)
  const runner = await h.runner(token, { runner_type: 'instance_type' })
  const job = await h.take(runner.token)
  return { h, token, project, job }
}

describe('PATCH /jobs/:id/trace', () => {
  it('appends chunks at the offset the server has, answering 202 with Range and Job-Status; 416 with Range on a gap', async (t) => {
    const { h, token, project, job } = await running(t)
    const first = await patchTrace(h, job, 0, 'line one\n')
    assert.equal(first.statusCode, 202, first.body)
    assert.equal(first.headers.range, '0-9')
    assert.equal(first.headers['job-status'], 'running')
    assert.ok(first.headers['x-gitlab-trace-update-interval'])

    // A retry of the same chunk (the 202 was lost) is not stored twice.
    const retry = await patchTrace(h, job, 0, 'line one\n')
    assert.equal(retry.statusCode, 202)
    assert.equal(retry.headers.range, '0-9')

    // A chunk past the end: the runner resyncs from the Range it gets.
    const gap = await patchTrace(h, job, 20, 'lost\n')
    assert.equal(gap.statusCode, 416)
    assert.equal(gap.headers.range, '0-9')
    assert.equal((gap.json() as { code: string }).code, 'RANGE_NOT_SATISFIABLE')

    const second = await patchTrace(h, job, 9, 'line two\n')
    assert.equal(second.headers.range, '0-18')

    const missing = await h.req('PATCH', `/api/v4/jobs/${job.id}/trace`, {
      headers: { 'job-token': job.token, 'content-type': 'text/plain' },
      payload: 'x',
    })
    assert.equal(missing.statusCode, 400)
    const wrong = await h.req('PATCH', `/api/v4/jobs/${job.id}/trace`, {
      headers: { 'job-token': 'glcbt-nope', 'content-type': 'text/plain', 'content-range': '18-18' },
      payload: 'x',
    })
    assert.equal(wrong.statusCode, 403)

    await updateJob(h, job, { state: 'success', exit_code: 0 })
    const log = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.equal(log.statusCode, 200)
    assert.equal(log.body, 'line one\nline two\n')
    const after = await patchTrace(h, job, 18, 'late\n')
    assert.equal(after.statusCode, 403, 'the job is over')
    assert.equal(after.headers['job-status'], 'success')
  })

  it('masks variables on write, also a secret split across two chunks, and the job token', async (t) => {
    const { h, token, project, job } = await running(t)
    let off = 0
    for (const chunk of ['export KEY=abcd12', '34efgh5678\n', `token ${job.token.slice(0, 10)}`, `${job.token.slice(10)} end\n`]) {
      const r = await patchTrace(h, job, off, chunk)
      assert.equal(r.statusCode, 202, r.body)
      off += Buffer.byteLength(chunk)
      assert.equal(r.headers.range, `0-${off}`)
    }
    await updateJob(h, job, { state: 'success', exit_code: 0 })
    const onDisk = await readFile(join(h.dir, 'data', 'ci', h.ci.traces.path(job.id)), 'utf8')
    assert.equal(onDisk, 'export KEY=[MASKED]\ntoken [MASKED] end\n')
    assert.ok(!onDisk.includes('abcd12') && !onDisk.includes(job.token.slice(0, 10)))
    const log = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.equal(log.body, onDisk)
  })

  it('serves incremental reads with Range: bytes=N- (206), 416 past the end', async (t) => {
    const { h, token, project, job } = await running(t)
    await patchTrace(h, job, 0, 'first line\n')
    const all = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    const seen = Buffer.byteLength(all.body)
    assert.ok(seen > 0 && 'first line\n'.startsWith(all.body), all.body)
    await patchTrace(h, job, 11, 'second line\n')
    await updateJob(h, job, { state: 'success' })
    const more = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token, headers: { range: `bytes=${seen}-` } })
    assert.equal(more.statusCode, 206)
    assert.equal(all.body + more.body, 'first line\nsecond line\n')
    assert.equal(more.headers['content-range'], `bytes ${seen}-22/23`)
    const past = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token, headers: { range: 'bytes=23-' } })
    assert.equal(past.statusCode, 416)
    assert.equal(past.headers['content-range'], 'bytes */23', 'the size to resume from')
  })

  it('keeps job logs of private projects from outsiders', async (t) => {
    const { h, project, job } = await running(t)
    const { token: outsider } = await h.user('eve')
    const res = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token: outsider })
    assert.equal(res.statusCode, 404)
  })
})
