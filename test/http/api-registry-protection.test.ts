// Container registry tag protection rules and immutable tags (GitLab's
// /projects/:id/registry/protection/tag/rules), enforced on /v2 pushes and deletes, the API's tag
// deletes, bulk delete and cleanup policies.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem, bearer, pushSeeded as push, type ApiHarness } from './api-harness.ts'

async function setup(t: Parameters<typeof apiHarness>[0]) {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = (await h.req('POST', '/api/v4/groups', { token: root.token, body: { path: 'team', name: 'team' } })).json() as {
    id: number
  }
  const project = (
    await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app', namespace_id: group.id } })
  ).json() as {
    id: number
  }
  // Another project whose path starts the same: its rules must not reach team/app.
  const other = (await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app2', namespace_id: group.id } })).json() as {
    id: number
  }
  const users: Record<string, string> = { root: root.token }
  for (const [name, level] of [
    ['developer', 30],
    ['maintainer', 40],
    ['owner', 50],
  ] as const) {
    const u = await h.user(name)
    users[name] = u.token
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${project.id}/members`, {
          token: root.token,
          body: { user_id: u.user.id, access_level: level },
        })
      ).statusCode,
      201,
    )
  }
  return { h, project, other, users }
}

async function v2Delete(h: ApiHarness, user: string, name: string, reference: string) {
  return h.app.inject({ method: 'DELETE', url: `/v2/${name}/manifests/${reference}`, headers: await bearer(h, user, name, 'delete') })
}

function assertDenied(res: { statusCode: number; body: string }, message: RegExp) {
  assert.equal(res.statusCode, 403, res.body)
  const e = (JSON.parse(res.body) as { errors: Array<{ code: string; message: string }> }).errors[0]!
  assert.equal(e.code, 'DENIED')
  assert.match(e.message, message)
}

const rules = (projectId: number) => `/api/v4/projects/${projectId}/registry/protection/tag/rules`

async function addRule(h: ApiHarness, token: string, projectId: number, body: Record<string, unknown>) {
  const r = await h.req('POST', rules(projectId), { token, body })
  assert.equal(r.statusCode, 201, r.body)
  return r.json() as { id: number }
}

test('tag protection rules API: GitLab shapes, maintainers only, checked patterns and levels', async (t) => {
  const { h, project, users } = await setup(t)
  const created = await h.req('POST', rules(project.id), {
    token: users.maintainer,
    body: { tag_name_pattern: 'v.*', minimum_access_level_for_push: 'maintainer', minimum_access_level_for_delete: 'owner' },
  })
  assert.equal(created.statusCode, 201, created.body)
  const rule = created.json() as { id: number }
  assert.deepEqual(rule, {
    id: rule.id,
    project_id: project.id,
    tag_name_pattern: 'v.*',
    minimum_access_level_for_push: 'maintainer',
    minimum_access_level_for_delete: 'owner',
    immutable: false,
  })
  // Neither level: an immutable-tag rule.
  const immutable = await addRule(h, users.maintainer!, project.id, { tag_name_pattern: 'release-.*' })
  assert.equal((immutable as { immutable?: boolean }).immutable, true)

  const list = await h.req('GET', rules(project.id), { token: users.maintainer })
  assert.equal(list.statusCode, 200)
  assert.equal(list.headers['x-total'], '2')
  assert.deepEqual(
    (list.json() as Array<{ tag_name_pattern: string }>).map((r) => r.tag_name_pattern),
    ['v.*', 'release-.*'],
  )

  // Developers neither read nor write the rules.
  assertProblem(await h.req('GET', rules(project.id), { token: users.developer }), 403)
  assertProblem(await h.req('POST', rules(project.id), { token: users.developer, body: { tag_name_pattern: 'x' } }), 403)
  // Bad input: a pattern RE2 refuses, one level without the other, an unknown level, a duplicate, a missing pattern.
  assert.match(
    String(
      assertProblem(await h.req('POST', rules(project.id), { token: users.maintainer, body: { tag_name_pattern: '(a)\\1' } }), 400).message,
    ),
    /tag_name_pattern is not a valid regular expression/,
  )
  assertProblem(
    await h.req('POST', rules(project.id), {
      token: users.maintainer,
      body: { tag_name_pattern: 'x', minimum_access_level_for_push: 'owner' },
    }),
    400,
  )
  assertProblem(
    await h.req('POST', rules(project.id), {
      token: users.maintainer,
      body: { tag_name_pattern: 'x', minimum_access_level_for_push: 'developer', minimum_access_level_for_delete: 'owner' },
    }),
    400,
  )
  assertProblem(await h.req('POST', rules(project.id), { token: users.maintainer, body: { tag_name_pattern: 'v.*' } }), 409)
  assertProblem(await h.req('POST', rules(project.id), { token: users.maintainer, body: {} }), 400)

  // PATCH changes only what it names.
  const patched = await h.req('PATCH', `${rules(project.id)}/${rule.id}`, {
    token: users.maintainer,
    body: { minimum_access_level_for_delete: 'admin' },
  })
  assert.equal(patched.statusCode, 200, patched.body)
  assert.equal((patched.json() as { minimum_access_level_for_push: string }).minimum_access_level_for_push, 'maintainer')
  assert.equal((patched.json() as { minimum_access_level_for_delete: string }).minimum_access_level_for_delete, 'admin')
  assertProblem(
    await h.req('PATCH', `${rules(project.id)}/${rule.id}`, { token: users.maintainer, body: { tag_name_pattern: 'release-.*' } }),
    409,
  )
  assertProblem(await h.req('PATCH', `${rules(project.id)}/999`, { token: users.maintainer, body: {} }), 404)

  assert.equal((await h.req('DELETE', `${rules(project.id)}/${rule.id}`, { token: users.maintainer })).statusCode, 204)
  assertProblem(await h.req('DELETE', `${rules(project.id)}/${rule.id}`, { token: users.maintainer }), 404)
  assert.equal((await h.req('GET', rules(project.id), { token: users.maintainer })).headers['x-total'], '1')
})

test('/v2: protected tags need the rule’s level to push and delete; immutable tags are never moved or deleted', async (t) => {
  const { h, project, other, users } = await setup(t)
  const protectedRule = await addRule(h, users.maintainer!, project.id, {
    tag_name_pattern: 'v.*',
    minimum_access_level_for_push: 'maintainer',
    minimum_access_level_for_delete: 'owner',
  })
  await addRule(h, users.maintainer!, project.id, { tag_name_pattern: 'release-.*' })
  // A look-alike project's rule does not apply to team/app.
  await addRule(h, users.root!, other.id, { tag_name_pattern: 'dev' })

  assertDenied(
    await push(h, 'developer', 'team/app', 'v1', 'a'),
    new RegExp(`tag 'v1' is protected \\(rule ${protectedRule.id}, pattern 'v\\.\\*'\\): pushing it needs the maintainer role`),
  )
  assert.equal((await push(h, 'developer', 'team/app', 'dev', 'a')).statusCode, 201)
  // The pattern matches whole names only.
  assert.equal((await push(h, 'developer', 'team/app', 'xv1', 'a')).statusCode, 201)
  assert.equal((await push(h, 'maintainer', 'team/app', 'v1', 'a')).statusCode, 201)
  // Images below the project path follow the project's rules.
  assertDenied(await push(h, 'developer', 'team/app/api', 'v1', 'a'), /pushing it needs the maintainer role/)

  assertDenied(await v2Delete(h, 'maintainer', 'team/app', 'v1'), /deleting it needs the owner role/)
  // A delete by digest takes the tags on it along, so it is refused as well.
  const v1 = await h.app.inject({
    method: 'HEAD',
    url: '/v2/team/app/manifests/v1',
    headers: await bearer(h, 'maintainer', 'team/app', 'pull'),
  })
  const v1Digest = String(v1.headers['docker-content-digest'])
  assertDenied(await v2Delete(h, 'maintainer', 'team/app', v1Digest), /deleting it needs the owner role/)
  assert.equal((await v2Delete(h, 'owner', 'team/app', 'v1')).statusCode, 202)

  // Immutable: anyone who may push creates it; re-pushing the same content is a no-op; nobody moves or deletes it.
  assert.equal((await push(h, 'developer', 'team/app', 'release-1', 'r1')).statusCode, 201)
  assert.equal((await push(h, 'developer', 'team/app', 'release-1', 'r1')).statusCode, 201)
  assertDenied(
    await push(h, 'root', 'team/app', 'release-1', 'r2'),
    /tag 'release-1' is immutable \(protection rule \d+, pattern 'release-\.\*'\): nobody may overwrite it/,
  )
  assertDenied(await v2Delete(h, 'root', 'team/app', 'release-1'), /nobody may delete it/)
  const pulled = await h.app.inject({
    method: 'HEAD',
    url: '/v2/team/app/manifests/release-1',
    headers: await bearer(h, 'root', 'team/app', 'pull'),
  })
  assert.equal(pulled.statusCode, 200)
  assertDenied(await v2Delete(h, 'root', 'team/app', String(pulled.headers['docker-content-digest'])), /nobody may delete it/)
})

test('API deletes: one tag, bulk and cleanup policies keep protected tags', async (t) => {
  const { h, project, users } = await setup(t)
  for (const tag of ['v1', 'v2', 'release-1', 'feature-a', 'feature-b'])
    assert.equal((await push(h, 'root', 'team/app', tag, tag)).statusCode, 201)
  await addRule(h, users.maintainer!, project.id, {
    tag_name_pattern: 'v.*',
    minimum_access_level_for_push: 'maintainer',
    minimum_access_level_for_delete: 'owner',
  })
  await addRule(h, users.maintainer!, project.id, { tag_name_pattern: 'release-.*' })
  const repo = (
    (await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories`, { token: users.root })).json() as Array<{ id: number }>
  )[0]!
  const tagsUrl = `/api/v4/projects/${project.id}/registry/repositories/${repo.id}/tags`
  const tags = async () =>
    ((await h.req('GET', tagsUrl, { token: users.root })).json() as Array<{ name: string }>).map((x) => x.name).sort()

  assert.match(
    String(assertProblem(await h.req('DELETE', `${tagsUrl}/v1`, { token: users.maintainer }), 403).message),
    /tag 'v1' is protected .*deleting it needs the owner role/,
  )
  assert.match(String(assertProblem(await h.req('DELETE', `${tagsUrl}/release-1`, { token: users.root }), 403).message), /immutable/)

  // Bulk delete of everything as a maintainer: the protected and immutable tags stay.
  const bulk = await h.req('DELETE', `${tagsUrl}?name_regex_delete=.*`, { token: users.maintainer })
  assert.equal(bulk.statusCode, 202, bulk.body)
  assert.deepEqual(await tags(), ['release-1', 'v1', 'v2'])
  // The owner may delete v*; the immutable tag still stays.
  assert.equal((await h.req('DELETE', `${tagsUrl}?name_regex_delete=v1`, { token: users.owner })).statusCode, 202)
  assert.deepEqual(await tags(), ['release-1', 'v2'])

  // A cleanup policy deletes no protected tag, whoever set it, and counts what it kept.
  for (const tag of ['feature-c', 'v3']) assert.equal((await push(h, 'root', 'team/app', tag, tag)).statusCode, 201)
  const set = await h.req('PUT', `/api/v4/projects/${project.id}`, {
    token: users.root,
    body: { container_expiration_policy_attributes: { enabled: true, cadence: '1d', keep_n: null, name_regex: '.*', older_than: null } },
  })
  assert.equal(set.statusCode, 200, set.body)
  const ran = await h.services.registry.manifests.policies.runDue(Date.now() + 2 * 86_400_000)
  assert.deepEqual(await tags(), ['release-1', 'v2', 'v3'])
  assert.deepEqual(ran, { policies: 1, tags: 1, protectedTags: 3 })
})
