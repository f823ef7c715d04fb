// The registry lifecycle beyond tag rules: GitLab's repository protection rules
// (/projects/:id/registry/protection/repository/rules) enforced on /v2 uploads, manifest pushes and
// deletes, the API's deletes, bulk delete and cleanup; per-project hard and soft quotas; the
// bulk-delete preview.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
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
  ).json() as { id: number }
  const users: Record<string, string> = { root: root.token }
  for (const [name, level] of [
    ['developer', 30],
    ['maintainer', 40],
    ['owner', 50],
  ] as const) {
    const u = await h.user(name)
    users[name] = u.token
    const r = await h.req('POST', `/api/v4/projects/${project.id}/members`, {
      token: root.token,
      body: { user_id: u.user.id, access_level: level },
    })
    assert.equal(r.statusCode, 201, r.body)
  }
  return { h, project, users }
}

function assertDenied(res: { statusCode: number; body: string }, message: RegExp) {
  assert.equal(res.statusCode, 403, res.body)
  const e = (JSON.parse(res.body) as { errors: Array<{ code: string; message: string }> }).errors[0]!
  assert.equal(e.code, 'DENIED')
  assert.match(e.message, message)
}

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function monolithic(h: ApiHarness, user: string, name: string, blob: Buffer) {
  return h.app.inject({
    method: 'POST',
    url: `/v2/${name}/blobs/uploads/?digest=${sha256(blob)}`,
    headers: { ...(await bearer(h, user, name, 'pull,push')), 'content-type': 'application/octet-stream' },
    payload: blob,
  })
}

const rulesUrl = (projectId: number) => `/api/v4/projects/${projectId}/registry/protection/repository/rules`

test('repository protection rules API: GitLab shapes, maintainers only, patterns under the project path', async (t) => {
  const { h, project, users } = await setup(t)
  const created = await h.req('POST', rulesUrl(project.id), {
    token: users.maintainer,
    body: {
      repository_path_pattern: 'team/app/release-*',
      minimum_access_level_for_push: 'maintainer',
      minimum_access_level_for_delete: 'owner',
    },
  })
  assert.equal(created.statusCode, 201, created.body)
  const rule = created.json() as { id: number }
  assert.deepEqual(rule, {
    id: rule.id,
    project_id: project.id,
    repository_path_pattern: 'team/app/release-*',
    minimum_access_level_for_push: 'maintainer',
    minimum_access_level_for_delete: 'owner',
  })
  const list = await h.req('GET', rulesUrl(project.id), { token: users.maintainer })
  assert.equal(list.headers['x-total'], '1')
  assert.deepEqual(list.json(), [rule])

  assertProblem(await h.req('GET', rulesUrl(project.id), { token: users.developer }), 403)
  assertProblem(
    await h.req('POST', rulesUrl(project.id), {
      token: users.developer,
      body: { repository_path_pattern: 'team/app', minimum_access_level_for_push: 'maintainer' },
    }),
    403,
  )
  // Outside the project's path, neither level, bad characters, a duplicate, no pattern.
  assert.match(
    String(
      assertProblem(
        await h.req('POST', rulesUrl(project.id), {
          token: users.maintainer,
          body: { repository_path_pattern: 'team/other', minimum_access_level_for_push: 'maintainer' },
        }),
        400,
      ).message,
    ),
    /must start with the project's path 'team\/app'/,
  )
  assertProblem(await h.req('POST', rulesUrl(project.id), { token: users.maintainer, body: { repository_path_pattern: 'team/app' } }), 400)
  assertProblem(
    await h.req('POST', rulesUrl(project.id), {
      token: users.maintainer,
      body: { repository_path_pattern: 'team/app/(a)', minimum_access_level_for_push: 'maintainer' },
    }),
    400,
  )
  assertProblem(
    await h.req('POST', rulesUrl(project.id), {
      token: users.maintainer,
      body: { repository_path_pattern: 'team/app/release-*', minimum_access_level_for_push: 'owner' },
    }),
    409,
  )
  assertProblem(await h.req('POST', rulesUrl(project.id), { token: users.maintainer, body: {} }), 400)
  assertProblem(
    await h.req('POST', rulesUrl(project.id), {
      token: users.maintainer,
      body: { repository_path_pattern: 'team/app', minimum_access_level_for_push: 'developer' },
    }),
    400,
  )

  const patched = await h.req('PATCH', `${rulesUrl(project.id)}/${rule.id}`, {
    token: users.maintainer,
    body: { minimum_access_level_for_delete: null },
  })
  assert.equal(patched.statusCode, 200, patched.body)
  assert.deepEqual(
    [
      (patched.json() as { minimum_access_level_for_push: string }).minimum_access_level_for_push,
      (patched.json() as { minimum_access_level_for_delete: string | null }).minimum_access_level_for_delete,
    ],
    ['maintainer', null],
  )
  // Both levels null is refused on PATCH too.
  assertProblem(
    await h.req('PATCH', `${rulesUrl(project.id)}/${rule.id}`, { token: users.maintainer, body: { minimum_access_level_for_push: null } }),
    400,
  )
  assertProblem(await h.req('PATCH', `${rulesUrl(project.id)}/999`, { token: users.maintainer, body: {} }), 404)
  assert.equal((await h.req('DELETE', `${rulesUrl(project.id)}/${rule.id}`, { token: users.maintainer })).statusCode, 204)
  assertProblem(await h.req('DELETE', `${rulesUrl(project.id)}/${rule.id}`, { token: users.maintainer }), 404)
})

