import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CiConfigError } from './errors.ts'
import { planPipeline } from './plan.ts'
import { created, event, parse } from './test-support.ts'

// `id_tokens:` (GitLab's job identity tokens): parsed per job and from `default:`, carried into
// the plan with audiences as written (the job payload expands and signs them when the job starts).

test('id_tokens: one audience or several, per job, carried into the plan', async () => {
  const config = await parse(
    [
      'deploy:',
      '  script: aws sts get-caller-identity',
      '  id_tokens:',
      '    AWS_TOKEN:',
      '      aud: sts.amazonaws.com',
      '    VAULT_TOKEN:',
      '      aud: [https://vault.example.com, $VAULT_AUD]',
      'build:',
      '  script: make',
      '',
    ].join('\n'),
  )
  const [deploy, build] = config.jobs
  assert.deepEqual(deploy?.idTokens, {
    AWS_TOKEN: { aud: 'sts.amazonaws.com' },
    VAULT_TOKEN: { aud: ['https://vault.example.com', '$VAULT_AUD'] },
  })
  assert.equal(build?.idTokens, null)
  const plan = created(planPipeline(config, event()))
  assert.deepEqual(plan.jobs.find((j) => j.name === 'deploy')?.idTokens, deploy?.idTokens)
  assert.equal(plan.jobs.find((j) => j.name === 'build')?.idTokens, null)
})

test('id_tokens: from default:, replaced by a job of its own, dropped by inherit:default', async () => {
  const config = await parse(
    [
      'default:',
      '  id_tokens:',
      '    ID_TOKEN:',
      '      aud: https://wharf.example',
      'a:',
      '  script: x',
      'b:',
      '  script: x',
      '  id_tokens:',
      '    OTHER:',
      '      aud: other',
      'c:',
      '  script: x',
      '  inherit:',
      '    default: [image]',
      'd:',
      '  script: x',
      '  inherit:',
      '    default: [id_tokens]',
      '',
    ].join('\n'),
  )
  const byName = new Map(config.jobs.map((j) => [j.name, j.idTokens]))
  assert.deepEqual(byName.get('a'), { ID_TOKEN: { aud: 'https://wharf.example' } })
  assert.deepEqual(byName.get('b'), { OTHER: { aud: 'other' } })
  assert.equal(byName.get('c'), null)
  assert.deepEqual(byName.get('d'), { ID_TOKEN: { aud: 'https://wharf.example' } })
})

const invalid: Array<{ name: string; yaml: string; errors: string[] }> = [
  {
    name: 'not a hash',
    yaml: 'b:\n  script: x\n  id_tokens: [AWS_TOKEN]\n',
    errors: ['jobs:b:id_tokens config should be a hash'],
  },
  {
    name: 'a token that is not a hash',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN: sts.amazonaws.com\n',
    errors: ['jobs:b:id_tokens:AWS_TOKEN config should be a hash'],
  },
  {
    name: 'no aud',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN: {}\n',
    errors: ['jobs:b:id_tokens:AWS_TOKEN config missing required keys: aud'],
  },
  {
    name: 'an unknown key beside aud',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN:\n      aud: sts.amazonaws.com\n      alg: RS256\n',
    errors: ['jobs:b:id_tokens:AWS_TOKEN config contains unknown keys: alg'],
  },
  {
    name: 'aud not a string',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN:\n      aud: {x: 1}\n',
    errors: ['jobs:b:id_tokens:AWS_TOKEN aud should be an array of strings or a string'],
  },
  {
    name: 'aud a list with a number',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN:\n      aud: [a, 2]\n',
    errors: ['jobs:b:id_tokens:AWS_TOKEN aud should be an array of strings or a string'],
  },
  {
    name: 'aud empty',
    yaml: 'b:\n  script: x\n  id_tokens:\n    AWS_TOKEN:\n      aud: []\n',
    errors: ["jobs:b:id_tokens:AWS_TOKEN aud can't be blank"],
  },
  {
    name: "the registry's own audience",
    yaml: 'b:\n  script: x\n  id_tokens:\n    T:\n      aud: [sts.amazonaws.com, container_registry]\n',
    errors: ["jobs:b:id_tokens:T aud must not be container_registry: it is the audience of the container registry's own tokens"],
  },
  {
    name: 'invalid in default:',
    yaml: 'default:\n  id_tokens:\n    T:\n      aud: 1\nb:\n  script: x\n',
    errors: ['default:id_tokens:T aud should be an array of strings or a string'],
  },
]

for (const c of invalid) {
  test(`id_tokens invalid: ${c.name}`, async () => {
    await assert.rejects(parse(c.yaml), (err: unknown) => {
      assert.ok(err instanceof CiConfigError, `expected CiConfigError, got ${String(err)}`)
      assert.deepEqual(err.errors, c.errors)
      return true
    })
  })
}
