// GitLab's dependency proxy auth rules on `<group>/dependency_proxy/containers/<image>` through
// Wharf's token endpoint: pull only, always authenticated (even for a public group), for a group
// member (Guest or higher; password, or a PAT with read_registry/write_registry), a deploy token
// of the group or a parent group with a registry scope, or the job token of a project in the group.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { ACCESS_LEVELS } from '../../src/auth/roles.ts'
import { runnerHarness, type RunnerHarness } from './runner-harness.ts'

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`
const SCOPE = 'repository:team/dependency_proxy/containers/alpine:pull,push,delete'
const SUB_SCOPE = 'repository:team/sub/dependency_proxy/containers/library/alpine:pull'

async function granted(
  h: RunnerHarness,
  auth: { username: string; password: string } | undefined,
  scopes: string[] = [SCOPE],
): Promise<Record<string, string[]>> {
  const qs = new URLSearchParams({ service: 'container_registry' })
  for (const s of scopes) qs.append('scope', s)
  const res = await h.app.inject({
    method: 'GET',
    url: `/jwt/auth?${qs}`,
    headers: auth ? { authorization: basic(auth.username, auth.password) } : {},
  })
  assert.equal(res.statusCode, 200, res.body)
  const claims = JSON.parse(Buffer.from((res.json() as { token: string }).token.split('.')[1]!, 'base64url').toString()) as {
    access: Array<{ name: string; actions: string[] }>
  }
  return Object.fromEntries(claims.access.map((a) => [a.name, a.actions]))
}

async function setup(t: Parameters<typeof runnerHarness>[0]) {
  const h = await runnerHarness(t)
  const { user: root, token: rootToken } = await h.root()
  const guest = await h.user('guest')
  const outsider = await h.user('outsider')
  // A public group: GitLab still requires authentication for its dependency proxy.
  const app = await h.project(root, 'team', 'app', { visibility: 'public' })
  const other = await h.project(root, 'elsewhere', 'tool')
  const team = (await h.services.groups.findGroupRef('team'))!
  await h.services.members.addMember(ACCESS_LEVELS.owner, 'namespace', team.id, guest.user.id, ACCESS_LEVELS.guest, null)
  const sub = await h.services.groups.createGroup(root, { path: 'sub', parentId: team.id })
  return { h, root, rootToken, guest, outsider, app, other, team, sub }
}

describe('dependency proxy authorization', () => {
  it('a Guest member pulls (password or a registry-scoped PAT), including subgroups; never push or delete', async (t) => {
    const { h, guest } = await setup(t)
    assert.deepEqual(await granted(h, { username: 'guest', password: guest.password }, [SCOPE, SUB_SCOPE]), {
      'team/dependency_proxy/containers/alpine': ['pull'],
      'team/sub/dependency_proxy/containers/library/alpine': ['pull'],
    })
    const pat = await h.services.accessTokens.createPat(guest.user.id, { name: 'ro', scopes: ['read_registry'] }, 'test')
    assert.deepEqual(await granted(h, { username: 'guest', password: pat.token }), { 'team/dependency_proxy/containers/alpine': ['pull'] })
    const apiOnly = await h.services.accessTokens.createPat(guest.user.id, { name: 'api', scopes: ['read_api'] }, 'test')
    assert.deepEqual(await granted(h, { username: 'guest', password: apiOnly.token }), {})
  })

  it('a non-member, anonymous, or an unknown group gets nothing, and the registry says why', async (t) => {
    const { h, outsider } = await setup(t)
    assert.deepEqual(await granted(h, { username: 'outsider', password: outsider.password }), {})
    assert.deepEqual(await granted(h, undefined), {})
    assert.deepEqual(
      await granted(h, { username: 'outsider', password: outsider.password }, [
        'repository:nogroup/dependency_proxy/containers/alpine:pull',
      ]),
      {},
    )
    const qs = new URLSearchParams({ service: 'container_registry', scope: SCOPE })
    const tok = await h.app.inject({
      method: 'GET',
      url: `/jwt/auth?${qs}`,
      headers: { authorization: basic('outsider', outsider.password) },
    })
    const denied = await h.app.inject({
      method: 'GET',
      url: '/v2/team/dependency_proxy/containers/alpine/manifests/3',
      headers: { authorization: `Bearer ${(tok.json() as { token: string }).token}` },
    })
    assert.equal(denied.statusCode, 403)
    assert.match(
      (denied.json() as { errors: Array<{ message: string }> }).errors[0]!.message,
      /pulls need a member of the group \(Guest or higher\)/,
    )
  })

  it('a deploy token of the group (or a parent group) with read_registry pulls; of another group or without the scope, nothing', async (t) => {
    const { h, team, other } = await setup(t)
    const dt = await h.services.accessTokens.createDeployToken(
      { namespaceId: team.id },
      { name: 'ci', username: 'puller', scopes: ['read_registry'] },
      'test',
    )
    assert.deepEqual(await granted(h, { username: 'puller', password: dt.token }, [SCOPE, SUB_SCOPE]), {
      'team/dependency_proxy/containers/alpine': ['pull'],
      'team/sub/dependency_proxy/containers/library/alpine': ['pull'],
    })
    const repoOnly = await h.services.accessTokens.createDeployToken(
      { namespaceId: team.id },
      { name: 'git', username: 'gitter', scopes: ['read_repository'] },
      'test',
    )
    assert.deepEqual(await granted(h, { username: 'gitter', password: repoOnly.token }), {})
    const project = await h.services.accessTokens.createDeployToken(
      { projectId: other.id },
      { name: 'p', username: 'projtok', scopes: ['read_registry'] },
      'test',
    )
    assert.deepEqual(await granted(h, { username: 'projtok', password: project.token }), {})
  })

  it('the job token of a project in the group pulls; of a project elsewhere, nothing', async (t) => {
    const { h, rootToken, root, app, other } = await setup(t)
    await h.pipeline(app, await h.commit(app, { '.gitlab-ci.yml': 'build:\n  script: [echo hi]\n' }), root.id)
    await h.pipeline(other, await h.commit(other, { '.gitlab-ci.yml': 'build:\n  script: [echo hi]\n' }), root.id)
    const runner = await h.runner(rootToken, { runner_type: 'instance_type' })
    const jobs = [await h.take(runner.token), await h.take(runner.token)]
    const inTeam = jobs.find((j) => j.variables.some((v) => v.key === 'CI_PROJECT_PATH' && v.value === 'team/app'))!
    const outside = jobs.find((j) => j !== inTeam)!
    // The job logs in with its own predefined variables, as GitLab documents.
    const v = Object.fromEntries(inTeam.variables.map((x) => [x.key, x.value]))
    assert.equal(v.CI_DEPENDENCY_PROXY_USER, 'gitlab-ci-token')
    assert.equal(v.CI_DEPENDENCY_PROXY_PASSWORD, inTeam.token)
    assert.equal(v.CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX, 'wharf.test:5000/team/dependency_proxy/containers')
    assert.deepEqual(await granted(h, { username: v.CI_DEPENDENCY_PROXY_USER!, password: v.CI_DEPENDENCY_PROXY_PASSWORD! }), {
      'team/dependency_proxy/containers/alpine': ['pull'],
    })
    assert.deepEqual(await granted(h, { username: 'gitlab-ci-token', password: outside.token }), {})
  })

  it('pushes to a dependency proxy path are refused before any token is looked at', async (t) => {
    const { h } = await setup(t)
    const res = await h.app.inject({ method: 'POST', url: '/v2/team/dependency_proxy/containers/alpine/blobs/uploads/' })
    assert.equal(res.statusCode, 405)
    assert.equal((res.json() as { errors: Array<{ code: string }> }).errors[0]!.code, 'UNSUPPORTED')
  })

  it('dependency_proxy is a reserved group and project path', async (t) => {
    const { h, root, team } = await setup(t)
    await assert.rejects(h.services.projects.createProject(root, { namespaceId: team.id, path: 'dependency_proxy' }), /reserved/)
    await assert.rejects(h.services.groups.createGroup(root, { path: 'dependency_proxy' }), /reserved/)
  })
})
