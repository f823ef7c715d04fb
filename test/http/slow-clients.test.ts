// Slow and hostile clients against a real listening server (inject() has no sockets): bodies that are
// never read, bodies that stall, too many connections from one address, keep-alive for normal clients.
import assert from 'node:assert/strict'
import { createHash, randomBytes, randomUUID } from 'node:crypto'
import { mkdtemp, readdir, readFile, readlink, rm, stat } from 'node:fs/promises'
import { Agent, request } from 'node:http'
import { connect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect } from 'node:tls'
import { after, before, describe, it } from 'node:test'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

const REPO = 'slow/clients/img'
const HUNDRED_MB = 100 * 1024 * 1024
/** Loopback source address for the capped connections (Linux routes all of 127/8 to lo). */
const CAPPED = '127.0.0.3'

const sha256 = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** A raw client connection that records what the server sends and when the server closed it. */
interface Conn {
  socket: Socket
  data(): string
  /** Resolves with the time the server ended or reset the connection (the client never closes first). */
  closed: Promise<number>
  /** Resolves with the time the first bytes of a response arrived. */
  answered: Promise<number>
}

function open(port: number, opts: { localAddress?: string; tls?: { ca: string } } = {}): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const socket: Socket = opts.tls
      ? tlsConnect({ host: '127.0.0.1', port, ca: opts.tls.ca, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
      : connect({ host: '127.0.0.1', port, ...(opts.localAddress ? { localAddress: opts.localAddress } : {}) })
    let text = ''
    let answered!: (t: number) => void
    const answeredP = new Promise<number>((r) => (answered = r))
    const closed = new Promise<number>((r) => {
      socket.on('end', () => r(Date.now()))
      socket.on('close', () => r(Date.now()))
    })
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1')
      answered(Date.now())
    })
    socket.on('error', () => {}) // EPIPE / ECONNRESET once the server closed: that is what is measured
    socket.once(opts.tls ? 'secureConnect' : 'connect', () => resolve({ socket, data: () => text, closed, answered: answeredP }))
    socket.once('error', reject)
  })
}

/** Whether the connection is still open after `ms` (false once the server has closed it). */
async function openAfter(c: Conn, ms: number): Promise<boolean> {
  return (await Promise.race([c.closed.then(() => 'closed'), sleep(ms).then(() => 'open')])) === 'open'
}

/** Sends one HTTP/1.1 request on a raw connection and waits for a complete response (Content-Length framed). */
async function exchange(
  c: Conn,
  head: string,
  body: Buffer = Buffer.alloc(0),
  timeoutMs = 5000,
): Promise<{ status: number; headers: string; body: string }> {
  const before = c.data().length
  c.socket.write(Buffer.concat([Buffer.from(head, 'latin1'), body]))
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
    const text = c.data().slice(before)
    const end = text.indexOf('\r\n\r\n')
    if (end >= 0) {
      const headers = text.slice(0, end)
      const len = Number(/\r\ncontent-length: *(\d+)/i.exec(headers)?.[1] ?? 0)
      const bodyless = head.startsWith('HEAD ')
      if (bodyless || text.length >= end + 4 + len)
        return { status: Number(headers.slice(9, 12)), headers, body: text.slice(end + 4, end + 4 + len) }
    }
    await sleep(25)
  }
  throw new Error(`no complete response; got ${JSON.stringify(c.data().slice(before, before + 500))}`)
}

async function registryToken(w: Wharf, scope: string): Promise<string> {
  const basic = Buffer.from(`root:${w.rootPassword}`).toString('base64')
  const res = await fetch(`${w.url}/jwt/auth?service=container_registry&scope=${encodeURIComponent(scope)}`, {
    headers: { authorization: `Basic ${basic}` },
  })
  assert.equal(res.status, 200, await res.clone().text())
  return ((await res.json()) as { token: string }).token
}

