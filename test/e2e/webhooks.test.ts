// End-to-end: webhooks from a running server to a real local receiver. A git push, a tag push, the
// pipeline the push starts and its job, an image tag pushed and deleted each reach the receiver in
// GitLab's shape (and Wharf's registry event), with the secret token; deliveries queued while the
// receiver is down survive a server restart and arrive afterwards.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult } from '../helpers/run.ts'
import { gitClient, type GitClient } from '../helpers/git.ts'
import { http, sha256 } from '../helpers/registry.ts'

interface Got {
  headers: IncomingHttpHeaders
  body: Record<string, any>
}

let wharf: Wharf
let client: GitClient
let receiver: Server
let receiverUrl: string
let projectId: number
const got: Got[] = []

function listen(port = 0): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      got.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
      res.writeHead(200).end('ok')
    })
  })
  return new Promise((resolve) => server.listen(port, '127.0.0.1', () => resolve(server)))
}

/** Waits for a delivery matching `pred`; fails naming what did arrive. */
async function arrival(what: string, pred: (g: Got) => boolean, timeoutMs = 20_000): Promise<Got> {
  const until = Date.now() + timeoutMs
  for (;;) {
    const hit = got.find(pred)
    if (hit) return hit
    if (Date.now() > until)
      assert.fail(
        `no ${what} delivered; got: ${got.map((g) => `${g.headers['x-gitlab-event']} ${g.body.object_kind}/${g.body.object_attributes?.status ?? g.body.build_status ?? g.body.event_name ?? ''}`).join(', ')}\n${await wharf.logTail(20)}`,
      )
    await new Promise((r) => setTimeout(r, 100))
  }
}

before(async () => {
  receiver = await listen()
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
  // The receiver is on loopback: allowed here by the administrator's setting (refused by default).
  wharf = await startWharf({ env: { WHARF_WEBHOOKS_ALLOW_LOCAL_NETWORK: 'true' } })
  client = await gitClient()
  projectId = await wharf.createProject('hooks/app', 'private')
  const r = await wharf.api('POST', `/api/v4/projects/${projectId}/hooks`, {
    url: receiverUrl,
    token: 'hook-secret',
    push_events: true,
    tag_push_events: true,
    pipeline_events: true,
    job_events: true,
    registry_events: true,
  })
  assert.equal(r.status, 201, r.describe)
})

after(async () => {
  await wharf?.stop()
  await client?.dispose()
  receiver?.close()
})

