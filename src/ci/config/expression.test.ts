import { test } from 'node:test'
import assert from 'node:assert/strict'
import { evaluateExpression, isValidExpression, parseExpression } from './expression.ts'

const vars: Record<string, string> = {
  CI_COMMIT_BRANCH: 'main',
  CI_DEFAULT_BRANCH: 'main',
  CI_COMMIT_TAG: 'v1.2.3',
  CI_PIPELINE_SOURCE: 'push',
  EMPTY: '',
  PATTERN: '/^release-\\d+$/',
  NOT_A_PATTERN: 'release',
  REF: 'release-42',
}
const ev = (src: string): boolean => evaluateExpression(src, (n) => (Object.hasOwn(vars, n) ? vars[n] : undefined))

test('variable presence: defined and non-empty', () => {
  assert.equal(ev('$CI_COMMIT_BRANCH'), true)
  assert.equal(ev('$EMPTY'), false)
  assert.equal(ev('$UNDEFINED'), false)
})

test('equality with strings, null and other variables', () => {
  assert.equal(ev('$CI_COMMIT_BRANCH == "main"'), true)
  assert.equal(ev("$CI_COMMIT_BRANCH == 'main'"), true)
  assert.equal(ev('$CI_COMMIT_BRANCH != "main"'), false)
  assert.equal(ev('$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH'), true)
  assert.equal(ev('$CI_COMMIT_TAG == $CI_DEFAULT_BRANCH'), false)
  assert.equal(ev('$UNDEFINED == null'), true)
  assert.equal(ev('$EMPTY == null'), false)
  assert.equal(ev('$EMPTY == ""'), true)
  assert.equal(ev('$UNDEFINED != null'), false)
  assert.equal(ev('"main" == $CI_COMMIT_BRANCH'), true)
})

test('regex matches, flags, and patterns held in variables', () => {
  assert.equal(ev('$CI_COMMIT_TAG =~ /^v\\d+/'), true)
  assert.equal(ev('$CI_COMMIT_BRANCH =~ /^v\\d+/'), false)
  assert.equal(ev('$CI_COMMIT_BRANCH =~ /MAIN/i'), true)
  assert.equal(ev('$CI_COMMIT_BRANCH !~ /^feature\\//'), true)
  assert.equal(ev('$UNDEFINED =~ /^$/'), true, 'an undefined variable matches as ""')
  assert.equal(ev('$UNDEFINED =~ /x/'), false)
  assert.equal(ev('$REF =~ $PATTERN'), true)
  assert.equal(ev('$CI_COMMIT_BRANCH =~ $PATTERN'), false)
  assert.equal(ev('$REF =~ $NOT_A_PATTERN'), false, 'a value not written as /regex/ never matches')
  assert.equal(ev('$REF =~ $UNDEFINED'), false)
  assert.equal(ev('$REF =~ /release-4\\/?2/'), true, 'escaped slash inside a pattern')
})

test('&& binds tighter than ||, parentheses group', () => {
  assert.equal(ev('$CI_COMMIT_BRANCH == "main" || $UNDEFINED && $EMPTY'), true)
  assert.equal(ev('($CI_COMMIT_BRANCH == "main" || $UNDEFINED) && $EMPTY'), false)
  assert.equal(ev('$UNDEFINED && $EMPTY || $CI_COMMIT_TAG'), true)
  assert.equal(ev('$CI_PIPELINE_SOURCE == "push" && ($CI_COMMIT_TAG =~ /^v\\d+/ || $CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH)'), true)
  assert.equal(ev('(($CI_COMMIT_BRANCH))'), true)
})

test('parse tree shape', () => {
  assert.deepEqual(parseExpression('$A || $B && $C'), {
    kind: 'or',
    left: { kind: 'variable', name: 'A' },
    right: { kind: 'and', left: { kind: 'variable', name: 'B' }, right: { kind: 'variable', name: 'C' } },
  })
})

test('invalid expressions are rejected', () => {
  for (const bad of [
    '',
    '   ',
    '$',
    '${CI_COMMIT_BRANCH} == "main"',
    '$A ==',
    '== "x"',
    '$A = "x"',
    '$A == "x',
    '($A',
    '$A)',
    '$A =~ /[/',
    '$A =~ //',
    '$A =~ /x/g',
    'main',
    '$A $B',
    '$A && ',
    '$A == "a" "b"',
    '$A =~ /x',
  ]) {
    assert.equal(isValidExpression(bad), false, bad)
  }
  for (const good of ['$A', '"x"', 'null', '$A == null', '$A=~/x/i', "$A=='x'&&$B!='y'", '$A =~ /x/m']) {
    assert.equal(isValidExpression(good), true, good)
  }
})
