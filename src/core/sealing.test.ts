import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { it, type TestContext } from 'node:test'
import { Sealer, sealingKeyProblem } from './sealing.ts'

async function dir(t: TestContext): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'wharf-sealing-'))
  t.after(() => rm(d, { recursive: true, force: true }))
  return d
}

it('a shared key file is read, never made, and must hold a 32-byte base64 key', async (t) => {
  const d = await dir(t)
  await assert.rejects(Sealer.fromSharedFile(join(d, 'absent.key')), { code: 'ENOENT' })
  const bad = join(d, 'bad.key')
  await writeFile(bad, 'not a key\n')
  await assert.rejects(Sealer.fromSharedFile(bad), /32 random bytes/)
  const good = join(d, 'good.key')
  const key = randomBytes(32)
  await writeFile(good, `${key.toString('base64')}\n`)
  assert.equal((await Sealer.fromSharedFile(good)).checkValue(), new Sealer(key).checkValue())
  assert.equal(sealingKeyProblem(key.toString('base64')), undefined)
  assert.notEqual(new Sealer(randomBytes(32)).checkValue(), new Sealer(key).checkValue())
})
