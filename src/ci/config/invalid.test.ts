import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CiConfigError } from './errors.ts'
import { parse } from './test-support.ts'

// Invalid files and the exact errors they produce. Wording follows GitLab's where GitLab has
// the same check ("jobs:<job>[:<key>] <message>", "<job> job: ..."), so people can search it.

interface Case {
  name: string
  yaml: string
  files?: Record<string, string>
  errors: string[]
}

const cases: Case[] = [
  // ---- file level
  { name: 'empty file', yaml: '  \n', errors: ['Please provide content of .gitlab-ci.yml'] },
  { name: 'not a mapping', yaml: '- a\n- b\n', errors: ['Invalid configuration format'] },
  { name: 'comments only', yaml: '# nothing\n', errors: ['Invalid configuration format'] },
  {
    name: 'YAML syntax error',
    yaml: 'build:\n  script: [a\n',
    errors: ['`.gitlab-ci.yml`: Flow sequence in block collection must be sufficiently indented and end with a ] at line 3, column 1'],
  },
  {
    name: 'a spec: header with inputs',
    yaml: 'spec:\n  inputs:\n    env:\n---\nb:\n  script: x\n',
    errors: ['`.gitlab-ci.yml`: a spec: header (CI/CD inputs) is not supported'],
  },
  {
    name: 'a file over the size limit (2 MiB)',
    yaml: `big:\n  script: x\n  variables:\n    PAD: "${'x'.repeat(2 * 1024 * 1024)}"\n`,
    errors: ['`.gitlab-ci.yml`: The parsed YAML is too big'],
  },
  {
    name: 'an included file over the size limit',
    yaml: 'include: big.yml\nb:\n  script: x\n',
    files: { 'big.yml': `.pad: "${'x'.repeat(2 * 1024 * 1024)}"\n` },
    errors: ['`big.yml`: The parsed YAML is too big'],
  },
  {
    // "Billion laughs": each level doubles; without a bound on aliases this expands to 2^30 strings.
    name: 'an alias bomb',
    yaml: `a0: &a0 [x, x]\n${Array.from({ length: 30 }, (_, i) => `a${i + 1}: &a${i + 1} [*a${i}, *a${i}]\n`).join('')}b:\n  script: x\n`,
    errors: ['`.gitlab-ci.yml`: Excessive alias count indicates a resource exhaustion attack'],
  },
  { name: 'no visible job', yaml: '.hidden:\n  script: x\n', errors: ['jobs config should contain at least one visible job'] },

  // ---- unknown and unsupported keys
  {
    name: 'typo in a job keyword',
    yaml: 'build:\n  script: make\n  scirpt: make\n',
    errors: ['jobs:build config contains unknown keys: scirpt'],
  },
  {
    name: 'a job without script',
    yaml: 'build:\n  scirpt: make\n',
    errors: [
      'jobs:build config should implement the script:, run:, or trigger: keyword',
      'jobs:build config contains unknown keys: scirpt',
      'jobs config should contain at least one visible job',
    ],
  },
  {
    name: 'an unknown top-level key is a job without script',
    yaml: 'stagez: [build]\nbuild:\n  script: make\n',
    errors: ['jobs:stagez config should implement the script:, run:, or trigger: keyword'],
  },
  {
    name: 'known GitLab keywords Wharf does not run',
    yaml: 'build:\n  script: make\n  secrets: {}\n  publish: public\n',
    errors: ['jobs:build config contains unsupported keys: secrets, publish'],
  },
  {
    name: 'a trigger job with runner keywords',
    yaml: 'downstream:\n  trigger: group/other\n  script: make\n  image: alpine\n',
    errors: ['jobs:downstream config contains unknown keys: script, image'],
  },
  {
    name: 'a delayed trigger job',
    yaml: 'downstream:\n  trigger: group/other\n  when: delayed\n',
    errors: ['jobs:downstream when should be one of: on_success, on_failure, always, manual'],
  },
  {
    name: 'trigger with both project and include, and a bad strategy',
    yaml: 'd:\n  trigger:\n    project: g/p\n    include: child.yml\n    strategy: wait\n',
    errors: [
      'jobs:d:trigger config these keys cannot be used together: project, include',
      'jobs:d:trigger strategy should be one of: depend',
    ],
  },
  {
    name: 'trigger with neither project nor include',
    yaml: 'd:\n  trigger:\n    strategy: depend\n',
    errors: ['jobs:d:trigger config must specify either project or include'],
  },
  {
    name: 'trigger:include of an artifact without its job',
    yaml: 'd:\n  trigger:\n    include:\n      - artifact: gen.yml\n',
    errors: ['jobs:d:trigger:include config must specify the job where to fetch the artifact from'],
  },
  {
    name: 'trigger:forward with a non-boolean',
    yaml: 'd:\n  trigger:\n    include: c.yml\n    forward:\n      yaml_variables: "no"\n',
    errors: ['jobs:d:trigger:forward yaml_variables should be a boolean value'],
  },
  {
    name: 'include:artifact outside a child pipeline',
    yaml: 'include:\n  - artifact: gen.yml\n    job: gen\nb:\n  script: x\n',
    errors: ['Including configs from artifacts is only allowed when triggering child pipelines'],
  },
  {
    name: 'unknown default keyword',
    yaml: 'default:\n  imagee: alpine\nb:\n  script: x\n',
    errors: ['default config contains unknown keys: imagee'],
  },
  {
    name: 'top-level and default: both set',
    yaml: 'image: alpine\ndefault:\n  image: debian\nb:\n  script: x\n',
    errors: ['image is defined in top-level and `default:` entry'],
  },
  {
    name: 'unknown workflow key',
    yaml: 'workflow:\n  rulez: []\nb:\n  script: x\n',
    errors: ['workflow config contains unknown keys: rulez'],
  },
  {
    name: 'unknown rule key',
    yaml: 'b:\n  script: x\n  rules:\n    - iff: $CI_COMMIT_TAG\n',
    errors: ['jobs:b:rules:rule config contains unknown keys: iff'],
  },

  // ---- scripts, stages
  {
    name: 'script of the wrong type',
    yaml: 'test:\n  script:\n    run: make\n',
    errors: ['jobs:test:script config should be a string or a nested array of strings up to 10 levels deep'],
  },
  {
    name: 'script with a number',
    yaml: 'test:\n  script: [make, 42]\n',
    errors: ['jobs:test:script config should be a string or a nested array of strings up to 10 levels deep'],
  },
  { name: 'empty script', yaml: 'test:\n  script: []\n', errors: ["jobs:test script can't be blank"] },
  {
    name: 'before_script of the wrong type',
    yaml: 'test:\n  before_script: {a: b}\n  script: x\n',
    errors: ['jobs:test:before_script config should be a string or a nested array of strings up to 10 levels deep'],
  },
  {
    name: 'unknown stage',
    yaml: 'stages: [build, test]\nbuild:\n  stage: compile\n  script: make\n',
    errors: ['build job: chosen stage compile does not exist; available stages are .pre, build, test, .post'],
  },
  {
    name: 'default stage test missing from custom stages',
    yaml: 'stages: [build]\nlint:\n  script: make lint\n',
    errors: ['lint job: chosen stage test does not exist; available stages are .pre, build, .post'],
  },
  {
    name: 'stages of the wrong type',
    yaml: 'stages: build\nb:\n  script: x\n',
    errors: ['stages config should be an array of strings or a nested array of strings up to 10 levels deep'],
  },
  { name: 'stage of the wrong type', yaml: 'b:\n  stage: [build]\n  script: x\n', errors: ['jobs:b:stage config should be a string'] },

  // ---- needs, dependencies
  {
    name: 'needs an undefined job',
    yaml: 'deploy:\n  script: x\n  needs: [lint]\n',
    errors: ['deploy job: undefined need: lint'],
  },
  {
    name: 'needs a hidden job',
    yaml: '.lint:\n  script: x\ndeploy:\n  script: x\n  needs: [.lint]\n',
    errors: ['deploy job: undefined need: .lint'],
  },
  {
    name: 'needs a job in a later stage',
    yaml: 'build:\n  stage: build\n  script: x\n  needs: [test]\ntest:\n  stage: test\n  script: x\n',
    errors: ['build job: need test is not defined in current or prior stages'],
  },
  {
    name: 'optional does not excuse a later stage',
    yaml: 'build:\n  stage: build\n  script: x\n  needs: [{job: test, optional: true}]\ntest:\n  script: x\n',
    errors: ['build job: need test is not defined in current or prior stages'],
  },
  {
    name: 'more needs than a job may have',
    yaml:
      Array.from({ length: 51 }, (_, i) => `a${i}:\n  stage: build\n  script: x\n`).join('') +
      `b:\n  script: x\n  needs: [${Array.from({ length: 51 }, (_, i) => `a${i}`).join(', ')}]\n`,
    errors: ['jobs:b:needs one job can only need 50 others, but you have listed 51'],
  },
  {
    name: 'more needs than a job may have, in a rule',
    yaml: `b:\n  script: x\n  rules:\n    - needs: [${Array.from({ length: 51 }, (_, i) => `a${i}`).join(', ')}]\n`,
    errors: ['jobs:b:rules:rule:needs one job can only need 50 others, but you have listed 51'],
  },
  {
    name: 'duplicated needs',
    yaml: 'a:\n  stage: build\n  script: x\nb:\n  script: x\n  needs: [a, {job: a}]\n',
    errors: ['b has the following needs duplicated: a.'],
  },
  {
    name: 'circular needs within a stage',
    yaml: 'a:\n  script: x\n  needs: [b]\nb:\n  script: x\n  needs: [a]\n',
    errors: ['The pipeline has circular dependencies: topological sort failed: ["a", "b"]'],
  },
  {
    name: 'a job needing itself',
    yaml: 'a:\n  script: x\n  needs: [a]\n',
    errors: ['The pipeline has circular dependencies: self-dependency: a'],
  },
  {
    name: 'needs of the wrong type',
    yaml: 'a:\n  script: x\n  needs: lint\n',
    errors: ['jobs:a:needs config can only be a Hash or an Array'],
  },
  {
    name: 'unknown need key',
    yaml: 'l:\n  script: x\na:\n  script: x\n  needs: [{job: l, artefacts: false}]\n',
    errors: ['jobs:a:needs:need config contains unknown keys: artefacts'],
  },
  {
    name: 'needs:project without its ref',
    yaml: 'a:\n  script: x\n  needs: [{project: group/tools, job: gen}]\n',
    errors: ["jobs:a:needs:need ref can't be blank"],
  },
  {
    name: 'undefined dependency',
    yaml: 'deploy:\n  script: x\n  dependencies: [build]\n',
    errors: ['deploy job: undefined dependency: build'],
  },
  {
    name: 'dependency in a later stage',
    yaml: 'build:\n  stage: build\n  script: x\n  dependencies: [deploy]\ndeploy:\n  stage: deploy\n  script: x\n',
    errors: ['build job: dependency deploy is not defined in current or prior stages'],
  },
  {
    name: 'dependencies outside needs',
    yaml: 'a:\n  stage: build\n  script: x\nb:\n  stage: build\n  script: x\nc:\n  script: x\n  needs: [a]\n  dependencies: [a, b]\n',
    errors: ['jobs:c dependencies the b should be part of needs'],
  },
  {
    name: 'dependencies of the wrong type',
    yaml: 'c:\n  script: x\n  dependencies: a\n',
    errors: ['jobs:c dependencies should be an array of strings'],
  },

  // ---- extends, !reference
  {
    name: 'extends an unknown template',
    yaml: 'build:\n  extends: .base\n  script: x\n',
    errors: ['build: unknown keys in `extends` (.base)'],
  },
  {
    name: 'circular extends',
    yaml: '.a:\n  extends: .b\n.b:\n  extends: .a\nbuild:\n  extends: .a\n  script: x\n',
    errors: ['.a: circular dependency detected in `extends`', '.b: circular dependency detected in `extends`'],
  },
  {
    name: 'extends something that is not a hash',
    yaml: '.list: [a, b]\nbuild:\n  extends: .list\n  script: x\n',
    errors: ['build: invalid base hashes in `extends` (.list)'],
  },
  {
    name: 'extends nested too deep',
    yaml: `${Array.from({ length: 12 }, (_, i) => `.l${i}:\n  extends: .l${i + 1}\n`).join('')}.l12:\n  script: x\njob:\n  extends: .l0\n`,
    errors: ['.l11: nesting too deep in `extends`'],
  },
  {
    // Declared base first, each entry resolves one hop below an already resolved one: the chain's
    // length, not the recursion depth, is what exceeds the limit (10,000 entries once froze the server).
    name: 'a 10,000-long extends chain declared base first',
    yaml: `j0:\n  script: x\n${Array.from({ length: 9_999 }, (_, i) => `j${i + 1}:\n  extends: j${i}\n`).join('')}`,
    errors: ['j12: nesting too deep in `extends`'],
  },
  {
    name: 'extends of the wrong type',
    yaml: 'b:\n  extends: {a: 1}\n  script: x\n',
    errors: ['jobs:b extends should be an array of strings or a string'],
  },
  {
    name: 'a !reference to nothing',
    yaml: 'b:\n  script: !reference [.setup, script]\n',
    errors: ['!reference [".setup", "script"] could not be found'],
  },

  // ---- include
  { name: 'missing include', yaml: 'include: ci/missing.yml\nb:\n  script: x\n', errors: ['Local file `ci/missing.yml` does not exist!'] },
  {
    name: 'include without a YAML extension',
    yaml: 'include: ci/build.txt\n',
    errors: ['Included file `ci/build.txt` does not have YAML extension!'],
  },
  {
    name: 'include of an invalid YAML file',
    yaml: 'include: ci/bad.yml\n',
    files: { 'ci/bad.yml': 'a: [\n' },
    errors: ['`ci/bad.yml`: Flow sequence in block collection must be sufficiently indented and end with a ] at line 2, column 1'],
  },
  {
    name: 'include of a list',
    yaml: 'include: ci/list.yml\n',
    files: { 'ci/list.yml': '- a\n' },
    errors: ['Included file `ci/list.yml` does not have valid YAML syntax!'],
  },
  {
    name: 'include of an empty file',
    yaml: 'include: ci/empty.yml\n',
    files: { 'ci/empty.yml': '\n' },
    errors: ['Local file `ci/empty.yml` is empty!'],
  },
  {
    name: 'include:remote',
    yaml: 'include:\n  - remote: http://example.com/ci.yml\n',
    errors: ['Remote file `http://example.com/ci.yml` must be fetched over HTTPS'],
  },
  {
    name: 'include with two forms',
    yaml: 'include:\n  - local: a.yml\n    remote: https://example.com/ci.yml\n',
    errors: ['Each include must use only one of: local, remote'],
  },
  {
    name: 'include of a URL string',
    yaml: 'include: https://example.com/ci.yml\n',
    errors: ['include:remote is not available here'],
  },
  { name: 'include with an unknown key', yaml: 'include:\n  - lokal: a.yml\n', errors: ['include config contains unknown keys: lokal'] },
  { name: 'include of a number', yaml: 'include: [42]\n', errors: ['Each include must be a hash or a string'] },
  {
    name: 'includes that include each other',
    yaml: 'include: a.yml\n',
    files: { 'a.yml': 'include: b.yml\n', 'b.yml': 'include: a.yml\n' },
    errors: ['Maximum of 150 nested includes are allowed!'],
  },

  // ---- rules, only/except
  {
    name: 'invalid rules:if',
    yaml: 'b:\n  script: x\n  rules:\n    - if: $CI_COMMIT_BRANCH = "main"\n',
    errors: ['jobs:b:rules:rule if invalid expression syntax'],
  },
  {
    name: '${VAR} in rules:if',
    yaml: 'b:\n  script: x\n  rules:\n    - if: ${CI_COMMIT_TAG}\n',
    errors: ['jobs:b:rules:rule if invalid expression syntax'],
  },
  {
    name: 'unknown rules:when',
    yaml: 'b:\n  script: x\n  rules:\n    - when: sometimes\n',
    errors: ['jobs:b:rules:rule when unknown value: sometimes'],
  },
  {
    name: 'delayed rule without start_in',
    yaml: 'b:\n  script: x\n  rules:\n    - when: delayed\n',
    errors: ["jobs:b:rules:rule start in can't be blank"],
  },
  {
    name: 'start_in in a rule that is not delayed',
    yaml: 'b:\n  script: x\n  rules:\n    - when: manual\n      start_in: 5 minutes\n',
    errors: ['jobs:b:rules:rule start in must be blank'],
  },
  { name: 'empty rules', yaml: 'b:\n  script: x\n  rules: []\n', errors: ["jobs:b:rules config can't be blank"] },
  { name: 'rules not a list', yaml: 'b:\n  script: x\n  rules:\n    if: $A\n', errors: ['jobs:b:rules config should be an array'] },
  {
    name: 'rules with a string',
    yaml: 'b:\n  script: x\n  rules: [$A]\n',
    errors: ['jobs:b rules should be an array containing hashes and arrays of hashes'],
  },
  {
    name: 'rules with only',
    yaml: 'b:\n  script: x\n  only: [main]\n  rules:\n    - when: always\n',
    errors: ['jobs:b config key may not be used with `rules`: only'],
  },
  {
    name: 'workflow rules with manual',
    yaml: 'workflow:\n  rules:\n    - when: manual\nb:\n  script: x\n',
    errors: ['workflow:rules:rule when unknown value: manual'],
  },
  {
    name: 'rules:changes of the wrong type',
    yaml: 'b:\n  script: x\n  rules:\n    - changes: docs/*\n',
    errors: ['jobs:b:rules:rule:changes should be an array or a hash'],
  },
  {
    name: 'rules:changes hash without paths',
    yaml: 'b:\n  script: x\n  rules:\n    - changes:\n        compare_to: main\n',
    errors: ['jobs:b:rules:rule:changes config missing required keys: paths'],
  },
  {
    name: 'rules:allow_failure not a boolean',
    yaml: 'b:\n  script: x\n  rules:\n    - allow_failure: sometimes\n',
    errors: ['jobs:b:rules:rule allow_failure should be a boolean value'],
  },
  {
    name: 'only as a string',
    yaml: 'b:\n  script: x\n  only: main\n',
    errors: ['jobs:b:only has to be either an array of conditions or a hash'],
  },
  {
    name: 'only with an invalid regex',
    yaml: 'b:\n  script: x\n  only: ["/(unclosed/"]\n',
    errors: ['jobs:b:only config should be an array of strings or regular expressions using re2 syntax'],
  },
  {
    name: 'only with an unknown key',
    yaml: 'b:\n  script: x\n  only:\n    branches: [main]\n',
    errors: ['jobs:b:only config contains unknown keys: branches'],
  },
  {
    name: 'except:variables with a bad expression',
    yaml: 'b:\n  script: x\n  except:\n    variables: [$A ==]\n',
    errors: ['jobs:b:except variables invalid expression syntax'],
  },

  // ---- keyword values
  {
    name: 'unknown when',
    yaml: 'b:\n  script: x\n  when: sometimes\n',
    errors: ['jobs:b when should be one of: on_success, on_failure, always, manual, delayed'],
  },
  {
    name: 'when: never at job level',
    yaml: 'b:\n  script: x\n  when: never\n',
    errors: ['jobs:b when should be one of: on_success, on_failure, always, manual, delayed'],
  },
  {
    name: 'workflow:auto_cancel with an unknown mode',
    yaml: 'workflow:\n  auto_cancel:\n    on_new_commit: always\nb:\n  script: x\n',
    errors: ['workflow:auto_cancel on new commit must be one of: conservative, interruptible, none'],
  },
  { name: 'delayed without start_in', yaml: 'b:\n  script: x\n  when: delayed\n', errors: ["jobs:b start in can't be blank"] },
  { name: 'start_in without delayed', yaml: 'b:\n  script: x\n  start_in: 5 minutes\n', errors: ['jobs:b start in must be blank'] },
  {
    name: 'start_in not a duration',
    yaml: 'b:\n  script: x\n  when: delayed\n  start_in: soon\n',
    errors: ['jobs:b start in should be a duration'],
  },
  {
    name: 'start_in over a week',
    yaml: 'b:\n  script: x\n  when: delayed\n  start_in: 8 days\n',
    errors: ['jobs:b start in should not exceed the limit'],
  },
  {
    name: 'start_in beside rules',
    yaml: 'b:\n  script: x\n  when: delayed\n  start_in: 1 minute\n  rules:\n    - when: delayed\n      start_in: 1 minute\n',
    errors: ['jobs:b start in must be blank'],
  },
  { name: 'retry too high', yaml: 'b:\n  script: x\n  retry: 3\n', errors: ['jobs:b:retry config must be less than or equal to 2'] },
  {
    name: 'retry:when unknown',
    yaml: 'b:\n  script: x\n  retry:\n    max: 2\n    when: [flaky]\n',
    errors: ['jobs:b:retry when contains unknown values: flaky'],
  },
  {
    name: 'retry of the wrong type',
    yaml: 'b:\n  script: x\n  retry: twice\n',
    errors: ['jobs:b:retry config has to be either an integer or a hash'],
  },
  { name: 'timeout not a duration', yaml: 'b:\n  script: x\n  timeout: soon\n', errors: ['jobs:b:timeout config should be a duration'] },
  { name: 'timeout as a number', yaml: 'b:\n  script: x\n  timeout: 3600\n', errors: ['jobs:b:timeout config should be a duration'] },
  {
    name: 'timeout over a month',
    yaml: 'b:\n  script: x\n  timeout: 5 weeks\n',
    errors: ['jobs:b:timeout config should not exceed the limit'],
  },
  { name: 'tags as a string', yaml: 'b:\n  script: x\n  tags: docker\n', errors: ['jobs:b:tags config should be an array of strings'] },
  {
    name: 'interruptible not a boolean',
    yaml: 'b:\n  script: x\n  interruptible: maybe\n',
    errors: ['jobs:b:interruptible config should be a boolean value'],
  },
  {
    name: 'allow_failure of the wrong type',
    yaml: 'b:\n  script: x\n  allow_failure: maybe\n',
    errors: ['jobs:b allow_failure should be a hash or a boolean value'],
  },
  {
    name: 'allow_failure:exit_codes of the wrong type',
    yaml: 'b:\n  script: x\n  allow_failure:\n    exit_codes: [one]\n',
    errors: ['jobs:b:allow_failure exit_codes should be an array of integers or an integer'],
  },
  {
    name: 'image of the wrong type',
    yaml: 'b:\n  script: x\n  image: [alpine]\n',
    errors: ['jobs:b:image config should be a hash or a string'],
  },
  { name: 'image without a name', yaml: 'b:\n  script: x\n  image:\n    entrypoint: [sh]\n', errors: ["jobs:b:image name can't be blank"] },
  {
    name: 'image with an unknown key',
    yaml: 'b:\n  script: x\n  image:\n    name: alpine\n    tag: "3"\n',
    errors: ['jobs:b:image config contains unknown keys: tag'],
  },
  {
    name: 'unknown pull_policy',
    yaml: 'b:\n  script: x\n  image:\n    name: alpine\n    pull_policy: [always, sometimes]\n',
    errors: ['jobs:b:image:pull_policy config contains unknown values: sometimes'],
  },
  {
    name: 'services as a string',
    yaml: 'b:\n  script: x\n  services: docker:dind\n',
    errors: ['jobs:b:services config should be an array'],
  },
  {
    name: 'service with an unknown key',
    yaml: 'b:\n  script: x\n  services:\n    - name: postgres\n      hostname: db\n',
    errors: ['jobs:b:services:service config contains unknown keys: hostname'],
  },
  {
    name: 'variables with a list value',
    yaml: 'b:\n  script: x\n  variables:\n    LIST: [a, b]\n',
    errors: ['jobs:b:variables:LIST variable definition must be either a string or a hash'],
  },
  {
    name: 'job variables with a description',
    yaml: 'b:\n  script: x\n  variables:\n    A:\n      value: "1"\n      description: no\n',
    errors: ['jobs:b:variables:A config uses invalid data keys: description'],
  },
  {
    name: 'variables as a list',
    yaml: 'variables: [A]\nb:\n  script: x\n',
    errors: ['variables config should be a hash of key value pairs'],
  },
  {
    name: 'artifacts with an unknown key',
    yaml: 'b:\n  script: x\n  artifacts:\n    path: [dist]\n',
    errors: ['jobs:b:artifacts config contains unknown keys: path'],
  },
  {
    name: 'artifacts:when unknown',
    yaml: 'b:\n  script: x\n  artifacts:\n    when: sometimes\n',
    errors: ['jobs:b:artifacts when should be one of: on_success, on_failure, always'],
  },
  {
    name: 'artifacts:expire_in not a duration',
    yaml: 'b:\n  script: x\n  artifacts:\n    expire_in: later\n',
    errors: ['jobs:b:artifacts expire_in should be a duration'],
  },
  {
    name: 'artifacts:paths as a string',
    yaml: 'b:\n  script: x\n  artifacts:\n    paths: dist/\n',
    errors: ['jobs:b:artifacts paths should be an array of strings'],
  },
  {
    name: 'cache:policy unknown',
    yaml: 'b:\n  script: x\n  cache:\n    paths: [x]\n    policy: fetch\n',
    errors: ['jobs:b:cache policy should be a variable or one of: pull-push, push, pull'],
  },
  {
    name: 'cache:key with a slash',
    yaml: 'b:\n  script: x\n  cache:\n    key: a/b\n',
    errors: ['jobs:b:cache:key config cannot contain the "/" character'],
  },
  {
    name: 'too many caches',
    yaml: 'b:\n  script: x\n  cache: [{key: a}, {key: b}, {key: c}, {key: d}, {key: e}]\n',
    errors: ['jobs:b:cache config no more than 4 caches can be created'],
  },
  {
    name: 'coverage not a regex',
    yaml: 'b:\n  script: x\n  coverage: "Total: (\\\\d+)%"\n',
    errors: ['jobs:b:coverage config must be a regular expression with re2 syntax'],
  },
  {
    name: 'environment without a name',
    yaml: 'b:\n  script: x\n  environment:\n    url: https://x\n',
    errors: ["jobs:b:environment name can't be blank"],
  },
  {
    name: 'release without tag_name and description',
    yaml: 'b:\n  script: x\n  release:\n    name: n\n',
    errors: ["jobs:b:release tag_name can't be blank", "jobs:b:release description can't be blank"],
  },
  {
    name: 'release with milestones and a bad link',
    yaml: 'b:\n  script: x\n  release:\n    tag_name: v1\n    description: d\n    milestones: [m1]\n',
    errors: ['jobs:b:release config contains unsupported keys: milestones'],
  },
  {
    name: 'release link of an unknown type, released_at not a time',
    yaml: 'b:\n  script: x\n  release:\n    tag_name: v1\n    description: d\n    released_at: tomorrow\n    assets:\n      links:\n        - name: a\n          url: https://a\n          link_type: video\n',
    errors: [
      'jobs:b:release released_at must be a valid datetime',
      'jobs:b:release:assets:links:link link_type should be one of: other, runbook, image, package',
    ],
  },
  {
    name: 'inherit:default with an unknown keyword',
    yaml: 'b:\n  script: x\n  inherit:\n    default: [image, variables]\n',
    errors: ['jobs:b:inherit:default config contains unknown values: variables'],
  },
  { name: 'hidden job with no value', yaml: '.empty:\nb:\n  script: x\n', errors: ["jobs:.empty config can't be blank"] },
  { name: 'default of the wrong type', yaml: 'default: [image]\nb:\n  script: x\n', errors: ['default config should be a hash'] },

  // ---- several problems at once: all are reported
  {
    name: 'every error, not only the first',
    yaml: `
stages: [build, test]
build:
  stage: compile
  script: make
  artifacts:
    when: sometimes
test:
  script:
    run: tests
  tags: docker
deploy:
  script: ./deploy
  scirpt: typo
`,
    errors: [
      'jobs:build:artifacts when should be one of: on_success, on_failure, always',
      'jobs:test:script config should be a string or a nested array of strings up to 10 levels deep',
      'jobs:test:tags config should be an array of strings',
      'jobs:deploy config contains unknown keys: scirpt',
    ],
  },
]

for (const c of cases) {
  test(`invalid: ${c.name}`, async () => {
    await assert.rejects(parse(c.yaml, c.files), (err: unknown) => {
      assert.ok(err instanceof CiConfigError, `expected CiConfigError, got ${String(err)}`)
      assert.deepEqual(err.errors, c.errors)
      assert.equal(err.code, 'BAD_REQUEST')
      return true
    })
  })
}

test('logical checks run once the keywords are valid (as GitLab)', async () => {
  await assert.rejects(parse('stages: [build]\nlint:\n  script: x\n  tags: docker\n'), (err: unknown) => {
    assert.ok(err instanceof CiConfigError)
    assert.deepEqual(err.errors, ['jobs:lint:tags config should be an array of strings'])
    return true
  })
})

test('an error message carries every error', async () => {
  await assert.rejects(parse('a:\n  script: []\nb:\n  script: x\n  when: later\n'), {
    message: "jobs:a script can't be blank\njobs:b when should be one of: on_success, on_failure, always, manual, delayed",
  })
})
