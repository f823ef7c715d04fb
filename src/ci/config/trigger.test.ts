import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseCiConfig } from './parse.ts'
import { planPipeline } from './plan.ts'
import { created, event, files, parse } from './test-support.ts'

// `trigger:` bridge jobs: parsed, planned like other jobs (stages, needs, rules), with no runner keywords.

test('a child-pipeline trigger: include forms, strategy, forward defaults; default: keywords do not apply', async () => {
  const config = await parse(`
default:
  image: alpine
  before_script: [echo hi]
stages: [build, deploy]
gen:
  stage: build
  script: make child.yml
child:
  stage: deploy
  needs: [gen]
  variables:
    TARGET: prod
  trigger:
    include:
      - local: ci/child.yml
      - artifact: child.yml
        job: gen
    strategy: depend
    forward:
      pipeline_variables: true
`)
  const child = config.jobs.find((j) => j.name === 'child')!
  assert.deepEqual(child.trigger, {
    project: null,
    branch: null,
    include: [{ local: 'ci/child.yml' }, { artifact: 'child.yml', job: 'gen' }],
    depend: true,
    forward: { yamlVariables: true, pipelineVariables: true },
  })
  assert.deepEqual(child.script, [])
  assert.equal(child.image, null)
  assert.deepEqual(child.beforeScript, [])
  const plan = created(planPipeline(config, event()))
  const planned = plan.jobs.find((j) => j.name === 'child')!
  assert.equal(planned.trigger?.depend, true)
  assert.deepEqual(
    planned.needs?.map((n) => n.job),
    ['gen'],
  )
})

test('a multi-project trigger: a path string, or project and branch with variables expanded', async () => {
  const config = await parse(`
variables:
  BRANCH: stable
a:
  trigger: group/sub/project
b:
  trigger:
    project: group/$CI_COMMIT_REF_NAME
    branch: $BRANCH
`)
  const plan = created(planPipeline(config, event({ ref: 'lib' })))
  assert.deepEqual(
    plan.jobs.map((j) => [j.name, j.trigger?.project, j.trigger?.branch, j.trigger?.depend]),
    [
      ['a', 'group/sub/project', null, false],
      ['b', 'group/lib', 'stable', false],
    ],
  )
})

test('a child configuration may include artifacts of the parent pipeline when given a reader', async () => {
  const config = await parseCiConfig(JSON.stringify({ include: [{ local: 'ci/base.yml' }, { artifact: 'gen/jobs.yml', job: 'gen' }] }), {
    ...files({ 'ci/base.yml': 'variables:\n  FROM_BASE: "1"\n' }),
    readArtifact: async (job, path) => (job === 'gen' && path === 'gen/jobs.yml' ? 'generated:\n  script: echo generated\n' : undefined),
  })
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['generated'],
  )
  assert.equal(config.variables.FROM_BASE?.value, '1')
  await assert.rejects(
    parseCiConfig(JSON.stringify({ include: [{ artifact: 'missing.yml', job: 'gen' }] }), {
      ...files({}),
      readArtifact: async () => undefined,
    }),
    /Artifact `missing.yml` of job `gen` does not exist!/,
  )
})

test('resource_group: on jobs and bridges, variables expanded when planned; must be a non-empty string', async () => {
  const config = await parse(
    'deploy:\n  script: x\n  resource_group: env-$CI_COMMIT_REF_NAME\nchild:\n  trigger: {include: c.yml}\n  resource_group: child\n',
  )
  const plan = created(planPipeline(config, event({ ref: 'main' })))
  assert.deepEqual(
    plan.jobs.map((j) => [j.name, j.resourceGroup]),
    [
      ['deploy', 'env-main'],
      ['child', 'child'],
    ],
  )
  await assert.rejects(
    parse('deploy:\n  script: x\n  resource_group: ""\n'),
    /jobs:deploy:resource_group config should be a string of at most 255 characters/,
  )
})
