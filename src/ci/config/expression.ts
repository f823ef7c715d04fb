// The expression language of `rules:if`, `workflow:rules:if` and `only/except:variables`,
// with GitLab's grammar:
//   $VAR                 true when the variable is defined and not empty
//   "text", 'text'       string literals (no escapes)
//   null                 an undefined variable equals null
//   /regex/flags         patterns, on the right of =~ and !~ (flags i and m)
//   ==  !=  =~  !~       comparisons; either side may be a variable
//   &&  ||  ( )          && binds tighter than ||
// "${VAR}" is not part of the language (GitLab rejects it in `rules:if`, too).
// Deliberately hand-written, not a parser library: the grammar is GitLab's own and small, and
// its errors must read as GitLab's do.

import { LRUCache } from 'lru-cache'

export type Expr =
  | { readonly kind: 'variable'; readonly name: string }
  | { readonly kind: 'string'; readonly value: string }
  | { readonly kind: 'null' }
  | { readonly kind: 'pattern'; readonly source: string; readonly flags: string }
  | { readonly kind: 'compare'; readonly op: CompareOp; readonly left: Expr; readonly right: Expr }
  | { readonly kind: 'and' | 'or'; readonly left: Expr; readonly right: Expr }

export type CompareOp = '==' | '!=' | '=~' | '!~'

export class ExpressionSyntaxError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ExpressionSyntaxError'
  }
}

type Token =
  | { t: 'variable'; name: string }
  | { t: 'string'; value: string }
  | { t: 'null' }
  | { t: 'pattern'; source: string; flags: string }
  | { t: 'op'; op: CompareOp | '&&' | '||' | '(' | ')' }

/** Ruby-syntax flags GitLab accepts, as JavaScript flags (Ruby's "m" is JavaScript's "s"). */
const FLAG_MAP: Readonly<Record<string, string>> = { i: 'i', m: 's' }
/** Bound on expression length; real conditions are a few hundred characters at most. */
export const MAX_EXPRESSION_LENGTH = 10_000

function tokenize(src: string): Token[] {
  const tokens: Token[] = []
  let i = 0
  while (i < src.length) {
    const c = src[i] as string
    if (/\s/.test(c)) {
      i++
      continue
    }
    const two = src.slice(i, i + 2)
    if (two === '==' || two === '!=' || two === '=~' || two === '!~' || two === '&&' || two === '||') {
      tokens.push({ t: 'op', op: two })
      i += 2
      continue
    }
    if (c === '(' || c === ')') {
      tokens.push({ t: 'op', op: c })
      i++
      continue
    }
    if (c === '$') {
      const m = /^\w+/.exec(src.slice(i + 1))
      if (!m) throw new ExpressionSyntaxError(`unexpected "$" at ${i}`)
      tokens.push({ t: 'variable', name: m[0] })
      i += 1 + m[0].length
      continue
    }
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1)
      if (end < 0) throw new ExpressionSyntaxError(`unterminated string at ${i}`)
      tokens.push({ t: 'string', value: src.slice(i + 1, end) })
      i = end + 1
      continue
    }
    if (c === '/') {
      const parsed = readPattern(src, i)
      tokens.push({ t: 'pattern', source: parsed.source, flags: parsed.flags })
      i = parsed.end
      continue
    }
    const word = /^[A-Za-z_]\w*/.exec(src.slice(i))
    if (word && word[0] === 'null') {
      tokens.push({ t: 'null' })
      i += 4
      continue
    }
    throw new ExpressionSyntaxError(`unexpected "${word ? word[0] : c}" at ${i}`)
  }
  return tokens
}

function readPattern(src: string, start: number): { source: string; flags: string; end: number } {
  let i = start + 1
  while (i < src.length && src[i] !== '/') i += src[i] === '\\' ? 2 : 1
  if (i >= src.length) throw new ExpressionSyntaxError(`unterminated pattern at ${start}`)
  const source = src.slice(start + 1, i)
  if (source === '') throw new ExpressionSyntaxError(`empty pattern at ${start}`)
  i++
  let flags = ''
  while (i < src.length && /[A-Za-z]/.test(src[i] as string)) {
    if (!Object.hasOwn(FLAG_MAP, src[i] as string)) throw new ExpressionSyntaxError(`unsupported pattern flag "${src[i]}"`)
    const f = FLAG_MAP[src[i] as string] as string
    if (!flags.includes(f)) flags += f
    i++
  }
  try {
    new RegExp(source, flags)
  } catch {
    throw new ExpressionSyntaxError(`invalid pattern /${source}/`)
  }
  return { source, flags, end: i }
}

/** Parsed expressions: they come from config files, so the same few repeat across pipelines. */
const cache = new LRUCache<string, Expr>({ max: 2000 })

