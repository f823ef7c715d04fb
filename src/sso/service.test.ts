import assert from 'node:assert/strict'
import { it } from 'node:test'
import { safeReturnTo, usernameFrom } from './service.ts'

it('derives a username from a claim: an email’s local part, invalid characters dashed, never empty', () => {
  assert.equal(usernameFrom('alice'), 'alice')
  assert.equal(usernameFrom('Alice.Liddell@corp.example'), 'Alice.Liddell')
  assert.equal(usernameFrom('Ünïcode Name'), 'n-code-Name')
  assert.equal(usernameFrom('--a..b__c--'), 'a-b-c')
  assert.equal(usernameFrom('@corp.example'), 'user')
  assert.equal(usernameFrom(undefined), 'user')
  assert.equal(usernameFrom('x'.repeat(80)).length, 60)
})

it('returns only to paths inside Wharf', () => {
  assert.equal(safeReturnTo('/-/groups/team'), '/-/groups/team')
  for (const bad of ['//evil.example/', '/\\evil.example', 'https://evil.example/', '', undefined, 42]) assert.equal(safeReturnTo(bad), '/')
})
