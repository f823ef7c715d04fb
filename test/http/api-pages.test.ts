// Pagination: every GET /api/v4 route that answers a list (taken from Fastify's route table, so a new
// list route cannot skip it) honours per_page and sends GitLab's headers (X-Total, X-Total-Pages,
// X-Page, X-Per-Page, X-Next-Page, X-Prev-Page, Link), and the totals count what the filters keep:
// pages come from SQL (LIMIT/OFFSET and COUNT), not from slicing a list loaded whole.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { apiHarness, pushImage, ROOT_PASSWORD, type ApiHarness } from './api-harness.ts'
import { world, type World } from './api-world.ts'
import { registeredRoutes } from './route-table.ts'

type Json = Record<string, unknown>

/**
 * Arrays returned whole: a pipeline's own variables (as GitLab) and, Wharf extensions, a job's, and the
 * dependency proxy's upstreams (the config's list, at most 32 entries).
 */
const UNPAGED = new Set([
  '/api/v4/projects/:id/pipelines/:pipeline_id/variables',
  '/api/v4/projects/:id/jobs/:job_id/variables',
  '/api/v4/dependency_proxy/upstreams',
])

/** Three or more of everything a list route can return. */
async function populate(h: ApiHarness, w: World) {
  const { projects, groups, ci } = { projects: h.services.projects, groups: h.services.groups, ci: h.services.ci! }
  const as = (token: string) => ({ token })
  const root = as(w.root.token)
  for (const path of ['g2', 'g3']) await groups.createGroup(w.root.user, { path, visibility: 'private' })
  const extra = [
    await projects.createProject(w.root.user, { namespaceId: w.group.id, path: 'p3' }),
    await projects.createProject(w.root.user, { namespaceId: w.group.id, path: 'p4' }),
  ]
  const users = [w.other, await h.user('third'), await h.user('fourth')]
  for (const [i, u] of users.entries()) {
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${w.project.id}/members`, { ...root, body: { user_id: u.user.id, access_level: 30 } }))
        .statusCode,
      201,
    )
    assert.equal(
      (
        await h.req('POST', `/api/v4/groups/${w.group.id}/members`, {
          ...root,
          body: { user_id: u.user.id, access_level: i === 0 ? 40 : 20 },
        })
      ).statusCode,
      201,
    )
  }
  for (const kind of ['projects', 'groups'] as const) {
    const id = kind === 'projects' ? w.project.id : w.group.id
    for (const name of ['d1', 'd2', 'd3'])
      assert.equal(
        (await h.req('POST', `/api/v4/${kind}/${id}/deploy_tokens`, { ...root, body: { name, scopes: ['read_registry'] } })).statusCode,
        201,
      )
  }
  for (const key of ['K2', 'K3']) {
    await ci.variables.create('project', w.project.id, { key, value: 'v' })
    await ci.variables.create('group', w.group.id, { key, value: 'v' })
  }
  for (let i = 0; i < 3; i++)
    assert.equal(
      (await h.req('POST', '/api/v4/user/runners', { ...root, body: { runner_type: 'group_type', group_id: w.group.id } })).statusCode,
      201,
    )
  for (let i = 0; i < 2; i++) {
    assert.equal(
      (
        await h.req('POST', '/api/v4/user/runners', {
          ...root,
          body: { runner_type: 'project_type', project_id: w.project.id, tag_list: i ? ['x'] : ['x', 'y'] },
        })
      ).statusCode,
      201,
    )
    await ci.pipelines.createForRef(w.project, 'main', 'api', w.root.user.id, [])
    await ci.triggers.create(w.project.id, w.root.user.id, `t${i}`)
    await ci.schedules.create(w.project, w.root.user.id, { description: `s${i}`, ref: 'main', cron: '0 3 * * *' })
    await h.services.accessTokens.createPat(w.root.user.id, { name: `extra${i}`, scopes: ['api'] }, 'test')
  }
  for (const p of [w.target, ...extra]) await ci.jobTokens.allow(w.project.id, p)
  // The world's runner ran every job (GET /runners/:id/jobs); a runner claims through the protocol elsewhere.
  await h.db.updateTable('ci_jobs').set({ runner_id: w.runner.id }).where('project_id', '=', w.project.id).execute()
  // Three bridge (trigger:) jobs in the world's pipeline for GET .../bridges, stored as a pipeline stores them.
  const job = (await ci.pipelines.jobs(w.pipeline.id))[0]!
  for (const name of ['child-a', 'child-b', 'child-c']) {
    const { id: _id, ...row } = job
    await h.db
      .insertInto('ci_jobs')
      .values({ ...row, name, kind: 'bridge', status: 'manual', runner_id: null })
      .execute()
  }
  for (const [owner, hook] of [
    [{ projectId: w.project.id }, w.hook],
    [{ groupId: w.group.id }, w.groupHook],
  ] as const) {
    for (let i = 0; i < 2; i++) await h.services.hooks.create(owner, { url: `http://8.8.8.8/h${i}` })
    for (let i = 0; i < 2; i++) await h.services.hooks.test(hook, 'push_events', { i })
  }
  w.git('tag', '-a', '-m', 'one', 'v1')
  w.git('tag', 'v2')
  w.git('tag', 'v3')
  w.git('push', '-q', w.bare, 'HEAD:refs/heads/b1', 'HEAD:refs/heads/b2', 'refs/tags/v1', 'refs/tags/v2', 'refs/tags/v3')
  // Commits through the API: main then has 3 commits, 5 files at its root and 3 changes in its last commit.
  const commit = async (actions: Json[]) =>
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${w.project.id}/repository/commits`, {
          ...root,
          body: { branch: 'main', commit_message: 'more', actions },
        })
      ).statusCode,
      201,
    )
  await commit([{ action: 'create', file_path: 'd', content: 'd' }])
  await commit(['a', 'b', 'c'].map((f) => ({ action: 'create', file_path: f, content: f })))
  // Three resource groups, and three jobs waiting for the one named like the other list routes' `key`; after
  // the commits above, whose pipelines auto-cancel the world's (waiting jobs included).
  for (const key of ['K', 'R2', 'R3'])
    await h.db
      .insertInto('resource_groups')
      .values({ project_id: w.project.id, key, process_mode: 'unordered', created_at: job.created_at, updated_at: job.created_at })
      .execute()
  for (const name of ['deploy-a', 'deploy-b', 'deploy-c']) {
    const { id: _id, ...row } = job
    await h.db
      .insertInto('ci_jobs')
      .values({ ...row, name, resource_group: 'K', status: 'waiting_for_resource', runner_id: null })
      .execute()
  }
  const head = (
    (await h.req('GET', `/api/v4/projects/${w.project.id}/repository/branches/main`, root)).json() as { commit: { id: string } }
  ).commit.id
  for (const name of ['s1', 's2', 's3'])
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${w.project.id}/statuses/${head}`, { ...root, body: { state: 'success', name } })).statusCode,
      201,
    )
  for (const name of ['p1', 'p2', 'p3']) {
    for (const kind of ['branches', 'tags'])
      assert.equal((await h.req('POST', `/api/v4/projects/${w.project.id}/protected_${kind}`, { ...root, body: { name } })).statusCode, 201)
  }
  for (const pattern of ['a.*', 'b.*', 'c.*'])
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${w.project.id}/registry/protection/tag/rules`, {
          ...root,
          body: { tag_name_pattern: pattern, minimum_access_level_for_push: 'maintainer', minimum_access_level_for_delete: 'maintainer' },
        })
      ).statusCode,
      201,
    )
  for (const pattern of ['grp/app', 'grp/app/*', 'grp/app/web'])
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${w.project.id}/registry/protection/repository/rules`, {
          ...root,
          body: { repository_path_pattern: pattern, minimum_access_level_for_push: 'maintainer' },
        })
      ).statusCode,
      201,
    )
  for (let i = 0; i < 2; i++) await h.services.auth.tokens.rotate()
  // Three device logins of root (wharf login): started, approved by root signed in, redeemed.
  const signedIn = await h.services.credentials.principalFor({ kind: 'password', userId: w.root.user.id })
  for (let i = 0; i < 3; i++) {
    const started = await h.services.deviceLogins.authorize({ clientId: 'wharf-cli', scope: undefined, deviceName: `d${i}` }, '10.0.0.1')
    await h.services.deviceLogins.decide(started.user_code, signedIn!, true, '10.0.0.1')
    await h.services.deviceLogins.redeem(started.device_code, 'wharf-cli', '10.0.0.1')
  }
  for (let i = 0; i < 3; i++) await ci.schedules.play(w.project, w.schedule, w.root.user.id)
  // Three environments with a deployment each, and three releases (the first of tag `1`, the name the
  // registry's tag routes share) with three links.
  for (const name of ['e1', 'e2', 'e3']) {
    const env = (await h.req('POST', `/api/v4/projects/${w.project.id}/environments`, { ...root, body: { name } })).json() as { id: number }
    await h.db
      .insertInto('deployments')
      .values({
        project_id: w.project.id,
        iid: env.id,
        environment_id: env.id,
        job_id: null,
        pipeline_id: w.pipeline.id,
        ref: 'main',
        tag: 0,
        sha: w.pipeline.sha,
        status: 'success',
        user_id: w.root.user.id,
        on_stop: null,
        created_at: job.created_at,
        updated_at: job.created_at,
        finished_at: job.created_at,
      })
      .execute()
  }
  for (const tag of ['1', 'r2', 'r3'])
    assert.equal(
      (await h.req('POST', `/api/v4/projects/${w.project.id}/releases`, { ...root, body: { tag_name: tag, ref: 'main' } })).statusCode,
      201,
    )
  for (const name of ['l1', 'l2', 'l3'])
    assert.equal(
      (
        await h.req('POST', `/api/v4/projects/${w.project.id}/releases/1/assets/links`, {
          ...root,
          body: { name, url: `https://dl.example.com/${name}` },
        })
      ).statusCode,
      201,
    )
  const creds = { username: 'root', password: ROOT_PASSWORD }
  for (const name of ['grp/app', 'grp/app/api', 'grp/app/web']) await pushImage(h, creds, name, ['1', '2', '3'])
  // Tag 1 of grp/app pushed three times: three entries in its history.
  for (let i = 0; i < 2; i++) await pushImage(h, creds, 'grp/app', ['1'])
}

