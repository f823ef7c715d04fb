import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CiConfigError } from './errors.ts'
import { planPipeline } from './plan.ts'
import { created, event, graph, parse } from './test-support.ts'

// `parallel: N` and `parallel:matrix`: the jobs GitLab's normalizer makes, their variables, and
// `needs`/`dependencies` on them.

test('parallel: N makes N jobs named "name i/N" with CI_NODE_INDEX and CI_NODE_TOTAL', async () => {
  const config = await parse('test:\n  script: make test\n  parallel: 3\n')
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(
    plan.jobs.map((j) => [j.name, j.variables.CI_NODE_INDEX, j.variables.CI_NODE_TOTAL]),
    [
      ['test 1/3', '1', '3'],
      ['test 2/3', '2', '3'],
      ['test 3/3', '3', '3'],
    ],
  )
})

test('parallel:matrix: one job per combination, "name: [a, b]", the matrix variables set, entries in order', async () => {
  const config = await parse(`
build:
  stage: build
  script: make
  variables:
    KEEP: "yes"
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
        DISTRO: [bookworm, trixie, sid]
      - ARCH: riscv64
        DISTRO: sid
`)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(
    plan.jobs.map((j) => j.name),
    [
      'build: [amd64, bookworm]',
      'build: [amd64, trixie]',
      'build: [amd64, sid]',
      'build: [arm64, bookworm]',
      'build: [arm64, trixie]',
      'build: [arm64, sid]',
      'build: [riscv64, sid]',
    ],
  )
  const arm = plan.jobs.find((j) => j.name === 'build: [arm64, trixie]')!
  assert.equal(arm.variables.ARCH, 'arm64')
  assert.equal(arm.variables.DISTRO, 'trixie')
  assert.equal(arm.variables.KEEP, 'yes')
  assert.equal(arm.variables.CI_NODE_INDEX, '5')
  assert.equal(arm.variables.CI_NODE_TOTAL, '7')
})

test('matrix variables are seen by rules:if', async () => {
  const config = await parse(`
build:
  script: make
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
  rules:
    - if: $ARCH == "arm64"
      when: manual
    - when: on_success
`)
  assert.deepEqual(graph(planPipeline(config, event())), [
    { name: 'build: [amd64]', stage: 'test', when: 'on_success' },
    { name: 'build: [arm64]', stage: 'test', when: 'manual' },
  ])
})

test('needs and dependencies on a parallel job mean every instance; needs:parallel:matrix picks some', async () => {
  const config = await parse(`
stages: [build, test, deploy]
build:
  stage: build
  script: make
  parallel:
    matrix:
      - OS: [linux, mac]
        ARCH: [amd64, arm64]
unit:
  stage: test
  script: test
  parallel: 2
  needs: [build]
linux-arm:
  stage: test
  script: test
  needs:
    - job: build
      parallel:
        matrix:
          - OS: linux
            ARCH: arm64
deploy:
  stage: deploy
  script: deploy
  dependencies: [unit]
`)
  const plan = created(planPipeline(config, event()))
  const needs = (name: string) => plan.jobs.find((j) => j.name === name)!.needs?.map((n) => n.job)
  const all = ['build: [linux, amd64]', 'build: [linux, arm64]', 'build: [mac, amd64]', 'build: [mac, arm64]']
  assert.deepEqual(needs('unit 1/2'), all)
  assert.deepEqual(needs('unit 2/2'), all)
  assert.deepEqual(needs('linux-arm'), ['build: [linux, arm64]'])
  assert.deepEqual(plan.jobs.find((j) => j.name === 'deploy')!.dependencies, ['unit 1/2', 'unit 2/2'])
})

test('a need on an instance by its full name works', async () => {
  const config = await parse('a:\n  stage: build\n  script: x\n  parallel: 2\nb:\n  script: y\n  needs: ["a 2/2"]\n')
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(
    plan.jobs.find((j) => j.name === 'b')!.needs?.map((n) => n.job),
    ['a 2/2'],
  )
})

async function errors(yaml: string): Promise<string[]> {
  try {
    await parse(yaml)
  } catch (e) {
    if (e instanceof CiConfigError) return [...e.errors]
    throw e
  }
  return []
}

test('invalid parallel: bounds, types, matrix shape, too many jobs, unknown combinations', async () => {
  assert.deepEqual(await errors('a:\n  script: x\n  parallel: 0\n'), ['jobs:a:parallel config must be greater than or equal to 1'])
  assert.deepEqual(await errors('a:\n  script: x\n  parallel: 201\n'), ['jobs:a:parallel config must be less than or equal to 200'])
  assert.deepEqual(await errors('a:\n  script: x\n  parallel: two\n'), ['jobs:a:parallel config should be an integer or a hash'])
  assert.deepEqual(await errors('a:\n  script: x\n  parallel:\n    matrix: {A: b}\n'), [
    'jobs:a:parallel:matrix config should be an array of hashes',
  ])
  assert.deepEqual(await errors('a:\n  script: x\n  parallel:\n    matrix:\n      - A: {b: c}\n'), [
    'jobs:a:parallel:matrix:0:A config should be a string or an array of strings',
  ])
  assert.deepEqual(await errors('a:\n  script: x\n  parallel:\n    count: 2\n'), ['jobs:a:parallel config contains unknown keys: count'])
  const big = `a:\n  script: x\n  parallel:\n    matrix:\n      - A: [${Array.from({ length: 15 }, (_, i) => i).join(', ')}]\n        B: [${Array.from({ length: 14 }, (_, i) => i).join(', ')}]\n`
  assert.deepEqual(await errors(big), ['jobs:a:parallel:matrix config generates too many jobs (maximum is 200)'])
  assert.deepEqual(
    await errors(
      'a:\n  stage: build\n  script: x\n  parallel:\n    matrix:\n      - A: [x, y]\nb:\n  script: y\n  needs:\n    - job: a\n      parallel:\n        matrix:\n          - A: z\n',
    ),
    ['b job: undefined need: a: [z]'],
  )
  assert.deepEqual(
    await errors(
      'a:\n  stage: build\n  script: x\nb:\n  script: y\n  needs:\n    - job: a\n      parallel:\n        matrix:\n          - A: z\n',
    ),
    ['b job: undefined need: a'],
  )
})
