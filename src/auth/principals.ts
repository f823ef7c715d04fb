import type { DeployTokenScope, PatScope } from './roles.ts'

/** What a request authenticated with; kept in registry tokens so revocation takes effect at once. */
export type Credential =
  | { kind: 'password'; userId: number }
  | { kind: 'pat'; id: number; userId: number }
  | { kind: 'deploy-token'; id: number }
  /** A CI job token (`CI_JOB_TOKEN`); `id` is the job's. Valid only while the job runs. */
  | { kind: 'job'; id: number }
  /** A device login's short-lived secret (`wharf login`); `id` is the login's. Valid only while the login is. */
  | { kind: 'device-login'; id: number; userId: number }

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
  | {
      /** A running CI job, authenticated by its job token (user `gitlab-ci-token`). */
      kind: 'job'
      jobId: number
      projectId: number
      pipelineId: number
      /** Who started the pipeline; the job acts with (at most) this user's rights on other projects. */
      userId: number | null
      username: string
      credential: Credential
    }
  | { kind: 'anonymous' }

export const ANONYMOUS: Principal = { kind: 'anonymous' }

export function principalName(p: Principal): string {
  return p.kind === 'anonymous' ? 'anonymous' : p.username
}

export function hasScope(p: Principal, ...wanted: Array<PatScope | DeployTokenScope>): boolean {
  // Job tokens carry no token scopes: what they may do is decided per project (access.ts).
  if (p.kind === 'anonymous' || p.kind === 'job') return false
  if (p.kind === 'user' && p.scopes === undefined) return true
  return wanted.some((s) => (p.scopes as readonly string[]).includes(s))
}
