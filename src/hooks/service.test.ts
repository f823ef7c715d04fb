import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { Sealer } from '../core/sealing.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import { createProjects } from '../projects/index.ts'
import { Users } from '../users/index.ts'
import { branchMatches, DEFAULT_WEBHOOK_OPTIONS, Webhooks, type WebhookOptions } from './service.ts'

interface Received {
  headers: IncomingHttpHeaders
  body: Record<string, unknown>
}

/** A real HTTP receiver that answers `statuses` in turn (then 200) and records what it got. */
async function receiver(t: TestContext, statuses: number[] = []) {
  const got: Received[] = []
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      got.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as Record<string, unknown> })
      res.writeHead(statuses.shift() ?? 200, { 'content-type': 'text/plain' }).end('thanks')
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => server.close(() => r())))
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got }
}

async function world(t: TestContext, opts: Partial<WebhookOptions> = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-hooks-'))
  const db = await openTestDb(dir)
  const { projects, groups } = createProjects(db, async () => undefined)
  const root = await new Users(db).createUser({ username: 'root', name: 'Root', password: 'root-password', isAdmin: true })
  const group = await groups.createGroup(root, { path: 'g', visibility: 'private' })
  const project = await projects.createProject(root, { namespaceId: group.id, path: 'app' })
  const sealer = new Sealer(randomBytes(32))
  const make = () =>
    new Webhooks(db, sealer, {
      ...DEFAULT_WEBHOOK_OPTIONS,
      outbound: { allowLocalNetwork: true, allowedHosts: [] },
      instanceUrl: 'http://wharf.test',
      userAgent: 'Wharf',
      retryBaseMs: 50,
      ...opts,
    })
  const hooks = make()
  t.after(async () => {
    await hooks.close()
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  return { db, hooks, make, project, group }
}

test("a queued event is delivered once per interested hook, with GitLab's headers and the secret token", async (t) => {
  const { hooks, project, group } = await world(t)
  const r = await receiver(t)
  const projectHook = await hooks.create({ projectId: project.id }, { url: r.url, token: 's3cret', push_events: true })
  await hooks.create({ groupId: group.id }, { url: r.url, push_events: true })
  await hooks.create({ projectId: project.id }, { url: r.url, push_events: false, pipeline_events: true })
  assert.notEqual(projectHook.token_sealed, 's3cret')
  await hooks.start()
  const e = {
    projectId: project.id,
    groupIds: [group.id],
    trigger: 'push_events' as const,
    eventKey: 'push:1:0',
    payload: { object_kind: 'push' },
    branch: 'main',
  }
  assert.equal(await hooks.enqueue(e), 2)
  assert.equal(await hooks.enqueue(e), 2, 'a redelivered event matches the same hooks...')
  await hooks.idle()
  assert.equal(r.got.length, 2, '...but queues nothing twice')
  const withToken = r.got.find((g) => g.headers['x-gitlab-token'])!
  assert.equal(withToken.headers['x-gitlab-token'], 's3cret')
  for (const g of r.got) {
    assert.equal(g.headers['x-gitlab-event'], 'Push Hook')
    assert.match(String(g.headers['x-gitlab-event-uuid']), /^[0-9a-f-]{36}$/)
    assert.equal(g.headers['content-type'], 'application/json')
    assert.deepEqual(g.body, { object_kind: 'push' })
  }
  const [d] = (await hooks.deliveries(projectHook, { limit: 10, offset: 0 })).rows
  assert.equal(d!.status, 'delivered')
  assert.equal(d!.response_status, 200)
  assert.equal(d!.response_body, 'thanks')
})

test('a failing receiver is retried with backoff until it answers 2xx; past the attempts the delivery is given up', async (t) => {
  const { hooks, project } = await world(t, { maxAttempts: 3 })
  const r = await receiver(t, [500, 502])
  const hook = await hooks.create({ projectId: project.id }, { url: r.url, pipeline_events: true })
  await hooks.start()
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'pipeline_events', eventKey: 'p1', payload: { n: 1 } })
  await hooks.idle()
  assert.equal(r.got.length, 3)
  const [ok] = (await hooks.deliveries(hook, { limit: 10, offset: 0 })).rows
  assert.equal(ok!.status, 'delivered')
  assert.equal(ok!.attempts, 3)

  const down = await receiver(t, [503, 503, 503, 503])
  const other = await hooks.create({ projectId: project.id }, { url: down.url, job_events: true })
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'job_events', eventKey: 'j1', payload: {} })
  await hooks.idle()
  const [failed] = (await hooks.deliveries(other, { limit: 10, offset: 0 })).rows
  assert.equal(failed!.status, 'failed')
  assert.equal(failed!.attempts, 3)
  assert.equal(failed!.error, 'the receiver answered 503')
  // Resending starts over: one more 503, then the receiver answers.
  await hooks.resend(other, failed!.id)
  await hooks.idle()
  assert.equal(down.got.length, 5)
  assert.equal((await hooks.deliveries(other, { limit: 10, offset: 0 })).rows[0]!.status, 'delivered')
})

