// Glob patterns of `changes:` and `exists:`, matched the way GitLab does it: Ruby's
// File.fnmatch? with FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB.
//   *      any characters except "/"          ?      one character except "/"
//   **/    zero or more whole directories     [a-z]  a class ([!a] or [^a] negates)
//   {a,b}  alternatives (nestable)            \x     the character x
// Because of FNM_PATHNAME, a "**" that is not followed by "/" is a plain "*" (so "docs/**"
// matches "docs/a" but not "docs/a/b"; write "docs/**/*" for the whole tree, as on GitLab).
// Wildcards match dotfiles (FNM_DOTMATCH).
// Deliberately hand-written, not a glob library: these are Ruby's fnmatch rules, which differ from
// picomatch/minimatch and from the doublestar globs the runner uses for artifact paths
// (src/runner/archive.ts), and a pipeline must select the same jobs here as on GitLab.

import { LRUCache } from 'lru-cache'

/** Compiled patterns; they come from config files, so they repeat. */
const cache = new LRUCache<string, RegExp>({ max: 1000 })

export function globToRegExp(pattern: string): RegExp {
  let re = cache.get(pattern)
  if (!re) {
    re = new RegExp(`^${compile(pattern, { i: 0 }, false)}$`, 's')
    cache.set(pattern, re)
  }
  return re
}

export function matchGlob(pattern: string, path: string): boolean {
  return globToRegExp(pattern).test(path)
}

/** Whether any path in `paths` matches any of `patterns`. */
export function anyGlobMatches(patterns: readonly string[], paths: readonly string[]): boolean {
  return patterns.some((p) => {
    const re = globToRegExp(p)
    return paths.some((path) => re.test(path))
  })
}

const escapeRe = (c: string): string => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&')

function compile(p: string, pos: { i: number }, inBrace: boolean): string {
  let out = ''
  while (pos.i < p.length) {
    const c = p[pos.i] as string
    if (inBrace && (c === ',' || c === '}')) return out
    pos.i++
    switch (c) {
      case '\\': {
        const next = p[pos.i]
        if (next === undefined) out += '\\\\'
        else {
          out += escapeRe(next)
          pos.i++
        }
        break
      }
      case '*': {
        if (p[pos.i] === '*') {
          const atSegmentStart = pos.i - 1 === 0 || p[pos.i - 2] === '/'
          if (atSegmentStart && p[pos.i + 1] === '/') {
            pos.i += 2
            out += '(?:[^/]+/)*'
            break
          }
          while (p[pos.i] === '*') pos.i++
        }
        out += '[^/]*'
        break
      }
      case '?':
        out += '[^/]'
        break
      case '[': {
        const end = classEnd(p, pos.i)
        if (end < 0) {
          out += '\\['
          break
        }
        let body = p.slice(pos.i, end)
        pos.i = end + 1
        let negate = false
        if (body.startsWith('!') || body.startsWith('^')) {
          negate = true
          body = body.slice(1)
        }
        const inner = body.replace(/\\(.)/g, '$1').replace(/[\\\]^]/g, '\\$&')
        out += negate ? `(?!/)[^${inner}]` : `(?!/)[${inner}]`
        break
      }
      case '{': {
        const alternatives: string[] = []
        const start = pos.i
        for (;;) {
          alternatives.push(compile(p, pos, true))
          const stop = p[pos.i]
          pos.i++
          if (stop === '}') break
          if (stop !== ',') {
            // unbalanced: treat "{" literally
            pos.i = start
            alternatives.length = 0
            break
          }
        }
        out += alternatives.length ? `(?:${alternatives.join('|')})` : '\\{'
        break
      }
      default:
        out += escapeRe(c)
    }
  }
  return out
}

/** Index of the "]" closing a class whose body starts at `from`, or -1. */
function classEnd(p: string, from: number): number {
  let i = from
  if (p[i] === '!' || p[i] === '^') i++
  if (p[i] === ']') i++ // a leading "]" is literal
  for (; i < p.length; i++) {
    if (p[i] === '\\') {
      i++
      continue
    }
    if (p[i] === ']') return i
  }
  return -1
}
