import type { Kysely } from 'kysely'
import { nowIso } from './db.ts'
import type { Database } from './schema.ts'

/**
 * The value every node must have for `name`: the one stored by the first node to start, which is
 * `value` when this node is that first one (a conditional insert, so two first starts agree too).
 */
export async function agreedValue(db: Kysely<Database>, name: string, value: string): Promise<string> {
  await db
    .insertInto('node_checks')
    .values({ name, value, created_at: nowIso() })
    .onConflict((oc) => oc.column('name').doNothing())
    .execute()
  const row = await db.selectFrom('node_checks').select('value').where('name', '=', name).executeTakeFirstOrThrow()
  return row.value
}
