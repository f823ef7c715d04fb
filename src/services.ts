import { randomBytes } from 'node:crypto'
import { dirname, join } from 'node:path'
import type { Kysely } from 'kysely'
import { AccessTokens } from './auth/access-tokens.ts'
import { ApiTokens } from './auth/api-tokens.ts'
import { Credentials, type PasswordPolicy } from './auth/credentials.ts'
import { DeviceLogins } from './auth/device-logins.ts'
import { RegistryAuth } from './auth/registry-auth.ts'
import { RegistryTokens } from './auth/registry-tokens.ts'
import { randomPassword } from './core/secrets.ts'
import { REGISTRY_SERVICE } from './core/names.ts'
import { LoginThrottle } from './auth/throttle.ts'
import type { Database } from './metadata/schema.ts'
import { Leases, newNodeId } from './metadata/leases.ts'
import { createProjects, type Groups, type Members, type ProjectAccess, type Projects } from './projects/index.ts'
import { createRegistry, deleteRepositoriesUnder, type Registry } from './registry/index.ts'
import { countUsers, Users } from './users/index.ts'
import { createGitHosting, type GitHosting } from './git/index.ts'
import { createCi, type Ci } from './ci/index.ts'
import type { BlobDriver } from './storage/driver.ts'
import { createFsDriver } from './storage/fs-driver.ts'
import { instrumentDriver, Metrics, Probes } from './ops/index.ts'
import { DEFAULTS } from './config/schema.ts'
import { DependencyProxy, type ProxyOptions } from './proxy/index.ts'
import { Sealer, SealingKeyMismatchError } from './core/sealing.ts'
import { agreedValue } from './metadata/node-checks.ts'
import { DEFAULT_WEBHOOK_OPTIONS, Webhooks } from './hooks/service.ts'
import type { OutboundPolicy } from './hooks/outbound.ts'
import { RemoteIncludeFetcher } from './hooks/remote-include.ts'
import { GarbageCollector, type GcOptions } from './gc/index.ts'
import { Sso } from './sso/index.ts'
import type { LdapServerConfig, OidcProviderConfig } from './config/schema.ts'

/** A runner that sent nothing about a running job for this long is presumed gone (GitLab Runner updates every few seconds). */
export const DEFAULT_JOB_HEARTBEAT_TIMEOUT_SECONDS = 300

/** The registry's name in tokens (`aud`) and challenges (`service`), as GitLab names it. */
export { REGISTRY_SERVICE }

export interface ServiceOptions {
  /** This node's id in the leases of periodic tasks (random per process when absent). */
  nodeId?: string | undefined
  /** Where domains register their metrics (the server's, with process metrics); a private one when absent. */
  metrics?: Metrics | undefined
  publicUrl: string
  tokenTtlSeconds: number
  /** Lifetime of the short-lived secrets device logins mint (auth.loginSecretTtlSeconds; default the config's). */
  loginSecretTtlSeconds?: number | undefined
  pageMax: number
  /** Registry storage quota of each top-level namespace (bytes); none when absent. */
  namespaceStorageBytes?: number | undefined
  /** storage.filesystem.accelRedirect: the reverse proxy's internal location for blob files; no offload when absent. */
  accelRedirect?: string | undefined
  rootPassword?: string | undefined
  /** Where project repositories live (`<data>/git`); without it there is no git hosting. */
  gitRoot?: string | undefined
  /** Job logs and artifacts (`<data>/ci`); next to the git root when not given. */
  ciRoot?: string | undefined
  /** Storage of job logs and artifacts (S3); a filesystem driver at ciRoot when not given. */
  ciStorage?: BlobDriver | undefined
  /** Running jobs whose runner sent nothing this long are failed (default 300). */
  jobHeartbeatTimeoutSeconds?: number | undefined
  /** Most jobs one pipeline may have (`ci.maxJobsPerPipeline`, default 500). */
  maxJobsPerPipeline?: number | undefined
  /** The pull-through cache's upstreams and timings (default: Docker Hub, the config defaults). */
  dependencyProxy?: ProxyOptions | undefined
  /** The mirror listener's URL as clients reach it, when it runs (told to CI jobs). */
  registryMirror?: string | undefined
  /** Where the sealing key lives (`<data>/secrets`); without it, a key for this process only. */
  secretsDir?: string | undefined
  /** The sealing key every node shares (secrets.sealingKeyFile); read, never made; secretsDir's is not used then. */
  sealingKeyFile?: string | undefined
  /** Which webhook targets are allowed, and how long a receiver may take (config `webhooks`). */
  webhooks?: (OutboundPolicy & { timeoutSeconds: number }) | undefined
  /** Garbage collection's grace and delay (default: the config defaults). */
  gc?: GcOptions | undefined
  /** Whether local passwords sign in (config auth.passwordSignIn / passwordBreakGlass; default: they do). */
  passwords?: PasswordPolicy | undefined
  /** OpenID Connect providers users may sign in with (config sso.oidc). */
  oidcProviders?: readonly OidcProviderConfig[] | undefined
  /** LDAP directories whose passwords sign in (config sso.ldap). */
  ldapServers?: readonly LdapServerConfig[] | undefined
}

