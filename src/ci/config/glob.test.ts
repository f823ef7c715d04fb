import { test } from 'node:test'
import assert from 'node:assert/strict'
import { anyGlobMatches, matchGlob } from './glob.ts'

// Expectations follow Ruby's File.fnmatch?(pattern, path, FNM_PATHNAME | FNM_DOTMATCH | FNM_EXTGLOB).
const cases: Array<[string, string, boolean]> = [
  ['Dockerfile', 'Dockerfile', true],
  ['Dockerfile', 'app/Dockerfile', false],
  ['*.md', 'README.md', true],
  ['*.md', 'docs/README.md', false],
  ['*.md', '.hidden.md', true],
  ['docs/*', 'docs/a.md', true],
  ['docs/*', 'docs/sub/a.md', false],
  ['docs/**/*', 'docs/a.md', true],
  ['docs/**/*', 'docs/sub/deeper/a.md', true],
  ['docs/**/*', 'other/a.md', false],
  ['**/*.js', 'a.js', true],
  ['**/*.js', 'src/lib/a.js', true],
  ['**/*.js', 'src/lib/a.ts', false],
  ['docs/**', 'docs/a', true],
  ['docs/**', 'docs/a/b', false],
  ['src/**/test/*.ts', 'src/test/a.ts', true],
  ['src/**/test/*.ts', 'src/x/y/test/a.ts', true],
  ['file?.txt', 'file1.txt', true],
  ['file?.txt', 'file10.txt', false],
  ['file?.txt', 'file/.txt', false],
  ['*.{js,ts}', 'index.ts', true],
  ['*.{js,ts}', 'index.rb', false],
  ['{src,lib}/**/*.{js,ts}', 'lib/x/y.js', true],
  ['{a,b{c,d}}.txt', 'bd.txt', true],
  ['{a,b{c,d}}.txt', 'b.txt', false],
  ['[abc].txt', 'b.txt', true],
  ['[!abc].txt', 'b.txt', false],
  ['[!abc].txt', 'x.txt', true],
  ['[a-c]*', 'charts/x', false],
  ['a\\*b', 'a*b', true],
  ['a\\*b', 'axb', false],
  ['.gitlab-ci.yml', '.gitlab-ci.yml', true],
  ['*', '.gitlab-ci.yml', true],
  ['app.(js)', 'app.(js)', true],
  ['{unbalanced', '{unbalanced', true],
]

test('glob matching follows File.fnmatch with PATHNAME, DOTMATCH and EXTGLOB', () => {
  for (const [pattern, path, expected] of cases) {
    assert.equal(matchGlob(pattern, path), expected, `${pattern} vs ${path}`)
  }
})

test('anyGlobMatches', () => {
  assert.equal(anyGlobMatches(['docs/**/*', '*.md'], ['src/a.ts', 'README.md']), true)
  assert.equal(anyGlobMatches(['docs/**/*'], ['src/a.ts']), false)
  assert.equal(anyGlobMatches([], ['src/a.ts']), false)
  assert.equal(anyGlobMatches(['*'], []), false)
})
