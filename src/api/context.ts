import type { AccessTokens } from '../auth/access-tokens.ts'
import type { ApiTokens } from '../auth/api-tokens.ts'
import type { Credentials } from '../auth/credentials.ts'
import type { Principal } from '../auth/principals.ts'
import type { PatScope } from '../auth/roles.ts'
import type { Projects } from '../projects/service.ts'
import type { Manifests } from '../registry/manifests.ts'

/** What every /api/v4 route plugin receives (explicit wiring, no service locator). */
export interface ApiDeps {
  projects: Projects
  accessTokens: AccessTokens
  apiTokens: ApiTokens
  credentials: Credentials
  manifests: Manifests
  /** Public base URL, no trailing slash (web_url, Link headers). */
  publicUrl: string
  /** host[:port] of the registry in image names (container_registry_image_prefix, location). */
  registryHost: string
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is calling the API; set by the API plugin's auth hook (anonymous when no token was sent). */
    principal: Principal
  }
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
    /** Token scopes besides `api` (and `read_api` for reads) that suffice for this route, e.g. read_user. */
    scopes?: readonly PatScope[]
    /** A CI job token in the `JOB-TOKEN` header is accepted (the route checks the job's project). */
    jobToken?: boolean
    /**
     * The body is another service's webhook payload: read by nobody, so not refused as undeclared
     * attributes (GitLab's `/projects/:id/ref/:ref/trigger/pipeline?token=`).
     */
    ignoredBody?: boolean
  }
}
