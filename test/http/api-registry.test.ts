// REST API: projects/:id/registry/repositories and tags (GitLab's container registry API).
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem, pushImage, ROOT_PASSWORD, type ApiHarness } from './api-harness.ts'

const ROOT = { username: 'root', password: ROOT_PASSWORD }

async function setup(t: Parameters<typeof apiHarness>[0]) {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = (
    await h.req('POST', '/api/v4/groups', { token: root.token, body: { path: 'Team', name: 'Team', visibility: 'private' } })
  ).json() as { id: number }
  const project = (
    await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'App', namespace_id: group.id } })
  ).json() as { id: number }
  // The registry path is the project path lowercased; images may live below it.
  const digest = await pushImage(h, ROOT, 'team/app', ['latest', 'v1', 'v1.0'])
  await pushImage(h, ROOT, 'team/app/api', ['edge'], 'other')
  // A look-alike path of another project is not this project's image.
  await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app2', namespace_id: group.id } })
  await pushImage(h, ROOT, 'team/app2', ['latest'], 'x')
  const users: Record<string, string> = {}
  for (const [name, level] of [
    ['guest', 10],
    ['reporter', 20],
    ['developer', 30],
    ['maintainer', 40],
  ] as const) {
    const u = await h.user(name)
    users[name] = u.token
    const r = await h.req('POST', `/api/v4/projects/${project.id}/members`, {
      token: root.token,
      body: { user_id: u.user.id, access_level: level },
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  users.stranger = (await h.user('stranger')).token
  return { h, root, project, digest, users }
}

async function repos(h: ApiHarness, projectId: number, token: string | undefined, query = '') {
  return h.req('GET', `/api/v4/projects/${projectId}/registry/repositories${query}`, { token })
}

test('lists the project’s repositories with tags and counts, not look-alike paths', async (t) => {
  const { h, root, project } = await setup(t)
  const res = await repos(h, project.id, root.token, '?tags=true')
  assert.equal(res.statusCode, 200, res.body)
  const list = res.json() as Array<Record<string, unknown>>
  assert.deepEqual(
    list.map((r) => r.path),
    ['team/app', 'team/app/api'],
  )
  const [main, api] = list as Array<{
    id: number
    name: string
    path: string
    project_id: number
    location: string
    created_at: string
    tags_count: number
    tags: Array<{ name: string; path: string; location: string }>
  }>
  assert.equal(main!.name, '')
  assert.equal(api!.name, 'api')
  assert.equal(main!.project_id, project.id)
  assert.equal(main!.location, 'wharf.test:5000/team/app')
  assert.equal(main!.tags_count, 3)
  assert.deepEqual(
    main!.tags.map((x) => x.name),
    ['latest', 'v1', 'v1.0'],
  )
  assert.deepEqual(main!.tags[0], { name: 'latest', path: 'team/app:latest', location: 'wharf.test:5000/team/app:latest' })
  assert.equal(res.headers['x-total'], '2')
  // Without tags=true, no tags array.
  const plain = (await repos(h, project.id, root.token)).json() as Array<Record<string, unknown>>
  assert.equal(plain[0]!.tags, undefined)
  // By URL-encoded path too.
  assert.equal((await h.req('GET', '/api/v4/projects/team%2Fapp/registry/repositories', { token: root.token })).statusCode, 200)
})

test('tags are paginated and a tag shows digest, revision and size', async (t) => {
  const { h, root, project, digest } = await setup(t)
  const [main] = (await repos(h, project.id, root.token)).json() as Array<{ id: number }>
  const page1 = await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags?per_page=2`, {
    token: root.token,
  })
  assert.equal(page1.statusCode, 200)
  assert.deepEqual(
    (page1.json() as Array<{ name: string }>).map((x) => x.name),
    ['latest', 'v1'],
  )
  assert.equal(page1.headers['x-total'], '3')
  assert.equal(page1.headers['x-next-page'], '2')
  assert.match(String(page1.headers.link), /rel="next"/)
  const page2 = await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags?per_page=2&page=2`, {
    token: root.token,
  })
  assert.deepEqual(
    (page2.json() as Array<{ name: string }>).map((x) => x.name),
    ['v1.0'],
  )
  assert.equal(page2.headers['x-next-page'], '')

  const tag = await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags/v1.0`, { token: root.token })
  assert.equal(tag.statusCode, 200, tag.body)
  const body = tag.json() as Record<string, unknown>
  assert.equal(body.name, 'v1.0')
  assert.equal(body.path, 'team/app:v1.0')
  assert.equal(body.location, 'wharf.test:5000/team/app:v1.0')
  assert.equal(body.digest, digest)
  assert.match(String(body.revision), /^[0-9a-f]{64}$/)
  assert.equal(body.short_revision, String(body.revision).slice(0, 9))
  assert.equal(typeof body.total_size, 'number')
  assert.ok((body.total_size as number) > 0)
  assert.equal(typeof body.created_at, 'string')
  assertProblem(
    await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags/nope`, { token: root.token }),
    404,
  )
})

