import { test } from 'node:test'
import assert from 'node:assert/strict'
import { expandAllVariables, expandVariables, referencedVariables } from './variables.ts'

const vars = { CI_REGISTRY_IMAGE: 'wharf.example.com/group/app', TAG: 'v1', EMPTY: '' }

test('expands $VAR and ${VAR}, unknown ones to empty', () => {
  assert.equal(expandVariables('$CI_REGISTRY_IMAGE/builder:latest', vars), 'wharf.example.com/group/app/builder:latest')
  assert.equal(expandVariables('${CI_REGISTRY_IMAGE}:${TAG}', vars), 'wharf.example.com/group/app:v1')
  assert.equal(expandVariables('a${TAG}b$TAG', vars), 'av1bv1')
  assert.equal(expandVariables('x$UNKNOWN-y', vars), 'x-y')
  assert.equal(expandVariables('x$EMPTY-y', vars), 'x-y')
  assert.equal(expandVariables('no variables', vars), 'no variables')
  assert.equal(expandVariables('$TAGS', vars), '', 'names are matched whole')
})

test('$$ escapes a dollar; a lone $ stays', () => {
  assert.equal(expandVariables('price: $$TAG', vars), 'price: $TAG')
  assert.equal(expandVariables('100$', vars), '100$')
  assert.equal(expandVariables('$ {TAG}', vars), '$ {TAG}')
})

test('keepUnknown leaves unresolved references and escapes for a later expansion', () => {
  assert.equal(expandVariables('$CI_REGISTRY_IMAGE:$CI_JOB_ID', vars, { keepUnknown: true }), 'wharf.example.com/group/app:$CI_JOB_ID')
  assert.equal(expandVariables('${CI_JOB_ID}$$', vars, { keepUnknown: true }), '${CI_JOB_ID}$$')
})

test('a lookup function works like a map', () => {
  assert.equal(
    expandVariables('$A$B', (n) => (n === 'A' ? '1' : undefined)),
    '1',
  )
})

test('referencedVariables', () => {
  assert.deepEqual(referencedVariables('$A ${B} $$C $D_1'), ['A', 'B', 'D_1'])
})

test('expandAllVariables resolves references between variables in dependency order', () => {
  const out = expandAllVariables(
    {
      IMAGE: { value: '$REGISTRY/app:$VERSION', expand: true },
      REGISTRY: { value: '$CI_REGISTRY_IMAGE', expand: true },
      VERSION: { value: '${TAG}-$CI_JOB_ID', expand: true },
      RAW: { value: '$IMAGE', expand: false },
      LOOP_A: { value: 'a$LOOP_B', expand: true },
      LOOP_B: { value: 'b$LOOP_A', expand: true },
    },
    vars,
  )
  assert.equal(out.IMAGE, 'wharf.example.com/group/app/app:v1-$CI_JOB_ID')
  assert.equal(out.REGISTRY, 'wharf.example.com/group/app')
  assert.equal(out.RAW, '$IMAGE')
  assert.match(out.LOOP_A ?? '', /^ab?a?\$LOOP_[AB]$/)
})

test('a variable named __proto__ is an ordinary key', () => {
  const out = expandAllVariables({ ['__proto__']: { value: 'x', expand: true } })
  assert.equal(Object.getPrototypeOf(out), Object.prototype)
  assert.equal(Object.hasOwn(out, '__proto__'), true)
})
