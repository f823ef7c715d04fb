import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { checkTreePath, classifyRef, isRefName, parseRefUpdates, ZERO_SHA } from './refs.ts'

const A = 'a'.repeat(40)
const B = 'b'.repeat(40)

describe('parseRefUpdates (post-receive input)', () => {
  it('classifies creations, moves and deletions of branches and tags', () => {
    const text = [
      `${ZERO_SHA} ${A} refs/heads/feature/x`,
      `${A} ${B} refs/heads/main`,
      `${B} ${ZERO_SHA} refs/heads/old`,
      `${ZERO_SHA} ${A} refs/tags/v1.0`,
      `${A} ${B} refs/notes/commits`,
      '',
    ].join('\n')
    const { updates, rejected } = parseRefUpdates(text)
    assert.deepEqual(rejected, [])
    assert.deepEqual(updates, [
      { ref: 'refs/heads/feature/x', name: 'feature/x', type: 'branch', oldSha: ZERO_SHA, newSha: A, action: 'create' },
      { ref: 'refs/heads/main', name: 'main', type: 'branch', oldSha: A, newSha: B, action: 'update' },
      { ref: 'refs/heads/old', name: 'old', type: 'branch', oldSha: B, newSha: ZERO_SHA, action: 'delete' },
      { ref: 'refs/tags/v1.0', name: 'v1.0', type: 'tag', oldSha: ZERO_SHA, newSha: A, action: 'create' },
      { ref: 'refs/notes/commits', name: 'refs/notes/commits', type: 'other', oldSha: A, newSha: B, action: 'update' },
    ])
  })

  it('accepts CRLF and SHA-256 names', () => {
    const c = 'c'.repeat(64)
    const { updates } = parseRefUpdates(`${'0'.repeat(64)} ${c} refs/heads/main\r\n`)
    assert.equal(updates.length, 1)
    assert.equal(updates[0]!.newSha, c)
    assert.equal(updates[0]!.action, 'create')
  })

  it('rejects malformed lines instead of guessing', () => {
    const bad = [
      `${A} ${B}`,
      `${A} ${B} main`,
      `${A.toUpperCase()} ${B} refs/heads/x`,
      `${A} ${B} refs/heads/a..b`,
      `${ZERO_SHA} ${ZERO_SHA} refs/heads/x`,
      'garbage',
      `${A} ${B} refs/heads/x y`,
    ]
    const { updates, rejected } = parseRefUpdates(bad.join('\n'))
    assert.deepEqual(updates, [])
    assert.equal(rejected.length, bad.length)
  })
})

describe('ref names and tree paths', () => {
  it('follows git check-ref-format', () => {
    for (const ok of ['main', 'feature/x-1', 'refs/heads/main', 'v1.0.0', 'a_b', 'ü', 'x@y']) assert.equal(isRefName(ok), true, ok)
    for (const bad of [
      '',
      '-x',
      '/x',
      'x/',
      'x.',
      'a..b',
      'a b',
      'a~1',
      'a^',
      'a:b',
      'a?',
      'a*',
      'a[',
      'a\\b',
      'a@{1}',
      '@',
      'a//b',
      '.hidden',
      'x/.y',
      'x.lock',
      'a/b.lock/c',
      'tab\t',
      'nl\n',
      'del\x7f',
    ])
      assert.equal(isRefName(bad), false, JSON.stringify(bad))
  })

  it('splits refs into kind and short name', () => {
    assert.deepEqual(classifyRef('refs/heads/a/b'), { type: 'branch', name: 'a/b' })
    assert.deepEqual(classifyRef('refs/tags/v1'), { type: 'tag', name: 'v1' })
    assert.deepEqual(classifyRef('refs/merge-requests/1/head'), { type: 'other', name: 'refs/merge-requests/1/head' })
  })

  it('accepts only relative, normalised tree paths', () => {
    for (const ok of ['.gitlab-ci.yml', 'ci/a.yml', 'a b/c', '.x/y']) assert.equal(checkTreePath(ok), ok)
    for (const bad of ['', '/abs', 'a//b', 'a/', './a', 'a/../b', '..', 'a\nb', 'a\0b'])
      assert.throws(() => checkTreePath(bad), { code: 'BAD_REQUEST' }, JSON.stringify(bad))
  })
})
