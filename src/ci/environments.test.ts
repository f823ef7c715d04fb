import assert from 'node:assert/strict'
import { test } from 'node:test'
import { environmentSlug, guessTier } from './environments.ts'

test("environment slugs follow GitLab's rules: DNS-safe, at most 24 characters, a suffix when the name changed", () => {
  assert.equal(environmentSlug('production'), 'production')
  assert.equal(environmentSlug('staging-2'), 'staging-2')
  const review = environmentSlug('review/feature')
  assert.match(review, /^review-feature-[a-z0-9]{6}$/)
  assert.equal(environmentSlug('review/feature'), review, 'the same name, the same slug')
  assert.notEqual(environmentSlug('review/feature-'), review)
  assert.match(environmentSlug('1st env'), /^env-1st-env-[a-z0-9]{6}$/)
  const long = environmentSlug('review/a-very-long-branch-name-indeed')
  assert.ok(long.length <= 24, long)
  assert.match(long, /^review-a-very-lon-[a-z0-9]{6}$/)
  assert.match(environmentSlug('Prod'), /^prod-[a-z0-9]{6}$/)
})

test('deployment tiers are guessed from the name as GitLab does', () => {
  assert.deepEqual(['production', 'prod-eu', 'staging', 'pre-prod', 'qa', 'test', 'review/main', 'dev', 'sandbox'].map(guessTier), [
    'production',
    'production',
    'staging',
    'staging',
    'testing',
    'testing',
    'development',
    'development',
    'other',
  ])
})