/** Open file descriptors of the server process that point into its upload temp dir. */
async function openUploadFds(w: Wharf): Promise<number> {
  let n = 0
  for (const fd of await readdir(`/proc/${w.pid}/fd`)) {
    const target = await readlink(`/proc/${w.pid}/fd/${fd}`).catch(() => '')
    if (target.includes(join('storage', 'uploads'))) n++
  }
  return n
}

/** Error-level (or worse) lines in the server's JSON log. */
async function errorLines(w: Wharf): Promise<string[]> {
  const log = await readFile(w.logFile, 'utf8')
  return log.split('\n').filter((l) => /"level":(50|60)/.test(l))
}

describe('bodies the server does not read (default settings)', () => {
  let w: Wharf
  before(async () => {
    w = await startWharf()
  })
  after(() => w?.stop())

  it('answers 75 unauthenticated requests with a 100 MB Content-Length and a trickled body, then closes each connection', async () => {
    const requests = [
      (i: number) =>
        `PATCH /v2/${REPO}/blobs/uploads/${randomUUID()} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\nContent-Length: ${HUNDRED_MB + i}\r\n\r\n`,
      (i: number) =>
        `PUT /v2/${REPO}/manifests/v${i} HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: ${HUNDRED_MB}\r\n\r\n`,
      () => `POST /api/v4/projects HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${HUNDRED_MB}\r\n\r\n{"name":"`,
    ]
    const conns = await Promise.all(Array.from({ length: 75 }, () => open(w.port)))
    for (const [i, c] of conns.entries()) c.socket.write(requests[i % 3]!(i))
    let trickling = true
    void (async () => {
      while (trickling) {
        for (const c of conns) if (!c.socket.destroyed) c.socket.write('a'.repeat(64))
        await sleep(100)
      }
    })()
    try {
      const lingering: number[] = []
      await Promise.all(
        conns.map(async (c, i) => {
          const answeredAt = await Promise.race([c.answered, sleep(10_000).then(() => NaN)])
          assert.ok(!Number.isNaN(answeredAt), `request ${i} got no answer`)
          const closedAt = await Promise.race([c.closed, sleep(10_000).then(() => NaN)])
          if (Number.isNaN(closedAt)) lingering.push(i)
          else assert.ok(closedAt - answeredAt < 3000, `request ${i}: closed ${closedAt - answeredAt} ms after the answer`)
        }),
      )
      assert.deepEqual(lingering, [], `${lingering.length} of 75 connections still open 10 s after their answer`)
      for (const [i, c] of conns.entries()) {
        assert.match(c.data(), /^HTTP\/1\.1 (401|413) /, `request ${i}`)
        assert.match(c.data(), /\r\nconnection: close\r\n/i, `request ${i} announces the close`)
      }
    } finally {
      trickling = false
      for (const c of conns) c.socket.destroy()
    }
  })
})

