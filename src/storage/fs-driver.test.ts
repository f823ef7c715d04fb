import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it } from 'node:test'
import { describeBlobDriver, readAll, writeAt } from './driver-suite.ts'
import { createFsDriver } from './fs-driver.ts'
import { blobPath, isUploadId, uploadPath } from './paths.ts'
import { parseDigest } from '../core/digest.ts'

describeBlobDriver('fs', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-fs-driver-'))
  return { driver: createFsDriver(join(dir, 'storage')), cleanup: () => rm(dir, { recursive: true, force: true }) }
})

describe('fs driver specifics', () => {
  it('escaping paths never touch files outside the root, including a sibling sharing the root as a prefix', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-fs-driver-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const root = join(dir, 'storage')
    await mkdir(join(dir, 'storage-evil'), { recursive: true })
    await writeFile(join(dir, 'outside'), 'keep me')
    await writeFile(join(dir, 'storage-evil', 'f'), 'keep me too')
    const d = createFsDriver(root)

    for (const p of ['../outside', '../storage-evil/f', join(dir, 'outside')]) {
      await assert.rejects(async () => d.delete(p), /escape/)
      await assert.rejects(async () => d.appender(p, 0), /escape/)
      await assert.rejects(async () => d.reader(p), /escape/)
    }
    await writeAt(d, 'uploads/t', 0, 'x')
    await assert.rejects(async () => d.commit('uploads/t', '../outside'), /escape/)
    assert.equal(await readFile(join(dir, 'outside'), 'utf8'), 'keep me')
    assert.equal(await readFile(join(dir, 'storage-evil', 'f'), 'utf8'), 'keep me too')
    assert.deepEqual((await readdir(dir)).sort(), ['outside', 'storage', 'storage-evil'])
  })

  it('files land at the layout paths.ts describes', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'wharf-fs-driver-'))
    t.after(() => rm(dir, { recursive: true, force: true }))
    const d = createFsDriver(dir)
    const digest = parseDigest(`sha256:${'ab'.repeat(32)}`)
    const id = '0b4f7f6e-7f43-4c8e-9a51-2f6a0f3a1c11'
    assert.equal(isUploadId(id), true)
    await writeAt(d, uploadPath(id), 0, 'data')
    await d.commit(uploadPath(id), blobPath(digest))
    assert.equal(blobPath(digest), `blobs/sha256/ab/${'ab'.repeat(32)}`)
    assert.equal(await readFile(join(dir, 'blobs', 'sha256', 'ab', 'ab'.repeat(32)), 'utf8'), 'data')
    assert.equal(await readAll(d, blobPath(digest)), 'data')
  })

  it('uploadPath refuses ids that are not lowercase UUIDs', () => {
    for (const id of ['../x', 'x', '0B4F7F6E-7F43-4C8E-9A51-2F6A0F3A1C11', '0b4f7f6e-7f43-4c8e-9a51-2f6a0f3a1c1/', '']) {
      assert.throws(() => uploadPath(id), /uuid/)
    }
  })
})
