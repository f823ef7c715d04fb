// Job lists page in SQL: GET /projects/:id/pipelines/:pid/jobs and /projects/:id/jobs honour
// per_page (at most 100), send GitLab's pagination headers, and build a page's entities with a
// bounded number of queries and git processes, not one per job (a 10,000-job pipeline once spawned
// 10,000 `git cat-file` processes and took the server down with EMFILE).
import assert from 'node:assert/strict'
import type { ChildProcess } from 'node:child_process'
import { execFileSync } from 'node:child_process'
import dc from 'node:diagnostics_channel'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import type { LightMyRequestResponse } from 'fastify'
import { apiHarness } from './api-harness.ts'

type JobJson = {
  id: number
  name: string
  stage: string
  status: string
  commit: { id: string } | null
  pipeline: { id: number }
  user: { username: string } | null
}

async function setup(t: TestContext, ci: string) {
  const h = await apiHarness(t)
  const { user: root, token } = await h.root()
  const group = await h.services.groups.createGroup(root, { path: 'ci', visibility: 'private' })
  const project = await h.services.projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const bare = await h.services.git!.repository(project)
  const work = join(h.tmpDir, 'work')
  await mkdir(work)
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: h.tmpDir,
    GIT_AUTHOR_NAME: 'A',
    GIT_AUTHOR_EMAIL: 'a@x',
    GIT_COMMITTER_NAME: 'A',
    GIT_COMMITTER_EMAIL: 'a@x',
  }
  const git = (...args: string[]) => execFileSync('git', args, { cwd: work, env, encoding: 'utf8' }).trim()
  git('init', '-q', '-b', 'main')
  await writeFile(join(work, '.gitlab-ci.yml'), ci)
  git('add', '-A')
  git('commit', '-q', '-m', 'ci')
  git('push', '-q', bare, 'HEAD:refs/heads/main')
  return { h, root, token, project, sha: git('rev-parse', 'HEAD') }
}

/** The git processes started while `fn` runs (Node's `child_process` diagnostics channel: every spawn, ours or not). */
async function gitSpawns<T>(fn: () => Promise<T>): Promise<{ result: T; git: number }> {
  const seen: ChildProcess[] = []
  const onSpawn = (m: unknown) => void seen.push((m as { process: ChildProcess }).process)
  dc.subscribe('child_process', onSpawn)
  try {
    const result = await fn()
    return { result, git: seen.filter((p) => p.spawnargs[0] === 'git').length }
  } finally {
    dc.unsubscribe('child_process', onSpawn)
  }
}

function headers(res: LightMyRequestResponse) {
  const {
    'x-total': total,
    'x-total-pages': pages,
    'x-page': page,
    'x-per-page': perPage,
    'x-next-page': next,
    'x-prev-page': prev,
  } = res.headers
  return { total, pages, page, perPage, next, prev }
}

const THREE_STAGES = `stages: [build, test, deploy]
compile: { stage: build, script: [make] }
unit: { stage: test, script: [make test] }
lint: { stage: test, script: [make lint] }
e2e: { stage: test, script: [make e2e] }
ship: { stage: deploy, script: [make ship], when: manual }
`

test('a pipeline made through .gitlab-ci.yml pages its jobs in stage order, with headers; scope and the project job list too', async (t) => {
  const { h, token, project, sha } = await setup(t, THREE_STAGES)
  const run = await h.req('POST', `/api/v4/projects/${project.id}/pipeline`, { token, body: { ref: 'main' } })
  assert.equal(run.statusCode, 201, run.body)
  const pid = (run.json() as { id: number }).id
  const base = `/api/v4/projects/${project.id}/pipelines/${pid}/jobs`

  const all = await h.req('GET', base, { token })
  assert.equal(all.statusCode, 200, all.body)
  const names = (all.json() as JobJson[]).map((j) => j.name)
  assert.deepEqual(names, ['compile', 'unit', 'lint', 'e2e', 'ship'])
  assert.deepEqual(headers(all), { total: '5', pages: '1', page: '1', perPage: '20', next: '', prev: '' })

  const seen: string[] = []
  for (let page = 1; page <= 3; page++) {
    const res = await h.req('GET', `${base}?per_page=2&page=${page}`, { token })
    assert.deepEqual(headers(res), {
      total: '5',
      pages: '3',
      page: String(page),
      perPage: '2',
      next: page < 3 ? String(page + 1) : '',
      prev: page > 1 ? String(page - 1) : '',
    })
    const jobs = res.json() as JobJson[]
    for (const j of jobs) {
      assert.equal(j.commit?.id, sha)
      assert.equal(j.pipeline.id, pid)
      assert.equal(j.user?.username, 'root')
    }
    seen.push(...jobs.map((j) => j.name))
  }
  assert.deepEqual(seen, names)
  const link = String((await h.req('GET', `${base}?per_page=2&page=2`, { token })).headers.link)
  assert.match(link, /per_page=2&page=1>; rel="prev"/)
  assert.match(link, /per_page=2&page=3>; rel="next"/)

  // The total counts what the filter keeps.
  const pending = await h.req('GET', `${base}?scope[]=pending&scope[]=running&per_page=1`, { token })
  assert.deepEqual(
    (pending.json() as JobJson[]).map((j) => j.name),
    ['compile'],
  )
  assert.equal(pending.headers['x-total'], '1')
  const created = await h.req('GET', `${base}?scope=created&per_page=3&page=2`, { token })
  assert.deepEqual(
    (created.json() as JobJson[]).map((j) => j.name),
    ['ship'],
  )
  assert.equal(created.headers['x-total'], '4')

  // /projects/:id/jobs: newest first, with headers (it sent none before).
  const projectJobs = await h.req('GET', `/api/v4/projects/${project.id}/jobs?per_page=4`, { token })
  assert.deepEqual(headers(projectJobs), { total: '5', pages: '2', page: '1', perPage: '4', next: '2', prev: '' })
  assert.deepEqual(
    (projectJobs.json() as JobJson[]).map((j) => j.name),
    ['ship', 'e2e', 'lint', 'unit'],
  )
})

