import { lookup } from 'node:dns/promises'
import type { LookupAddress } from 'node:dns'
import ipaddr from 'ipaddr.js'
import { WharfError } from '../core/errors.ts'

// Webhook targets are chosen by users, and the server sends to them from inside the network, so a
// hook aimed at 127.0.0.1, 169.254.169.254 (cloud metadata) or a private range would reach what
// the user cannot (SSRF). Only global unicast addresses are allowed unless an administrator allows
// the local network or names the host. The check resolves the name and the delivery connects to
// the address that was checked (no second lookup a DNS rebinding could answer differently).
// Ranges come from ipaddr.js (kept up to date with IANA's special-purpose registries).

export interface OutboundPolicy {
  /** GitLab's "Allow requests to the local network from webhooks and integrations". */
  allowLocalNetwork: boolean
  /** Host names or IP addresses allowed even when local (GitLab's outbound allowlist). */
  allowedHosts: readonly string[]
}

/** Why GitLab refuses such a URL, in its words. */
export const LOCAL_REFUSED = 'is blocked: Requests to the local network are not allowed'

/** True for an address that is not global unicast: loopback, private, link-local, CGNAT, reserved... */
export function isInternalAddress(address: string): boolean {
  let parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv6' && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) parsed = (parsed as ipaddr.IPv6).toIPv4Address()
  return parsed.range() !== 'unicast'
}

export interface Target {
  url: URL
  /** The checked address the connection must go to. */
  address: string
  family: 4 | 6
}

/** A hook URL as given: http(s), no credentials in it. Throws BAD_REQUEST naming what is wrong. */
export function parseHookUrl(raw: string): URL {
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    throw new WharfError('BAD_REQUEST', 'url is blocked: Only allowed schemes are http, https', { field: 'url' })
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new WharfError('BAD_REQUEST', 'url is blocked: Only allowed schemes are http, https', { field: 'url' })
  if (url.username || url.password)
    throw new WharfError('BAD_REQUEST', 'url must not contain credentials (use the secret token)', { field: 'url' })
  return url
}

/** Resolves a hook's host and checks every address against the policy; BAD_REQUEST when refused. */
export async function resolveTarget(raw: string, policy: OutboundPolicy): Promise<Target> {
  const url = parseHookUrl(raw)
  const host = url.hostname.replace(/^\[|\]$/g, '')
  let addresses: LookupAddress[]
  try {
    addresses = ipaddr.isValid(host)
      ? [{ address: host, family: host.includes(':') ? 6 : 4 }]
      : await lookup(host, { all: true, verbatim: true })
  } catch {
    throw new WharfError('BAD_REQUEST', `url is blocked: Host cannot be resolved or invalid`, { field: 'url' })
  }
  if (addresses.length === 0) throw new WharfError('BAD_REQUEST', 'url is blocked: Host cannot be resolved or invalid', { field: 'url' })
  const allowed = policy.allowLocalNetwork || policy.allowedHosts.some((h) => h.toLowerCase() === host.toLowerCase())
  // Every address is checked: a name with one public and one internal address is refused.
  if (!allowed && addresses.some((a) => isInternalAddress(a.address)))
    throw new WharfError('BAD_REQUEST', `url ${LOCAL_REFUSED}`, { field: 'url' })
  const first = addresses[0]!
  return { url, address: first.address, family: first.family === 6 ? 6 : 4 }
}
