// How many SQL statements a tag push costs. On PostgreSQL each is a network round trip with its
// own encoding and parsing, which was most of a manifest PUT's CPU; the counts here keep the PUT
// at what bench/RESULTS.md measured ("Fewer statements per manifest PUT"), not counting the
// transaction's BEGIN and COMMIT.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { connectHookSources } from '../../src/hooks/sources.ts'
import { TEST_DIALECT } from '../helpers/database.ts'
import { apiHarness, bearer, pushSeeded, type ApiHarness } from './api-harness.ts'

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

/** The webhooks' registry events listen to the tag pushes, as the server wires them (the sender is not started: nothing is sent). */
function hookSources(t: Parameters<typeof apiHarness>[0], h: ApiHarness): void {
  const off = connectHookSources({
    db: h.db,
    hooks: h.services.hooks,
    projectAccess: h.services.projectAccess,
    publicUrl: 'http://wharf.test:5000',
    registryHost: 'wharf.test:5000',
    manifests: h.services.registry.manifests,
    log: { warn: (obj, msg) => assert.fail(`${msg}: ${String((obj as { err?: Error }).err?.stack)}`) },
  })
  t.after(off)
}

/** The manifest of the image pushSeeded(seed) pushed, made new by an annotation (its blobs are there). */
function manifestOver(seed: string, note: string): Buffer {
  const layer = Buffer.from(`layer-${seed}`)
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [sha256(layer)] } }))
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
      annotations: { note },
    }),
  )
}

test('a tag push: three statements on PostgreSQL for a new manifest, four for one pushed again, one for the webhooks', async (t) => {
  const statements: string[] = []
  let counting = false
  // BEGIN and COMMIT left out: Kysely logs them on SQLite only.
  const control = /^(begin|commit|start transaction)/i
  const h = await apiHarness(t, { log: (e) => void (counting && !control.test(e.query.sql) && statements.push(e.query.sql)) })
  hookSources(t, h)
  const root = await h.root()
  const group = (await h.req('POST', '/api/v4/groups', { token: root.token, body: { path: 'team', name: 'team' } })).json() as {
    id: number
  }
  const created = await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app', namespace_id: group.id } })
  assert.equal(created.statusCode, 201, created.body)
  // The blobs, and a first push under the tag, so the counted ones move it (the untagging included).
  const first = await pushSeeded(h, 'root', 'team/app', 'latest', 'base')
  assert.equal(first.statusCode, 201)
  const base = first.headers['docker-content-digest'] as string
  const auth = await bearer(h, 'root', 'team/app', 'pull,push')
  const second = manifestOver('base', 'second')

  /** The statements of one PUT of `manifest` under `latest`, and of the registry event's look-up after it. */
  const counted = async (manifest: Buffer) => {
    statements.length = 0
    counting = true
    const put = await h.app.inject({
      method: 'PUT',
      url: '/v2/team/app/manifests/latest',
      headers: { ...auth, 'content-type': 'application/vnd.oci.image.manifest.v1+json' },
      payload: manifest,
    })
    assert.equal(put.statusCode, 201, put.body)
    assert.equal(put.headers['docker-content-digest'], sha256(manifest))
    // The look-up runs after the reply; its statement reads the webhooks.
    for (let i = 0; i < 200 && !statements.some((s) => /\bwebhooks\b/.test(s)); i++) await sleep(25)
    counting = false
    assert.equal(statements.filter((s) => /\bwebhooks\b/.test(s)).length, 1, statements.join('\n'))
    return statements.length - 1
  }
  const state = async () => ({
    tag: (
      await h.db
        .selectFrom('tags as t')
        .innerJoin('manifests as m', 'm.id', 't.manifest_id')
        .select('m.digest')
        .where('t.name', '=', 'latest')
        .executeTakeFirstOrThrow()
    ).digest,
    untagged: new Map(
      (await h.db.selectFrom('manifests').select(['digest', 'untagged_at']).execute()).map((m) => [m.digest, m.untagged_at]),
    ),
    history: (await h.db.selectFrom('registry_tag_pushes').select(['digest', 'actor']).orderBy('id').execute()).map(
      (r) => `${r.actor} ${r.digest}`,
    ),
  })

  // A new manifest. Rules and quota; repository and blob sizes; then the writes: on PostgreSQL one
  // statement (manifest, references, untagging, tag, history), on SQLite one each.
  assert.equal(await counted(second), TEST_DIALECT === 'postgres' ? 3 : 7, statements.join('\n'))
  let now = await state()
  assert.equal(now.tag, sha256(second))
  assert.notEqual(now.untagged.get(base), null, 'the manifest the tag left is untagged')
  assert.equal(now.untagged.get(sha256(second)), null)
  assert.deepEqual(now.history, [`root ${base}`, `root ${sha256(second)}`])
  const refs = await h.db
    .selectFrom('manifest_references as r')
    .innerJoin('manifests as m', 'm.id', 'r.manifest_id')
    .select('r.kind')
    .where('m.digest', '=', sha256(second))
    .execute()
  assert.deepEqual(refs.map((r) => r.kind).sort(), ['blob', 'blob'])

  // The first manifest pushed again: on PostgreSQL the insert finds it and a second statement
  // renews it and does the tag's writes.
  const before = now.untagged.get(base)!
  const again = Buffer.from(
    (await h.db.selectFrom('manifests').select('content').where('digest', '=', base).executeTakeFirstOrThrow()).content,
  )
  await sleep(5)
  assert.equal(await counted(again), TEST_DIALECT === 'postgres' ? 4 : 7, statements.join('\n'))
  now = await state()
  assert.equal(now.tag, base)
  assert.ok(now.untagged.get(base)! > before, 'pushed again: its delay starts over')
  assert.notEqual(now.untagged.get(sha256(second)), null, 'the manifest the tag left is untagged')
  assert.deepEqual(now.history, [`root ${base}`, `root ${sha256(second)}`, `root ${base}`])
  assert.equal((await h.db.selectFrom('manifests').select('id').execute()).length, 2)
})

