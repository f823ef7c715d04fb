import { test } from 'node:test'
import assert from 'node:assert/strict'
import { FILTERED_BY_WORKFLOW, NO_JOBS, planPipeline } from './plan.ts'
import { created, event, graph, parse } from './test-support.ts'

const names = (plan: ReturnType<typeof planPipeline>): string[] | string =>
  plan.status === 'created'
    ? plan.jobs.map((j) => j.name)
    : `${plan.status}: ${plan.status === 'filtered' ? plan.reason : plan.errors.join(' | ')}`

test('needing a job that rules left out fails the pipeline, as GitLab', async () => {
  const config = await parse(`
build:
  stage: build
  script: make
  rules:
    - if: $CI_COMMIT_TAG
test:
  script: make test
  needs: [build]
`)
  assert.deepEqual(planPipeline(config, event({ ref: 'main' })), {
    status: 'failed',
    errors: [
      "'test' job needs 'build' job, but 'build' does not exist in the pipeline. This might be because of the only, except, " +
        'or rules keywords. To need a job that sometimes does not exist in the pipeline, use needs:optional.',
    ],
  })
  assert.deepEqual(names(planPipeline(config, event({ ref: 'v1', tag: true }))), ['build', 'test'])
})

test('optional needs on a job left out are dropped; none left means start at once', async () => {
  const config = await parse(`
build:
  stage: build
  script: make
  rules:
    - if: $CI_COMMIT_TAG
lint:
  stage: build
  script: lint
test:
  script: make test
  needs:
    - job: build
      optional: true
    - lint
deploy:
  stage: deploy
  script: deploy
  needs: [{job: build, optional: true}]
`)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(graph(plan), [
    { name: 'lint', stage: 'build', when: 'on_success' },
    { name: 'test', stage: 'test', when: 'on_success', needs: ['lint'] },
    { name: 'deploy', stage: 'deploy', when: 'on_success', needs: [] },
  ])
  assert.deepEqual(plan.jobs.find((j) => j.name === 'deploy')?.artifactsFrom, [])
})

test('no job left: no pipeline; only .pre/.post jobs: no pipeline either', async () => {
  const none = await parse('release:\n  script: x\n  only: [tags]\n')
  assert.deepEqual(planPipeline(none, event()), { status: 'filtered', reason: NO_JOBS })
  const edges = await parse('a:\n  stage: .pre\n  script: x\nb:\n  stage: .post\n  script: x\nc:\n  script: x\n  only: [tags]\n')
  assert.deepEqual(planPipeline(edges, event()), { status: 'filtered', reason: NO_JOBS })
  assert.deepEqual(names(planPipeline(edges, event({ ref: 'v1', tag: true }))), ['a', 'c', 'b'])
})

test('rules: the first matching rule decides; when never excludes; no match excludes', async () => {
  const config = await parse(`
job:
  script: x
  interruptible: false
  rules:
    - if: $SKIP
      when: never
    - if: $CI_COMMIT_BRANCH == "main"
      when: manual
      allow_failure: true
      interruptible: true
      variables:
        MODE: release
    - if: $CI_COMMIT_BRANCH =~ /^feat/
    - if: $CI_COMMIT_BRANCH
      when: always
`)
  const job = (e: Parameters<typeof event>[0]) => {
    const plan = planPipeline(config, event(e))
    return plan.status === 'created' ? plan.jobs[0] : undefined
  }
  assert.equal(job({ ref: 'main', vars: { SKIP: '1' } }), undefined)
  assert.deepEqual(
    [
      job({ ref: 'main' })?.when,
      job({ ref: 'main' })?.allowFailure,
      job({ ref: 'main' })?.interruptible,
      job({ ref: 'main' })?.variables.MODE,
    ],
    ['manual', true, true, 'release'],
  )
  assert.deepEqual(
    [job({ ref: 'feat-x' })?.when, job({ ref: 'feat-x' })?.interruptible, job({ ref: 'feat-x' })?.variables.MODE],
    ['on_success', false, undefined],
  )
  assert.equal(job({ ref: 'other' })?.when, 'always')
  assert.equal(job({ ref: 'v1', tag: true }), undefined, 'no rule matched')
})

