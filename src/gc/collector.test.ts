// Garbage collection's decisions and its protocol against concurrent pushes, on a real SQLite file
// and the fs driver (no HTTP): what goes, what stays, and each interleaving of a push with a sweep.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, rm, writeFile, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, it, type TestContext } from 'node:test'
import { sql, type Kysely } from 'kysely'
import { parseDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import type { RepoName, Tag } from '../core/names.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import type { Database } from '../metadata/schema.ts'
import { Metrics } from '../ops/index.ts'
import { createRegistry, type Registry } from '../registry/index.ts'
import * as rq from '../registry/queries.ts'
import { createFsDriver } from '../storage/fs-driver.ts'
import { blobPath } from '../storage/paths.ts'
import { GarbageCollector, type GcOptions, type GcReport } from './collector.ts'
import * as gq from './queries.ts'

const DAY = 86_400_000
const OCI_MANIFEST = 'application/vnd.oci.image.manifest.v1+json'
const OCI_INDEX = 'application/vnd.oci.image.index.v1+json'

interface World {
  db: Kysely<Database>
  registry: Registry
  storage: string
  gc(opts?: Partial<GcOptions>): GarbageCollector
}

async function world(t: TestContext): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-gc-'))
  const db = await openTestDb(dir)
  t.after(async () => {
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  const storage = join(dir, 'storage')
  const driver = createFsDriver(storage)
  const metrics = new Metrics()
  const registry = createRegistry(db, driver, { pageMax: 100, metrics, gcGraceSeconds: 3600 })
  return {
    db,
    registry,
    storage,
    gc: (opts = {}) =>
      new GarbageCollector(db, registry.blobs, driver, { graceSeconds: 3600, untaggedDelaySeconds: 3600, ...opts }, new Metrics()),
  }
}

const digestOf = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const repo = (n: string) => n as RepoName

async function pushBlob(w: World, name: string, content: string): Promise<{ digest: string; size: number }> {
  const buf = Buffer.from(content)
  await w.registry.uploads.monolithic(repo(name), parseDigest(digestOf(buf)), { stream: Readable.from([buf]), length: buf.length })
  return { digest: digestOf(buf), size: buf.length }
}

/** An image manifest with a config and layers (pushed first); tagged when `tag` is given. Returns its digest. */
async function pushImage(
  w: World,
  name: string,
  tag: string | undefined,
  layers: string[],
  extra: Record<string, unknown> = {},
): Promise<string> {
  const config = await pushBlob(w, name, JSON.stringify({ layers }))
  const ls = []
  for (const l of layers) ls.push(await pushBlob(w, name, l))
  const body = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: ls.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
      ...extra,
    }),
  )
  const ref =
    tag === undefined ? { kind: 'digest' as const, digest: parseDigest(digestOf(body)) } : { kind: 'tag' as const, tag: tag as Tag }
  return (await w.registry.manifests.put(repo(name), ref, body, OCI_MANIFEST)).digest
}

async function pushIndex(w: World, name: string, tag: string, children: string[]): Promise<string> {
  const manifests = []
  for (const c of children) {
    const row = (await rq.manifestByDigest(w.db, name, c))!
    manifests.push({
      mediaType: row.media_type,
      digest: c,
      size: Number(row.size),
      platform: { os: 'linux', architecture: `arch${manifests.length}` },
    })
  }
  const body = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }))
  return (await w.registry.manifests.put(repo(name), { kind: 'tag', tag: tag as Tag }, body, OCI_INDEX)).digest
}

const blobRows = async (w: World) => new Set((await w.db.selectFrom('blobs').select('digest').execute()).map((r) => r.digest))
const manifestRows = async (w: World, name: string) =>
  new Set(
    (
      await w.db
        .selectFrom('manifests as m')
        .innerJoin('repositories as r', 'r.id', 'm.repository_id')
        .select('m.digest')
        .where('r.name', '=', name)
        .execute()
    ).map((r) => r.digest),
  )
const fileExists = (w: World, digest: string) =>
  stat(join(w.storage, blobPath(parseDigest(digest)))).then(
    () => true,
    () => false,
  )
const deleted = (r: GcReport, kind: 'manifest' | 'link' | 'blob') =>
  new Set(r.items.filter((i) => i.kind === kind).map((i) => `${i.repository ?? ''}@${i.digest}`))

