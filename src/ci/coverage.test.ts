import assert from 'node:assert/strict'
import { test } from 'node:test'
import { extractCoverage } from './coverage.ts'

test('extractCoverage: the last matching line, its last match, the first number in it', () => {
  const log = 'Coverage: 10.5%\nrunning\nLines: 82.31% (120/146)\r\nTotal coverage: 75%  then 80%\ndone\n'
  assert.equal(extractCoverage(log, '/Lines: \\d+\\.\\d+%/'), 82.31)
  assert.equal(extractCoverage(log, '/\\d+%/'), 80)
  assert.equal(extractCoverage(log, '/Coverage: (\\d+\\.\\d+)%/'), 10.5)
  assert.equal(extractCoverage(log, '/total coverage: \\d+%/i'), 75)
  assert.equal(extractCoverage(log, '/nothing here/'), null)
  assert.equal(extractCoverage(log, '/done/'), null, 'a match without a number goes on to earlier lines, then gives up')
  assert.equal(extractCoverage(log, 'not a pattern'), null)
})
