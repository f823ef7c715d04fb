import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CiConfigError } from './errors.ts'
import { planPipeline } from './plan.ts'
import { event, parse } from './test-support.ts'

// needs:pipeline:job and needs:project: artifacts from outside the pipeline. They add no wait
// inside it (a job needing only them starts at once) and are kept, as written, for the job's start.

test('needs:pipeline:job and needs:project are kept apart from the jobs of this pipeline a job waits for', async () => {
  const config = await parse(`
stages: [build, test]
gen:
  stage: build
  script: [x]
child-job:
  stage: test
  needs:
    - pipeline: $PARENT_PIPELINE_ID
      job: gen
    - project: group/tools
      job: package
      ref: $CI_DEFAULT_BRANCH
      artifacts: true
    - gen
  script: [y]
only-cross:
  stage: test
  needs:
    - project: group/tools
      job: package
      ref: main
  script: [y]
`)
  const plan = planPipeline(config, event())
  assert.equal(plan.status, 'created')
  if (plan.status !== 'created') return
  const byName = Object.fromEntries(plan.jobs.map((j) => [j.name, j]))
  assert.deepEqual(
    byName['child-job']!.needs?.map((n) => n.job),
    ['gen'],
  )
  assert.deepEqual(byName['child-job']!.crossNeeds, [
    { job: 'gen', artifacts: true, pipeline: '$PARENT_PIPELINE_ID' },
    { job: 'package', artifacts: true, project: 'group/tools', ref: '$CI_DEFAULT_BRANCH' },
  ])
  assert.deepEqual(byName['only-cross']!.needs, [])
  assert.deepEqual(byName['only-cross']!.artifactsFrom, [])
})

test('cross-pipeline needs errors', async () => {
  const errors = async (needs: string): Promise<string[]> => {
    try {
      await parse(`a:\n  script: [x]\nb:\n  script: [x]\n  needs:\n    - ${needs}\n`)
    } catch (e) {
      if (e instanceof CiConfigError) return [...e.errors]
      throw e
    }
    return []
  }
  assert.deepEqual(await errors('{project: g/p, job: x}'), ["jobs:b:needs:need ref can't be blank"])
  assert.deepEqual(await errors('{pipeline: "1", job: x, optional: true}'), ['jobs:b:needs:need config contains unknown keys: optional'])
  assert.deepEqual(await errors('{pipeline: "1"}'), ["jobs:b:needs:need job can't be blank"])
  assert.deepEqual(await errors('{project: g/p, job: x, ref: main, parallel: {matrix: [{A: b}]}}'), [
    'jobs:b:needs:need config contains unknown keys: parallel',
  ])
  const rules = 'a:\n  script: [x]\nb:\n  script: [x]\n  rules:\n    - needs: [{pipeline: "1", job: a}]\n'
  await assert.rejects(parse(rules), (e: CiConfigError) =>
    e.errors.includes('jobs:b:rules:rule:needs may only name jobs of this pipeline (not pipeline: or project:)'),
  )
})
