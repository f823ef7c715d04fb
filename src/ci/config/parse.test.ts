import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseCiConfig } from './parse.ts'
import { planPipeline } from './plan.ts'
import { created, event, fixture, folder, graph, noFiles, parse } from './test-support.ts'

// Real-world `.gitlab-ci.yml` shapes, parsed and planned, with the job graph asserted.

test("the seed's Docker template, verbatim", async () => {
  const config = await parseCiConfig(await fixture('seed-docker-template.gitlab-ci.yml'), noFiles)
  assert.deepEqual(config.stages, ['.pre', 'build', 'test', 'deploy', '.post'])
  const [build] = config.jobs
  assert.equal(config.jobs.length, 1)
  assert.equal(build?.name, 'build')
  assert.deepEqual(build?.image, { name: 'docker:latest', entrypoint: null, pullPolicy: null, docker: null })
  assert.deepEqual(
    build?.services.map((s) => s.name),
    ['docker:dind'],
  )
  assert.deepEqual(build?.script, [
    'docker login -u "gitlab-ci-token" -p "$CI_BUILD_TOKEN" $CI_REGISTRY',
    'docker build --pull -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .',
    'docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"',
  ])
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(plan.stages, ['build'])
  assert.deepEqual(graph(plan), [{ name: 'build', stage: 'build', when: 'on_success' }])
  // The same pipeline runs for tags (default `only: [branches, tags]`).
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'v1.0.0', tag: true }))), [
    { name: 'build', stage: 'build', when: 'on_success' },
  ])
})

test('the Docker registry template: stages, global variables, top-level before_script', async () => {
  const config = await parseCiConfig(await fixture('docker-registry.gitlab-ci.yml'), noFiles)
  assert.deepEqual(config.stages, ['.pre', 'build', '.post'])
  assert.deepEqual(config.variables, { DOCKER_DRIVER: { value: 'overlay', expand: true, description: null } })
  const plan = created(planPipeline(config, event({ ref: 'feature/x' })))
  const [build] = plan.jobs
  assert.deepEqual(graph(plan), [{ name: 'build', stage: 'build', when: 'on_success' }])
  assert.equal(build?.image?.name, 'docker:latest')
  assert.deepEqual(
    build?.services.map((s) => s.name),
    ['docker:dind'],
  )
  assert.deepEqual(build?.beforeScript, ['docker login -u gitlab-ci-token -p "$CI_BUILD_TOKEN" $CI_REGISTRY'])
  assert.deepEqual(build?.script, [
    'docker build --pull -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .',
    'docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"',
  ])
  assert.deepEqual(build?.variables, { DOCKER_DRIVER: 'overlay' })
  assert.deepEqual(plan.variables, { DOCKER_DRIVER: 'overlay' })
})

