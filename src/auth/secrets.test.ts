import assert from 'node:assert/strict'
import crypto from 'node:crypto'
import { syncBuiltinESMExports } from 'node:module'
import { describe, it } from 'node:test'
import { constantTimeEqual, hashPassword, newSecret, randomPassword, secretDigest, verifyPassword } from './secrets.ts'

/** Runs fn with crypto.timingSafeEqual counted (the ESM binding secrets.ts imported follows the patch). */
async function countTimingSafeEqual<T>(fn: () => T | Promise<T>): Promise<{ result: T; calls: number }> {
  const original = crypto.timingSafeEqual
  let calls = 0
  crypto.timingSafeEqual = ((a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    calls++
    return original(a, b)
  }) as typeof crypto.timingSafeEqual
  syncBuiltinESMExports()
  try {
    return { result: await fn(), calls }
  } finally {
    crypto.timingSafeEqual = original
    syncBuiltinESMExports()
  }
}

describe('passwords (scrypt)', () => {
  it('a password that verified is verified again without scrypt; a wrong or changed one is hashed', async () => {
    const stored = await hashPassword('tr0ub4dor&3 again')
    const first = await countTimingSafeEqual(() => verifyPassword('tr0ub4dor&3 again', stored))
    assert.deepEqual(first, { result: true, calls: 1 })
    assert.deepEqual(await countTimingSafeEqual(() => verifyPassword('tr0ub4dor&3 again', stored)), { result: true, calls: 0 })
    assert.deepEqual(await countTimingSafeEqual(() => verifyPassword('tr0ub4dor&3 agaiN', stored)), { result: false, calls: 1 })
    // The same password under a new stored hash (it was set again) is not taken from the old entry.
    const changed = await hashPassword('tr0ub4dor&3 again')
    assert.deepEqual(await countTimingSafeEqual(() => verifyPassword('tr0ub4dor&3 again', changed)), { result: true, calls: 1 })
  })


  it('hash and verify round-trip; a wrong password does not verify', async () => {
    const stored = await hashPassword('correct horse battery staple')
    assert.match(stored, /^scrypt\$32768\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}$/)
    assert.equal(await verifyPassword('correct horse battery staple', stored), true)
    assert.equal(await verifyPassword('correct horse battery stapl', stored), false)
    assert.equal(await verifyPassword('', stored), false)
    assert.doesNotMatch(stored, /correct horse/)
  })

  it('salts every hash', async () => {
    const [a, b] = await Promise.all([hashPassword('same password'), hashPassword('same password')])
    assert.notEqual(a, b)
    assert.equal(await verifyPassword('same password', a), true)
    assert.equal(await verifyPassword('same password', b), true)
  })

  it('unicode passwords', async () => {
    const stored = await hashPassword('pässwörd 🔑 密码')
    assert.equal(await verifyPassword('pässwörd 🔑 密码', stored), true)
    assert.equal(await verifyPassword('passwort 🔑 密码', stored), false)
  })

  it('a malformed stored hash never verifies', async () => {
    for (const stored of ['', 'plain', 'bcrypt$x$y', 'scrypt$32768$8$1$$', 'scrypt$32768$8$1$c2FsdA==$']) {
      assert.equal(await verifyPassword('anything', stored), false, stored)
    }
  })

  it('compares the derived key in constant time', async () => {
    const stored = await hashPassword('timing')
    const ok = await countTimingSafeEqual(() => verifyPassword('timing', stored))
    assert.equal(ok.result, true)
    assert.equal(ok.calls, 1)
    const bad = await countTimingSafeEqual(() => verifyPassword('timinG', stored))
    assert.equal(bad.result, false)
    assert.equal(bad.calls, 1)
  })
})

describe('constantTimeEqual', () => {
  it('equal, unequal and different-length strings', () => {
    assert.equal(constantTimeEqual('abc', 'abc'), true)
    assert.equal(constantTimeEqual('', ''), true)
    assert.equal(constantTimeEqual('abc', 'abd'), false)
    assert.equal(constantTimeEqual('abc', 'abcd'), false)
    assert.equal(constantTimeEqual('é', 'e\u0301'), false)
  })

  it('uses crypto.timingSafeEqual for same-length inputs', async () => {
    const r = await countTimingSafeEqual(() => constantTimeEqual('a'.repeat(64), `${'a'.repeat(63)}b`))
    assert.equal(r.result, false)
    assert.equal(r.calls, 1)
  })
})

describe('token secrets', () => {
  it('newSecret: the prefix, 32 base64url characters of randomness, never twice the same', () => {
    const seen = new Set<string>()
    for (let i = 0; i < 1000; i++) {
      const s = newSecret('glpat-')
      assert.match(s, /^glpat-[A-Za-z0-9_-]{32}$/)
      seen.add(s)
    }
    assert.equal(seen.size, 1000)
  })

  it('secretDigest is the sha256 hex digest (tokens are stored as digests only)', () => {
    assert.equal(secretDigest('glpat-abc'), crypto.createHash('sha256').update('glpat-abc').digest('hex'))
    assert.match(secretDigest('x'), /^[0-9a-f]{64}$/)
    assert.notEqual(secretDigest('a'), secretDigest('b'))
  })

  it('randomPassword: long and random', () => {
    const a = randomPassword()
    assert.ok(a.length >= 20, a)
    assert.notEqual(a, randomPassword())
  })
})
