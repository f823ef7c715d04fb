// End-to-end: the server's scheduler against a shell runner. A pipeline schedule due now (cron every
// minute) fires on its own, as its owner, with source `schedule` and its variables, and its job runs;
// a `when: delayed` job waits out its start_in as `scheduled`, then runs.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { CiProject, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let runner: RunnerChild
let project: CiProject

const CI = `
build:
  script: [echo "push build"]
  rules:
    - if: $CI_PIPELINE_SOURCE == "push"
nightly:
  script:
    - echo "source=$CI_PIPELINE_SOURCE target=$TARGET user=$GITLAB_USER_LOGIN"
  rules:
    - if: $CI_PIPELINE_SOURCE == "schedule"
later:
  script: [echo "ran later"]
  rules:
    - if: $CI_PIPELINE_SOURCE == "push"
      when: delayed
      start_in: 3 seconds
`

before(async () => {
  // The scheduler looks every second, so a due schedule and a delayed job start without waiting the default 15 s.
  wharf = await startWharf({ env: { WHARF_CI_SCHEDULER_INTERVAL_SECONDS: '1' } })
  project = await CiProject.create(wharf, 'e2e-sched/app')
  runner = await startRunner(wharf, ['--executor', 'shell', '--name', 'e2e-sched'])
})

after(async () => {
  await runner?.stop()
  await project?.dispose()
  await wharf?.stop()
})

describe('pipeline schedules and delayed jobs on a real runner', { timeout: 180_000 }, () => {
  it('a delayed job is scheduled, then runs after its start_in', async () => {
    const p = await project.push({ '.gitlab-ci.yml': CI }, 'ci')
    // Same stage as build: its delay starts with the pipeline.
    await project.wait(p.id, 30_000, (_p, jobs) => jobs.find((j) => j.name === 'later')?.status === 'scheduled')
    const done = await project.wait(p.id, 60_000)
    assert.equal(done.pipeline.status, 'success', JSON.stringify(done.jobs))
    const later = done.jobs.find((j) => j.name === 'later')! as unknown as { id: number; started_at: string }
    const created = (done.pipeline as unknown as { created_at: string }).created_at
    assert.ok(Date.parse(later.started_at) >= Date.parse(created) + 3000, JSON.stringify({ later, created }))
    assert.match(plainLog(await project.trace(later.id)), /ran later/)
  })

  it('a schedule due now fires by itself and its pipeline runs with source schedule and its variables', async () => {
    const s = await project.api<{ id: number; next_run_at: string }>('POST', `/projects/${project.id}/pipeline_schedules`, {
      description: 'every minute',
      ref: 'main',
      cron: '* * * * *',
      cron_timezone: 'Pacific/Auckland',
    })
    await project.api('POST', `/projects/${project.id}/pipeline_schedules/${s.id}/variables`, { key: 'TARGET', value: 'staging' })
    assert.ok(Date.parse(s.next_run_at) - Date.now() <= 60_000, s.next_run_at)
    // Nobody plays it: the server's timer claims it when its minute comes.
    const deadline = Date.now() + 90_000
    let pipelines: Array<{ id: number; source: string }> = []
    while (pipelines.length === 0) {
      assert.ok(Date.now() < deadline, `schedule did not fire: ${await wharf.logTail(20)}`)
      await new Promise((r) => setTimeout(r, 500))
      pipelines = await project.api('GET', `/projects/${project.id}/pipeline_schedules/${s.id}/pipelines`)
    }
    assert.equal(pipelines.length, 1)
    assert.equal(pipelines[0]!.source, 'schedule')
    const { pipeline, jobs } = await project.wait(pipelines[0]!.id, 60_000)
    assert.equal(pipeline.status, 'success', JSON.stringify(jobs))
    assert.deepEqual(
      jobs.map((j) => j.name),
      ['nightly'],
    )
    assert.match(plainLog(await project.trace(jobs[0]!.id)), /source=schedule target=staging user=root/)
    const after = await project.api<{ next_run_at: string; last_pipeline: { id: number } }>(
      'GET',
      `/projects/${project.id}/pipeline_schedules/${s.id}`,
    )
    assert.equal(after.last_pipeline.id, pipeline.id)
    assert.ok(Date.parse(after.next_run_at) > Date.parse(s.next_run_at), 'the next run moved on a minute')
    // Off again, so it does not keep firing while the test ends.
    await project.api('PUT', `/projects/${project.id}/pipeline_schedules/${s.id}`, { active: false })
  })
})
