// Transactions that all read and write the same rows at once, on both dialects (PostgreSQL with
// WHARF_TEST_DATABASE=postgres): each must see the others' effects as if they ran one at a time,
// and every one must go through. On PostgreSQL this is the worst case for SERIALIZABLE (each
// aborts the others), which the retries, and then running alone, must absorb.
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { sql } from 'kysely'
import { openTestDb } from '../../test/helpers/database.ts'

test('concurrent read-count-then-insert transactions all commit, each seeing all before it', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-trx-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openTestDb(dir)
  t.after(() => db.destroy())
  await sql`create table hot (v integer not null)`.execute(db)
  const n = 24
  await Promise.all(
    Array.from({ length: n }, () =>
      db.transaction().execute(async (trx) => {
        const { rows } = await sql<{ c: number }>`select count(*) as c from hot`.execute(trx)
        // Another transaction's read lands between this one's read and write.
        await new Promise((r) => setTimeout(r, 5))
        await sql`insert into hot (v) values (${Number(rows[0]!.c)})`.execute(trx)
      }),
    ),
  )
  const seen = (await sql<{ v: number }>`select v from hot order by v`.execute(db)).rows.map((r) => Number(r.v))
  // Serial execution: the k-th transaction counted k rows before it.
  assert.deepEqual(
    seen,
    Array.from({ length: n }, (_, i) => i),
  )
})
