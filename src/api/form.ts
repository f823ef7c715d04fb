import type { FastifyInstance } from 'fastify'

/** Form bodies are small (API fields, OAuth grants). */
const FORM_LIMIT = 64 << 10

type FormValue = string | string[] | { [key: string]: string }

/**
 * Parses application/x-www-form-urlencoded bodies (curl --data, OAuth clients) into an object, as
 * Rack does for GitLab: `key[]=a&key[]=b` and repeated keys become arrays (`scopes[]=api`), and
 * `key[name]=v` a nested object (`variables[DEPLOY]=true`). The result goes through the same route
 * schema as a JSON body (coercing strings), so a form cannot carry an attribute JSON could not.
 */
export function addFormParser(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    // Null-prototype objects: a `__proto__` field stays an ordinary (and, for the schema, unknown) key.
    const out: Record<string, FormValue> = Object.create(null) as Record<string, FormValue>
    for (const [rawKey, v] of new URLSearchParams(body as string)) {
      const nested = /^([^[\]]+)\[([^[\]]+)\]$/.exec(rawKey)
      if (nested) {
        const [, k, sub] = nested as unknown as [string, string, string]
        const prev = out[k]
        const obj = prev !== undefined && typeof prev === 'object' && !Array.isArray(prev) ? prev : (Object.create(null) as Record<string, string>)
        obj[sub] = v
        out[k] = obj
        continue
      }
      const isArray = rawKey.endsWith('[]')
      const k = isArray ? rawKey.slice(0, -2) : rawKey
      const prev = out[k]
      out[k] = prev === undefined || (typeof prev === 'object' && !Array.isArray(prev)) ? (isArray ? [v] : v) : Array.isArray(prev) ? [...prev, v] : [prev, v]
    }
    done(null, { ...out })
  })
}
