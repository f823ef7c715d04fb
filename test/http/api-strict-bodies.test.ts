// Mass assignment: every write route (POST/PUT/PATCH, taken from Fastify's own route table, so a
// new one without an entry here fails) accepts only its documented attributes. An unknown key, or a
// column a caller must never set (id, creator_id, namespace_id, parent_id, kind, created_at), is a
// 400 problem+json whose message names it, in JSON and form bodies alike, and nothing is written.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { sql } from 'kysely'
import { apiHarness, assertProblem, type ApiHarness } from './api-harness.ts'
import { world, type World } from './api-world.ts'
import { registeredRoutes } from './route-table.ts'

type Json = Record<string, unknown>

const PROTECTED = ['id', 'creator_id', 'namespace_id', 'parent_id', 'kind', 'created_at']

/**
 * GitLab's runner protocol (what gitlab-runner sends): machine messages that grow with runner
 * versions (`session`, `info.config`, ...). Their handlers copy named fields only (runners.contacted,
 * JobUpdates.update), so extra fields are ignored, as GitLab does, rather than refused.
 */
const RUNNER_PROTOCOL = new Set([
  'POST /api/v4/runners',
  'POST /api/v4/runners/verify',
  'POST /api/v4/runners/reset_authentication_token',
  'POST /api/v4/jobs/request',
  'PUT /api/v4/jobs/:id',
  'PATCH /api/v4/jobs/:id/trace',
  'POST /api/v4/jobs/:id/artifacts/authorize',
  'POST /api/v4/jobs/:id/artifacts',
])

/**
 * GitLab's webhook form of a trigger: the caller is another service posting its own event payload,
 * which nobody reads (token, ref and variables are in the URL, whose query is strict; see
 * test/http/api-negotiation.test.ts).
 */
const IGNORED_BODY = new Set(['POST /api/v4/projects/:id/ref/:ref/trigger/pipeline'])

