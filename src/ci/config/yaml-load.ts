import { parseAllDocuments, type ParseOptions, type DocumentOptions, type SchemaOptions, type ToJSOptions } from 'yaml'
import { isHash } from './util.ts'

// YAML as GitLab reads it (Psych, YAML 1.1): anchors, aliases, "<<" merge keys, duplicate keys
// where the last one wins, yes/no/on/off booleans, and the `!reference [job, key]` tag.

export const YAML_LIMITS = {
  /** GitLab's default ci_max_yaml_size_bytes (2 MiB) per file. */
  bytes: 2 * 1024 * 1024,
  /** GitLab's default ci_max_yaml_depth. */
  depth: 100,
  /** Aliases resolved per document: room for real files, not for "billion laughs". */
  aliases: 10_000,
} as const

/** A `!reference [.job, key, ...]` tag, replaced by the value it points to after `extends`. */
export class YamlReference {
  readonly path: readonly string[]
  constructor(path: readonly string[]) {
    this.path = path
  }
  toString(): string {
    return `!reference [${this.path.map((p) => JSON.stringify(p)).join(', ')}]`
  }
}

const referenceTag = {
  tag: '!reference',
  collection: 'seq' as const,
  resolve(seq: { items: unknown[] }, onError: (message: string) => void): unknown {
    const path: string[] = []
    for (const item of seq.items) {
      const v = item !== null && typeof item === 'object' && 'value' in item ? (item as { value: unknown }).value : item
      if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') path.push(String(v))
      else onError('!reference must be a sequence of strings')
    }
    return new YamlReference(path)
  },
}

type Tags = Exclude<SchemaOptions['customTags'], ((tags: never) => unknown) | null | undefined>

/**
 * YAML 1.1 tags as Psych resolves them: only yes/true/on and no/false/off (any case) are
 * booleans, not "y"/"n"; dates stay strings (GitLab's safe_load refuses Date objects).
 */
function psychTags(tags: Tags): Tags {
  const out: Tags = []
  for (const t of tags) {
    if (typeof t === 'string') {
      out.push(t)
      continue
    }
    if (t.tag === 'tag:yaml.org,2002:timestamp') continue
    if (t.tag === 'tag:yaml.org,2002:bool' && 'test' in t && t.test) {
      const isTrue = t.identify?.(true) === true
      out.push({ ...t, test: isTrue ? /^(?:yes|true|on)$/i : /^(?:no|false|off)$/i })
      continue
    }
    out.push(t)
  }
  out.push(referenceTag)
  return out
}

const OPTIONS: ParseOptions & DocumentOptions & SchemaOptions = {
  version: '1.1',
  merge: true,
  uniqueKeys: false,
  customTags: psychTags,
  prettyErrors: true,
}
const TO_JS: ToJSOptions = { maxAliasCount: YAML_LIMITS.aliases }

export type LoadResult = { ok: true; value: unknown; spec?: unknown } | { ok: false; error: string }

/**
 * Parses one YAML document; `label` names the file in messages. With `withSpec` (an included
 * file), a `spec:` header document (CI/CD inputs) is returned as `spec` and the next document is
 * the configuration.
 */
export function loadYaml(text: string, label: string, withSpec = false): LoadResult {
  if (Buffer.byteLength(text, 'utf8') > YAML_LIMITS.bytes) return { ok: false, error: `\`${label}\`: The parsed YAML is too big` }
  let value: unknown
  try {
    // Like Psych.load, the first document is the configuration; a `spec:` header before it
    // (CI/CD inputs) is not supported.
    const docs = Array.from(parseAllDocuments(text, OPTIONS))
    for (const doc of docs) {
      const first = doc.errors[0]
      if (first) return { ok: false, error: `\`${label}\`: ${firstLine(first.message)}` }
    }
    value = docs[0]?.toJS(TO_JS) ?? null
    if (docs.length > 1 && isHash(value) && Object.hasOwn(value, 'spec')) {
      if (!withSpec) return { ok: false, error: `\`${label}\`: a spec: header (CI/CD inputs) is not supported` }
      const spec = value.spec
      value = docs[1]?.toJS(TO_JS) ?? null
      if (tooDeep(value, 0) || tooDeep(spec, 0)) return { ok: false, error: `\`${label}\`: The parsed YAML is too big` }
      return { ok: true, value, spec }
    }
  } catch (e) {
    return { ok: false, error: `\`${label}\`: ${firstLine(e instanceof Error ? e.message : String(e))}` }
  }
  if (tooDeep(value, 0)) return { ok: false, error: `\`${label}\`: The parsed YAML is too big` }
  return { ok: true, value }
}

function firstLine(message: string): string {
  return (message.split('\n')[0] ?? message).replace(/:$/, '')
}

function tooDeep(v: unknown, depth: number): boolean {
  if (depth > YAML_LIMITS.depth) return true
  if (Array.isArray(v)) return v.some((x) => tooDeep(x, depth + 1))
  if (isHash(v)) return Object.values(v).some((x) => tooDeep(x, depth + 1))
  return false
}
