import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CiConfigError } from './errors.ts'
import type { IncludeSource, ProjectFile } from './include.ts'
import { parseCiConfig } from './parse.ts'
import { anyGlobMatches } from './glob.ts'

// include:project, include:component with spec:inputs, include:rules: the parser's side. Other
// projects are a map of path -> ref -> files; what a user may read is decided by the caller
// (Pipelines), which answers "project" for a project it may not see.

type Projects = Record<string, Record<string, Record<string, string>>>

function source(own: Record<string, string>, projects: Projects, vars: Record<string, string> = {}): IncludeSource {
  return {
    readFile: async (path) => own[path],
    readProjectFile: async (project, ref, path): Promise<ProjectFile> => {
      const refs = projects[project]
      if (!refs) return { missing: 'project' }
      const files = refs[ref ?? 'main']
      if (!files) return { missing: 'ref' }
      const content = files[path]
      return content === undefined ? { missing: 'file' } : { content }
    },
    variables: { CI_SERVER_HOST: 'wharf.example', CI_SERVER_FQDN: 'wharf.example:5000', CI_PROJECT_PATH: 'team/app', ...vars },
    fileExists: (glob) => anyGlobMatches([glob], Object.keys(own)),
  }
}

async function errors(text: string, src: IncludeSource): Promise<string[]> {
  try {
    await parseCiConfig(text, src)
  } catch (e) {
    if (e instanceof CiConfigError) return [...e.errors]
    throw e
  }
  return []
}

const COMPONENT = `spec:
  inputs:
    stage:
      default: test
    image:
      description: the image to build
    platforms:
      type: array
      default: [linux/amd64]
    push:
      type: boolean
      default: true
    retries:
      type: number
      default: 1
    env:
      options: [staging, production]
      default: staging
    tag:
      regex: ^v\\d+\\.\\d+$
      default: v1.0
---
"build-$[[ inputs.image ]]":
  stage: $[[ inputs.stage ]]
  script:
    - echo "building $[[ inputs.image ]]:$[[ inputs.tag ]] for $[[ inputs.platforms ]] to $[[ inputs.env ]]"
  variables:
    PUSH: $[[ inputs.push ]]
  retry: $[[ inputs.retries ]]
`

const shared: Projects = {
  'ci/components': {
    main: { 'templates/docker-build.yml': COMPONENT, 'templates/lint/template.yml': 'lint:\n  script: [lint]\n' },
    'v1.2': { 'templates/docker-build.yml': COMPONENT.replace('building', 'v1.2 building') },
  },
  'ci/shared': {
    main: {
      'jobs/test.yml': 'include: jobs/common.yml\ntest:\n  extends: .common\n  script: [make test]\n',
      'jobs/common.yml': '.common:\n  image: alpine\n',
      'jobs/lint.yml': 'lint:\n  script: [make lint]\n',
    },
    stable: { 'jobs/test.yml': 'test:\n  script: [make stable-test]\n' },
  },
}

test('include:project: file list, ref, nested local includes read from that project', async () => {
  const config = await parseCiConfig(
    'include:\n  - project: ci/shared\n    file: [jobs/test.yml, /jobs/lint.yml]\nown:\n  script: [x]\n',
    source({}, shared),
  )
  assert.deepEqual(
    config.jobs.map((j) => [j.name, j.image?.name ?? null, j.script]),
    [
      ['test', 'alpine', ['make test']],
      ['lint', null, ['make lint']],
      ['own', null, ['x']],
    ],
  )
  assert.deepEqual(config.includes, ['ci/shared/jobs/test.yml', 'ci/shared/jobs/common.yml', 'ci/shared/jobs/lint.yml'])
  const stable = await parseCiConfig('include:\n  project: ci/shared\n  ref: stable\n  file: jobs/test.yml\n', source({}, shared))
  assert.deepEqual(stable.jobs[0]?.script, ['make stable-test'])
})

test('include:project errors: project unknown or not readable, ref, file', async () => {
  assert.deepEqual(await errors('include:\n  project: ci/secret\n  file: a.yml\n', source({}, shared)), [
    'Project `ci/secret` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.',
  ])
  assert.deepEqual(await errors('include:\n  project: ci/shared\n  ref: nope\n  file: a.yml\n', source({}, shared)), [
    'Project `ci/shared` reference `nope` does not exist!',
  ])
  assert.deepEqual(await errors('include:\n  project: ci/shared\n  file: a.yml\n', source({}, shared)), [
    'Project `ci/shared` file `a.yml` does not exist!',
  ])
  assert.deepEqual(await errors('include:\n  project: ci/shared\n', source({}, shared)), [
    'Included file needs to be a string or an array of strings: file is missing',
  ])
})

