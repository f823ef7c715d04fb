import type { DeployTokenScope, PatScope } from './roles.ts'

/** What a request authenticated with; kept in registry tokens so revocation takes effect at once. */
export type Credential =
  | { kind: 'password'; userId: number }
  | { kind: 'pat'; id: number; userId: number }
  | { kind: 'deploy-token'; id: number }

export type Principal =
  | {
      kind: 'user'
      userId: number
      username: string
      isAdmin: boolean
      /** undefined for a password login: every scope. */
      scopes?: readonly PatScope[]
      credential: Credential
    }
  | {
      kind: 'deploy-token'
      tokenId: number
      username: string
      projectId: number | null
      namespaceId: number | null
      scopes: readonly DeployTokenScope[]
      credential: Credential
    }
  | { kind: 'anonymous' }

export const ANONYMOUS: Principal = { kind: 'anonymous' }

export function principalName(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.username
}

export function hasScope(p: Principal, ...wanted: Array<PatScope | DeployTokenScope>): boolean {
  if (p.kind === 'anonymous') return false
  if (p.kind === 'user' && p.scopes === undefined) return true
  return wanted.some((s) => (p.scopes as readonly string[]).includes(s))
}
