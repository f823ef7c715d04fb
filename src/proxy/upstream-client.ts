// An upstream registry as the pull-through cache talks to it: Docker's token flow (a 401 with a
// Bearer challenge → a token from the realm, anonymous or with the configured credentials → the
// retry), Basic auth, redirects for blobs (Docker Hub sends blob GETs to a CDN), timeouts, and the
// rate-limit figures the upstream reports. Credentials never appear in logs or errors.
import { readFileSync } from 'node:fs'
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http'
import { request as httpsRequest } from 'node:https'
import type { Readable } from 'node:stream'
import { LRUCache } from 'lru-cache'
import { WharfError } from '../core/errors.ts'
import { freeNow } from '../core/slabs.ts'
import type { UpstreamConfig } from '../config/schema.ts'

/** Redirect hops followed for one blob request (Docker Hub uses one). */
const MAX_REDIRECTS = 5
/** A token without `expires_in` lives 60 s (Docker's token spec default). */
const DEFAULT_TOKEN_SECONDS = 60
/** Largest token response read (a JWT is a few KiB). */
const TOKEN_RESPONSE_BYTES = 64 << 10

export interface RateLimit {
  limit: number
  remaining: number
  /** The window the figures apply to, in seconds (`;w=` of the header), if given. */
  windowSeconds: number | undefined
  observedAt: string
}

export interface UpstreamResponse {
  status: number
  headers: IncomingHttpHeaders
  body: Readable
}

export interface RequestOptions {
  accept?: string
  /** The token scope to ask for on a Bearer challenge (`repository:<name>:pull`). */
  scope: string
  /** Follow redirects (blobs only: manifests come from the registry itself). */
  followRedirects?: boolean
}

interface Challenge {
  scheme: 'bearer' | 'basic'
  params: Record<string, string>
}

/** Parses `Bearer realm="…",service="…"` or `Basic realm="…"`. */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined
  const m = /^(bearer|basic)\s+(.*)$/i.exec(header.trim())
  if (!m) return undefined
  const params: Record<string, string> = {}
  for (const p of m[2]!.matchAll(/([a-zA-Z_]+)="([^"]*)"/g)) params[p[1]!.toLowerCase()] = p[2]!
  return { scheme: m[1]!.toLowerCase() as Challenge['scheme'], params }
}

/** `100;w=21600` → { value: 100, window: 21600 }. */
function parseRateHeader(v: string | string[] | undefined): { value: number; window: number | undefined } | undefined {
  const s = Array.isArray(v) ? v[0] : v
  const m = s && /^\s*(\d+)(?:\s*;\s*w=(\d+))?/.exec(s)
  return m ? { value: Number(m[1]), window: m[2] === undefined ? undefined : Number(m[2]) } : undefined
}

export class UpstreamClient {
  readonly host: string
  readonly url: string
  private readonly cfg: UpstreamConfig
  private readonly ca: string | undefined
  private readonly timeoutMs: number
  private readonly onError: ((reason: 'rate_limited' | 'unavailable') => void) | undefined
  /** Per scope (one repository each): bounded, as a mirror may be asked for any number of repositories. */
  private readonly tokens = new LRUCache<string, { token: string; expires: number }>({ max: 1000 })
  /** The upstream asked for Basic auth once: send it up front from then on. */
  private basic = false
  rateLimit: RateLimit | undefined
  lastError: { message: string; at: string } | undefined

  /** `onError`: told of each failure as it is recorded (the metrics count them). */
  constructor(cfg: UpstreamConfig, opts: { timeoutMs: number; onError?: (reason: 'rate_limited' | 'unavailable') => void }) {
    this.cfg = cfg
    this.host = cfg.host
    this.url = cfg.url.replace(/\/$/, '')
    this.ca = cfg.caFile ? readFileSync(cfg.caFile, 'utf8') : undefined
    this.timeoutMs = opts.timeoutMs
    this.onError = opts.onError
  }

