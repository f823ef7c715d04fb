import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Database, RegistryRepositoryRule } from '../metadata/schema.ts'
import * as q from './queries.ts'
import { levelName, RULE_LEVELS, type RuleLevel } from './tag-protection.ts'

// GitLab's container registry repository protection rules. A rule names repositories by a path
// pattern (`*` matches any run of characters, `team/app/*`) that starts with the project's path,
// and the least access level that may push to a matching repository (blob uploads and mounts,
// manifest pushes) and delete from it (tags, manifests, blobs, the repository itself). A level left
// null puts no requirement on that action. Cleanup policies act with no level: they never delete
// from a repository a delete level protects. Deploy tokens have no level, so they are kept out.

/** The longest pattern accepted (GitLab's column limit). */
const MAX_PATTERN = 255

/** `*` matches anything (`/` included, as GitLab's LIKE-based match does); every other character itself. */
export function repositoryPatternMatches(pattern: string, name: string): boolean {
  const re = new RegExp(`^${pattern.toLowerCase().split('*').map(escapeRegex).join('.*')}$`)
  return re.test(name.toLowerCase())
}

const escapeRegex = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/** Why the caller at `level` may not push to or delete from the repository `name` (undefined: allowed). */
export function repositoryRefusal(
  rules: readonly RegistryRepositoryRule[],
  name: string,
  action: 'push' | 'delete',
  level: number,
): string | undefined {
  for (const r of rules) {
    const needed = action === 'push' ? r.push_level : r.delete_level
    if (needed === null || level >= needed || !repositoryPatternMatches(r.repository_path_pattern, name)) continue
    return `repository '${name}' is protected (rule ${r.id}, pattern '${r.repository_path_pattern}'): ${action === 'push' ? 'pushing to' : 'deleting from'} it needs the ${levelName(needed)} role or higher`
  }
  return undefined
}

/** RepositoryProtection.check with the project's rules already read (a manifest PUT reads them with its other rules). */
export async function checkRepositoryRules(
  rules: readonly RegistryRepositoryRule[],
  name: string,
  action: 'push' | 'delete',
  callerLevel: (() => Promise<number>) | undefined,
): Promise<void> {
  if (rules.length === 0 || !callerLevel) return
  const refusal = repositoryRefusal(rules, name, action, await callerLevel())
  if (refusal) throw new WharfError('DENIED', refusal, { name, action })
}

/** True when some rule keeps levelless callers (cleanup) from deleting in `name`. */
export function deleteProtected(rules: readonly RegistryRepositoryRule[], name: string): RegistryRepositoryRule | undefined {
  return rules.find((r) => r.delete_level !== null && repositoryPatternMatches(r.repository_path_pattern, name))
}

export interface RepositoryRuleInput {
  repositoryPathPattern: string
  pushLevel: RuleLevel | null
  deleteLevel: RuleLevel | null
}

/** A project's repository rules (stored in registry_repository_protection_rules). */
export class RepositoryProtection {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** The rules of the project the repository belongs to. */
  forRepository(name: string): Promise<RegistryRepositoryRule[]> {
    return q.repositoryRulesForRepository(this.db, name)
  }

  forProject(projectId: number): Promise<RegistryRepositoryRule[]> {
    return q.repositoryRulesOf(this.db, projectId)
  }

  /**
   * DENIED naming the rule when the caller may not `action` in repository `name`. The level is
   * asked only when some rule of the project applies (it costs a look-up).
   */
  async check(name: string, action: 'push' | 'delete', callerLevel: (() => Promise<number>) | undefined): Promise<void> {
    await checkRepositoryRules(await this.forRepository(name), name, action, callerLevel)
  }

  async page(projectId: number, page: { limit: number; offset: number }): Promise<{ rows: RegistryRepositoryRule[]; total: number }> {
    const [rows, total] = await Promise.all([q.repositoryRulesOf(this.db, projectId, page), q.countRepositoryRules(this.db, projectId)])
    return { rows, total }
  }

  async create(project: { id: number; full_path_lower: string }, input: RepositoryRuleInput): Promise<RegistryRepositoryRule> {
    const row = await q.insertRepositoryRule(this.db, {
      project_id: project.id,
      ...checked(project, input),
      created_at: new Date().toISOString(),
    })
    if (!row) throw conflict(input.repositoryPathPattern)
    return row
  }

  /** Applies the given attributes over the rule (absent ones keep their value). */
  async update(
    project: { id: number; full_path_lower: string },
    id: number,
    input: Partial<RepositoryRuleInput>,
  ): Promise<RegistryRepositoryRule> {
    const cur = await q.findRepositoryRule(this.db, project.id, id)
    if (!cur) throw new WharfError('NOT_FOUND', 'Repository protection rule Not Found', { id })
    const next = checked(project, {
      repositoryPathPattern: input.repositoryPathPattern ?? cur.repository_path_pattern,
      pushLevel: input.pushLevel !== undefined ? input.pushLevel : levelName(cur.push_level),
      deleteLevel: input.deleteLevel !== undefined ? input.deleteLevel : levelName(cur.delete_level),
    })
    let row: RegistryRepositoryRule | undefined
    try {
      row = await q.updateRepositoryRule(this.db, project.id, id, next)
    } catch (e) {
      throw conflict(next.repository_path_pattern, e)
    }
    if (!row) throw new WharfError('NOT_FOUND', 'Repository protection rule Not Found', { id })
    return row
  }

  async remove(projectId: number, id: number): Promise<void> {
    if (!(await q.deleteRepositoryRule(this.db, projectId, id)))
      throw new WharfError('NOT_FOUND', 'Repository protection rule Not Found', { id })
  }
}

const conflict = (pattern: string, cause?: unknown) =>
  new WharfError(
    'CONFLICT',
    `a repository protection rule with pattern '${pattern}' already exists`,
    { repository_path_pattern: pattern },
    cause === undefined ? undefined : { cause },
  )

/** The stored form: a pattern under the project's path, and at least one level (GitLab's validation). */
function checked(
  project: { full_path_lower: string },
  input: RepositoryRuleInput,
): Pick<RegistryRepositoryRule, 'repository_path_pattern' | 'push_level' | 'delete_level'> {
  const pattern = input.repositoryPathPattern.trim()
  if (pattern.length === 0 || pattern.length > MAX_PATTERN || !/^[a-zA-Z0-9._\-/*]+$/.test(pattern))
    throw new WharfError(
      'BAD_REQUEST',
      `repository_path_pattern must be 1 to ${MAX_PATTERN} characters of a repository path (letters, digits, . _ - /) and * wildcards`,
      { field: 'repository_path_pattern' },
    )
  if (!pattern.toLowerCase().startsWith(project.full_path_lower))
    throw new WharfError('BAD_REQUEST', `repository_path_pattern must start with the project's path '${project.full_path_lower}'`, {
      field: 'repository_path_pattern',
    })
  if (input.pushLevel === null && input.deleteLevel === null)
    throw new WharfError('BAD_REQUEST', 'give minimum_access_level_for_push, minimum_access_level_for_delete or both', {})
  return {
    repository_path_pattern: pattern,
    push_level: input.pushLevel === null ? null : RULE_LEVELS[input.pushLevel],
    delete_level: input.deleteLevel === null ? null : RULE_LEVELS[input.deleteLevel],
  }
}
