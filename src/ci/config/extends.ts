import { deepMerge, getKey, hasKey, isHash, isString, list, setKey, type Hash } from './util.ts'

// `extends:` as GitLab resolves it (Config::Extendable): any top-level hash may be a base,
// hidden or not; bases merge in order, later ones winning, then the job's own keys on top;
// hashes merge deeply, arrays are replaced. Errors use GitLab's words, keyed by entry name.

/** GitLab's Extendable::Entry::MAX_NESTING_LEVELS: a chain of at most 11 `extends` hops. */
export const MAX_EXTENDS_DEPTH = 10

class ExtendsError extends Error {
  /** Entries that fail with this error too (none for a cycle: each member reports its own). */
  readonly chain: readonly string[]
  constructor(message: string, chain: readonly string[]) {
    super(message)
    this.chain = chain
  }
}

/** Resolves `extends` in every top-level entry of `root`, in place. Returns the errors. */
export function resolveExtends(root: Hash): string[] {
  const errors: string[] = []
  // Resolved entries with their height (longest chain of `extends` hops below them). Resolution
  // is memoized, so the height, not the recursion depth, is what bounds a chain declared base
  // first (`j1: {extends: j0}`, `j2: {extends: j1}`, …), which never recurses deeper than one hop.
  const height = new Map<string, number>()
  const failed = new Map<string, string>()
  const extendsKeys = (key: string): string[] | undefined => {
    const value = getKey(root, key)
    if (!isHash(value) || !hasKey(value, 'extends')) return undefined
    const ext = value.extends
    if (isString(ext)) return [ext]
    if (Array.isArray(ext) && ext.every(isString)) return ext
    return undefined // reported by job validation: "extends should be an array of strings or a string"
  }
  const extend = (key: string, ancestors: readonly string[]): Hash => {
    const value = getKey(root, key) as Hash
    const keys = extendsKeys(key)
    if (!keys || height.has(key)) return value
    const chain = [...ancestors, key]
    const prior = failed.get(key)
    if (prior !== undefined) throw new ExtendsError(prior, chain)
    const unknown = keys.filter((k) => !hasKey(root, k))
    if (unknown.length) throw new ExtendsError(`${key}: unknown keys in \`extends\` (${list(unknown)})`, chain)
    const invalid = keys.filter((k) => !isHash(getKey(root, k)))
    if (invalid.length) throw new ExtendsError(`${key}: invalid base hashes in \`extends\` (${list(invalid)})`, chain)
    if (ancestors.length > MAX_EXTENDS_DEPTH) throw new ExtendsError(`${key}: nesting too deep in \`extends\``, chain)
    if (ancestors.includes(key)) throw new ExtendsError(`${key}: circular dependency detected in \`extends\``, [])
    let merged: Hash = {}
    let below = 0
    for (const base of keys) {
      merged = deepMerge(merged, extend(base, chain))
      below = Math.max(below, height.get(base) ?? 0)
    }
    if (below + 1 > MAX_EXTENDS_DEPTH + 1) throw new ExtendsError(`${key}: nesting too deep in \`extends\``, chain)
    const result = deepMerge(merged, value)
    setKey<unknown>(root, key, result)
    height.set(key, below + 1)
    return result
  }
  for (const key of Object.keys(root)) {
    try {
      extend(key, [])
    } catch (e) {
      if (!(e instanceof ExtendsError)) throw e
      // Remembering the failure keeps a long chain from being walked (and reported) once per entry.
      for (const k of e.chain) if (!failed.has(k)) failed.set(k, e.message)
      if (!errors.includes(e.message)) errors.push(e.message)
    }
  }
  return errors
}
