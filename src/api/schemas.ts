import { Type, type TSchema, type TUnsafe } from '@sinclair/typebox'
import { VISIBILITIES } from '../auth/roles.ts'

/** A string enum as plain JSON Schema `enum` (clearer validation messages than a union of literals). */
export function StringEnum<T extends readonly string[]>(values: T, opts: { description?: string; default?: T[number] } = {}): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...opts })
}

export const VisibilitySchema = StringEnum(VISIBILITIES, { description: 'private, internal or public' })

/** GitLab's `:id`: a numeric id or the URL-encoded full path (`group%2Fproject`). */
export const IdParam = Type.Object({ id: Type.String({ description: 'numeric id or URL-encoded full path' }) })

export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

export const DateString = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD' })
