import { test } from 'node:test'
import assert from 'node:assert/strict'
import { pickVersion } from './component-version.ts'
import { CiConfigError } from './errors.ts'
import { anyGlobMatches } from './glob.ts'
import type { IncludeSource, ProjectFile } from './include.ts'
import { posixEscape } from './inputs.ts'
import { parseCiConfig } from './parse.ts'

// Issue 17's include keywords: component versions (~latest, partial), interpolation functions,
// include:rules:changes, and child pipelines from every include form (trigger:include).

type Projects = Record<string, Record<string, Record<string, string>>>

interface Options {
  vars?: Record<string, string>
  masked?: string[]
  /** Paths changed by the push (null: unknown), and since each compare_to ref. */
  changed?: string[] | null
  since?: Record<string, string[]>
}

function source(own: Record<string, string>, projects: Projects, o: Options = {}): IncludeSource {
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
    // Every ref but `main` is a tag here.
    projectTags: async (project) =>
      projects[project] ? Object.keys(projects[project]).filter((r) => r !== 'main') : { missing: 'project' },
    variables: { CI_SERVER_HOST: 'wharf.example', CI_SERVER_FQDN: 'wharf.example', CI_PROJECT_PATH: 'team/app', ...o.vars },
    ...(o.masked ? { maskedVariables: o.masked } : {}),
    fileExists: (glob) => anyGlobMatches([glob], Object.keys(own)),
    changedFiles: async (compareTo) => {
      if (compareTo === null) return o.changed ?? undefined
      const got = o.since?.[compareTo]
      if (!got) throw new Error(`unexpected compare_to ${compareTo}`)
      return got
    },
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

const template = (marker: string) =>
  `spec:\n  inputs:\n    name:\n      default: x\n---\n"${marker}-$[[ inputs.name ]]":\n  script: [echo ${marker}]\n`
const versions: Projects = {
  'ci/comp': {
    main: { 'templates/build.yml': template('main') },
    '0.9.0': { 'templates/build.yml': template('v090') },
    '1.2.0': { 'templates/build.yml': template('v120') },
    '1.10.1': { 'templates/build.yml': template('v1101') },
    '1.2.7': { 'templates/build.yml': template('v127') },
    '2.0.0-rc.1': { 'templates/build.yml': template('rc') },
    'v3.0.0': { 'templates/build.yml': template('vprefixed') },
    'release-4': { 'templates/build.yml': template('other') },
  },
}

test('pickVersion: highest semantic version tag, partial versions by major and minor, pre-releases never', () => {
  const tags = ['0.9.0', '1.2.0', '1.10.1', '1.2.7', '2.0.0-rc.1', 'v3.0.0', 'latest', '01.0.0']
  assert.equal(pickVersion('~latest', tags), '1.10.1')
  assert.equal(pickVersion('1', tags), '1.10.1')
  assert.equal(pickVersion('1.2', tags), '1.2.7')
  assert.equal(pickVersion('0', tags), '0.9.0')
  assert.equal(pickVersion('2', tags), undefined)
  assert.equal(pickVersion('~latest', ['main', 'v1']), undefined)
})

test('include:component at ~latest, a partial version, a full version, a branch', async () => {
  const names = async (version: string) =>
    (await parseCiConfig(`include:\n  - component: wharf.example/ci/comp/build@${version}\n`, source({}, versions))).jobs.map((j) => j.name)
  assert.deepEqual(await names('~latest'), ['v1101-x'])
  assert.deepEqual(await names('1.2'), ['v127-x'])
  assert.deepEqual(await names('0'), ['v090-x'])
  assert.deepEqual(await names('1.2.0'), ['v120-x'])
  assert.deepEqual(await names('main'), ['main-x'])
  assert.deepEqual(await names('release-4'), ['other-x'])
})

test('component version errors: no released version, none matching, unknown ~ versions, unreadable project', async () => {
  const none: Projects = { 'ci/comp': { main: { 'templates/build.yml': template('main') }, 'v1.0.0': {} } }
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/comp/build@~latest\n', source({}, none)), [
    "Component 'wharf.example/ci/comp/build@~latest' - content not found: no released version (released versions are tags named as semantic versions, such as 1.0.0)",
  ])
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/comp/build@5.1\n', source({}, versions)), [
    "Component 'wharf.example/ci/comp/build@5.1' - content not found: no released version matches 5.1 (released versions are tags named as semantic versions, such as 1.0.0)",
  ])
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/comp/build@~stable\n', source({}, versions)), [
    "Component 'wharf.example/ci/comp/build@~stable' - version ~stable is not supported: use ~latest, a version (1, 1.2 or 1.2.3), a tag, a branch or a commit SHA",
  ])
  assert.deepEqual(await errors('include:\n  - component: wharf.example/ci/secret/build@~latest\n', source({}, versions)), [
    'Project `ci/secret` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.',
  ])
})

const FUNCTIONS = `spec:
  inputs:
    name:
      description: what to call the image
    tag:
      type: string
      default: '$CI_COMMIT_REF_NAME-$UNKNOWN'
    msg:
      default: "it's a \\"test\\" $HOME"
---
"build-$[[ inputs.name | truncate(0,5) ]]":
  script:
    - echo $[[ inputs.msg | posix_escape ]]
    - echo $[[ inputs.tag | expand_vars | truncate(0,9) ]]
    - echo $[[ inputs.tag | expand_vars ]]
    - echo $[[ inputs.name | truncate(4,100) | posix_escape ]]
`

