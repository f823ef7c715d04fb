// A conformance suite every BlobDriver must pass. Not a test file itself: each
// driver's *.test.ts calls describeBlobDriver with a factory for a fresh, empty driver.
import assert from 'node:assert/strict'
import { Readable, Writable } from 'node:stream'
import { finished, pipeline } from 'node:stream/promises'
import { describe, it, type TestContext } from 'node:test'
import { PathNotFoundError, type BlobDriver, type FileInfo } from './driver.ts'

export interface DriverFixture {
  driver: BlobDriver
  /** Removes everything the fixture created. */
  cleanup(): Promise<void>
}

export async function writeAt(driver: BlobDriver, path: string, offset: number, data: string | Buffer): Promise<void> {
  const out = await driver.appender(path, offset)
  out.end(typeof data === 'string' ? Buffer.from(data) : data)
  await finished(out)
}

export async function readAll(driver: BlobDriver, path: string, range?: { offset: number; length?: number }): Promise<string> {
  const src: Readable = await driver.reader(path, range)
  const chunks: Buffer[] = []
  for await (const c of src) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

/** Sends through openForSend into a destination that copies each chunk (the driver may reuse its buffers). */
export async function sendAll(
  driver: BlobDriver,
  path: string,
  range?: { offset: number; length: number },
  opts: { slow?: boolean } = {},
): Promise<Buffer> {
  const send = await driver.openForSend(path, range)
  const chunks: Buffer[] = []
  const dest = new Writable({
    write(chunk: Buffer, _enc, cb) {
      const copy = Buffer.from(chunk)
      chunks.push(copy)
      if (opts.slow) setImmediate(cb)
      else cb()
    },
  })
  await send(dest)
  return Buffer.concat(chunks)
}

function pattern(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size)
  for (let i = 0; i < size; i++) b[i] = (i * 31 + seed * 7 + (i >> 10)) & 0xff
  return b
}

async function listAll(driver: BlobDriver, prefix: string): Promise<FileInfo[]> {
  const out: FileInfo[] = []
  for await (const f of driver.list(prefix)) out.push(f)
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
}

const f0len = (b: Buffer) => b.length - 10

const ESCAPING_PATHS = ['..', '../x', '../../etc/passwd', 'uploads/../../x', 'a/b/../../../x', '/etc/passwd']

