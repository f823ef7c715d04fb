import type { TypedApp } from '../core/typed-app.ts'
import type { RegistryTokens } from './registry-tokens.ts'

export interface OidcRouteOptions {
  tokens: RegistryTokens
}

/** GitLab's path for the JWKS its discovery document names. */
export const JWKS_PATH = '/oauth/discovery/keys'

/** The claims a job's ID token carries (GitLab's, as job-payload.ts signs them). */
export const ID_TOKEN_CLAIMS = [
  'iss',
  'sub',
  'aud',
  'exp',
  'nbf',
  'iat',
  'jti',
  'namespace_id',
  'namespace_path',
  'project_id',
  'project_path',
  'user_id',
  'user_login',
  'user_email',
  'pipeline_id',
  'pipeline_source',
  'job_id',
  'ref',
  'ref_type',
  'ref_path',
  'ref_protected',
  'runner_id',
  'runner_environment',
  'sha',
  'project_visibility',
  'ci_config_ref_uri',
  'ci_config_sha',
] as const

/**
 * Relying parties (cloud STS, Vault) fetch these often; a rotation adds a key before it signs
 * anything, and jose and the clouds refetch the JWKS on an unknown `kid`, so minutes of caching is safe.
 */
const CACHE_CONTROL = 'public, max-age=300'

/**
 * Wharf as an OIDC issuer for CI jobs' ID tokens (`id_tokens:`): the discovery document and the
 * JWKS, unauthenticated, as GitLab serves them. Only ID tokens are issued (no authorization
 * endpoint: a job receives its tokens in its variables).
 */
export async function oidcRoutes(app: TypedApp, opts: OidcRouteOptions): Promise<void> {
  const { tokens } = opts
  const discovery = JSON.stringify({
    issuer: tokens.oidcIssuer,
    jwks_uri: `${tokens.oidcIssuer}${JWKS_PATH}`,
    response_types_supported: ['id_token'],
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [tokens.algorithm],
    scopes_supported: ['openid'],
    claims_supported: ID_TOKEN_CLAIMS,
  })

  app.get('/.well-known/openid-configuration', async (_req, reply) =>
    reply.header('Cache-Control', CACHE_CONTROL).type('application/json; charset=utf-8').send(discovery),
  )
  // Built per request from the loaded keys, so a rotation or retirement shows at once.
  app.get(JWKS_PATH, async (_req, reply) =>
    reply
      .header('Cache-Control', CACHE_CONTROL)
      .type('application/json; charset=utf-8')
      .send(await tokens.jwks()),
  )
}
