import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WharfError } from './errors.ts'
import { isTag, MAX_NAME_LENGTH, parseRepoName, parseTag } from './names.ts'

function nameRejected(value: string): void {
  assert.throws(
    () => parseRepoName(value),
    (e: unknown) => e instanceof WharfError && e.code === 'NAME_INVALID',
    `expected NAME_INVALID for ${JSON.stringify(value)}`,
  )
}

describe('parseRepoName (spec <name> grammar)', () => {
  it('accepts valid names', () => {
    for (const n of ['a', 'library/ubuntu', 'a/b/c', 'a__b', 'a_b', 'a.b', 'a-b', 'a--b', 'a---b', '0', 'a0/b1.c2_d3-e4', 'x/y__z/w--v']) {
      assert.equal(parseRepoName(n), n)
    }
  })

  it('rejects uppercase', () => {
    nameRejected('Library/ubuntu')
    nameRejected('a/B')
  })

  it('rejects leading or trailing separators', () => {
    for (const n of ['-a', '_a', '.a', '/a', 'a/', 'a-', 'a_', 'a.', 'a/-b', 'a/.b']) nameRejected(n)
  })

  it('rejects dot segments and doubled separators', () => {
    for (const n of ['..', '.', 'a/..', '../a', 'a/../b', 'a..b', 'a//b', 'a___b', 'a._b', 'a-_b']) nameRejected(n)
  })

  it('rejects empty names, spaces, control characters and other punctuation', () => {
    for (const n of ['', ' ', 'a b', 'a\nb', 'a\0b', 'a:b', 'a@b', 'a%2fb', 'a\\b', 'ä']) nameRejected(n)
  })

  it(`accepts up to ${MAX_NAME_LENGTH} characters and rejects longer`, () => {
    assert.equal(MAX_NAME_LENGTH, 255)
    const max = `${'a'.repeat(127)}/${'b'.repeat(127)}`
    assert.equal(max.length, 255)
    assert.equal(parseRepoName(max), max)
    nameRejected(`${max}c`)
    nameRejected('a'.repeat(256))
  })
})

describe('tags', () => {
  it('accepts valid tags', () => {
    for (const t of ['latest', 'v1.0.0', '_x', 'A-b_c.D', '1', 'a'.repeat(128)]) {
      assert.equal(isTag(t), true, t)
      assert.equal(parseTag(t), t)
    }
  })

  it('rejects tags longer than 128 characters', () => {
    assert.equal(isTag('a'.repeat(129)), false)
  })

  it('rejects tags with a leading . or -, or with disallowed characters', () => {
    for (const t of ['', '.a', '-a', 'a/b', 'a:b', 'a b', 'a+b', '..', 'a\n', 'sha256:abc']) {
      assert.equal(isTag(t), false, JSON.stringify(t))
      assert.throws(
        () => parseTag(t),
        (e: unknown) => e instanceof WharfError && e.code === 'MANIFEST_INVALID',
      )
    }
  })
})
