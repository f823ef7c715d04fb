import assert from 'node:assert/strict'
import { Readable } from 'node:stream'
import { text } from 'node:stream/consumers'
import { describe, it } from 'node:test'
import { CgiError, headEnd, parseCgiHead, runCgi } from './cgi.ts'

describe('CGI header block', () => {
  it('finds the blank line with LF, CRLF or both', () => {
    assert.equal(headEnd(Buffer.from('A: 1\n\nbody')), 6)
    assert.equal(headEnd(Buffer.from('A: 1\r\n\r\nbody')), 8)
    assert.equal(headEnd(Buffer.from('A: 1\r\n\nbody')), 7)
    assert.equal(headEnd(Buffer.from('A: 1\n\r\nbody')), 7)
    assert.equal(headEnd(Buffer.from('A: 1\r\nB: 2\r\n')), -1)
    assert.equal(headEnd(Buffer.from('')), -1)
    assert.equal(headEnd(Buffer.from('\nbody')), 1)
    assert.equal(headEnd(Buffer.from('\r\nbody')), 2)
  })

  it('reads Status and keeps the other headers in order', () => {
    assert.deepEqual(parseCgiHead('Status: 404 Not Found\r\nContent-Type: text/plain\r\nX-A: 1\r\nX-A: 2\r\n'), {
      status: 404,
      headers: [
        ['Content-Type', 'text/plain'],
        ['X-A', '1'],
        ['X-A', '2'],
      ],
    })
    assert.deepEqual(parseCgiHead('status:403'), { status: 403, headers: [] })
  })

  it('defaults to 200, or 302 with a Location', () => {
    assert.equal(parseCgiHead('Content-Type: application/x-git-upload-pack-advertisement\n').status, 200)
    assert.equal(parseCgiHead('Location: /x\n').status, 302)
  })

  it('rejects malformed lines and statuses', () => {
    for (const bad of ['no colon here', ': empty name', 'Bad Name: x', 'Status: abc', 'Status: 99 Low', 'Status: 600 High'])
      assert.throws(() => parseCgiHead(bad), CgiError, bad)
  })
})

const sh = (script: string) => ({ command: 'sh', args: ['-c', script], env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } })

describe('runCgi', () => {
  it('streams stdin through and splits head from body across chunks', async () => {
    // The head arrives in two writes; the body is the request body echoed back.
    const r = await runCgi({
      ...sh('printf "Status: 201 Created\\r\\nContent-"; sleep 0.05; printf "Type: x/y\\r\\n\\r\\nhead:"; cat'),
      body: Readable.from([Buffer.from('hello '), Buffer.from('world')]),
    })
    assert.equal(r.status, 201)
    assert.deepEqual(r.headers, [['Content-Type', 'x/y']])
    assert.equal(await text(r.body), 'head:hello world')
    assert.equal((await r.done).code, 0)
  })

  it('passes large bodies through without holding them (back-pressure both ways)', async () => {
    const chunk = Buffer.alloc(1 << 16, 0x61)
    const n = 256 // 16 MiB
    async function* gen() {
      for (let i = 0; i < n; i++) yield chunk
    }
    const r = await runCgi({ ...sh('printf "\\n"; cat'), body: Readable.from(gen()) })
    let bytes = 0
    for await (const c of r.body) bytes += (c as Buffer).length
    assert.equal(bytes, chunk.length * n)
  })

  it('fails when the program ends before its header block, with its stderr', async () => {
    await assert.rejects(
      runCgi({ ...sh('echo oops >&2; printf "Content-Type: x"'), body: null }),
      (e: Error) => e instanceof CgiError && /header block/.test(e.message),
    )
  })

  it('fails on a malformed header block and kills the program', async () => {
    await assert.rejects(runCgi({ ...sh('printf "garbage\\n\\n"; sleep 30'), body: null }), CgiError)
  })

  it('kills the program when the signal aborts (client gone)', async () => {
    const ac = new AbortController()
    const r = await runCgi({ ...sh('printf "\\n"; exec sleep 30'), body: null, signal: ac.signal })
    const t0 = Date.now()
    ac.abort()
    const done = await r.done
    assert.equal(done.signal, 'SIGKILL')
    assert.ok(Date.now() - t0 < 5000)
  })

  it('reports a missing program as an error', async () => {
    await assert.rejects(runCgi({ command: '/nonexistent/cgi', args: [], env: {}, body: null }), CgiError)
  })
})