/** Dates every blob link and blob `ms` back, as if pushed that long ago. */
async function ageLinks(w: World, ms: number): Promise<void> {
  const at = new Date(Date.now() - ms).toISOString()
  await w.db.updateTable('repository_blobs').set({ created_at: at }).execute()
  await w.db.updateTable('blobs').set({ created_at: at }).execute()
}

/** An image manifest naming these blobs as config and layer. */
function imageManifest(config: { digest: string; size: number }, layer: { digest: string; size: number }): Buffer {
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...layer }],
    }),
  )
}

/** Runs as if `ms` had passed, so grace and delay are over without waiting. */
const later = (ms: number) => ({ now: Date.now() + ms })

describe('garbage collection: what goes and what stays', () => {
  it('deletes an untagged image past the delay with its own layers; shared layers and tagged images stay; the dry run predicts it exactly', async (t) => {
    const w = await world(t)
    const kept = await pushImage(w, 'team/app', 'v1', ['base', 'kept-top'])
    const gone = await pushImage(w, 'team/app', 'v2', ['base', 'gone-top'])
    await w.registry.manifests.delete(repo('team/app'), { kind: 'tag', tag: 'v2' as Tag })

    // Within the delay nothing goes.
    assert.equal((await w.gc().run()).items.length, 0)

    const gc = w.gc()
    const plan = await gc.run({ dryRun: true, ...later(2 * 3600_000) })
    assert.ok(plan.dryRun)
    const report = await gc.run(later(2 * 3600_000))
    assert.deepEqual(deleted(report, 'manifest'), new Set([`team/app@${gone}`]))
    const goneBlobs = [digestOf('gone-top'), digestOf(JSON.stringify({ layers: ['base', 'gone-top'] }))]
    assert.deepEqual(deleted(report, 'blob'), new Set(goneBlobs.map((d) => `@${d}`)))
    assert.equal(report.freedBytes, 'gone-top'.length + JSON.stringify({ layers: ['base', 'gone-top'] }).length)
    // Same items, reasons and bytes as the dry run announced.
    const key = (r: GcReport) => r.items.map((i) => `${i.kind} ${i.repository ?? ''} ${i.digest} ${i.bytes} ${i.reason}`).sort()
    assert.deepEqual(key(report), key(plan))
    assert.equal(plan.freedBytes, report.freedBytes)

    assert.deepEqual(await manifestRows(w, 'team/app'), new Set([kept]))
    for (const d of goneBlobs) assert.equal(await fileExists(w, d), false, d)
    for (const d of [digestOf('base'), digestOf('kept-top')]) {
      assert.ok((await blobRows(w)).has(d))
      assert.ok(await fileExists(w, d))
      assert.equal(await rq.linkedBlobSize(w.db, 'team/app', d), d === digestOf('base') ? 4 : 8)
    }
    // A second run finds nothing.
    assert.equal((await gc.run(later(2 * 3600_000))).items.length, 0)
  })

  it('counts the untagged delay from when the last tag left, not from the push', async (t) => {
    const w = await world(t)
    const old = await pushImage(w, 'team/app', 'latest', ['a'])
    // Pushed long ago...
    await w.db
      .updateTable('manifests')
      .set({ created_at: new Date(Date.now() - 30 * DAY).toISOString() })
      .execute()
    // ...and untagged now, by a new push of the same tag.
    await pushImage(w, 'team/app', 'latest', ['b'])
    const gc = w.gc({ untaggedDelaySeconds: 86_400 })
    assert.equal((await gc.run(later(3600_000))).counts.manifests, 0, 'within a day of losing its tag')
    assert.deepEqual(deleted(await gc.run(later(2 * DAY)), 'manifest'), new Set([`team/app@${old}`]))
  })

  it('keeps the children of a tagged index; an untagged index goes with its children', async (t) => {
    const w = await world(t)
    const a = await pushImage(w, 'team/multi', undefined, ['x', 'amd64'])
    const b = await pushImage(w, 'team/multi', undefined, ['x', 'arm64'])
    const index = await pushIndex(w, 'team/multi', 'v1', [a, b])
    const gc = w.gc()
    assert.equal((await gc.run(later(2 * 3600_000))).items.length, 0)
    await w.registry.manifests.delete(repo('team/multi'), { kind: 'tag', tag: 'v1' as Tag })
    const plan = await gc.run({ dryRun: true, ...later(2 * 3600_000) })
    assert.deepEqual(deleted(plan, 'manifest'), new Set([index, a, b].map((d) => `team/multi@${d}`)))
    const report = await gc.run(later(2 * 3600_000))
    assert.deepEqual(deleted(report, 'manifest'), deleted(plan, 'manifest'))
    // The index went before its children: never an index naming a missing child.
    const order = report.items.filter((i) => i.kind === 'manifest').map((i) => i.digest)
    assert.ok(order.indexOf(index) < order.indexOf(a) && order.indexOf(index) < order.indexOf(b), order.join(' '))
    assert.equal((await blobRows(w)).size, 0)
  })

  it('referrers live and die with their subject', async (t) => {
    const w = await world(t)
    const subject = await pushImage(w, 'team/signed', 'v1', ['s'])
    const row = (await rq.manifestByDigest(w.db, 'team/signed', subject))!
    const sig = await pushImage(w, 'team/signed', undefined, ['signature'], {
      subject: { mediaType: OCI_MANIFEST, digest: subject, size: Number(row.size) },
      artifactType: 'application/vnd.example.sig',
    })
    const gc = w.gc()
    assert.equal((await gc.run(later(2 * 3600_000))).items.length, 0, 'an untagged referrer of a tagged subject stays')
    await w.registry.manifests.delete(repo('team/signed'), { kind: 'digest', digest: parseDigest(subject) })
    const report = await gc.run(later(2 * 3600_000))
    assert.deepEqual(deleted(report, 'manifest'), new Set([`team/signed@${sig}`]))
    assert.match(report.items.find((i) => i.digest === sig)!.reason, /referrer whose subject/)
    assert.equal((await blobRows(w)).size, 0)
  })

  it('leaves the dependency proxy cache to its own expiry', async (t) => {
    const w = await world(t)
    const cached = await pushImage(w, 'g/dependency_proxy/containers/alpine', undefined, ['alpine'])
    const id = (await rq.findRepositoryId(w.db, 'g/dependency_proxy/containers/alpine'))!
    await w.db
      .insertInto('dependency_proxy_repositories')
      .values({
        repository_id: id,
        namespace_id: null,
        upstream: 'docker.io',
        upstream_name: 'library/alpine',
        created_at: '2026-01-01T00:00:00.000Z',
        last_pulled_at: '2026-01-01T00:00:00.000Z',
      })
      .execute()
    assert.equal((await w.gc().run(later(30 * DAY))).items.length, 0)
    assert.ok((await manifestRows(w, 'g/dependency_proxy/containers/alpine')).has(cached))
  })

  it('removes a link no manifest references once the grace is over, and then the blob', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'abandoned layer')
    assert.equal((await w.gc().run()).items.length, 0, 'within the grace')
    const report = await w.gc().run(later(2 * 3600_000))
    assert.deepEqual(deleted(report, 'link'), new Set([`team/app@${b.digest}`]))
    assert.deepEqual(deleted(report, 'blob'), new Set([`@${b.digest}`]))
    assert.equal(await fileExists(w, b.digest), false)
  })

  it('removes blob files no row names (an interrupted push), dry run first', async (t) => {
    const w = await world(t)
    const digest = digestOf('orphan')
    const path = join(w.storage, blobPath(parseDigest(digest)))
    await mkdir(dirname(path), { recursive: true })
    await writeFile(path, 'orphan')
    const plan = await w.gc({ graceSeconds: 0 }).run({ dryRun: true, ...later(1000) })
    assert.deepEqual(
      plan.items.map((i) => [i.kind, i.digest, i.bytes]),
      [['blob', digest, 6]],
    )
    assert.equal(await fileExists(w, digest), true, 'the dry run changes nothing')
    assert.equal((await w.gc({ graceSeconds: 0 }).run(later(1000))).freedBytes, 6)
    assert.equal(await fileExists(w, digest), false)
  })

  it('runs one collection at a time', async (t) => {
    const w = await world(t)
    await w.db
      .insertInto('gc_lease')
      .values({ name: 'gc', owner: 'someone else', expires_at: new Date(Date.now() + 60_000).toISOString() })
      .execute()
    await assert.rejects(w.gc().run(), (e: unknown) => e instanceof WharfError && e.code === 'CONFLICT')
    // A lease whose holder died expires.
    await w.db
      .updateTable('gc_lease')
      .set({ expires_at: new Date(Date.now() - 1000).toISOString() })
      .execute()
    await w.gc().run()
    assert.equal((await w.db.selectFrom('gc_lease').selectAll().execute()).length, 0)
  })
})