test('a 10,000-job pipeline: one page of per_page jobs (at most 100), GitLab headers, one git process, quickly', {
  timeout: 120_000,
}, async (t) => {
  const { h, token, project, root } = await setup(t, 'only: { script: [make] }\n')
  const p = await h.services.ci!.pipelines.createForRef(project, 'main', 'api', root.id, [])
  const [first] = await h.services.ci!.pipelines.jobs(p.id)
  assert.ok(first)
  // Creating 10,000 jobs through YAML would take minutes; rows like the real one, inserted directly.
  const { id: _, ...template } = { ...(await h.db.selectFrom('ci_jobs').selectAll().where('id', '=', first.id).executeTakeFirstOrThrow()) }
  const TOTAL = 10_000
  for (let from = 1; from < TOTAL; from += 500) {
    const rows = Array.from({ length: Math.min(500, TOTAL - from) }, (_v, i) => ({
      ...template,
      name: `job ${from + i}`,
      stage: `stage-${(from + i) % 7}`,
      stage_idx: (from + i) % 7,
    }))
    await h.db.insertInto('ci_jobs').values(rows).execute()
  }
  const base = `/api/v4/projects/${project.id}/pipelines/${p.id}/jobs`

  const rssBefore = process.memoryUsage().rss
  const started = performance.now()
  const { result: res, git } = await gitSpawns(() => h.req('GET', `${base}?per_page=100`, { token }))
  const ms = performance.now() - started
  assert.equal(res.statusCode, 200, res.body.slice(0, 500))
  const jobs = res.json() as JobJson[]
  assert.equal(jobs.length, 100)
  assert.deepEqual(headers(res), { total: String(TOTAL), pages: '100', page: '1', perPage: '100', next: '2', prev: '' })
  assert.match(String(res.headers.link), /per_page=100&page=100>; rel="last"/)
  assert.ok(jobs.every((j) => j.commit !== null && j.pipeline.id === p.id))
  // The commit is read once for the page (one `git cat-file --batch`), not once per job.
  assert.ok(git <= 1, `${git} git processes for one page`)
  assert.ok(ms < 5_000, `first page took ${ms} ms`)
  t.diagnostic(
    `10,000-job pipeline, first page of 100: ${Math.round(ms)} ms, ${git} git process(es), rss ${Math.round(process.memoryUsage().rss / 2 ** 20)} MiB (before: ${Math.round(rssBefore / 2 ** 20)} MiB)`,
  )

  // per_page is capped at GitLab's 100; the default is 20; the last page is the remainder.
  const capped = await h.req('GET', `${base}?per_page=1000`, { token })
  assert.equal((capped.json() as JobJson[]).length, 100)
  assert.equal(capped.headers['x-per-page'], '100')
  const dflt = await h.req('GET', base, { token })
  assert.equal((dflt.json() as JobJson[]).length, 20)
  assert.equal(dflt.headers['x-total-pages'], '500')
  const last = await h.req('GET', `${base}?per_page=100&page=100`, { token })
  assert.equal((last.json() as JobJson[]).length, 100)
  assert.deepEqual(headers(last), { total: String(TOTAL), pages: '100', page: '100', perPage: '100', next: '', prev: '99' })
  assert.equal((await h.req('GET', `${base}?per_page=100&page=101`, { token })).json().length, 0)

  // The project's job list over the same 10,000 rows pages the same way.
  const { result: projectJobs, git: git2 } = await gitSpawns(() =>
    h.req('GET', `/api/v4/projects/${project.id}/jobs?per_page=50&page=3`, { token }),
  )
  assert.equal((projectJobs.json() as JobJson[]).length, 50)
  assert.deepEqual(headers(projectJobs), { total: String(TOTAL), pages: '200', page: '3', perPage: '50', next: '4', prev: '2' })
  assert.ok(git2 <= 1, `${git2} git processes for one page`)
})