test('deleting a tag deletes exactly that tag, never siblings sharing the digest', async (t) => {
  const { h, root, project, digest } = await setup(t)
  const [main] = (await repos(h, project.id, root.token)).json() as Array<{ id: number }>
  const base = `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags`
  const del = await h.req('DELETE', `${base}/v1`, { token: root.token })
  assert.equal(del.statusCode, 200, del.body)
  const left = (await h.req('GET', base, { token: root.token })).json() as Array<{ name: string }>
  assert.deepEqual(
    left.map((x) => x.name),
    ['latest', 'v1.0'],
  )
  // The siblings still resolve to the same manifest over /v2.
  for (const tag of ['latest', 'v1.0']) {
    const d = (await h.req('GET', `${base}/${tag}`, { token: root.token })).json() as { digest: string }
    assert.equal(d.digest, digest)
  }
  assertProblem(await h.req('DELETE', `${base}/v1`, { token: root.token }), 404)
})

test('deleting a repository removes its tags and manifests, and leaves the others', async (t) => {
  const { h, root, project } = await setup(t)
  const [main, api] = (await repos(h, project.id, root.token)).json() as Array<{ id: number }>
  const res = await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${api!.id}`, { token: root.token })
  assert.equal(res.statusCode, 202, res.body)
  const after = (await repos(h, project.id, root.token)).json() as Array<{ id: number }>
  assert.deepEqual(
    after.map((r) => r.id),
    [main!.id],
  )
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${api!.id}/tags`, { token: root.token }), 404)
})

test('a repository of another project is not reachable through this project', async (t) => {
  const { h, root, project } = await setup(t)
  const other = (await h.req('GET', '/api/v4/projects/team%2Fapp2/registry/repositories', { token: root.token })).json() as Array<{
    id: number
  }>
  assertProblem(await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${other[0]!.id}/tags`, { token: root.token }), 404)
  assertProblem(await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${other[0]!.id}`, { token: root.token }), 404)
})

