import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { describe, it } from 'node:test'
import { freeNow, SlabPool } from './slabs.ts'

describe('SlabPool', () => {
  it('copies chunks into slabs, splitting one that straddles two, and releases the source untouched', () => {
    const pool = new SlabPool({ slabBytes: 100 })
    const a = randomBytes(70)
    const b = randomBytes(70)
    const [va] = pool.copy(a)
    const [vb1, vb2, more] = pool.copy(b)
    assert.deepEqual(va, a)
    assert.deepEqual([vb1!.length, vb2!.length, more], [30, 40, undefined])
    assert.deepEqual(Buffer.concat([vb1!, vb2!]), b)
    assert.equal(vb1!.buffer, va!.buffer)
    assert.notEqual(vb2!.buffer, va!.buffer)
  })

  it('reuses a slab only once every holder released it and it is no longer being filled', () => {
    const pool = new SlabPool({ slabBytes: 100 })
    const [first] = pool.copy(randomBytes(100))
    pool.hold(first!) // a second holder (a window)
    pool.release(first!) // the caller's write is done
    const [second] = pool.copy(randomBytes(100)) // the first slab is full: a new one
    assert.notEqual(second!.buffer, first!.buffer)
    pool.release(second!)
    const [third] = pool.copy(randomBytes(100)) // the second is free once the third copy starts; the first is still held
    assert.equal(third!.buffer, second!.buffer)
    pool.release(first!)
    const [fourth] = pool.copy(randomBytes(50)) // the second slab is full and still held (the third copy): the freed first one is taken
    assert.equal(fourth!.buffer, first!.buffer)
  })

  it('never reuses a slab a holder spoiled, whatever the other holders do', () => {
    const pool = new SlabPool({ slabBytes: 100 })
    const [v] = pool.copy(randomBytes(100))
    pool.hold(v!)
    pool.spoil(v!) // a follower's write failed: its socket may still read the bytes
    pool.release(v!)
    pool.release(v!)
    const seen = new Set<ArrayBufferLike>()
    for (let i = 0; i < 20; i++) {
      const [w] = pool.copy(randomBytes(100))
      assert.notEqual(w!.buffer, v!.buffer)
      seen.add(w!.buffer)
      pool.release(w!)
    }
    // Released at once, the one slab is reused for every copy.
    assert.equal(seen.size, 1)
  })

  it('ignores views of memory it does not own', () => {
    const pool = new SlabPool({ slabBytes: 100 })
    const foreign = Buffer.allocUnsafeSlow(10)
    pool.hold(foreign)
    pool.release(foreign)
    pool.spoil(foreign)
    const [v] = pool.copy(Buffer.from('abc'))
    assert.equal(v!.toString(), 'abc')
  })
})

describe('freeNow', () => {
  it('detaches a chunk that is its whole ArrayBuffer, and nothing else', () => {
    const own = Buffer.from(randomBytes(64 << 10))
    freeNow(own)
    assert.equal((own.buffer as ArrayBuffer).detached, true)
    // Views into shared memory (Buffer's pool, a slice of a larger read) keep their neighbours' bytes.
    const pooled = Buffer.from('abc')
    const neighbour = Buffer.from('def')
    freeNow(pooled)
    assert.equal(pooled.toString(), 'abc')
    assert.equal(neighbour.toString(), 'def')
    const big = Buffer.from(randomBytes(1000))
    freeNow(big.subarray(0, 10))
    assert.equal(big.length, 1000)
    // Twice, or on a detached buffer: no throw.
    freeNow(own)
  })
})
