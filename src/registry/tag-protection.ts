import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { wholeMatch } from '../core/linear-regex.ts'
import type { Database, RegistryTagRule } from '../metadata/schema.ts'
import * as q from './queries.ts'

// GitLab's container registry tag protection rules. A rule names a tag pattern (RE2, whole name)
// and the least access level that may push (create or move) and delete a matching tag; a tag
// several rules match needs every rule's level. A rule with neither level is an immutable-tag
// rule (GitLab's immutable tags): anyone who may push can create a matching tag, and then nobody
// (administrators, job tokens and cleanup included) can point it at other content or delete it.
// Cleanup policies never delete a protected tag; the API's bulk delete keeps those its caller
// may not delete. Deploy tokens have no access level, so protected tags are out of their reach.

/** GitLab's `minimum_access_level_for_push` / `_for_delete` values and the levels they stand for. */
export const RULE_LEVELS = { maintainer: 40, owner: 50, admin: 60 } as const
export type RuleLevel = keyof typeof RULE_LEVELS
/** The level an administrator acts with (above every project role). */
export const ADMIN_RULE_LEVEL = RULE_LEVELS.admin

export function levelName(level: number | null): RuleLevel | null {
  if (level === null) return null
  return (Object.keys(RULE_LEVELS) as RuleLevel[]).find((k) => RULE_LEVELS[k] === level) ?? 'admin'
}

export const isImmutable = (r: Pick<RegistryTagRule, 'push_level' | 'delete_level'>) => r.push_level === null && r.delete_level === null

function matches(r: RegistryTagRule, tag: string): boolean {
  return wholeMatch(r.tag_name_pattern, 'tag_name_pattern').test(tag)
}

/**
 * Why the caller at `level` may not do this to a tag (undefined: allowed). `push` moves or creates
 * it (`existing` is the digest it points at now, `digest` the one pushed); `delete` removes it.
 * Re-pushing the digest an immutable tag already has changes nothing and is allowed (clients retry).
 */
export function tagRefusal(
  rules: readonly RegistryTagRule[],
  tag: string,
  op: { action: 'push'; existing: string | undefined; digest: string } | { action: 'delete' },
  level: number,
): string | undefined {
  for (const r of rules) {
    if (!matches(r, tag)) continue
    if (isImmutable(r)) {
      if (op.action === 'delete')
        return `tag '${tag}' is immutable (protection rule ${r.id}, pattern '${r.tag_name_pattern}'): nobody may delete it`
      if (op.existing !== undefined && op.existing !== op.digest)
        return `tag '${tag}' is immutable (protection rule ${r.id}, pattern '${r.tag_name_pattern}'): nobody may overwrite it`
      continue
    }
    const needed = op.action === 'push' ? r.push_level : r.delete_level
    if (needed !== null && level < needed)
      return `tag '${tag}' is protected (rule ${r.id}, pattern '${r.tag_name_pattern}'): ${op.action === 'push' ? 'pushing' : 'deleting'} it needs the ${levelName(needed)} role or higher`
  }
  return undefined
}

/** The tags of `names` the caller at `level` may not delete (every protected one when `level` is undefined: cleanup). */
export function undeletableTags(rules: readonly RegistryTagRule[], names: readonly string[], level: number | undefined): Set<string> {
  if (rules.length === 0) return new Set()
  const compiled = rules.map((r) => ({ r, re: wholeMatch(r.tag_name_pattern, 'tag_name_pattern') }))
  return new Set(
    names.filter((n) =>
      compiled.some(
        ({ r, re }) => re.test(n) && (level === undefined || isImmutable(r) || (r.delete_level !== null && level < r.delete_level)),
      ),
    ),
  )
}

export interface TagRuleInput {
  tagNamePattern: string
  pushLevel: RuleLevel | null
  deleteLevel: RuleLevel | null
}

/** A project's rules (stored in registry_tag_protection_rules). */
export class TagProtection {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** The rules that apply to a repository (those of the project it belongs to). */
  forRepository(name: string): Promise<RegistryTagRule[]> {
    return q.tagRulesForRepository(this.db, name)
  }

  forProject(projectId: number): Promise<RegistryTagRule[]> {
    return q.tagRulesOf(this.db, projectId)
  }

  async page(projectId: number, page: { limit: number; offset: number }): Promise<{ rows: RegistryTagRule[]; total: number }> {
    const [rows, total] = await Promise.all([q.tagRulesOf(this.db, projectId, page), q.countTagRules(this.db, projectId)])
    return { rows, total }
  }

  async create(projectId: number, input: TagRuleInput): Promise<RegistryTagRule> {
    const row = await q.insertTagRule(this.db, { project_id: projectId, ...checked(input), created_at: new Date().toISOString() })
    if (!row)
      throw new WharfError('CONFLICT', `a tag protection rule with pattern '${input.tagNamePattern}' already exists`, {
        tag_name_pattern: input.tagNamePattern,
      })
    return row
  }

  /** Applies the given attributes over the rule (absent ones keep their value). */
  async update(projectId: number, id: number, input: Partial<TagRuleInput>): Promise<RegistryTagRule> {
    const cur = await q.findTagRule(this.db, projectId, id)
    if (!cur) throw new WharfError('NOT_FOUND', 'Tag protection rule Not Found', { id })
    const next = checked({
      tagNamePattern: input.tagNamePattern ?? cur.tag_name_pattern,
      pushLevel: input.pushLevel !== undefined ? input.pushLevel : levelName(cur.push_level),
      deleteLevel: input.deleteLevel !== undefined ? input.deleteLevel : levelName(cur.delete_level),
    })
    try {
      const row = await q.updateTagRule(this.db, projectId, id, next)
      if (!row) throw new WharfError('NOT_FOUND', 'Tag protection rule Not Found', { id })
      return row
    } catch (e) {
      if (e instanceof WharfError) throw e
      throw new WharfError('CONFLICT', `a tag protection rule with pattern '${next.tag_name_pattern}' already exists`, {}, { cause: e })
    }
  }

  async remove(projectId: number, id: number): Promise<void> {
    if (!(await q.deleteTagRule(this.db, projectId, id))) throw new WharfError('NOT_FOUND', 'Tag protection rule Not Found', { id })
  }
}

/** The stored form; the pattern must compile (RE2 syntax) and both levels are given, or neither (immutable). */
function checked(input: TagRuleInput): Pick<RegistryTagRule, 'tag_name_pattern' | 'push_level' | 'delete_level'> {
  wholeMatch(input.tagNamePattern, 'tag_name_pattern')
  if ((input.pushLevel === null) !== (input.deleteLevel === null))
    throw new WharfError(
      'BAD_REQUEST',
      'give both minimum_access_level_for_push and minimum_access_level_for_delete, or neither for an immutable-tag rule',
      {},
    )
  return {
    tag_name_pattern: input.tagNamePattern,
    push_level: input.pushLevel === null ? null : RULE_LEVELS[input.pushLevel],
    delete_level: input.deleteLevel === null ? null : RULE_LEVELS[input.deleteLevel],
  }
}