test('authorization: reporter+ reads, maintainer+ deletes, strangers and anonymous see nothing', async (t) => {
  const { h, project, users } = await setup(t)
  assertProblem(await repos(h, project.id, undefined), 404) // private project: hidden from anonymous
  assertProblem(await repos(h, project.id, users.stranger), 404)
  assertProblem(await repos(h, project.id, users.guest), 403)
  for (const role of ['reporter', 'developer', 'maintainer']) assert.equal((await repos(h, project.id, users[role])).statusCode, 200, role)
  const [main] = (await repos(h, project.id, users.reporter)).json() as Array<{ id: number }>
  const tagUrl = `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags/latest`
  for (const role of ['reporter', 'developer']) {
    assertProblem(await h.req('DELETE', tagUrl, { token: users[role] }), 403)
    assertProblem(await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}`, { token: users[role] }), 403)
  }
  assert.equal((await h.req('DELETE', tagUrl, { token: users.maintainer })).statusCode, 200)
})

test('a public project’s images are listed for anonymous callers, but not deletable', async (t) => {
  const { h, root, project } = await setup(t)
  // Group and project must both be public (a project cannot be more visible than its group).
  assert.equal((await h.req('PUT', '/api/v4/groups/team', { token: root.token, body: { visibility: 'public' } })).statusCode, 200)
  assert.equal(
    (await h.req('PUT', `/api/v4/projects/${project.id}`, { token: root.token, body: { visibility: 'public' } })).statusCode,
    200,
  )
  const res = await repos(h, project.id, undefined)
  assert.equal(res.statusCode, 200)
  const [main] = res.json() as Array<{ id: number }>
  assert.equal((await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags/latest`)).statusCode, 200)
  assertProblem(await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags/latest`), 401)
})

test('deleting a project deletes its images, so a new project at that path does not inherit them', async (t) => {
  const { h, root, project } = await setup(t)
  assert.equal((await h.req('DELETE', `/api/v4/projects/${project.id}`, { token: root.token })).statusCode, 202)
  const again = await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app', namespace_id: 'team' } })
  assert.equal(again.statusCode, 201, again.body)
  const list = (await repos(h, (again.json() as { id: number }).id, root.token)).json() as unknown[]
  assert.deepEqual(list, [])
})

test('size=true gives each repository the size of its distinct blobs; an index tag shows its platforms', async (t) => {
  const { h, root, project } = await setup(t)
  const a = await pushImage(h, ROOT, 'team/app/multi', ['amd'], 'a')
  const b = await pushImage(h, ROOT, 'team/app/multi', ['arm'], 'b')
  const basic = `Basic ${Buffer.from(`${ROOT.username}:${ROOT.password}`).toString('base64')}`
  const tok = await h.app.inject({
    method: 'GET',
    url: '/jwt/auth?service=container_registry&scope=repository:team/app/multi:pull,push',
    headers: { authorization: basic },
  })
  const bearer = { authorization: `Bearer ${(tok.json() as { token: string }).token}` }
  const child = async (tag: string) =>
    (await h.app.inject({ method: 'GET', url: `/v2/team/app/multi/manifests/${tag}`, headers: bearer })).rawPayload.length
  const mt = 'application/vnd.oci.image.manifest.v1+json'
  const index = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: [
        { mediaType: mt, digest: a, size: await child('amd'), platform: { os: 'linux', architecture: 'amd64' } },
        { mediaType: mt, digest: b, size: await child('arm'), platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
      ],
    }),
  )
  const put = await h.app.inject({
    method: 'PUT',
    url: '/v2/team/app/multi/manifests/all',
    headers: { ...bearer, 'content-type': 'application/vnd.oci.image.index.v1+json' },
    payload: index,
  })
  assert.equal(put.statusCode, 201, put.body)

  const list = (await repos(h, project.id, root.token, '?size=true')).json() as Array<{ id: number; path: string; size: number }>
  assert.deepEqual(
    list.map((r) => r.path),
    ['team/app', 'team/app/api', 'team/app/multi'],
  )
  const detail = async (repo: number, tag: string) =>
    (await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${repo}/tags/${tag}`, { token: root.token })).json() as {
      total_size: number
      media_type: string
      platforms?: string[]
    }
  // team/app: three tags on one manifest, its config and layer counted once.
  const main = list[0]!
  const latest = await detail(main.id, 'latest')
  const mainManifest = (
    await h.app.inject({
      method: 'GET',
      url: '/v2/team/app/manifests/latest',
      headers: {
        authorization: `Bearer ${(await h.app.inject({ method: 'GET', url: '/jwt/auth?service=container_registry&scope=repository:team/app:pull', headers: { authorization: basic } })).json().token}`,
      },
    })
  ).rawPayload.length
  assert.equal(main.size, latest.total_size - mainManifest)
  assert.equal(latest.platforms, undefined)
  assert.equal(latest.media_type, mt)
  // team/app/multi: the index and the children's own tags share blobs; each counted once.
  const multi = list[2]!
  const all = await detail(multi.id, 'all')
  assert.equal(all.media_type, 'application/vnd.oci.image.index.v1+json')
  assert.deepEqual(all.platforms, ['linux/amd64', 'linux/arm64/v8'])
  assert.equal(multi.size, all.total_size - index.length)
  assert.ok(multi.size > 0)
  // Without size=true, no size.
  const plain = (await repos(h, project.id, root.token)).json() as Array<Record<string, unknown>>
  assert.equal(plain[0]!.size, undefined)
})

