// What /api/v4 route plugins share besides their own services (each plugin declares the services
// it uses in its own options): the public URLs, and the route schema and config fields every
// plugin may set. The caller (`req.principal`) and token scopes are declared with the auth hook
// (src/auth/api-auth.ts).

/** Where the API's JSON points to. */
export interface ApiUrls {
  /** Public base URL, no trailing slash (web_url, Link headers). */
  publicUrl: string
  /** host[:port] of the registry in image names (container_registry_image_prefix, location). */
  registryHost: string
}

declare module 'fastify' {
  interface FastifySchema {
    /** OpenAPI operation fields (src/api/openapi.ts). */
    summary?: string
    description?: string
    tags?: string[]
    /** Response schemas for the OpenAPI document only (not used for serialization), by status. */
    'x-response'?: Record<string, unknown>
  }
  interface FastifyContextConfig {
    /** Anonymous callers may use this route (GitLab allows them on public reads). */
    public?: boolean
    /** A CI job token in the `JOB-TOKEN` header is accepted (the route checks the job's project). */
    jobToken?: boolean
    /**
     * The body is another service's webhook payload: read by nobody, so not refused as undeclared
     * attributes (GitLab's `/projects/:id/ref/:ref/trigger/pipeline?token=`).
     */
    ignoredBody?: boolean
  }
}