export interface Services {
  /** The database the services were built over (the composition root hands it to the plugins that query it). */
  db: Kysely<Database>
  registry: Registry
  users: Users
  projects: Projects
  groups: Groups
  members: Members
  projectAccess: ProjectAccess
  credentials: Credentials
  auth: RegistryAuth
  accessTokens: AccessTokens
  /** Resolves API tokens (PATs, OAuth tokens) to principals, for every /api/v4 route. */
  apiTokens: ApiTokens
  /** `wharf login`: the device authorization grant and the logins it creates. */
  deviceLogins: DeviceLogins
  metrics: Metrics
  probes: Probes
  /** The pull-through cache (GitLab's dependency proxy and the mirror listener). */
  dependencyProxy: DependencyProxy
  /** Online garbage collection of the registry. */
  gc: GarbageCollector
  /** Git hosting (repositories, smart HTTP, push events); present when a git root was given. */
  git?: GitHosting
  /** Pipelines, CI/CD variables and triggers; present with git hosting. */
  ci?: Ci
  /** Project and group webhooks and their deliveries (started by the server). */
  hooks: Webhooks
  /** Single sign-on through the configured OpenID Connect providers, and the sync of linked identities. */
  sso: Sso
  /** Whether local passwords sign in. */
  passwords: PasswordPolicy
  /** Which node runs each periodic task (this one's id is `leases.nodeId`). */
  leases: Leases
  /** Set only when this call created root with a generated password. */
  generatedRootPassword?: string
}