test('include:component with typed inputs, defaults and interpolation; the version picks the ref', async () => {
  const config = await parseCiConfig(
    `include:
  - component: $CI_SERVER_FQDN/ci/components/docker-build@main
    inputs:
      image: app
      platforms: [linux/amd64, linux/arm64]
      env: production
  - component: wharf.example/ci/components/lint@main
`,
    source({}, shared),
  )
  const build = config.jobs.find((j) => j.name === 'build-app')!
  assert.equal(build.stage, 'test')
  assert.deepEqual(build.script, ['echo "building app:v1.0 for ["linux/amd64","linux/arm64"] to production"'])
  assert.equal(build.variables.PUSH?.value, 'true')
  assert.deepEqual(build.retry, { max: 1, when: ['always'], exitCodes: [] })
  assert.ok(
    config.jobs.some((j) => j.name === 'lint'),
    'templates/<name>/template.yml',
  )
  const pinned = await parseCiConfig(
    'include:\n  - component: wharf.example/ci/components/docker-build@v1.2\n    inputs: {image: x}\n',
    source({}, shared),
  )
  assert.match(pinned.jobs[0]!.script[0]!, /^echo "v1\.2 building x/)
})

test('component and input errors, as GitLab words them', async () => {
  const src = source({}, shared)
  const inc = (inputs: string) => `include:\n  - component: wharf.example/ci/components/docker-build@main\n    inputs: ${inputs}\n`
  assert.deepEqual(await errors(inc('{}'), src), [
    '`ci/components/templates/docker-build.yml`: `image` input: required value has not been provided',
  ])
  assert.deepEqual(await errors(inc('{image: a, push: "yes"}'), src), [
    '`ci/components/templates/docker-build.yml`: `push` input: provided value is not a boolean',
  ])
  assert.deepEqual(await errors(inc('{image: a, env: dev}'), src), [
    '`ci/components/templates/docker-build.yml`: `env` input: `dev` cannot be used because it is not in the list of allowed options',
  ])
  assert.deepEqual(await errors(inc('{image: a, tag: latest}'), src), [
    '`ci/components/templates/docker-build.yml`: `tag` input: provided value does not match required RegEx pattern',
  ])
  assert.deepEqual(await errors(inc('{image: a, colour: red}'), src), [
    '`ci/components/templates/docker-build.yml`: unknown input arguments: colour',
  ])
  assert.deepEqual(await errors('include:\n  - component: other.host/ci/components/lint@main\n', src), [
    "Component 'other.host/ci/components/lint@main' - the component path must start with this instance's host (wharf.example:5000)",
  ])
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/components/missing@main\n', src), [
    "Component 'wharf.example/ci/components/missing@main' - content not found",
  ])
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/components/lint\n', src), [
    "Component 'wharf.example/ci/components/lint' - the component path must end with @<version>",
  ])
  assert.deepEqual(await errors('include:\n  - local: a.yml\n    inputs: {x: 1}\n', source({ 'a.yml': 'a:\n  script: [x]\n' }, shared)), [
    '`a.yml`: Given inputs not defined in the `spec` section of the included configuration file',
  ])
  assert.deepEqual(
    await errors(
      'include: a.yml\n',
      source({ 'a.yml': 'spec:\n  inputs:\n    x:\n      default: y\n---\na:\n  script: ["$[[ inputs.z ]]"]\n' }, shared),
    ),
    ['`a.yml`: unknown interpolation key: `z`'],
  )
})

test('include:rules: if and exists against predefined variables and the repository; when: never', async () => {
  const own = { 'a.yml': 'a:\n  script: [a]\n', 'b.yml': 'b:\n  script: [b]\n', 'c.yml': 'c:\n  script: [c]\n', Dockerfile: 'FROM x' }
  const text = `include:
  - local: a.yml
    rules:
      - if: $CI_PROJECT_PATH == "team/app"
  - local: b.yml
    rules:
      - exists: [Dockerfile]
        when: never
      - when: always
  - local: c.yml
    rules:
      - if: $CI_PROJECT_PATH == "other/app"
      - exists: missing.txt
z:
  script: [z]
`
  const config = await parseCiConfig(text, source(own, shared))
  assert.deepEqual(
    config.jobs.map((j) => j.name),
    ['a', 'z'],
  )
  assert.deepEqual(await errors('include:\n  - local: a.yml\n    rules:\n      - needs: [x]\n', source(own, shared)), [
    'include rule config contains unknown keys: needs',
  ])
})

test('include:remote: HTTPS only, fetched by the caller (whose refusal is the error), inputs like any include', async () => {
  const src: IncludeSource = {
    ...source({}, shared),
    readRemote: async (url) =>
      url === 'https://ci.example/t.yml'
        ? { content: 'spec:\n  inputs:\n    who: {}\n---\nhello:\n  script:\n    - echo $[[ inputs.who ]]\n' }
        : { error: `Remote file \`${url}\` could not be fetched because of HTTP code \`404\` error!` },
  }
  const config = await parseCiConfig('include:\n  - remote: https://ci.example/t.yml\n    inputs: {who: world}\n', src)
  assert.deepEqual(config.jobs[0]?.script, ['echo world'])
  assert.deepEqual(await errors('include: https://ci.example/missing.yml\n', src), [
    'Remote file `https://ci.example/missing.yml` could not be fetched because of HTTP code `404` error!',
  ])
  assert.deepEqual(await errors('include:\n  - remote: http://ci.example/t.yml\n', src), [
    'Remote file `http://ci.example/t.yml` must be fetched over HTTPS',
  ])
})