/** Each write route: a concrete URL and a body it accepts; the test adds one bad key at a time. */
function writeRoutes(w: World): Record<string, { url: string; body: Json }> {
  const p = w.project.id
  const g = w.group.id
  const u = w.other.user.id
  return {
    'POST /api/v4/groups': {
      url: '/api/v4/groups',
      body: { name: 'New', path: 'new', visibility: 'private', description: '', parent_id: g },
    },
    'PUT /api/v4/groups/:id': { url: `/api/v4/groups/${g}`, body: { name: 'G', description: 'd', visibility: 'private' } },
    'POST /api/v4/projects': {
      url: '/api/v4/projects',
      body: { name: 'New', path: 'new', namespace_id: g, visibility: 'private', description: '' },
    },
    'PUT /api/v4/projects/:id': { url: `/api/v4/projects/${p}`, body: { name: 'P', description: 'd', visibility: 'private' } },
    'POST /api/v4/projects/:id/members': { url: `/api/v4/projects/${p}/members`, body: { user_id: u, access_level: 30 } },
    'PUT /api/v4/projects/:id/resource_groups/:key': {
      url: `/api/v4/projects/${p}/resource_groups/prod`,
      body: { process_mode: 'oldest_first' },
    },
    'PUT /api/v4/projects/:id/members/:user_id': {
      url: `/api/v4/projects/${p}/members/${u}`,
      body: { access_level: 30, expires_at: null },
    },
    'POST /api/v4/groups/:id/members': { url: `/api/v4/groups/${g}/members`, body: { user_id: u, access_level: 30 } },
    'PUT /api/v4/groups/:id/members/:user_id': { url: `/api/v4/groups/${g}/members/${u}`, body: { access_level: 30 } },
    'POST /api/v4/projects/:id/deploy_tokens': {
      url: `/api/v4/projects/${p}/deploy_tokens`,
      body: { name: 'd', scopes: ['read_registry'] },
    },
    'POST /api/v4/groups/:id/deploy_tokens': { url: `/api/v4/groups/${g}/deploy_tokens`, body: { name: 'd', scopes: ['read_registry'] } },
    'POST /api/v4/users': { url: '/api/v4/users', body: { username: 'new', password: 'new-password' } },
    'PUT /api/v4/users/:id': { url: `/api/v4/users/${u}`, body: { name: 'Other' } },
    'POST /api/v4/users/:id/block': { url: `/api/v4/users/${u}/block`, body: {} },
    'POST /api/v4/users/:id/unblock': { url: `/api/v4/users/${u}/unblock`, body: {} },
    // Refused by their (empty) body schema before the code is looked up, so no device flow need exist.
    'POST /api/v4/user/device_authorizations/:user_code/approve': { url: '/api/v4/user/device_authorizations/BBBB-BBBB/approve', body: {} },
    'POST /api/v4/user/device_authorizations/:user_code/deny': { url: '/api/v4/user/device_authorizations/BBBB-BBBB/deny', body: {} },
    'POST /api/v4/users/:id/deactivate': { url: `/api/v4/users/${u}/deactivate`, body: {} },
    'POST /api/v4/users/:id/activate': { url: `/api/v4/users/${u}/activate`, body: {} },
    'POST /api/v4/user/personal_access_tokens': { url: '/api/v4/user/personal_access_tokens', body: { name: 't', scopes: ['api'] } },
    'POST /api/v4/users/:id/personal_access_tokens': {
      url: `/api/v4/users/${u}/personal_access_tokens`,
      body: { name: 't', scopes: ['api'] },
    },
    'POST /api/v4/projects/:id/pipeline': {
      url: `/api/v4/projects/${p}/pipeline`,
      body: { ref: 'main', variables: [{ key: 'A', value: 'b' }] },
    },
    'POST /api/v4/projects/:id/pipelines/:pipeline_id/cancel': { url: `/api/v4/projects/${p}/pipelines/${w.pipeline.id}/cancel`, body: {} },
    'POST /api/v4/projects/:id/pipelines/:pipeline_id/retry': { url: `/api/v4/projects/${p}/pipelines/${w.pipeline.id}/retry`, body: {} },
    'POST /api/v4/projects/:id/jobs/:job_id/cancel': { url: `/api/v4/projects/${p}/jobs/${w.job.id}/cancel`, body: {} },
    'POST /api/v4/projects/:id/jobs/:job_id/retry': { url: `/api/v4/projects/${p}/jobs/${w.job.id}/retry`, body: {} },
    'POST /api/v4/projects/:id/jobs/:job_id/play': { url: `/api/v4/projects/${p}/jobs/${w.job.id}/play`, body: {} },
    'POST /api/v4/projects/:id/jobs/:job_id/erase': { url: `/api/v4/projects/${p}/jobs/${w.job.id}/erase`, body: {} },
    'POST /api/v4/projects/:id/jobs/:job_id/artifacts/keep': {
      url: `/api/v4/projects/${p}/jobs/${w.job.id}/artifacts/keep`,
      body: {},
    },
    'POST /api/v4/projects/:id/variables': {
      url: `/api/v4/projects/${p}/variables`,
      body: { key: 'NEW', value: 'v', variable_type: 'env_var', protected: false, masked: false, environment_scope: '*' },
    },
    'PUT /api/v4/projects/:id/variables/:key': { url: `/api/v4/projects/${p}/variables/K`, body: { value: 'w' } },
    'POST /api/v4/groups/:id/variables': { url: `/api/v4/groups/${g}/variables`, body: { key: 'NEW', value: 'v' } },
    'PUT /api/v4/groups/:id/variables/:key': { url: `/api/v4/groups/${g}/variables/K`, body: { value: 'w' } },
    'POST /api/v4/projects/:id/triggers': { url: `/api/v4/projects/${p}/triggers`, body: { description: 'x' } },
    'POST /api/v4/projects/:id/pipeline_schedules': {
      url: `/api/v4/projects/${p}/pipeline_schedules`,
      body: { description: 'd', ref: 'main', cron: '0 1 * * *', cron_timezone: 'UTC', active: true },
    },
    'PUT /api/v4/projects/:id/pipeline_schedules/:schedule_id': {
      url: `/api/v4/projects/${p}/pipeline_schedules/${w.schedule.id}`,
      body: { description: 'd', ref: 'main', cron: '0 1 * * *', cron_timezone: 'UTC', active: true },
    },
    'POST /api/v4/projects/:id/pipeline_schedules/:schedule_id/take_ownership': {
      url: `/api/v4/projects/${p}/pipeline_schedules/${w.schedule.id}/take_ownership`,
      body: {},
    },
    'POST /api/v4/projects/:id/pipeline_schedules/:schedule_id/play': {
      url: `/api/v4/projects/${p}/pipeline_schedules/${w.schedule.id}/play`,
      body: {},
    },
    'POST /api/v4/projects/:id/pipeline_schedules/:schedule_id/variables': {
      url: `/api/v4/projects/${p}/pipeline_schedules/${w.schedule.id}/variables`,
      body: { key: 'NEW', value: 'v', variable_type: 'env_var' },
    },
    'PUT /api/v4/projects/:id/pipeline_schedules/:schedule_id/variables/:key': {
      url: `/api/v4/projects/${p}/pipeline_schedules/${w.schedule.id}/variables/V`,
      body: { value: 'v', variable_type: 'env_var' },
    },
    'POST /api/v4/projects/:id/trigger/pipeline': {
      url: `/api/v4/projects/${p}/trigger/pipeline`,
      body: { token: w.trigger.token, ref: 'main', variables: { A: 'b' } },
    },
    'POST /api/v4/user/runners': {
      url: '/api/v4/user/runners',
      body: { runner_type: 'project_type', project_id: p, description: 'r', tag_list: ['a'] },
    },
    'POST /api/v4/projects/:id/runners': { url: `/api/v4/projects/${p}/runners`, body: { runner_id: w.runner.id } },
    'PUT /api/v4/runners/:id': { url: `/api/v4/runners/${w.runner.id}`, body: { paused: true, description: 'r' } },
    'POST /api/v4/admin/signing_keys/rotate': { url: '/api/v4/admin/signing_keys/rotate', body: {} },
    'POST /api/v4/projects/:id/job_token_scope/allowlist': {
      url: `/api/v4/projects/${p}/job_token_scope/allowlist`,
      body: { target_project_id: w.target.id },
    },
    'POST /api/v4/projects/:id/hooks': {
      url: `/api/v4/projects/${p}/hooks`,
      body: {
        url: 'http://8.8.8.8/h',
        token: 't',
        push_events: true,
        tag_push_events: true,
        pipeline_events: true,
        job_events: true,
        registry_events: true,
        enable_ssl_verification: true,
        push_events_branch_filter: '',
        name: 'n',
        description: 'd',
      },
    },
    'PUT /api/v4/projects/:id/hooks/:hook_id': {
      url: `/api/v4/projects/${p}/hooks/${w.hook.id}`,
      body: { url: 'http://8.8.8.8/h2', push_events: false },
    },
    'POST /api/v4/projects/:id/hooks/:hook_id/test/:trigger': {
      url: `/api/v4/projects/${p}/hooks/${w.hook.id}/test/push_events`,
      body: {},
    },
    'POST /api/v4/projects/:id/hooks/:hook_id/events/:event_id/resend': {
      url: `/api/v4/projects/${p}/hooks/${w.hook.id}/events/${w.delivery.id}/resend`,
      body: {},
    },
    'POST /api/v4/groups/:id/hooks': { url: `/api/v4/groups/${g}/hooks`, body: { url: 'http://8.8.8.8/h', pipeline_events: true } },
    'PUT /api/v4/groups/:id/hooks/:hook_id': { url: `/api/v4/groups/${g}/hooks/${w.groupHook.id}`, body: { job_events: true } },
    'POST /api/v4/groups/:id/hooks/:hook_id/test/:trigger': {
      url: `/api/v4/groups/${g}/hooks/${w.groupHook.id}/test/job_events`,
      body: {},
    },
    'POST /api/v4/groups/:id/hooks/:hook_id/events/:event_id/resend': {
      url: `/api/v4/groups/${g}/hooks/${w.groupHook.id}/events/${w.groupDelivery.id}/resend`,
      body: {},
    },
    'POST /api/v4/projects/:id/repository/files/:file_path': {
      url: `/api/v4/projects/${p}/repository/files/new.txt`,
      body: { branch: 'main', content: 'x', commit_message: 'm', encoding: 'text', author_name: 'A', author_email: 'a@x' },
    },
    'PUT /api/v4/projects/:id/repository/files/:file_path': {
      url: `/api/v4/projects/${p}/repository/files/.gitlab-ci.yml`,
      body: { branch: 'main', content: 'x', commit_message: 'm', last_commit_id: '0'.repeat(40) },
    },
    'POST /api/v4/projects/:id/repository/commits': {
      url: `/api/v4/projects/${p}/repository/commits`,
      body: { branch: 'main', commit_message: 'm', actions: [{ action: 'create', file_path: 'n.txt', content: 'x' }] },
    },
    'POST /api/v4/projects/:id/repository/branches': {
      url: `/api/v4/projects/${p}/repository/branches`,
      body: { branch: 'new', ref: 'main' },
    },
    'POST /api/v4/projects/:id/repository/tags': {
      url: `/api/v4/projects/${p}/repository/tags`,
      body: { tag_name: 'new', ref: 'main', message: 'm' },
    },
    'POST /api/v4/projects/:id/protected_branches': {
      url: `/api/v4/projects/${p}/protected_branches`,
      body: {
        name: 'rel/*',
        push_access_level: 40,
        merge_access_level: 40,
        unprotect_access_level: 40,
        allow_force_push: false,
        code_owner_approval_required: false,
      },
    },
    'POST /api/v4/projects/:id/protected_tags': {
      url: `/api/v4/projects/${p}/protected_tags`,
      body: { name: 'v*', create_access_level: 40 },
    },
    'POST /api/v4/projects/:id/registry/protection/tag/rules': {
      url: `/api/v4/projects/${p}/registry/protection/tag/rules`,
      body: { tag_name_pattern: 'v.*', minimum_access_level_for_push: 'maintainer', minimum_access_level_for_delete: 'owner' },
    },
    // Refused by its body schema before the rule is looked up, so no rule need exist.
    'PATCH /api/v4/projects/:id/registry/protection/tag/rules/:rule_id': {
      url: `/api/v4/projects/${p}/registry/protection/tag/rules/1`,
      body: { tag_name_pattern: 'v.*', minimum_access_level_for_push: 'admin', minimum_access_level_for_delete: 'admin' },
    },
    'POST /api/v4/markdown': { url: '/api/v4/markdown', body: { text: '# Title', gfm: true, project: 'grp/app' } },
    'POST /api/v4/projects/:id/registry/protection/repository/rules': {
      url: `/api/v4/projects/${p}/registry/protection/repository/rules`,
      body: { repository_path_pattern: 'grp/app/*', minimum_access_level_for_push: 'maintainer', minimum_access_level_for_delete: null },
    },
    'PATCH /api/v4/projects/:id/registry/protection/repository/rules/:rule_id': {
      url: `/api/v4/projects/${p}/registry/protection/repository/rules/1`,
      body: { repository_path_pattern: 'grp/app', minimum_access_level_for_push: 'owner', minimum_access_level_for_delete: 'admin' },
    },
    'PUT /api/v4/projects/:id/registry/quota': {
      url: `/api/v4/projects/${p}/registry/quota`,
      body: { hard_limit_bytes: 1_000_000, soft_limit_bytes: 500_000 },
    },
    'POST /api/v4/projects/:id/registry/cleanup_policy/preview': {
      url: `/api/v4/projects/${p}/registry/cleanup_policy/preview`,
      body: { name_regex: '.*', keep_n: 5, remove_deleted_branch_tags: true, keep_protected_branch_latest: true },
    },
    // Refused by its body schema before the repository is looked up.
    'POST /api/v4/projects/:id/registry/repositories/:repository_id/tags/preview': {
      url: `/api/v4/projects/${p}/registry/repositories/1/tags/preview`,
      body: { name_regex_delete: '.*', name_regex_keep: 'v.*', keep_n: 1, older_than: '1d' },
    },
    // Refused by its body schema before the repository is looked up.
    'POST /api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name/restore': {
      url: `/api/v4/projects/${p}/registry/repositories/1/tags/v1/restore`,
      body: { digest: `sha256:${'0'.repeat(64)}` },
    },
    'POST /api/v4/projects/:id/ci/lint': {
      url: `/api/v4/projects/${p}/ci/lint`,
      body: { content: 'a: { script: [x] }', dry_run: false, include_jobs: true, ref: 'main', dry_run_ref_type: 'branch' },
    },
    'POST /api/v4/projects/:id/statuses/:sha': {
      url: `/api/v4/projects/${p}/statuses/${'0'.repeat(40)}`,
      body: {
        state: 'success',
        ref: 'main',
        name: 'n',
        context: 'c',
        target_url: 'https://x',
        description: 'd',
        coverage: 1,
        pipeline_id: 1,
      },
    },
    // Refused by their body schemas before the environment or release is looked up, so none need exist.
    'POST /api/v4/projects/:id/environments': {
      url: `/api/v4/projects/${p}/environments`,
      body: { name: 'staging', external_url: 'https://staging.example.com', tier: 'staging' },
    },
    'PUT /api/v4/projects/:id/environments/:environment_id': {
      url: `/api/v4/projects/${p}/environments/1`,
      body: { external_url: 'https://x.example.com', tier: 'production' },
    },
    'POST /api/v4/projects/:id/environments/:environment_id/stop': {
      url: `/api/v4/projects/${p}/environments/1/stop`,
      body: { force: true },
    },
    'POST /api/v4/projects/:id/releases': {
      url: `/api/v4/projects/${p}/releases`,
      body: { tag_name: 'v1', ref: 'main', name: 'n', description: 'd', tag_message: 'm', released_at: '2026-01-01T00:00:00Z' },
    },
    'PUT /api/v4/projects/:id/releases/:tag_name': {
      url: `/api/v4/projects/${p}/releases/v1`,
      body: { name: 'n', description: 'd', released_at: '2026-01-01T00:00:00Z' },
    },
    'POST /api/v4/projects/:id/releases/:tag_name/assets/links': {
      url: `/api/v4/projects/${p}/releases/v1/assets/links`,
      body: { name: 'n', url: 'https://x.example.com', direct_asset_path: '/bin/x', link_type: 'other' },
    },
    'PUT /api/v4/projects/:id/releases/:tag_name/assets/links/:link_id': {
      url: `/api/v4/projects/${p}/releases/v1/assets/links/1`,
      body: { name: 'n', url: 'https://y.example.com', filepath: '/bin/y', link_type: 'package' },
    },
    'POST /-/session': { url: '/-/session', body: { username: 'root', password: 'wrong-but-unchecked' } },
  }
}

