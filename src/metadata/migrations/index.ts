import { sql, type Kysely, type Migration, type MigrationProvider } from 'kysely'
import type { MigrationContext } from './context.ts'
import * as m0001 from './0001-registry.ts'
import * as m0002 from './0002-accounts.ts'
import * as m0003 from './0003-oauth-tokens.ts'
import * as m0004 from './0004-ci.ts'
import * as m0005 from './0005-runners.ts'
import * as m0006 from './0006-sessions.ts'
import * as m0007 from './0007-push-events.ts'
import * as m0008 from './0008-dependency-proxy.ts'
import * as m0009 from './0009-webhooks.ts'
import * as m0010 from './0010-registry-gc.ts'
import * as m0011 from './0011-protected-refs.ts'
import * as m0012 from './0012-commit-statuses.ts'
import * as m0013 from './0013-job-erase-runner-projects.ts'
import * as m0014 from './0014-registry-tag-protection.ts'
import * as m0015 from './0015-pipeline-schedules.ts'
import * as m0016 from './0016-registry-repository-protection.ts'
import * as m0017 from './0017-device-logins.ts'
import * as m0018 from './0018-ci-keywords.ts'
import * as m0019 from './0019-identities.ts'
import * as m0020 from './0020-coordination.ts'
import * as m0021 from './0021-upload-writers.ts'
import * as m0022 from './0022-ci-several-nodes.ts'
import * as m0023 from './0023-environments-releases.ts'
import * as m0024 from './0024-ci-coverage-auto-cancel.ts'

export type { MigrationContext } from './context.ts'

export type DialectKind = 'sqlite' | 'postgres'

function context(kind: DialectKind): MigrationContext {
  return kind === 'sqlite'
    ? { serial: 'integer', primaryId: (c) => c.primaryKey().autoIncrement(), bytes: 'blob', binaryText: sql`text collate binary` }
    : { serial: 'serial', primaryId: (c) => c.primaryKey(), bytes: 'bytea', binaryText: sql`text collate "C"` }
}

const MIGRATIONS: Record<string, { up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> }> = {
  '0001-registry': m0001,
  '0002-accounts': m0002,
  '0003-oauth-tokens': m0003,
  '0004-ci': m0004,
  '0005-runners': m0005,
  '0006-sessions': m0006,
  '0007-push-events': m0007,
  '0008-dependency-proxy': m0008,
  '0009-webhooks': m0009,
  '0010-registry-gc': m0010,
  '0011-protected-refs': m0011,
  '0012-commit-statuses': m0012,
  '0013-job-erase-runner-projects': m0013,
  '0014-registry-tag-protection': m0014,
  '0015-pipeline-schedules': m0015,
  '0016-registry-repository-protection': m0016,
  '0017-device-logins': m0017,
  '0018-ci-keywords': m0018,
  '0019-identities': m0019,
  '0020-coordination': m0020,
  '0021-upload-writers': m0021,
  '0022-ci-several-nodes': m0022,
  '0023-environments-releases': m0023,
  '0024-ci-coverage-auto-cancel': m0024,
}

export function migrationProvider(kind: DialectKind): MigrationProvider {
  const ctx = context(kind)
  return {
    async getMigrations(): Promise<Record<string, Migration>> {
      return Object.fromEntries(Object.entries(MIGRATIONS).map(([name, m]) => [name, { up: (db: Kysely<unknown>) => m.up(db, ctx) }]))
    },
  }
}
