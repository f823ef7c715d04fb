// The CI API (pipelines, jobs, CI/CD variables, triggers) over app.inject, on a real git repository
// whose commits go straight into the project's bare repository.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { ACCESS_LEVELS } from '../../src/auth/roles.ts'
import { apiHarness } from './api-harness.ts'

async function setup(t: TestContext, ci: string) {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'ci', visibility: 'private' })
  const project = await h.services.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = { ...process.env, GIT_AUTHOR_NAME: 'A', GIT_AUTHOR_EMAIL: 'a@x', GIT_COMMITTER_NAME: 'A', GIT_COMMITTER_EMAIL: 'a@x' }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim()
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, '.gitlab-ci.yml'), ci)
  git('add', '-A')
  git('commit', '-q', '-m', 'ci')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  return { h, root, token, project }
}

const SIMPLE = `stages: [build, deploy]
build: { stage: build, script: [make] }
release: { stage: deploy, script: [make release], when: manual }
`

describe('CI API', () => {
  it('runs a pipeline for a ref, lists it and its jobs, and plays, cancels and retries jobs', async (t) => {
    const { h, token, project } = await setup(t, SIMPLE)
    const created = await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })
    assert.equal(created.statusCode, 201, created.body)
    const p = created.json()
    assert.equal(p.status, 'pending')
    assert.equal(p.ref, 'main')
    assert.equal(p.source, 'api')

    const list = await h.req('GET', `/api/v4/projects/${project.id}/pipelines`, { token })
    assert.equal(list.headers['x-total'], '1')
    assert.deepEqual(
      list.json().map((x: { id: number }) => x.id),
      [p.id],
    )

    const jobs = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${p.id}/jobs`, { token })).json()
    assert.deepEqual(
      jobs.map((j: { name: string; status: string; stage: string }) => [j.name, j.stage, j.status]),
      [
        ['build', 'build', 'pending'],
        ['release', 'deploy', 'created'],
      ],
    )
    const [build, release] = jobs as Array<{ id: number }>

    // Finish build (as a runner would), then play the manual job.
    await h.services.ci!.pipelines.cancelJob((await h.services.ci!.pipelines.findJob(build!.id))!)
    const retried = await h.req('POST', `/api/v4/projects/${project.id}/jobs/${build!.id}/retry`, { token })
    assert.equal(retried.statusCode, 201, retried.body)
    assert.notEqual(retried.json().id, build!.id)
    assert.equal(retried.json().status, 'pending')
    const withRetried = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${p.id}/jobs?include_retried=true`, { token })).json()
    assert.equal(withRetried.filter((j: { name: string }) => j.name === 'build').length, 2)

    const notManual = await h.req('POST', `/api/v4/projects/${project.id}/jobs/${retried.json().id}/play`, { token })
    assert.equal(notManual.statusCode, 400)
    const cancel = await h.req('POST', `/api/v4/projects/${project.id}/pipelines/${p.id}/cancel`, { token })
    assert.equal(cancel.json().status, 'canceled')
    const job = (await h.req('GET', `/api/v4/projects/${project.id}/jobs/${release!.id}`, { token })).json()
    assert.equal(job.status, 'canceled')
    assert.equal(job.pipeline.id, p.id)
    assert.equal(job.commit.title, 'ci')
  })

  it('a reporter can read pipelines but not run them; strangers see nothing of a private project', async (t) => {
    const { h, token, project } = await setup(t, SIMPLE)
    const reporter = await h.user('rita')
    const stranger = await h.user('sam')
    await h.req('POST', `/api/v4/projects/${project.id}/members`, {
      token,
      body: { user_id: reporter.user.id, access_level: ACCESS_LEVELS.reporter },
    })
    assert.equal((await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token })).statusCode, 400, 'ref is required')
    const p = (await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })).json()
    assert.equal((await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${p.id}`, { token: reporter.token })).statusCode, 200)
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token: reporter.token, body: { ref: 'main' } })).statusCode,
      403,
    )
    assert.equal((await h.req('GET', `/api/v4/projects/${project.id}/pipelines`, { token: stranger.token })).statusCode, 404)
    assert.equal(
      (await h.req('GET', `/api/v4/projects/${project.id}/pipelines`)).statusCode,
      404,
      'anonymous: a private project does not exist',
    )
    const unknownRef = await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'nope' } })
    assert.equal(unknownRef.statusCode, 400)
    assert.match(unknownRef.json().message, /Reference not found/)
  })

  it('CI/CD variables: create, mask rules, protected/file flags, update, delete; maintainers only; they reach rules', async (t) => {
    const { h, token, project } = await setup(t, 'deploy:\n  script: [make]\n  rules:\n    - if: $DEPLOY_TARGET == "prod"\n')
    const base = `/api/v4/projects/${project.id}/variables`
    const bad = await h.req('POST', base, { token, body: { key: 'SECRET', value: 'short', masked: true } })
    assert.equal(bad.statusCode, 400)
    assert.match(bad.json().message, /cannot be masked/)
    assert.equal((await h.req('POST', base, { token, body: { key: 'bad-key', value: 'x' } })).statusCode, 400)
    const created = await h.req('POST', base, { token, body: { key: 'SECRET', value: 's3cr3t-value', masked: true, protected: true } })
    assert.equal(created.statusCode, 201, created.body)
    assert.deepEqual(created.json(), {
      key: 'SECRET',
      value: 's3cr3t-value',
      variable_type: 'env_var',
      protected: true,
      masked: true,
      raw: false,
      environment_scope: '*',
      description: null,
    })
    assert.equal((await h.req('POST', base, { token, body: { key: 'SECRET', value: 'again-value' } })).statusCode, 400, 'duplicate key')
    await h.req('POST', base, { token, body: { key: 'KUBECONFIG', value: 'apiVersion: v1', variable_type: 'file' } })
    const updated = await h.req('PUT', `${base}/KUBECONFIG`, { token, body: { value: 'apiVersion: v2' } })
    assert.equal(updated.json().value, 'apiVersion: v2')
    assert.equal(updated.json().variable_type, 'file')
    assert.deepEqual(
      (await h.req('GET', base, { token })).json().map((v: { key: string }) => v.key),
      ['KUBECONFIG', 'SECRET'],
    )
    const dev = await h.user('dev')
    await h.req('POST', `/api/v4/projects/${project.id}/members`, {
      token,
      body: { user_id: dev.user.id, access_level: ACCESS_LEVELS.developer },
    })
    assert.equal((await h.req('GET', base, { token: dev.token })).statusCode, 403)
    assert.equal((await h.req('DELETE', `${base}/KUBECONFIG`, { token })).statusCode, 204)
    assert.equal((await h.req('GET', `${base}/KUBECONFIG`, { token })).statusCode, 404)

    // A project variable takes part in rules: without it the pipeline has no jobs.
    assert.equal((await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })).statusCode, 400)
    await h.req('POST', base, { token, body: { key: 'DEPLOY_TARGET', value: 'prod' } })
    assert.equal((await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })).statusCode, 201)

    // Group variables are inherited.
    const groupVars = await h.req('POST', `/api/v4/groups/ci/variables`, { token, body: { key: 'REGION', value: 'eu' } })
    assert.equal(groupVars.statusCode, 201, groupVars.body)
    const vars = await h.services.ci!.pipelines.projectVariables(project, true)
    assert.deepEqual(
      vars.map((v) => v.key),
      ['REGION', 'DEPLOY_TARGET', 'SECRET'],
    )
    assert.deepEqual(
      (await h.services.ci!.pipelines.projectVariables(project, false)).map((v) => v.key),
      ['REGION', 'DEPLOY_TARGET'],
      'protected variables only on protected refs',
    )
  })

  it('trigger tokens are shown once, start pipelines with variables, and are bound to their project', async (t) => {
    const { h, token, project } = await setup(
      t,
      'job:\n  script: [make]\n  rules:\n    - if: $CI_PIPELINE_SOURCE == "trigger" && $WHO == "cron"\n',
    )
    const created = (await h.req('POST', `/api/v4/projects/${project.id}/triggers`, { token, body: { description: 'nightly' } })).json()
    assert.match(created.token, /^glptt-/)
    const listed = (await h.req('GET', `/api/v4/projects/${project.id}/triggers`, { token })).json()
    assert.notEqual(listed[0].token, created.token, 'the token is shown once')
    const form = await h.req('POST', `/api/v4/projects/${project.id}/trigger/pipeline`, {
      form: { token: created.token, ref: 'main', 'variables[WHO]': 'cron' },
    })
    assert.equal(form.statusCode, 201, form.body)
    assert.equal(form.json().source, 'trigger')
    const vars = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${form.json().id}/variables`, { token })).json()
    assert.deepEqual(vars, [{ key: 'WHO', value: 'cron', variable_type: 'env_var' }])
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${project.id}/trigger/pipeline`, { body: { token: 'glptt-wrong', ref: 'main' } })).statusCode,
      404,
    )
    assert.equal((await h.req('DELETE', `/api/v4/projects/${project.id}/triggers/${created.id}`, { token })).statusCode, 204)
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${project.id}/trigger/pipeline`, { body: { token: created.token, ref: 'main' } })).statusCode,
      404,
    )
  })
})