test('multi-stage build/test/deploy with only/except', async () => {
  const config = await parseCiConfig(await fixture('multi-stage.gitlab-ci.yml'), noFiles)
  const build = config.jobs.find((j) => j.name === 'build')
  assert.equal(build?.image?.name, 'node:20-alpine', 'default:image')
  assert.deepEqual(build?.beforeScript, ['npm ci'])
  assert.deepEqual(build?.cache, [
    {
      key: { files: ['package-lock.json'], prefix: null },
      paths: ['node_modules/'],
      policy: 'pull-push',
      when: 'on_success',
      untracked: false,
      unprotect: false,
      fallbackKeys: [],
    },
  ])
  assert.equal(build?.artifacts?.expireIn, 604_800)
  const unit = config.jobs.find((j) => j.name === 'unit')
  assert.equal(unit?.coverage, '/Lines\\s*:\\s*(\\d+\\.?\\d*)%/')
  assert.deepEqual(unit?.artifacts?.reports, { junit: 'junit.xml' })
  assert.equal(unit?.artifacts?.when, 'always')
  assert.equal(config.jobs.find((j) => j.name === 'nightly')?.timeout, 10_800)
  assert.deepEqual(config.jobs.find((j) => j.name === 'deploy_staging')?.environment, {
    name: 'staging',
    url: 'https://staging.example.com',
    action: 'start',
    onStop: null,
    autoStopIn: null,
    deploymentTier: null,
  })

  assert.deepEqual(graph(planPipeline(config, event({ ref: 'main' }))), [
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'unit', stage: 'test', when: 'on_success' },
    { name: 'lint', stage: 'test', when: 'on_success', allowFailure: true },
    { name: 'deploy_staging', stage: 'deploy', when: 'on_success' },
    { name: 'deploy_production', stage: 'deploy', when: 'manual', allowFailure: true },
  ])
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'feature/login' }))), [
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'unit', stage: 'test', when: 'on_success' },
    { name: 'lint', stage: 'test', when: 'on_success', allowFailure: true },
  ])
  // A tag: deploy_* are main-only, release runs except for v0.x tags.
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'v1.4.0', tag: true }))) as { name: string }[]).map((j) => j.name),
    ['build', 'unit', 'lint', 'release'],
  )
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'v0.9.0', tag: true }))) as { name: string }[]).map((j) => j.name),
    ['build', 'unit', 'lint'],
  )
  // A schedule on main also runs the nightly job.
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'main', source: 'schedule' }))) as { name: string }[]).map((j) => j.name),
    ['build', 'unit', 'lint', 'nightly', 'deploy_staging', 'deploy_production'],
  )
  const plan = created(planPipeline(config, event({ ref: 'main' })))
  assert.deepEqual(plan.stages, ['build', 'test', 'deploy'])
  assert.deepEqual(
    plan.jobs.map((j) => j.stageIndex),
    [0, 1, 1, 2, 2],
  )
  assert.deepEqual(plan.jobs.find((j) => j.name === 'deploy_staging')?.artifactsFrom, ['build', 'unit', 'lint'])
})

test('a DAG: needs across and within stages, needs: [], optional needs, dependencies', async () => {
  const config = await parseCiConfig(await fixture('dag.gitlab-ci.yml'), noFiles)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(graph(plan), [
    { name: 'build_linux', stage: 'build', when: 'on_success' },
    { name: 'build_mac', stage: 'build', when: 'on_success' },
    { name: 'lint', stage: 'test', when: 'on_success', needs: [] },
    { name: 'test_linux', stage: 'test', when: 'on_success', needs: ['build_linux'] },
    { name: 'test_mac', stage: 'test', when: 'on_success', needs: ['build_mac'] },
    { name: 'package_linux', stage: 'package', when: 'on_success', needs: ['test_linux', 'build_linux'] },
    { name: 'checksums', stage: 'package', when: 'on_success', needs: ['package_linux'] },
    { name: 'docs', stage: 'package', when: 'on_success', needs: ['lint'] },
    { name: 'deploy', stage: 'deploy', when: 'on_success' },
  ])
  const job = (name: string) => plan.jobs.find((j) => j.name === name)
  assert.deepEqual(job('package_linux')?.needs, [
    { job: 'test_linux', artifacts: false, optional: false },
    { job: 'build_linux', artifacts: true, optional: false },
  ])
  assert.deepEqual(job('package_linux')?.artifactsFrom, ['build_linux'])
  assert.deepEqual(job('lint')?.artifactsFrom, [])
  assert.deepEqual(job('deploy')?.dependencies, ['package_linux'])
  assert.deepEqual(job('deploy')?.artifactsFrom, ['package_linux'])
})

