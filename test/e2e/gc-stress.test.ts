// End-to-end: online garbage collection under load. `wharf gc` runs in a loop in its own process
// (grace and untagged delay 0, so everything unreferenced is garbage at once) while several real
// skopeo clients push images that share base layers and delete earlier ones. Afterwards every
// remaining tag pulls byte-identical, storage holds exactly the blobs the database lists, and what
// the deleted images alone used is gone.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { gunzipSync, gzipSync } from 'node:zlib'
import path from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { deleteManifest } from '../helpers/registry.ts'

const WORKERS = 4
const IMAGES_PER_WORKER = 9
/** Base layers shared between images (and workers), so one layer is often dropped by one repository while another pushes it. */
const BASE_LAYERS = 6
const PUSH_ATTEMPTS = 6

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex')

/** A gzipped one-file ustar archive: a valid layer, which skopeo pushes as it is (it would compress a plain tar, changing the manifest). */
function tarOf(name: string, data: Buffer): Buffer {
  const h = Buffer.alloc(512)
  h.write(name, 0, 100, 'utf8')
  h.write('0000644\0', 100)
  h.write('0000000\0', 108)
  h.write('0000000\0', 116)
  h.write(`${data.length.toString(8).padStart(11, '0')}\0`, 124)
  h.write('14540000000\0', 136)
  h.write('        ', 148)
  h.write('0', 156)
  h.write('ustar\0', 257)
  h.write('00', 263)
  let sum = 0
  for (const b of h) sum += b
  h.write(`${sum.toString(8).padStart(6, '0')}\0 `, 148)
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512)
  return gzipSync(Buffer.concat([h, data, pad, Buffer.alloc(1024)]))
}

interface Image {
  ref: string
  manifest: Buffer
  digest: string
  /** Its blobs: config, then layers. */
  blobs: string[]
}

/** An OCI layout with one image per (worker, index): two shared base layers, one own layer, its own config. */
async function makeLayout(dir: string): Promise<Map<string, Image>> {
  const blobsDir = path.join(dir, 'blobs', 'sha256')
  await mkdir(blobsDir, { recursive: true })
  const put = async (b: Buffer) => {
    const hex = sha256(b)
    await writeFile(path.join(blobsDir, hex), b)
    return { digest: `sha256:${hex}`, size: b.length, bytes: b }
  }
  const base = []
  for (let i = 0; i < BASE_LAYERS; i++) base.push(await put(tarOf(`base/${i}.bin`, randomBytes(96 * 1024))))
  const images = new Map<string, Image>()
  const entries = []
  for (let w = 0; w < WORKERS; w++) {
    for (let i = 0; i < IMAGES_PER_WORKER; i++) {
      const own = await put(tarOf(`own/${w}-${i}.bin`, randomBytes(16 * 1024)))
      const layers = [base[(w + i) % BASE_LAYERS]!, base[(w + i + 1) % BASE_LAYERS]!, own]
      const config = await put(
        Buffer.from(
          JSON.stringify({
            architecture: 'amd64',
            os: 'linux',
            rootfs: { type: 'layers', diff_ids: layers.map((l) => `sha256:${sha256(gunzipSync(l.bytes))}`) },
            config: { Labels: { image: `${w}-${i}` } },
          }),
        ),
      )
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: config.digest, size: config.size },
          layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: l.digest, size: l.size })),
        }),
      )
      const m = await put(manifest)
      const ref = `w${w}-${i}`
      entries.push({
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        digest: m.digest,
        size: m.size,
        annotations: { 'org.opencontainers.image.ref.name': ref },
      })
      images.set(ref, { ref, manifest, digest: m.digest, blobs: [config.digest, ...layers.map((l) => l.digest)] })
    }
  }
  await writeFile(path.join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }))
  await writeFile(path.join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }))
  return images
}

let wharf: Wharf
let work: string
let layout: string
let images: Map<string, Image>

const creds = () => `root:${wharf.rootPassword}`
const repoOf = (w: number) => `gc/stress/w${w}`
const tagOf = (i: number) => `t${i}`
/** Images kept tagged at the end: every third one and each worker's last. */
const keeps = (i: number) => i % 3 === 0 || i === IMAGES_PER_WORKER - 1

