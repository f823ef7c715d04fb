import { patternFromString } from './expression.ts'
import { getKey, isHash, isString, list, setKey, type Hash } from './util.ts'
import { referencedVariables } from './variables.ts'

// CI/CD inputs as GitLab defines them: an included file (a component, or any include given
// `inputs:`) starts with a `spec:` header document declaring its inputs (type, default, options,
// regex, description); the including file passes values; `$[[ inputs.name ]]` in the file's
// content is replaced, the typed value itself when it is the whole string, else its text.
// `$[[ inputs.name | fn | fn ]]` passes the value through up to three of GitLab's functions:
// `expand_vars`, `truncate(offset,length)` and `posix_escape`.

export const INPUT_TYPES = ['string', 'number', 'boolean', 'array'] as const
type InputType = (typeof INPUT_TYPES)[number]
export type InputValue = string | number | boolean | unknown[]

interface InputSpec {
  type: InputType
  default: InputValue | undefined
  options: InputValue[] | null
  regex: RegExp | null
}

/** GitLab's limit on inputs per file. */
const MAX_INPUTS = 50
/** GitLab's Interpolation::Block::MAX_FUNCTIONS. */
const MAX_FUNCTIONS = 3
const INTERPOLATION = /\$\[\[\s*inputs\.([\w-]+)\s*((?:\|[^\]]*)?)\]\]/g
const WHOLE = /^\$\[\[\s*inputs\.([\w-]+)\s*((?:\|[^\]]*)?)\]\]$/

/** What `expand_vars` may read: predefined and project variables, and which of them are masked. */
export interface InterpolationVariables {
  variables: Readonly<Record<string, string>>
  masked?: readonly string[]
}

export class InputError extends Error {}

function typeOf(v: unknown): InputType | undefined {
  if (typeof v === 'string') return 'string'
  if (typeof v === 'number' && Number.isFinite(v)) return 'number'
  if (typeof v === 'boolean') return 'boolean'
  if (Array.isArray(v)) return 'array'
  return undefined
}

function parseSpec(spec: unknown, label: string): Map<string, InputSpec> {
  const out = new Map<string, InputSpec>()
  if (!isHash(spec)) throw new InputError(`\`${label}\`: spec config should be a hash`)
  const unknownSpec = Object.keys(spec).filter((k) => k !== 'inputs')
  if (unknownSpec.length) throw new InputError(`\`${label}\`: spec config contains unknown keys: ${list(unknownSpec)}`)
  const inputs = getKey(spec, 'inputs')
  if (inputs === undefined || inputs === null) return out
  if (!isHash(inputs)) throw new InputError(`\`${label}\`: spec:inputs config should be a hash`)
  if (Object.keys(inputs).length > MAX_INPUTS) throw new InputError(`\`${label}\`: spec:inputs has more than ${MAX_INPUTS} inputs`)
  for (const name of Object.keys(inputs)) {
    const raw = inputs[name] ?? {}
    const at = `\`${label}\`: spec:inputs:${name}`
    if (!isHash(raw)) throw new InputError(`${at} config should be a hash`)
    const unknown = Object.keys(raw).filter((k) => !['type', 'default', 'options', 'regex', 'description'].includes(k))
    if (unknown.length) throw new InputError(`${at} config contains unknown keys: ${list(unknown)}`)
    const type = getKey(raw, 'type') ?? 'string'
    if (!isString(type) || !(INPUT_TYPES as readonly string[]).includes(type)) {
      throw new InputError(`${at} type should be one of: ${list(INPUT_TYPES)}`)
    }
    const options = getKey(raw, 'options')
    if (options !== undefined && !(Array.isArray(options) && options.length > 0)) throw new InputError(`${at} options should be an array`)
    const regexRaw = getKey(raw, 'regex')
    let regex: RegExp | null = null
    if (regexRaw !== undefined) {
      regex = isString(regexRaw) ? (patternFromString(`/${regexRaw}/`) ?? null) : null
      if (!regex) throw new InputError(`${at} regex should be a valid regular expression`)
      if (type !== 'string') throw new InputError(`${at} regex is only allowed for string inputs`)
    }
    const def = getKey(raw, 'default')
    out.set(name, {
      type: type as InputType,
      default: def === undefined || def === null ? undefined : (def as InputValue),
      options: Array.isArray(options) ? (options as InputValue[]) : null,
      regex,
    })
  }
  return out
}

/** The values of a file's inputs: given ones checked against the spec, defaults for the rest. */
export function resolveInputs(spec: unknown, given: Hash | undefined, label: string): Map<string, InputValue> {
  const specs = spec === undefined ? new Map<string, InputSpec>() : parseSpec(spec, label)
  const values = new Map<string, InputValue>()
  const errors: string[] = []
  const unknown = Object.keys(given ?? {}).filter((k) => !specs.has(k))
  if (unknown.length) errors.push(`unknown input arguments: ${list(unknown)}`)
  for (const [name, s] of specs) {
    const provided = given !== undefined && Object.hasOwn(given, name) ? given[name] : undefined
    const value = provided === undefined || provided === null ? s.default : (provided as InputValue)
    if (value === undefined) {
      errors.push(`\`${name}\` input: required value has not been provided`)
      continue
    }
    if (typeOf(value) !== s.type) {
      errors.push(`\`${name}\` input: provided value is not a ${s.type}`)
      continue
    }
    if (s.options && !s.options.some((o) => JSON.stringify(o) === JSON.stringify(value))) {
      errors.push(`\`${name}\` input: \`${String(value)}\` cannot be used because it is not in the list of allowed options`)
      continue
    }
    if (s.regex && !s.regex.test(value as string)) {
      errors.push(`\`${name}\` input: provided value does not match required RegEx pattern`)
      continue
    }
    values.set(name, value)
  }
  if (errors.length) throw new InputError(`\`${label}\`: ${errors.join(', ')}`)
  return values
}

