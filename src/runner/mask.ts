/**
 * Masks secret values in a byte stream before it leaves the runner: every occurrence of a masked
 * variable's value (and the job token) becomes `[MASKED]`, also when the value arrives split
 * across output chunks. The masker holds back the shortest tail that could still be the start of
 * a secret; `flush()` releases it at the end of the stream (an incomplete prefix is not a secret).
 */
export const MASK = '[MASKED]'

const MASK_BYTES = Buffer.from(MASK)

export class Masker {
  readonly #secrets: Buffer[]
  #pending: Buffer = Buffer.alloc(0)

  constructor(secrets: Iterable<string>) {
    const unique = new Set<string>()
    for (const s of secrets) if (s.length > 0) unique.add(s)
    // Longest first: a secret that contains another is masked whole.
    this.#secrets = [...unique].map((s) => Buffer.from(s)).sort((a, b) => b.length - a.length)
  }

  /** Masks a chunk; returns the bytes that are safe to emit now (maybe fewer than given). */
  write(chunk: Buffer | string): Buffer {
    const input = typeof chunk === 'string' ? Buffer.from(chunk) : chunk
    if (this.#secrets.length === 0) return input
    const data = this.#pending.length ? Buffer.concat([this.#pending, input]) : input
    const { out, rest } = this.#mask(data)
    this.#pending = rest
    return out
  }

  /** Everything held back (the stream ended, or a flush is due anyway). */
  flush(): Buffer {
    const p = this.#pending
    this.#pending = Buffer.alloc(0)
    // A shorter secret may sit inside a held-back prefix of a longer one.
    return p.length ? this.#mask(p, true).out : p
  }

  #mask(data: Buffer, final = false): { out: Buffer; rest: Buffer } {
    const parts: Buffer[] = []
    let start = 0
    let i = 0
    while (i < data.length) {
      const hit = this.#secrets.find(
        (s) => s[0] === data[i] && data.length - i >= s.length && data.compare(s, 0, s.length, i, i + s.length) === 0,
      )
      if (hit) {
        parts.push(data.subarray(start, i), MASK_BYTES)
        i += hit.length
        start = i
        continue
      }
      // A secret may begin here but not have fully arrived: keep the rest for the next chunk.
      if (
        !final &&
        this.#secrets.some(
          (s) => s[0] === data[i] && data.length - i < s.length && data.compare(s, 0, data.length - i, i, data.length) === 0,
        )
      ) {
        parts.push(data.subarray(start, i))
        return { out: Buffer.concat(parts), rest: Buffer.from(data.subarray(i)) }
      }
      i++
    }
    parts.push(data.subarray(start))
    return { out: Buffer.concat(parts), rest: Buffer.alloc(0) }
  }
}

/** Masks a whole string at once (messages the runner writes itself). */
export function maskString(secrets: Iterable<string>, text: string): string {
  const m = new Masker(secrets)
  return Buffer.concat([m.write(text), m.flush()]).toString('utf8')
}
