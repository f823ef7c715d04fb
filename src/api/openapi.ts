import type { RouteOptions } from 'fastify'

type Json = Record<string, unknown>

const STATUS_TEXT: Record<string, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content' }

interface Collected {
  method: string
  url: string
  schema: Json
  public: boolean
  /** GitLab's runner protocol: authenticated by a runner token in the body or a job token, never a user's. */
  runnerAuth: 'runner' | 'job' | 'anyJob' | undefined
  /** Also accepts a CI job token in the JOB-TOKEN header. */
  jobToken: boolean
}

/**
 * Who may call a route, as OpenAPI security requirements. Runner protocol routes take no user
 * credential: a runner token travels in the JSON body (which OpenAPI cannot name as a security
 * scheme, so it is stated in the description), a job token in JOB-TOKEN (or the body's `token`).
 */
function security_(r: Collected): { security: Json[]; note?: string } {
  if (r.runnerAuth === 'runner')
    return { security: [], note: "Authentication: the runner's authentication token (`glrt-…`) in the body's `token` field." }
  if (r.runnerAuth === 'job')
    return {
      security: [{ jobToken: [] }],
      note: "Authentication: the job's token in the `JOB-TOKEN` header or the JSON body's `token` field.",
    }
  if (r.runnerAuth === 'anyJob')
    return { security: [{ jobToken: [] }], note: 'Authentication: the token of a running job in the `JOB-TOKEN` header.' }
  const user: Json[] = [{ privateToken: [] }, { bearer: [] }, ...(r.jobToken ? [{ jobToken: [] }] : [])]
  return { security: r.public ? [{}, ...user] : user }
}

/** Plain JSON (TypeBox schemas carry symbol keys that serializers ignore anyway). */
const plain = (v: unknown): Json => JSON.parse(JSON.stringify(v ?? {})) as Json

/**
 * Builds the OpenAPI 3.1 document from the routes as they are registered (an `onRoute` hook), so
 * the document and the validation schemas cannot drift apart. Not @fastify/swagger: it walks
 * routes the same way, and everything Wharf-specific here (security from route config, x-response,
 * form bodies, the URL filter) would move into its `transform` hook unchanged (README, libraries).
 */
export class OpenApiCollector {
  private readonly routes: Collected[] = []
  private readonly info: { title: string; version: string }
  private readonly serverUrl: string
  private readonly include: (url: string) => boolean

  /** `include`: which URLs belong in the document (the REST API and OAuth, not /v2 or git). */
  constructor(
    info: { title: string; version: string },
    serverUrl: string,
    include: (url: string) => boolean = (u) => u.startsWith('/api/') || u.startsWith('/oauth/'),
  ) {
    this.info = info
    this.serverUrl = serverUrl
    this.include = include
  }

  /**
   * Pass to `app.addHook('onRoute', ...)` before the routes are registered; on the root instance it
   * also sees /api/v4 routes that other plugins register (git, CI runners).
   */
  readonly onRoute = (route: RouteOptions): void => {
    if (!this.include(route.url)) return
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    for (const method of methods) {
      // HEAD routes are documented: the app exposes none implicitly (exposeHeadRoutes: false), so each is a real one (file metadata).
      if (method === 'OPTIONS') continue
      const config = (route.config ?? {}) as { public?: boolean; runnerAuth?: Collected['runnerAuth']; jobToken?: boolean }
      this.routes.push({
        method: method.toLowerCase(),
        url: route.url,
        schema: plain(route.schema),
        public: config.public === true,
        runnerAuth: config.runnerAuth,
        jobToken: config.jobToken === true,
      })
    }
  }

  /** Every collected route as `METHOD /path` (for tests and the 404 hint). */
  list(): string[] {
    return this.routes.map((r) => `${r.method.toUpperCase()} ${r.url}`)
  }

  document(): Json {
    const paths: Record<string, Record<string, Json>> = {}
    for (const r of this.routes) {
      const path = r.url.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
      const op: Json = {}
      op.summary = r.schema.summary ?? `${r.method.toUpperCase()} ${path}`
      if (r.schema.description) op.description = r.schema.description
      if (r.schema.tags) op.tags = r.schema.tags
      op.operationId = `${r.method}${path.replace(/\{([^}]+)\}/g, 'By_$1').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ? c.toUpperCase() : ''))}`
      const parameters: Json[] = []
      for (const [where, key] of [
        ['path', 'params'],
        ['query', 'querystring'],
      ] as const) {
        const s = r.schema[key] as { properties?: Record<string, Json>; required?: string[] } | undefined
        for (const [name, schema] of Object.entries(s?.properties ?? {})) {
          const { description, ...rest } = schema
          parameters.push({
            name,
            in: where,
            required: where === 'path' || (s?.required ?? []).includes(name),
            schema: rest,
            ...(description ? { description } : {}),
          })
        }
      }
      for (const name of path.match(/\{([^}]+)\}/g)?.map((m) => m.slice(1, -1)) ?? []) {
        if (!parameters.some((p) => p.in === 'path' && p.name === name))
          parameters.push({ name, in: 'path', required: true, schema: { type: 'string' } })
      }
      if (parameters.length) op.parameters = parameters
      if (r.schema.body) {
        op.requestBody = {
          required: true,
          content: { 'application/json': { schema: r.schema.body }, 'application/x-www-form-urlencoded': { schema: r.schema.body } },
        }
      }
      const responses: Record<string, Json> = {}
      const documented = (r.schema['x-response'] ?? undefined) as Record<string, Json> | undefined
      for (const [status, schema] of Object.entries(documented ?? { 200: {} })) {
        const description = (schema.description as string | undefined) ?? STATUS_TEXT[status] ?? 'OK'
        responses[status] = { description, ...(Object.keys(schema).length ? { content: { 'application/json': { schema } } } : {}) }
      }
      responses.default = {
        description: 'error',
        // application/json as GitLab's errors; application/problem+json when the client's Accept asks for it.
        content: {
          'application/json': { schema: { $ref: '#/components/schemas/Problem' } },
          'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } },
        },
      }
      op.responses = responses
      const security = security_(r)
      op.security = security.security
      if (security.note) op.description = op.description ? `${op.description as string}\n\n${security.note}` : security.note
      paths[path] = { ...paths[path], [r.method]: op }
    }
    return {
      openapi: '3.1.0',
      info: this.info,
      servers: [{ url: this.serverUrl }],
      paths,
      components: {
        securitySchemes: {
          privateToken: { type: 'apiKey', in: 'header', name: 'PRIVATE-TOKEN', description: 'a personal access token' },
          bearer: {
            type: 'http',
            scheme: 'bearer',
            description: 'a personal access token or an OAuth access token from POST /oauth/token',
          },
          jobToken: {
            type: 'apiKey',
            in: 'header',
            name: 'JOB-TOKEN',
            description: 'a CI job token (CI_JOB_TOKEN), valid only while its job runs',
          },
        },
        schemas: {
          Problem: {
            type: 'object',
            required: ['type', 'title', 'status', 'detail', 'message'],
            properties: {
              type: { type: 'string' },
              title: { type: 'string' },
              status: { type: 'integer' },
              detail: { type: 'string' },
              message: { type: 'string', description: "GitLab's error field" },
              code: { type: 'string' },
            },
          },
        },
      },
    }
  }
}
