import type { FastifyInstance } from 'fastify'

/** Form bodies are small (API fields, OAuth grants). */
const FORM_LIMIT = 64 << 10

/**
 * Parses application/x-www-form-urlencoded bodies (curl --data, OAuth clients) into an object.
 * `key[]=a&key[]=b` and repeated keys become arrays (GitLab's `scopes[]=api`); route schemas coerce the rest.
 */
export function addFormParser(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    const out: Record<string, string | string[]> = Object.create(null) as Record<string, string | string[]>
    for (const [rawKey, v] of new URLSearchParams(body as string)) {
      const isArray = rawKey.endsWith('[]')
      const k = isArray ? rawKey.slice(0, -2) : rawKey
      const prev = out[k]
      out[k] = prev === undefined ? (isArray ? [v] : v) : Array.isArray(prev) ? [...prev, v] : [prev, v]
    }
    done(null, { ...out })
  })
}
