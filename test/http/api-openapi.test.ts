// The OpenAPI document is generated from the registered routes' schemas: it lists every /api/v4
// route (checked against Fastify's own route table) and documents parameters and bodies.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Type, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import {
  Accepted,
  DeployTokenEntity,
  GroupEntity,
  MemberEntity,
  OAuthTokenEntity,
  PatEntity,
  ProjectEntity,
  RepositoryEntity,
  TagDetailEntity,
  TagEntity,
  UserEntity,
} from '../../src/api/schemas.ts'
import { apiHarness, pushImage, ROOT_PASSWORD } from './api-harness.ts'
import { registeredRoutes } from './route-table.ts'

const EXPECTED = [
  'POST /oauth/token',
  'GET /api/v4/groups',
  'POST /api/v4/groups',
  'GET /api/v4/groups/{id}',
  'PUT /api/v4/groups/{id}',
  'DELETE /api/v4/groups/{id}',
  'GET /api/v4/projects',
  'POST /api/v4/projects',
  'GET /api/v4/projects/{id}',
  'PUT /api/v4/projects/{id}',
  'DELETE /api/v4/projects/{id}',
  'GET /api/v4/projects/{id}/members',
  'POST /api/v4/projects/{id}/members',
  'GET /api/v4/projects/{id}/members/{user_id}',
  'PUT /api/v4/projects/{id}/members/{user_id}',
  'DELETE /api/v4/projects/{id}/members/{user_id}',
  'GET /api/v4/groups/{id}/members',
  'POST /api/v4/groups/{id}/members',
  'PUT /api/v4/groups/{id}/members/{user_id}',
  'DELETE /api/v4/groups/{id}/members/{user_id}',
  'GET /api/v4/user',
  'GET /api/v4/users',
  'GET /api/v4/users/{id}',
  'POST /api/v4/users',
  'PUT /api/v4/users/{id}',
  'POST /api/v4/users/{id}/block',
  'POST /api/v4/users/{id}/unblock',
  'POST /api/v4/user/personal_access_tokens',
  'POST /api/v4/users/{id}/personal_access_tokens',
  'GET /api/v4/personal_access_tokens',
  'GET /api/v4/personal_access_tokens/{id}',
  'DELETE /api/v4/personal_access_tokens/{id}',
  'GET /api/v4/projects/{id}/deploy_tokens',
  'POST /api/v4/projects/{id}/deploy_tokens',
  'DELETE /api/v4/projects/{id}/deploy_tokens/{token_id}',
  'GET /api/v4/groups/{id}/deploy_tokens',
  'POST /api/v4/groups/{id}/deploy_tokens',
  'DELETE /api/v4/groups/{id}/deploy_tokens/{token_id}',
  'GET /api/v4/projects/{id}/registry/repositories',
  'DELETE /api/v4/projects/{id}/registry/repositories/{repository_id}',
  'GET /api/v4/projects/{id}/registry/repositories/{repository_id}/tags',
  'GET /api/v4/projects/{id}/registry/repositories/{repository_id}/tags/{tag_name}',
  'DELETE /api/v4/projects/{id}/registry/repositories/{repository_id}/tags/{tag_name}',
  'GET /api/v4/openapi.json',
]