test('queued deliveries survive a restart: a new sender on the same database sends them, half-sent ones included', async (t) => {
  const { db, hooks, make, project } = await world(t)
  const r = await receiver(t)
  const hook = await hooks.create({ projectId: project.id }, { url: r.url, registry_events: true })
  // Not started: as if the process died right after queueing.
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'registry_events', eventKey: 'r1', payload: { a: 1 } })
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'registry_events', eventKey: 'r2', payload: { a: 2 } })
  // Claimed by a sender that died an hour ago.
  const anHourAgo = new Date(Date.now() - 3_600_000).toISOString()
  await db.updateTable('webhook_deliveries').set({ status: 'sending', updated_at: anHourAgo }).where('event_key', '=', 'r2').execute()
  assert.equal(r.got.length, 0)
  const next = make()
  t.after(() => next.close())
  await next.start()
  await next.idle()
  assert.deepEqual(
    r.got.map((g) => g.body).sort((a, b) => Number(a.a) - Number(b.a)),
    [{ a: 1 }, { a: 2 }],
  )
  assert.deepEqual(
    (await next.deliveries(hook, { limit: 10, offset: 0 })).rows.map((d) => d.status),
    ['delivered', 'delivered'],
  )
})

test('two nodes share the queue: a node starting while another sends a delivery does not send it again', async (t) => {
  const { hooks, make, project } = await world(t)
  // A receiver that holds its answer until told, so the first node's send is in flight.
  let answer: () => void = () => undefined
  const held = new Promise<void>((r) => (answer = r))
  let requests = 0
  let arrived: () => void = () => undefined
  const first = new Promise<void>((r) => (arrived = r))
  const server = createServer((req, res) => {
    requests++
    req.resume().on('end', () => {
      arrived()
      void held.then(() => res.writeHead(200).end('ok'))
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.after(() => new Promise<void>((r) => server.close(() => r())))
  await hooks.create(
    { projectId: project.id },
    { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, registry_events: true },
  )
  await hooks.start()
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'registry_events', eventKey: 'e1', payload: { a: 1 } })
  await first
  // The second node starts (and ticks) while the first one's delivery is `sending`.
  const other = make()
  t.after(() => other.close())
  await other.start()
  await new Promise((r) => setTimeout(r, 300))
  answer()
  await hooks.idle()
  await other.idle()
  assert.equal(requests, 1, 'the delivery in flight on the first node was not sent again by the second')
})

test('a receiver that does not answer in time fails the attempt instead of holding the sender', async (t) => {
  const { hooks, project } = await world(t, { timeoutMs: 300, maxAttempts: 1 })
  const silent = createServer(() => undefined)
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  t.after(
    () =>
      new Promise<void>((r) => {
        silent.closeAllConnections()
        silent.close(() => r())
      }),
  )
  const hook = await hooks.create(
    { projectId: project.id },
    { url: `http://127.0.0.1:${(silent.address() as AddressInfo).port}/`, push_events: true },
  )
  await hooks.start()
  const started = Date.now()
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'push_events', eventKey: 'x', payload: {} })
  await hooks.idle()
  assert.ok(Date.now() - started < 3000)
  const [d] = (await hooks.deliveries(hook, { limit: 1, offset: 0 })).rows
  assert.equal(d!.status, 'failed')
  assert.match(d!.error!, /no response within 0.3 s/)
})

test('the sender refuses a hook whose host now resolves to the local network', async (t) => {
  const { db, hooks, project } = await world(t, { outbound: { allowLocalNetwork: false, allowedHosts: [] }, maxAttempts: 1 })
  const r = await receiver(t)
  const hook = await hooks.create({ projectId: project.id }, { url: 'http://8.8.8.8/hook', push_events: true })
  // As if DNS had changed since the hook was saved (creation checks; each attempt checks again).
  await db.updateTable('webhooks').set({ url: r.url }).where('id', '=', hook.id).execute()
  await hooks.start()
  await hooks.enqueue({ projectId: project.id, groupIds: [], trigger: 'push_events', eventKey: 'x', payload: {} })
  await hooks.idle()
  assert.equal(r.got.length, 0)
  const [d] = (await hooks.deliveries(hook, { limit: 1, offset: 0 })).rows
  assert.match(d!.error!, /local network/)
})

test('push_events_branch_filter: empty matches all, wildcards, else exact', () => {
  assert.equal(branchMatches('', 'feature/x'), true)
  assert.equal(branchMatches('main', 'main'), true)
  assert.equal(branchMatches('main', 'main2'), false)
  assert.equal(branchMatches('release/*', 'release/1.0'), true)
  assert.equal(branchMatches('release/*', 'hotfix/1.0'), false)
  assert.equal(branchMatches('a.b*', 'axb'), false)
})