  /** A registry request, authenticated as the upstream asks. The caller must consume or destroy the body. */
  async request(method: 'GET' | 'HEAD', path: string, opts: RequestOptions): Promise<UpstreamResponse> {
    const headers: Record<string, string> = { 'user-agent': 'wharf-dependency-proxy' }
    if (opts.accept) headers.accept = opts.accept
    let res = await this.send(method, `${this.url}${path}`, { ...headers, ...this.authHeader(opts.scope) }, opts.followRedirects ?? false)
    if (res.status === 401) {
      const challenge = parseChallenge(res.headers['www-authenticate'] as string | undefined)
      res.body.destroy()
      if (challenge?.scheme === 'bearer' && challenge.params.realm) {
        const token = await this.fetchToken(challenge, opts.scope)
        res = await this.send(method, `${this.url}${path}`, { ...headers, authorization: `Bearer ${token}` }, opts.followRedirects ?? false)
      } else if (challenge?.scheme === 'basic' && this.cfg.username !== undefined && !this.basic) {
        this.basic = true
        res = await this.send(method, `${this.url}${path}`, { ...headers, ...this.authHeader(opts.scope) }, opts.followRedirects ?? false)
      } else {
        throw new WharfError('DENIED', `${this.host} requires authentication that is not configured for it`, { upstream: this.host })
      }
    }
    this.observe(res.headers)
    if (res.status === 401 || res.status === 403) {
      res.body.destroy()
      throw new WharfError('DENIED', `${this.host} refused access (${res.status}); check the credentials configured for it`, {
        upstream: this.host,
      })
    }
    if (res.status === 429) {
      res.body.destroy()
      throw this.rateLimited(res.headers)
    }
    if (res.status >= 500) {
      res.body.destroy()
      throw this.unavailable(`answered ${res.status}`)
    }
    this.lastError = undefined
    return res
  }