test('GET /api/v4/openapi.json documents every /api/v4 route with its parameters and body', async (t) => {
  const h = await apiHarness(t)
  const res = await h.req('GET', '/api/v4/openapi.json') // public, no token
  assert.equal(res.statusCode, 200)
  const doc = res.json() as {
    openapi: string
    info: { title: string }
    servers: Array<{ url: string }>
    paths: Record<
      string,
      Record<
        string,
        {
          summary?: string
          parameters?: Array<{ name: string; in: string; required: boolean }>
          requestBody?: { content: Record<string, unknown> }
          responses: Record<string, unknown>
          security: unknown[]
        }
      >
    >
    components: { securitySchemes: Record<string, unknown> }
  }
  assert.match(doc.openapi, /^3\.1\./)
  assert.equal(doc.servers[0]!.url, 'http://wharf.test:5000')
  assert.deepEqual(Object.keys(doc.components.securitySchemes).sort(), ['bearer', 'jobToken', 'privateToken'])

  const documented = new Set(Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)))
  for (const e of EXPECTED) assert.ok(documented.has(e), `missing from the document: ${e}`)

  // Every route Fastify actually serves under /api/v4 is in the document, and nothing else is.
  const served = registeredRoutes(h.app.printRoutes())
    .filter(([, path]) => path.startsWith('/api/v4') || path.startsWith('/oauth'))
    .map(([method, path]) => `${method} ${path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')}`)
  assert.ok(served.length >= EXPECTED.length, served.join('\n'))
  assert.deepEqual([...documented].sort(), [...new Set(served)].sort())

  for (const [path, ops] of Object.entries(doc.paths)) {
    const pathParams = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])
    for (const [method, op] of Object.entries(ops)) {
      const where = `${method.toUpperCase()} ${path}`
      assert.ok(op.summary, `${where}: summary`)
      assert.ok(op.responses.default, `${where}: error response`)
      for (const p of pathParams)
        assert.ok(
          op.parameters?.some((x) => x.in === 'path' && x.name === p && x.required),
          `${where}: path parameter ${p}`,
        )
      // Bodies of this API's own writes (other plugins may have body-less actions such as .../cancel).
      if ((method === 'post' || method === 'put') && EXPECTED.includes(where) && !/\/(block|unblock)$/.test(path)) {
        assert.ok(op.requestBody?.content['application/json'], `${where}: request body`)
        assert.ok(op.requestBody?.content['application/x-www-form-urlencoded'], `${where}: form body`)
      }
    }
  }
  const list = doc.paths['/api/v4/projects']!.get!
  assert.ok(list.parameters!.some((p) => p.name === 'per_page' && p.in === 'query'))
  assert.ok(list.parameters!.some((p) => p.name === 'search' && p.in === 'query'))
  const create = doc.paths['/api/v4/projects']!.post! as unknown as {
    requestBody: { content: { 'application/json': { schema: { properties: Record<string, { enum?: string[] }> } } } }
  }
  assert.deepEqual(create.requestBody.content['application/json'].schema.properties.visibility!.enum, ['private', 'internal', 'public'])
  // Public reads allow anonymous callers; writes need a token.
  assert.deepEqual(doc.paths['/api/v4/projects']!.get!.security[0], {})
  assert.ok(!doc.paths['/api/v4/projects']!.post!.security.some((s) => Object.keys(s as object).length === 0))
  // The runner protocol takes runner and job tokens, never a user's PRIVATE-TOKEN.
  const op = (path: string, method: string) => doc.paths[path]![method]! as unknown as { security: unknown[]; description?: string }
  for (const [path, method] of [
    ['/api/v4/runners/verify', 'post'],
    ['/api/v4/jobs/request', 'post'],
    ['/api/v4/runners', 'delete'],
  ] as const) {
    assert.deepEqual(op(path, method).security, [], `${method} ${path}`)
    assert.match(op(path, method).description ?? '', /glrt-.*body's `token` field/, `${method} ${path}`)
  }
  for (const [path, method] of [
    ['/api/v4/jobs/{id}', 'put'],
    ['/api/v4/jobs/{id}/trace', 'patch'],
    ['/api/v4/jobs/{id}/artifacts', 'post'],
    ['/api/v4/jobs/{id}/artifacts', 'get'],
  ] as const) {
    assert.deepEqual(op(path, method).security, [{ jobToken: [] }], `${method} ${path}`)
  }
  // A REST route that also takes a job token lists it beside the user's credentials.
  assert.deepEqual(op('/api/v4/projects/{id}/jobs/{job_id}/artifacts', 'get').security, [
    {},
    { privateToken: [] },
    { bearer: [] },
    { jobToken: [] },
  ])
  assert.deepEqual(op('/api/v4/user/runners', 'post').security, [{ privateToken: [] }, { bearer: [] }])
})

