// Issue 13's scale check: one repository with 10,000 tags across 200 branches (inserted through SQL,
// pointing at manifests of 20 real pushes), 150 of the branches gone from git. A bulk delete by
// regex, then the cleanup policy's preview and run (name_regex plus the CI-aware branch rule) remove
// exactly the tags computed independently here, each within a generous time bound; the measured
// times are reported (t.diagnostic) for bench/RESULTS.md.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { GitRepos } from '../../src/git/repos.ts'
import { apiHarness, bearer, pushSeeded } from './api-harness.ts'

const BRANCHES = 200
const PER_BRANCH = 50
const LIVE_BRANCHES = 50
const REAL_PUSHES = 20
const name = (b: number) => `b${String(b).padStart(3, '0')}`

test('10,000 tags: bulk delete by regex and a CI-aware cleanup policy remove exactly the expected tags, in bounded time', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const as = { token: root.token }
  const group = (await h.req('POST', '/api/v4/groups', { ...as, body: { path: 'team', name: 'team' } })).json() as { id: number }
  const project = (await h.req('POST', '/api/v4/projects', { ...as, body: { path: 'app', namespace_id: group.id } })).json() as {
    id: number
  }

  // Real pushes: 20 images, whose manifests the 10,000 tags share.
  for (let i = 0; i < REAL_PUSHES; i++) assert.equal((await pushSeeded(h, 'root', 'team/app', `real-${i}`, `seed-${i}`)).statusCode, 201)
  const repo = (await h.db.selectFrom('repositories').select('id').where('name', '=', 'team/app').executeTakeFirstOrThrow()).id
  const manifests = await h.db.selectFrom('manifests').select(['id', 'digest']).where('repository_id', '=', repo).orderBy('id').execute()
  assert.equal(manifests.length, REAL_PUSHES)

  // 200 branches × 50 tags: the branch's slug (pushed by a job for that branch) and 49 numbered ones.
  const now = new Date().toISOString()
  const tags: Array<{ repository_id: number; name: string; manifest_id: number; updated_at: string }> = []
  const pushes = []
  for (let b = 0; b < BRANCHES; b++) {
    const m = manifests[b % REAL_PUSHES]!
    tags.push({ repository_id: repo, name: name(b), manifest_id: m.id, updated_at: now })
    pushes.push({
      repository_id: repo,
      tag: name(b),
      digest: m.digest,
      actor: 'gitlab-ci-token',
      job_id: 1000 + b,
      pipeline_id: 500 + b,
      ref: name(b),
      ref_is_tag: 0,
      pushed_at: now,
    })
    for (let n = 1; n < PER_BRANCH; n++) tags.push({ repository_id: repo, name: `${name(b)}-${n}`, manifest_id: m.id, updated_at: now })
  }
  assert.equal(tags.length, 10_000)
  for (let i = 0; i < tags.length; i += 500)
    await h.db
      .insertInto('tags')
      .values(tags.slice(i, i + 500))
      .execute()
  for (let i = 0; i < pushes.length; i += 100)
    await h.db
      .insertInto('registry_tag_pushes')
      .values(pushes.slice(i, i + 100))
      .execute()

  // Real git: the first 50 branches exist, the other 150 were deleted.
  const bare = await h.services.git!.repos.ensure(project.id, GitRepos.ownerOf((await h.services.projects.findProjectRef(project.id))!))
  const git = (args: string[], input?: string) => execFileSync('git', ['--git-dir', bare, ...args], { encoding: 'utf8', input }).trim()
  const commit = git(['commit-tree', git(['hash-object', '-t', 'tree', '-w', '--stdin'], ''), '-m', 'base'])
  git(['update-ref', '--stdin'], Array.from({ length: LIVE_BRANCHES }, (_, b) => `create refs/heads/${name(b)} ${commit}\n`).join(''))

  const remaining = async () =>
    new Set((await h.db.selectFrom('tags').select('name').where('repository_id', '=', repo).execute()).map((r) => r.name))
  const expected = new Set([...tags.map((x) => x.name), ...Array.from({ length: REAL_PUSHES }, (_, i) => `real-${i}`)])
  const timed = async <T>(label: string, bound: number, fn: () => Promise<T>): Promise<T> => {
    const start = performance.now()
    const out = await fn()
    const ms = performance.now() - start
    t.diagnostic(`${label}: ${ms.toFixed(0)} ms`)
    assert.ok(ms < bound, `${label} took ${ms.toFixed(0)} ms (bound ${bound} ms)`)
    return out
  }

  // 1. Bulk delete (GitLab's API): the numbered tags of branches b000–b049, one request.
  const bulk = await timed('bulk delete of 2,450 of 10,020 tags', 15_000, () =>
    h.req(
      'DELETE',
      `/api/v4/projects/${project.id}/registry/repositories/${repo}/tags?name_regex_delete=${encodeURIComponent('b0[0-4][0-9]-[0-9]+')}`,
      as,
    ),
  )
  assert.equal(bulk.statusCode, 202, bulk.body)
  for (let b = 0; b < 50; b++) for (let n = 1; n < PER_BRANCH; n++) expected.delete(`${name(b)}-${n}`)
  assert.deepEqual(await remaining(), expected)

  // 2. The cleanup policy: numbered tags of b100–b199 by name, and the slug tags of the 150 deleted branches.
  const attributes = {
    enabled: true,
    cadence: '1d',
    name_regex: 'b1[0-9][0-9]-[0-9]+',
    keep_n: null,
    older_than: null,
    remove_deleted_branch_tags: true,
  }
  const preview = await timed('cleanup preview over 7,570 tags', 20_000, () =>
    h.req('POST', `/api/v4/projects/${project.id}/registry/cleanup_policy/preview`, { ...as, body: attributes }),
  )
  assert.equal(preview.statusCode, 200, preview.body)
  const planned = (preview.json() as { repositories: Array<{ delete: Array<{ name: string }> }> }).repositories[0]!.delete.map(
    (d) => d.name,
  )
  const goes = new Set<string>()
  for (let b = 100; b < 200; b++) for (let n = 1; n < PER_BRANCH; n++) goes.add(`${name(b)}-${n}`)
  for (let b = LIVE_BRANCHES; b < BRANCHES; b++) goes.add(name(b))
  assert.equal(goes.size, 4900 + 150)
  assert.deepEqual(new Set(planned), goes)

  assert.equal(
    (await h.req('PUT', `/api/v4/projects/${project.id}`, { ...as, body: { container_expiration_policy_attributes: attributes } }))
      .statusCode,
    200,
  )
  const ran = await timed('cleanup run deleting 5,050 tags', 20_000, () =>
    h.services.registry.manifests.policies.runDue(Date.now() + 2 * 86_400_000),
  )
  assert.equal(ran.tags, 5050)
  for (const x of goes) expected.delete(x)
  assert.deepEqual(await remaining(), expected)
  assert.equal(expected.size, 10_020 - 2450 - 5050)
  // The real pushes' tags still pull.
  const pull = await h.app.inject({
    method: 'GET',
    url: '/v2/team/app/manifests/real-7',
    headers: { ...(await bearer(h, 'root', 'team/app', 'pull')), accept: 'application/vnd.oci.image.manifest.v1+json' },
  })
  assert.equal(pull.statusCode, 200)
})
