// Connection-level limits against slow and hostile clients, applied once to the node server
// under Fastify, so no route has to think about them.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { Server as TlsServer } from 'node:tls'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'

export interface ConnectionLimits {
  bodyIdleTimeoutSeconds: number
  headersTimeoutSeconds: number
  keepAliveTimeoutSeconds: number
  /** 0: no cap. */
  maxConnectionsPerAddress: number
}

/** How long a refused connection may still send before it is dropped: long enough for the client to read the 503. */
const REFUSE_LINGER_MS = 1000

/** Node server options for the limits, set explicitly rather than left to defaults that change between node versions. */
export function serverOptions(limits: ConnectionLimits): {
  keepAliveTimeout: number
  http: { headersTimeout: number; connectionsCheckingInterval: number }
} {
  const headersTimeout = limits.headersTimeoutSeconds * 1000
  return {
    keepAliveTimeout: limits.keepAliveTimeoutSeconds * 1000,
    // Node checks header deadlines on this period (30 s by default), which would let a slow client overstay by as much.
    http: { headersTimeout, connectionsCheckingInterval: Math.min(5000, headersTimeout) },
  }
}

/** True while a request has announced a body that has not been received to its end. */
function bodyPending(req: IncomingMessage): boolean {
  if (req.complete) return false
  const h = req.headers
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
}

/**
 * Installs the limits on the app's server: a reply sent before its request body was read closes the
 * connection; a body that stalls is aborted; one address cannot hold more than its share of connections.
 */
export function limitConnections(app: FastifyInstance, limits: ConnectionLimits, log: FastifyBaseLogger): void {
  // Node would otherwise drain whatever the client still sends (100 MB from an unauthenticated client,
  // trickled for as long as it likes) to keep the connection alive. Closing costs a normal client one reconnect.
  app.addHook('onSend', (req, reply, payload, done) => {
    if (bodyPending(req.raw)) reply.header('Connection', 'close')
    done(null, payload)
  })
  const server = app.server as Server
  abortIdleBodies(server, limits.bodyIdleTimeoutSeconds, log)
  if (limits.maxConnectionsPerAddress > 0) capPerAddress(server, limits.maxConnectionsPerAddress, log)
}

/**
 * Uploads take as long as they take (requestTimeout is off), but a body must keep moving: the socket's
 * idle timer runs while a body is pending, and its expiry destroys the connection. Once the body is in,
 * the same timer firing (a long computation, a slow reader) is ignored until node arms the keep-alive timeout.
 */
function abortIdleBodies(server: Server, seconds: number, log: FastifyBaseLogger): void {
  const ms = seconds * 1000
  const keepWaiting = () => {}
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    if (!bodyPending(req)) return
    req.socket.setTimeout(ms)
    // Node emits 'timeout' on the request only while its body is incomplete, and on the response otherwise.
    req.on('timeout', () => {
      // Body bytes waiting to be read mean the server is behind (a slow disk, a busy upload lock), not the client.
      if (req.readableLength > 0) return void req.socket.setTimeout(ms)
      log.info({ method: req.method, url: req.url, idleSeconds: seconds }, 'request body idle: connection closed')
      req.socket.destroy()
    })
    res.on('timeout', keepWaiting)
  })
}

/**
 * Counts open sockets per remote address at accept time. Over the cap, a plain-HTTP connection is
 * answered a 503 right away; over TLS the answer waits for the handshake, so the client can read it.
 */
function capPerAddress(server: Server, max: number, log: FastifyBaseLogger): void {
  const open = new Map<string, { n: number; warned: boolean }>()
  // remoteAddress:remotePort of accepted sockets over the cap; the TLS socket wrapping one reports the same pair.
  const refused = new Set<string>()
  const key = (s: Socket) => `${s.remoteAddress}:${s.remotePort}`
  const secure = server instanceof TlsServer
  const event = secure ? 'secureConnection' : 'connection'
  const serve = server.listeners(event) as ((s: Socket) => void)[]
  server.removeAllListeners(event)

  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? ''
    const entry = open.get(address) ?? { n: 0, warned: false }
    entry.n++
    open.set(address, entry)
    const k = key(socket)
    socket.once('close', () => {
      refused.delete(k)
      if (--entry.n === 0) open.delete(address)
    })
    if (entry.n <= max) return
    refused.add(k)
    // One line per burst, not one per refused connection: a client hammering the cap must not flood the log.
    if (!entry.warned) log.warn({ address, limit: max }, 'refusing connections: too many open from one address')
    entry.warned = true
  })
  server.on(event, function (this: Server, socket: Socket) {
    if (refused.has(key(socket))) return refuse(socket, max)
    for (const listener of serve) listener.call(this, socket)
  })
}

function refuse(socket: Socket, max: number): void {
  const body = `Too many open connections from your address (limit ${max}). Close idle connections or retry later.\n`
  socket.on('error', () => {})
  // Read and discard what the client sends: closing with unread data would reset the connection before it sees the answer.
  socket.resume()
  socket.end(
    `HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n${body}`,
  )
  setTimeout(() => socket.destroy(), REFUSE_LINGER_MS).unref()
}