/** Every row of every table, for "nothing was written" (rows in a fixed order: by their JSON, on either database). */
async function snapshot(h: ApiHarness): Promise<Record<string, unknown[]>> {
  const tables = (await h.db.introspection.getTables()).map((t) => t.name).sort()
  const out: Record<string, unknown[]> = {}
  for (const t of tables) {
    // The token that makes the requests gets its last_used_at refreshed: that is the request's auth, not a write of its body.
    const rows = (await sql<Json>`SELECT * FROM ${sql.table(t)}`.execute(h.db)).rows
    out[t] = (t === 'personal_access_tokens' ? rows.map(({ last_used_at: _, ...r }) => r) : rows)
      .map((r) => [JSON.stringify(r), r] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, r]) => r)
  }
  return out
}

/** JSON → form fields as GitLab clients send them (`k[]=`, `k[sub]=`); undefined when the body cannot be a form. */
function formOf(body: Json): Record<string, string | string[]> | undefined {
  const out: Record<string, string | string[]> = {}
  for (const [k, v] of Object.entries(body)) {
    if (v === null) return undefined
    if (Array.isArray(v)) {
      if (v.some((x) => typeof x === 'object')) return undefined
      out[`${k}[]`] = v.map(String)
    } else if (typeof v === 'object') for (const [sub, x] of Object.entries(v as Json)) out[`${k}[${sub}]`] = String(x)
    else out[k] = String(v)
  }
  return out
}