test('rules without when use the job-level when and its allow_failure default', async () => {
  const config = await parse(`
deploy:
  script: x
  when: manual
  rules:
    - if: $CI_COMMIT_BRANCH
rules_manual:
  script: x
  rules:
    - when: manual
`)
  assert.deepEqual(graph(planPipeline(config, event())), [
    { name: 'deploy', stage: 'test', when: 'manual', allowFailure: true },
    { name: 'rules_manual', stage: 'test', when: 'manual' },
  ])
})

test('rules:needs replace the job needs', async () => {
  const config = await parse(`
a:
  stage: build
  script: x
b:
  stage: build
  script: x
c:
  script: x
  needs: [a]
  rules:
    - if: $CI_COMMIT_TAG
      needs: [b]
    - when: on_success
`)
  assert.deepEqual(created(planPipeline(config, event({ ref: 'v1', tag: true }))).jobs[2]?.needs, [
    { job: 'b', artifacts: true, optional: false },
  ])
  assert.deepEqual(created(planPipeline(config, event())).jobs[2]?.needs, [{ job: 'a', artifacts: true, optional: false }])
})

test('conditions see context variables over YAML ones, and job variables', async () => {
  const config = await parse(`
variables:
  TARGET: staging
  IMAGE_TAG: $CI_COMMIT_REF_SLUG
job:
  script: x
  variables:
    ARCH: arm64
  rules:
    - if: $TARGET == "production" && $ARCH == "arm64"
      variables:
        FROM_RULE: "1"
    - if: $IMAGE_TAG == "feature-x"
      variables:
        FROM_RULE: "2"
`)
  const plan = (e: Parameters<typeof event>[0]) => created(planPipeline(config, event(e))).jobs[0]?.variables
  assert.deepEqual(
    plan({ ref: 'main', vars: { TARGET: 'production' } }),
    { TARGET: 'staging', IMAGE_TAG: '$CI_COMMIT_REF_SLUG', ARCH: 'arm64', FROM_RULE: '1' },
    'a project variable wins in the condition; the job keeps its YAML values for the runner',
  )
  assert.equal(plan({ ref: 'feature/x' })?.FROM_RULE, '2', 'YAML variables are expanded before comparison')
  assert.deepEqual(names(planPipeline(config, event({ ref: 'main' }))), `filtered: ${NO_JOBS}`)
})

test('changes: compare_to, unknown changes, non-push sources', async () => {
  const config = await parse(`
docs:
  script: x
  rules:
    - changes:
        paths: [docs/**/*]
        compare_to: refs/heads/main
api:
  script: x
  rules:
    - changes: [api/**/*, $SPEC_FILE]
`)
  const ctx = event({ ref: 'feature', changed: ['README.md'], vars: { SPEC_FILE: 'openapi.yaml' } })
  assert.deepEqual(names(planPipeline(config, ctx)), ['docs'], 'compare_to without a way to diff: changes hold')
  ctx.changedFilesComparedTo = (ref) => (ref === 'refs/heads/main' ? ['src/a.ts'] : undefined)
  assert.deepEqual(names(planPipeline(config, ctx)), `filtered: ${NO_JOBS}`)
  ctx.changedFilesComparedTo = () => ['docs/x/y.md']
  assert.deepEqual(names(planPipeline(config, ctx)), ['docs'])
  assert.deepEqual(
    names(planPipeline(config, event({ changed: ['openapi.yaml'], vars: { SPEC_FILE: 'openapi.yaml' } }))),
    ['docs', 'api'],
    'variables expand in changes paths',
  )
  assert.deepEqual(names(planPipeline(config, event({ changed: ['README.md'], source: 'web' }))), ['docs', 'api'])
  assert.deepEqual(names(planPipeline(config, event({ changed: undefined }))), ['docs', 'api'])
})

