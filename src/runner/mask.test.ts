import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { Masker, maskString } from './mask.ts'

function feed(secrets: string[], chunks: string[]): string {
  const m = new Masker(secrets)
  const out = chunks.map((c) => m.write(c))
  out.push(m.flush())
  return Buffer.concat(out).toString('utf8')
}

describe('Masker', () => {
  it('masks every occurrence in one chunk', () => {
    assert.equal(feed(['s3cr3t-value'], ['a s3cr3t-value b s3cr3t-value\n']), 'a [MASKED] b [MASKED]\n')
  })

  it('masks a value split across chunks, at every split point', () => {
    const secret = 'glcbt-abcdefghijklmnop'
    const text = `token=${secret};next=${secret}\n`
    for (let i = 0; i <= text.length; i++) {
      for (let j = i; j <= text.length; j += 7) {
        const got = feed([secret], [text.slice(0, i), text.slice(i, j), text.slice(j)])
        assert.equal(got, 'token=[MASKED];next=[MASKED]\n', `split at ${i}/${j}`)
      }
    }
  })

  it('masks a value that arrives one byte at a time', () => {
    const secret = 'hunter2hunter2'
    const text = `x${secret}y`
    assert.equal(feed([secret], [...text]), 'x[MASKED]y')
  })

  it('holds back only a possible prefix and releases it on flush', () => {
    const m = new Masker(['abcdef'])
    assert.equal(m.write('hello abc').toString(), 'hello ')
    assert.equal(m.flush().toString(), 'abc')
    assert.equal(m.write('xyz').toString(), 'xyz')
  })

  it('masks a shorter secret inside a held-back prefix of a longer one', () => {
    assert.equal(feed(['abcdef', 'cd'], ['xabcd']), 'xab[MASKED]')
    assert.equal(feed(['abcdef', 'cd'], ['xabcd', 'zz']), 'xab[MASKED]zz')
  })

  it('prefers the longest secret when one contains another', () => {
    assert.equal(maskString(['pass', 'password123'], 'password123 pass'), '[MASKED] [MASKED]')
  })

  it('handles multi-byte characters split between chunks', () => {
    const secret = 'pässwörd-ü'
    const bytes = Buffer.from(`[${secret}]`)
    const m = new Masker([secret])
    const out = Buffer.concat([m.write(bytes.subarray(0, 4)), m.write(bytes.subarray(4, 9)), m.write(bytes.subarray(9)), m.flush()])
    assert.equal(out.toString('utf8'), '[[MASKED]]')
  })

  it('passes output through untouched without secrets', () => {
    assert.equal(feed([], ['a', 'b']), 'ab')
    assert.equal(feed([''], ['a', 'b']), 'ab')
  })
})
