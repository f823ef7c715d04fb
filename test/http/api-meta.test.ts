// GitLab's instance endpoints GET /version and /metadata: Wharf's version, for any signed-in caller.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import pkg from '../../package.json' with { type: 'json' }
import { apiHarness, assertProblem } from './api-harness.ts'

test('GET /version and /metadata answer the server version to a token holder, 401 without one', async (t) => {
  const h = await apiHarness(t)
  const { token } = await h.user('reader', { scopes: ['read_api'] })
  for (const path of ['/api/v4/version', '/api/v4/metadata']) {
    assertProblem(await h.req('GET', path), 401)
    const res = await h.req('GET', path, { token })
    assert.equal(res.statusCode, 200, res.body)
    assert.equal(res.headers['content-type'], 'application/json')
    assert.deepEqual([(res.json() as { version: string }).version, (res.json() as { revision: string }).revision], [pkg.version, 'wharf'])
  }
  const meta = (await h.req('GET', '/api/v4/metadata', { token })).json() as { kas: { enabled: boolean }; enterprise: boolean }
  assert.deepEqual([meta.kas.enabled, meta.enterprise], [false, false])
})