test('exists: globs and variables', async () => {
  const config = await parse(`
helm:
  script: x
  rules:
    - exists: ["charts/**/Chart.yaml"]
go:
  script: x
  rules:
    - exists:
        paths: [$MODULE_DIR/go.mod]
`)
  assert.deepEqual(
    names(planPipeline(config, event({ repoFiles: ['charts/app/Chart.yaml', 'svc/go.mod'], vars: { MODULE_DIR: 'svc' } }))),
    ['helm', 'go'],
  )
  assert.deepEqual(names(planPipeline(config, event({ repoFiles: ['go.mod'] }))), `filtered: ${NO_JOBS}`)
})

test('with workflow:rules, jobs lose the default only: [branches, tags]', async () => {
  const config = await parse(`
workflow:
  rules:
    - when: always
job:
  script: x
branches_only:
  script: x
  only: [branches]
`)
  assert.deepEqual(names(planPipeline(config, event({ ref: 'main', source: 'api' }))), ['job', 'branches_only'])
  const noWorkflow = await parse('job:\n  script: x\n')
  assert.deepEqual(names(planPipeline(noWorkflow, event({ ref: 'v1', tag: true }))), ['job'])
})

test('workflow rules: when never, variables from the matching rule only', async () => {
  const config = await parse(`
workflow:
  rules:
    - if: $CI_PIPELINE_SOURCE == "web"
      variables:
        FROM: web
    - if: $CI_COMMIT_BRANCH == "main"
      when: never
    - if: $CI_COMMIT_BRANCH
variables:
  FROM: yaml
job:
  script: x
  variables:
    FROM: job
other:
  script: x
`)
  assert.deepEqual(planPipeline(config, event({ ref: 'main' })), { status: 'filtered', reason: FILTERED_BY_WORKFLOW })
  const web = created(planPipeline(config, event({ ref: 'main', source: 'web' })))
  assert.deepEqual(
    web.jobs.map((j) => j.variables.FROM),
    ['job', 'web'],
  )
  assert.equal(created(planPipeline(config, event({ ref: 'dev' }))).variables.FROM, 'yaml')
})

test('except: every key must match to exclude', async () => {
  const config = await parse(`
job:
  script: x
  except:
    refs: [main]
    variables: [$SKIP_MAIN]
`)
  assert.deepEqual(names(planPipeline(config, event({ ref: 'main' }))), ['job'])
  assert.deepEqual(names(planPipeline(config, event({ ref: 'main', vars: { SKIP_MAIN: '1' } }))), `filtered: ${NO_JOBS}`)
  assert.deepEqual(names(planPipeline(config, event({ ref: 'dev', vars: { SKIP_MAIN: '1' } }))), ['job'])
})

test('only: kubernetes: active never holds (no cluster integration)', async () => {
  const config = await parse('job:\n  script: x\n  only:\n    kubernetes: active\nother:\n  script: x\n')
  assert.deepEqual(names(planPipeline(config, event())), ['other'])
})

test('only: pushes matches push events only', async () => {
  const config = await parse('job:\n  script: x\n  only: [pushes]\nother:\n  script: x\n')
  assert.deepEqual(names(planPipeline(config, event())), ['job', 'other'])
  assert.deepEqual(names(planPipeline(config, event({ source: 'web' }))), ['other'])
})

test('dependencies and artifactsFrom only name jobs in the pipeline', async () => {
  const config = await parse(`
a:
  stage: build
  script: x
b:
  stage: build
  script: x
  only: [tags]
c:
  stage: deploy
  script: x
  dependencies: [a, b]
d:
  stage: deploy
  script: x
`)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(
    plan.jobs.map((j) => [j.name, j.dependencies, j.artifactsFrom]),
    [
      ['a', null, []],
      ['c', ['a'], ['a']],
      ['d', null, ['a']],
    ],
  )
})

