// Transactions whose reads decide their writes, run concurrently: the invariant each read protects
// holds however they interleave. On SQLite one writer at a time gives that; on PostgreSQL
// (WHARF_TEST_DATABASE=postgres) SERIALIZABLE with retries does, and without it these races let
// both sides through. Each case runs several rounds at once so the interleavings actually happen.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { isWharfError } from '../../src/core/errors.ts'
import { ACCESS_LEVELS } from '../../src/auth/roles.ts'
import { apiHarness, pushSeeded } from './api-harness.ts'

const ROUNDS = 6

/** The codes of the rejected outcomes (anything but a WharfError fails the test) and how many succeeded. */
function outcomes(results: PromiseSettledResult<unknown>[]): { ok: number; codes: string[] } {
  const codes: string[] = []
  for (const r of results) {
    if (r.status === 'fulfilled') continue
    assert.ok(isWharfError(r.reason), `not a WharfError: ${String((r.reason as Error)?.stack ?? r.reason)}`)
    codes.push(r.reason.code)
  }
  return { ok: results.filter((r) => r.status === 'fulfilled').length, codes }
}

test('two owners removing each other at once leave the group one owner (write skew)', async (t) => {
  const h = await apiHarness(t)
  const rounds = await Promise.all(
    Array.from({ length: ROUNDS }, async (_, i) => {
      const a = await h.user(`a${i}`)
      const b = await h.user(`b${i}`)
      const group = await h.services.groups.createGroup(a.user, { path: `g${i}` })
      await h.services.members.addMember(ACCESS_LEVELS.owner, 'namespace', group.id, b.user.id, ACCESS_LEVELS.owner, null)
      return { a: a.user.id, b: b.user.id, group: group.id }
    }),
  )
  await Promise.all(
    rounds.map(async ({ a, b, group }) => {
      const { ok, codes } = outcomes(
        await Promise.allSettled([
          h.services.members.removeMember(ACCESS_LEVELS.owner, a, 'namespace', group, b),
          h.services.members.removeMember(ACCESS_LEVELS.owner, b, 'namespace', group, a),
        ]),
      )
      assert.equal(ok, 1, `group ${group}: exactly one removal goes through`)
      assert.deepEqual(codes, ['FORBIDDEN'])
      const owners = await h.db
        .selectFrom('members')
        .select((eb) => eb.fn.countAll<number>().as('n'))
        .where('source_kind', '=', 'namespace')
        .where('source_id', '=', group)
        .where('access_level', '>=', ACCESS_LEVELS.owner)
        .executeTakeFirstOrThrow()
      assert.equal(Number(owners.n), 1)
    }),
  )
})

test('concurrent sign-ups of one username: one account, the others a clear conflict', async (t) => {
  const h = await apiHarness(t)
  await Promise.all(
    Array.from({ length: ROUNDS }, async (_, i) => {
      // Letter case differs: names are unique regardless of it, which only the check in the transaction
      // enforces. No password: hashing one would spread the transactions apart.
      const names = [`user${i}`, `User${i}`, `USER${i}`]
      const { ok, codes } = outcomes(await Promise.allSettled(names.map((username) => h.services.users.createUser({ username }))))
      assert.equal(ok, 1, `${names[0]}: exactly one account`)
      assert.deepEqual(codes, ['CONFLICT', 'CONFLICT'])
    }),
  )
  const accounts = await h.db.selectFrom('users').select('username').where('username', '!=', 'root').execute()
  assert.equal(accounts.length, ROUNDS)
})

test('concurrent pushes of an immutable tag with different content: exactly one wins', async (t) => {
  const h = await apiHarness(t)
  const root = await h.root()
  const group = (await h.req('POST', '/api/v4/groups', { token: root.token, body: { path: 'team', name: 'team' } })).json() as {
    id: number
  }
  const project = (
    await h.req('POST', '/api/v4/projects', { token: root.token, body: { path: 'app', namespace_id: group.id } })
  ).json() as {
    id: number
  }
  const rule = await h.req('POST', `/api/v4/projects/${project.id}/registry/protection/tag/rules`, {
    token: root.token,
    body: { tag_name_pattern: 'release-.*' },
  })
  assert.equal(rule.statusCode, 201, rule.body)
  await Promise.all(
    Array.from({ length: ROUNDS }, async (_, i) => {
      const pushes = await Promise.all(['x', 'y', 'z'].map((seed) => pushSeeded(h, 'root', 'team/app', `release-${i}`, `${seed}${i}`)))
      const codes = pushes.map((r) => r.statusCode).sort()
      assert.deepEqual(codes, [201, 403, 403], pushes.map((r) => r.body).join('\n'))
    }),
  )
})
