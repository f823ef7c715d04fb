// GitLab's wire conventions on every /api/v4 plugin (issue 12): JSON answered as exactly
// `application/json` (python-gitlab decodes nothing else), a JSON content type with an empty body
// taken as no body (python-gitlab's DELETEs), GitLab's boolean spellings in query strings and bodies,
// multipart/form-data bodies read like forms, and pipeline triggers with the token in the query
// string or GitLab's webhook URL.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, assertProblem, type ApiHarness } from './api-harness.ts'
import { world } from './api-world.ts'

/** A multipart/form-data body as `curl -F` sends it; a `file` entry is a file part. */
function multipart(fields: Array<[string, string] | [string, string, 'file']>): { payload: string; headers: Record<string, string> } {
  const boundary = '------------------------wharf0123456789'
  const parts = fields.map(([name, value, file]) =>
    file
      ? `--${boundary}\r\nContent-Disposition: form-data; name="${name}"; filename="x.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${value}\r\n`
      : `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`,
  )
  return { payload: `${parts.join('')}--${boundary}--\r\n`, headers: { 'content-type': `multipart/form-data; boundary=${boundary}` } }
}

async function pipelineCount(h: ApiHarness): Promise<number> {
  return (
    await h.db
      .selectFrom('pipelines')
      .select((e) => e.fn.countAll<number>().as('n'))
      .executeTakeFirstOrThrow()
  ).n
}

test('JSON is answered as exactly application/json on every /api/v4 plugin, errors too (problem+json when asked for)', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const p = w.project.id
  for (const url of [
    '/api/v4/user',
    `/api/v4/projects/${p}`,
    `/api/v4/projects/${p}/pipelines`,
    `/api/v4/projects/${p}/repository/branches`,
    '/api/v4/runners/all',
    `/api/v4/projects/${p}/registry/repositories`,
  ]) {
    const res = await h.req('GET', url, { token: w.root.token })
    assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
    assert.equal(res.headers['content-type'], 'application/json', url)
    res.json()
  }
  assertProblem(await h.req('GET', `/api/v4/projects/${p}/repository/branches/nope`, { token: w.root.token }), 404)
  assertProblem(await h.req('GET', '/api/v4/projects/999', { token: w.root.token }), 404)
  // GitLab's clients key on the type: gitbeaker shows an error's `message` only from application/json.
  const missing = await h.req('GET', '/api/v4/projects/999', { token: w.root.token, headers: { accept: 'application/json' } })
  assert.equal(missing.headers['content-type'], 'application/json')
  const asked = await h.req('GET', '/api/v4/projects/999', {
    token: w.root.token,
    headers: { accept: 'application/problem+json, application/json;q=0.5' },
  })
  assert.equal(asked.statusCode, 404)
  assert.match(String(asked.headers['content-type']), /^application\/problem\+json/)
  assert.deepEqual(asked.json(), missing.json())
})

test('a JSON content type with an empty body is no body, on any method; malformed JSON is still a 400', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const p = w.project.id
  const json = { 'content-type': 'application/json' }
  const created = (
    await h.req('POST', `/api/v4/projects/${p}/triggers`, { token: w.root.token, body: { description: 'gone soon' } })
  ).json() as { id: number }
  const del = await h.req('DELETE', `/api/v4/projects/${p}/triggers/${created.id}`, { token: w.root.token, headers: json })
  assert.equal(del.statusCode, 204, del.body)
  const cancel = await h.req('POST', `/api/v4/projects/${p}/pipelines/${w.pipeline.id}/cancel`, { token: w.root.token, headers: json })
  assert.equal(cancel.statusCode, 200, cancel.body)
  assert.equal((cancel.json() as { status: string }).status, 'canceled')
  // A route that needs a body still says so.
  assertProblem(await h.req('POST', '/api/v4/groups', { token: w.root.token, headers: json }), 400)
  const bad = await h.app.inject({
    method: 'POST',
    url: '/api/v4/groups',
    headers: { ...json, 'private-token': w.root.token },
    payload: '{"name":',
  })
  assertProblem(bad, 400)
  const poisoned = await h.app.inject({
    method: 'PUT',
    url: `/api/v4/groups/${w.group.id}`,
    headers: { ...json, 'private-token': w.root.token },
    payload: '{"__proto__":{"x":1}}',
  })
  assertProblem(poisoned, 400)
})

