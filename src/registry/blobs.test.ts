import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WharfError } from '../core/errors.ts'
import { parseRange } from './blobs.ts'

function unsatisfiable(header: string, size: number): void {
  assert.throws(
    () => parseRange(header, size),
    (e: unknown) => e instanceof WharfError && e.code === 'RANGE_NOT_SATISFIABLE',
    `expected RANGE_NOT_SATISFIABLE for ${JSON.stringify(header)} of ${size}`,
  )
}

describe('parseRange', () => {
  it('no header means the whole blob', () => {
    assert.equal(parseRange(undefined, 100), undefined)
  })

  it('bytes=0-9', () => {
    assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 })
  })

  it('bytes=5- (open-ended)', () => {
    assert.deepEqual(parseRange('bytes=5-', 100), { start: 5, end: 99 })
  })

  it('bytes=-3 (suffix)', () => {
    assert.deepEqual(parseRange('bytes=-3', 100), { start: 97, end: 99 })
  })

  it('a suffix longer than the blob is the whole blob', () => {
    assert.deepEqual(parseRange('bytes=-500', 100), { start: 0, end: 99 })
  })

  it('an end beyond the size is clamped to the last byte', () => {
    assert.deepEqual(parseRange('bytes=0-1000', 100), { start: 0, end: 99 })
    assert.deepEqual(parseRange('bytes=90-99999999999999999999', 100), { start: 90, end: 99 })
  })

  it('single bytes at either end', () => {
    assert.deepEqual(parseRange('bytes=0-0', 100), { start: 0, end: 0 })
    assert.deepEqual(parseRange('bytes=99-99', 100), { start: 99, end: 99 })
    assert.deepEqual(parseRange('bytes=99-', 100), { start: 99, end: 99 })
  })

  it('surrounding whitespace is tolerated', () => {
    assert.deepEqual(parseRange('  bytes=1-2 ', 10), { start: 1, end: 2 })
  })

  it('a start at or beyond the size is unsatisfiable', () => {
    unsatisfiable('bytes=100-', 100)
    unsatisfiable('bytes=100-200', 100)
    unsatisfiable('bytes=1000-2000', 100)
  })

  it('a reversed range is unsatisfiable', () => {
    unsatisfiable('bytes=9-5', 100)
  })

  it('a zero-length suffix is unsatisfiable', () => {
    unsatisfiable('bytes=-0', 100)
  })

  it('any range of an empty blob is unsatisfiable', () => {
    unsatisfiable('bytes=0-0', 0)
    unsatisfiable('bytes=-3', 0)
    unsatisfiable('bytes=0-', 0)
  })

  it('malformed headers are rejected', () => {
    for (const h of [
      '',
      'bytes=',
      'bytes=-',
      'bytes=a-b',
      'items=0-9',
      'bytes 0-9',
      'bytes=0-9,20-29',
      'bytes=-1-2',
      'bytes=0x1-2',
      'bytes=1.5-2',
    ]) {
      unsatisfiable(h, 100)
    }
  })

  it('the error carries the header and size', () => {
    try {
      parseRange('bytes=200-', 100)
      assert.fail('should throw')
    } catch (e) {
      assert.ok(e instanceof WharfError)
      assert.deepEqual(e.detail, { range: 'bytes=200-', size: 100 })
    }
  })
})