test('/v2 and the API: a protected repository needs the rule’s level to push (before any byte) and to delete, cleanup leaves it alone', async (t) => {
  const { h, project, users } = await setup(t)
  for (const [name, tag] of [
    ['team/app', 'a'],
    ['team/app/prod', 'a'],
    ['team/app/prod', 'b'],
    ['team/app/dev', 'a'],
  ] as const)
    assert.equal((await push(h, 'root', name, tag, `${name}-${tag}`)).statusCode, 201)
  const add = async (body: Record<string, unknown>) => {
    const r = await h.req('POST', rulesUrl(project.id), { token: users.maintainer, body })
    assert.equal(r.statusCode, 201, r.body)
    return (r.json() as { id: number }).id
  }
  const prod = await add({
    repository_path_pattern: 'team/app/prod*',
    minimum_access_level_for_push: 'maintainer',
    minimum_access_level_for_delete: 'owner',
  })

  // A developer's upload is refused at the POST (nothing stored), the manifest push too.
  const blobsBefore = (await h.db.selectFrom('blobs').select('digest').execute()).length
  assertDenied(
    await monolithic(h, 'developer', 'team/app/prod', Buffer.from('new layer')),
    new RegExp(
      `repository 'team/app/prod' is protected \\(rule ${prod}, pattern 'team/app/prod\\*'\\): pushing to it needs the maintainer role`,
    ),
  )
  assert.equal((await h.db.selectFrom('blobs').select('digest').execute()).length, blobsBefore)
  const session = await h.app.inject({
    method: 'POST',
    url: '/v2/team/app/prod/blobs/uploads/',
    headers: await bearer(h, 'developer', 'team/app/prod', 'pull,push'),
  })
  assertDenied(session, /pushing to it needs the maintainer role/)
  assert.equal((await push(h, 'maintainer', 'team/app/prod', 'c', 'c')).statusCode, 201)
  // Its blobs are there now; the developer's manifest push is refused all the same.
  const c = await h.app.inject({
    method: 'GET',
    url: '/v2/team/app/prod/manifests/c',
    headers: await bearer(h, 'root', 'team/app/prod', 'pull'),
  })
  const manifestPut = await h.app.inject({
    method: 'PUT',
    url: '/v2/team/app/prod/manifests/d',
    headers: { ...(await bearer(h, 'developer', 'team/app/prod', 'pull,push')), 'content-type': String(c.headers['content-type']) },
    payload: c.rawPayload,
  })
  assertDenied(manifestPut, /pushing to it needs the maintainer role/)
  // Other repositories of the project are not covered by the pattern.
  assert.equal((await push(h, 'developer', 'team/app/dev', 'b', 'dev-b')).statusCode, 201)

  // Deletes: /v2 by tag, a blob, the API's single, bulk and whole-repository deletes need the owner.
  const v2 = async (user: string, path: string) =>
    h.app.inject({ method: 'DELETE', url: `/v2/team/app/prod/${path}`, headers: await bearer(h, user, 'team/app/prod', 'delete') })
  assertDenied(await v2('maintainer', 'manifests/a'), /deleting from it needs the owner role/)
  assertDenied(await v2('maintainer', `blobs/${sha256(Buffer.from('layer-team/app/prod-a'))}`), /deleting from it needs the owner role/)
  const repos = (await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories`, { token: users.root })).json() as Array<{
    id: number
    path: string
  }>
  const prodRepo = repos.find((r) => r.path === 'team/app/prod')!
  const tagsUrl = `/api/v4/projects/${project.id}/registry/repositories/${prodRepo.id}/tags`
  const tags = async () =>
    ((await h.req('GET', tagsUrl, { token: users.root })).json() as Array<{ name: string }>).map((x) => x.name).sort()
  assert.match(String(assertProblem(await h.req('DELETE', `${tagsUrl}/a`, { token: users.maintainer }), 403).message), /rule \d+/)
  assertProblem(await h.req('DELETE', `${tagsUrl}?name_regex_delete=.*`, { token: users.maintainer }), 403)
  assertProblem(
    await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${prodRepo.id}`, { token: users.maintainer }),
    403,
  )
  // The preview says the same, and deletes nothing.
  const preview = await h.req('POST', `${tagsUrl}/preview`, { token: users.maintainer, body: { name_regex_delete: '.*' } })
  assert.equal(preview.statusCode, 200, preview.body)
  assert.deepEqual((preview.json() as { delete: unknown[] }).delete, [])
  assert.match((preview.json() as { keep: Array<{ reason: string }> }).keep[0]!.reason, /deleting from it needs the owner role/)
  assert.deepEqual(await tags(), ['a', 'b', 'c'])

  // A cleanup policy acts with no level: it deletes nothing in the protected repository, and goes on in the others.
  const set = await h.req('PUT', `/api/v4/projects/${project.id}`, {
    token: users.root,
    body: { container_expiration_policy_attributes: { enabled: true, cadence: '1d', keep_n: null, name_regex: '.*', older_than: null } },
  })
  assert.equal(set.statusCode, 200, set.body)
  const policyPreview = (
    await h.req('POST', `/api/v4/projects/${project.id}/registry/cleanup_policy/preview`, { token: users.maintainer, body: {} })
  ).json() as { repositories: Array<{ path: string; delete: Array<{ name: string }>; keep: Array<{ name: string; reason: string }> }> }
  const byPath = Object.fromEntries(policyPreview.repositories.map((r) => [r.path, r]))
  assert.deepEqual(byPath['team/app/prod']!.delete, [])
  assert.deepEqual(
    byPath['team/app/prod']!.keep.map((k) => k.name),
    ['a', 'b', 'c'],
  )
  assert.match(byPath['team/app/prod']!.keep[0]!.reason, /repository protection rule \d+ \('team\/app\/prod\*'\)/)
  assert.deepEqual(
    byPath['team/app/dev']!.delete.map((d) => d.name),
    ['a', 'b'],
  )
  const ran = await h.services.registry.manifests.policies.runDue(Date.now() + 2 * 86_400_000)
  assert.deepEqual(ran, { policies: 1, tags: 3, protectedTags: 3 })
  assert.deepEqual(await tags(), ['a', 'b', 'c'])

  // The owner may.
  assert.equal((await v2('owner', 'manifests/a')).statusCode, 202)
  assert.equal((await h.req('DELETE', `${tagsUrl}/b`, { token: users.owner })).statusCode, 200)
  assert.equal(
    (await h.req('DELETE', `/api/v4/projects/${project.id}/registry/repositories/${prodRepo.id}`, { token: users.owner })).statusCode,
    202,
  )
})