export function describeBlobDriver(name: string, factory: () => Promise<DriverFixture>): void {
  async function fresh(t: TestContext): Promise<BlobDriver> {
    const f = await factory()
    t.after(() => f.cleanup())
    return f.driver
  }

  describe(`BlobDriver conformance: ${name}`, () => {
    it('stat of a missing path is undefined', async (t) => {
      const d = await fresh(t)
      assert.equal(await d.stat('blobs/sha256/aa/missing'), undefined)
      assert.equal(await d.stat('nothing'), undefined)
    })

    it('appender creates the file and its parent folders; stat reports path, size and mtime', async (t) => {
      const d = await fresh(t)
      const before = Date.now() - 2000
      await writeAt(d, 'uploads/deep/er/f', 0, 'hello')
      const info = await d.stat('uploads/deep/er/f')
      assert.ok(info)
      assert.equal(info.path, 'uploads/deep/er/f')
      assert.equal(info.size, 5)
      assert.ok(info.modified instanceof Date)
      assert.ok(info.modified.getTime() >= before)
    })

    it('openPositional follows a file while it grows and keeps reading after it is committed (renamed)', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/grow', 0, 'hello')
      const r = await d.openPositional('uploads/grow')
      const buf = Buffer.alloc(16)
      assert.equal(await r.read(buf, 16, 0), 5)
      assert.equal(buf.subarray(0, 5).toString(), 'hello')
      assert.equal(await r.read(buf, 16, 5), 0, 'at the end: nothing yet')
      await writeAt(d, 'uploads/grow', 5, ' world')
      assert.equal(await r.read(buf, 16, 5), 6)
      assert.equal(buf.subarray(0, 6).toString(), ' world')
      await d.commit('uploads/grow', 'blobs/sha256/gr/grow')
      assert.equal(await r.read(buf, 3, 0), 3)
      assert.equal(buf.subarray(0, 3).toString(), 'hel')
      await r.close()
      await assert.rejects(d.openPositional('uploads/grow'), PathNotFoundError)
    })

    it('appender at the current size appends', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/f', 0, 'hello')
      await writeAt(d, 'uploads/f', 5, ' world')
      assert.equal(await readAll(d, 'uploads/f'), 'hello world')
    })

    it('appender at a smaller offset truncates what lies past it (crash recovery)', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/f', 0, 'hello world')
      await writeAt(d, 'uploads/f', 5, '!!')
      assert.equal(await readAll(d, 'uploads/f'), 'hello!!')
      assert.equal((await d.stat('uploads/f'))?.size, 7)
    })

    it('appender at offset 0 on an existing file starts it over', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/f', 0, 'old content')
      await writeAt(d, 'uploads/f', 0, 'new')
      assert.equal(await readAll(d, 'uploads/f'), 'new')
    })

    it('an appender that writes nothing leaves an empty file', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/empty', 0, '')
      assert.equal((await d.stat('uploads/empty'))?.size, 0)
      assert.equal(await readAll(d, 'uploads/empty'), '')
    })

    it('reader streams the whole file, or a byte range', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'blobs/x', 0, '0123456789')
      assert.equal(await readAll(d, 'blobs/x'), '0123456789')
      assert.equal(await readAll(d, 'blobs/x', { offset: 2, length: 3 }), '234')
      assert.equal(await readAll(d, 'blobs/x', { offset: 7 }), '789')
      assert.equal(await readAll(d, 'blobs/x', { offset: 0, length: 1 }), '0')
      assert.equal(await readAll(d, 'blobs/x', { offset: 9, length: 1 }), '9')
    })

    it('reader streams large files intact', async (t) => {
      const d = await fresh(t)
      const big = Buffer.alloc(3 * (1 << 20) + 17)
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
      await writeAt(d, 'blobs/big', 0, big)
      const src = await d.reader('blobs/big', { offset: 1000, length: big.length - 2000 })
      const chunks: Buffer[] = []
      for await (const c of src) chunks.push(c as Buffer)
      assert.ok(Buffer.concat(chunks).equals(big.subarray(1000, big.length - 1000)))
    })

    it('reader of a missing path rejects with PathNotFoundError', async (t) => {
      const d = await fresh(t)
      await assert.rejects(d.reader('blobs/missing'), (e: unknown) => e instanceof PathNotFoundError && e.path === 'blobs/missing')
    })

    it('openForSend copies the whole file, or a byte range', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'blobs/x', 0, '0123456789')
      assert.equal((await sendAll(d, 'blobs/x')).toString(), '0123456789')
      assert.equal((await sendAll(d, 'blobs/x', { offset: 2, length: 3 })).toString(), '234')
      assert.equal((await sendAll(d, 'blobs/x', { offset: 9, length: 1 })).toString(), '9')
      assert.equal((await sendAll(d, 'blobs/x', { offset: 0, length: 10 })).toString(), '0123456789')
    })

    it('openForSend of an empty file writes nothing', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'blobs/empty', 0, '')
      assert.equal((await sendAll(d, 'blobs/empty')).length, 0)
    })

    it('openForSend streams large files and ranges across chunk boundaries intact', async (t) => {
      const d = await fresh(t)
      const big = pattern(5 * (1 << 20) + 123, 1)
      await writeAt(d, 'blobs/big', 0, big)
      assert.ok((await sendAll(d, 'blobs/big')).equals(big))
      const offset = (1 << 20) - 7
      const length = 3 * (1 << 20) + 11
      assert.ok((await sendAll(d, 'blobs/big', { offset, length })).equals(big.subarray(offset, offset + length)))
    })

    it('concurrent openForSend transfers to slow destinations do not mix their bytes', async (t) => {
      const d = await fresh(t)
      const files = [0, 1, 2, 3].map((i) => pattern(2 * (1 << 20) + 1000 * i, i + 10))
      for (const [i, f] of files.entries()) await writeAt(d, `blobs/f${i}`, 0, f)
      const got = await Promise.all(files.map((_, i) => sendAll(d, `blobs/f${i}`, undefined, { slow: true })))
      for (const [i, f] of files.entries()) assert.ok(got[i]!.equals(f), `file ${i} intact`)
      // And again, now that any pooled buffers have been used once.
      const again = await Promise.all(
        files.map((_, i) => sendAll(d, `blobs/f${i}`, { offset: 5, length: f0len(files[i]!) }, { slow: true })),
      )
      for (const [i, f] of files.entries()) assert.ok(again[i]!.equals(f.subarray(5, 5 + f0len(f))), `file ${i} range intact`)
    })

    it('openForSend of a missing path rejects with PathNotFoundError before writing', async (t) => {
      const d = await fresh(t)
      await assert.rejects(d.openForSend('blobs/missing'), (e: unknown) => e instanceof PathNotFoundError && e.path === 'blobs/missing')
    })

    it('openForSend rejects, and does not hang, when the destination closes mid-transfer', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'blobs/big', 0, pattern(4 * (1 << 20), 3))
      const send = await d.openForSend('blobs/big')
      let writes = 0
      const dest = new Writable({
        write(_chunk, _enc, cb) {
          writes++
          // The client goes away after the first chunk; the callback never comes.
          if (writes === 1) setImmediate(() => dest.destroy())
          else cb()
        },
      })
      await assert.rejects(send(dest))
      // The file is still readable afterwards (its handle was not left in a broken state).
      assert.equal((await sendAll(d, 'blobs/big', { offset: 0, length: 4 })).length, 4)
    })

    it('commit renames atomically: source gone, destination holds the content', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/tmp1', 0, 'payload')
      await d.commit('uploads/tmp1', 'blobs/sha256/ab/abcdef')
      assert.equal(await d.stat('uploads/tmp1'), undefined)
      assert.equal(await readAll(d, 'blobs/sha256/ab/abcdef'), 'payload')
      assert.equal((await d.stat('blobs/sha256/ab/abcdef'))?.size, 7)
    })

    it('commit replaces an existing destination (same content-addressed blob pushed twice)', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'blobs/dst', 0, 'first')
      await writeAt(d, 'uploads/tmp', 0, 'second')
      await d.commit('uploads/tmp', 'blobs/dst')
      assert.equal(await readAll(d, 'blobs/dst'), 'second')
      assert.equal(await d.stat('uploads/tmp'), undefined)
    })

    it('commit of a missing source rejects with PathNotFoundError and creates nothing', async (t) => {
      const d = await fresh(t)
      await assert.rejects(d.commit('uploads/none', 'blobs/dst'), PathNotFoundError)
      assert.equal(await d.stat('blobs/dst'), undefined)
    })

    it('a durable writer is closed (flushed) when it finishes, and its file commits as synced', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/tmp', 0, 'stale bytes from an earlier attempt')
      const out = await d.appender('uploads/tmp', 0, { durable: true })
      let closed = false
      out.on('close', () => (closed = true))
      await pipeline(Readable.from([Buffer.from('dur'), Buffer.from('able')]), out)
      assert.ok(closed, 'pipeline resolves only after the writer closed its (fsynced) handle')
      await d.commit('uploads/tmp', 'blobs/sha256/du/durable', { synced: true })
      assert.equal(await readAll(d, 'blobs/sha256/du/durable'), 'durable')
      assert.equal(await d.stat('uploads/tmp'), undefined)
      await assert.rejects(d.commit('uploads/none', 'blobs/sha256/du/other', { synced: true }), PathNotFoundError)
      assert.equal(await d.stat('blobs/sha256/du/other'), undefined)
    })

    it('list yields every file under a prefix, recursively, with root-relative paths', async (t) => {
      const d = await fresh(t)
      // Committed files are listed with their sizes; a file still open for appending only by its path (see list).
      for (const [path, data] of [
        ['files/a', '1'],
        ['files/sub/b', '22'],
        ['blobs/c', '333'],
      ] as const) {
        await writeAt(d, 'uploads/tmp', 0, data)
        await d.commit('uploads/tmp', path)
      }
      await writeAt(d, 'uploads/open', 0, '4444')
      const files = await listAll(d, 'files')
      assert.deepEqual(
        files.map((f) => [f.path, f.size]),
        [
          ['files/a', 1],
          ['files/sub/b', 2],
        ],
      )
      for (const f of files) assert.ok(f.modified instanceof Date)
      assert.deepEqual(
        (await listAll(d, '')).map((f) => f.path),
        ['blobs/c', 'files/a', 'files/sub/b', 'uploads/open'],
      )
    })

    it('list of a missing prefix is empty', async (t) => {
      const d = await fresh(t)
      assert.deepEqual(await listAll(d, 'uploads'), [])
    })

    it('delete removes a file; deleting a missing path is not an error', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/x', 0, 'x')
      await d.delete('uploads/x')
      assert.equal(await d.stat('uploads/x'), undefined)
      await d.delete('uploads/x')
      await d.delete('never/existed')
    })

    it('delete of a folder removes what is under it and nothing else', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/sub/a', 0, 'a')
      await writeAt(d, 'uploads/keep', 0, 'k')
      await d.delete('uploads/sub')
      assert.deepEqual(
        (await listAll(d, 'uploads')).map((f) => f.path),
        ['uploads/keep'],
      )
    })

    it('a folder removed by delete can be written to again', async (t) => {
      const d = await fresh(t)
      await writeAt(d, 'uploads/sub/a', 0, 'a')
      await d.delete('uploads/sub')
      await writeAt(d, 'uploads/sub/b', 0, 'b')
      assert.equal(await readAll(d, 'uploads/sub/b'), 'b')
      await d.delete('uploads')
      await writeAt(d, 'uploads/c', 0, 'c')
      assert.equal(await readAll(d, 'uploads/c'), 'c')
      await writeAt(d, 'uploads/tmp', 0, 'blob')
      await d.delete('blobs')
      await d.commit('uploads/tmp', 'blobs/sha256/ab/cd')
      assert.equal(await readAll(d, 'blobs/sha256/ab/cd'), 'blob')
    })

    for (const p of ESCAPING_PATHS) {
      it(`a path escaping the root is refused by every operation: ${JSON.stringify(p)}`, async (t) => {
        const d = await fresh(t)
        await writeAt(d, 'uploads/src', 0, 'src')
        await assert.rejects(async () => d.stat(p), /escape/)
        await assert.rejects(async () => d.reader(p), /escape/)
        await assert.rejects(async () => d.openForSend(p), /escape/)
        await assert.rejects(async () => d.appender(p, 0), /escape/)
        await assert.rejects(async () => d.commit('uploads/src', p), /escape/)
        await assert.rejects(async () => d.commit(p, 'blobs/dst'), /escape/)
        await assert.rejects(async () => d.delete(p), /escape/)
        await assert.rejects(async () => listAll(d, p), /escape/)
        // Refusals have no side effects inside the root either.
        assert.equal(await readAll(d, 'uploads/src'), 'src')
        assert.equal(await d.stat('blobs/dst'), undefined)
      })
    }
  })
}
