import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Database, ProtectedRef } from '../metadata/schema.ts'
import { countProtectedRefs, deleteProtectedRef, findProtectedRef, insertProtectedRef, listProtectedRefs } from './queries.ts'
import { isRefName, type RefUpdate } from './refs.ts'

// Protected branches and tags, as GitLab's: a rule names a branch or tag, or a pattern where `*`
// matches anything (`release/*`), and the access level that may push to the branch (or create the
// tag); 0 is "no one". Protected branches are never deleted by a push and are force-pushed only
// when the rule allows it; protected tags, once created, are never moved or deleted by a push.
// Where several rules match a ref, each must allow the update (GitLab lets the most permissive
// one win; here the hook can only check patterns one by one, and the API does the same).
// The same rules run in two places: `refusal` (the repository API) and the pre-receive hook
// (`hookRules` writes them for one pusher; git runs the hook before updating any ref).

/** GitLab's levels for protection rules: no one, developers (+maintainers), maintainers, administrators. */
export const PROTECTION_LEVELS = [0, 30, 40, 60] as const
export const ADMIN_LEVEL = 60
const DESCRIPTIONS: Record<number, string> = { 0: 'No one', 30: 'Developers + Maintainers', 40: 'Maintainers', 60: 'Admins' }

export type RefKind = ProtectedRef['kind']

export const MESSAGES = {
  push: 'You are not allowed to push code to protected branches on this project.',
  force: 'You are not allowed to force push code to a protected branch on this project.',
  deleteBranch: 'You can only delete protected branches using the web interface.',
  createTag: 'You are not allowed to create this tag as it is protected.',
  changeTag: 'You are not allowed to change existing tags on this project.',
} as const

/** Does a rule's name (with `*` wildcards) match a branch or tag name? */
export function refPatternMatches(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name
  const re = new RegExp(
    `^${pattern
      .split('*')
      .map((s) => s.replace(/[.+?^${}()|[\]\\/]/g, '\\$&'))
      .join('.*')}$`,
  )
  return re.test(name)
}

/**
 * Why a caller at `level` may not make this ref update (undefined: allowed). `force`: the update is
 * not a fast-forward. `viaApi`: deleting a protected ref through the API is a Maintainer's call
 * (GitLab's web interface rule); a push never deletes one.
 */
export function refusal(
  rules: readonly ProtectedRef[],
  level: number,
  u: Pick<RefUpdate, 'type' | 'name' | 'action'>,
  force: boolean,
  viaApi = false,
): string | undefined {
  const kind: RefKind | undefined = u.type === 'branch' ? 'branch' : u.type === 'tag' ? 'tag' : undefined
  if (!kind) return undefined
  for (const r of rules) {
    if (r.kind !== kind || !refPatternMatches(r.name, u.name)) continue
    if (u.action === 'delete') {
      if (viaApi && level >= 40) continue
      return kind === 'branch' ? MESSAGES.deleteBranch : MESSAGES.changeTag
    }
    if (kind === 'tag') {
      if (u.action !== 'create') return MESSAGES.changeTag
      if (r.push_level === 0 || level < r.push_level) return MESSAGES.createTag
      continue
    }
    if (r.push_level === 0 || level < r.push_level) return MESSAGES.push
    if (force && r.allow_force_push === 0) return MESSAGES.force
  }
  return undefined
}

/**
 * The pre-receive hook's rules for one pusher at `level`: one line per rule, `<check> <ref glob>
 * <message>`, where check is `deny` (any update), `nodelete`, `noforce` or `noupdate` (an existing
 * ref moved or deleted). Names are ref names (no glob characters but `*`) so the glob is safe.
 */
export function hookRules(rules: readonly ProtectedRef[], level: number): string {
  const lines: string[] = []
  for (const r of rules) {
    const glob = `refs/${r.kind === 'branch' ? 'heads' : 'tags'}/${r.name}`
    const allowed = r.push_level !== 0 && level >= r.push_level
    if (r.kind === 'branch') {
      if (!allowed) lines.push(`deny ${glob} ${MESSAGES.push}`)
      lines.push(`nodelete ${glob} ${MESSAGES.deleteBranch}`)
      if (r.allow_force_push === 0) lines.push(`noforce ${glob} ${MESSAGES.force}`)
    } else {
      if (!allowed) lines.push(`deny ${glob} ${MESSAGES.createTag}`)
      lines.push(`noupdate ${glob} ${MESSAGES.changeTag}`)
    }
  }
  return lines.map((l) => `${l}\n`).join('')
}