test('extends: a three-level chain with deep-merged hashes and replaced arrays', async () => {
  const config = await parseCiConfig(await fixture('extends-chain.gitlab-ci.yml'), noFiles)
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['rspec', 'rspec:nightly'],
    'hidden jobs are templates only',
  )
  const rspec = config.jobs[0]
  assert.deepEqual(rspec?.extends, ['.rspec'])
  assert.equal(rspec?.stage, 'test')
  assert.equal(rspec?.image?.name, 'ruby:3.3')
  assert.deepEqual(rspec?.tags, ['docker', 'large'], 'arrays are replaced, not concatenated')
  assert.deepEqual(rspec?.retry, { max: 1, when: ['always'], exitCodes: [] })
  assert.deepEqual(rspec?.beforeScript, ['bundle install'])
  assert.deepEqual(rspec?.script, ['bundle exec rspec $RSPEC_OPTS'])
  assert.deepEqual(Object.fromEntries(Object.entries(rspec?.variables ?? {}).map(([k, v]) => [k, v.value])), {
    RAILS_ENV: 'test',
    LOG_LEVEL: 'debug',
    DATABASE_URL: 'postgres://postgres:secret@db/test',
    RSPEC_OPTS: '--fail-fast',
  })
  assert.deepEqual(rspec?.services, [
    {
      name: 'postgres:16',
      alias: 'db',
      entrypoint: null,
      command: null,
      pullPolicy: null,
      docker: null,
      variables: { POSTGRES_PASSWORD: 'secret' },
    },
  ])
  assert.equal(rspec?.artifacts?.expireIn, 1800)
  assert.deepEqual(
    rspec?.cache.map((c) => c.key),
    ['gems'],
  )

  const nightly = config.jobs[1]
  assert.deepEqual(nightly?.extends, ['.rspec', '.nightly'])
  assert.equal(nightly?.timeout, 7200)
  assert.equal(nightly?.variables.RSPEC_OPTS?.value, '--tag slow')
  assert.deepEqual(graph(planPipeline(config, event())), [{ name: 'rspec', stage: 'test', when: 'on_success' }])
  assert.deepEqual(graph(planPipeline(config, event({ source: 'schedule' }))), [
    { name: 'rspec', stage: 'test', when: 'on_success' },
    { name: 'rspec:nightly', stage: 'test', when: 'on_success' },
  ])
})

test('rules: regexes, variable comparisons, &&/||/parentheses, changes, exists, when', async () => {
  const config = await parseCiConfig(await fixture('rules.gitlab-ci.yml'), noFiles)

  // Push to the default branch, a Dockerfile in the tree, only code changed.
  const main = created(planPipeline(config, event({ ref: 'main', repoFiles: ['Dockerfile', 'src/a.ts'], changed: ['src/a.ts'] })))
  assert.deepEqual(graph(main), [
    { name: 'setup', stage: '.pre', when: 'on_success' },
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'docker-image', stage: 'build', when: 'on_success' },
    { name: 'deploy', stage: 'deploy', when: 'on_success' },
    { name: 'notify', stage: '.post', when: 'on_failure', allowFailure: true },
    { name: 'report', stage: '.post', when: 'always' },
  ])
  assert.equal(main.jobs.find((j) => j.name === 'deploy')?.variables.DEPLOY_ENV, 'production', 'rule variables win')
  assert.equal(main.jobs.find((j) => j.name === 'build')?.variables.DEPLOY_ENV, 'staging')
  assert.deepEqual(main.stages, ['.pre', 'build', 'deploy', '.post'])

  // A release branch, docs changed, no Dockerfile: deploy is manual and, as on GitLab,
  // `when: manual` inside rules does not make the job allowed to fail.
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'release/2.0', changed: ['docs/guide/setup.md'] }))), [
    { name: 'setup', stage: '.pre', when: 'on_success' },
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'docs', stage: 'test', when: 'on_success' },
    { name: 'deploy', stage: 'deploy', when: 'manual' },
    { name: 'notify', stage: '.post', when: 'on_failure', allowFailure: true },
    { name: 'report', stage: '.post', when: 'always' },
  ])
  // Markdown at the top level matches "*.md"; a feature branch never deploys.
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'feature/x', changed: ['CHANGELOG.md'] }))) as { name: string }[]).map((j) => j.name),
    ['setup', 'build', 'docs', 'notify', 'report'],
  )
  // A version tag: changes are unknown for tags, so `changes` rules hold (GitLab).
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'v2.0.0', tag: true }))) as { name: string }[]).map((j) => j.name),
    ['setup', 'build', 'docs', 'release', 'report'],
  )
  // A non-version tag: no release.
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'nightly-2024', tag: true }))) as { name: string }[]).map((j) => j.name),
    ['setup', 'build', 'docs', 'report'],
  )
  // A schedule: build is excluded by `when: never`, deploy's source check fails.
  assert.deepEqual(
    (graph(planPipeline(config, event({ ref: 'main', source: 'schedule' }))) as { name: string }[]).map((j) => j.name),
    ['setup', 'docs', 'notify', 'report'],
  )
  // A new branch (changed files unknown): `changes` holds.
  assert.ok(
    (graph(planPipeline(config, event({ ref: 'feature/new', changed: undefined }))) as { name: string }[]).some((j) => j.name === 'docs'),
  )
})

