import type { Kysely } from 'kysely'
import type { MigrationContext } from './context.ts'

// The rest of the registry lifecycle (issue 13): repository protection rules, per-project quotas,
// the tag history CI-aware cleanup reads, and the cleanup policy's CI-aware attributes.
export async function up(db: Kysely<unknown>, ctx: MigrationContext): Promise<void> {
  // GitLab's /projects/:id/registry/protection/repository/rules: a repository path pattern (`*`
  // wildcards, starting with the project path) and the least access level that may push to and
  // delete from a matching repository.
  await db.schema
    .createTable('registry_repository_protection_rules')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('project_id', 'integer', (c) => c.notNull().references('projects.id').onDelete('cascade'))
    .addColumn('repository_path_pattern', 'text', (c) => c.notNull())
    .addColumn('push_level', 'integer')
    .addColumn('delete_level', 'integer')
    .addColumn('created_at', 'text', (c) => c.notNull())
    .addUniqueConstraint('registry_repository_protection_rules_pattern', ['project_id', 'repository_path_pattern'])
    .execute()

  // A project's registry quota, set by an administrator: over the hard limit uploads are refused,
  // over the soft one they are accepted with a warning.
  await db.schema
    .createTable('registry_project_quotas')
    .addColumn('project_id', 'integer', (c) => c.primaryKey().references('projects.id').onDelete('cascade'))
    .addColumn('hard_limit_bytes', 'bigint')
    .addColumn('soft_limit_bytes', 'bigint')
    .addColumn('updated_at', 'text', (c) => c.notNull())
    .execute()

  // Every tag push: who (user, deploy token or job) pointed which tag at which digest, and when; a
  // job's pipeline and ref, so cleanup can tell which branch a tag was made for.
  await db.schema
    .createTable('registry_tag_pushes')
    .addColumn('id', ctx.serial, ctx.primaryId)
    .addColumn('repository_id', 'integer', (c) => c.notNull().references('repositories.id').onDelete('cascade'))
    .addColumn('tag', 'text', (c) => c.notNull())
    .addColumn('digest', 'text', (c) => c.notNull())
    .addColumn('actor', 'text')
    .addColumn('job_id', 'integer')
    .addColumn('pipeline_id', 'integer')
    .addColumn('ref', 'text')
    .addColumn('ref_is_tag', 'integer')
    .addColumn('pushed_at', 'text', (c) => c.notNull())
    .execute()
  await db.schema.createIndex('registry_tag_pushes_tag').on('registry_tag_pushes').columns(['repository_id', 'tag', 'id']).execute()
  await db.schema.createIndex('registry_tag_pushes_pipeline').on('registry_tag_pushes').column('pipeline_id').execute()

  // Wharf's CI-aware cleanup attributes (extensions of container_expiration_policy_attributes).
  await db.schema
    .alterTable('container_expiration_policies')
    .addColumn('remove_deleted_branch_tags', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
  await db.schema
    .alterTable('container_expiration_policies')
    .addColumn('keep_protected_branch_latest', 'integer', (c) => c.notNull().defaultTo(0))
    .execute()
}
