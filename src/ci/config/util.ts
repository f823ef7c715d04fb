// Small helpers over the plain data that YAML parsing produces.

export type Hash = Record<string, unknown>

/** A YAML mapping: a plain object (not an array, null, or a `!reference` marker). */
export function isHash(v: unknown): v is Hash {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) return false
  const proto = Object.getPrototypeOf(v)
  return proto === Object.prototype || proto === null
}

export function hasKey(h: Hash, key: string): boolean {
  return Object.hasOwn(h, key)
}

/** Own property read, so that "constructor" or "__proto__" never reach the prototype. */
export function getKey(h: Hash, key: string): unknown {
  return Object.hasOwn(h, key) ? h[key] : undefined
}

/** Assignment that defines "__proto__" as an ordinary key instead of changing the prototype. */
export function setKey<T>(h: Record<string, T>, key: string, value: T): void {
  if (key === '__proto__') Object.defineProperty(h, key, { value, writable: true, enumerable: true, configurable: true })
  else h[key] = value
}

export function isString(v: unknown): v is string {
  return typeof v === 'string'
}

export function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every(isString)
}

/** String, number or boolean: what GitLab accepts as a variable value. */
export function isScalar(v: unknown): v is string | number | boolean {
  return typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))
}

export function scalarToString(v: string | number | boolean): string {
  return String(v)
}

/**
 * Deep merge as ActiveSupport's Hash#deep_merge, which GitLab uses for `include` and `extends`:
 * hashes merge key by key, anything else (arrays included) from `over` replaces `base`.
 * Keys keep `base`'s order, new keys follow.
 */
export function deepMerge(base: Hash, over: Hash): Hash {
  const out: Hash = {}
  for (const k of Object.keys(base)) setKey(out, k, base[k])
  for (const k of Object.keys(over)) {
    const b = getKey(out, k)
    const o = over[k]
    setKey(out, k, isHash(b) && isHash(o) ? deepMerge(b, o) : o)
  }
  return out
}

/** "a, b" as GitLab joins key lists in messages. */
export function list(items: readonly unknown[]): string {
  return items.map(String).join(', ')
}