test('anchors, aliases, merge keys and !reference', async () => {
  const config = await parseCiConfig(await fixture('anchors.gitlab-ci.yml'), noFiles)
  const [unit, integration, e2e] = config.jobs
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['test:unit', 'test:integration', 'test:e2e'],
  )
  assert.equal(unit?.image?.name, 'alpine:3.20')
  assert.deepEqual(unit?.tags, ['linux'])
  assert.deepEqual(unit?.retry, { max: 2, when: ['runner_system_failure', 'stuck_or_timeout_failure'], exitCodes: [] })
  assert.deepEqual(unit?.script, ['make deps', 'make test'])
  assert.deepEqual(integration?.tags, ['linux', 'privileged'], 'keys after "<<" override')
  assert.deepEqual(integration?.script, ['make deps', 'make test', 'make integration'], 'nested aliases flatten')
  assert.equal(integration?.variables.TZ?.value, 'Europe/Paris')
  assert.equal(integration?.variables.LANG?.value, 'C.UTF-8')
  assert.deepEqual(e2e?.script, ['make deps', 'make test', 'make e2e'])
  assert.equal(e2e?.variables.LANG?.value, 'C.UTF-8')
  assert.deepEqual(graph(planPipeline(config, event())), [
    { name: 'test:unit', stage: 'test', when: 'on_success' },
    { name: 'test:integration', stage: 'test', when: 'on_success' },
    { name: 'test:e2e', stage: 'test', when: 'on_success' },
  ])
})

test('include: local files, nested includes, deep merge with the including file winning', async () => {
  const repo = folder('repo')
  const main = await repo.readFile('.gitlab-ci.yml')
  const config = await parseCiConfig(main ?? '', repo)
  assert.deepEqual(config.includes, ['ci/build.yml', 'ci/test.yml', 'ci/deploy.yml', 'ci/common.yml'])
  assert.deepEqual(config.variables.GLOBAL?.value, 'main')
  assert.deepEqual(config.variables.BUILD_ONLY?.value, 'yes')
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['build', 'test', 'deploy'],
  )
  const build = config.jobs[0]
  assert.deepEqual(build?.script, ['make'])
  assert.deepEqual(Object.keys(build?.variables ?? {}), ['FROM_INCLUDE', 'EXTRA'])
  assert.equal(config.jobs[1]?.image?.name, 'alpine:3.20', 'extends reaches a template from another include')
  assert.deepEqual(config.jobs[2]?.tags, ['shared'])
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'dev' }))), [
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'test', stage: 'test', when: 'on_success' },
  ])
})

test('include: string, list and hash forms; repeated files merge again', async () => {
  const tree = {
    'a.yml': 'a:\n  script: a\n',
    'b.yaml': 'b:\n  script: b\n',
    'ci/c.yml': 'include: a.yml\nc:\n  script: c\n',
  }
  assert.deepEqual(
    (await parse('include: a.yml\n', tree)).jobs.map((j) => j.name),
    ['a'],
  )
  assert.deepEqual(
    (await parse('include: {local: /b.yaml}\n', tree)).jobs.map((j) => j.name),
    ['b'],
  )
  assert.deepEqual(
    (await parse('include: [a.yml, {local: b.yaml}, ci/c.yml]\nz:\n  script: z\n', tree)).jobs.map((j) => j.name),
    ['a', 'b', 'c', 'z'],
  )
})

test('workflow:rules block tag pipelines; rule variables reach jobs; name is expanded', async () => {
  const config = await parse(`
workflow:
  name: 'Pipeline for $CI_COMMIT_REF_NAME'
  rules:
    - if: $CI_COMMIT_TAG
      when: never
    - if: $CI_PIPELINE_SOURCE == "schedule"
      variables:
        NIGHTLY: "true"
    - if: $CI_COMMIT_BRANCH
variables:
  NIGHTLY: "false"
build:
  script: make
nightly:
  script: make nightly
  rules:
    - if: $NIGHTLY == "true"
`)
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'v1.0.0', tag: true }))), 'filtered: Pipeline filtered out by workflow rules.')
  const push = created(planPipeline(config, event({ ref: 'main' })))
  assert.equal(push.name, 'Pipeline for main')
  assert.deepEqual(graph(push), [{ name: 'build', stage: 'test', when: 'on_success' }])
  const nightly = created(planPipeline(config, event({ ref: 'main', source: 'schedule' })))
  assert.deepEqual(graph(nightly), [
    { name: 'build', stage: 'test', when: 'on_success' },
    { name: 'nightly', stage: 'test', when: 'on_success' },
  ])
  assert.equal(nightly.variables.NIGHTLY, 'true')
  assert.equal(nightly.jobs[0]?.variables.NIGHTLY, 'true')
  // No rule matches (an API pipeline with no branch variable): no pipeline either.
  assert.deepEqual(
    graph(planPipeline(config, event({ ref: 'main', source: 'api', vars: { CI_COMMIT_BRANCH: '' } }))),
    'filtered: Pipeline filtered out by workflow rules.',
  )
})