/** Parses a condition; throws ExpressionSyntaxError when it is not valid. */
export function parseExpression(src: string): Expr {
  const hit = cache.get(src)
  if (hit) return hit
  if (src.length > MAX_EXPRESSION_LENGTH) throw new ExpressionSyntaxError('expression is too long')
  const tokens = tokenize(src)
  if (tokens.length === 0) throw new ExpressionSyntaxError('empty expression')
  let pos = 0
  const peek = (): Token | undefined => tokens[pos]
  const isOp = (tok: Token | undefined, op: string): boolean => tok?.t === 'op' && tok.op === op

  const operand = (): Expr => {
    const tok = tokens[pos++]
    if (!tok) throw new ExpressionSyntaxError('unexpected end of expression')
    switch (tok.t) {
      case 'variable':
        return { kind: 'variable', name: tok.name }
      case 'string':
        return { kind: 'string', value: tok.value }
      case 'null':
        return { kind: 'null' }
      case 'pattern':
        return { kind: 'pattern', source: tok.source, flags: tok.flags }
      default:
        throw new ExpressionSyntaxError(`unexpected "${tok.op}"`)
    }
  }
  const primary = (): Expr => {
    if (isOp(peek(), '(')) {
      pos++
      const inner = or()
      if (!isOp(peek(), ')')) throw new ExpressionSyntaxError('missing ")"')
      pos++
      return inner
    }
    const left = operand()
    const next = peek()
    if (next?.t === 'op' && (next.op === '==' || next.op === '!=' || next.op === '=~' || next.op === '!~')) {
      pos++
      return { kind: 'compare', op: next.op, left, right: operand() }
    }
    return left
  }
  const and = (): Expr => {
    let left = primary()
    while (isOp(peek(), '&&')) {
      pos++
      left = { kind: 'and', left, right: primary() }
    }
    return left
  }
  const or = (): Expr => {
    let left = and()
    while (isOp(peek(), '||')) {
      pos++
      left = { kind: 'or', left, right: and() }
    }
    return left
  }

  const expr = or()
  if (pos !== tokens.length) throw new ExpressionSyntaxError('unexpected tokens after expression')
  cache.set(src, expr)
  return expr
}

export function isValidExpression(src: string): boolean {
  try {
    parseExpression(src)
    return true
  } catch (e) {
    if (e instanceof ExpressionSyntaxError) return false
    throw e
  }
}

type Value = string | null | RegExp | boolean

/** Evaluates a condition; unknown variables are null. */
export function evaluateExpression(expr: Expr | string, lookup: (name: string) => string | undefined): boolean {
  const e = typeof expr === 'string' ? parseExpression(expr) : expr
  return truthy(evaluate(e, lookup))
}

function truthy(v: Value): boolean {
  if (v === null) return false
  if (typeof v === 'string') return v !== ''
  if (typeof v === 'boolean') return v
  return true
}

function evaluate(e: Expr, lookup: (name: string) => string | undefined): Value {
  switch (e.kind) {
    case 'variable':
      return lookup(e.name) ?? null
    case 'string':
      return e.value
    case 'null':
      return null
    case 'pattern':
      return new RegExp(e.source, e.flags)
    case 'and':
      return truthy(evaluate(e.left, lookup)) && truthy(evaluate(e.right, lookup))
    case 'or':
      return truthy(evaluate(e.left, lookup)) || truthy(evaluate(e.right, lookup))
    case 'compare': {
      const left = evaluate(e.left, lookup)
      const right = evaluate(e.right, lookup)
      switch (e.op) {
        case '==':
          return same(left, right)
        case '!=':
          return !same(left, right)
        case '=~':
          return matches(left, right)
        case '!~':
          return !matches(left, right)
      }
    }
  }
}

function same(a: Value, b: Value): boolean {
  const norm = (v: Value): Value => (v instanceof RegExp ? String(v) : v)
  return norm(a) === norm(b)
}

/**
 * `left =~ right`. The right side is a pattern, or a variable (or string) whose value is written
 * as a pattern ("/^v\d+/"); anything else never matches. An undefined left side reads as "".
 */
function matches(left: Value, right: Value): boolean {
  let re: RegExp | undefined
  if (right instanceof RegExp) re = right
  else if (typeof right === 'string') re = patternFromString(right) ?? undefined
  if (!re) return false
  const text = left === null ? '' : left instanceof RegExp ? String(left) : String(left)
  return re.test(text)
}

/**
 * A "/regex/flags" string (as in `only: [/^release-.*$/]` or a variable holding a pattern) as a
 * RegExp; undefined when the string is not written as a pattern, null when it is but does not
 * compile. The body runs to the last "/", as GitLab reads it.
 */
export function patternFromString(s: string): RegExp | null | undefined {
  const m = /^\/(.+)\/([A-Za-z]*)$/s.exec(s)
  if (!m) return undefined
  let flags = ''
  for (const f of m[2] as string) {
    if (!Object.hasOwn(FLAG_MAP, f)) return null
    const js = FLAG_MAP[f] as string
    if (!flags.includes(js)) flags += js
  }
  try {
    return new RegExp(m[1] as string, flags)
  } catch {
    return null
  }
}
