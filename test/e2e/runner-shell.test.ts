// End-to-end: `wharf runner --executor shell` against a started Wharf. Pipelines come from pushes
// with the real git CLI; the runner clones at the pipeline's commit with the job token, runs
// before_script + script + after_script with bash, passes artifacts along `needs`, keeps a cache,
// streams masked logs, and honours failure, cancel and timeout.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { CiProject, createRunner, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'

let wharf: Wharf
let runner: RunnerChild
let project: CiProject

const SECRET = 'Sup3r-Secret-Value-42'

before(async () => {
  wharf = await startWharf()
  project = await CiProject.create(wharf, 'e2e-runner/shell')
  const v = await wharf.api('POST', `/api/v4/projects/${project.id}/variables`, { key: 'DEPLOY_PASSWORD', value: SECRET, masked: true })
  assert.equal(v.status, 201, v.describe)
  runner = await startRunner(wharf, ['--executor', 'shell', '--concurrent', '3', '--name', 'e2e-shell'])
})

after(async () => {
  await runner?.stop()
  await project?.dispose()
  await wharf?.stop()
})

describe('wharf runner, shell executor', { timeout: 110_000 }, () => {
  it('runs a pipeline: checkout at the commit, before/after_script, variables, artifacts via needs, cache, masked log', async () => {
    const ci = `
stages: [build, test]
variables:
  GREETING: hello
  DERIVED: "$GREETING world"
default:
  before_script:
    - echo "before $CI_JOB_NAME"
build:
  stage: build
  script:
    - git rev-parse HEAD > sha.txt
    - mkdir -p out/sub && echo "built by $CI_JOB_NAME" > out/sub/result.txt && echo junk > out/skip.o
    - echo "$DERIVED"
    - echo "secret is $DEPLOY_PASSWORD"
    - printf 'split %s' "\${DEPLOY_PASSWORD:0:7}"; sleep 1.5; printf '%s end\\n' "\${DEPLOY_PASSWORD:7}"
    - mkdir -p .cache && date +%s%N > .cache/stamp
  after_script:
    - echo "after script ran in $(pwd)"
  cache:
    key: deps
    paths: [.cache/]
  artifacts:
    paths: [out/, sha.txt]
    exclude: ["**/*.o"]
test:
  stage: test
  needs: [build]
  script:
    - cat out/sub/result.txt
    - test ! -e out/skip.o
    - test "$(cat sha.txt)" = "$CI_COMMIT_SHA"
    - test -f .cache/stamp && echo "cache restored"
    - test "$CI_PROJECT_DIR" = "$(pwd)"
  cache:
    key: deps
    paths: [.cache/]
    policy: pull
`
    const p = await project.push({ '.gitlab-ci.yml': ci, 'README.md': '# app\n' }, 'pipeline')
    const { pipeline, jobs } = await project.wait(p.id)
    const logs = Object.fromEntries(await Promise.all(jobs.map(async (j) => [j.name, await project.trace(j.id)] as const)))
    assert.equal(pipeline.status, 'success', JSON.stringify({ jobs, logs }, null, 1))
    assert.deepEqual(
      jobs.map((j) => [j.name, j.status]),
      [
        ['build', 'success'],
        ['test', 'success'],
      ],
    )

    const build = plainLog(logs.build!)
    assert.match(build, /Running with wharf-runner/)
    assert.match(build, new RegExp(`Checking out ${p.sha.slice(0, 8)} as detached HEAD \\(ref is main\\)`))
    assert.match(build, /\$ echo "before \$CI_JOB_NAME"\nbefore build\n/)
    assert.match(build, /hello world\n/)
    assert.match(build, /after script ran in \//)
    assert.match(build, /out\/: found \d+ matching artifact files and directories/)
    assert.match(build, /Uploading artifacts as "archive" to coordinator\.\.\. 201 Created/)
    assert.match(build, /Created cache/)
    assert.match(build, /Timing: queued [\d.]+ s, image pull [\d.]+ s, script [\d.]+ s/)
    assert.match(build, /Job succeeded/)
    // Masked in the stored log, whole or split over output chunks.
    assert.match(build, /secret is \[MASKED\]/)
    assert.match(build, /split \[MASKED\] end/, 'a value printed in two pieces a second apart')
    for (const [name, log] of Object.entries(logs)) {
      assert.ok(!log.includes(SECRET), `${name}'s log shows the masked value`)
      assert.ok(!log.includes('glcbt-'), `${name}'s log shows a job token`)
    }
    const test = plainLog(logs.test!)
    assert.match(test, /Downloading artifacts for build/)
    assert.match(test, /built by build/)
    assert.match(test, /cache restored/)
    assert.match(test, /Not uploading cache deps-protected due to policy/)

    // The structured log line with the timings.
    // The runner logs it after its final update, which the server may have answered before: wait (bounded).
    let finished = runner.logs().filter((l) => l.msg === 'job finished')
    for (let i = 0; finished.length < 2 && i < 100; i++) {
      await new Promise((r) => setTimeout(r, 50))
      finished = runner.logs().filter((l) => l.msg === 'job finished')
    }
    assert.ok(finished.length >= 2, runner.output())
    for (const f of finished) {
      assert.equal(typeof f.queue_wait_s, 'number')
      assert.equal(typeof f.pull_ms, 'number')
      assert.equal(typeof f.script_ms, 'number')
    }
    assert.ok(!runner.output().includes(runner.token), 'the runner never logs its token')
  })

  it('a failing job fails the pipeline with its exit code and skips the jobs after it', async () => {
    const ci = `
stages: [build, test]
build:
  stage: build
  script:
    - echo "about to fail"
    - exit 3
    - echo never
  after_script:
    - echo "after_script still runs"
  artifacts:
    when: on_failure
    paths: [missing-dir/]
test:
  stage: test
  script: [echo unreachable]
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'fail')
    const { pipeline, jobs } = await project.wait(p.id)
    assert.equal(pipeline.status, 'failed')
    assert.deepEqual(
      jobs.map((j) => [j.name, j.status]),
      [
        ['build', 'failed'],
        ['test', 'skipped'],
      ],
    )
    assert.equal(jobs[0]!.failure_reason, 'script_failure')
    const log = plainLog(await project.trace(jobs[0]!.id))
    assert.match(log, /about to fail/)
    assert.doesNotMatch(log, /^never$/m)
    assert.match(log, /after_script still runs/)
    assert.match(log, /missing-dir\/: no matching files/)
    assert.match(log, /ERROR: Job failed: exit code 3/)
  })

  it('cancel stops a running job', async () => {
    const marker = `wharf-cancel-${Date.now()}`
    const ci = `
slow:
  script:
    - echo started; printf '%0100d\\n' 0
    - bash -c 'exec -a ${marker} sleep 120'
    - echo never
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'cancel')
    const { jobs } = await project.wait(p.id, 30_000, (_p, js) => js.some((j) => j.status === 'running'))
    const job = jobs[0]!
    // Wait for the script to be running before canceling.
    const deadline = Date.now() + 20_000
    while (!(await project.trace(job.id)).includes('started')) {
      assert.ok(Date.now() < deadline, 'the job never started its script')
      await new Promise((r) => setTimeout(r, 200))
    }
    const t0 = Date.now()
    await project.api('POST', `/projects/${project.id}/jobs/${job.id}/cancel`)
    // The runner sees Job-Status: canceled on its next trace/keep-alive call and kills the script.
    const deadline2 = Date.now() + 20_000
    for (;;) {
      const finished = runner.logs().find((l) => l.msg === 'job finished' && l.job === job.id)
      if (finished) {
        assert.equal(finished.failure_reason, 'job_canceled')
        break
      }
      assert.ok(Date.now() < deadline2, `the runner did not stop the job:\n${runner.output()}`)
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.ok(Date.now() - t0 < 15_000, 'canceled within a few seconds')
    const { pipeline } = await project.wait(p.id)
    assert.equal(pipeline.status, 'canceled')
    const log = plainLog(await project.trace(job.id))
    assert.doesNotMatch(log, /^never$/m)
    // The script's process group is gone.
    const { execFileSync } = await import('node:child_process')
    const ps = execFileSync('ps', ['-eo', 'args'], { encoding: 'utf8' })
    assert.ok(!ps.includes(marker), 'the sleep was killed')
  })

  it('a timeout kills the job: failed with job_execution_timeout', async () => {
    const ci = `
slow:
  timeout: 3s
  script:
    - echo started
    - sleep 60
  after_script:
    - echo "cleanup after timeout"
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'timeout')
    const t0 = Date.now()
    const { pipeline, jobs } = await project.wait(p.id, 40_000)
    assert.equal(pipeline.status, 'failed')
    assert.equal(jobs[0]!.failure_reason, 'job_execution_timeout')
    assert.ok(Date.now() - t0 < 30_000, 'the sleep did not run to its end')
    const log = plainLog(await project.trace(jobs[0]!.id))
    assert.match(log, /ERROR: Job failed: execution took longer than 3s seconds/)
    assert.match(log, /cleanup after timeout/)
  })

  it('SIGTERM: no new jobs, running ones get the shutdown timeout, then fail as a system failure', async () => {
    const tagged = await createRunner(wharf, { tag_list: ['shutdown-test'], run_untagged: false })
    const second = await startRunner(wharf, ['--executor', 'shell', '--shutdown-timeout', '1', '--name', 'e2e-shutdown'], {
      token: tagged.token,
    })
    try {
      const ci = `
long:
  tags: [shutdown-test]
  script:
    - echo started; printf '%0100d\\n' 0
    - sleep 60
`
      const p = await project.push({ '.gitlab-ci.yml': ci }, 'shutdown')
      const { jobs } = await project.wait(p.id, 30_000, (_p, js) => js.some((j) => j.status === 'running'))
      const deadline = Date.now() + 20_000
      while (!(await project.trace(jobs[0]!.id)).includes('started')) {
        assert.ok(Date.now() < deadline, 'the job never started its script')
        await new Promise((r) => setTimeout(r, 200))
      }
      const t0 = Date.now()
      const code = await second.stop()
      assert.equal(code, 0, second.output())
      assert.ok(Date.now() - t0 < 15_000, 'the runner stopped within the shutdown timeout and a few seconds')
      const { pipeline, jobs: done } = await project.wait(p.id, 10_000)
      assert.equal(pipeline.status, 'failed')
      assert.equal(done[0]!.failure_reason, 'runner_system_failure')
      assert.match(plainLog(await project.trace(done[0]!.id)), /ERROR: Job failed \(system failure\): the runner was stopped/)
    } finally {
      await second.stop()
    }
  })
})
