import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { MIRROR_CACHE_PREFIX, parseRepoName, splitDependencyProxyName } from '../core/names.ts'
import type { Database } from '../metadata/schema.ts'
import {
  ACTIONS,
  dependencyProxyActions,
  mirrorActions,
  permittedActions,
  type Action,
  type GroupFacts,
  type ProjectFacts,
} from './access.ts'
import type { Credentials } from './credentials.ts'
import { principalName, type Credential, type Principal } from './principals.ts'
import * as q from './queries.ts'
import { grants, type AccessEntry, type RegistryClaims, type RegistryTokens } from './registry-tokens.ts'
import { newSecret, secretDigest } from '../core/secrets.ts'

/** docker login keeps the refresh token instead of the password; it lives as long as a PAT might. */
const REFRESH_TOKEN_DAYS = 90
const MAX_SCOPES = 32

/**
 * Authorization facts for CI job principals (own project, job-token allowlist, the job's user),
 * supplied by CI so auth does not depend on it.
 */
export interface JobAccessResolver {
  repositoryFacts(p: Extract<Principal, { kind: 'job' }>, repository: string): Promise<ProjectFacts | undefined>
  /** Why a job may not `action` there, in words naming the allowlist entry that would fix it. */
  explainDenial(p: Extract<Principal, { kind: 'job' }>, repository: string, action: Action): Promise<string>
}

export interface ScopeRequest {
  type: string
  name: string
  actions: string[]
}

/** Parses `scope` parameters (each may hold several space-separated scopes): `repository:<name>:<actions>`. */
export function parseScopes(raw: string | string[] | undefined): ScopeRequest[] {
  const list = (Array.isArray(raw) ? raw : raw ? [raw] : []).flatMap((s) => s.split(' ')).filter(Boolean)
  const out: ScopeRequest[] = []
  for (const s of list.slice(0, MAX_SCOPES)) {
    const first = s.indexOf(':')
    const last = s.lastIndexOf(':')
    if (first <= 0 || last === first) continue
    out.push({
      type: s.slice(0, first).replace(/\(.*\)$/, ''),
      name: s.slice(first + 1, last),
      actions: s
        .slice(last + 1)
        .split(',')
        .filter(Boolean),
    })
  }
  return out
}

/**
 * Docker token authentication: decides what a principal gets for the scopes it asked for (never
 * failing because some actions were denied: it grants fewer) and checks registry requests.
 */
/**
 * What registry authorization needs to know about projects and groups (projects/ProjectAccess
 * provides it; auth/ sits below projects/ and names only what it asks).
 */
export interface ProjectFactsSource {
  repositoryFacts(p: Principal, repository: string): Promise<ProjectFacts | undefined>
  dependencyProxyFacts(p: Principal, groupPath: string): Promise<GroupFacts | undefined>
  readableProjectPaths(p: Principal): Promise<Set<string> | undefined>
}

export class RegistryAuth {
  readonly tokens: RegistryTokens
  readonly credentials: Credentials
  private readonly projects: ProjectFactsSource
  private readonly db: Kysely<Database>
  private jobAccess: JobAccessResolver | undefined

  constructor(db: Kysely<Database>, tokens: RegistryTokens, credentials: Credentials, projects: ProjectFactsSource) {
    this.db = db
    this.tokens = tokens
    this.credentials = credentials
    this.projects = projects
  }

  /** CI plugs in how job tokens are authorized (without it, job principals get nothing). */
  setJobAccess(resolver: JobAccessResolver): void {
    this.jobAccess = resolver
  }

  private async facts(p: Principal, repository: string): Promise<ProjectFacts | undefined> {
    if (p.kind === 'job') return this.jobAccess?.repositoryFacts(p, repository)
    return this.projects.repositoryFacts(p, repository)
  }

  /** The intersection of the requested actions with what the principal may do, per scope. */
  async grant(p: Principal, scopes: ScopeRequest[]): Promise<AccessEntry[]> {
    const out: AccessEntry[] = []
    for (const s of scopes) {
      if (s.type === 'registry' && s.name === 'catalog') {
        // The catalog itself filters by what the caller may read.
        out.push({ type: 'registry', name: 'catalog', actions: ['*'] })
        continue
      }
      if (s.type !== 'repository') continue
      let name
      try {
        name = parseRepoName(s.name)
      } catch {
        continue
      }
      const proxied = splitDependencyProxyName(name)
      const permitted = name.startsWith(MIRROR_CACHE_PREFIX)
        ? mirrorActions(p)
        : proxied
          ? dependencyProxyActions(p, await this.projects.dependencyProxyFacts(p, proxied.group))
          : permittedActions(p, await this.facts(p, name))
      const wanted = s.actions.includes('*') ? ACTIONS : s.actions
      const actions = permitted.filter((a) => wanted.includes(a))
      if (actions.length) out.push({ type: 'repository', name, actions })
    }
    return out
  }

