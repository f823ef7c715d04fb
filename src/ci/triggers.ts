import type { Kysely } from 'kysely'
import { newSecret, secretDigest } from '../core/secrets.ts'
import { WharfError } from '../core/errors.ts'
import type { Database } from '../metadata/schema.ts'
import * as q from './queries.ts'

export const TRIGGER_PREFIX = 'glptt-'

/** Pipeline trigger tokens: shown once, stored as digests, each bound to one project. */
export class Triggers {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  async create(projectId: number, ownerId: number | null, description: string) {
    const token = newSecret(TRIGGER_PREFIX)
    const row = await q.insertTrigger(this.db, {
      projectId,
      ownerId,
      description,
      digest: secretDigest(token),
      hint: token.slice(0, TRIGGER_PREFIX.length + 4),
    })
    return { token, row }
  }

  page(projectId: number, page: { limit: number; offset: number }) {
    return q.pageTriggers(this.db, projectId, page)
  }

  async remove(projectId: number, id: number): Promise<void> {
    if (!(await q.deleteTrigger(this.db, projectId, id))) throw new WharfError('NOT_FOUND', 'Trigger Not Found', {})
  }

  /** The trigger a token names, if it belongs to this project. */
  async verify(projectId: number, token: string) {
    const row = await q.findTriggerByDigest(this.db, secretDigest(token))
    if (!row || row.project_id !== projectId) throw new WharfError('NOT_FOUND', 'Trigger token not valid for this project', {})
    return row
  }
}
