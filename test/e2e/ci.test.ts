// End-to-end: pushes with the real git CLI create pipelines from .gitlab-ci.yml, exactly as GitLab
// users expect; the pipelines, jobs (names, stages, order, status) and job variables are read back
// through the REST API.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, type RunResult } from '../helpers/run.ts'
import { gitClient, type Creds, type GitClient } from '../helpers/git.ts'

let wharf: Wharf
let client: GitClient
let projectId: number
let dir: string

const root = (): Creds => ({ username: 'root', password: wharf.rootPassword })

async function gitOk(args: string[], cwd = dir, creds?: Creds): Promise<RunResult> {
  const r = await client.git(args, { cwd, ...(creds ? { creds } : {}) })
  assert.equal(r.code, 0, `git failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return r
}

async function apiOk(method: string, apiPath: string, body?: unknown) {
  const r = await wharf.api(method, apiPath, body)
  assert.ok(r.status >= 200 && r.status < 300, r.describe)
  return r.json
}

interface PipelineJson {
  id: number
  iid: number
  ref: string
  sha: string
  status: string
  source: string
  tag: boolean
  yaml_errors: string | null
}
interface JobJson {
  id: number
  name: string
  stage: string
  status: string
  allow_failure: boolean
  when: string
}

const pipelines = async (): Promise<PipelineJson[]> => apiOk('GET', `/api/v4/projects/${projectId}/pipelines?per_page=100`)
const jobs = async (pipelineId: number): Promise<JobJson[]> => apiOk('GET', `/api/v4/projects/${projectId}/pipelines/${pipelineId}/jobs`)

const CI = `# multi-stage, a DAG edge, rules with a regex, anchors and extends
stages: [build, test, deploy]

variables:
  APP: wharf-demo

.defaults: &defaults
  image: alpine:3
  before_script:
    - echo "building $APP"

.test-base:
  <<: *defaults
  stage: test
  script: [make test]

build:
  <<: *defaults
  stage: build
  script: [make]

unit:
  extends: .test-base

lint:
  extends: .test-base
  needs: []
  allow_failure: true
  script: [make lint]

deploy:
  stage: deploy
  script: [make deploy]
  rules:
    - if: $CI_COMMIT_TAG =~ /^v\\d+/

docs:
  stage: deploy
  script: [make docs]
  only: [main]
`

before(async () => {
  client = await gitClient('wharf-e2e-ci-')
  wharf = await startWharf()
  projectId = await wharf.createProject('e2e-ci/app', 'private')
  await gitOk(['clone', `${wharf.url}/e2e-ci/app.git`, 'app'], client.work, root())
  dir = path.join(client.work, 'app')
})

after(async () => {
  await wharf?.stop()
  await client?.dispose()
})

describe('pipelines from pushes', { timeout: 90_000 }, () => {
  let mainSha: string

  it('a push to main creates a pipeline with the expected jobs, stages, order and variables', async () => {
    await writeFile(path.join(dir, '.gitlab-ci.yml'), CI)
    await writeFile(path.join(dir, 'Makefile'), 'all:\n\ttrue\n')
    await gitOk(['add', '.'])
    await gitOk(['commit', '-q', '-m', 'Add CI'])
    await gitOk(['push', '-q', 'origin', 'main'], dir, root())
    mainSha = (await gitOk(['rev-parse', 'HEAD'])).stdout.trim()

    const list = await pipelines()
    assert.equal(list.length, 1, JSON.stringify(list))
    const p = list[0]!
    assert.deepEqual([p.ref, p.sha, p.source, p.iid], ['main', mainSha, 'push', 1])
    const full: PipelineJson = await apiOk('GET', `/api/v4/projects/${projectId}/pipelines/${p.id}`)
    assert.equal(full.tag, false)
    assert.equal(full.yaml_errors, null)
    assert.equal(full.status, 'pending')

    // No deploy job on a branch (its rule wants a version tag); docs only on main.
    const js = await jobs(p.id)
    assert.deepEqual(
      js.map((j) => [j.name, j.stage, j.status]),
      [
        ['build', 'build', 'pending'],
        ['unit', 'test', 'created'],
        ['lint', 'test', 'pending'], // needs: [] starts at once
        ['docs', 'deploy', 'created'],
      ],
    )
    assert.equal(js.find((j) => j.name === 'lint')!.allow_failure, true)

    const build = js.find((j) => j.name === 'build')!
    const vars = Object.fromEntries(
      ((await apiOk('GET', `/api/v4/projects/${projectId}/jobs/${build.id}/variables`)) as Array<{ key: string; value: string }>).map(
        (v) => [v.key, v.value],
      ),
    )
    assert.equal(vars.CI_COMMIT_REF_NAME, 'main')
    assert.equal(vars.CI_BUILD_REF_NAME, 'main')
    assert.equal(vars.CI_COMMIT_BRANCH, 'main')
    assert.equal(vars.CI_COMMIT_SHA, mainSha)
    assert.equal(vars.CI_JOB_NAME, 'build')
    assert.equal(vars.CI_JOB_STAGE, 'build')
    assert.equal(vars.CI_PIPELINE_ID, String(p.id))
    assert.equal(vars.CI_PROJECT_PATH, 'e2e-ci/app')
    assert.equal(vars.CI_REGISTRY, wharf.host)
    assert.equal(vars.CI_REGISTRY_IMAGE, `${wharf.host}/e2e-ci/app`)
    assert.equal(vars.CI_SERVER_URL, wharf.url)
    assert.equal(vars.APP, 'wharf-demo')
  })

  it('a version tag runs the deploy job but not the main-only docs job', async () => {
    await gitOk(['tag', '-a', 'v1.2.0', '-m', 'Release 1.2.0'])
    await gitOk(['push', '-q', 'origin', 'v1.2.0'], dir, root())
    const p = (await pipelines()).find((x) => x.ref === 'v1.2.0')
    assert.ok(p, 'tag pipeline')
    assert.equal(p.sha, mainSha, 'an annotated tag runs on the commit it names')
    const full: PipelineJson = await apiOk('GET', `/api/v4/projects/${projectId}/pipelines/${p.id}`)
    assert.equal(full.tag, true)
    assert.deepEqual(
      (await jobs(p.id)).map((j) => j.name),
      ['build', 'unit', 'lint', 'deploy'],
    )
  })

  it('a new branch gets its own pipeline; deleting it starts nothing', async () => {
    await gitOk(['switch', '-q', '-c', 'feature/x'])
    await writeFile(path.join(dir, 'feature.txt'), 'x\n')
    await gitOk(['add', '.'])
    await gitOk(['commit', '-q', '-m', 'Feature'])
    await gitOk(['push', '-q', 'origin', 'feature/x'], dir, root())
    const before = await pipelines()
    assert.equal(before.filter((p) => p.ref === 'feature/x').length, 1)
    await gitOk(['push', '-q', 'origin', '--delete', 'feature/x'], dir, root())
    const afterDelete = await pipelines()
    assert.equal(afterDelete.length, before.length, 'a deleted branch starts no pipeline')
  })

  it('an invalid file fails the pipeline with errors that name the job and key', async () => {
    await gitOk(['switch', '-q', 'main'])
    await writeFile(path.join(dir, '.gitlab-ci.yml'), 'build:\n  stage: build\n  scirpt: [make]\n')
    await gitOk(['commit', '-q', '-am', 'Break CI'])
    await gitOk(['push', '-q', 'origin', 'main'], dir, root())
    const p = (await pipelines())[0]!
    const full: PipelineJson = await apiOk('GET', `/api/v4/projects/${projectId}/pipelines/${p.id}`)
    assert.equal(full.status, 'failed')
    assert.match(full.yaml_errors ?? '', /jobs:build config contains unknown keys: scirpt/)
  })

  it('the API runs a pipeline for a ref with variables, and cancel stops it', async () => {
    await writeFile(path.join(dir, '.gitlab-ci.yml'), 'smoke:\n  script: [echo $TARGET]\n  rules:\n    - if: $TARGET\n')
    await gitOk(['commit', '-q', '-am', 'Smoke test only on request'])
    await gitOk(['push', '-q', 'origin', 'main'], dir, root())
    const r = await wharf.api('POST', `/api/v4/projects/${projectId}/pipeline`, {
      ref: 'main',
      variables: [{ key: 'TARGET', value: 'staging' }],
    })
    assert.equal(r.status, 201, r.describe)
    assert.equal(r.json.source, 'api')
    assert.deepEqual(
      (await jobs(r.json.id)).map((j) => [j.name, j.status]),
      [['smoke', 'pending']],
    )
    const canceled = await apiOk('POST', `/api/v4/projects/${projectId}/pipelines/${r.json.id}/cancel`)
    assert.equal(canceled.status, 'canceled')
    const trigger = await apiOk('POST', `/api/v4/projects/${projectId}/triggers`, { description: 'deploys' })
    const t = await wharf.api(
      'POST',
      `/api/v4/projects/${projectId}/trigger/pipeline`,
      { token: trigger.token, ref: 'main', variables: { TARGET: 'prod' } },
      { token: null },
    )
    assert.equal(t.status, 201, t.describe)
    assert.equal(t.json.source, 'trigger')
    const bad = await wharf.api(
      'POST',
      `/api/v4/projects/${projectId}/trigger/pipeline`,
      { token: 'glptt-nope', ref: 'main' },
      { token: null },
    )
    assert.equal(bad.status, 404, bad.describe)
  })
})