/** Builds the domain services over an open database and storage driver (server and tests alike). */
export async function createServices(db: Kysely<Database>, storage: BlobDriver, opts: ServiceOptions): Promise<Services> {
  const metrics = opts.metrics ?? new Metrics()
  const leases = new Leases(db, opts.nodeId ?? newNodeId())
  // The one place storage is wrapped: every service below gets the timed driver.
  const driver = instrumentDriver(storage, metrics)
  const gcOptions = opts.gc ?? DEFAULTS.gc
  const registry = createRegistry(db, driver, {
    pageMax: opts.pageMax,
    metrics,
    namespaceStorageBytes: opts.namespaceStorageBytes,
    gcGraceSeconds: gcOptions.graceSeconds,
    accelRedirect: opts.accelRedirect,
  })
  const users = new Users(db)
  const { projects, groups, members, projectAccess } = createProjects(db, deleteRepositoriesUnder)
  users.setOwnedContentRemoval((user, groupIds) => projects.deleteOwnedBy(user, groupIds, groups))
  const passwords = { ...(opts.passwords ?? { signIn: true, breakGlass: true }), directoryPasswords: Boolean(opts.ldapServers?.length) }
  const credentials = new Credentials(db, new LoginThrottle(db, 'sign-in'), users, passwords)
  const tokens = new RegistryTokens(db, { issuer: opts.publicUrl, service: REGISTRY_SERVICE, ttlSeconds: opts.tokenTtlSeconds })
  await tokens.load()
  const auth = new RegistryAuth(db, tokens, credentials, projectAccess)
  const accessTokens = new AccessTokens(db, credentials)
  const dependencyProxy = new DependencyProxy(
    db,
    registry,
    groups,
    driver,
    opts.dependencyProxy ?? { ...DEFAULTS.dependencyProxy, manifestBytes: DEFAULTS.limits.manifestBytes },
    metrics,
  )
  const deviceLogins = new DeviceLogins(db, credentials, tokens, {
    publicUrl: opts.publicUrl.replace(/\/$/, ''),
    secretTtlSeconds: opts.loginSecretTtlSeconds ?? DEFAULTS.auth.loginSecretTtlSeconds,
  })
  const apiTokens = new ApiTokens(db, credentials, deviceLogins)
  const keyFile = opts.sealingKeyFile ?? (opts.secretsDir ? join(opts.secretsDir, 'sealing.key') : undefined)
  const sealer = opts.sealingKeyFile
    ? await Sealer.fromSharedFile(opts.sealingKeyFile)
    : keyFile
      ? await Sealer.fromFile(keyFile)
      : new Sealer(randomBytes(32))
  // A kept key must be the one the database's secrets were sealed with (by the first node to start):
  // a node with another would seal what the others cannot open, and open nothing they sealed.
  if (keyFile && (await agreedValue(db, 'sealing_key', sealer.checkValue())) !== sealer.checkValue())
    throw new SealingKeyMismatchError(keyFile)
  const webhooks = opts.webhooks ?? DEFAULTS.webhooks
  const hooks = new Webhooks(db, sealer, {
    ...DEFAULT_WEBHOOK_OPTIONS,
    outbound: { allowLocalNetwork: webhooks.allowLocalNetwork, allowedHosts: webhooks.allowedHosts },
    timeoutMs: webhooks.timeoutSeconds * 1000,
    instanceUrl: opts.publicUrl,
    userAgent: 'Wharf',
  })
  const gc = new GarbageCollector(db, registry.blobs, driver, gcOptions, metrics)
  const sso = new Sso({
    db,
    users,
    groups,
    members,
    credentials,
    sealer,
    providers: opts.oidcProviders ?? [],
    directories: opts.ldapServers ?? [],
    publicUrl: opts.publicUrl.replace(/\/$/, ''),
  })
  const services: Services = {
    db,
    registry,
    users,
    projects,
    groups,
    members,
    projectAccess,
    credentials,
    auth,
    accessTokens,
    apiTokens,
    deviceLogins,
    metrics,
    probes: new Probes(db, driver),
    dependencyProxy,
    hooks,
    gc,
    sso,
    passwords,
    leases,
  }
  // Directory passwords sign in wherever local ones do (web, API, git, docker login).
  if (opts.ldapServers?.length) credentials.addVerifier(sso.ldapVerifier())
  if (opts.gitRoot) {
    services.git = await createGitHosting(opts.gitRoot, { db, projects, projectAccess, credentials })
    services.ci = createCi(db, services.git, { users, projects, groups, projectAccess }, opts.publicUrl, {
      metrics,
      storage: instrumentDriver(opts.ciStorage ?? createFsDriver(opts.ciRoot ?? join(dirname(opts.gitRoot), 'ci')), metrics),
      credentials,
      auth,
      heartbeatTimeoutSeconds: opts.jobHeartbeatTimeoutSeconds ?? DEFAULT_JOB_HEARTBEAT_TIMEOUT_SECONDS,
      ...(opts.maxJobsPerPipeline !== undefined ? { maxJobsPerPipeline: opts.maxJobsPerPipeline } : {}),
      registryMirror: opts.registryMirror,
      leases,
      remoteIncludes: new RemoteIncludeFetcher({
        policy: { allowLocalNetwork: webhooks.allowLocalNetwork, allowedHosts: webhooks.allowedHosts },
      }),
    })
    registry.manifests.setCiFacts(services.ci.registryFacts)
  }
  if ((await countUsers(db)) === 0) {
    // Several nodes may start on one empty database at once: exactly one of them creates root.
    const password = opts.rootPassword ?? randomPassword()
    const created = await users.createFirstAdmin({ username: 'root', name: 'Administrator', password })
    if (created && !opts.rootPassword) services.generatedRootPassword = password
  }
  return services
}
