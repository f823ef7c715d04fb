import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, it } from 'node:test'
import { digestOf, formatDigest, isAlgorithm, looksLikeDigest, newHash, parseDigest } from './digest.ts'
import { WharfError } from './errors.ts'

const HEX64 = 'a'.repeat(64)
const HEX128 = '0123456789abcdef'.repeat(8)

function rejects(value: string): void {
  assert.throws(
    () => parseDigest(value),
    (e: unknown) => e instanceof WharfError && e.code === 'DIGEST_INVALID',
    `expected DIGEST_INVALID for ${JSON.stringify(value)}`,
  )
}

describe('parseDigest', () => {
  it('accepts sha256 with 64 lowercase hex characters', () => {
    const p = parseDigest(`sha256:${HEX64}`)
    assert.deepEqual(p, { digest: `sha256:${HEX64}`, algorithm: 'sha256', hex: HEX64 })
  })

  it('accepts sha512 with 128 lowercase hex characters', () => {
    const p = parseDigest(`sha512:${HEX128}`)
    assert.equal(p.algorithm, 'sha512')
    assert.equal(p.hex, HEX128)
    assert.equal(p.digest, `sha512:${HEX128}`)
  })

  it('rejects uppercase hex (digests must be canonical to be safe path components)', () => {
    rejects(`sha256:${'A'.repeat(64)}`)
    rejects(`sha256:${'a'.repeat(63)}F`)
    rejects(`SHA256:${HEX64}`)
  })

  it('rejects the wrong length for the algorithm', () => {
    rejects(`sha256:${'a'.repeat(63)}`)
    rejects(`sha256:${'a'.repeat(65)}`)
    rejects(`sha256:${HEX128}`)
    rejects(`sha512:${HEX64}`)
    rejects('sha256:')
  })

  it('rejects unknown or malformed algorithms', () => {
    rejects(`md5:${'a'.repeat(32)}`)
    rejects(`sha384:${'a'.repeat(96)}`)
    rejects(`sha256+b64u:${HEX64}`)
    rejects(`:${HEX64}`)
    rejects(HEX64)
    rejects('')
  })

  it('rejects non-hex characters', () => {
    rejects(`sha256:${'g'.repeat(64)}`)
    rejects(`sha256:${'a'.repeat(63)}=`)
    rejects(`sha256:${'a'.repeat(63)}_`)
  })

  it('rejects path-traversal attempts and separators', () => {
    for (const v of [
      'sha256:../../etc',
      'sha256:../../etc/passwd',
      `sha256:${'a'.repeat(62)}/.`,
      `sha256/../../${HEX64}`,
      `../sha256:${HEX64}`,
      `sha256:${'a'.repeat(32)}/${'a'.repeat(31)}`,
      `sha256:${'a'.repeat(32)}\\${'a'.repeat(31)}`,
      `sha256:${HEX64}\n`,
      `sha256:${HEX64}\0`,
      ` sha256:${HEX64}`,
    ]) {
      rejects(v)
    }
  })

  it('rejects absurdly long input without echoing it all back', () => {
    const long = `sha256:${'a'.repeat(10_000)}`
    try {
      parseDigest(long)
      assert.fail('should throw')
    } catch (e) {
      assert.ok(e instanceof WharfError)
      assert.equal(e.code, 'DIGEST_INVALID')
      assert.ok(String(e.detail.digest).length <= 200)
    }
  })
})

describe('digest helpers', () => {
  it('digestOf matches node:crypto for both algorithms', () => {
    assert.equal(digestOf('sha256', 'hello'), `sha256:${createHash('sha256').update('hello').digest('hex')}`)
    assert.equal(digestOf('sha512', Buffer.from('hello')), `sha512:${createHash('sha512').update('hello').digest('hex')}`)
    // The empty blob has a well-known digest.
    assert.equal(digestOf('sha256', ''), 'sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
  })

  it('formatDigest and newHash produce parseable digests', () => {
    const h = newHash('sha512').update('x')
    const d = formatDigest('sha512', h)
    assert.equal(parseDigest(d).digest, d)
  })

  it('isAlgorithm only knows sha256 and sha512 and not prototype keys', () => {
    assert.equal(isAlgorithm('sha256'), true)
    assert.equal(isAlgorithm('sha512'), true)
    assert.equal(isAlgorithm('md5'), false)
    assert.equal(isAlgorithm('constructor'), false)
    assert.equal(isAlgorithm('__proto__'), false)
  })

  it('looksLikeDigest distinguishes digests from tags by the colon', () => {
    assert.equal(looksLikeDigest(`sha256:${HEX64}`), true)
    assert.equal(looksLikeDigest('latest'), false)
  })
})
