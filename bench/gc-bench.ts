// Online GC on a registry of N manifests (default 10,000) in 200 repositories, half of them
// untagged past the delay, layers shared through a pool of 50: the dry run's and the sweep's wall
// time, and what they find. Rows are written straight into SQLite and files into a temp store.
//   node_modules/.bin/node bench/gc-bench.ts [N]
import { createHash } from 'node:crypto'
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { migrate, openDb } from '../src/metadata/db.ts'
import { Metrics } from '../src/ops/index.ts'
import { createRegistry } from '../src/registry/index.ts'
import { createFsDriver } from '../src/storage/fs-driver.ts'
import { GarbageCollector } from '../src/gc/index.ts'
import { blobPath } from '../src/storage/paths.ts'
import { parseDigest } from '../src/core/digest.ts'

const N = Number(process.argv[2] ?? 10_000)
const dir = await mkdtemp(join(tmpdir(), 'gcbench-'))
const db = openDb({ kind: 'sqlite', path: join(dir, 'wharf.db') })
await migrate(db, 'sqlite')
const storage = join(dir, 'storage')
const driver = createFsDriver(storage)
const d = (s: string) => `sha256:${createHash('sha256').update(s).digest('hex')}`
const old = new Date(Date.now() - 3 * 86_400_000).toISOString()
const put = async (digest: string, size: number) => {
  const p = join(storage, blobPath(parseDigest(digest)))
  await mkdir(dirname(p), { recursive: true })
  await writeFile(p, Buffer.alloc(size))
}
const shared = Array.from({ length: 50 }, (_, i) => d(`shared-${i}`))
await db.transaction().execute(async (trx) => {
  const repos = 200
  for (let r = 0; r < repos; r++)
    await trx
      .insertInto('repositories')
      .values({ name: `g/p${r}`, created_at: old })
      .execute()
  for (const s of shared) await trx.insertInto('blobs').values({ digest: s, size: 1000, created_at: old }).execute()
  for (let i = 0; i < N; i++) {
    const repo = (i % repos) + 1
    const own = d(`own-${i}`)
    await trx.insertInto('blobs').values({ digest: own, size: 100, created_at: old }).execute()
    const refs = [shared[i % 50]!, shared[(i + 1) % 50]!, own]
    for (const b of refs)
      await trx
        .insertInto('repository_blobs')
        .values({ repository_id: repo, digest: b, created_at: old })
        .onConflict((oc) => oc.doNothing())
        .execute()
    const m = await trx
      .insertInto('manifests')
      .values({
        repository_id: repo,
        digest: d(`m-${i}`),
        media_type: 'application/vnd.oci.image.manifest.v1+json',
        artifact_type: null,
        size: 500,
        config_digest: null,
        subject_digest: null,
        annotations: null,
        content: Buffer.from('{}'),
        created_at: old,
        untagged_at: null,
      })
      .returning('id')
      .executeTakeFirstOrThrow()
    for (const b of refs) await trx.insertInto('manifest_references').values({ manifest_id: m.id, digest: b, kind: 'blob' }).execute()
    // Half the images keep their tag.
    if (i % 2 === 0)
      await trx
        .insertInto('tags')
        .values({ repository_id: repo, name: `t${i}`, manifest_id: m.id, updated_at: old })
        .execute()
  }
})
for (const s of shared) await put(s, 1000)
for (let i = 0; i < N; i++) await put(d(`own-${i}`), 100)
const gc = new GarbageCollector(
  db,
  createRegistry(db, driver, { pageMax: 100, metrics: new Metrics(), gcGraceSeconds: 3600 }).blobs,
  driver,
  { graceSeconds: 3600, untaggedDelaySeconds: 3600 },
  new Metrics(),
)
let t = Date.now()
const plan = await gc.run({ dryRun: true })
console.log(
  `dry run: ${Date.now() - t} ms, ${plan.counts.manifests} manifests, ${plan.counts.links} links, ${plan.counts.blobs} blobs, ${plan.freedBytes} bytes`,
)
t = Date.now()
const r = await gc.run()
console.log(
  `run: ${Date.now() - t} ms, ${r.counts.manifests} manifests, ${r.counts.links} links, ${r.counts.blobs} blobs, ${r.freedBytes} bytes`,
)
await db.destroy()
await rm(dir, { recursive: true, force: true })