test('every write route refuses unknown and protected attributes (JSON and form) with a 400 naming them, writing nothing', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const table = writeRoutes(w)

  // The table covers exactly the write routes Fastify serves (the runner protocol aside).
  const served = registeredRoutes(h.app.printRoutes())
    .filter(([method, path]) => ['POST', 'PUT', 'PATCH'].includes(method) && (path.startsWith('/api/v4/') || path.startsWith('/-/')))
    .map(([method, path]) => `${method} ${path}`)
  assert.deepEqual(
    served.filter((r) => !RUNNER_PROTOCOL.has(r) && !IGNORED_BODY.has(r)).sort(),
    Object.keys(table).sort(),
    'a write route without an entry here (or an entry for a route that is gone)',
  )

  // Their documented body schemas forbid extra properties.
  const doc = (await h.req('GET', '/api/v4/openapi.json')).json() as {
    paths: Record<string, Record<string, { requestBody?: { content: Record<string, { schema: { additionalProperties?: unknown } }> } }>>
  }
  for (const key of Object.keys(table).filter((k) => k.includes(' /api/v4/'))) {
    const [method, path] = key.split(' ') as [string, string]
    const op = doc.paths[path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')]?.[method.toLowerCase()]
    assert.ok(op, key)
    if (op.requestBody)
      assert.equal(op.requestBody.content['application/json']!.schema.additionalProperties, false, `${key}: body schema is not strict`)
  }

  const before = await snapshot(h)
  for (const [key, { url, body }] of Object.entries(table)) {
    const [method] = key.split(' ') as ['POST' | 'PUT' | 'PATCH']
    // A protected name the route documents (POST /projects' namespace_id) is in its valid body already.
    const bad: Array<[string, unknown]> = [
      ['wharf_unknown', 1],
      ...PROTECTED.filter((k) => !(k in body)).map((k): [string, unknown] => [k, 3]),
    ]
    for (const [attr, value] of bad) {
      const json = await h.req(method, url, { token: w.root.token, body: { ...body, [attr]: value } })
      const p = assertProblem(json, 400)
      assert.match(String(p.message), new RegExp(`unknown attribute: ${attr}$`), `${key} (JSON, ${attr}): ${json.body}`)
      const fields = formOf({ ...body, [attr]: value })
      if (fields) {
        const form = await h.req(method, url, { token: w.root.token, form: fields })
        assert.match(
          String(assertProblem(form, 400).message),
          new RegExp(`unknown attribute: ${attr}$`),
          `${key} (form, ${attr}): ${form.body}`,
        )
      }
    }
  }
  assert.deepEqual(await snapshot(h), before, 'a refused request wrote something')
})

