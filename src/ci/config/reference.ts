import { YamlReference } from './yaml-load.ts'
import { getKey, isHash, setKey, type Hash } from './util.ts'

// `!reference [.job, key, ...]` tags, resolved after `include` and `extends` as GitLab does:
// the tag is replaced by the value at that path. A reference inside a list that points to a
// list nests it; scripts and rules flatten nested lists afterwards.

/** How many references may chain through each other before it is treated as a loop. */
export const MAX_REFERENCE_DEPTH = 10

class TagReferenceError extends Error {}

/** Replaces every `!reference` in `root` (in place). Returns the errors. */
export function resolveReferences(root: Hash): string[] {
  const errors: string[] = []
  const resolveRef = (ref: YamlReference, chain: readonly string[]): unknown => {
    const id = ref.toString()
    if (chain.includes(id) || chain.length >= MAX_REFERENCE_DEPTH) throw new TagReferenceError(`${id} is part of a circular chain`)
    let current: unknown = root
    for (const step of ref.path) {
      if (!isHash(current)) throw new TagReferenceError(`${id} could not be found`)
      current = getKey(current, step)
      if (current === undefined) throw new TagReferenceError(`${id} could not be found`)
    }
    if (ref.path.length === 0) throw new TagReferenceError(`${id} could not be found`)
    return walk(current, [...chain, id])
  }
  const walk = (v: unknown, chain: readonly string[]): unknown => {
    if (v instanceof YamlReference) return resolveRef(v, chain)
    if (Array.isArray(v)) return v.map((x) => walk(x, chain))
    if (isHash(v)) {
      const out: Hash = {}
      for (const k of Object.keys(v)) setKey(out, k, walk(v[k], chain))
      return out
    }
    return v
  }
  for (const key of Object.keys(root)) {
    try {
      setKey(root, key, walk(root[key], []))
    } catch (e) {
      if (!(e instanceof TagReferenceError)) throw e
      if (!errors.includes(e.message)) errors.push(e.message)
    }
  }
  return errors
}
