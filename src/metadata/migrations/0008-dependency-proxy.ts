import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// The pull-through cache keeps its images in the registry's own tables (repositories, manifests,
// tags, blob links), so cached and pushed content share one content-addressed store. These tables
// only add what a cache needs: which repositories are cached copies (of which upstream image, for
// which group), when each was last pulled (TTL cleanup), and when each cached tag was last checked.
export async function up(db: Kysely<unknown>, _ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('dependency_proxy_repositories')
    .addColumn('repository_id', 'integer', (c) => c.primaryKey().references('repositories.id').onDelete('cascade'))
    // The group whose dependency proxy holds it; null for the mirror listener's cache.
    .addColumn('namespace_id', 'integer', (c) => c.references('namespaces.id').onDelete('cascade'))
    .addColumn('upstream', 'text', (c) => c.notNull())
    .addColumn('upstream_name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addColumn('last_pulled_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema
    .createIndex('dependency_proxy_repositories_namespace')
    .on('dependency_proxy_repositories')
    .column('namespace_id')
    .execute()
  await db.schema.createIndex('dependency_proxy_repositories_pulled').on('dependency_proxy_repositories').column('last_pulled_at').execute()

  await db.schema
    .createTable('dependency_proxy_tags')
    .addColumn('repository_id', 'integer', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    // When the upstream last confirmed (or served) the tag's digest; a tag older than the TTL is revalidated.
    .addColumn('checked_at', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('dependency_proxy_tags_pk', ['repository_id', 'tag'])
    .execute()
}