test('bulk tag delete (GitLab): name_regex_delete, name_regex_keep and keep_n in one call, query or form body; latest stays', async (t) => {
  const { h, root, project, users } = await setup(t)
  // More tags, on distinct manifests pushed in order (keep_n keeps the newest manifests).
  for (const [i, tag] of ['dev-1', 'dev-2', 'dev-3', 'dev-4', 'release-1'].entries())
    await pushImage(h, ROOT, 'team/app', [tag], `seed-${i}`)
  const [main] = (await repos(h, project.id, root.token)).json() as Array<{ id: number }>
  const base = `/api/v4/projects/${project.id}/registry/repositories/${main!.id}/tags`
  const names = async () =>
    ((await h.req('GET', `${base}?per_page=100`, { token: root.token })).json() as Array<{ name: string }>).map((x) => x.name)

  const r = await h.req('DELETE', `${base}?name_regex_delete=dev-.*&name_regex_keep=dev-1&keep_n=1`, { token: root.token })
  assert.equal(r.statusCode, 202, r.body)
  // dev-4 is the newest candidate (kept by keep_n), dev-1 matches the keep pattern.
  assert.deepEqual(await names(), ['dev-1', 'dev-4', 'latest', 'release-1', 'v1', 'v1.0'])

  // curl's form: the attributes in the body; .* spares latest; older_than spares what is newer.
  const young = await h.req('DELETE', base, { token: root.token, form: { name_regex_delete: '.*', older_than: '1d' } })
  assert.equal(young.statusCode, 202, young.body)
  assert.equal((await names()).length, 6)
  assert.equal((await h.req('DELETE', base, { token: root.token, form: { name_regex: 'v1.*' } })).statusCode, 202)
  assert.deepEqual(await names(), ['dev-1', 'dev-4', 'latest', 'release-1'])

  // Refusals: strict attributes, a missing pattern, a non-RE2 pattern, a bad age; developers may not.
  assertProblem(await h.req('DELETE', `${base}?name_regex_delete=.*&keep=1`, { token: root.token }), 400)
  assertProblem(await h.req('DELETE', base, { token: root.token, body: { name_regex_delete: '.*', id: 1 } }), 400)
  assert.match(String(assertProblem(await h.req('DELETE', base, { token: root.token }), 400).message), /name_regex_delete is missing/)
  assert.match(
    String(
      assertProblem(await h.req('DELETE', `${base}?name_regex_delete=${encodeURIComponent('(a)\\1')}`, { token: root.token }), 400).message,
    ),
    /name_regex_delete is not a valid regular expression/,
  )
  assert.match(
    String(assertProblem(await h.req('DELETE', `${base}?name_regex_delete=.*&older_than=soon`, { token: root.token }), 400).message),
    /older_than/,
  )
  assertProblem(await h.req('DELETE', `${base}?name_regex_delete=.*`, { token: users.developer }), 403)
  assert.deepEqual(await names(), ['dev-1', 'dev-4', 'latest', 'release-1'])
})

