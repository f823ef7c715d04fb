// REST API: groups and projects (create, list, get by id or path, update, delete), visibility,
// role checks and case-insensitive path uniqueness.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { test } from 'node:test'
import { apiHarness, assertProblem, type ApiHarness } from './api-harness.ts'

type Json = Record<string, unknown>

/** root, a group "Team" with one member per role, and a stranger. */
async function world(t: Parameters<typeof apiHarness>[0]) {
  const h = await apiHarness(t)
  const root = await h.root()
  const owner = await h.user('owner')
  const team = (
    await h.req('POST', '/api/v4/groups', { token: owner.token, body: { name: 'The Team', path: 'Team', visibility: 'public' } })
  ).json() as { id: number }
  const tokens: Record<string, string> = { root: root.token, owner: owner.token }
  const ids: Record<string, number> = { root: root.user.id, owner: owner.user.id }
  for (const [role, level] of [
    ['guest', 10],
    ['reporter', 20],
    ['developer', 30],
    ['maintainer', 40],
  ] as const) {
    const u = await h.user(role)
    tokens[role] = u.token
    ids[role] = u.user.id
    const r = await h.req('POST', `/api/v4/groups/${team.id}/members`, {
      token: owner.token,
      body: { user_id: u.user.id, access_level: level },
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  const stranger = await h.user('stranger')
  tokens.stranger = stranger.token
  ids.stranger = stranger.user.id
  return { h, team, tokens, ids }
}

async function createProject(h: ApiHarness, token: string | undefined, body: Json) {
  const res = await h.req('POST', '/api/v4/projects', { token, body })
  assert.equal(res.statusCode, 201, res.body)
  return res.json() as { id: number; path_with_namespace: string }
}

test('POST /groups and /projects return GitLab shapes; the registry prefix is lowercased', async (t) => {
  const { h, team, tokens } = await world(t)
  const g = (await h.req('GET', `/api/v4/groups/${team.id}`, { token: tokens.owner })).json() as Json
  assert.equal(g.path, 'Team')
  assert.equal(g.name, 'The Team')
  assert.equal(g.full_path, 'Team')
  assert.equal(g.visibility, 'public')
  assert.equal(g.parent_id, null)
  assert.equal(g.web_url, 'http://wharf.test:5000/groups/Team')

  const res = await h.req('POST', '/api/v4/projects', {
    token: tokens.owner,
    body: { name: 'My App', namespace_id: team.id, visibility: 'public', description: 'd' },
  })
  assert.equal(res.statusCode, 201, res.body)
  const p = res.json() as Json
  assert.equal(p.name, 'My App')
  assert.equal(p.path, 'my-app') // derived from the name, as GitLab does
  assert.equal(p.path_with_namespace, 'Team/my-app')
  assert.equal(p.name_with_namespace, 'The Team / My App')
  assert.equal(p.visibility, 'public')
  assert.equal(p.description, 'd')
  assert.equal(p.web_url, 'http://wharf.test:5000/Team/my-app')
  assert.equal(p.container_registry_image_prefix, 'wharf.test:5000/team/my-app')
  assert.deepEqual(p.namespace, {
    id: team.id,
    name: 'The Team',
    path: 'Team',
    kind: 'group',
    full_path: 'Team',
    parent_id: null,
    avatar_url: null,
    web_url: 'http://wharf.test:5000/groups/Team',
  })
  for (const k of ['id', 'created_at', 'http_url_to_repo', 'creator_id']) assert.ok(k in p, k)

  // Default namespace: the caller's own; namespace_id may also be a path.
  const mine = await createProject(h, tokens.stranger, { path: 'Tool' })
  assert.equal(mine.path_with_namespace, 'stranger/Tool')
  const byPath = await createProject(h, tokens.owner, { path: 'other', namespace_id: 'team' })
  assert.equal(byPath.path_with_namespace, 'Team/other')
})

test('paths are unique regardless of letter case (409), across groups, users and projects', async (t) => {
  const { h, team, tokens } = await world(t)
  await createProject(h, tokens.owner, { path: 'App', namespace_id: team.id })
  for (const path of ['app', 'APP', 'aPp']) {
    const res = assertProblem(await h.req('POST', '/api/v4/projects', { token: tokens.owner, body: { path, namespace_id: team.id } }), 409)
    assert.match(String(res.detail), /already taken/)
  }
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'TEAM' } }), 409)
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'Stranger' } }), 409) // a user's namespace
  // A subgroup cannot take a project's path.
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'APP', parent_id: team.id } }), 409)
  // Invalid and reserved paths are 400.
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'bad path!' } }), 400)
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'api' } }), 400)
  // An explicit null parent is a top-level group (JSON null must not be coerced to 0).
  const top = await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'toplevel', parent_id: null } })
  assert.equal(top.statusCode, 201, top.body)
  assert.equal(top.json().parent_id, null)
})

