// The CI job token as a credential: `docker login -u gitlab-ci-token -p $CI_JOB_TOKEN` (GET
// /jwt/auth), pushes and pulls in its own project, pulls elsewhere only through the job's user
// AND the other project's job-token allowlist, never delete, git clone of its own project, and
// nothing at all once the job has finished.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import type { JobResponse } from '../../src/runner/protocol.ts'
import { runnerHarness, updateJob, type RunnerHarness } from './runner-harness.ts'

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

async function jwt(h: RunnerHarness, password: string, scopes: string[], username = 'gitlab-ci-token') {
  const qs = new URLSearchParams({ service: 'container_registry' })
  for (const s of scopes) qs.append('scope', s)
  return h.app.inject({ method: 'GET', url: `/jwt/auth?${qs}`, headers: { authorization: basic(username, password) } })
}

function grants(res: { json(): unknown }): Record<string, string[]> {
  const token = (res.json() as { token: string }).token
  const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as {
    access: Array<{ type: string; name: string; actions: string[] }>
  }
  return Object.fromEntries(claims.access.map((a) => [a.name, a.actions]))
}

async function setup(t: Parameters<typeof runnerHarness>[0]) {
  const h = await runnerHarness(t)
  const { user: root, token: rootToken } = await h.root()
  const { user: dev, token: devToken } = await h.user('dev')
  const app = await h.project(root, 'team', 'app', { members: [[dev, 'developer']] })
  const base = await h.project(root, 'team', 'base', { members: [[dev, 'reporter']] })
  const secret = await h.project(root, 'team', 'secret')
  await h.pipeline(app, await h.commit(app, { '.gitlab-ci.yml': 'build:\n  script: [docker build .]\n' }), dev.id)
  const runner = await h.runner(rootToken, { runner_type: 'instance_type' })
  const job = await h.take(runner.token)
  return { h, rootToken, dev, devToken, app, base, secret, job }
}

async function pushBlob(h: RunnerHarness, bearer: string, name: string): Promise<number> {
  const blob = Buffer.from(`layer of ${name}`)
  const digest = `sha256:${createHash('sha256').update(blob).digest('hex')}`
  const r = await h.app.inject({
    method: 'POST',
    url: `/v2/${name}/blobs/uploads/?digest=${digest}`,
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/octet-stream' },
    payload: blob,
  })
  return r.statusCode
}

describe('the job token with the registry', () => {
  it('pulls and pushes its own project, never deletes', async (t) => {
    const { h, job } = await setup(t)
    const res = await jwt(h, job.token, ['repository:team/app:pull,push,delete', 'repository:team/app/sub:pull,push'])
    assert.equal(res.statusCode, 200, res.body)
    assert.deepEqual(grants(res), { 'team/app': ['pull', 'push'], 'team/app/sub': ['pull', 'push'] })
    const bearer = (res.json() as { token: string }).token
    assert.equal(await pushBlob(h, bearer, 'team/app'), 201)
  })

  it('pulls another project only when the job user may AND that project allow-lists the job project; the denial says which allowlist', async (t) => {
    const { h, rootToken, devToken, app, base, secret, job } = await setup(t)
    const before = await jwt(h, job.token, ['repository:team/base:pull', 'repository:team/secret:pull'])
    assert.deepEqual(grants(before), {})
    // The registry explains the refusal, naming the allowlist entry that would fix it.
    const denied = await h.app.inject({
      method: 'GET',
      url: '/v2/team/base/manifests/latest',
      headers: { authorization: `Bearer ${(before.json() as { token: string }).token}` },
    })
    assert.equal(denied.statusCode, 403)
    const message = (denied.json() as { errors: Array<{ message: string }> }).errors[0]!.message
    assert.match(message, /team\/base does not allow CI job tokens from team\/app/)
    assert.match(message, new RegExp(`/api/v4/projects/${base.id}/job_token_scope/allowlist with target_project_id=${app.id}`))
    // A project the job's user cannot see is not named.
    const hidden = await h.app.inject({
      method: 'GET',
      url: '/v2/team/secret/manifests/latest',
      headers: { authorization: `Bearer ${(before.json() as { token: string }).token}` },
    })
    assert.equal(hidden.statusCode, 403)
    assert.doesNotMatch(hidden.body, /allowlist/)

    // A developer of app cannot change base's allowlist; its maintainer (root) can.
    const refused = await h.req('POST', `/api/v4/projects/${base.id}/job_token_scope/allowlist`, {
      token: devToken,
      body: { target_project_id: app.id },
    })
    assert.equal(refused.statusCode, 403)
    for (const p of [base, secret]) {
      const added = await h.req('POST', `/api/v4/projects/${p.id}/job_token_scope/allowlist`, {
        token: rootToken,
        body: { target_project_id: app.id },
      })
      assert.equal(added.statusCode, 201, added.body)
      assert.deepEqual(added.json(), { source_project_id: p.id, target_project_id: app.id })
    }
    const after = await jwt(h, job.token, ['repository:team/base:pull,push,delete', 'repository:team/secret:pull'])
    assert.deepEqual(grants(after), { 'team/base': ['pull'] }, 'pull only; secret stays closed: the job user has no access there')

    const list = await h.req('GET', `/api/v4/projects/${base.id}/job_token_scope/allowlist`, { token: rootToken })
    assert.deepEqual(
      (list.json() as Array<{ path_with_namespace: string }>).map((p) => p.path_with_namespace),
      ['team/app'],
    )
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${base.id}/job_token_scope/allowlist`, {
          token: rootToken,
          body: { target_project_id: app.id },
        })
      ).statusCode,
      409,
    )
    assert.equal(
      (await h.req('DELETE', `/api/v4/projects/${base.id}/job_token_scope/allowlist/${app.id}`, { token: rootToken })).statusCode,
      204,
    )
    assert.deepEqual(grants(await jwt(h, job.token, ['repository:team/base:pull'])), {})
  })

  it('stops working when the job ends: no new logins, and registry tokens already issued are refused', async (t) => {
    const { h, job } = await setup(t)
    const res = await jwt(h, job.token, ['repository:team/app:pull,push'])
    const bearer = (res.json() as { token: string }).token
    assert.equal(await pushBlob(h, bearer, 'team/app'), 201)
    assert.equal((await updateJob(h, job, { state: 'success', exit_code: 0 })).statusCode, 200)
    assert.equal((await jwt(h, job.token, ['repository:team/app:pull'])).statusCode, 401)
    assert.equal(await pushBlob(h, bearer, 'team/app'), 401)
  })

  it('is not a password for any other user name', async (t) => {
    const { h, job } = await setup(t)
    assert.equal((await jwt(h, job.token, ['repository:team/app:pull'], 'dev')).statusCode, 401)
  })
})

describe('the job token with git', () => {
  it('clones its own project and nothing private elsewhere; never pushes', async (t) => {
    const { h, job } = await setup(t)
    const auth = { authorization: basic('gitlab-ci-token', job.token) }
    const own = await h.app.inject({ method: 'GET', url: '/team/app.git/info/refs?service=git-upload-pack', headers: auth })
    assert.equal(own.statusCode, 200, own.body)
    const push = await h.app.inject({ method: 'GET', url: '/team/app.git/info/refs?service=git-receive-pack', headers: auth })
    assert.equal(push.statusCode, 403)
    const other = await h.app.inject({ method: 'GET', url: '/team/base.git/info/refs?service=git-upload-pack', headers: auth })
    assert.equal(other.statusCode, 404)
    assert.ok((job as JobResponse).git_info.repo_url.includes(`gitlab-ci-token:${job.token}@`))
  })
})