test('registry events reach the hooks of the project and of every group above it, and no others', async (t) => {
  const h = await apiHarness(t)
  hookSources(t, h)
  const root = await h.root()
  const post = async (url: string, body: Record<string, unknown>) => {
    const r = await h.req('POST', url, { token: root.token, body })
    assert.equal(r.statusCode, 201, r.body)
    return r.json() as { id: number }
  }
  const top = await post('/api/v4/groups', { path: 'top', name: 'top' })
  const sub = await post('/api/v4/groups', { path: 'sub', name: 'sub', parent_id: top.id })
  const other = await post('/api/v4/groups', { path: 'other', name: 'other' })
  const elsewhere = await post('/api/v4/groups', { path: 'elsewhere', name: 'elsewhere' })
  const app = await post('/api/v4/projects', { path: 'app', namespace_id: sub.id })
  const quiet = await post('/api/v4/projects', { path: 'quiet', namespace_id: top.id })
  await post('/api/v4/projects', { path: 'lone', namespace_id: elsewhere.id })
  const hook = (owner: string, registry: boolean) => post(`${owner}/hooks`, { url: 'http://8.8.8.8/', registry_events: registry })
  const onTop = await hook(`/api/v4/groups/${top.id}`, true)
  await hook(`/api/v4/groups/${sub.id}`, false)
  await hook(`/api/v4/groups/${other.id}`, true)
  await hook(`/api/v4/groups/${elsewhere.id}`, false)
  const onApp = await hook(`/api/v4/projects/${app.id}`, true)
  await hook(`/api/v4/projects/${quiet.id}`, false)

  const deliveries = async (n: number) => {
    for (let i = 0; i < 200; i++) {
      const rows = await h.db.selectFrom('webhook_deliveries').select(['hook_id', 'event_key']).orderBy('hook_id').execute()
      if (rows.length >= n) return rows
      await sleep(25)
    }
    assert.fail(`fewer than ${n} deliveries were queued`)
  }
  // An image in a repository below the project's path belongs to it too; the hooks of its project
  // and of the group two levels up hear it, not the unrelated group's.
  assert.equal((await pushSeeded(h, 'root', 'top/sub/app/api', '1.0', 'a')).statusCode, 201)
  const queued = await deliveries(2)
  assert.deepEqual(
    queued.map((d) => d.hook_id),
    [onTop.id, onApp.id].sort((a, b) => a - b),
  )
  assert.ok(queued.every((d) => d.event_key.startsWith('registry:push:top/sub/app/api:1.0:')))
  // No hook wants registry events from elsewhere/lone: nothing is queued for it. Then a project whose
  // own hook has registry events off, under top: top's hook hears it.
  assert.equal((await pushSeeded(h, 'root', 'elsewhere/lone', '1.0', 'b')).statusCode, 201)
  assert.equal((await pushSeeded(h, 'root', 'top/quiet', '1.0', 'c')).statusCode, 201)
  await deliveries(3)
  await sleep(200)
  const after = await h.db.selectFrom('webhook_deliveries').select(['hook_id', 'event_key']).orderBy('id').execute()
  assert.equal(after.length, 3, JSON.stringify(after))
  assert.equal(after[2]!.hook_id, onTop.id)
  assert.match(after[2]!.event_key, /^registry:push:top\/quiet:1\.0:/)
})