/** Shell-quotes like Ruby's Shellwords.shellescape (GitLab's `posix_escape`). */
export function posixEscape(value: string): string {
  if (value === '') return "''"
  return value.replace(/[^A-Za-z0-9_\-.,:+/@\n]/g, '\\$&').replace(/\n/g, "'\n'")
}

/**
 * `expand_vars`: one level of `$VAR`/`${VAR}` from the known variables; unknown references stay
 * as written (GitLab's expand_existing) and a masked one is an error, so no secret is written into the configuration.
 */
function expandVars(value: string, vars: InterpolationVariables): string {
  const masked = referencedVariables(value).find((name) => vars.masked?.includes(name) && Object.hasOwn(vars.variables, name))
  if (masked !== undefined) throw new Error(`variable expansion error: masked variables cannot be used with expand_vars: ${masked}`)
  return value.replace(/\$\$|\$(\w+)|\$\{(\w+)\}/g, (whole, bare: string | undefined, braced: string | undefined) => {
    if (whole === '$$') return whole
    const name = (bare ?? braced) as string
    return Object.hasOwn(vars.variables, name) ? (vars.variables[name] as string) : whole
  })
}

const FUNCTIONS: ReadonlyArray<{
  name: string
  pattern: RegExp
  run(value: string, m: RegExpExecArray, vars: InterpolationVariables): string
}> = [
  { name: 'expand_vars', pattern: /^expand_vars$/, run: (v, _m, vars) => expandVars(v, vars) },
  {
    name: 'truncate',
    pattern: /^truncate\(\s*(\d+)\s*,\s*(\d+)\s*\)$/,
    run: (v, m) => [...v].slice(Number(m[1]), Number(m[1]) + Number(m[2])).join(''),
  },
  { name: 'posix_escape', pattern: /^posix_escape$/, run: (v) => posixEscape(v) },
]

/** Runs an interpolation block's functions (`| expand_vars | truncate(0,8)`) over a value, left to right. */
function applyFunctions(value: InputValue, fns: string, vars: InterpolationVariables): InputValue {
  const calls = fns
    .split('|')
    .slice(1)
    .map((f) => f.trim())
  if (calls.length === 0) return value
  if (calls.length > MAX_FUNCTIONS) throw new Error('too many functions in interpolation block')
  let out = value
  for (const call of calls) {
    const fn = FUNCTIONS.find((f) => f.pattern.test(call))
    if (!fn) throw new Error(`no function matching \`${call}\`: check that the function name, arguments, and types are correct`)
    if (typeof out !== 'string')
      throw new Error(`error in \`${fn.name}\` function: invalid input type: ${fn.name} can only be used with string inputs`)
    try {
      out = fn.run(out, fn.pattern.exec(call)!, vars)
    } catch (e) {
      throw new Error(`error in \`${fn.name}\` function: ${(e as Error).message}`)
    }
  }
  return out
}

/** Replaces `$[[ inputs.x ]]` (with its functions, if any) in every key and value of `v`. */
export function interpolate(
  v: unknown,
  inputs: Map<string, InputValue>,
  label: string,
  vars: InterpolationVariables = { variables: {} },
): unknown {
  const evaluate = (name: string, fns: string): InputValue => {
    try {
      return applyFunctions(lookup(name), fns, vars)
    } catch (e) {
      if (e instanceof InputError) throw e
      throw new InputError(`\`${label}\`: ${(e as Error).message}`)
    }
  }
  const text = (s: string): InputValue => {
    if (!s.includes('$[[')) return s
    const whole = WHOLE.exec(s.trim())
    if (whole) return evaluate(whole[1]!, whole[2] ?? '')
    return s.replace(INTERPOLATION, (_m, name: string, fns: string) => {
      const value = evaluate(name, fns)
      return typeof value === 'string' ? value : JSON.stringify(value)
    })
  }
  const lookup = (name: string): InputValue => {
    const value = inputs.get(name)
    if (value === undefined) throw new InputError(`\`${label}\`: unknown interpolation key: \`${name}\``)
    return value
  }
  const walk = (x: unknown): unknown => {
    if (isString(x)) return text(x)
    if (Array.isArray(x)) return x.map(walk)
    if (isHash(x)) {
      const out: Hash = {}
      for (const k of Object.keys(x)) {
        const key = text(k)
        setKey(out, typeof key === 'string' ? key : JSON.stringify(key), walk(x[k]))
      }
      return out
    }
    return x
  }
  return walk(v)
}