test('every list route pages with per_page and sends the pagination headers', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  await populate(h, w)
  const repos = (await h.req('GET', `/api/v4/projects/${w.project.id}/registry/repositories`, { token: w.root.token })).json() as Array<{
    id: number
  }>
  const params: Record<string, string> = {
    user_id: String(w.other.user.id),
    pipeline_id: String(w.pipeline.id),
    job_id: String(w.job.id),
    ref_name: 'main',
    key: 'K',
    repository_id: String(repos[0]!.id),
    tag_name: '1',
    branch: 'main',
    sha: 'main',
    schedule_id: String(w.schedule.id),
  }
  const idFor = (path: string) =>
    path.startsWith('/api/v4/groups')
      ? w.group.id
      : path.startsWith('/api/v4/projects')
        ? w.project.id
        : path.startsWith('/api/v4/runners')
          ? w.runner.id
          : path.startsWith('/api/v4/users')
            ? w.other.user.id
            : 'self'

  const lists: string[] = []
  for (const [method, path] of registeredRoutes(h.app.printRoutes())) {
    if (method !== 'GET' || !path.startsWith('/api/v4/') || path === '/api/v4/jobs/:id/artifacts' || UNPAGED.has(path)) continue
    const url = path.replace(/:([a-z_]+)/g, (_m, name: string) =>
      name === 'id'
        ? String(idFor(path))
        : name === 'hook_id'
          ? String(path.startsWith('/api/v4/groups') ? w.groupHook.id : w.hook.id)
          : params[name]!,
    )
    const res = await h.req('GET', `${url}?per_page=2`, { token: w.root.token })
    if (res.statusCode !== 200 || !String(res.headers['content-type']).startsWith('application/json') || !Array.isArray(res.json()))
      continue
    lists.push(path)
    const items = res.json() as Json[]
    const total = Number(res.headers['x-total'])
    assert.ok(res.headers['x-total'] !== undefined && Number.isInteger(total), `${path}: no X-Total`)
    // Push events are recorded by smart HTTP pushes, which this in-process test does not make (test/e2e/git.test.ts does).
    if (!path.endsWith('/events')) assert.ok(total >= 3, `${path}: the fixture should give it at least 3 items, has ${total}`)
    const pages = Math.max(1, Math.ceil(total / 2))
    assert.equal(items.length, Math.min(2, total), `${path}: per_page=2`)
    assert.deepEqual(
      [
        res.headers['x-page'],
        res.headers['x-per-page'],
        res.headers['x-total-pages'],
        res.headers['x-next-page'],
        res.headers['x-prev-page'],
      ],
      ['1', '2', String(pages), pages > 1 ? '2' : '', ''],
      path,
    )
    assert.match(String(res.headers.link), /rel="last"/, path)
    if (pages === 1) continue
    const last = await h.req('GET', `${url}?per_page=2&page=${pages}`, { token: w.root.token })
    assert.equal((last.json() as Json[]).length, total % 2 || 2, `${path}: last page`)
    assert.deepEqual([last.headers['x-next-page'], last.headers['x-prev-page']], ['', String(pages - 1)], path)
  }
  // The sweep reached every list route (a wrong parameter would have skipped one silently).
  assert.deepEqual(
    lists.sort(),
    [
      '/api/v4/admin/signing_keys',
      '/api/v4/audit_events',
      '/api/v4/groups',
      '/api/v4/groups/:id/deploy_tokens',
      '/api/v4/groups/:id/hooks',
      '/api/v4/groups/:id/hooks/:hook_id/events',
      '/api/v4/groups/:id/members',
      '/api/v4/groups/:id/members/all',
      '/api/v4/groups/:id/projects',
      '/api/v4/groups/:id/registry/repositories',
      '/api/v4/groups/:id/runners',
      '/api/v4/groups/:id/variables',
      '/api/v4/namespaces',
      '/api/v4/personal_access_tokens',
      '/api/v4/projects',
      '/api/v4/projects/:id/deploy_tokens',
      '/api/v4/projects/:id/deployments',
      '/api/v4/projects/:id/environments',
      '/api/v4/projects/:id/events',
      '/api/v4/projects/:id/hooks',
      '/api/v4/projects/:id/hooks/:hook_id/events',
      '/api/v4/projects/:id/job_token_scope/allowlist',
      '/api/v4/projects/:id/jobs',
      '/api/v4/projects/:id/members',
      '/api/v4/projects/:id/members/all',
      '/api/v4/projects/:id/pipeline_schedules',
      '/api/v4/projects/:id/pipeline_schedules/:schedule_id/pipelines',
      '/api/v4/projects/:id/pipelines',
      '/api/v4/projects/:id/pipelines/:pipeline_id/bridges',
      '/api/v4/projects/:id/pipelines/:pipeline_id/jobs',
      '/api/v4/projects/:id/protected_branches',
      '/api/v4/projects/:id/protected_tags',
      '/api/v4/projects/:id/releases',
      '/api/v4/projects/:id/releases/:tag_name/assets/links',
      '/api/v4/projects/:id/registry/protection/repository/rules',
      '/api/v4/projects/:id/registry/protection/tag/rules',
      '/api/v4/projects/:id/registry/repositories',
      '/api/v4/projects/:id/registry/repositories/:repository_id/tags',
      '/api/v4/projects/:id/registry/repositories/:repository_id/tags/:tag_name/history',
      '/api/v4/projects/:id/repository/branches',
      '/api/v4/projects/:id/resource_groups',
      '/api/v4/projects/:id/resource_groups/:key/upcoming_jobs',
      '/api/v4/projects/:id/repository/commits',
      '/api/v4/projects/:id/repository/commits/:sha/diff',
      '/api/v4/projects/:id/repository/commits/:sha/statuses',
      '/api/v4/projects/:id/repository/tags',
      '/api/v4/projects/:id/repository/tree',
      '/api/v4/projects/:id/runners',
      '/api/v4/projects/:id/triggers',
      '/api/v4/projects/:id/variables',
      '/api/v4/runners',
      '/api/v4/runners/:id/jobs',
      '/api/v4/runners/all',
      '/api/v4/templates/gitlab_ci_ymls',
      '/api/v4/user/device_logins',
      '/api/v4/users',
    ].sort(),
  )
})

