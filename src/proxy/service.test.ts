// The cache service against a small registry on a local port (the upstream is a process boundary;
// everything of Wharf's is real: SQLite, the fs driver, the registry's write path).
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PassThrough, Readable, Writable } from 'node:stream'
import { describe, it, type TestContext } from 'node:test'
import { parseDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import { parseRepoName } from '../core/names.ts'
import { SlabPool } from '../core/slabs.ts'
import { openTestDb } from '../../test/helpers/database.ts'
import { oneImageUpstream } from '../../test/helpers/one-image-upstream.ts'
import { createServices } from '../services.ts'
import type { BlobDriver } from '../storage/driver.ts'
import { createFsDriver } from '../storage/fs-driver.ts'
import { blobPath } from '../storage/paths.ts'

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`

// Random bytes, and several of the cache's 1 MiB slabs: a buffer reused too early shows up as a wrong digest.
const upstream = (t: TestContext) => oneImageUpstream(t, { layerBytes: 6 << 20 })

/** Holds some driver step until `open()`; `reached` resolves when the step was first asked for. */
function gate() {
  let open!: () => void
  let reach!: () => void
  const opened = new Promise<void>((r) => (open = r))
  const reached = new Promise<void>((r) => (reach = r))
  return { open, opened, reached, reach }
}

/**
 * The real fs driver with its temp-file writes or its commits (fsync + rename) held at a gate:
 * a disk that is slow at the moment the test picks.
 */
function slowDisk(
  storage: string,
  hold: { writes?: ReturnType<typeof gate>; commits?: ReturnType<typeof gate>; keeps?: Buffer[] },
): BlobDriver {
  const fs = createFsDriver(storage)
  return {
    ...fs,
    appenderWritesThrough: !hold.keeps,
    async appender(p, offset) {
      const real = await fs.appender(p, offset)
      // Like S3's writer, which keeps the chunks (uncopied) after their write called back until it uploaded them.
      const keeps = hold.keeps
      if (keeps)
        return new Writable({
          write(chunk, _enc, cb) {
            keeps.push(chunk)
            real.write(chunk, cb)
          },
          final(cb) {
            real.end(cb)
          },
        })
      const writes = hold.writes
      if (!writes) return real
      return new Writable({
        highWaterMark: 1 << 20,
        write(chunk, _enc, cb) {
          writes.reach()
          void writes.opened.then(() => real.write(chunk, cb))
        },
        final(cb) {
          real.end(cb)
        },
        destroy(err, cb) {
          real.destroy(err ?? undefined)
          cb(err)
        },
      })
    },
    async commit(from, to) {
      hold.commits?.reach()
      await hold.commits?.opened
      return fs.commit(from, to)
    },
  }
}

async function setup(t: TestContext, hold: Parameters<typeof slowDisk>[1] = {}) {
  const up = await upstream(t)
  const dir = await mkdtemp(join(tmpdir(), 'wharf-proxy-'))
  const db = await openTestDb(dir)
  const storage = join(dir, 'storage')
  let stored: Promise<void> = Promise.resolve()
  const services = await createServices(db, slowDisk(storage, hold), {
    publicUrl: 'http://wharf.test',
    tokenTtlSeconds: 300,
    pageMax: 100,
    rootPassword: 'root-password-1',
    dependencyProxy: {
      upstreams: [{ host: 'docker.io', url: up.url }],
      tagTtlSeconds: 60,
      upstreamTimeoutSeconds: 5,
      manifestBytes: 4 << 20,
    },
  })
  t.after(async () => {
    // A download ends before its commit: let the last one finish before removing the store.
    await stored
    await db.destroy()
    await rm(dir, { recursive: true, force: true })
  })
  const proxy = services.dependencyProxy
  const target = proxy.mirrorTarget(parseRepoName('alpine'), undefined)
  /**
   * A client GET of the layer: the bytes it received (also counted in `received` as they come),
   * or the error that cut it off. `stored` resolves once the cache holds the blob.
   */
  const received = { bytes: 0 }
  const download = async () => {
    const src = await proxy.blob(target, parseDigest(up.layer), false)
    const sink = new PassThrough()
    const chunks: Buffer[] = []
    sink.on('data', (c: Buffer) => {
      // Copied: a write's callback gives the chunk back to the sender (a socket is done with it by then).
      chunks.push(Buffer.from(c))
      received.bytes += c.length
    })
    if (src.kind === 'flight') {
      stored = src.stored
      await src.send(sink)
    } else if (src.kind === 'stored') await (await src.open())(sink)
    return Buffer.concat(chunks)
  }
  return { up, proxy, target, download, storage, received, stored: () => stored, dir, db, uploads: services.registry.uploads }
}

const timeout = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref())

describe('DependencyProxy', () => {
  it('concurrent readers of a miss share one upstream GET and all get the verified bytes', async (t) => {
    const { up, proxy, target, download } = await setup(t)
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    const got = await Promise.all(Array.from({ length: 10 }, download))
    for (const b of got) assert.equal(sha(b), up.layer)
    assert.equal(up.state.gets.get(`GET /v2/library/alpine/blobs/${up.layer}`), 1)
  })

  it('bytes that fail verification are never committed, and no reader gets a complete response', async (t) => {
    const { up, proxy, target, download, storage } = await setup(t)
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    up.state.corrupt = true
    const results = await Promise.allSettled(Array.from({ length: 3 }, download))
    for (const r of results) {
      assert.equal(r.status, 'rejected')
      assert.ok(r.reason instanceof WharfError && r.reason.code === 'DIGEST_INVALID', String(r.reason))
    }
    assert.ok(!existsSync(join(storage, blobPath(parseDigest(up.layer)))))
    // The next request tries the upstream again, which now sends the right bytes.
    up.state.corrupt = false
    assert.equal(sha(await download()), up.layer)
    assert.equal(up.state.gets.get(`GET /v2/library/alpine/blobs/${up.layer}`), 2)
  })

  it('a reader keeping up gets the bytes as they arrive, before they are on disk', async (t) => {
    const writes = gate()
    const { up, proxy, target, download, received } = await setup(t, { writes })
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    const got = download()
    await writes.reached
    // No byte is in the temp file yet, and the upstream sends 256 KiB pieces: the first ones
    // must reach the reader from memory.
    for (let i = 0; i < 100 && received.bytes < 256 << 10; i++) await timeout(50)
    assert.ok(received.bytes >= 256 << 10, `the reader got ${received.bytes} bytes while the disk held every write`)
    writes.open()
    assert.equal(sha(await got), up.layer)
  })

  it("a reader's download completes while the commit (fsync) is still running, and the blob is stored after it", async (t) => {
    const commits = gate()
    const { up, proxy, target, download, storage, stored } = await setup(t, { commits })
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    const got = await Promise.race([download(), commits.reached.then(() => timeout(10_000))])
    assert.notEqual(got, 'timeout', 'the download waited for the commit')
    assert.equal(sha(got as Buffer), up.layer)
    const file = join(storage, blobPath(parseDigest(up.layer)))
    assert.ok(!existsSync(file))
    commits.open()
    await stored()
    assert.ok(existsSync(file))
    assert.equal((await proxy.blob(target, parseDigest(up.layer), true)).kind, 'stored')
  })

  it('two nodes missing one image at once: each fetches it at most once, both serve verified bytes, the store holds one copy', async (t) => {
    const a = await setup(t)
    // Node B: its own connection, driver and flights, on the same database and storage.
    const db = await openTestDb(a.dir)
    t.after(() => db.destroy())
    const services = await createServices(db, createFsDriver(a.storage), {
      publicUrl: 'http://wharf.test',
      tokenTtlSeconds: 300,
      pageMax: 100,
      rootPassword: 'root-password-1',
      dependencyProxy: {
        upstreams: [{ host: 'docker.io', url: a.up.url }],
        tagTtlSeconds: 60,
        upstreamTimeoutSeconds: 5,
        manifestBytes: 4 << 20,
      },
    })
    const b = services.dependencyProxy
    const targetB = b.mirrorTarget(parseRepoName('alpine'), undefined)
    const tag = { kind: 'tag', tag: '3' as never } as const
    const [ma, mb] = await Promise.all([a.proxy.manifest(a.target, tag, undefined), b.manifest(targetB, tag, undefined)])
    assert.equal(ma.row.digest, mb.row.digest)
    const downloadB = async () => {
      const src = await b.blob(targetB, parseDigest(a.up.layer), false)
      const chunks: Buffer[] = []
      const sink = new Writable({
        write(c: Buffer, _e, cb) {
          chunks.push(Buffer.from(c))
          cb()
        },
      })
      if (src.kind === 'flight') {
        await src.send(sink)
        await src.stored
      } else if (src.kind === 'stored') await (await src.open())(sink)
      return Buffer.concat(chunks)
    }
    const got = await Promise.all([a.download(), a.download(), downloadB(), downloadB()])
    await a.stored()
    for (const g of got) assert.equal(sha(g), a.up.layer)
    const gets = a.up.state.gets.get(`GET /v2/library/alpine/blobs/${a.up.layer}`) ?? 0
    assert.ok(gets >= 1 && gets <= 2, `upstream blob GETs: ${gets}`)
    assert.equal((await a.db.selectFrom('blobs').select('digest').where('digest', '=', a.up.layer).execute()).length, 1)
    assert.equal((await a.db.selectFrom('manifests').select('id').where('digest', '=', ma.row.digest).execute()).length, 1)
    assert.equal((await a.db.selectFrom('repository_blobs').select('digest').where('digest', '=', a.up.layer).execute()).length, 1)
    assert.ok(existsSync(join(a.storage, blobPath(parseDigest(a.up.layer)))))
  })

  it("a cache fill copies each upstream chunk into reused memory and frees the chunk's own at once; the bytes stay exact", async (t) => {
    const { uploads, storage } = await setup(t)
    const blob = randomBytes(5 << 20)
    // Each its own memory, as the chunks of an upstream response are.
    const chunks = Array.from({ length: 80 }, (_, i) => Buffer.from(blob.subarray(i << 16, (i + 1) << 16)))
    const seen: Buffer[] = []
    const n = await uploads.ingest(parseRepoName('cached/x'), parseDigest(sha(blob)), Readable.from(chunks), {
      expectedSize: blob.length,
      slabs: new SlabPool(),
      onWrite() {},
      onData: (c) => seen.push(Buffer.from(c)),
    })
    assert.equal(n, blob.length)
    assert.deepEqual(
      chunks.filter((c) => !(c.buffer as ArrayBuffer).detached),
      [],
    )
    assert.ok(Buffer.concat(seen).equals(blob))
    assert.ok((await readFile(join(storage, blobPath(parseDigest(sha(blob)))))).equals(blob))
  })

  it("where the driver's writer keeps chunks after calling back (S3's does), a fill stores and serves the exact bytes", async (t) => {
    const keeps: Buffer[] = []
    const { up, proxy, target, download, storage, stored } = await setup(t, { keeps })
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    const got = await Promise.all(Array.from({ length: 3 }, download))
    for (const b of got) assert.equal(sha(b), up.layer)
    await stored()
    assert.equal(sha(await readFile(join(storage, blobPath(parseDigest(up.layer))))), up.layer)
    // What the writer kept is still the blob: nothing reused or freed the chunks under it.
    assert.equal(sha(Buffer.concat(keeps)), up.layer)
  })

  it('cleanup removes images not pulled for cleanupDays and frees their bytes', async (t) => {
    const { up, proxy, target, download, storage, stored } = await setup(t)
    await proxy.manifest(target, { kind: 'tag', tag: '3' as never }, undefined)
    await download()
    await stored()
    const file = join(storage, blobPath(parseDigest(up.layer)))
    assert.ok(existsSync(file))
    assert.deepEqual(await proxy.cleanup(90, Date.now() + 89 * 86_400_000), { images: 0, freedBytes: 0 })
    const r = await proxy.cleanup(90, Date.now() + 91 * 86_400_000)
    assert.equal(r.images, 1)
    assert.ok(r.freedBytes >= 6 << 20)
    assert.ok(!existsSync(file))
    assert.deepEqual((await proxy.groupCache(null)).images, [])
  })
})