test('interpolation functions: expand_vars (known variables only), truncate, posix_escape, chained', async () => {
  const own = { 'f.yml': FUNCTIONS }
  const config = await parseCiConfig(
    'include:\n  - local: f.yml\n    inputs: {name: "web app"}\n',
    source(own, {}, { vars: { CI_COMMIT_REF_NAME: 'feature/login' } }),
  )
  const job = config.jobs[0]!
  assert.equal(job.name, 'build-web a')
  assert.deepEqual(job.script, [`echo it\\'s\\ a\\ \\"test\\"\\ \\$HOME`, 'echo feature/l', 'echo feature/login-$UNKNOWN', 'echo app'])
  assert.equal(posixEscape(''), "''")
  assert.equal(posixEscape('a\nb'), "a'\n'b")
  assert.equal(posixEscape('safe-_.,:+/@x'), 'safe-_.,:+/@x')
})

test('interpolation function errors, as GitLab words them', async () => {
  const own = (body: string) => ({
    'f.yml': `spec:\n  inputs:\n    s:\n      default: abc\n    n:\n      type: number\n      default: 1\n---\nj:\n  script: [${body}]\n`,
  })
  const err = async (body: string, o: Options = {}) => errors('include: f.yml\n', source(own(body), {}, o))
  assert.deepEqual(await err('"$[[ inputs.s | upcase ]]"'), [
    '`f.yml`: no function matching `upcase`: check that the function name, arguments, and types are correct',
  ])
  assert.deepEqual(await err('"$[[ inputs.s | truncate(1) ]]"'), [
    '`f.yml`: no function matching `truncate(1)`: check that the function name, arguments, and types are correct',
  ])
  assert.deepEqual(await err('"$[[ inputs.s | posix_escape | posix_escape | posix_escape | posix_escape ]]"'), [
    '`f.yml`: too many functions in interpolation block',
  ])
  assert.deepEqual(await err('"x $[[ inputs.n | truncate(0,1) ]]"'), [
    '`f.yml`: error in `truncate` function: invalid input type: truncate can only be used with string inputs',
  ])
  const masked = (value: string) => ({
    'f.yml': `spec:\n  inputs:\n    s:\n      default: '${value}'\n---\nj:\n  script: ["$[[ inputs.s | expand_vars ]]"]\n`,
  })
  assert.deepEqual(await errors('include: f.yml\n', source(masked('$TOKEN'), {}, { vars: { TOKEN: 'secret123' }, masked: ['TOKEN'] })), [
    '`f.yml`: error in `expand_vars` function: variable expansion error: masked variables cannot be used with expand_vars: TOKEN',
  ])
})

test('include:rules:changes: the push diff, compare_to, unknown changes (a new branch) include the file', async () => {
  const own = { 'docker.yml': 'docker:\n  script: [build]\n', 'docs.yml': 'docs:\n  script: [docs]\n' }
  const text = `include:
  - local: docker.yml
    rules:
      - changes: [Dockerfile, docker/**/*]
  - local: docs.yml
    rules:
      - changes:
          paths: ['*.md']
          compare_to: refs/heads/main
app:
  script: [x]
`
  const jobs = async (o: Options) => (await parseCiConfig(text, source(own, {}, o))).jobs.map((j) => j.name)
  assert.deepEqual(await jobs({ changed: ['src/a.ts'], since: { 'refs/heads/main': ['src/a.ts'] } }), ['app'])
  assert.deepEqual(await jobs({ changed: ['docker/base/Dockerfile'], since: { 'refs/heads/main': ['README.md'] } }), [
    'docker',
    'docs',
    'app',
  ])
  assert.deepEqual(await jobs({ changed: null, since: { 'refs/heads/main': [] } }), ['docker', 'app'])
  assert.deepEqual(await errors('include:\n  - local: docker.yml\n    rules:\n      - changes: {compare_to: main}\n', source(own, {})), [
    'include rule changes config missing required keys: paths',
  ])
})

test('trigger:include: every include form for a child pipeline, with inputs; one form per entry', async () => {
  const config = await parseCiConfig(
    `child:
  trigger:
    include:
      - project: ci/shared
        ref: v1
        file: [a.yml, b.yml]
      - template: Docker.gitlab-ci.yml
      - component: $CI_SERVER_FQDN/ci/comp/build@~latest
        inputs: {name: y}
      - local: c.yml
      - artifact: gen.yml
        job: gen
    forward: {pipeline_variables: true, yaml_variables: false}
`,
    source({}, {}),
  )
  assert.deepEqual(config.jobs[0]!.trigger, {
    project: null,
    branch: null,
    include: [
      { project: 'ci/shared', ref: 'v1', file: ['a.yml', 'b.yml'] },
      { template: 'Docker.gitlab-ci.yml' },
      { component: '$CI_SERVER_FQDN/ci/comp/build@~latest', inputs: { name: 'y' } },
      { local: 'c.yml' },
      { artifact: 'gen.yml', job: 'gen' },
    ],
    depend: false,
    forward: { yamlVariables: false, pipelineVariables: true },
  })
  const bad = async (entry: string) => errors(`child:\n  trigger:\n    include:\n      - ${entry}\n`, source({}, {}))
  assert.deepEqual(await bad('{project: a/b, template: X.yml}'), [
    'jobs:child:trigger:include config these keys cannot be used together: project, template',
  ])
  assert.deepEqual(await bad('{template: X.yml, file: a.yml}'), ['jobs:child:trigger:include config contains unknown keys: file'])
  assert.deepEqual(await bad('{component: 3}'), ['jobs:child:trigger:include component should be a string'])
  assert.deepEqual(await bad('{inputs: {a: 1}}'), [
    'jobs:child:trigger:include config should be one of: local, artifact, project, template, component, remote',
  ])
})