test('totals count what the filters keep; members/all pages users once each at their highest level', async (t) => {
  const h = await apiHarness(t)
  const w = await world(h)
  await populate(h, w)
  const get = async (url: string) => {
    const res = await h.req('GET', url, { token: w.root.token })
    assert.equal(res.statusCode, 200, `${url}: ${res.body}`)
    return { items: res.json() as Json[], total: Number(res.headers['x-total']) }
  }

  // members/all: the project's own members and the group's, one row per user, the higher level winning.
  const seen: Json[] = []
  let total = 0
  for (let page = 1; page <= 3; page++) {
    const r = await get(`/api/v4/projects/${w.project.id}/members/all?per_page=2&page=${page}`)
    seen.push(...r.items)
    total = r.total
  }
  assert.equal(seen.length, total)
  const levels = Object.fromEntries(seen.map((m) => [m.username, m.access_level]))
  assert.equal(Object.keys(levels).length, total, 'each user once')
  assert.deepEqual([levels.other, levels.third, levels.fourth], [40, 30, 30]) // other: maintainer of the group beats developer of the project
  assert.deepEqual(
    seen.map((m) => m.username),
    [...seen.map((m) => String(m.username))].sort(),
    'by username across pages',
  )

  // Revoked or expired tokens are filtered before counting.
  const pats = await get('/api/v4/personal_access_tokens?per_page=1')
  const revoked = pats.items[0]!.id as number
  await h.services.accessTokens.revokePat((await h.services.accessTokens.findPat(revoked))!, 'test')
  assert.equal((await get('/api/v4/personal_access_tokens?state=inactive&per_page=1')).total, 1)
  assert.equal((await get('/api/v4/personal_access_tokens?state=active&per_page=1')).total, pats.total - 1)
  const tokens = await get(`/api/v4/projects/${w.project.id}/deploy_tokens?per_page=1`)
  assert.equal(
    (await h.req('DELETE', `/api/v4/projects/${w.project.id}/deploy_tokens/${tokens.items[0]!.id as number}`, { token: w.root.token }))
      .statusCode,
    204,
  )
  assert.deepEqual(
    [
      (await get(`/api/v4/projects/${w.project.id}/deploy_tokens?active=false&per_page=1`)).total,
      (await get(`/api/v4/projects/${w.project.id}/deploy_tokens?active=true&per_page=1`)).total,
    ],
    [1, tokens.total - 1],
  )

  // Runners: tags (all of them), type and paused, in SQL.
  assert.equal((await get('/api/v4/runners/all?tag_list=x&per_page=1')).total, 2)
  assert.equal((await get('/api/v4/runners/all?tag_list=x,y&per_page=1')).total, 1)
  assert.equal((await get(`/api/v4/projects/${w.project.id}/runners?type=group_type&per_page=1`)).total, 3)
  assert.equal((await get('/api/v4/runners?paused=true')).total, 0)

  // Pipelines: X-Total is the filtered count, not every pipeline of the project.
  await h.services.ci!.pipelines.createForRef(w.project, 'b1', 'api', w.root.user.id, [])
  const all = await get(`/api/v4/projects/${w.project.id}/pipelines`)
  const b1 = await get(`/api/v4/projects/${w.project.id}/pipelines?ref=b1`)
  assert.deepEqual([b1.items.length, b1.total], [1, 1])
  assert.ok(all.total > 1)

  // Branch search filters before paging.
  assert.deepEqual(await get(`/api/v4/projects/${w.project.id}/repository/branches?search=B&per_page=1&page=2`), {
    items: [(await get(`/api/v4/projects/${w.project.id}/repository/branches/b2`)).items].flat(),
    total: 2,
  })
})
