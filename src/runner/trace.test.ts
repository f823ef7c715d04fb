import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { JobTrace, type TraceTransport } from './trace.ts'
import type { PatchTraceResult } from './client.ts'

/** A server that stores the trace like Wharf: appends at its size, 416 + Range when the start is past it. */
class FakeServer implements TraceTransport {
  stored = Buffer.alloc(0)
  calls: { start: number; length: number; status: number }[] = []
  status = 'running'
  /** Answers to force, in order, before normal behaviour. */
  forced: Array<Partial<PatchTraceResult> & { status: number }> = []
  failNext = 0

  async patchTrace(_id: number, token: string, start: number, bytes: Uint8Array): Promise<PatchTraceResult> {
    assert.equal(token, 'glcbt-job-token')
    if (this.failNext > 0) {
      this.failNext--
      throw new Error('connection reset')
    }
    const forced = this.forced.shift()
    if (forced) {
      this.calls.push({ start, length: bytes.length, status: forced.status })
      return { text: '', jobStatus: this.status, stored: this.stored.length, updateInterval: undefined, ...forced }
    }
    if (start > this.stored.length) {
      this.calls.push({ start, length: bytes.length, status: 416 })
      return { status: 416, text: '', jobStatus: this.status, stored: this.stored.length, updateInterval: undefined }
    }
    const fresh = Buffer.from(bytes).subarray(this.stored.length - start)
    this.stored = Buffer.concat([this.stored, fresh])
    this.calls.push({ start, length: bytes.length, status: 202 })
    return { status: 202, text: '', jobStatus: this.status, stored: this.stored.length, updateInterval: undefined }
  }
}

function trace(server: FakeServer, extra: Partial<ConstructorParameters<typeof JobTrace>[0]> = {}) {
  return new JobTrace({
    transport: server,
    jobId: 1,
    jobToken: 'glcbt-job-token',
    secrets: ['glcbt-job-token', 'sup3r-s3cret'],
    outputLimitBytes: 1 << 20,
    flushMs: 10_000,
    ...extra,
  })
}

describe('JobTrace', () => {
  it('sends appends with increasing offsets and ends with the whole masked log', async () => {
    const server = new FakeServer()
    const t = trace(server)
    t.write('line 1 sup3r-')
    await t.flush()
    t.write('s3cret\nline 2 glcbt-job-token\n')
    await t.flush()
    await t.finish()
    assert.equal(server.stored.toString(), 'line 1 [MASKED]\nline 2 [MASKED]\n')
    assert.equal(t.sent, t.size)
    for (let i = 1; i < server.calls.length; i++)
      assert.equal(server.calls[i]!.start, server.calls[i - 1]!.start + server.calls[i - 1]!.length)
    assert.match(t.checksum, /^crc32:[0-9a-f]{8}$/)
  })

  it('resyncs on 416 from the Range the server sends', async () => {
    const server = new FakeServer()
    const t = trace(server)
    t.write('0123456789')
    await t.flush()
    // The server lost the tail (e.g. restored from an older chunk): it says it has 4 bytes.
    server.stored = server.stored.subarray(0, 4)
    t.write('abcdef')
    await t.flush()
    assert.deepEqual(
      server.calls.map((c) => [c.start, c.status]),
      [
        [0, 202],
        [10, 416],
        [4, 202],
      ],
    )
    assert.equal(server.stored.toString(), '0123456789abcdef')
  })

  it('resends from an earlier offset when a 202 says less was stored', async () => {
    const server = new FakeServer()
    server.forced.push({ status: 202, stored: 0 })
    const t = trace(server)
    t.write('hello')
    await t.flush()
    assert.equal(server.stored.toString(), 'hello')
    assert.equal(t.sent, 5)
  })

  it('reports Job-Status answers and stops on 403', async () => {
    const server = new FakeServer()
    const statuses: string[] = []
    let rejected = 0
    const t = trace(server, { onJobStatus: (s) => statuses.push(s), onRejected: () => rejected++ })
    server.status = 'canceled'
    t.write('a')
    await t.flush()
    assert.deepEqual(statuses, ['canceled'])
    server.forced.push({ status: 403 })
    t.write('b')
    await t.flush()
    assert.equal(rejected, 1)
    assert.equal(t.rejected, true)
  })

  it('retries after transport errors and gets everything across at finish', async () => {
    const server = new FakeServer()
    const errors: unknown[] = []
    const t = trace(server, { onError: (e) => errors.push(e) })
    server.failNext = 1
    t.write('abc')
    await t.flush()
    assert.equal(server.stored.length, 0)
    await t.finish()
    assert.equal(server.stored.toString(), 'abc')
    assert.equal(errors.length, 1)
  })

  it('flushes on its own once 64 KiB wait, in patches of bounded size', async () => {
    const server = new FakeServer()
    const t = trace(server, { flushBytes: 1024, maxPatchBytes: 700 })
    t.write('x'.repeat(3000))
    await new Promise((r) => setTimeout(r, 20))
    await t.flush()
    assert.equal(server.stored.length, 3000)
    assert.ok(server.calls.every((c) => c.length <= 700))
  })

  it('sends on a timer while output trickles in', async () => {
    const server = new FakeServer()
    const t = trace(server, { flushMs: 20 })
    t.start()
    t.write('tick\n')
    await new Promise((r) => setTimeout(r, 80))
    assert.equal(server.stored.toString(), 'tick\n')
    await t.finish()
  })

  it('stops collecting at the output limit with a notice', async () => {
    const server = new FakeServer()
    const t = trace(server, { outputLimitBytes: 10 })
    t.write('0123456789ABCDEF')
    t.write('more')
    await t.finish()
    assert.equal(
      server.stored.toString(),
      "0123456789\n\x1b[33;1mJob's log exceeded limit of 10 bytes.\nJob execution will continue but no more output will be collected.\x1b[0;m\n",
    )
  })
})
