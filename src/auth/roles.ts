/** GitLab's access levels, so API clients see the same numbers. */
export const ACCESS_LEVELS = { guest: 10, reporter: 20, developer: 30, maintainer: 40, owner: 50 } as const
export type Role = keyof typeof ACCESS_LEVELS
export const ROLES = Object.keys(ACCESS_LEVELS) as Role[]

export const VISIBILITIES = ['private', 'internal', 'public'] as const
export type Visibility = (typeof VISIBILITIES)[number]

export const PAT_SCOPES = [
  'api',
  'read_api',
  'read_user',
  'read_registry',
  'write_registry',
  'read_repository',
  'write_repository',
] as const
export type PatScope = (typeof PAT_SCOPES)[number]
export const DEPLOY_TOKEN_SCOPES = ['read_registry', 'write_registry', 'read_repository'] as const
export type DeployTokenScope = (typeof DEPLOY_TOKEN_SCOPES)[number]

export function roleOf(level: number | undefined): Role | undefined {
  if (level === undefined) return undefined
  let best: Role | undefined
  for (const r of ROLES) if (ACCESS_LEVELS[r] <= level) best = r
  return best
}

export function atLeast(level: number | undefined, role: Role): boolean {
  return level !== undefined && level >= ACCESS_LEVELS[role]
}
