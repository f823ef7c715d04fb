import { setKey } from './util.ts'

// CI/CD variable expansion: "$VAR", "${VAR}", and "$$" for a literal "$", as the runner
// expands job variables, `image:` and `services:` names (e.g. "$CI_REGISTRY_IMAGE/builder:latest").

export type VariableLookup = Readonly<Record<string, string>> | ((name: string) => string | undefined)

export interface ExpandOptions {
  /** Leave references to unknown variables as written instead of expanding them to "". */
  keepUnknown?: boolean
}

const REFERENCE = /\$\$|\$(\w+)|\$\{(\w+)\}/g

function lookupIn(vars: VariableLookup): (name: string) => string | undefined {
  if (typeof vars === 'function') return vars
  return (name) => (Object.hasOwn(vars, name) ? vars[name] : undefined)
}

export function expandVariables(value: string, vars: VariableLookup, opts: ExpandOptions = {}): string {
  if (!value.includes('$')) return value
  const lookup = lookupIn(vars)
  return value.replace(REFERENCE, (whole, bare: string | undefined, braced: string | undefined) => {
    if (whole === '$$') return opts.keepUnknown ? '$$' : '$'
    const found = lookup((bare ?? braced) as string)
    if (found !== undefined) return found
    return opts.keepUnknown ? whole : ''
  })
}

/** Names referenced by `value` ("$$" escapes excluded). */
export function referencedVariables(value: string): string[] {
  const names: string[] = []
  for (const m of value.matchAll(REFERENCE)) {
    const name = m[1] ?? m[2]
    if (name !== undefined) names.push(name)
  }
  return names
}

export interface VariableDefinition {
  value: string
  /** false for `expand: false`: the value is used verbatim. */
  expand: boolean
}

/**
 * Expands a set of variables that may reference each other and `base` (predefined, project
 * variables...), in dependency order as GitLab sorts them. A variable defined here shadows the
 * same name in `base`. References that form a cycle, or name nothing, are left as written, and
 * "$$" is kept so that a later expansion (the runner's shell) still sees the escape.
 */
export function expandAllVariables(defs: Readonly<Record<string, VariableDefinition>>, base: VariableLookup = {}): Record<string, string> {
  const baseLookup = lookupIn(base)
  const done = new Map<string, string>()
  const visiting = new Set<string>()
  const resolve = (name: string): string | undefined => {
    const seen = done.get(name)
    if (seen !== undefined) return seen
    if (!Object.hasOwn(defs, name)) return baseLookup(name)
    const def = defs[name] as VariableDefinition
    if (!def.expand) {
      done.set(name, def.value)
      return def.value
    }
    if (visiting.has(name)) return undefined // cycle: keep the reference
    visiting.add(name)
    const value = expandVariables(def.value, resolve, { keepUnknown: true })
    visiting.delete(name)
    done.set(name, value)
    return value
  }
  const out: Record<string, string> = {}
  for (const name of Object.keys(defs)) setKey(out, name, resolve(name) as string)
  return out
}
