// Job identity tokens (`id_tokens:`): a job receives OIDC ID tokens in masked variables, which a
// relying party verifies the standard way: discovery document → jwks_uri → signature, issuer,
// audience and expiry (jose, as a cloud's STS or Vault would). They stop verifying once the job's
// timeout plus GitLab's 5-minute margin has passed, and never pass as registry tokens.
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose'
import { patchTrace, runnerHarness, PUBLIC_URL, type RunnerHarness } from './runner-harness.ts'

const CI = `deploy:
  timeout: 10 minutes
  variables:
    VAULT_AUD: https://vault.example.com
  script: [aws sts assume-role-with-web-identity]
  id_tokens:
    AWS_TOKEN:
      aud: sts.amazonaws.com
    VAULT_TOKEN:
      aud: [$VAULT_AUD, "\${CI_PROJECT_PATH}-reader"]
`

interface Discovery {
  issuer: string
  jwks_uri: string
  id_token_signing_alg_values_supported: string[]
  response_types_supported: string[]
  subject_types_supported: string[]
  scopes_supported: string[]
  claims_supported: string[]
}

/** The relying party's side: discovery document and JWKS, fetched over HTTP from the issuer. */
async function discover(h: RunnerHarness, issuer: string): Promise<{ discovery: Discovery; jwks: JSONWebKeySet }> {
  const doc = await h.req('GET', `${new URL(issuer).pathname.replace(/\/$/, '')}/.well-known/openid-configuration`)
  assert.equal(doc.statusCode, 200, doc.body)
  assert.match(String(doc.headers['cache-control']), /max-age=\d+/)
  const discovery = doc.json() as Discovery
  const keys = await h.req('GET', new URL(discovery.jwks_uri).pathname)
  assert.equal(keys.statusCode, 200, keys.body)
  assert.match(String(keys.headers['cache-control']), /max-age=\d+/)
  return { discovery, jwks: keys.json() as JSONWebKeySet }
}