test('GET /projects/:id by numeric id or URL-encoded path, in any letter case', async (t) => {
  const { h, team, tokens } = await world(t)
  const p = await createProject(h, tokens.owner, { path: 'App', namespace_id: team.id, visibility: 'public' })
  for (const ref of [String(p.id), 'Team%2FApp', 'team%2Fapp', 'TEAM%2FAPP']) {
    const res = await h.req('GET', `/api/v4/projects/${ref}`, { token: tokens.stranger })
    assert.equal(res.statusCode, 200, `${ref}: ${res.body}`)
    assert.equal((res.json() as Json).id, p.id)
  }
  assertProblem(await h.req('GET', '/api/v4/projects/team%2Fnope', { token: tokens.owner }), 404)
  for (const ref of [String(team.id), 'Team', 'team']) assert.equal((await h.req('GET', `/api/v4/groups/${ref}`)).statusCode, 200, ref)
  assertProblem(await h.req('GET', '/api/v4/groups/stranger', { token: tokens.stranger }), 404) // a user namespace is not a group
})

test('visibility: who sees a private, internal or public project', async (t) => {
  const { h, team, tokens } = await world(t)
  const made: Record<string, number> = {}
  for (const v of ['private', 'internal', 'public'])
    made[v] = (await createProject(h, tokens.owner, { path: `p-${v}`, namespace_id: team.id, visibility: v })).id
  const expect: Record<string, Record<string, number>> = {
    anonymous: { private: 404, internal: 404, public: 200 },
    stranger: { private: 404, internal: 200, public: 200 },
    guest: { private: 200, internal: 200, public: 200 },
    developer: { private: 200, internal: 200, public: 200 },
    root: { private: 200, internal: 200, public: 200 },
  }
  for (const [who, byVis] of Object.entries(expect)) {
    for (const [v, status] of Object.entries(byVis)) {
      const res = await h.req('GET', `/api/v4/projects/${made[v]}`, { token: tokens[who] })
      assert.equal(res.statusCode, status, `${who} on ${v}`)
      if (status === 404) assertProblem(res, 404)
    }
  }
  // Listing agrees with the single reads.
  const listed = async (who: string) =>
    ((await h.req('GET', '/api/v4/projects', { token: tokens[who] })).json() as Array<{ path: string }>).map((p) => p.path).sort()
  assert.deepEqual(await listed('anonymous'), ['p-public'])
  assert.deepEqual(await listed('stranger'), ['p-internal', 'p-public'])
  assert.deepEqual(await listed('guest'), ['p-internal', 'p-private', 'p-public'])
  assert.deepEqual(await listed('root'), ['p-internal', 'p-private', 'p-public'])
})

test('GET /projects: search, owned, membership and GitLab pagination headers', async (t) => {
  const { h, team, tokens } = await world(t)
  for (let i = 1; i <= 5; i++) await createProject(h, tokens.owner, { path: `svc-${i}`, namespace_id: team.id, visibility: 'public' })
  await createProject(h, tokens.stranger, { path: 'mine', visibility: 'private' })
  const page1 = await h.req('GET', '/api/v4/projects?search=svc&per_page=2', { token: tokens.stranger })
  assert.equal(page1.statusCode, 200)
  assert.equal((page1.json() as unknown[]).length, 2)
  assert.equal(page1.headers['x-total'], '5')
  assert.equal(page1.headers['x-total-pages'], '3')
  assert.equal(page1.headers['x-page'], '1')
  assert.equal(page1.headers['x-per-page'], '2')
  assert.equal(page1.headers['x-next-page'], '2')
  assert.equal(page1.headers['x-prev-page'], '')
  const link = String(page1.headers.link)
  assert.match(link, /<http:\/\/wharf\.test:5000\/api\/v4\/projects\?search=svc&per_page=2&page=2>; rel="next"/)
  assert.match(link, /rel="first"/)
  assert.match(link, /page=3>; rel="last"/)
  const page3 = await h.req('GET', '/api/v4/projects?search=svc&per_page=2&page=3', { token: tokens.stranger })
  assert.equal((page3.json() as unknown[]).length, 1)
  assert.equal(page3.headers['x-next-page'], '')
  assert.equal(page3.headers['x-prev-page'], '2')

  const owned = (await h.req('GET', '/api/v4/projects?owned=true', { token: tokens.stranger })).json() as Array<{ path: string }>
  assert.deepEqual(
    owned.map((p) => p.path),
    ['mine'],
  )
  const membership = (await h.req('GET', '/api/v4/projects?membership=true', { token: tokens.developer })).json() as Array<{ path: string }>
  assert.equal(membership.length, 5)
  assert.deepEqual((await h.req('GET', '/api/v4/projects?membership=true', { token: tokens.stranger })).json(), [
    { ...((await h.req('GET', '/api/v4/projects/stranger%2Fmine', { token: tokens.stranger })).json() as object) },
  ])
  const perPageCap = await h.req('GET', '/api/v4/projects?per_page=1000', { token: tokens.stranger })
  assert.equal(perPageCap.headers['x-per-page'], '100')
})

