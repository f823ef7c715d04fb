import { deepMerge, getKey, hasKey, isHash, isString, list, setKey, type Hash } from './util.ts'

// `extends:` as GitLab resolves it (Config::Extendable): any top-level hash may be a base,
// hidden or not; bases merge in order, later ones winning, then the job's own keys on top;
// hashes merge deeply, arrays are replaced. Errors use GitLab's words, keyed by entry name.

/** GitLab's Extendable::Entry::MAX_NESTING_LEVELS. */
export const MAX_EXTENDS_DEPTH = 10

class ExtendsError extends Error {}

/** Resolves `extends` in every top-level entry of `root`, in place. Returns the errors. */
export function resolveExtends(root: Hash): string[] {
  const errors: string[] = []
  const done = new Set<string>()
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
    if (!keys || done.has(key)) return value
    const unknown = keys.filter((k) => !hasKey(root, k))
    if (unknown.length) throw new ExtendsError(`${key}: unknown keys in \`extends\` (${list(unknown)})`)
    const invalid = keys.filter((k) => !isHash(getKey(root, k)))
    if (invalid.length) throw new ExtendsError(`${key}: invalid base hashes in \`extends\` (${list(invalid)})`)
    if (ancestors.length > MAX_EXTENDS_DEPTH) throw new ExtendsError(`${key}: nesting too deep in \`extends\``)
    if (ancestors.includes(key)) throw new ExtendsError(`${key}: circular dependency detected in \`extends\``)
    let merged: Hash = {}
    for (const base of keys) merged = deepMerge(merged, extend(base, [...ancestors, key]))
    const result = deepMerge(merged, value)
    setKey<unknown>(root, key, result)
    done.add(key)
    return result
  }
  for (const key of Object.keys(root)) {
    try {
      extend(key, [])
    } catch (e) {
      if (!(e instanceof ExtendsError)) throw e
      if (!errors.includes(e.message)) errors.push(e.message)
    }
  }
  return errors
}