test('default: inheritance, inherit:default and inherit:variables', async () => {
  const config = await parse(`
default:
  image: ruby:3.3
  before_script: [bundle install]
  after_script: [echo done]
  tags: [shared]
  retry: 2
  timeout: 1h 30m
  interruptible: true
  services: [redis:7]
  artifacts:
    expire_in: 30 mins
    paths: [log/]
variables:
  A: a
  B: b
rspec:
  script: rspec
lint:
  image: node:20
  before_script: []
  inherit:
    default: [tags, retry]
    variables: [B]
  script: npm run lint
docs:
  inherit:
    default: false
    variables: false
  script: make docs
`)
  const [rspec, lint, docs] = config.jobs
  assert.equal(rspec?.image?.name, 'ruby:3.3')
  assert.deepEqual(rspec?.beforeScript, ['bundle install'])
  assert.deepEqual(rspec?.afterScript, ['echo done'])
  assert.deepEqual(rspec?.tags, ['shared'])
  assert.equal(rspec?.retry?.max, 2)
  assert.equal(rspec?.timeout, 5400)
  assert.equal(rspec?.interruptible, true)
  assert.deepEqual(
    rspec?.services.map((s) => s.name),
    ['redis:7'],
  )
  assert.equal(rspec?.artifacts?.expireIn, 1800)

  assert.equal(lint?.image?.name, 'node:20', 'own keyword wins')
  assert.deepEqual(lint?.beforeScript, [], 'an empty own list still wins')
  assert.deepEqual(lint?.afterScript, [], 'not in the inherit list')
  assert.deepEqual(lint?.tags, ['shared'])
  assert.equal(lint?.retry?.max, 2)
  assert.equal(lint?.timeout, null)
  assert.deepEqual(lint?.services, [])

  assert.equal(docs?.image, null)
  assert.deepEqual(docs?.tags, [])
  assert.equal(docs?.artifacts, null)

  const plan = created(planPipeline(config, event()))
  assert.deepEqual(
    plan.jobs.map((j) => j.variables),
    [{ A: 'a', B: 'b' }, { B: 'b' }, {}],
  )
})

test('manual and always jobs, allow_failure defaults, exit codes', async () => {
  const config = await parse(`
stages: [build, deploy]
build:
  stage: build
  script: make
  allow_failure:
    exit_codes: [137, 255]
deploy:
  stage: deploy
  script: ./deploy
  when: manual
blocking_deploy:
  stage: deploy
  script: ./deploy
  when: manual
  allow_failure: false
cleanup:
  stage: deploy
  script: ./cleanup
  when: always
on_fail:
  stage: deploy
  script: ./page-someone
  when: on_failure
`)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(graph(plan), [
    { name: 'build', stage: 'build', when: 'on_success' },
    { name: 'deploy', stage: 'deploy', when: 'manual', allowFailure: true },
    { name: 'blocking_deploy', stage: 'deploy', when: 'manual' },
    { name: 'cleanup', stage: 'deploy', when: 'always' },
    { name: 'on_fail', stage: 'deploy', when: 'on_failure' },
  ])
  assert.deepEqual(plan.jobs[0]?.allowFailureExitCodes, [137, 255])
})

test('.pre and .post wrap the configured stages, whatever their place in stages:', async () => {
  const config = await parse(`
stages: [.post, build, .pre, deploy]
lint:
  stage: .pre
  script: lint
build:
  stage: build
  script: make
report:
  stage: .post
  script: report
`)
  assert.deepEqual(config.stages, ['.pre', 'build', 'deploy', '.post'])
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(plan.stages, ['.pre', 'build', '.post'])
  assert.deepEqual(
    plan.jobs.map((j) => [j.name, j.stageIndex]),
    [
      ['lint', 0],
      ['build', 1],
      ['report', 2],
    ],
  )
})