  /** Reads a (small) response body up to `limit` bytes, with the same idle timeout. */
  async readBody(res: UpstreamResponse, limit: number): Promise<Buffer> {
    const chunks: Buffer[] = []
    let n = 0
    try {
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        n += chunk.length
        if (n > limit) throw new WharfError('MANIFEST_TOO_LARGE', `${this.host} sent a manifest over ${limit} bytes`, { limit })
        chunks.push(chunk)
      }
    } catch (e) {
      res.body.destroy()
      if (e instanceof WharfError) throw e
      throw this.unavailable((e as Error).message)
    }
    return Buffer.concat(chunks, n)
  }

  /** The error for an upstream that cannot be reached or failed; remembered for the status API. */
  unavailable(why: string): WharfError {
    const message = `${this.host} is unavailable: ${why}`
    this.lastError = { message, at: new Date().toISOString() }
    this.onError?.('unavailable')
    return new WharfError('UPSTREAM_UNAVAILABLE', message, { upstream: this.host })
  }

  private rateLimited(headers: IncomingHttpHeaders): WharfError {
    const rl = this.rateLimit
    const retryRaw = headers['retry-after']
    const retryAfter = retryRaw !== undefined && /^\d+$/.test(String(retryRaw)) ? Number(retryRaw) : undefined
    const figures = rl
      ? `${rl.remaining} of ${rl.limit} pulls left${rl.windowSeconds !== undefined ? ` in ${rl.windowSeconds} s` : ''}`
      : 'too many requests'
    const when =
      retryAfter !== undefined
        ? `retry after ${retryAfter} s`
        : rl?.windowSeconds !== undefined
          ? `retry when the window moves on (at most ${rl.windowSeconds} s)`
          : 'retry later'
    const message = `${this.host} rate limit: ${figures}; ${when}`
    this.lastError = { message, at: new Date().toISOString() }
    this.onError?.('rate_limited')
    return new WharfError('TOOMANYREQUESTS', message, { upstream: this.host, ...(retryAfter !== undefined ? { retryAfter } : {}) })
  }

  private observe(headers: IncomingHttpHeaders): void {
    const limit = parseRateHeader(headers['ratelimit-limit'])
    const remaining = parseRateHeader(headers['ratelimit-remaining'])
    if (limit && remaining)
      this.rateLimit = {
        limit: limit.value,
        remaining: remaining.value,
        windowSeconds: remaining.window ?? limit.window,
        observedAt: new Date().toISOString(),
      }
  }

  private authHeader(scope: string): Record<string, string> {
    if (this.cfg.token !== undefined) return { authorization: `Bearer ${this.cfg.token}` }
    const cached = this.tokens.get(scope)
    if (cached && cached.expires > Date.now()) return { authorization: `Bearer ${cached.token}` }
    if (this.basic && this.cfg.username !== undefined) return { authorization: basicAuth(this.cfg.username, this.cfg.password ?? '') }
    return {}
  }

  // spec (docker token auth): GET <realm>?service=<service>&scope=<scope>, with Basic credentials if any.
  private async fetchToken(challenge: Challenge, scope: string): Promise<string> {
    let url: URL
    try {
      url = new URL(challenge.params.realm!)
    } catch {
      throw this.unavailable('its token realm is not a URL')
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw this.unavailable('its token realm is not http(s)')
    if (challenge.params.service) url.searchParams.set('service', challenge.params.service)
    url.searchParams.set('scope', challenge.params.scope ?? scope)
    const headers: Record<string, string> = { 'user-agent': 'wharf-dependency-proxy', accept: 'application/json' }
    if (this.cfg.username !== undefined) headers.authorization = basicAuth(this.cfg.username, this.cfg.password ?? '')
    const res = await this.send('GET', url.toString(), headers, false)
    if (res.status === 401 || res.status === 403) {
      res.body.destroy()
      throw new WharfError('DENIED', `${this.host} refused the configured credentials (token endpoint answered ${res.status})`, {
        upstream: this.host,
      })
    }
    if (res.status === 429) {
      res.body.destroy()
      throw this.rateLimited(res.headers)
    }
    if (res.status !== 200) {
      res.body.destroy()
      throw this.unavailable(`its token endpoint answered ${res.status}`)
    }
    let body: { token?: unknown; access_token?: unknown; expires_in?: unknown }
    try {
      body = JSON.parse((await this.readBody(res, TOKEN_RESPONSE_BYTES)).toString('utf8'))
    } catch (e) {
      if (e instanceof WharfError && e.code === 'UPSTREAM_UNAVAILABLE') throw e
      throw this.unavailable('its token endpoint sent no JSON')
    }
    const token = typeof body.token === 'string' ? body.token : typeof body.access_token === 'string' ? body.access_token : undefined
    if (!token) throw this.unavailable('its token endpoint sent no token')
    const seconds = typeof body.expires_in === 'number' && body.expires_in > 0 ? body.expires_in : DEFAULT_TOKEN_SECONDS
    // Renewed a little early so a token never expires between the check and the request.
    this.tokens.set(scope, { token, expires: Date.now() + Math.max(1, seconds - 10) * 1000 })
    return token
  }

  private async send(method: string, target: string, headers: Record<string, string>, follow: boolean): Promise<UpstreamResponse> {
    let url = new URL(target)
    let hdrs = headers
    for (let hop = 0; ; hop++) {
      const res = await this.once(method, url, hdrs)
      const status = res.statusCode ?? 0
      const location = res.headers.location
      if (status < 300 || status >= 400 || status === 304 || !location) return { status, headers: res.headers, body: res }
      res.destroy()
      if (!follow) throw this.unavailable(`it redirected a ${method} it should have answered (${status})`)
      if (hop >= MAX_REDIRECTS) throw this.unavailable('too many redirects')
      let next: URL
      try {
        next = new URL(location, url)
      } catch {
        throw this.unavailable('it redirected to an invalid URL')
      }
      if (!redirectAllowed(url, next)) throw this.unavailable(`it redirected to a ${next.protocol} URL`)
      // Never hand the registry's credentials to another host (the CDN takes signed URLs).
      if (next.host !== url.host) {
        const { authorization: _dropped, ...rest } = hdrs
        hdrs = rest
      }
      url = next
    }
  }

  private once(method: string, url: URL, headers: Record<string, string>): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest
      const req = send(url, { method, headers, ...(this.ca && url.protocol === 'https:' ? { ca: this.ca } : {}) }, (res) => {
        // The idle timeout keeps applying while the body streams: a stalled upstream fails the transfer.
        res.on('error', () => {})
        releaseSocketReads(res)
        resolve(res)
      })
      // No answer (or no bytes) for this long: the upstream counts as unreachable, never a hang.
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`no answer within ${this.timeoutMs / 1000} s`)))
      req.on('error', (e: NodeJS.ErrnoException) =>
        reject(this.unavailable(e.code && e.code !== 'ERR_STREAM_PREMATURE_CLOSE' ? `${e.code} (${url.host})` : e.message)),
      )
      req.end()
    })
  }
}

/**
 * Node's HTTP client reads the socket into a new ArrayBuffer per read (64 KiB) and its parser copies
 * every body piece out of it (`Buffer::Copy` in on_body), so a read is garbage once parsed; but V8
 * counts the reads as external memory that only a full mark-compact returns, and a 200 MiB blob's
 * reads started several. This listener runs after Node's own (which was registered when the socket
 * was assigned, before the response), so the parser is through with the read: it is detached, which
 * frees its memory at once.
 */
function releaseSocketReads(res: IncomingMessage): void {
  const socket = res.socket
  const release = (read: Buffer) => {
    // Past this response (a kept-alive socket serves the next request, whose parser runs after this
    // listener) or after a parse error (Node keeps the read as the error's rawPacket): left alone.
    if (res.complete || socket.destroyed) return void socket.off('data', release)
    freeNow(read)
  }
  socket.on('data', release)
  res.once('close', () => socket.off('data', release))
}

/** A redirect may go to http(s) only, and never from HTTPS down to plain HTTP. */
export function redirectAllowed(from: URL, to: URL): boolean {
  return to.protocol === 'https:' || (to.protocol === 'http:' && from.protocol === 'http:')
}

function basicAuth(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`
}