  async issue(p: Principal, scopes: ScopeRequest[], offline: boolean) {
    const access = await this.grant(p, scopes)
    const cred = p.kind === 'anonymous' ? undefined : p.credential
    const notAfter = cred ? await this.credentialExpiry(cred) : undefined
    const issued = await this.tokens.issue(principalName(p), access, cred, notAfter)
    let refreshToken: string | undefined
    if (offline && cred) {
      refreshToken = newSecret('wharf-rt-')
      const expires = new Date(Date.now() + REFRESH_TOKEN_DAYS * 86400_000)
      await q.insertRefreshToken(this.db, secretDigest(refreshToken), JSON.stringify(cred), expires.toISOString())
    }
    return { ...issued, access, refreshToken }
  }

  /** The principal a refresh token stands for, if the token and its credential are both still valid. */
  async refresh(token: string): Promise<Principal> {
    const row = await q.findRefreshToken(this.db, secretDigest(token))
    const p =
      row && row.revoked === 0 && new Date(row.expires_at).getTime() > Date.now()
        ? await this.credentials.principalFor(JSON.parse(row.principal) as Credential)
        : undefined
    if (!p) throw new WharfError('UNAUTHORIZED', 'the refresh token is invalid, expired or revoked; log in again', {})
    return p
  }

  /** Verifies a registry bearer token and that its credential is still valid. */
  async verify(bearer: string): Promise<RegistryClaims> {
    const claims = await this.tokens.verify(bearer)
    if (claims.cred && !(await this.credentials.isActive(claims.cred))) {
      throw new WharfError('UNAUTHORIZED', 'the credential behind this token was revoked or has expired', {})
    }
    return claims
  }

  allows(claims: RegistryClaims, name: string, action: Action): boolean {
    return grants(claims, name, action)
  }

  /**
   * The first of `names` the principal behind the claims may pull from, by the project rules
   * rather than the token's grants (spec 1.1: a mount without `from` MAY use any repository the
   * client has access to). The caller bounds `names`: each costs a project look-up.
   */
  async firstPullable<T extends string>(claims: RegistryClaims, names: T[]): Promise<T | undefined> {
    if (names.length === 0) return undefined
    const p = await this.principalOf(claims)
    for (const name of names) {
      if (grants(claims, name, 'pull') || permittedActions(p, await this.facts(p, name)).includes('pull')) return name
    }
    return undefined
  }

  /**
   * Why an action on a repository is refused, in words a user can act on. A project the caller
   * cannot read is described exactly like a missing one, so denials never reveal private paths.
   */
  async explainDenial(claims: RegistryClaims, name: string, action: Action): Promise<string> {
    const p = await this.principalOf(claims)
    if (splitDependencyProxyName(name)) {
      return `${action} access to ${name} denied: a group's dependency proxy is pull-only, and pulls need a member of the group (Guest or higher), a personal access token or group deploy token with read_registry, or a CI job token of a project in the group.`
    }
    if (p.kind === 'job' && this.jobAccess) return this.jobAccess.explainDenial(p, name, action)
    const facts = await this.facts(p, name)
    if (!facts || !permittedActions(p, facts).includes('pull')) {
      return `${action} access to ${name} denied: no project you can access exists at that path. Create the project first (images live under <namespace>/<project>[/<image>]) or ask for access.`
    }
    const needs = {
      pull: 'the Reporter role',
      push: 'the Developer role and the write_registry scope',
      delete: 'the Maintainer role and the write_registry scope',
    }[action]
    return `${action} access to ${name} denied: this needs ${needs}.`
  }

  /**
   * The caller's access level on a repository's project, for the registry's tag protection rules:
   * administrators are above every level; a CI job acts with its user's level (GitLab's job token
   * rule); deploy tokens and anonymous callers have none (0).
   */
  async levelOn(claims: RegistryClaims, name: string): Promise<number> {
    const p = await this.principalOf(claims)
    if (p.kind === 'user' && p.isAdmin) return Number.POSITIVE_INFINITY
    if (p.kind !== 'user' && p.kind !== 'job') return 0
    return (await this.facts(p, name))?.accessLevel ?? 0
  }

  /** The principal behind registry claims (for the catalog, which filters by it). */
  async principalOf(claims: RegistryClaims): Promise<Principal> {
    return (claims.cred && (await this.credentials.principalFor(claims.cred))) || { kind: 'anonymous' }
  }

  async readableProjectPaths(p: Principal): Promise<Set<string> | undefined> {
    return this.projects.readableProjectPaths(p)
  }

  private async credentialExpiry(cred: Credential): Promise<Date | undefined> {
    // A job token's registry tokens stop with the job, a device login's with the login: `cred` is
    // re-checked on every request.
    if (cred.kind === 'password' || cred.kind === 'job' || cred.kind === 'device-login') return undefined
    const row = cred.kind === 'pat' ? await q.findPat(this.db, cred.id) : await q.findDeployToken(this.db, cred.id)
    return row?.expires_at ? new Date(row.expires_at) : undefined
  }
}
