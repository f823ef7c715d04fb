import multipart from '@fastify/multipart'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { WharfError } from '../core/errors.ts'

/** Form bodies are small (API fields, OAuth grants). */
const FORM_LIMIT = 64 << 10

type FormValue = string | string[] | { [key: string]: string }

/**
 * Shapes form fields as Rack does for GitLab: `key[]=a&key[]=b` and repeated keys become arrays
 * (`scopes[]=api`), and `key[name]=v` a nested object (`variables[DEPLOY]=true`). The result goes
 * through the same route schema as a JSON body (coercing strings), so a form cannot carry an
 * attribute JSON could not.
 */
export function formFields(entries: Iterable<[string, string]>): Record<string, FormValue> {
  // Null-prototype objects: a `__proto__` field stays an ordinary (and, for the schema, unknown) key.
  const out: Record<string, FormValue> = Object.create(null) as Record<string, FormValue>
  for (const [rawKey, v] of entries) {
    const nested = /^([^[\]]+)\[([^[\]]+)\]$/.exec(rawKey)
    if (nested) {
      const [, k, sub] = nested as unknown as [string, string, string]
      const prev = out[k]
      const obj =
        prev !== undefined && typeof prev === 'object' && !Array.isArray(prev) ? prev : (Object.create(null) as Record<string, string>)
      obj[sub] = v
      out[k] = obj
      continue
    }
    const isArray = rawKey.endsWith('[]')
    const k = isArray ? rawKey.slice(0, -2) : rawKey
    const prev = out[k]
    out[k] =
      prev === undefined || (typeof prev === 'object' && !Array.isArray(prev))
        ? isArray
          ? [v]
          : v
        : Array.isArray(prev)
          ? [...prev, v]
          : [prev, v]
  }
  return { ...out }
}

/** Parses application/x-www-form-urlencoded bodies (curl --data, OAuth clients) with `formFields`. */
export function addFormParser(app: FastifyInstance): void {
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string', bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    done(null, formFields(new URLSearchParams(body as string)))
  })
}

/**
 * multipart/form-data bodies (`curl -F`, as GitLab's docs show for triggers) read as forms: their
 * fields, shaped by `formFields`, become the body the route schema validates. No /api/v4 route
 * takes a file this way, so a file part is refused (413 from the parser's `files: 0` limit) and
 * never read into memory. Registers @fastify/multipart and a `preValidation` hook, so call it
 * before adding hooks that look at the body.
 */
export function addMultipartFormParser(app: FastifyInstance): void {
  // At most 32 fields of 64 KiB: a form never holds more than 2 MiB in memory.
  void app.register(multipart, { limits: { files: 0, fields: 32, fieldSize: FORM_LIMIT, parts: 33 } })
  app.addHook('preValidation', async (req: FastifyRequest) => {
    if (!req.isMultipart()) return
    const fields: [string, string][] = []
    for await (const part of req.parts()) {
      if (part.type !== 'field') continue
      // busboy cuts an oversized field silently; a cut value must not pass for the real one.
      if (part.valueTruncated)
        throw new WharfError('BAD_REQUEST', `field ${part.fieldname} is longer than ${FORM_LIMIT} bytes`, { attribute: part.fieldname })
      fields.push([part.fieldname, String(part.value)])
    }
    req.body = formFields(fields)
  })
}