test('PUT /projects/:id and /groups/:id: creator_id, kind and unknown keys are 400 (not 500) and change nothing; documented ones still apply', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  const project = async () => ({
    ...(await h.db.selectFrom('projects').selectAll().where('id', '=', w.project.id).executeTakeFirstOrThrow()),
  })
  const group = async () => ({
    ...(await h.db.selectFrom('namespaces').selectAll().where('id', '=', w.group.id).executeTakeFirstOrThrow()),
  })
  const p0 = await project()
  const g0 = await group()

  let res = await h.req('PUT', `/api/v4/projects/${w.project.id}`, { token: w.root.token, body: { creator_id: w.other.user.id } })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: creator_id')
  res = await h.req('PUT', `/api/v4/projects/${w.project.id}`, { token: w.root.token, body: { description: 'new', no_such_column: 1 } })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: no_such_column')
  res = await h.req('PUT', `/api/v4/groups/${w.group.id}`, { token: w.root.token, body: { kind: 'user' } })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: kind')
  res = await h.req('PUT', `/api/v4/groups/${w.group.id}`, { token: w.root.token, form: { description: 'new', parent_id: '7' } })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: parent_id')
  assert.deepEqual(await project(), p0)
  assert.deepEqual(await group(), g0)

  // Nested: a pipeline variable with an extra field names where it is.
  res = await h.req('POST', `/api/v4/projects/${w.project.id}/pipeline`, {
    token: w.root.token,
    body: { ref: 'main', variables: [{ key: 'A', value: 'b', protected: true }] },
  })
  assert.equal(assertProblem(res, 400).message, '400 unknown attribute: variables.0.protected')

  // The documented attributes still work, JSON and form alike; the rest of the row is untouched.
  res = await h.req('PUT', `/api/v4/projects/${w.project.id}`, {
    token: w.root.token,
    body: { name: 'Renamed', description: 'd', visibility: 'private' },
  })
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual(await project(), { ...p0, name: 'Renamed', description: 'd' })
  res = await h.req('PUT', `/api/v4/groups/${w.group.id}`, { token: w.root.token, form: { description: 'by form' } })
  assert.equal(res.statusCode, 200, res.body)
  assert.deepEqual(await group(), { ...g0, description: 'by form' })
})