/** The hook (installed beside post-receive): applies the rules file the server wrote for this push. */
export const PRE_RECEIVE = `#!/bin/sh
# Installed by Wharf (rewritten at every start): refuses the ref updates the protection rules
# forbid to this pusher. The server writes the rules (WHARF_PUSH_RULES) before the push runs.
[ -n "$WHARF_PUSH_RULES" ] && [ -s "$WHARF_PUSH_RULES" ] || exit 0
zero() { case "$1" in *[!0]*) return 1 ;; *) return 0 ;; esac; }
refused=0
while read -r old new ref; do
  while read -r check glob message; do
    case "$ref" in $glob) ;; *) continue ;; esac
    deny=
    case "$check" in
      deny) deny=1 ;;
      nodelete) zero "$new" && deny=1 ;;
      noupdate) zero "$old" || deny=1 ;;
      noforce) zero "$old" || zero "$new" || git merge-base --is-ancestor "$old" "$new" || deny=1 ;;
    esac
    if [ -n "$deny" ]; then
      echo "GitLab: $message ($ref)" >&2
      refused=1
    fi
  done < "$WHARF_PUSH_RULES"
done
exit $refused
`

export interface ProtectInput {
  name: string
  pushLevel: number
  mergeLevel: number
  allowForcePush: boolean
}

/** The rules of each project (stored in protected_refs). */
export class ProtectedRefs {
  private readonly db: Kysely<Database>
  constructor(db: Kysely<Database>) {
    this.db = db
  }

  /** Every rule of a project (branches and tags), for checks. */
  async rules(projectId: number): Promise<ProtectedRef[]> {
    return [...(await listProtectedRefs(this.db, projectId, 'branch')), ...(await listProtectedRefs(this.db, projectId, 'tag'))]
  }

  async page(projectId: number, kind: RefKind, page: { limit: number; offset: number }): Promise<{ rows: ProtectedRef[]; total: number }> {
    const [rows, total] = await Promise.all([
      listProtectedRefs(this.db, projectId, kind, page),
      countProtectedRefs(this.db, projectId, kind),
    ])
    return { rows, total }
  }

  get(projectId: number, kind: RefKind, name: string): Promise<ProtectedRef | undefined> {
    return findProtectedRef(this.db, projectId, kind, name)
  }

  async protect(projectId: number, kind: RefKind, input: ProtectInput): Promise<ProtectedRef> {
    if (!isRefName(input.name.replaceAll('*', 'x')) || input.name.startsWith('refs/'))
      throw new WharfError('BAD_REQUEST', 'name is invalid', { name: input.name.slice(0, 200) })
    for (const l of [input.pushLevel, input.mergeLevel]) {
      if (!(PROTECTION_LEVELS as readonly number[]).includes(l))
        throw new WharfError('BAD_REQUEST', `access level must be one of ${PROTECTION_LEVELS.join(', ')}`, { level: l })
    }
    const row = await insertProtectedRef(this.db, {
      project_id: projectId,
      kind,
      name: input.name,
      push_level: input.pushLevel,
      merge_level: input.mergeLevel,
      allow_force_push: input.allowForcePush ? 1 : 0,
      created_at: new Date().toISOString(),
    })
    if (!row) throw new WharfError('CONFLICT', `Protected ${kind} '${input.name}' already exists`, { name: input.name })
    return row
  }

  async unprotect(projectId: number, kind: RefKind, name: string): Promise<void> {
    if (!(await deleteProtectedRef(this.db, projectId, kind, name)))
      throw new WharfError('NOT_FOUND', `Protected ${kind === 'branch' ? 'Branch' : 'Tag'} Not Found`, { name })
  }

  /** Is a branch or tag protected (for protected CI variables and runners)? */
  async isProtected(projectId: number, kind: RefKind, name: string): Promise<boolean> {
    return (await listProtectedRefs(this.db, projectId, kind)).some((r) => refPatternMatches(r.name, name))
  }
}

export function levelDescription(level: number): string {
  return DESCRIPTIONS[level] ?? String(level)
}