describe('GET /projects/:id/pipelines/latest', () => {
  it("answers the newest pipeline of the ref's head commit, the default branch by default; 404 when there is none", async (t) => {
    const { h, token, project } = await setup(t, SIMPLE)
    const url = `/api/v4/projects/${project.id}/pipelines/latest`
    assert.equal((await h.req('GET', url, { token })).statusCode, 404)
    const first = (await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })).json() as {
      id: number
    }
    const second = (await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })).json() as {
      id: number
    }
    assert.ok(second.id > first.id)
    let res = await h.req('GET', url, { token })
    assert.equal(res.statusCode, 200, res.body)
    assert.deepEqual([(res.json() as { id: number }).id, (res.json() as { ref: string }).ref], [second.id, 'main'])
    res = await h.req('GET', `${url}?ref=main`, { token })
    assert.equal((res.json() as { id: number }).id, second.id)
    assert.equal((await h.req('GET', `${url}?ref=nope`, { token })).statusCode, 404)
  })
})

describe('CI lint', () => {
  it('POST /ci/lint plans content as a pipeline would (same errors), GET lints the file at content_ref; nothing is created', async (t) => {
    const { h, token, project } = await setup(t, SIMPLE)
    const url = `/api/v4/projects/${project.id}/ci/lint`
    let res = await h.req('POST', url, {
      token,
      body: { content: 'a: { stage: test, script: [x] }\nb: { stage: test, script: [y], needs: [a] }\n', include_jobs: true },
    })
    assert.equal(res.statusCode, 200, res.body)
    const ok = res.json() as {
      valid: boolean
      errors: string[]
      merged_yaml: string
      jobs: Array<{ name: string; needs: Array<{ name: string }> }>
    }
    assert.deepEqual(
      [ok.valid, ok.errors, ok.jobs.map((j) => [j.name, j.needs.map((n) => n.name)])],
      [
        true,
        [],
        [
          ['a', []],
          ['b', ['a']],
        ],
      ],
    )
    // The errors a pipeline of that file gets.
    const bad = 'job: { script: [x], colour: red }\n'
    res = await h.req('POST', url, { token, body: { content: bad } })
    const lint = res.json() as { valid: boolean; errors: string[] }
    assert.equal(lint.valid, false)
    assert.ok(lint.errors.length > 0)
    await h.req('PUT', `/api/v4/projects/${project.id}/repository/files/.gitlab-ci.yml`, {
      token,
      body: { branch: 'main', content: bad, commit_message: 'break ci' },
    })
    const pipelines = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines`, { token })).json() as Array<{ id: number }>
    const broken = (await h.req('GET', `/api/v4/projects/${project.id}/pipelines/${pipelines[0]!.id}`, { token })).json() as {
      yaml_errors: string | null
    }
    assert.equal(broken.yaml_errors, lint.errors.join(', '))
    const before = pipelines.length
    res = await h.req('GET', `${url}?content_ref=main`, { token })
    assert.deepEqual([(res.json() as { valid: boolean }).valid, (res.json() as { errors: string[] }).errors], [false, lint.errors])
    assert.equal(
      ((await h.req('GET', `/api/v4/projects/${project.id}/pipelines`, { token })).json() as unknown[]).length,
      before,
      'lint creates no pipeline',
    )
    assert.equal((await h.req('GET', `${url}?content_ref=nope`, { token })).statusCode, 404)
    assert.equal((await h.req('POST', url, { token, body: { content: 'x', wharf: 1 } })).statusCode, 400)
  })
})

describe('commit statuses', () => {
  it('POST /statuses/:sha records a named state, updated in place; GET …/commits/:sha/statuses lists them paged', async (t) => {
    const { h, token, project } = await setup(t, SIMPLE)
    const sha = (
      (await h.req('GET', `/api/v4/projects/${project.id}/repository/branches/main`, { token })).json() as { commit: { id: string } }
    ).commit.id
    const post = (body: unknown, tok = token) => h.req('POST', `/api/v4/projects/${project.id}/statuses/${sha}`, { token: tok, body })
    let res = await post({ state: 'running', name: 'ext/ci', target_url: 'https://ci.example.com/1', description: 'building' })
    assert.equal(res.statusCode, 201, res.body)
    const first = res.json() as {
      id: number
      ref: string
      status: string
      started_at: string | null
      finished_at: string | null
      author: { username: string }
    }
    assert.deepEqual(
      [first.ref, first.status, first.started_at !== null, first.finished_at, first.author.username],
      ['main', 'running', true, null, 'root'],
    )
    res = await post({ state: 'success', context: 'ext/ci', coverage: 87.5 })
    const done = res.json() as { id: number; status: string; finished_at: string | null; coverage: number }
    assert.deepEqual([done.id, done.status, done.finished_at !== null, done.coverage], [first.id, 'success', true, 87.5])
    assert.equal((await post({ state: 'pending', name: 'lint' })).statusCode, 201)
    assert.equal((await post({ state: 'failed', name: 'other', ref: 'v1' })).statusCode, 201)
    res = await h.req('GET', `/api/v4/projects/${project.id}/repository/commits/${sha}/statuses?per_page=2`, { token })
    assert.deepEqual([res.headers['x-total'], (res.json() as Array<{ name: string }>).map((s) => s.name)], ['3', ['ext/ci', 'lint']])
    res = await h.req('GET', `/api/v4/projects/${project.id}/repository/commits/${sha}/statuses?ref=v1`, { token })
    assert.deepEqual(
      (res.json() as Array<{ name: string }>).map((s) => s.name),
      ['other'],
    )
    // Bad input: an unknown state, a commit not in the repository, a Reporter posting.
    assert.equal((await post({ state: 'done' })).statusCode, 400)
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${project.id}/statuses/${'0'.repeat(40)}`, { token, body: { state: 'success' } })).statusCode,
      404,
    )
    const reporter = await h.user('rep')
    await h.services.members.addMember(Number.POSITIVE_INFINITY, 'project', project.id, reporter.user.id, 20, null)
    assert.equal((await post({ state: 'success' }, reporter.token)).statusCode, 403)
    assert.equal(
      (await h.req('GET', `/api/v4/projects/${project.id}/repository/commits/${sha}/statuses`, { token: reporter.token })).statusCode,
      200,
    )
  })
})
