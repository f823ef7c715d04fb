// The error catalog: every domain code (src/core/errors.ts) has an answer on every protocol edge,
// each edge's table holds sane statuses, and each edge's error handler answers by its table in its
// own wire format (OCI error JSON, problem+json with GitLab's `message`, plain text for git).
import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify'
import { API_ERRORS, apiErrorHandler, problem } from '../../src/api/problem.ts'
import { RUNNER_ERRORS } from '../../src/ci/runner-errors.ts'
import { runnerErrorHandler } from '../../src/ci/runner-routes.ts'
import { ERROR_CODES, WharfError, type ErrorCode } from '../../src/core/errors.ts'
import { GIT_ERRORS, gitErrorHandler } from '../../src/git/routes.ts'
import { OCI_ERRORS } from '../../src/registry/oci-errors.ts'
import { ociErrorHandler } from '../../src/registry/routes.ts'

type Handler = (err: Error, req: FastifyRequest, reply: FastifyReply) => unknown

const EDGES: Array<{ name: string; statuses: Record<string, number>; handler: Handler }> = [
  {
    name: 'registry /v2',
    statuses: Object.fromEntries(Object.entries(OCI_ERRORS).map(([k, v]) => [k, v.status])),
    handler: ociErrorHandler,
  },
  { name: 'REST API', statuses: API_ERRORS, handler: apiErrorHandler },
  { name: 'runner API', statuses: RUNNER_ERRORS, handler: runnerErrorHandler(1024) },
  { name: 'git smart HTTP', statuses: GIT_ERRORS, handler: gitErrorHandler },
]

/** Codes that mean "the server cannot serve this now" and must be retried by clients, never a 4xx. */
const RETRYABLE: readonly ErrorCode[] = ['UNAVAILABLE', 'UPSTREAM_UNAVAILABLE']

async function throwing(handler: Handler): Promise<FastifyInstance> {
  const app = Fastify({ logger: false })
  app.setErrorHandler(handler)
  app.get('/:code', async (req) => {
    const code = (req.params as { code: ErrorCode }).code
    throw new WharfError(code, `boom ${code}`, { retryAfter: 7 })
  })
  await app.ready()
  return app
}

describe('error catalog', () => {
  for (const edge of EDGES) {
    it(`${edge.name}: maps exactly the domain codes, each to a sane status`, () => {
      assert.deepEqual(Object.keys(edge.statuses).sort(), [...ERROR_CODES].sort())
      for (const code of ERROR_CODES) {
        const status = edge.statuses[code]!
        assert.ok(Number.isInteger(status) && status >= 400 && status <= 599, `${code} → ${status}`)
        assert.equal(status === 401, code === 'UNAUTHORIZED', `${code} → ${status}: only UNAUTHORIZED challenges for credentials`)
        if (RETRYABLE.includes(code)) assert.equal(status, 503, `${code} is retried by clients`)
        else assert.ok(status < 500 || status === 501, `${code} → ${status}: a domain error is the request's fault, not a server failure`)
        // Except on /v2, where a manifest naming a missing blob is a bad manifest (spec: 400).
        if ((code.endsWith('_UNKNOWN') && !(edge.name === 'registry /v2' && code === 'MANIFEST_BLOB_UNKNOWN')) || code === 'NOT_FOUND')
          assert.equal(status, 404, code)
      }
    })
  }

  it('the registry answers every code with an OCI wire code and a message', () => {
    for (const code of ERROR_CODES) {
      const e = OCI_ERRORS[code]
      assert.match(e.code, /^[A-Z_]+$/, `${code} wire code`)
      assert.ok(e.message.length > 0, `${code} message`)
    }
  })

  it('every problem+json status has a title', () => {
    for (const status of [...Object.values(API_ERRORS), ...Object.values(RUNNER_ERRORS)])
      assert.notEqual(problem(status, 'x').title, 'Error', String(status))
  })

  for (const edge of EDGES) {
    it(`${edge.name}: the error handler answers every code by its table, in its wire format`, async (t) => {
      const app = await throwing(edge.handler)
      t.after(() => app.close())
      for (const code of ERROR_CODES) {
        const res = await app.inject({ method: 'GET', url: `/${code}` })
        const status = edge.statuses[code]!
        assert.equal(res.statusCode, status, `${edge.name} ${code}`)
        const type = String(res.headers['content-type'])
        if (edge.name === 'registry /v2') {
          assert.match(type, /^application\/json/)
          assert.deepEqual(
            (res.json() as { errors: Array<{ code: string }> }).errors.map((e) => e.code),
            [OCI_ERRORS[code].code],
          )
        } else if (edge.name === 'git smart HTTP') {
          assert.match(type, /^text\/plain/)
          assert.ok(res.body.endsWith('\n') && !res.body.includes('at '), res.body)
        } else {
          assert.match(type, /^application\/json/)
          const body = res.json() as { status: number; code: string; message: string }
          assert.deepEqual([body.status, body.code], [status, code])
          assert.match(body.message, new RegExp(`^${status} `))
        }
        // The registry's challenge names the scope, so its auth layer sets it before throwing.
        if (status === 401 && edge.name !== 'registry /v2') assert.ok(res.headers['www-authenticate'], `${edge.name} ${code} challenges`)
        if (status === 429 || status === 503) assert.equal(res.headers['retry-after'], '7', `${edge.name} ${code} Retry-After`)
      }
    })
  }

  it("runner API: the multipart parser's own size cut-off is the artifacts limit's TOO_LARGE", async (t) => {
    const app = Fastify({ logger: false })
    app.setErrorHandler(runnerErrorHandler(1024))
    app.get('/', async () => {
      throw Object.assign(new Error('request file too large'), { code: 'FST_REQ_FILE_TOO_LARGE', statusCode: 413 })
    })
    t.after(() => app.close())
    const res = await app.inject({ method: 'GET', url: '/' })
    assert.equal(res.statusCode, 413)
    assert.deepEqual(
      [(res.json() as { code: string }).code, (res.json() as { message: string }).message],
      ['TOO_LARGE', '413 artifacts are larger than the 1024-byte limit'],
    )
  })
})
