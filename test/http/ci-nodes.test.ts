// CI on several nodes (issue 15): two Wharf instances over one database, one storage directory and
// one git root, as two nodes behind a balancer. A job made through one node wakes a runner's long
// poll on the other (PostgreSQL's LISTEN/NOTIFY; on SQLite there is one node, so that test runs in
// the PostgreSQL pass only), and a job's log appended through both stays whole and masked.
import assert from 'node:assert/strict'
import { PassThrough } from 'node:stream'
import { setTimeout as sleep } from 'node:timers/promises'
import { describe, it } from 'node:test'
import { sql } from 'kysely'
import { TEST_DIALECT } from '../helpers/database.ts'
import { patchTrace, runnerHarness, updateJob, type RunnerHarness } from './runner-harness.ts'

const ON_POSTGRES = TEST_DIALECT === 'postgres' ? {} : { skip: 'several nodes share a PostgreSQL database (scripts/test-postgres.sh)' }

/** Nodes A and B; long polls held 5 s, so a wake-up that comes only from the poll's own timeout is far from the 1 s asked. */
async function twoNodes(t: Parameters<typeof runnerHarness>[0]) {
  const a = await runnerHarness(t, { longPollMs: 5_000 })
  const b = await runnerHarness(t, { longPollMs: 5_000, nodeOf: a })
  const { user: root, token } = await a.root()
  const project = await a.project(root, 'team', 'app')
  const runner = await a.runner(token, { runner_type: 'instance_type' })
  return { a, b, root, token, project, runner }
}

/** A long poll on `node` that is waiting (its first look found nothing) when this returns. */
async function waitingPoll(node: RunnerHarness, runnerToken: string) {
  const started = Date.now()
  const res = node.request(runnerToken)
  await sleep(500)
  return { res, started }
}

