import type { FastifyRequest } from 'fastify'

interface ObjectSchema {
  properties?: Record<string, { type?: unknown; anyOf?: { type?: unknown }[] }>
}

// What GitLab (Grape) reads as a boolean: python-gitlab writes Python's `True`/`False`, curl users `1`/`0`.
const SPELLINGS: Record<string, boolean> = { true: true, false: false, '1': true, '0': false }

const booleanKeys = new WeakMap<object, string[]>()

/** The top-level properties a route schema types as boolean (alone or in a union, e.g. nullable). */
function booleansOf(schema: unknown): string[] {
  if (schema === null || typeof schema !== 'object') return []
  let keys = booleanKeys.get(schema)
  if (!keys) {
    const props = (schema as ObjectSchema).properties ?? {}
    keys = Object.keys(props).filter((k) => {
      const p = props[k]!
      return p.type === 'boolean' || (p.anyOf ?? []).some((s) => s.type === 'boolean')
    })
    booleanKeys.set(schema, keys)
  }
  return keys
}

function normalize(target: Record<string, unknown>, keys: string[]): void {
  for (const k of keys) {
    const v = target[k]
    if (typeof v !== 'string') continue
    const b = SPELLINGS[v.toLowerCase()]
    if (b !== undefined) target[k] = b
  }
}

/**
 * A `preValidation` hook for /api/v4 scopes: GitLab's spellings of a boolean (`true/false/True/False/1/0`,
 * any case) become JSON booleans in the query string and body, for the parameters the route schema
 * types as boolean and only those, before ajv (which takes only `true`/`false`) validates them.
 * Anything else is left for validation to refuse.
 */
export async function coerceGitLabBooleans(req: FastifyRequest): Promise<void> {
  const schema = req.routeOptions.schema
  if (!schema) return
  const queryKeys = booleansOf(schema.querystring)
  if (queryKeys.length && req.query && typeof req.query === 'object') normalize(req.query as Record<string, unknown>, queryKeys)
  const bodyKeys = booleansOf(schema.body)
  const body = req.body
  if (bodyKeys.length && body !== null && typeof body === 'object' && !Array.isArray(body) && !Buffer.isBuffer(body))
    normalize(body as Record<string, unknown>, bodyKeys)
}
