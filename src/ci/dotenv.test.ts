import assert from 'node:assert/strict'
import { test } from 'node:test'
import { DOTENV_LIMITS, parseDotenv } from './dotenv.ts'

test('parseDotenv: KEY=VALUE lines trimmed, later lines win, quotes kept, = in values', () => {
  assert.deepEqual(parseDotenv('IMAGE_TAG=1.2.3\n URL = https://x.example/?a=b \nIMAGE_TAG="v2"\r\nEMPTY=\n'), [
    { key: 'URL', value: 'https://x.example/?a=b' },
    { key: 'IMAGE_TAG', value: '"v2"' },
    { key: 'EMPTY', value: '' },
  ])
  assert.deepEqual(parseDotenv(''), [])
})

test('parseDotenv refuses what GitLab refuses, in its words', () => {
  assert.throws(() => parseDotenv('A=1\n\nB=2\n'), /^DotenvError: Invalid Format$/)
  assert.throws(() => parseDotenv('# comment\n'), /^DotenvError: Invalid Format$/)
  assert.throws(() => parseDotenv('MY-VAR=1\n'), /^DotenvError: Invalid Key: MY-VAR$/)
  assert.throws(() => parseDotenv('=1\n'), /Invalid Key: \(empty\)/)
  const many = Array.from({ length: DOTENV_LIMITS.variables + 1 }, (_, i) => `V${i}=x`).join('\n')
  assert.throws(() => parseDotenv(many), /Dotenv files cannot have more than 20 variables/)
  assert.throws(() => parseDotenv(`A=${'x'.repeat(DOTENV_LIMITS.bytes)}`), /Dotenv Artifact Too Big. Maximum Allowable Size: 5 KB/)
})