describe('garbage collection against concurrent pushes', () => {
  it('a claimed digest is never deleted; once the push committed, its link keeps it', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'layer')
    await rq.unlinkBlob(w.db, 'team/app', b.digest)
    // A push of the same digest between its claim and its commit.
    assert.ok(await rq.claimBlob(w.db, 'claim-1', b.digest))
    const report = await w.gc({ graceSeconds: 0 }).run(later(1000))
    assert.equal(report.counts.blobs, 0)
    assert.ok(await fileExists(w, b.digest))
    await rq.releaseClaim(w.db, 'claim-1')
    assert.equal((await w.gc({ graceSeconds: 0 }).run(later(1000))).counts.blobs, 1)
  })

  it('a push of a digest being deleted waits until the old file is gone, then puts its own in place', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'layer')
    await rq.unlinkBlob(w.db, 'team/app', b.digest)
    // The collector's first step: the row is deleted and the digest marked, its file not yet removed.
    const marked = await w.db.transaction().execute(async (trx) => {
      await rq.markUnreferencedBlobs(trx, {
        owner: 'gc:test',
        before: new Date(Date.now() + 1000).toISOString(),
        claimsBefore: new Date(0).toISOString(),
        limit: 10,
      })
      return rq.deleteMarkedBlobRows(trx, 'gc:test')
    })
    assert.deepEqual(
      marked.map((m) => m.digest),
      [b.digest],
    )
    let done = false
    const push = pushBlob(w, 'team/other', 'layer').then(() => (done = true))
    await new Promise((r) => setTimeout(r, 200))
    assert.equal(done, false, 'the push waits for the deletion')
    // The collector's second step: the file goes, then the mark.
    await rm(join(w.storage, blobPath(parseDigest(b.digest))))
    await rq.finishBlobDeletions(w.db, 'gc:test', [b.digest])
    await push
    assert.ok(await fileExists(w, b.digest), 'the pushed file is in place')
    assert.equal(await rq.linkedBlobSize(w.db, 'team/other', b.digest), b.size)
  })

  it('a mount whose source link the collector removed answers "not mounted" (the client uploads)', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/src', 'layer')
    await w.gc({ graceSeconds: 0 }).run(later(1000))
    assert.equal(await w.registry.blobs.mount(repo('team/dst'), repo('team/src'), parseDigest(b.digest)), false)
    assert.equal(await rq.linkedBlobSize(w.db, 'team/dst', b.digest), undefined)
  })

  it('a manifest whose layer link the collector removed is refused with MANIFEST_BLOB_UNKNOWN, never stored dangling', async (t) => {
    const w = await world(t)
    await pushBlob(w, 'team/app', JSON.stringify({ layers: ['l'] }))
    await pushBlob(w, 'team/app', 'l')
    // With no grace the layers are garbage until a manifest names them.
    await w.gc({ graceSeconds: 0 }).run(later(1000))
    const config = {
      mediaType: 'application/vnd.oci.image.config.v1+json',
      digest: digestOf(JSON.stringify({ layers: ['l'] })),
      size: JSON.stringify({ layers: ['l'] }).length,
    }
    const body = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: OCI_MANIFEST,
        config,
        layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: digestOf('l'), size: 1 }],
      }),
    )
    await assert.rejects(
      w.registry.manifests.put(repo('team/app'), { kind: 'tag', tag: 'v1' as Tag }, body, OCI_MANIFEST),
      (e: unknown) => e instanceof WharfError && e.code === 'MANIFEST_BLOB_UNKNOWN',
    )
    assert.equal((await manifestRows(w, 'team/app')).size, 0)
  })

  it('a blob found by HEAD keeps its link for the manifest that names it (HEAD, sweep, manifest PUT)', async (t) => {
    const w = await world(t)
    const config = await pushBlob(w, 'team/app', JSON.stringify({ layers: ['l'] }))
    const layer = await pushBlob(w, 'team/app', 'l')
    // Uploaded by an earlier push whose manifest never came: unreferenced and past the grace.
    await ageLinks(w, 2 * 3600_000)
    // The client finds both (docker skips the uploads)...
    for (const b of [config, layer]) assert.equal(await w.registry.blobs.stat(repo('team/app'), parseDigest(b.digest)), b.size)
    // ...a sweep runs before its manifest arrives...
    assert.equal((await w.gc().run()).counts.links, 0)
    // ...and the manifest still finds its blobs.
    const put = await w.registry.manifests.put(
      repo('team/app'),
      { kind: 'tag', tag: 'v1' as Tag },
      imageManifest(config, layer),
      OCI_MANIFEST,
    )
    assert.ok((await manifestRows(w, 'team/app')).has(put.digest))
  })

  it('a HEAD between the sweep picking a link and deleting it wins; a HEAD after the delete answers BLOB_UNKNOWN', async (t) => {
    const w = await world(t)
    const kept = await pushBlob(w, 'team/app', 'kept')
    const gone = await pushBlob(w, 'team/app', 'gone')
    await ageLinks(w, 2 * 3600_000)
    const before = new Date(Date.now() - 3600_000).toISOString()
    const candidates = await gq.staleLinkCandidates(w.db, before)
    assert.equal(candidates.length, 2)
    // The renewal commits between the sweep's candidate pass and its delete, which re-checks the age.
    await w.registry.blobs.stat(repo('team/app'), parseDigest(kept.digest))
    assert.deepEqual(
      (await gq.deleteLinkBatch(w.db, candidates, before)).map((l) => l.digest),
      [gone.digest],
    )
    assert.equal(await rq.linkedBlobSize(w.db, 'team/app', kept.digest), kept.size)
    await assert.rejects(
      w.registry.blobs.stat(repo('team/app'), parseDigest(gone.digest)),
      (e: unknown) => e instanceof WharfError && e.code === 'BLOB_UNKNOWN',
    )
  })

  it('a HEAD of a recently linked blob writes nothing', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'hot')
    // Younger than a tenth of the grace (6 minutes of 3600 s).
    const linkedAt = new Date(Date.now() - 5 * 60_000).toISOString()
    await w.db.updateTable('repository_blobs').set({ created_at: linkedAt }).execute()
    for (let i = 0; i < 3; i++) await w.registry.blobs.stat(repo('team/app'), parseDigest(b.digest))
    assert.equal((await w.db.selectFrom('repository_blobs').select('created_at').executeTakeFirstOrThrow()).created_at, linkedAt)
  })

  it('linking a layer again restarts its grace', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'layer')
    await w.db
      .updateTable('repository_blobs')
      .set({ created_at: new Date(Date.now() - 2 * 3600_000).toISOString() })
      .execute()
    await w.db
      .updateTable('blobs')
      .set({ created_at: new Date(Date.now() - 2 * 3600_000).toISOString() })
      .execute()
    await w.registry.blobs.mount(repo('team/app'), repo('team/app'), parseDigest(b.digest))
    assert.equal((await w.gc().run()).items.length, 0)
    assert.equal(await rq.linkedBlobSize(w.db, 'team/app', b.digest), b.size)
  })

  it('a deletion left by a crashed collector is finished by the next one', async (t) => {
    const w = await world(t)
    const b = await pushBlob(w, 'team/app', 'layer')
    await rq.unlinkBlob(w.db, 'team/app', b.digest)
    await w.db.transaction().execute(async (trx) => {
      await rq.markUnreferencedBlobs(trx, {
        owner: 'gc:crashed',
        before: new Date(Date.now() + 1000).toISOString(),
        claimsBefore: new Date(0).toISOString(),
        limit: 10,
      })
      await rq.deleteMarkedBlobRows(trx, 'gc:crashed')
    })
    await sql`UPDATE blob_deletions SET created_at = ${new Date(Date.now() - 3600_000).toISOString()}`.execute(w.db)
    await w.gc().run()
    assert.equal(await fileExists(w, b.digest), false)
    assert.equal((await w.db.selectFrom('blob_deletions').selectAll().execute()).length, 0)
    // And pushes of that digest go through again.
    await pushBlob(w, 'team/app', 'layer')
    assert.ok(await fileExists(w, b.digest))
  })
})