describe('stalled upload bodies (body idle timeout 2 s)', () => {
  let w: Wharf
  before(async () => {
    w = await startWharf({ extraArgs: ['--body-idle-timeout-seconds', '2'] })
    await w.createProject('slow/clients')
  })
  after(() => w?.stop())

  it('aborts 100 stalled PATCH bodies, keeps what arrived, and every upload resumes from the offset GET reports', async () => {
    const token = await registryToken(w, `repository:${REPO}:pull,push`)
    const auth = { authorization: `Bearer ${token}` }
    const blob = randomBytes(1 << 20)
    const sent = 300 * 1024
    const sessions: string[] = []
    for (let i = 0; i < 100; i++) {
      const res = await fetch(`${w.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: auth })
      assert.equal(res.status, 202)
      sessions.push(res.headers.get('location')!)
    }
    // A stalled single-request upload too: it has no session to resume, so its temp file must go.
    const monolithic = await open(w.port)
    monolithic.socket.write(
      `POST /v2/${REPO}/blobs/uploads/?digest=${sha256(blob)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n`,
    )
    monolithic.socket.write(blob.subarray(0, sent))

    const conns = await Promise.all(sessions.map(() => open(w.port)))
    const stalledAt = Date.now()
    for (const [i, c] of conns.entries()) {
      c.socket.write(
        Buffer.concat([
          Buffer.from(
            `PATCH ${sessions[i]} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Range: 0-${blob.length - 1}\r\nContent-Length: ${blob.length}\r\n\r\n`,
          ),
          blob.subarray(0, sent),
        ]),
      )
    }
    const closedAt = await Promise.all([...conns, monolithic].map((c) => Promise.race([c.closed, sleep(15_000).then(() => NaN)])))
    const open_ = closedAt.filter((t) => Number.isNaN(t)).length
    assert.equal(open_, 0, `${open_} of 101 stalled bodies still open after 15 s`)
    for (const t of closedAt) assert.ok(t - stalledAt >= 1500, `closed after ${t - stalledAt} ms: before the idle timeout`)

    // Temp files accounted: one per session holding exactly the bytes received, none for the single-request upload, none held open.
    // The server cleans up just after it cuts a connection, so give it a moment (bounded).
    const dir = join(w.dataDir, 'storage', 'uploads')
    for (let i = 0; i < 100 && ((await readdir(dir)).length !== 100 || (await openUploadFds(w)) !== 0); i++) await sleep(50)
    const files = await readdir(dir)
    assert.equal(files.length, 100, `temp files: ${files.length}`)
    for (const f of files) assert.equal((await stat(join(dir, f))).size, sent)
    assert.equal(await openUploadFds(w), 0)

    for (const location of sessions) {
      let status = await fetch(`${w.url}${location}`, { headers: auth })
      for (let i = 0; i < 40 && status.headers.get('range') !== `0-${sent - 1}`; i++) {
        await sleep(50)
        status = await fetch(`${w.url}${location}`, { headers: auth })
      }
      assert.equal(status.status, 204)
      assert.equal(status.headers.get('range'), `0-${sent - 1}`)
      const rest = await fetch(`${w.url}${location}`, {
        method: 'PATCH',
        headers: { ...auth, 'content-type': 'application/octet-stream', 'content-range': `${sent}-${blob.length - 1}` },
        body: blob.subarray(sent),
      })
      assert.equal(rest.status, 202, await rest.text())
      const done = await fetch(`${w.url}${location}${location.includes('?') ? '&' : '?'}digest=${sha256(blob)}`, {
        method: 'PUT',
        headers: auth,
      })
      assert.equal(done.status, 201, await done.text())
    }
    const pulled = await fetch(`${w.url}/v2/${REPO}/blobs/${sha256(blob)}`, { headers: auth })
    assert.equal(pulled.status, 200)
    assert.equal(sha256(Buffer.from(await pulled.arrayBuffer())), sha256(blob))
    assert.deepEqual(await readdir(dir), [])

    // Clients going away mid-upload are routine: nothing at error level.
    assert.deepEqual(await errorLines(w), [])
    assert.match(await readFile(w.logFile, 'utf8'), /request body idle: connection closed/)
  })

  it('does not cut off a body the server is not reading yet (a PATCH waiting for the session lock)', async () => {
    const token = await registryToken(w, `repository:${REPO}:pull,push`)
    const auth = { authorization: `Bearer ${token}` }
    const location = (await fetch(`${w.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: auth })).headers.get('location')!
    const head = (length: number) =>
      `PATCH ${location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`
    // The first PATCH holds the session's lock: it trickles for 5 s, then stalls and is cut off.
    const first = await open(w.port)
    first.socket.write(head(1 << 20))
    first.socket.write(Buffer.alloc(1000, 1))
    let trickled = 1000
    const trickle = setInterval(() => {
      first.socket.write(Buffer.alloc(100, 1))
      trickled += 100
    }, 400)
    await sleep(500)
    // The second waits behind it far longer than the idle timeout, its body sent and buffered.
    const second = await open(w.port)
    const body = randomBytes(1 << 20)
    const answer = exchange(second, head(body.length), body, 20_000)
    await sleep(4500)
    clearInterval(trickle)
    assert.ok(!Number.isNaN(await Promise.race([first.closed, sleep(10_000).then(() => NaN)])), 'the stalled first PATCH is cut off')
    const res = await answer
    assert.equal(res.status, 202, res.body)
    assert.match(res.headers, new RegExp(`\\r\\nrange: 0-${trickled + body.length - 1}\\r\\n`, 'i'))
    second.socket.destroy()
  })

  it('logs clients that disconnect mid-upload at info, not error, and keeps their uploads resumable', async () => {
    const token = await registryToken(w, `repository:${REPO}:pull,push`)
    const auth = { authorization: `Bearer ${token}` }
    const sent = 256 * 1024
    for (let i = 0; i < 10; i++) {
      const res = await fetch(`${w.url}/v2/${REPO}/blobs/uploads/`, { method: 'POST', headers: auth })
      const location = res.headers.get('location')!
      const c = await open(w.port)
      // Docker's way: one streamed PATCH, chunked, no Content-Range.
      c.socket.write(
        `PATCH ${location} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n`,
      )
      c.socket.write(`${sent.toString(16)}\r\n`)
      await new Promise<void>((r) => c.socket.write(randomBytes(sent), () => r()))
      await sleep(300)
      c.socket.destroy()
      let range: string | null = null
      for (let tries = 0; tries < 40 && range !== `0-${sent - 1}`; tries++) {
        await sleep(50)
        range = (await fetch(`${w.url}${location}`, { headers: auth })).headers.get('range')
      }
      assert.equal(range, `0-${sent - 1}`)
    }
    await sleep(200)
    assert.deepEqual(await errorLines(w), [])
    assert.match(await readFile(w.logFile, 'utf8'), /"level":30[^\n]*"msg":"client disconnected"/)
  })
})

describe('connections per address (cap 5)', () => {
  let w: Wharf
  before(async () => {
    w = await startWharf({ extraArgs: ['--max-connections-per-address', '5'] })
  })
  after(() => w?.stop())

  it('answers the sixth connection from one address 503 with the reason; the others and other addresses keep working', async () => {
    const get = 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'
    // From an address of their own: the start-up probe's keep-alive connection from 127.0.0.1 may still be open.
    const five = await Promise.all(Array.from({ length: 5 }, () => open(w.port, { localAddress: CAPPED })))
    for (const c of five) assert.equal((await exchange(c, get)).status, 401)
    const sixth = await open(w.port, { localAddress: CAPPED })
    const refused = await exchange(sixth, get)
    assert.equal(refused.status, 503)
    assert.match(refused.body, /Too many open connections from your address \(limit 5\)/)
    assert.match(refused.headers, /\r\nconnection: close/i)
    assert.ok(!(await openAfter(sixth, 3000)), 'the refused connection is closed')
    // The five still work, and another address is not affected.
    for (const c of five) assert.equal((await exchange(c, get)).status, 401)
    const other = await open(w.port, { localAddress: '127.0.0.2' })
    assert.equal((await exchange(other, get)).status, 401)
    // A freed slot is usable again.
    five[0]!.socket.destroy()
    await sleep(200)
    const again = await open(w.port, { localAddress: CAPPED })
    assert.equal((await exchange(again, get)).status, 401)
    for (const c of [...five, other, again]) c.socket.destroy()
    assert.match(await readFile(w.logFile, 'utf8'), /refusing connections: too many open from one address/)
  })
})

describe('connections per address over HTTPS (cap 2)', () => {
  let w: Wharf
  let ca: string
  let certDir: string
  before(async () => {
    certDir = await mkdtemp(join(tmpdir(), 'wharf-slow-tls-'))
    const issued = await issueServerCertificate({ dir: certDir, names: ['127.0.0.1'] })
    ca = await readFile(issued.files.caCert, 'utf8')
    w = await startWharf({
      extraArgs: ['--max-connections-per-address', '2'],
      tls: { cert: issued.files.serverCert, key: issued.files.serverKey, ca: issued.files.caCert },
    })
  })
  after(async () => {
    await w?.stop()
    await rm(certDir, { recursive: true, force: true })
  })

  it('answers the third connection 503 over TLS, after the handshake', async () => {
    const get = 'GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n'
    const two = await Promise.all([
      open(w.port, { tls: { ca }, localAddress: CAPPED }),
      open(w.port, { tls: { ca }, localAddress: CAPPED }),
    ])
    for (const c of two) assert.equal((await exchange(c, get)).status, 401)
    const third = await open(w.port, { tls: { ca }, localAddress: CAPPED })
    const refused = await exchange(third, get)
    assert.equal(refused.status, 503)
    assert.match(refused.body, /Too many open connections from your address \(limit 2\)/)
    assert.ok(!(await openAfter(third, 3000)), 'the refused connection is closed')
    for (const c of two) assert.equal((await exchange(c, get)).status, 401)
    for (const c of [...two, third]) c.socket.destroy()
  })
})

describe('keep-alive and headers timeouts (2 s each)', () => {
  let w: Wharf
  before(async () => {
    w = await startWharf({ extraArgs: ['--keep-alive-timeout-seconds', '2', '--headers-timeout-seconds', '2'] })
    await w.createProject('slow/clients')
  })
  after(() => w?.stop())

  it('serves several requests, bodies and errors included, on one connection, and closes it once idle', async () => {
    const token = await registryToken(w, `repository:${REPO}:pull,push`)
    const auth = `Authorization: Bearer ${token}\r\n`
    const c = await open(w.port)
    const blob = randomBytes(200_000)
    const steps: [string, Buffer | undefined, number][] = [
      [`GET /v2/ HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, undefined, 200],
      [`GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n`, undefined, 401],
      [
        `POST /v2/${REPO}/blobs/uploads/?digest=${sha256(blob)} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n`,
        blob,
        201,
      ],
      [`HEAD /v2/${REPO}/blobs/${sha256(blob)} HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, undefined, 200],
      // A client error after the body was read keeps the connection too.
      [
        `POST /v2/${REPO}/blobs/uploads/?digest=${sha256(Buffer.from('other'))} HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/octet-stream\r\nContent-Length: ${blob.length}\r\n\r\n`,
        blob,
        400,
      ],
      [`GET /v2/${REPO}/manifests/missing HTTP/1.1\r\nHost: x\r\n${auth}\r\n`, undefined, 404],
    ]
    for (const [head, body, status] of steps) {
      const res = await exchange(c, head, body)
      assert.equal(res.status, status, `${head.split('\r\n')[0]}: ${res.body}`)
      if (head.startsWith('HEAD')) continue
      assert.match(res.headers, /\r\nconnection: keep-alive/i, head.split('\r\n')[0])
      assert.match(res.headers, /\r\nkeep-alive: timeout=2/i)
    }
    assert.ok(await openAfter(c, 1000), 'still open within the keep-alive timeout')
    assert.ok(!(await openAfter(c, 4000)), 'closed after the keep-alive timeout')

    // Through node's own keep-alive agent: one socket for all of them.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 })
    const ports = new Set<number>()
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = request(`${w.url}/v2/`, { agent, headers: { authorization: `Bearer ${token}` } }, (res) => {
          ports.add(res.socket.localPort!)
          res.resume().on('end', resolve)
        })
        req.on('error', reject).end()
      })
    }
    agent.destroy()
    assert.equal(ports.size, 1)
  })

  it('closes a connection whose request headers do not arrive within the headers timeout', async () => {
    const c = await open(w.port)
    const start = Date.now()
    c.socket.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n')
    const trickle = setInterval(() => c.socket.write('X-Slow: 1\r\n'), 200)
    try {
      const closedAt = await Promise.race([c.closed, sleep(10_000).then(() => NaN)])
      assert.ok(!Number.isNaN(closedAt), 'still open 10 s after the first header line')
      assert.ok(closedAt - start >= 1500, `closed after ${closedAt - start} ms`)
      assert.match(c.data(), /^HTTP\/1\.1 408 /)
    } finally {
      clearInterval(trickle)
      c.socket.destroy()
    }
  })
})
