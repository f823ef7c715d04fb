// CI-aware registry lifecycle (issue 13): tag history records which job pushed which digest for
// which ref; cleanup's Wharf extensions delete tags made for a branch that no longer exists (the
// branch's CI_COMMIT_REF_SLUG, recorded when the job pushed it) and keep what the latest successful
// pipeline of each protected branch pushed. Real git branches, real job tokens, the preview first.
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { test } from 'node:test'
import { GitRepos } from '../../src/git/repos.ts'
import type { Project } from '../../src/metadata/schema.ts'
import { pushSeededWith } from './api-harness.ts'
import { runnerHarness, updateJob, type RunnerHarness } from './runner-harness.ts'

const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`

/** Pushes a one-layer image (content from `seed`) as `tag` with a registry token for the given basic credentials. */
async function pushAs(h: RunnerHarness, user: string, password: string, name: string, tag: string, seed: string) {
  const jwt = await h.app.inject({
    method: 'GET',
    url: `/jwt/auth?service=container_registry&scope=repository:${name}:pull,push`,
    headers: { authorization: basic(user, password) },
  })
  assert.equal(jwt.statusCode, 200, jwt.body)
  const auth = { authorization: `Bearer ${(jwt.json() as { token: string }).token}` }
  const put = await pushSeededWith(h.app, auth, name, tag, seed)
  assert.equal(put.statusCode, 201, put.body)
  return String(put.headers['docker-content-digest'])
}

test('tag history names the job, pipeline and ref; cleanup removes deleted branches’ tags and keeps protected branches’ latest', async (t) => {
  const h = await runnerHarness(t)
  const { user: root, token: rootToken } = await h.root()
  const project = await h.project(root, 'team', 'app')
  const sha = await h.commit(project, { '.gitlab-ci.yml': 'build:\n  script: [docker build .]\n' })
  const bare = await h.services.git!.repos.ensure(project.id, GitRepos.ownerOf(project))
  const git = (...args: string[]) => execFileSync('git', ['--git-dir', bare, ...args], { encoding: 'utf8' })
  for (const branch of ['feature/login', 'fix-1']) git('update-ref', `refs/heads/${branch}`, sha)
  assert.equal((await h.req('POST', `/api/v4/projects/${project.id}/protected_branches?name=main`, { token: rootToken })).statusCode, 201)
  const runner = await h.runner(rootToken, { runner_type: 'instance_type' })

  /** A pipeline on `ref` whose one job pushes `tags` (seeded by `seed`) with its job token, then succeeds. */
  const pipelinePushing = async (p: Project, ref: string, tags: string[], seed: string, outcome: 'success' | 'failed' = 'success') => {
    const pipeline = await h.ci.pipelines.create({
      project: p,
      ref,
      refType: 'branch',
      sha,
      beforeSha: '0'.repeat(40),
      source: 'push',
      userId: root.id,
    })
    assert.ok(pipeline)
    const job = await h.take(runner.token)
    for (const tag of tags) await pushAs(h, 'gitlab-ci-token', job.token, 'team/app', tag, `${seed}-${tag}`)
    assert.equal((await updateJob(h, job, { state: outcome })).statusCode, 200)
    assert.equal((await h.ci.pipelines.findPipeline(pipeline.id))?.status, outcome)
    return { pipeline: pipeline.id, job: job.id }
  }
  const main1 = await pipelinePushing(project, 'main', ['main', 'sha-1'], 'm1')
  const feature = await pipelinePushing(project, 'feature/login', ['feature-login'], 'f')
  await pipelinePushing(project, 'fix-1', ['fix-1'], 'x')
  // A tag a person pushed, named like a branch slug: no job recorded it, so the branch rule leaves it.
  await pushAs(h, 'root', 'root-password-123', 'team/app', 'old-branch', 'manual')

  // History: who pushed which digest, for which job, pipeline and ref.
  const repo = (
    (await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories`, { token: rootToken })).json() as Array<{ id: number }>
  )[0]!
  const history = async (tag: string) =>
    (
      await h.req('GET', `/api/v4/projects/${project.id}/registry/repositories/${repo.id}/tags/${tag}/history`, { token: rootToken })
    ).json() as Array<Record<string, unknown>>
  const [fl] = await history('feature-login')
  assert.equal(fl!.job_id, feature.job)
  assert.equal(fl!.pipeline_id, feature.pipeline)
  assert.equal(fl!.ref, 'feature/login')
  assert.equal(fl!.ref_type, 'branch')
  assert.match(String(fl!.digest), /^sha256:/)
  const [manual] = await history('old-branch')
  assert.deepEqual([manual!.actor, manual!.job_id, manual!.ref], ['root', null, null])

  // A second main pipeline moves `main` and adds sha-2; one that fails afterwards does not count.
  const main2 = await pipelinePushing(project, 'main', ['main', 'sha-2'], 'm2')
  await pipelinePushing(project, 'main', ['sha-3'], 'm3', 'failed')
  const mainHistory = await history('main')
  assert.deepEqual(
    mainHistory.map((e) => e.pipeline_id),
    [main2.pipeline, main1.pipeline],
  )
  assert.notEqual(mainHistory[0]!.digest, mainHistory[1]!.digest)

  // The branch is deleted (real git); fix-1 still exists.
  git('update-ref', '-d', 'refs/heads/feature/login')

  const preview = async (attributes: Record<string, unknown>) => {
    const r = await h.req('POST', `/api/v4/projects/${project.id}/registry/cleanup_policy/preview`, { token: rootToken, body: attributes })
    assert.equal(r.statusCode, 200, r.body)
    const body = r.json() as {
      repositories: Array<{ delete: Array<{ name: string; reason: string }>; keep: Array<{ name: string; reason: string }> }>
    }
    return body.repositories[0]!
  }
  // Only the branch rule: exactly the deleted branch's tag, with why.
  const stale = await preview({ name_regex: null, remove_deleted_branch_tags: true })
  assert.deepEqual(stale.delete, [
    {
      name: 'feature-login',
      reason: `pushed by job ${feature.job} as the CI_COMMIT_REF_SLUG of branch 'feature/login', which no longer exists`,
    },
  ])
  // Everything by name, but what the latest successful pipeline of protected branch main pushed stays.
  const broad = await preview({ name_regex: '.*', keep_n: null, older_than: null, keep_protected_branch_latest: true })
  assert.deepEqual(
    broad.delete.map((d) => d.name),
    ['feature-login', 'fix-1', 'old-branch', 'sha-1', 'sha-3'],
  )
  assert.deepEqual(broad.keep, [
    { name: 'main', reason: `pushed by pipeline ${main2.pipeline}, the latest successful one of protected branch 'main'` },
    { name: 'sha-2', reason: `pushed by pipeline ${main2.pipeline}, the latest successful one of protected branch 'main'` },
  ])
  // The preview deleted nothing.
  const tags = async () => (await h.services.registry.manifests.tagsOf([repo.id])).get(repo.id)!.sort()
  assert.deepEqual(await tags(), ['feature-login', 'fix-1', 'main', 'old-branch', 'sha-1', 'sha-2', 'sha-3'])

  // Saved and run on its cadence: the run does what the preview said.
  const set = await h.req('PUT', `/api/v4/projects/${project.id}`, {
    token: rootToken,
    body: {
      container_expiration_policy_attributes: {
        enabled: true,
        cadence: '1d',
        name_regex: 'sha-.*',
        keep_n: null,
        older_than: null,
        remove_deleted_branch_tags: true,
        keep_protected_branch_latest: true,
      },
    },
  })
  assert.equal(set.statusCode, 200, set.body)
  const saved = (set.json() as { container_expiration_policy: Record<string, unknown> }).container_expiration_policy
  assert.deepEqual([saved.remove_deleted_branch_tags, saved.keep_protected_branch_latest], [true, true])
  const planned = await preview({})
  assert.deepEqual(
    planned.delete.map((d) => d.name),
    ['feature-login', 'sha-1', 'sha-3'],
  )
  const ran = await h.services.registry.manifests.policies.runDue(Date.now() + 2 * 86_400_000)
  assert.equal(ran.tags, 3)
  assert.deepEqual(await tags(), ['fix-1', 'main', 'old-branch', 'sha-2'])

  // Point main back at the digest main1 pushed (still held: sha-1 went, but the manifest is untagged, not collected).
  const restoreUrl = `/api/v4/projects/${project.id}/registry/repositories/${repo.id}/tags/main/restore`
  const restored = await h.req('POST', restoreUrl, { token: rootToken, body: { digest: mainHistory[1]!.digest } })
  assert.equal(restored.statusCode, 201, restored.body)
  const now = await history('main')
  assert.deepEqual([now.length, now[0]!.digest, now[0]!.actor, now[0]!.job_id], [3, mainHistory[1]!.digest, 'root', null])
  const head = await h.app.inject({
    method: 'HEAD',
    url: '/v2/team/app/manifests/main',
    headers: {
      authorization: `Bearer ${(await (await h.app.inject({ method: 'GET', url: '/jwt/auth?service=container_registry&scope=repository:team/app:pull', headers: { authorization: basic('root', 'root-password-123') } })).json()).token}`,
    },
  })
  assert.equal(head.headers['docker-content-digest'], mainHistory[1]!.digest)
  const unknown = await h.req('POST', restoreUrl, { token: rootToken, body: { digest: `sha256:${'0'.repeat(64)}` } })
  assert.equal(unknown.statusCode, 404, unknown.body)
})