test('project quotas: administrators set them; over the hard limit uploads get DENIED before the blob is committed; over the soft one a warning', async (t) => {
  const { h, project, users } = await setup(t)
  const quotaUrl = `/api/v4/projects/${project.id}/registry/quota`
  assert.deepEqual((await h.req('GET', quotaUrl, { token: users.maintainer })).json(), {
    used_bytes: 0,
    hard_limit_bytes: null,
    soft_limit_bytes: null,
    over_soft_limit: false,
    over_hard_limit: false,
  })
  assertProblem(await h.req('PUT', quotaUrl, { token: users.owner, body: { hard_limit_bytes: 10 } }), 403)
  assertProblem(await h.req('GET', quotaUrl, { token: users.developer }), 403)
  assertProblem(await h.req('PUT', quotaUrl, { token: users.root, body: { hard_limit_bytes: 10, soft_limit_bytes: 20 } }), 400)
  assertProblem(await h.req('PUT', quotaUrl, { token: users.root, body: { hard_limit_bytes: -1 } }), 400)

  const set = await h.req('PUT', quotaUrl, { token: users.root, body: { hard_limit_bytes: 1000, soft_limit_bytes: 100 } })
  assert.equal(set.statusCode, 200, set.body)

  // Under the soft limit: no warning. The first image takes it over (a layer of 150 bytes).
  const layer = Buffer.alloc(150, 'a')
  assert.equal((await monolithic(h, 'developer', 'team/app', layer)).statusCode, 201)
  const small = Buffer.from('{"architecture":"amd64","os":"linux"}')
  assert.equal((await monolithic(h, 'developer', 'team/app', small)).statusCode, 201)
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(small), size: small.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  })
  const put = await h.app.inject({
    method: 'PUT',
    url: '/v2/team/app/manifests/v1',
    headers: { ...(await bearer(h, 'developer', 'team/app', 'pull,push')), 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    payload: manifest,
  })
  assert.equal(put.statusCode, 201, put.body)
  const used = 150 + small.length
  assert.equal(put.headers.warning, `299 - "project 'team/app' uses ${used} bytes of registry storage, over its soft quota of 100 bytes"`)
  const status = (await h.req('GET', quotaUrl, { token: users.maintainer })).json() as Record<string, unknown>
  assert.deepEqual(status, {
    used_bytes: used,
    hard_limit_bytes: 1000,
    soft_limit_bytes: 100,
    over_soft_limit: true,
    over_hard_limit: false,
  })
  const gauge = await h.services.registry.metrics.registry.getSingleMetricAsString('wharf_registry_projects_over_soft_quota')
  assert.match(gauge, /^wharf_registry_projects_over_soft_quota 1$/m)

  // Over the hard limit: a monolithic upload whose length would pass it is refused before it is read.
  const blobs = async () => (await h.db.selectFrom('blobs').select('digest').execute()).length
  const before = await blobs()
  const big = Buffer.alloc(1000, 'b')
  const refused = await monolithic(h, 'developer', 'team/app/api', big)
  assertDenied(
    refused,
    new RegExp(`the registry storage quota of project 'team/app' is exceeded: ${used} bytes used \\+ 1000 pushed, limit 1000 bytes`),
  )
  // A chunked upload is refused at its closing PUT, and its bytes never become a blob.
  const auth = await bearer(h, 'developer', 'team/app', 'pull,push')
  const start = await h.app.inject({ method: 'POST', url: '/v2/team/app/blobs/uploads/', headers: auth })
  assert.equal(start.statusCode, 202, start.body)
  const location = String(start.headers.location)
  const patch = await h.app.inject({
    method: 'PATCH',
    url: location,
    headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `0-${big.length - 1}` },
    payload: big,
  })
  assert.equal(patch.statusCode, 202, patch.body)
  assertDenied(
    await h.app.inject({ method: 'PUT', url: `${location}?digest=${sha256(big)}`, headers: auth }),
    /quota of project 'team\/app' is exceeded/,
  )
  assert.equal(await blobs(), before)
  assert.equal((await h.db.selectFrom('uploads').select('id').execute()).length, 0, 'the refused session is gone')
  // A blob the project already holds costs nothing: re-pushing it goes through.
  assert.equal((await monolithic(h, 'developer', 'team/app/api', layer)).statusCode, 201)

  // Raising the limit lets the push through; removing the soft limit clears the warning.
  assert.equal(
    (await h.req('PUT', quotaUrl, { token: users.root, body: { hard_limit_bytes: 5000, soft_limit_bytes: null } })).statusCode,
    200,
  )
  assert.equal((await monolithic(h, 'developer', 'team/app/api', big)).statusCode, 201)
  assert.equal((await h.req('GET', quotaUrl, { token: users.maintainer })).json().over_soft_limit, false)
})
