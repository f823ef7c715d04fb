// GitLab's group-wide image list (GET /groups/:id/registry/repositories) and one image by id
// (GET /registry/repositories/:id, `tags` and `tags_count` flags), over images pushed to /v2.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem, pushImage, ROOT_PASSWORD } from './api-harness.ts'

const ROOT = { username: 'root', password: ROOT_PASSWORD }
type Repo = { id: number; name: string; path: string; project_id: number; tags_count?: number; tags?: Array<{ name: string }> }

test('group image lists and images by id, with GitLab’s permissions', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const post = async (url: string, body: Record<string, unknown>) => {
    const r = await h.req('POST', url, { token: root.token, body })
    assert.equal(r.statusCode, 201, r.body)
    return r.json() as { id: number }
  }
  const group = await post('/api/v4/groups', { path: 'team', name: 'team', visibility: 'private' })
  const sub = await post('/api/v4/groups', { path: 'sub', name: 'sub', parent_id: group.id, visibility: 'private' })
  const app = await post('/api/v4/projects', { path: 'app', namespace_id: group.id })
  const lib = await post('/api/v4/projects', { path: 'lib', namespace_id: sub.id })
  const other = await post('/api/v4/groups', { path: 'other', name: 'other', visibility: 'private' })
  await post('/api/v4/projects', { path: 'x', namespace_id: other.id })
  await pushImage(h, ROOT, 'team/app', ['latest', 'v1'])
  await pushImage(h, ROOT, 'team/app/api', ['edge'], 'api')
  await pushImage(h, ROOT, 'team/sub/lib', ['1', '2', '3'], 'lib')
  await pushImage(h, ROOT, 'other/x', ['latest'], 'x')
  const reporter = await h.user('rep')
  await post(`/api/v4/groups/${group.id}/members`, { user_id: reporter.user.id, access_level: 20 })
  const guest = await h.user('guest')
  await post(`/api/v4/groups/${group.id}/members`, { user_id: guest.user.id, access_level: 10 })
  const stranger = await h.user('stranger')

  const list = await h.req('GET', `/api/v4/groups/${group.id}/registry/repositories?per_page=2`, { token: reporter.token })
  assert.equal(list.statusCode, 200, list.body)
  assert.equal(list.headers['x-total'], '3')
  const page1 = list.json() as Repo[]
  const page2 = (
    await h.req('GET', `/api/v4/groups/${group.id}/registry/repositories?per_page=2&page=2`, { token: reporter.token })
  ).json() as Repo[]
  assert.deepEqual(
    [...page1, ...page2].map((r) => [r.path, r.name, r.project_id]),
    [
      ['team/app', '', app.id],
      ['team/app/api', 'api', app.id],
      ['team/sub/lib', '', lib.id],
    ],
  )
  const withTags = (await h.req('GET', `/api/v4/groups/team/registry/repositories?tags=true`, { token: root.token })).json() as Repo[]
  assert.deepEqual(
    withTags.map((r) => r.tags?.map((x) => x.name)),
    [['latest', 'v1'], ['edge'], ['1', '2', '3']],
  )
  assertProblem(await h.req('GET', `/api/v4/groups/${group.id}/registry/repositories`, { token: guest.token }), 403)
  assertProblem(await h.req('GET', `/api/v4/groups/${group.id}/registry/repositories`, { token: stranger.token }), 404)

  const libRepo = [...page1, ...page2].find((r) => r.path === 'team/sub/lib')!
  const one = await h.req('GET', `/api/v4/registry/repositories/${libRepo.id}`, { token: reporter.token })
  assert.equal(one.statusCode, 200, one.body)
  const plain = one.json() as Repo
  assert.deepEqual([plain.path, plain.project_id, plain.tags_count, plain.tags], ['team/sub/lib', lib.id, undefined, undefined])
  const full = (
    await h.req('GET', `/api/v4/registry/repositories/${libRepo.id}?tags=true&tags_count=true`, { token: reporter.token })
  ).json() as Repo
  assert.deepEqual([full.tags_count, full.tags?.map((x) => x.name)], [3, ['1', '2', '3']])
  // Hidden the same way as the project: not found for strangers, anonymous callers and unknown ids.
  assertProblem(await h.req('GET', `/api/v4/registry/repositories/${libRepo.id}`, { token: stranger.token }), 404)
  assertProblem(await h.req('GET', `/api/v4/registry/repositories/${libRepo.id}`), 404)
  assertProblem(await h.req('GET', '/api/v4/registry/repositories/999999', { token: root.token }), 404)
  assertProblem(await h.req('GET', '/api/v4/registry/repositories/abc', { token: root.token }), 400)
})
