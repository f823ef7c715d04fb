import { createHash, randomBytes, scrypt, timingSafeEqual } from 'node:crypto'
import { promisify } from 'node:util'

const scryptAsync = promisify(scrypt) as (
  pw: string,
  salt: Buffer,
  len: number,
  opts: { N: number; r: number; p: number; maxmem: number },
) => Promise<Buffer>

/** scrypt cost: N=2^15 is OWASP's current minimum for scrypt (r=8, p=1); ~50 ms here. */
const SCRYPT = { N: 1 << 15, r: 8, p: 1, maxmem: 64 << 20 }
const KEY_LEN = 32

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16)
  const key = await scryptAsync(password, salt, KEY_LEN, SCRYPT)
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64')}$${key.toString('base64')}`
}

export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [kind, n, r, p, salt, key] = stored.split('$')
  if (kind !== 'scrypt' || !salt || !key) return false
  const expected = Buffer.from(key, 'base64')
  const actual = await scryptAsync(password, Buffer.from(salt, 'base64'), expected.length, {
    N: Number(n),
    r: Number(r),
    p: Number(p),
    maxmem: 64 << 20,
  })
  return timingSafeEqual(actual, expected)
}

/** A random secret with a recognisable prefix (GitLab-style, so secret scanners find leaked ones). */
export function newSecret(prefix: string): string {
  return `${prefix}${randomBytes(24).toString('base64url')}`
}

/** Tokens are stored as sha256 digests: they are long random secrets, so a fast hash is enough. */
export function secretDigest(secret: string): string {
  return createHash('sha256').update(secret).digest('hex')
}

export function constantTimeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a)
  const y = Buffer.from(b)
  return x.length === y.length && timingSafeEqual(x, y)
}

export function randomPassword(): string {
  return randomBytes(18).toString('base64url')
}
