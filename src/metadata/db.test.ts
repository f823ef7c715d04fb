// Two processes on one database (the server and `wharf gc`): transactions that read and then write
// must wait for the other's writes, never fail with "database is locked".
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { sql } from 'kysely'
import { openDb } from './db.ts'

test('read-then-write transactions survive another process writing the same database', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-db-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const path = join(dir, 'wharf.db')
  const db = openDb({ kind: 'sqlite', path })
  t.after(() => db.destroy())
  await sql`create table n (v integer)`.execute(db)
  // The other process: short write transactions in a loop, as the collector's are.
  const writer = spawn(
    process.execPath,
    [
      '-e',
      `const { DatabaseSync } = require('node:sqlite')
       const db = new DatabaseSync(${JSON.stringify(path)})
       db.exec('PRAGMA busy_timeout = 5000')
       const end = Date.now() + 3000
       while (Date.now() < end) { db.exec('begin immediate'); db.exec('insert into n values (-1)'); db.exec('commit') }`,
    ],
    { stdio: 'inherit' },
  )
  let running = true
  const exited = new Promise((r) =>
    writer.once('exit', (code) => {
      running = false
      r(code)
    }),
  )
  const theirs = async () => Number((await sql<{ c: number }>`select count(*) as c from n where v = -1`.execute(db)).rows[0]!.c)
  // Once the other process is writing: transactions until 30 are done or it stops (the old deferred ones failed within a few).
  while (running && (await theirs()) === 0) await new Promise((r) => setTimeout(r, 10))
  let done = 0
  while (running && done < 30) {
    await db.transaction().execute(async (trx) => {
      const { rows } = await sql<{ c: number }>`select count(*) as c from n`.execute(trx)
      // Let the other process commit between this transaction's read and its write.
      await new Promise((r) => setTimeout(r, 2))
      await sql`insert into n values (${Number(rows[0]!.c)})`.execute(trx)
    })
    done++
  }
  writer.kill()
  await exited
  assert.ok(done > 0, 'transactions ran while the other process wrote')
})
