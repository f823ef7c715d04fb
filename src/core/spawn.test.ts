import assert from 'node:assert/strict'
import { closeSync, openSync } from 'node:fs'
import { describe, it } from 'node:test'
import { startProcess } from './spawn.ts'

/** Opens /dev/null until the process has no descriptor left; returns them for closing. */
function exhaustDescriptors(): number[] {
  const fds: number[] = []
  for (;;) {
    try {
      fds.push(openSync('/dev/null', 'r'))
    } catch (e) {
      assert.equal((e as NodeJS.ErrnoException).code, 'EMFILE')
      return fds
    }
    if (fds.length > 1_000_000) throw new Error('no descriptor limit')
  }
}

describe('startProcess', () => {
  it('resolves with a running child whose stdio streams exist', async () => {
    const child = await startProcess('sh', ['-c', 'read x; echo "got $x"'], { stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stdin.end('hi\n')
    await new Promise((r) => child.on('close', r))
    assert.equal(Buffer.concat(out).toString(), 'got hi\n')
  })

  it('rejects for a missing program (no unheard error event)', async () => {
    await assert.rejects(startProcess('/nonexistent/program', [], { stdio: ['pipe', 'pipe', 'pipe'] }), { code: 'ENOENT' })
  })

  it('out of file descriptors: rejects with UNAVAILABLE instead of throwing or crashing, and works again once they are free', async () => {
    const fds = exhaustDescriptors()
    let failure: unknown
    try {
      // Several at once, as a burst of requests would.
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => startProcess('true', [], { stdio: ['pipe', 'pipe', 'pipe'] })),
      )
      failure = results.find((r) => r.status === 'rejected')?.reason
      assert.ok(
        results.every((r) => r.status === 'rejected'),
        'no child can start without descriptors',
      )
    } finally {
      for (const fd of fds) closeSync(fd)
    }
    const e = failure as Error & { code?: string; detail?: Record<string, unknown> }
    assert.equal(e.code, 'UNAVAILABLE')
    assert.equal(e.detail?.errno, 'EMFILE')
    assert.match(e.message, /cannot start true: the server is out of resources \(EMFILE\)/)
    const child = await startProcess('true', [], { stdio: ['ignore', 'pipe', 'pipe'] })
    assert.equal(await new Promise((r) => child.on('close', r)), 0)
  })
})
