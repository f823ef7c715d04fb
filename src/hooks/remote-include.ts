import { request } from 'node:https'
import type { LookupFunction } from 'node:net'
import { isWharfError } from '../core/errors.ts'
import type { RemoteFile, RemoteIncludes } from '../ci/index.ts'
import { resolveTarget, type OutboundPolicy } from './outbound.ts'

// `include:remote` fetches a URL a pipeline's author chose, from inside the network: the same
// guard as webhooks (resolve, refuse non-global addresses unless the administrator allows them,
// connect to the address that was checked), HTTPS only, no redirects, bounded in size and time.

export const REMOTE_INCLUDE_LIMITS = {
  /** GitLab's ci_max_yaml_size_bytes: a remote file is a CI file like any other. */
  bytes: 2 * 1024 * 1024,
  /** Within the planner's own 10 s budget for the whole configuration (GitLab's remote timeout is 10 s too). */
  timeoutMs: 5_000,
} as const

export interface RemoteIncludeOptions {
  policy: OutboundPolicy
  timeoutMs?: number
  maxBytes?: number
  /** Extra trusted CA certificates (PEM), added to Node's; tests serve HTTPS with a local CA. */
  ca?: string
}

export class RemoteIncludeFetcher implements RemoteIncludes {
  private readonly opts: RemoteIncludeOptions

  constructor(opts: RemoteIncludeOptions) {
    this.opts = opts
  }

  async fetch(url: string): Promise<RemoteFile> {
    if (!/^https:\/\//i.test(url)) return { error: `Remote file \`${url}\` is not a valid HTTPS URL` }
    let target: Awaited<ReturnType<typeof resolveTarget>>
    try {
      target = await resolveTarget(url, this.opts.policy)
    } catch (e) {
      if (!isWharfError(e)) throw e
      return { error: `Remote file \`${url}\` could not be fetched: ${e.message.replace(/^url /, '')}` }
    }
    const timeoutMs = this.opts.timeoutMs ?? REMOTE_INCLUDE_LIMITS.timeoutMs
    const maxBytes = this.opts.maxBytes ?? REMOTE_INCLUDE_LIMITS.bytes
    const pinned: LookupFunction = (_host, options, callback) => {
      if ((options as { all?: boolean }).all) callback(null, [{ address: target.address, family: target.family }])
      else callback(null, target.address, target.family)
    }
    return new Promise<RemoteFile>((resolve) => {
      const fail = (why: string) => resolve({ error: `Remote file \`${url}\` could not be fetched because of ${why}!` })
      const req = request(
        target.url,
        {
          method: 'GET',
          lookup: pinned,
          headers: { accept: 'text/plain, application/yaml, */*', 'user-agent': 'Wharf' },
          ...(this.opts.ca ? { ca: this.opts.ca } : {}),
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume()
            fail(`HTTP code \`${res.statusCode}\` error`)
            return
          }
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (chunk: Buffer) => {
            size += chunk.length
            if (size > maxBytes) {
              req.destroy()
              fail(`its size (over ${maxBytes} bytes)`)
              return
            }
            chunks.push(chunk)
          })
          res.on('end', () => resolve({ content: Buffer.concat(chunks).toString('utf8') }))
          res.on('error', () => fail('a connection error'))
        },
      )
      const timer = setTimeout(() => {
        req.destroy()
        fail('a timeout error')
      }, timeoutMs)
      req.on('close', () => clearTimeout(timer))
      req.on('error', (e: NodeJS.ErrnoException) =>
        fail(e.code === 'ECONNREFUSED' ? 'a connection error' : `an error (${e.code ?? e.message})`),
      )
      req.end()
    })
  }
}