test('cleanup policy (GitLab container_expiration_policy_attributes): set on PUT /projects/:id, shown on GET, run on its cadence', async (t) => {
  const { h, root, project, users } = await setup(t)
  for (const [i, tag] of ['feature-a', 'feature-b', 'feature-c', 'stable'].entries()) await pushImage(h, ROOT, 'team/app', [tag], `p-${i}`)
  await pushImage(h, ROOT, 'team/app/api', ['feature-x'], 'api-x')
  await pushImage(h, ROOT, 'team/app/api', ['feature-y'], 'api-y')
  const url = `/api/v4/projects/${project.id}`
  const before = (await h.req('GET', url, { token: root.token })).json() as { container_expiration_policy: Record<string, unknown> }
  assert.deepEqual(before.container_expiration_policy, {
    enabled: false,
    cadence: '1d',
    keep_n: 10,
    older_than: '90d',
    name_regex: '.*',
    name_regex_keep: null,
    next_run_at: null,
    remove_deleted_branch_tags: false,
    keep_protected_branch_latest: false,
  })

  const put = await h.req('PUT', url, {
    token: root.token,
    body: {
      container_expiration_policy_attributes: {
        enabled: true,
        cadence: '7d',
        keep_n: 1,
        older_than: null,
        name_regex: 'feature-.*',
        name_regex_keep: 'feature-a',
      },
    },
  })
  assert.equal(put.statusCode, 200, put.body)
  const policy = (put.json() as { container_expiration_policy: { next_run_at: string } }).container_expiration_policy
  assert.equal(policy.next_run_at.slice(0, 10), new Date(Date.now() + 7 * 86_400_000).toISOString().slice(0, 10))
  assert.deepEqual((await h.req('GET', url, { token: root.token })).json().container_expiration_policy, policy)

  // GitLab's values only, strict attributes, maintainers only; nothing changes on a refusal.
  assertProblem(await h.req('PUT', url, { token: root.token, body: { container_expiration_policy_attributes: { cadence: '2d' } } }), 400)
  assertProblem(await h.req('PUT', url, { token: root.token, body: { container_expiration_policy_attributes: { keep_n: 3 } } }), 400)
  assertProblem(
    await h.req('PUT', url, { token: root.token, body: { container_expiration_policy_attributes: { name_regex: '(x)\\1' } } }),
    400,
  )
  assertProblem(
    await h.req('PUT', url, { token: root.token, body: { container_expiration_policy_attributes: { next_run_at: '2020-01-01' } } }),
    400,
  )
  assertProblem(
    await h.req('PUT', url, { token: users.developer, body: { container_expiration_policy_attributes: { enabled: false } } }),
    403,
  )
  assert.deepEqual((await h.req('GET', url, { token: root.token })).json().container_expiration_policy, policy)

  const policies = h.services.registry.manifests.policies
  const tags = async (repo: string) => {
    const list = (
      await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories?tags=true`, { token: root.token })
    ).json() as Array<{ path: string; tags: Array<{ name: string }> }>
    return list.find((r) => r.path === repo)!.tags.map((x) => x.name)
  }
  assert.deepEqual(await policies.runDue(), { policies: 0, tags: 0, protectedTags: 0 }, 'not due yet')
  const due = Date.now() + 8 * 86_400_000
  const ran = await policies.runDue(due)
  assert.equal(ran.policies, 1)
  // feature-a kept by name_regex_keep, the newest other feature tag by keep_n, the rest untouched; in every image of the project.
  assert.deepEqual(await tags('team/app'), ['feature-a', 'feature-c', 'latest', 'stable', 'v1', 'v1.0'])
  assert.deepEqual(await tags('team/app/api'), ['edge', 'feature-y'])
  assert.equal(ran.tags, 2)
  // Then the next run is one cadence later.
  assert.deepEqual(await policies.runDue(due), { policies: 0, tags: 0, protectedTags: 0 })
  assert.ok((await policies.get(project.id)).next_run_at! > new Date(due + 6 * 86_400_000).toISOString())
})