test('groups: subgroups need maintainer in the parent; list shows what the caller may see', async (t) => {
  const { h, team, tokens } = await world(t)
  assertProblem(await h.req('POST', '/api/v4/groups', { token: tokens.developer, body: { path: 'sub', parent_id: team.id } }), 403)
  const sub = await h.req('POST', '/api/v4/groups', {
    token: tokens.maintainer,
    body: { path: 'sub', parent_id: team.id, visibility: 'private' },
  })
  assert.equal(sub.statusCode, 201, sub.body)
  const subJson = sub.json() as Json
  assert.equal(subJson.full_path, 'Team/sub')
  assert.equal(subJson.parent_id, team.id)
  assert.equal(subJson.full_name, 'The Team / sub')
  // Not more visible than its parent.
  const closed = (
    await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'closed', visibility: 'private' } })
  ).json() as { id: number }
  assertProblem(
    await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'open', parent_id: closed.id, visibility: 'public' } }),
    400,
  )
  assertProblem(
    await h.req('POST', '/api/v4/projects', { token: tokens.owner, body: { path: 'x', namespace_id: 'closed', visibility: 'public' } }),
    400,
  )

  const names = async (who: string | undefined, q = '') =>
    ((await h.req('GET', `/api/v4/groups${q}`, { token: who })).json() as Array<{ full_path: string }>).map((g) => g.full_path)
  assert.deepEqual(await names(undefined), ['Team'])
  assert.deepEqual(await names(tokens.stranger), ['Team'])
  assert.deepEqual(await names(tokens.guest), ['Team', 'Team/sub']) // inherited membership
  assert.deepEqual(await names(tokens.owner), ['closed', 'Team', 'Team/sub'])
  assert.deepEqual(await names(tokens.owner, '?owned=true'), ['closed', 'Team'])
  assert.deepEqual(await names(tokens.owner, '?top_level_only=true'), ['closed', 'Team'])
  assert.deepEqual(await names(tokens.owner, '?search=sub'), ['Team/sub'])
  assertProblem(await h.req('GET', '/api/v4/groups/Team%2Fsub', { token: tokens.stranger }), 404)
  // Group projects listing
  await createProject(h, tokens.owner, { path: 'a', namespace_id: team.id, visibility: 'public' })
  await createProject(h, tokens.maintainer, { path: 'b', namespace_id: 'Team/sub' })
  const listed = (await h.req('GET', `/api/v4/groups/${team.id}/projects`, { token: tokens.guest })).json() as Array<{
    path_with_namespace: string
  }>
  assert.deepEqual(listed.map((p) => p.path_with_namespace).sort(), ['Team/a', 'Team/sub/b'])
  const anon = (await h.req('GET', `/api/v4/groups/${team.id}/projects`)).json() as Array<{ path_with_namespace: string }>
  assert.deepEqual(
    anon.map((p) => p.path_with_namespace),
    ['Team/a'],
  )
})