test('images, services and variables: full forms, expansion of image names', async () => {
  const config = await parse(`
variables:
  BUILDER: $CI_REGISTRY_IMAGE/builder
  DESCRIBED:
    value: "yes"
    description: Shown on the run pipeline page
build:
  image:
    name: $BUILDER:latest
    entrypoint: [""]
    pull_policy: [always, if-not-present]
  services:
    - name: docker:dind
      alias: docker
      command: ["--tls=false"]
      variables:
        DOCKER_TLS_CERTDIR: ""
    - postgres:16
  variables:
    RAW:
      value: $NOT_EXPANDED
      expand: false
    NUMBER: 42
    FLAG: true
  script: make
`)
  assert.deepEqual(config.variables.DESCRIBED, { value: 'yes', expand: true, description: 'Shown on the run pipeline page' })
  const job = config.jobs[0]
  assert.deepEqual(job?.image, { name: '$BUILDER:latest', entrypoint: [''], pullPolicy: ['always', 'if-not-present'], docker: null })
  assert.equal(job?.variables.RAW?.expand, false)
  const plan = created(planPipeline(config, event()))
  const planned = plan.jobs[0]
  assert.equal(planned?.image?.name, 'wharf.example.com/group/app/builder:latest')
  assert.deepEqual(
    planned?.services.map((s) => [s.name, s.alias, s.command, s.variables]),
    [
      ['docker:dind', 'docker', ['--tls=false'], { DOCKER_TLS_CERTDIR: '' }],
      ['postgres:16', null, null, {}],
    ],
  )
  assert.deepEqual(planned?.variables, {
    BUILDER: '$CI_REGISTRY_IMAGE/builder',
    DESCRIBED: 'yes',
    RAW: '$NOT_EXPANDED',
    NUMBER: '42',
    FLAG: 'true',
  })
  assert.deepEqual(planned?.rawVariables, ['RAW'])
})

test('YAML 1.1 as GitLab (Psych) reads it: duplicate keys, yes/on booleans, y/n and dates as strings', async () => {
  const config = await parse(`
job:
  script: first
job:
  script: second
  interruptible: yes
  variables:
    ANSWER: y
    NO: n
    RELEASED: 2024-01-01
    MODE: off
    PORT: 8080
    RATIO: 1.5
`)
  assert.deepEqual(
    config.jobs.map((j) => [j.name, j.script, j.interruptible]),
    [['job', ['second'], true]],
  )
  assert.deepEqual(Object.fromEntries(Object.entries(config.jobs[0]?.variables ?? {}).map(([k, v]) => [k, v.value])), {
    // As with Psych, the key NO is the boolean false: GitLab names that variable "false" too.
    ANSWER: 'y',
    false: 'n',
    RELEASED: '2024-01-01',
    MODE: 'false',
    PORT: '8080',
    RATIO: '1.5',
  })
})

test('names that collide with Object.prototype are ordinary names', async () => {
  const config = await parse(`
__proto__:
  script: a
constructor:
  script: b
  variables:
    __proto__: x
    toString: y
`)
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['__proto__', 'constructor'],
  )
  assert.deepEqual(Object.keys(config.jobs[1]?.variables ?? {}), ['__proto__', 'toString'])
  assert.deepEqual(graph(planPipeline(config, event())).length, 2)
  await assert.rejects(parse('a:\n  extends: toString\n  script: x\n'), { errors: ['a: unknown keys in `extends` (toString)'] })
  await assert.rejects(parse('a:\n  script: x\n  needs: [hasOwnProperty]\n'), { errors: ['a job: undefined need: hasOwnProperty'] })
})

