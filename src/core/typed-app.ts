import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { FastifyBaseLogger, FastifyInstance, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify'

/**
 * The instance a route plugin receives: its handlers see `req.params`, `req.query` and `req.body`
 * typed from the route's TypeBox schemas, so no handler casts them. Types only: validation stays
 * Fastify's ajv (coercion, defaults and each edge's error format are unchanged), which is why the
 * provider is a dev dependency and never loaded at run time.
 */
export type TypedApp = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>