describe('CI across two nodes', () => {
  it('a job made through node A wakes a long poll held by node B within a second (push, then retry)', ON_POSTGRES, async (t) => {
    const { a, b, root, token, project, runner } = await twoNodes(t)
    const sha = await a.commit(project, { '.gitlab-ci.yml': 'build:\n  script: [make]\n' })

    let poll = await waitingPoll(b, runner.token)
    const pipeline = await a.pipeline(project, sha, root.id)
    const made = Date.now()
    let res = await poll.res
    assert.equal(res.statusCode, 201, res.body)
    assert.ok(Date.now() - made < 1_000, `picked up ${Date.now() - made} ms after it was made`)
    const job = res.json() as { id: number; token: string }
    assert.equal((await b.job(job.id)).pipeline_id, pipeline.id)
    assert.equal((await updateJob(b, job, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })).statusCode, 200)

    // A retry through A's API: the new job reaches B's waiting poll as fast.
    poll = await waitingPoll(b, runner.token)
    const retry = await a.req('POST', `/api/v4/projects/${project.id}/jobs/${job.id}/retry`, { token })
    assert.equal(retry.statusCode, 201, retry.body)
    const retried = Date.now()
    res = await poll.res
    assert.equal(res.statusCode, 201, res.body)
    assert.ok(Date.now() - retried < 1_000, `picked up ${Date.now() - retried} ms after the retry`)
    assert.equal((res.json() as { id: number }).id, (retry.json() as { id: number }).id)
    const second = res.json() as { id: number; token: string }
    assert.equal((await updateJob(b, second, { state: 'failed', failure_reason: 'script_failure', exit_code: 1 })).statusCode, 200)

    // B's listening connection is cut (a database failover, an idle timeout): B connects again and hears the next job.
    const cut = await sql<{ n: number }>`select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
      where datname = current_database() and pid <> pg_backend_pid() and query like 'listen %'`.execute(a.db)
    assert.equal(cut.rows[0]!.n, 1, 'one node listens')
    await sleep(1_000)
    poll = await waitingPoll(b, runner.token)
    const again = await a.req('POST', `/api/v4/projects/${project.id}/jobs/${second.id}/retry`, { token })
    assert.equal(again.statusCode, 201, again.body)
    const retriedAgain = Date.now()
    res = await poll.res
    assert.equal(res.statusCode, 201, res.body)
    assert.ok(Date.now() - retriedAgain < 1_000, `picked up ${Date.now() - retriedAgain} ms after the retry`)
  })

  it('a log appended through both nodes is whole, with a masked ID token split between them; both serve it while it streams', async (t) => {
    const { a, b, root, token, project, runner } = await twoNodes(t)
    await a.ci.variables.create('project', project.id, { key: 'API_KEY', value: 'abcd1234efgh5678', masked: true })
    const sha = await a.commit(project, {
      '.gitlab-ci.yml': 'deploy:\n  script: [x]\n  id_tokens:\n    VAULT_ID:\n      aud: https://vault.example.com\n',
    })
    await a.pipeline(project, sha, root.id)
    // The job starts on A: only A made the ID token, yet B must mask it.
    const job = await a.take(runner.token)
    const idToken = job.variables.find((v) => v.key === 'VAULT_ID')!.value
    assert.ok(idToken.length > 100)

    const text = `token ${idToken} key abcd1234efgh5678 and ${job.token} end\n`
    const cuts = [0, 20, 40, 150, text.length - 30, text.length - 3, text.length]
    for (let i = 0; i + 1 < cuts.length; i++) {
      const node = i % 2 === 0 ? a : b
      const r = await patchTrace(node, job, cuts[i]!, text.slice(cuts[i], cuts[i + 1]))
      assert.equal(r.statusCode, 202, r.body)
      // Mid-stream, both nodes serve what was stored so far, identically, never a secret.
      const [fromA, fromB] = await Promise.all(
        [a, b].map((n) => n.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })),
      )
      assert.equal(fromA!.body, fromB!.body)
      assert.ok(!fromB!.body.includes('abcd1234') && !fromB!.body.includes(idToken.slice(0, 40)), fromB!.body)
    }
    await updateJob(b, job, { state: 'success', exit_code: 0 })
    const log = await b.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.equal(log.body, 'token [MASKED] key [MASKED] and [MASKED] end\n')
  })

  it('serialises appends through both nodes: a retried chunk on B waits for A’s slow append of it, so the next chunk is kept', async (t) => {
    const { a, b, root, token, project, runner } = await twoNodes(t)
    await a.pipeline(project, await a.commit(project, { '.gitlab-ci.yml': 'j:\n  script: [x]\n' }), root.id)
    const job = await a.take(runner.token)
    const first = 'first chunk, slow to arrive at A\n'
    const second = 'second chunk, sent to B\n'

    // A's request body arrives slowly: half of it now, the rest once B has been asked.
    const body = new PassThrough()
    const slow = a.app.inject({
      method: 'PATCH',
      url: `/api/v4/jobs/${job.id}/trace`,
      headers: { 'job-token': job.token, 'content-type': 'text/plain', 'content-range': `0-${first.length - 1}` },
      payload: body,
    })
    body.write(first.slice(0, 10))
    for (let i = 0; i < 200; i++) {
      const row = await a.db.selectFrom('ci_job_traces').select('lock_owner').where('job_id', '=', job.id).executeTakeFirst()
      if (row?.lock_owner) break
      await sleep(10)
    }
    // The runner gave up on A and sends the chunk again to B, then the next one.
    const retried = patchTrace(b, job, 0, first).then(async (r) => {
      assert.equal(r.statusCode, 202, r.body)
      return patchTrace(b, job, first.length, second)
    })
    await sleep(300)
    body.end(first.slice(10))
    assert.equal((await slow).statusCode, 202)
    const next = await retried
    assert.equal(next.statusCode, 202, next.body)
    assert.equal(next.headers.range, `0-${first.length + second.length}`)
    const log = await a.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.equal(log.body, first + second)
  })
})