test('PUT /projects/:id needs maintainer; DELETE needs owner (or admin)', async (t) => {
  const { h, team, tokens } = await world(t)
  const p = await createProject(h, tokens.owner, { path: 'App', namespace_id: team.id, visibility: 'private' })
  for (const who of ['guest', 'reporter', 'developer'])
    assertProblem(await h.req('PUT', `/api/v4/projects/${p.id}`, { token: tokens[who], body: { name: 'x' } }), 403)
  assertProblem(await h.req('PUT', `/api/v4/projects/${p.id}`, { token: tokens.stranger, body: { name: 'x' } }), 404)
  assertProblem(await h.req('PUT', `/api/v4/projects/${p.id}`, { body: { name: 'x' } }), 401)
  const upd = await h.req('PUT', `/api/v4/projects/${p.id}`, {
    token: tokens.maintainer,
    body: { name: 'Renamed', description: 'new', visibility: 'internal' },
  })
  assert.equal(upd.statusCode, 200, upd.body)
  const u = upd.json() as Json
  assert.equal(u.name, 'Renamed')
  assert.equal(u.description, 'new')
  assert.equal(u.visibility, 'internal')
  assert.equal(u.path, 'App')
  assertProblem(await h.req('PUT', `/api/v4/projects/${p.id}`, { token: tokens.maintainer, body: { visibility: 'everyone' } }), 400)

  for (const who of ['developer', 'maintainer'])
    assertProblem(await h.req('DELETE', `/api/v4/projects/${p.id}`, { token: tokens[who] }), 403)
  const del = await h.req('DELETE', `/api/v4/projects/${p.id}`, { token: tokens.owner })
  assert.equal(del.statusCode, 202)
  assertProblem(await h.req('GET', `/api/v4/projects/${p.id}`, { token: tokens.owner }), 404)
  const p2 = await createProject(h, tokens.owner, { path: 'app', namespace_id: team.id }) // the path is free again
  assert.equal((await h.req('DELETE', `/api/v4/projects/${p2.id}`, { token: tokens.root })).statusCode, 202)
})

test('PUT and DELETE /groups/:id need owner (or admin); deletion takes subgroups, projects and memberships', async (t) => {
  const { h, team, tokens, ids } = await world(t)
  for (const who of ['developer', 'maintainer']) {
    assertProblem(await h.req('PUT', `/api/v4/groups/${team.id}`, { token: tokens[who], body: { name: 'x' } }), 403)
    assertProblem(await h.req('DELETE', `/api/v4/groups/${team.id}`, { token: tokens[who] }), 403)
  }
  const upd = await h.req('PUT', `/api/v4/groups/${team.id}`, { token: tokens.owner, body: { name: 'Renamed', description: 'x' } })
  assert.equal(upd.statusCode, 200, upd.body)
  assert.equal((upd.json() as Json).name, 'Renamed')
  const sub = (
    await h.req('POST', '/api/v4/groups', { token: tokens.owner, body: { path: 'sub', parent_id: team.id, visibility: 'public' } })
  ).json() as { id: number }
  // Cannot become less visible than what it holds.
  assertProblem(await h.req('PUT', `/api/v4/groups/${team.id}`, { token: tokens.owner, body: { visibility: 'private' } }), 400)
  const p = await createProject(h, tokens.owner, { path: 'deep', namespace_id: sub.id })
  assert.equal((await h.req('DELETE', `/api/v4/groups/${team.id}`, { token: tokens.owner })).statusCode, 202)
  for (const url of [`/api/v4/groups/${team.id}`, `/api/v4/groups/${sub.id}`, `/api/v4/projects/${p.id}`])
    assertProblem(await h.req('GET', url, { token: tokens.root }), 404)
  const leftover = await h.db.selectFrom('members').selectAll().where('user_id', 'in', [ids.guest!, ids.developer!]).execute()
  assert.deepEqual(leftover, [])
  // A new group reusing the path starts with no members from the old one.
  const again = (
    await h.req('POST', '/api/v4/groups', { token: tokens.stranger, body: { path: 'Team', visibility: 'private' } })
  ).json() as { id: number }
  assertProblem(await h.req('GET', `/api/v4/groups/${again.id}`, { token: tokens.developer }), 404)
})

test("deleting a project or its group removes the project's git repository", async (t) => {
  const { h, team, tokens } = await world(t)
  const git = h.services.git!
  const repoOf = async (id: number) => {
    const project = (await git.findProjectById(id))!
    return git.repository(project)
  }
  const a = await createProject(h, tokens.owner, { path: 'a', namespace_id: team.id })
  const b = await createProject(h, tokens.owner, { path: 'b', namespace_id: team.id })
  const dirA = await repoOf(a.id)
  const dirB = await repoOf(b.id)
  assert.ok(existsSync(dirA) && existsSync(dirB))
  assert.equal((await h.req('DELETE', `/api/v4/projects/${a.id}`, { token: tokens.owner })).statusCode, 202)
  assert.equal(existsSync(dirA), false)
  assert.equal(existsSync(dirB), true)
  assert.equal((await h.req('DELETE', `/api/v4/groups/${team.id}`, { token: tokens.owner })).statusCode, 202)
  assert.equal(existsSync(dirB), false)
})
