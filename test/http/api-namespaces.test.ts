// GET /namespaces: the caller's user namespace and the groups they belong to (with subgroups), search, pages.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem } from './api-harness.ts'

test('GET /namespaces lists your namespace and your groups, as GitLab', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const post = async (url: string, body: Record<string, unknown>) => {
    const r = await h.req('POST', url, { token: root.token, body })
    assert.equal(r.statusCode, 201, r.body)
    return r.json() as { id: number }
  }
  const team = await post('/api/v4/groups', { path: 'team', name: 'Team', visibility: 'private' })
  await post('/api/v4/groups', { path: 'sub', name: 'Sub', parent_id: team.id, visibility: 'private' })
  await post('/api/v4/groups', { path: 'public-other', name: 'Other', visibility: 'public' })
  const alice = await h.user('alice')
  await post(`/api/v4/groups/${team.id}/members`, { user_id: alice.user.id, access_level: 30 })

  const get = async (token: string, query = '') => {
    const r = await h.req('GET', `/api/v4/namespaces${query}`, { token })
    assert.equal(r.statusCode, 200, r.body)
    return {
      total: r.headers['x-total'],
      list: (r.json() as Array<{ full_path: string; kind: string; web_url: string }>).map((n) => [n.full_path, n.kind]),
    }
  }
  assert.deepEqual(await get(alice.token), {
    total: '3',
    list: [
      ['alice', 'user'],
      ['team', 'group'],
      ['team/sub', 'group'],
    ],
  })
  assert.deepEqual(await get(alice.token, '?search=SUB'), { total: '1', list: [['team/sub', 'group']] })
  assert.deepEqual(await get(alice.token, '?per_page=1&page=3'), { total: '3', list: [['team/sub', 'group']] })
  const shape = (await h.req('GET', '/api/v4/namespaces?search=team/sub', { token: alice.token })).json() as Array<Record<string, unknown>>
  assert.deepEqual(Object.keys(shape[0]!).sort(), ['avatar_url', 'full_path', 'id', 'kind', 'name', 'parent_id', 'path', 'web_url'])
  assert.equal(shape[0]!.parent_id, team.id)
  // Administrators see every namespace; anonymous callers must sign in.
  assert.ok((await get(root.token)).list.some(([p]) => p === 'public-other'))
  assert.ok(!(await get(alice.token)).list.some(([p]) => p === 'public-other'))
  assertProblem(await h.req('GET', '/api/v4/namespaces'), 401)
})