function skopeo(args: string[]): Promise<RunResult> {
  // --insecure-policy: do not depend on the machine's /etc/containers/policy.json.
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000, env: { HOME: work } })
}

function gc(...extra: string[]): Promise<RunResult> {
  return run(
    projectNode,
    [
      path.join('src', 'cli', 'main.ts'),
      'gc',
      '--data',
      wharf.dataDir,
      '--gc-grace-seconds',
      '0',
      '--gc-untagged-delay-seconds',
      '0',
      '--json',
      ...extra,
    ],
    { cwd: repoRoot, timeoutMs: 120_000 },
  )
}

describe('online garbage collection under concurrent pushes (skopeo)', () => {
  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'wharf-gc-stress-'))
    layout = path.join(work, 'layout')
    images = await makeLayout(layout)
    wharf = await startWharf({ env: { WHARF_GC_INTERVAL_MINUTES: '0' } })
    await wharf.createProject('gc/stress')
  })

  after(async () => {
    await wharf?.stop()
    if (work) await rm(work, { recursive: true, force: true })
  })

  it('every tag pulls byte-identical, storage has no orphan, and the deleted images are reclaimed', { timeout: 900_000 }, async () => {
    const failures: string[] = []
    let pushing = true
    const reports: Array<{ counts: { manifests: number; links: number; blobs: number }; freedBytes: number }> = []
    let gcBusy = 0

    const collector = (async () => {
      while (pushing) {
        const r = await gc()
        if (r.code === 0) reports.push(JSON.parse(r.stdout))
        else if (/already running/.test(r.stderr)) gcBusy++
        else assert.fail(`wharf gc failed:\n${describeResult(r)}`)
      }
    })()

    // The pushes are paced by the collections, not the other way round: a slow machine (each
    // `wharf gc` is a process start) must still see several collections race the pushes. Before
    // image i, wait (bounded) until about 4·i/IMAGES_PER_WORKER collections finished: at least 3
    // before the last image.
    const collectionsDone = async (n: number) => {
      for (const stop = Date.now() + 120_000; reports.length + gcBusy < n && Date.now() < stop; )
        await new Promise((r) => setTimeout(r, 100))
    }
    const worker = async (w: number) => {
      for (let i = 0; i < IMAGES_PER_WORKER; i++) {
        await collectionsDone(Math.floor((i * 4) / IMAGES_PER_WORKER))
        const dest = `docker://${wharf.host}/${repoOf(w)}:${tagOf(i)}`
        for (let attempt = 1; ; attempt++) {
          const r = await skopeo(['copy', '--dest-tls-verify=false', '--dest-creds', creds(), `oci:${layout}:w${w}-${i}`, dest])
          if (r.code === 0) break
          // With no grace, a layer skopeo found present may be collected before its manifest
          // arrives: the registry refuses that manifest cleanly and the client pushes again.
          failures.push(
            `${dest} attempt ${attempt}: ${(
              r.stderr
                .split('\n')
                .filter((l) => /error|denied|unknown/i.test(l))
                .pop() ?? r.stderr
            ).slice(0, 300)}`,
          )
          assert.ok(attempt < PUSH_ATTEMPTS, `push of ${dest} kept failing:\n${describeResult(r)}\n${await wharf.logTail(40)}`)
        }
        // The previous image goes unless it is one to keep: its own layer becomes garbage. Even
        // workers untag it (the collector then deletes the manifest), odd ones delete the manifest.
        if (i > 0 && !keeps(i - 1)) {
          if (w % 2 === 0) {
            const r = await deleteManifest(wharf.url, repoOf(w), tagOf(i - 1))
            assert.equal(r.status, 202, r.describe)
          } else {
            const r = await skopeo([
              'delete',
              '--tls-verify=false',
              '--creds',
              creds(),
              `docker://${wharf.host}/${repoOf(w)}:${tagOf(i - 1)}`,
            ])
            assert.equal(r.code, 0, describeResult(r))
          }
        }
      }
    }
    try {
      await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)))
    } finally {
      pushing = false
      await collector
    }
    const final = await gc()
    assert.equal(final.code, 0, describeResult(final))
    reports.push(JSON.parse(final.stdout))
    const during = reports.slice(0, -1)
    const sum = (k: 'manifests' | 'links' | 'blobs') => during.reduce((n, r) => n + r.counts[k], 0)
    process.stderr.write(
      `gc stress: ${during.length} collections during the pushes (${gcBusy} found another running), deleted ${sum('manifests')} manifests, ${sum('links')} links, ${sum('blobs')} blobs, ${during.reduce((n, r) => n + r.freedBytes, 0)} bytes; ${failures.length} push attempts refused and retried\n${failures.join('\n')}\n`,
    )
    assert.ok(during.length >= 3, `only ${during.length} collections ran during the pushes`)
    assert.ok(
      sum('manifests') > 0 && sum('blobs') > 0,
      'the collections during the pushes deleted no manifest or no blob: the test did not race anything',
    )

    // Nothing is left to collect, and the dry run agrees.
    const dry = await gc('--dry-run')
    assert.equal(dry.code, 0, describeResult(dry))
    assert.deepEqual(JSON.parse(dry.stdout).items, [])

    // Every kept tag pulls, byte-identical (skopeo checks each blob's digest as it copies).
    const expected = new Set<string>()
    for (let w = 0; w < WORKERS; w++) {
      for (let i = 0; i < IMAGES_PER_WORKER; i++) {
        const image = images.get(`w${w}-${i}`)!
        const out = path.join(work, 'pull', `w${w}-${i}`)
        await mkdir(out, { recursive: true })
        const r = await skopeo([
          'copy',
          '--src-tls-verify=false',
          '--src-creds',
          creds(),
          `docker://${wharf.host}/${repoOf(w)}:${tagOf(i)}`,
          `dir:${out}`,
        ])
        if (!keeps(i)) {
          assert.match(r.stderr, /manifest unknown/i, `${repoOf(w)}:${tagOf(i)} was deleted but: ${describeResult(r)}`)
          continue
        }
        assert.equal(r.code, 0, `${repoOf(w)}:${tagOf(i)}: ${describeResult(r)}`)
        assert.ok((await readFile(path.join(out, 'manifest.json'))).equals(image.manifest), `${repoOf(w)}:${tagOf(i)} manifest differs`)
        for (const b of image.blobs) {
          const bytes = await readFile(path.join(out, b.slice('sha256:'.length)))
          assert.equal(`sha256:${sha256(bytes)}`, b)
          expected.add(b)
        }
      }
    }

    // Storage holds exactly the blobs the database lists, and those are exactly what the kept images use.
    const files = new Set<string>()
    const walk = async (dir: string): Promise<void> => {
      for (const e of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (e.isDirectory()) await walk(path.join(dir, e.name))
        else files.add(`sha256:${e.name}`)
      }
    }
    await walk(path.join(wharf.dataDir, 'storage', 'blobs', 'sha256'))
    const db = new DatabaseSync(path.join(wharf.dataDir, 'wharf.db'), { readOnly: true })
    try {
      const rows = new Set((db.prepare('SELECT digest FROM blobs').all() as Array<{ digest: string }>).map((r) => r.digest))
      assert.deepEqual(
        [...files].filter((f) => !rows.has(f)),
        [],
        'files with no blob row',
      )
      assert.deepEqual(
        [...rows].filter((r) => !files.has(r)),
        [],
        'blob rows with no file',
      )
      assert.deepEqual([...rows].sort(), [...expected].sort(), 'stored blobs are exactly those of the kept images')
      // Every manifest's blobs are linked in its repository; no claim or deletion is left behind.
      const dangling = db
        .prepare(`SELECT m.digest, r.digest AS blob FROM manifests m JOIN manifest_references r ON r.manifest_id = m.id AND r.kind = 'blob'
        WHERE NOT EXISTS (SELECT 1 FROM repository_blobs rb WHERE rb.repository_id = m.repository_id AND rb.digest = r.digest)`)
        .all()
      assert.deepEqual(dangling, [])
      assert.deepEqual(db.prepare('SELECT * FROM blob_claims').all(), [])
      assert.deepEqual(db.prepare('SELECT * FROM blob_deletions').all(), [])
    } finally {
      db.close()
    }
    // No request failed inside the server while the collector ran beside it.
    const log = await readFile(wharf.logFile, 'utf8')
    assert.doesNotMatch(log, /"statusCode":5\d\d/, 'a request answered 5xx')
  })
})
