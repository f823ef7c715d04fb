import { isIP } from 'node:net'

/** A URL hostname (IPv6 in brackets or not) that names this machine's loopback interface. */
export function isLoopback(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'))
}