describe('id_tokens', () => {
  it('gives the job ID tokens that verify against the discovery document, with GitLab claims, until the timeout plus 5 minutes', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app', { visibility: 'internal' })
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const sha = await h.commit(project, { '.gitlab-ci.yml': CI })
    const pipeline = await h.pipeline(project, sha, root.id)
    const before = Math.floor(Date.now() / 1000)
    const job = await h.take(runner.token)

    const aws = job.variables.find((v) => v.key === 'AWS_TOKEN')
    assert.ok(aws, 'AWS_TOKEN is a job variable')
    assert.equal(aws.masked, true)
    assert.equal(aws.public, false)

    const { discovery, jwks } = await discover(h, PUBLIC_URL)
    assert.equal(discovery.issuer, PUBLIC_URL)
    assert.equal(discovery.jwks_uri, `${PUBLIC_URL}/oauth/discovery/keys`)
    assert.deepEqual(discovery.response_types_supported, ['id_token'])
    assert.deepEqual(discovery.subject_types_supported, ['public'])
    assert.deepEqual(discovery.scopes_supported, ['openid'])
    assert.ok(discovery.claims_supported.includes('project_path') && discovery.claims_supported.includes('ref_protected'))
    assert.ok(
      jwks.keys.every((k) => k.d === undefined),
      'the JWKS holds public keys only',
    )
    assert.ok(jwks.keys.some((k) => k.kid === decodeProtectedHeader(aws.value).kid))

    const keySet = createLocalJWKSet(jwks)
    const verifyOptions = {
      issuer: discovery.issuer,
      audience: 'sts.amazonaws.com',
      algorithms: discovery.id_token_signing_alg_values_supported,
    }
    const { payload } = await jwtVerify(aws.value, keySet, verifyOptions)
    assert.equal(payload.sub, 'project_path:team/app:ref_type:branch:ref:main')
    assert.equal(payload.aud, 'sts.amazonaws.com')
    assert.equal(payload.iss, PUBLIC_URL)
    assert.ok(typeof payload.jti === 'string' && payload.jti.length > 0)
    const iat = payload.iat!
    assert.ok(iat >= before && iat <= before + 60)
    assert.equal(payload.nbf, iat - 5)
    assert.equal(payload.exp, iat + 600 + 300, "the job's timeout (10 minutes) plus 5 minutes")
    assert.deepEqual(
      {
        namespace_id: payload.namespace_id,
        namespace_path: payload.namespace_path,
        project_id: payload.project_id,
        project_path: payload.project_path,
        user_id: payload.user_id,
        user_login: payload.user_login,
        user_email: payload.user_email,
        pipeline_id: payload.pipeline_id,
        pipeline_source: payload.pipeline_source,
        job_id: payload.job_id,
        ref: payload.ref,
        ref_type: payload.ref_type,
        ref_path: payload.ref_path,
        ref_protected: payload.ref_protected,
        runner_id: payload.runner_id,
        runner_environment: payload.runner_environment,
        sha: payload.sha,
        project_visibility: payload.project_visibility,
        ci_config_ref_uri: payload.ci_config_ref_uri,
        ci_config_sha: payload.ci_config_sha,
      },
      {
        namespace_id: String(project.namespace_id),
        namespace_path: 'team',
        project_id: String(project.id),
        project_path: 'team/app',
        user_id: String(root.id),
        user_login: 'root',
        user_email: root.email ?? '',
        pipeline_id: String(pipeline.id),
        pipeline_source: 'push',
        job_id: String(job.id),
        ref: 'main',
        ref_type: 'branch',
        ref_path: 'refs/heads/main',
        // main is the default branch: protected.
        ref_protected: 'true',
        runner_id: runner.id,
        runner_environment: 'self-hosted',
        sha,
        project_visibility: 'internal',
        ci_config_ref_uri: 'wharf.test:5000/team/app//.gitlab-ci.yml@refs/heads/main',
        ci_config_sha: sha,
      },
    )

    // Another audience does not accept it.
    await assert.rejects(jwtVerify(aws.value, keySet, { ...verifyOptions, audience: 'https://vault.example.com' }), {
      code: 'ERR_JWT_CLAIM_VALIDATION_FAILED',
    })
    // Still valid a second before it expires; refused once the job's timeout and the margin have passed.
    await jwtVerify(aws.value, keySet, { ...verifyOptions, currentDate: new Date((payload.exp! - 1) * 1000) })
    await assert.rejects(jwtVerify(aws.value, keySet, { ...verifyOptions, currentDate: new Date((payload.exp! + 1) * 1000) }), {
      code: 'ERR_JWT_EXPIRED',
    })

    // Several audiences, variables expanded as GitLab does (the job's YAML and predefined ones).
    const vault = job.variables.find((v) => v.key === 'VAULT_TOKEN')
    assert.ok(vault)
    const { payload: vaultClaims } = await jwtVerify(vault.value, keySet, { ...verifyOptions, audience: 'https://vault.example.com' })
    assert.deepEqual(vaultClaims.aud, ['https://vault.example.com', 'team/app-reader'])
    assert.notEqual(vaultClaims.jti, payload.jti)

    // Masked in the job's log, as any masked variable.
    const echoed = await patchTrace(h, job, 0, `$ echo $AWS_TOKEN\n${aws.value}\n`)
    assert.equal(echoed.statusCode, 202, echoed.body)
    const log = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job.id}/trace`, { token })
    assert.equal(log.statusCode, 200)
    assert.ok(!log.body.includes(aws.value) && log.body.includes('[MASKED]'), log.body)

    // Same issuer and keys as registry tokens, but never accepted as one.
    await assert.rejects(h.services.auth.tokens.verify(aws.value), { code: 'UNAUTHORIZED' })
    const pull = await h.req('GET', '/v2/team/app/tags/list', { headers: { authorization: `Bearer ${aws.value}` } })
    assert.equal(pull.statusCode, 401)
  })

  it('fails the job, saying why, when an aud expands to the registry audience', async (t) => {
    const h = await runnerHarness(t)
    const { user: root, token } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const runner = await h.runner(token, { runner_type: 'instance_type' })
    const sha = await h.commit(project, {
      '.gitlab-ci.yml': 'sneaky:\n  variables:\n    AUD: container_registry\n  script: [x]\n  id_tokens:\n    T:\n      aud: $AUD\n',
    })
    const pipeline = await h.pipeline(project, sha, root.id)
    const res = await h.request(runner.token)
    assert.equal(res.statusCode, 400, res.body)
    const [job] = await h.ci.pipelines.jobs(pipeline.id)
    assert.equal(job?.status, 'failed')
    const log = await h.req('GET', `/api/v4/projects/${project.id}/jobs/${job!.id}/trace`, { token })
    assert.match(log.body, /id_tokens:T: an ID token's aud must be non-empty and must not be "container_registry"/)
  })

  it('refuses the registry audience in the CI config itself, as a pipeline error', async (t) => {
    const h = await runnerHarness(t)
    const { user: root } = await h.root()
    const project = await h.project(root, 'team', 'app')
    const sha = await h.commit(project, { '.gitlab-ci.yml': 'j:\n  script: [x]\n  id_tokens:\n    T:\n      aud: container_registry\n' })
    const pipeline = await h.pipeline(project, sha, root.id)
    assert.equal(pipeline.status, 'failed')
    assert.match(String(pipeline.yaml_errors), /jobs:j:id_tokens:T aud must not be container_registry/)
  })
})