test('inherit:variables lists and workflow variables', async () => {
  const config = await parse(`
workflow:
  rules:
    - variables:
        W: w
variables:
  A: a
  B: b
only_a:
  script: x
  inherit:
    variables: [A, W]
`)
  assert.deepEqual(created(planPipeline(config, event())).jobs[0]?.variables, { A: 'a', W: 'w' })
})

test('a job whose image names an unknown variable keeps the reference for the runner', async () => {
  const config = await parse('job:\n  image: $CI_REGISTRY_IMAGE/ci:$CI_JOB_ID\n  script: x\n')
  assert.equal(created(planPipeline(config, event())).jobs[0]?.image?.name, 'wharf.example.com/group/app/ci:$CI_JOB_ID')
})

test('a pipeline over the job limit fails naming the limit; jobs that rules leave out do not count', async () => {
  const jobs = (n: number, extra = ''): string => Array.from({ length: n }, (_, i) => `j${i}:\n  script: x\n${extra}`).join('')
  const config = await parse(jobs(4) + jobs(3, '  rules:\n    - if: $CI_COMMIT_TAG\n').replace(/^j(\d)/gm, 'tagged$1'))
  assert.deepEqual(planPipeline(config, { ...event({ ref: 'main' }), maxJobs: 4 }).status, 'created')
  assert.deepEqual(planPipeline(config, { ...event({ ref: 'main' }), maxJobs: 3 }), {
    status: 'failed',
    errors: ['The number of jobs has exceeded the limit of 3.'],
  })
  assert.deepEqual(planPipeline(config, { ...event({ ref: 'v1', tag: true }), maxJobs: 6 }), {
    status: 'failed',
    errors: ['The number of jobs has exceeded the limit of 6.'],
  })
})

test('artifacts of earlier stages are listed in file order', async () => {
  const config = await parse(
    `stages: [a, b]\n${Array.from({ length: 6 }, (_, i) => `j${i}:\n  stage: ${i % 2 ? 'a' : 'b'}\n  script: x\n`).join('')}`,
  )
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(plan.jobs.find((j) => j.name === 'j0')!.artifactsFrom, ['j1', 'j3', 'j5'])
  assert.deepEqual(plan.jobs.find((j) => j.name === 'j1')!.artifactsFrom, [])
})

test('planning is linear in jobs', async () => {
  const config = await parse(Array.from({ length: 10_000 }, (_, i) => `j${i}:\n  script: x\n`).join(''))
  const started = performance.now()
  created(planPipeline(config, event()))
  // Listing earlier stages' jobs once per job made this quadratic: 10,000 jobs took 4 to 11 s.
  const ms = performance.now() - started
  assert.ok(ms < 2_000, `planning took ${Math.round(ms)} ms`)
})

test('workflow:rules:auto_cancel overrides workflow:auto_cancel, setting by setting, when its rule matches', async () => {
  const config = await parse(`workflow:
  auto_cancel:
    on_new_commit: interruptible
    on_job_failure: all
  rules:
    - if: $CI_COMMIT_REF_NAME == "main"
      auto_cancel:
        on_new_commit: none
    - if: $CI_COMMIT_REF_NAME == "dev"
      auto_cancel:
        on_job_failure: none
    - when: always
a:
  script: [x]
`)
  const modes = (ref: string) => {
    const plan = planPipeline(config, event({ ref }))
    return plan.status === 'created' ? [plan.autoCancelOnNewCommit, plan.autoCancelOnJobFailure] : plan.status
  }
  assert.deepEqual(modes('main'), ['none', 'all'])
  assert.deepEqual(modes('dev'), ['interruptible', 'none'])
  assert.deepEqual(modes('other'), ['interruptible', 'all'])
  await assert.rejects(parse('workflow:\n  rules:\n    - auto_cancel: {on_new_commit: sometimes}\na:\n  script: [x]\n'), (e: Error) =>
    /workflow:rules:rule:auto_cancel on new commit must be one of: conservative, interruptible, none/.test(e.message),
  )
})