describe('webhooks', { timeout: 120_000 }, () => {
  it("a git push, its pipeline and job, and a tag push are delivered in GitLab's shapes with the token", async () => {
    const dir = path.join(client.work, 'app')
    const creds = { username: 'root', password: wharf.rootPassword }
    const git = async (...args: string[]) => {
      const r = await client.git(args, { cwd: dir, creds })
      assert.equal(r.code, 0, describeResult(r))
      return r.stdout.trim()
    }
    assert.equal((await client.git(['init', '-q', '-b', 'main', dir])).code, 0)
    await writeFile(path.join(dir, '.gitlab-ci.yml'), 'build:\n  script: [make]\n')
    await git('add', '-A')
    await git('commit', '-q', '-m', 'Add CI\n\nwith a body')
    const sha = await git('rev-parse', 'HEAD')
    await git('remote', 'add', 'origin', `${wharf.url}/hooks/app.git`)
    await git('push', '-q', 'origin', 'main')

    const push = await arrival('push hook', (g) => g.headers['x-gitlab-event'] === 'Push Hook')
    assert.equal(push.headers['x-gitlab-token'], 'hook-secret')
    assert.match(String(push.headers['x-gitlab-event-uuid']), /^[0-9a-f-]{36}$/)
    assert.equal(push.body.object_kind, 'push')
    assert.equal(push.body.ref, 'refs/heads/main')
    assert.equal(push.body.before, '0'.repeat(40))
    assert.equal(push.body.after, sha)
    assert.equal(push.body.checkout_sha, sha)
    assert.equal(push.body.user_username, 'root')
    assert.equal(push.body.project_id, projectId)
    assert.equal(push.body.project.path_with_namespace, 'hooks/app')
    assert.equal(push.body.project.git_http_url, `${wharf.url}/hooks/app.git`)
    assert.equal(push.body.total_commits_count, 1)
    assert.deepEqual(
      push.body.commits.map((c: { id: string; title: string }) => [c.id, c.title]),
      [[sha, 'Add CI']],
    )

    // The push created a pipeline whose job waits for a runner: pending, then canceled by the API.
    const pending = await arrival(
      'pipeline hook (pending)',
      (g) => g.body.object_kind === 'pipeline' && g.body.object_attributes.status === 'pending',
    )
    assert.equal(pending.headers['x-gitlab-event'], 'Pipeline Hook')
    assert.equal(pending.body.object_attributes.sha, sha)
    assert.equal(pending.body.object_attributes.source, 'push')
    assert.deepEqual(
      pending.body.builds.map((b: { name: string; status: string }) => [b.name, b.status]),
      [['build', 'pending']],
    )
    assert.equal(pending.body.commit.id, sha)
    const job = await arrival('job hook (pending)', (g) => g.body.object_kind === 'build' && g.body.build_status === 'pending')
    assert.equal(job.headers['x-gitlab-event'], 'Job Hook')
    assert.equal(job.body.build_name, 'build')
    const pipelineId = pending.body.object_attributes.id
    assert.equal((await wharf.api('POST', `/api/v4/projects/${projectId}/pipelines/${pipelineId}/cancel`)).status, 200)
    await arrival('pipeline hook (canceled)', (g) => g.body.object_kind === 'pipeline' && g.body.object_attributes.status === 'canceled')
    await arrival('job hook (canceled)', (g) => g.body.object_kind === 'build' && g.body.build_status === 'canceled')
    // Each status is reported once.
    assert.equal(got.filter((g) => g.body.object_kind === 'pipeline' && g.body.object_attributes.status === 'pending').length, 1)

    await git('tag', 'v1.0.0')
    await git('push', '-q', 'origin', 'v1.0.0')
    const tag = await arrival('tag push hook', (g) => g.headers['x-gitlab-event'] === 'Tag Push Hook')
    assert.equal(tag.body.object_kind, 'tag_push')
    assert.equal(tag.body.ref, 'refs/tags/v1.0.0')
  })

  it('an image tag pushed and deleted is delivered as a registry event with digest, size and actor', async () => {
    const base = wharf.url
    const layer = Buffer.from('webhook layer')
    const config = Buffer.from(
      JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }),
    )
    for (const blob of [layer, config]) {
      const r = await http('POST', `${base}/v2/hooks/app/blobs/uploads/?digest=${sha256(blob)}`, {
        body: blob,
        headers: { 'content-type': 'application/octet-stream' },
      })
      assert.equal(r.status, 201, r.describe)
    }
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      }),
    )
    const put = await http('PUT', `${base}/v2/hooks/app/manifests/1.0`, {
      body: manifest,
      headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
    })
    assert.equal(put.status, 201, put.describe)
    const pushed = await arrival('registry hook (push)', (g) => g.body.object_kind === 'registry' && g.body.event_name === 'tag_push')
    assert.equal(pushed.headers['x-gitlab-event'], 'Registry Hook')
    assert.deepEqual(
      [
        pushed.body.repository.name,
        pushed.body.repository.location,
        pushed.body.tag,
        pushed.body.digest,
        pushed.body.size,
        pushed.body.actor,
      ],
      ['hooks/app', `${wharf.host}/hooks/app`, '1.0', sha256(manifest), manifest.length + config.length + layer.length, 'root'],
    )

    const repos = (await wharf.api('GET', `/api/v4/projects/${projectId}/registry/repositories`)).json as Array<{ id: number }>
    assert.equal((await wharf.api('DELETE', `/api/v4/projects/${projectId}/registry/repositories/${repos[0]!.id}/tags/1.0`)).status, 200)
    const deleted = await arrival('registry hook (delete)', (g) => g.body.object_kind === 'registry' && g.body.event_name === 'tag_delete')
    assert.equal(deleted.body.tag, '1.0')
  })

  it('deliveries queued while the receiver is down survive a restart and arrive later; the log shows them', async () => {
    const port = (receiver.address() as AddressInfo).port
    await new Promise<void>((r) => receiver.close(() => r()))
    receiver.closeAllConnections()
    const hooks = (await wharf.api('GET', `/api/v4/projects/${projectId}/hooks`)).json as Array<{ id: number }>
    const hookId = hooks[0]!.id
    assert.equal((await wharf.api('POST', `/api/v4/projects/${projectId}/hooks/${hookId}/test/push_events`)).status, 201)
    // The first attempt fails (connection refused) and is recorded.
    const until = Date.now() + 20_000
    let failed: { status: string; internal_error_message: string | null; attempts: number } | undefined
    while (Date.now() < until) {
      const events = (await wharf.api('GET', `/api/v4/projects/${projectId}/hooks/${hookId}/events`)).json as Array<{
        request_data: { test?: boolean }
        status: string
        internal_error_message: string | null
        attempts: number
      }>
      failed = events.find((e) => e.request_data.test && e.attempts > 0)
      if (failed) break
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.ok(failed, 'the failed attempt is listed')
    assert.equal(failed.status, 'pending')
    assert.match(String(failed.internal_error_message), /ECONNREFUSED/)

    await wharf.restart()
    receiver = await listen(port)
    const test = await arrival('test delivery after restart', (g) => g.body.test === true, 60_000)
    assert.equal(test.body.object_kind, 'push')
    const events = (await wharf.api('GET', `/api/v4/projects/${projectId}/hooks/${hookId}/events`)).json as Array<{
      request_data: { test?: boolean }
      status: string
      response_status: number
    }>
    const done = events.find((e) => e.request_data.test)!
    assert.deepEqual([done.status, done.response_status], ['delivered', 200])
  })
})
