import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseScopes } from './registry-auth.ts'

describe('parseScopes', () => {
  it('parses repository scopes with their actions', () => {
    assert.deepEqual(parseScopes('repository:ns/p:pull,push'), [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }])
    assert.deepEqual(parseScopes('repository:ns/p/api:*'), [{ type: 'repository', name: 'ns/p/api', actions: ['*'] }])
    assert.deepEqual(parseScopes('registry:catalog:*'), [{ type: 'registry', name: 'catalog', actions: ['*'] }])
  })

  it('takes several parameters and space-separated scopes in one parameter', () => {
    const want = [
      { type: 'repository', name: 'a/b', actions: ['pull'] },
      { type: 'repository', name: 'c/d', actions: ['push'] },
      { type: 'repository', name: 'e/f', actions: ['delete'] },
    ]
    assert.deepEqual(parseScopes(['repository:a/b:pull repository:c/d:push', 'repository:e/f:delete']), want)
    assert.deepEqual(parseScopes('  repository:a/b:pull   repository:c/d:push repository:e/f:delete '), want)
  })

  it('splits on the first and last colon: a name may hold a port', () => {
    assert.deepEqual(parseScopes('repository:host:5000/ns/p:pull'), [{ type: 'repository', name: 'host:5000/ns/p', actions: ['pull'] }])
  })

  it('drops a resource class: repository(plugin):name', () => {
    assert.deepEqual(parseScopes('repository(plugin):ns/p:pull'), [{ type: 'repository', name: 'ns/p', actions: ['pull'] }])
  })

  it('ignores malformed scopes and empty actions', () => {
    assert.deepEqual(parseScopes(undefined), [])
    assert.deepEqual(parseScopes(''), [])
    assert.deepEqual(parseScopes([]), [])
    for (const s of ['nonsense', 'repository', 'repository:ns/p', ':ns/p:pull', 'repository:']) assert.deepEqual(parseScopes(s), [], s)
    assert.deepEqual(parseScopes('repository:ns/p:'), [{ type: 'repository', name: 'ns/p', actions: [] }])
    assert.deepEqual(parseScopes('repository:ns/p:pull,,push,'), [{ type: 'repository', name: 'ns/p', actions: ['pull', 'push'] }])
  })

  it('keeps at most 32 scopes per request', () => {
    const many = Array.from({ length: 100 }, (_, i) => `repository:ns/p${i}:pull`)
    const got = parseScopes(many)
    assert.equal(got.length, 32)
    assert.equal(got[31]!.name, 'ns/p31')
  })
})
