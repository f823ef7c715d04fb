import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { DatabaseSync } from 'node:sqlite'
import tar from 'tar-stream'
import { migrate, openDb } from '../metadata/db.ts'
import { BackupError, createBackup, restoreBackup } from './backup.ts'

/** A data directory with one blob (in the database and on disk), a CI log, an artifact and a TLS file. */
async function dataDir(root: string): Promise<{ data: string; digest: string; blob: Buffer }> {
  const data = join(root, 'data')
  const db = openDb({ kind: 'sqlite', path: join(data, 'wharf.db') })
  await migrate(db, 'sqlite')
  const blob = randomBytes(5000)
  const hex = createHash('sha256').update(blob).digest('hex')
  await db
    .insertInto('blobs')
    .values({ digest: `sha256:${hex}`, size: blob.length, created_at: new Date().toISOString() })
    .execute()
  await db.destroy()
  await mkdir(join(data, 'storage/blobs/sha256', hex.slice(0, 2)), { recursive: true })
  await writeFile(join(data, 'storage/blobs/sha256', hex.slice(0, 2), hex), blob)
  // A blob file the database does not list (committed after the snapshot, or an upload's leftover) is not backed up.
  await writeFile(join(data, 'storage/blobs/sha256', hex.slice(0, 2), hex.slice(0, 2) + 'f'.repeat(62)), 'stray')
  await mkdir(join(data, 'ci/traces'), { recursive: true })
  await writeFile(join(data, 'ci/traces/7.log'), 'job log\n')
  await mkdir(join(data, 'ci/artifacts/7'), { recursive: true })
  await writeFile(join(data, 'ci/artifacts/7/artifacts.zip'), 'zip')
  await writeFile(join(data, 'ci/artifacts/7/.upload-123'), 'in progress')
  await mkdir(join(data, 'tls'))
  await writeFile(join(data, 'tls/ca.pem'), 'ca')
  return { data, digest: `sha256:${hex}`, blob }
}

async function withTmp(fn: (root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'wharf-backup-test-'))
  try {
    await fn(root)
  } finally {
    await rm(root, { recursive: true, force: true })
  }
}

test('a directory backup restores the database, blobs, CI files and TLS files, and nothing else', () =>
  withTmp(async (root) => {
    const { data, digest, blob } = await dataDir(root)
    const summary = await createBackup({ data, to: { dir: join(root, 'backup') } })
    assert.deepEqual(
      { blobs: summary.blobs, blobBytes: summary.blobBytes, files: summary.files },
      { blobs: 1, blobBytes: blob.length, files: 3 },
    )
    const restored = join(root, 'restored')
    await restoreBackup({ data: restored, from: { dir: join(root, 'backup') } })
    const hex = digest.slice(7)
    assert.deepEqual(await readFile(join(restored, 'storage/blobs/sha256', hex.slice(0, 2), hex)), blob)
    assert.deepEqual(await readdir(join(restored, 'storage/blobs/sha256', hex.slice(0, 2))), [hex])
    assert.equal(await readFile(join(restored, 'ci/traces/7.log'), 'utf8'), 'job log\n')
    assert.deepEqual(await readdir(join(restored, 'ci/artifacts/7')), ['artifacts.zip'])
    assert.equal(await readFile(join(restored, 'tls/ca.pem'), 'utf8'), 'ca')
    // One self-contained database file: no WAL or shared-memory file beside it.
    assert.deepEqual((await readdir(restored)).sort(), ['ci', 'storage', 'tls', 'wharf-backup.json', 'wharf.db'])
    const db = new DatabaseSync(join(restored, 'wharf.db'), { readOnly: true })
    assert.deepEqual(
      db
        .prepare('SELECT digest FROM blobs')
        .all()
        .map((r) => r.digest),
      [digest],
    )
    db.close()
  }))

test('a backup refuses a blob whose bytes do not match its digest, and a non-empty target', () =>
  withTmp(async (root) => {
    const { data, digest } = await dataDir(root)
    const hex = digest.slice(7)
    await mkdir(join(root, 'used'))
    await writeFile(join(root, 'used/x'), '')
    await assert.rejects(
      createBackup({ data, to: { dir: join(root, 'used') } }),
      (e) => e instanceof BackupError && /not empty/.test(e.message),
    )
    await writeFile(join(data, 'storage/blobs/sha256', hex.slice(0, 2), hex), randomBytes(5000))
    await assert.rejects(
      createBackup({ data, to: { dir: join(root, 'backup') } }),
      (e) => e instanceof BackupError && /does not match its digest/.test(e.message),
    )
  }))

test('a restore from a tar stream checks digests and names, and leaves the data directory empty when it fails', () =>
  withTmp(async (root) => {
    const { data, digest } = await dataDir(root)
    const archive = join(root, 'backup.tar')
    await createBackup({ data, to: { tar: createWriteStream(archive) } })
    const entries: Array<{ header: tar.Header; body: Buffer }> = []
    const extract = tar.extract()
    createReadStream(archive).pipe(extract as unknown as NodeJS.WritableStream)
    for await (const e of extract) {
      const chunks: Buffer[] = []
      for await (const c of e) chunks.push(c as Buffer)
      entries.push({ header: e.header, body: Buffer.concat(chunks) })
    }
    let n = 0
    /** The archive, changed, as a file stream (as `wharf backup restore --tar` reads it). */
    const repack = async (change: (es: typeof entries) => typeof entries) => {
      const pack = tar.pack()
      const file = join(root, `changed-${n++}.tar`)
      const written = pipeline(pack, createWriteStream(file))
      for (const { header, body } of change(entries)) pack.entry({ ...header, size: body.length }, body)
      pack.finalize()
      await written
      return createReadStream(file)
    }
    const target = join(root, 'restored')
    const failsWith = async (re: RegExp, change: (es: typeof entries) => typeof entries) => {
      await assert.rejects(
        restoreBackup({ data: target, from: { tar: await repack(change) } }),
        (e) => e instanceof BackupError && re.test(e.message),
      )
      assert.deepEqual(await readdir(target), [])
    }
    const blobName = `storage/blobs/sha256/${digest.slice(7, 9)}/${digest.slice(7)}`
    await failsWith(/does not match its digest/, (es) =>
      es.map((e) => (e.header.name === blobName ? { ...e, body: Buffer.from('tampered') } : e)),
    )
    await failsWith(/unexpected entry "\.\.\/escape"/, (es) => [
      { header: { ...es[0]!.header, name: '../escape' }, body: Buffer.from('x') },
      ...es,
    ])
    await failsWith(/no wharf-backup\.json/, (es) => es.filter((e) => e.header.name !== 'wharf-backup.json'))
    await failsWith(/in the database but missing/, (es) => es.filter((e) => e.header.name !== blobName))
    const cut = join(root, 'cut.tar')
    await writeFile(cut, (await readFile(archive)).subarray(0, 3000))
    await assert.rejects(
      restoreBackup({ data: target, from: { tar: createReadStream(cut) } }),
      (e) => e instanceof BackupError && /not a complete tar stream/.test(e.message),
    )
    assert.deepEqual(await readdir(target), [])
    assert.ok((await restoreBackup({ data: target, from: { tar: await repack((es) => es) } })).blobs === 1)
  }))
