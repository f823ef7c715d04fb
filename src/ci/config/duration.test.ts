import { test } from 'node:test'
import assert from 'node:assert/strict'
import { parseDuration } from './duration.ts'

test('durations as GitLab (ChronicDuration) reads them', () => {
  const cases: Array<[string, number | undefined]> = [
    ['3600', 3600],
    ['42 seconds', 42],
    ['30 mins', 1800],
    ['30m', 1800],
    ['1h 30m', 5400],
    ['1h30m', 5400],
    ['1 hour and 30 minutes', 5400],
    ['2 hours, 5 minutes', 7500],
    ['1 day', 86_400],
    ['1 week', 604_800],
    ['2 weeks', 1_209_600],
    ['1 month', 2_592_000],
    ['1 year', 31_557_600],
    ['1.5 hours', 5400],
    ['1:30', 90],
    ['1:30:00', 5400],
    ['  3 Days ', 259_200],
    ['', undefined],
    ['soon', undefined],
    ['1 fortnight', undefined],
    ['hours', undefined],
    ['constructor', undefined],
  ]
  for (const [text, seconds] of cases) assert.equal(parseDuration(text), seconds, text)
})
