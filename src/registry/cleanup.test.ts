import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { WharfError } from '../core/errors.ts'
import { parseOlderThan, tagsToDelete, type TagAge } from './cleanup.ts'

const NOW = Date.parse('2026-06-30T00:00:00.000Z')
const daysAgo = (n: number) => new Date(NOW - n * 86_400_000).toISOString()
const TAGS: TagAge[] = [
  { name: 'latest', createdAt: daysAgo(100) },
  { name: 'main', createdAt: daysAgo(1) },
  { name: 'dev-1', createdAt: daysAgo(30) },
  { name: 'dev-2', createdAt: daysAgo(20) },
  { name: 'dev-3', createdAt: daysAgo(10) },
  { name: 'dev-4', createdAt: daysAgo(2) },
  { name: 'v1.0.0', createdAt: daysAgo(60) },
  { name: 'v1.1.0', createdAt: daysAgo(5) },
]
const bad = (code: string, field: string) => (e: unknown) => e instanceof WharfError && e.code === code && e.message.includes(field)

describe('tagsToDelete (GitLab bulk delete and cleanup policy rules)', () => {
  it('.* deletes everything but latest', () => {
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: '.*' }, NOW).sort(), [
      'dev-1',
      'dev-2',
      'dev-3',
      'dev-4',
      'main',
      'v1.0.0',
      'v1.1.0',
    ])
  })

  it('matches whole names, and name_regex_keep wins', () => {
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: 'dev' }, NOW), [])
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: 'dev-.*', nameRegexKeep: 'dev-[34]' }, NOW).sort(), ['dev-1', 'dev-2'])
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: '.*', nameRegexKeep: '.*' }, NOW), [])
  })

  it('keep_n keeps the newest candidates by manifest creation, then older_than spares recent ones', () => {
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: 'dev-.*', keepN: 2 }, NOW), ['dev-2', 'dev-1'])
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: '.*', olderThan: '14d' }, NOW).sort(), ['dev-1', 'dev-2', 'v1.0.0'])
    assert.deepEqual(tagsToDelete(TAGS, { nameRegexDelete: '.*', keepN: 5, olderThan: '7d' }, NOW).sort(), ['dev-1', 'v1.0.0'])
  })

  it('refuses patterns that could backtrack forever, or are not RE2, naming the field, and stays fast', () => {
    const long = [{ name: 'a'.repeat(128), createdAt: daysAgo(1) }]
    const t = Date.now()
    assert.deepEqual(tagsToDelete(long, { nameRegexDelete: '(a+)+b' }, NOW), [])
    assert.ok(Date.now() - t < 500)
    assert.throws(() => tagsToDelete(TAGS, { nameRegexDelete: '(a)\\1' }, NOW), bad('BAD_REQUEST', 'name_regex_delete'))
    assert.throws(() => tagsToDelete(TAGS, { nameRegexDelete: '.*', nameRegexKeep: '(' }, NOW), bad('BAD_REQUEST', 'name_regex_keep'))
    assert.throws(() => tagsToDelete(TAGS, { nameRegexDelete: '.*', olderThan: 'soon' }, NOW), bad('BAD_REQUEST', 'older_than'))
  })

  it('reads GitLab’s older_than forms', () => {
    assert.equal(parseOlderThan('1h'), 3600)
    assert.equal(parseOlderThan('7d'), 7 * 86_400)
    assert.equal(parseOlderThan('14 days'), 14 * 86_400)
    assert.equal(parseOlderThan('1month'), 30 * 86_400)
  })
})
