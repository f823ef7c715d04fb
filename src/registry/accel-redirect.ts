import type { IncomingHttpHeaders } from 'node:http'

/**
 * The request header a reverse proxy that sends files for the application sets (Rack::Sendfile's
 * convention; nginx: `proxy_set_header X-Sendfile-Type X-Accel-Redirect`). nginx replaces a client's
 * own header of that name, so behind it the proxy alone decides.
 */
const SENDFILE_TYPE = 'x-sendfile-type'

/**
 * The URI to answer an authorised blob GET with in `X-Accel-Redirect` (an empty body; the proxy sends
 * the file): `internalUri` when the request came through a proxy that offloads that way, undefined
 * otherwise (a node reached directly, a health check): Wharf then streams the bytes itself. The URI
 * comes only from Wharf's config and the digest (`Blobs.internalUri`), never from the request.
 */
export function offloadUri(headers: IncomingHttpHeaders, internalUri: string | undefined): string | undefined {
  if (internalUri === undefined) return undefined
  const type = headers[SENDFILE_TYPE]
  return typeof type === 'string' && type.trim().toLowerCase() === 'x-accel-redirect' ? internalUri : undefined
}
