import { createHash, type Hash } from 'node:crypto'
import { WharfError } from './errors.ts'

// spec (image-spec descriptor.md#digests): algorithm ":" encoded
const DIGEST_GRAMMAR = /^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$/

export const ALGORITHMS = { sha256: 64, sha512: 128 } as const
export type Algorithm = keyof typeof ALGORITHMS

/** A validated digest string: safe to use as a path component (lowercase hex only). */
export type Digest = string & { readonly __digest: unique symbol }

export interface ParsedDigest {
  readonly digest: Digest
  readonly algorithm: Algorithm
  readonly hex: string
}

export function isAlgorithm(a: string): a is Algorithm {
  return Object.hasOwn(ALGORITHMS, a)
}

/** Parses a digest; anything malformed or with an unsupported algorithm is DIGEST_INVALID. */
export function parseDigest(value: string): ParsedDigest {
  if (value.length > 200 || !DIGEST_GRAMMAR.test(value)) {
    throw new WharfError('DIGEST_INVALID', 'invalid digest', { digest: value.slice(0, 200) })
  }
  const i = value.indexOf(':')
  const algorithm = value.slice(0, i)
  const hex = value.slice(i + 1)
  if (!isAlgorithm(algorithm)) {
    throw new WharfError('DIGEST_INVALID', `unsupported digest algorithm ${algorithm}`, { digest: value })
  }
  if (hex.length !== ALGORITHMS[algorithm] || !/^[a-f0-9]+$/.test(hex)) {
    throw new WharfError('DIGEST_INVALID', 'invalid digest', { digest: value })
  }
  return { digest: value as Digest, algorithm, hex }
}

export function looksLikeDigest(value: string): boolean {
  return value.includes(':')
}

export function newHash(algorithm: Algorithm): Hash {
  return createHash(algorithm)
}

export function digestOf(algorithm: Algorithm, data: Uint8Array | string): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest('hex')}` as Digest
}

export function formatDigest(algorithm: Algorithm, hash: Hash): Digest {
  return `${algorithm}:${hash.digest('hex')}` as Digest
}