test('cache and artifacts in full', async () => {
  const config = await parse(`
build:
  script: make
  cache:
    - key: $CI_COMMIT_REF_SLUG
      paths: [.cache/]
      policy: pull
      when: always
      untracked: true
      fallback_keys: [main]
    - key:
        files: [Gemfile.lock, yarn.lock]
        prefix: deps
      paths: [vendor/]
      policy: $CACHE_POLICY
  artifacts:
    name: "$CI_JOB_NAME-$CI_COMMIT_REF_SLUG"
    paths: [dist/]
    exclude: [dist/**/*.map]
    expire_in: never
    when: on_failure
    untracked: true
    expose_as: Build output
`)
  const job = config.jobs[0]
  assert.deepEqual(job?.cache, [
    {
      key: '$CI_COMMIT_REF_SLUG',
      paths: ['.cache/'],
      policy: 'pull',
      when: 'always',
      untracked: true,
      unprotect: false,
      fallbackKeys: ['main'],
    },
    {
      key: { files: ['Gemfile.lock', 'yarn.lock'], prefix: 'deps' },
      paths: ['vendor/'],
      policy: '$CACHE_POLICY',
      when: 'on_success',
      untracked: false,
      unprotect: false,
      fallbackKeys: [],
    },
  ])
  assert.deepEqual(job?.artifacts, {
    name: '$CI_JOB_NAME-$CI_COMMIT_REF_SLUG',
    paths: ['dist/'],
    exclude: ['dist/**/*.map'],
    expireIn: 'never',
    when: 'on_failure',
    untracked: true,
    reports: null,
    exposeAs: 'Build output',
    public: null,
    access: null,
  })
})

test('only/except in full: refs keywords, regexes, variables, changes', async () => {
  const config = await parse(`
api_only:
  script: x
  only: [api, web]
release_branches:
  script: x
  only:
    - /^release-.*$/
    - main
not_docs_branches:
  script: x
  except:
    refs: [/^docs-/]
debug:
  script: x
  only:
    variables:
      - $DEBUG == "1"
      - $CI_COMMIT_MESSAGE =~ /\\[debug\\]/
docs_changed:
  script: x
  only:
    refs: [branches]
    changes: [docs/**/*]
triggered:
  script: x
  only: [triggers, pipelines]
project_main:
  script: x
  only: [main@group/app]
fork_main:
  script: x
  only: [main@someone/app]
`)
  const names = (e: Parameters<typeof event>[0]) => (graph(planPipeline(config, event(e))) as { name: string }[]).map((j) => j.name)
  assert.deepEqual(names({ ref: 'main' }), ['release_branches', 'not_docs_branches', 'project_main'])
  assert.deepEqual(names({ ref: 'release-1.2', changed: ['docs/a/b.md'] }), ['release_branches', 'not_docs_branches', 'docs_changed'])
  assert.deepEqual(names({ ref: 'docs-update', vars: { DEBUG: '1' } }), ['debug'])
  assert.deepEqual(names({ ref: 'x', source: 'api' }), ['api_only', 'not_docs_branches', 'docs_changed'])
  assert.deepEqual(names({ ref: 'x', source: 'trigger' }), ['not_docs_branches', 'docs_changed', 'triggered'])
})

test('rules built from !reference nest and flatten; a trailing document marker is fine', async () => {
  const config = await parse(`
.on_tags:
  rules:
    - if: $CI_COMMIT_TAG
      when: manual
release:
  script: ./release
  rules:
    - !reference [.on_tags, rules]
    - if: $CI_COMMIT_BRANCH == "main"
---
`)
  assert.deepEqual(
    config.jobs[0]?.rules?.map((r) => [r.if, r.when]),
    [
      ['$CI_COMMIT_TAG', 'manual'],
      ['$CI_COMMIT_BRANCH == "main"', null],
    ],
  )
  assert.deepEqual(graph(planPipeline(config, event({ ref: 'v1', tag: true }))), [{ name: 'release', stage: 'test', when: 'manual' }])
})

test('extends: a chain of 11 hops is allowed whichever way it is declared; 12 is not', async () => {
  const chain = (hops: number, baseFirst: boolean): string => {
    const entries = [`j0:\n  script: x\n`, ...Array.from({ length: hops }, (_, i) => `j${i + 1}:\n  extends: j${i}\n`)]
    return (baseFirst ? entries : entries.reverse()).join('')
  }
  for (const baseFirst of [true, false]) {
    const config = await parse(chain(11, baseFirst))
    assert.equal(config.jobs.length, 12)
    assert.deepEqual(config.jobs.find((j) => j.name === 'j11')?.script, ['x'])
    await assert.rejects(parse(chain(12, baseFirst)), /nesting too deep in `extends`/)
  }
})
