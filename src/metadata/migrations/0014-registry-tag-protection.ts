import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// Container registry tag protection rules (GitLab's /projects/:id/registry/protection/tag/rules):
// a tag name pattern per project with the least access level that may push and delete a matching
// tag. A rule with neither level makes matching tags immutable: once pushed, nobody moves or
// deletes them. Enforced on /v2 manifest PUT and DELETE, the API's tag deletes and cleanup policies.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  await db.schema
    .createTable('registry_tag_protection_rules')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('tag_name_pattern', 'text', (c) => c.notNull())
    .addColumn('push_level', 'integer')
    .addColumn('delete_level', 'integer')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('registry_tag_protection_rules_pattern', ['project_id', 'tag_name_pattern'])
    .execute()
}