test('boolean parameters take GitLab’s spellings (true/false/True/False/1/0) in query strings and bodies; others are refused', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const ids = async (q: string) => {
    const res = await h.req('GET', `/api/v4/projects?${q}`, { token: w.root.token })
    assert.equal(res.statusCode, 200, `${q}: ${res.body}`)
    return (res.json() as { id: number }[]).map((x) => x.id).sort()
  }
  const owned = await ids('owned=true')
  const all = await ids('owned=false')
  assert.notDeepEqual(owned, all, 'the filter must matter for this test to mean anything')
  for (const v of ['True', 'TRUE', '1']) assert.deepEqual(await ids(`owned=${v}`), owned, v)
  for (const v of ['False', '0']) assert.deepEqual(await ids(`owned=${v}`), all, v)
  assert.match(String(assertProblem(await h.req('GET', '/api/v4/projects?owned=yes', { token: w.root.token }), 400).message), /owned/)

  // Body booleans, form and JSON alike; a string field named like a boolean value stays a string.
  const u = w.other.user.id
  const isAdmin = async () => ((await h.req('GET', `/api/v4/users/${u}`, { token: w.root.token })).json() as { is_admin: boolean }).is_admin
  assert.equal((await h.req('PUT', `/api/v4/users/${u}`, { token: w.root.token, form: { admin: 'True' } })).statusCode, 200)
  assert.equal(await isAdmin(), true)
  assert.equal((await h.req('PUT', `/api/v4/users/${u}`, { token: w.root.token, body: { admin: 'False', name: 'True' } })).statusCode, 200)
  assert.equal(await isAdmin(), false)
  assert.equal(((await h.req('GET', `/api/v4/users/${u}`, { token: w.root.token })).json() as { name: string }).name, 'True')
  assertProblem(await h.req('PUT', `/api/v4/users/${u}`, { token: w.root.token, body: { admin: 'maybe' } }), 400)
  assert.equal(await isAdmin(), false)
})

test('triggers: multipart as curl -F sends it, the token in the query string, and the webhook URL /ref/:ref/trigger/pipeline', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const p = w.project.id
  const token = w.trigger.token
  const variables = async (pipelineId: number) =>
    (
      (await h.req('GET', `/api/v4/projects/${p}/pipelines/${pipelineId}/variables`, { token: w.root.token })).json() as {
        key: string
        value: string
      }[]
    )
      .map((v) => `${v.key}=${v.value}`)
      .sort()

  // curl -F token=... -F ref=main -F "variables[DEPLOY]=yes"
  const form = multipart([
    ['token', token],
    ['ref', 'main'],
    ['variables[DEPLOY]', 'yes'],
  ])
  let res = await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/trigger/pipeline`, ...form })
  assert.equal(res.statusCode, 201, res.body)
  assert.equal(res.headers['content-type'], 'application/json')
  const fromForm = res.json() as { id: number; source: string; ref: string }
  assert.equal(fromForm.ref, 'main')
  assert.deepEqual(await variables(fromForm.id), ['DEPLOY=yes'])

  // Multipart is held to the same schema as JSON, and a file part is refused unread.
  const before = await pipelineCount(h)
  res = await h.app.inject({
    method: 'POST',
    url: `/api/v4/projects/${p}/trigger/pipeline`,
    ...multipart([
      ['token', token],
      ['ref', 'main'],
      ['creator_id', '3'],
    ]),
  })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: creator_id')
  res = await h.app.inject({
    method: 'POST',
    url: `/api/v4/projects/${p}/trigger/pipeline`,
    ...multipart([
      ['token', token],
      ['ref', 'main'],
      ['file', 'x'.repeat(1000), 'file'],
    ]),
  })
  assertProblem(res, 413)
  const many = Array.from({ length: 40 }, (_, i): [string, string] => [`variables[V${i}]`, 'x'])
  assertProblem(
    await h.app.inject({
      method: 'POST',
      url: `/api/v4/projects/${p}/trigger/pipeline`,
      ...multipart([['token', token], ['ref', 'main'], ...many]),
    }),
    413,
  )
  res = await h.app.inject({
    method: 'POST',
    url: `/api/v4/projects/${p}/trigger/pipeline`,
    ...multipart([
      ['token', token],
      ['ref', 'main'],
      ['variables[BIG]', 'x'.repeat(70_000)],
    ]),
  })
  assert.match(String(assertProblem(res, 400).message), /variables\[BIG\] is longer than/)
  assert.equal(await pipelineCount(h), before)

  // The token (and ref, variables) in the query string alone.
  res = await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/trigger/pipeline?token=${token}&ref=main&variables[FROM]=query` })
  assert.equal(res.statusCode, 201, res.body)
  assert.deepEqual(await variables((res.json() as { id: number }).id), ['FROM=query'])
  assert.equal(
    assertProblem(await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/trigger/pipeline?ref=main` }), 400).message,
    '400 token is missing',
  )
  assert.equal(
    assertProblem(await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/trigger/pipeline?token=${token}` }), 400).message,
    '400 ref is missing',
  )

  // GitLab's webhook form: anonymous, the calling service's payload ignored, its query strict.
  res = await h.app.inject({
    method: 'POST',
    url: `/api/v4/projects/${p}/ref/main/trigger/pipeline?token=${token}&variables[HOOK]=1`,
    headers: { 'content-type': 'application/json' },
    payload: JSON.stringify({ object_kind: 'push', ref: 'refs/heads/other', commits: [] }),
  })
  assert.equal(res.statusCode, 201, res.body)
  const hooked = res.json() as { id: number; ref: string }
  assert.equal(hooked.ref, 'main')
  assert.deepEqual(await variables(hooked.id), ['HOOK=1'])
  const n = await pipelineCount(h)
  assertProblem(await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/ref/main/trigger/pipeline` }), 400)
  assertProblem(
    await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/ref/main/trigger/pipeline?token=${token}&creator_id=3` }),
    400,
  )
  const wrong = await h.app.inject({ method: 'POST', url: `/api/v4/projects/${p}/ref/main/trigger/pipeline?token=glptt-wrong` })
  assert.ok(wrong.statusCode === 401 || wrong.statusCode === 404, wrong.body)
  assert.equal(await pipelineCount(h), n)
})