test('real responses match the documented response schemas', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const check = (schema: TSchema, res: { statusCode: number; body: string; json(): unknown }, what: string) => {
    assert.ok(res.statusCode < 300, `${what}: ${res.statusCode} ${res.body}`)
    const body = res.json()
    const errors = [...Value.Errors(schema, body)].slice(0, 3).map((e) => `${e.path}: ${e.message}`)
    assert.deepEqual(errors, [], `${what} does not match its documented schema`)
  }
  check(
    OAuthTokenEntity,
    await h.req('POST', '/oauth/token', { form: { grant_type: 'password', username: 'root', password: ROOT_PASSWORD } }),
    'oauth token',
  )
  const group = await h.req('POST', '/api/v4/groups', { token: root.token, body: { path: 'team', visibility: 'public' } })
  check(GroupEntity, group, 'group')
  check(Type.Array(GroupEntity), await h.req('GET', '/api/v4/groups', { token: root.token }), 'groups')
  const project = await h.req('POST', '/api/v4/projects', {
    token: root.token,
    body: { path: 'App', namespace_id: 'team', visibility: 'public' },
  })
  check(ProjectEntity, project, 'project')
  check(ProjectEntity, await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'own' } }), 'project in a user namespace')
  check(Type.Array(ProjectEntity), await h.req('GET', '/api/v4/projects'), 'projects')
  const alice = await h.user('alice')
  check(UserEntity, await h.req('GET', '/api/v4/user', { token: alice.token }), 'user')
  check(Type.Array(UserEntity), await h.req('GET', '/api/v4/users', { token: alice.token }), 'users (as non-admin)')
  const pid = (project.json() as { id: number }).id
  check(
    MemberEntity,
    await h.req('POST', `/api/v4/projects/${pid}/members`, { token: root.token, body: { user_id: alice.user.id, access_level: 30 } }),
    'member',
  )
  check(Type.Array(MemberEntity), await h.req('GET', `/api/v4/projects/${pid}/members/all`, { token: root.token }), 'members')
  check(
    PatEntity,
    await h.req('POST', '/api/v4/user/personal_access_tokens', { token: alice.token, body: { name: 'x', scopes: ['api'] } }),
    'pat',
  )
  check(Type.Array(PatEntity), await h.req('GET', '/api/v4/personal_access_tokens', { token: root.token }), 'pats')
  check(
    DeployTokenEntity,
    await h.req('POST', `/api/v4/projects/${pid}/deploy_tokens`, { token: root.token, body: { name: 'd', scopes: ['read_registry'] } }),
    'deploy token',
  )
  await pushImage(h, { username: 'root', password: ROOT_PASSWORD }, 'team/app', ['latest'])
  const repos = await h.req('GET', `/api/v4/projects/${pid}/registry/repositories?tags=true`, { token: root.token })
  check(Type.Array(RepositoryEntity), repos, 'repositories')
  const rid = (repos.json() as Array<{ id: number }>)[0]!.id
  check(
    Type.Array(TagEntity),
    await h.req('GET', `/api/v4/projects/${pid}/registry/repositories/${rid}/tags`, { token: root.token }),
    'tags',
  )
  check(
    TagDetailEntity,
    await h.req('GET', `/api/v4/projects/${pid}/registry/repositories/${rid}/tags/latest`, { token: root.token }),
    'tag',
  )
  check(Accepted, await h.req('DELETE', `/api/v4/projects/${pid}`, { token: root.token }), 'delete')
  // The document carries these schemas.
  const doc = (await h.req('GET', '/api/v4/openapi.json')).json() as {
    paths: Record<
      string,
      Record<string, { responses: Record<string, { content?: Record<string, { schema: { properties?: Record<string, unknown> } }> }> }>
    >
  }
  assert.ok(
    doc.paths['/api/v4/projects/{id}']!.get!.responses['200']!.content!['application/json']!.schema.properties!
      .container_registry_image_prefix,
  )
})
