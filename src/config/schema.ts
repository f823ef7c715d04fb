import { Type, type Static } from '@sinclair/typebox'

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const LISTEN_PATTERN = '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):([0-9]{1,5})$'

/** One upstream registry of the pull-through cache. Credentials come from the operator's config, never from users. */
export const Upstream = Type.Object(
  {
    /** The registry name images are known by (`docker.io`, `ghcr.io`, `registry.k8s.io`). */
    host: Type.String({ pattern: '^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:[0-9]{1,5})?$', description: 'a registry host name' }),
    /** Where to reach it (scheme, host and port; no path). */
    url: Type.String({ pattern: '^https?://[^/\\s?#@]+/?$', description: 'http(s)://host[:port]' }),
    username: Type.Optional(Type.String({ minLength: 1 })),
    password: Type.Optional(Type.String({ minLength: 1 })),
    /** A static bearer token sent as is, instead of username/password. */
    token: Type.Optional(Type.String({ minLength: 1 })),
    /** PEM CA bundle to verify the upstream's certificate with (a private registry). */
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'a path' })),
  },
  { additionalProperties: false },
)
export type UpstreamConfig = Static<typeof Upstream>

/** Wharf's roles, as an SSO group mapping names them (GitLab's access levels 10 to 50). */
export const SSO_ROLES = ['guest', 'reporter', 'developer', 'maintainer', 'owner'] as const

/** A provider group (a value of the groups claim, or an LDAP group's DN or cn) mapped to a Wharf group and role. */
const GroupMapping = Type.Object(
  {
    /** The provider's group: a value of the OIDC groups claim, or an LDAP group's cn or DN. */
    from: Type.String({ minLength: 1, maxLength: 1024 }),
    /** Full path of the Wharf group the member joins; it must exist. */
    group: Type.String({ minLength: 1, maxLength: 1024 }),
    role: Type.Union(
      SSO_ROLES.map((r) => Type.Literal(r)),
      { description: 'guest, reporter, developer, maintainer or owner' },
    ),
  },
  { additionalProperties: false },
)

/** One OpenID Connect provider users may sign in with (authorization code flow with PKCE). */
export const OidcProvider = Type.Object(
  {
    /** Stable id in URLs (`/-/auth/oidc/<id>`) and in linked identities; changing it unlinks everyone. */
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: 'lowercase letters, digits, - and _' }),
    /** The sign-in button's text ("Sign in with <label>"). */
    label: Type.String({ minLength: 1, maxLength: 64 }),
    /** The issuer URL; its /.well-known/openid-configuration must name exactly this issuer. http:// only on loopback. */
    issuer: Type.String({ pattern: '^https?://[^\\s?#]+$', description: 'an http(s) URL' }),
    clientId: Type.String({ minLength: 1 }),
    /** The client secret (prefer clientSecretFile, or the whole list from the environment). */
    clientSecret: Type.Optional(Type.String({ minLength: 1 })),
    /** A file holding the client secret (its first line). */
    clientSecretFile: Type.Optional(Type.String({ minLength: 1, description: 'a path' })),
    /** Scopes asked for (default openid, profile, email; `openid` is always added). Add offline_access (or the provider's equivalent) for refresh tokens, which the sync needs. */
    scopes: Type.Optional(
      Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5B\\x5D-\\x7E]+$' }), { maxItems: 32, description: 'a list of scopes' }),
    ),
    /** The claim whose value becomes the username of a new account (default preferred_username). */
    usernameClaim: Type.Optional(Type.String({ minLength: 1 })),
    /** A claim holding the user's groups (a list of strings), for `groups`. */
    groupsClaim: Type.Optional(Type.String({ minLength: 1 })),
    /** Provider groups mapped to Wharf group memberships, set at every sign-in and sync. */
    groups: Type.Optional(Type.Array(GroupMapping, { maxItems: 1000 })),
    /** When not empty, only users whose verified email is in one of these domains may sign in. */
    allowedDomains: Type.Optional(Type.Array(Type.String({ pattern: '^[a-z0-9.-]+$', description: 'a domain' }), { maxItems: 1000 })),
    /** Create an account at a first sign-in (default true); when false, only identities already linked (or linked by email) may sign in. */
    autoCreate: Type.Optional(Type.Boolean()),
    /** Link a first sign-in to the existing account with the same email, when the provider says the email is verified (default false). */
    linkByVerifiedEmail: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)
export type OidcProviderConfig = Static<typeof OidcProvider>

/** One LDAP directory users may sign in with (their directory password on the sign-in form, git and docker login). */
export const LdapServer = Type.Object(
  {
    /** Stable id of linked identities; changing it unlinks everyone. */
    id: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$', description: 'lowercase letters, digits, - and _' }),
    label: Type.String({ minLength: 1, maxLength: 64 }),
    /** ldaps://host[:port] (TLS), or ldap://host[:port] (with startTls, or plain: loopback or a trusted network only). The certificate must name this host. */
    url: Type.String({ pattern: '^ldaps?://[^/\\s?#]+/?$', description: 'ldap://host[:port] or ldaps://host[:port]' }),
    /** Upgrade the ldap:// connection with StartTLS before anything is sent (default false; a server that refuses is an error, never plain). */
    startTls: Type.Optional(Type.Boolean()),
    /** PEM CA bundle that verifies the server's certificate (ldaps:// or StartTLS; default: the system's CAs). */
    caFile: Type.Optional(Type.String({ minLength: 1, description: 'a path' })),
    /** The service account that searches for users (anonymous search when absent). */
    bindDn: Type.Optional(Type.String({ minLength: 1 })),
    bindPassword: Type.Optional(Type.String({ minLength: 1 })),
    bindPasswordFile: Type.Optional(Type.String({ minLength: 1, description: 'a path' })),
    /** Where users are searched (subtree). */
    baseDn: Type.String({ minLength: 1 }),
    /** Which entries are users (default (objectClass=inetOrgPerson)); the username is matched besides. */
    userFilter: Type.Optional(Type.String({ pattern: '^\\(.*\\)$', description: 'an LDAP filter in parentheses' })),
    /** The attribute holding the username (default uid; sAMAccountName for Active Directory). */
    usernameAttribute: Type.Optional(Type.String({ pattern: '^[A-Za-z][A-Za-z0-9-]*$', description: 'an attribute name' })),
    /** Where groups are searched for the user's memberships (groups are not synced when absent). */
    groupBaseDn: Type.Optional(Type.String({ minLength: 1 })),
    /** Directory groups (their cn or DN) mapped to Wharf group memberships, set at every sign-in and sync. */
    groups: Type.Optional(Type.Array(GroupMapping, { maxItems: 1000 })),
    /** Create an account at a first sign-in (default true). */
    autoCreate: Type.Optional(Type.Boolean()),
    /**
     * Link a first sign-in to the one existing account with the entry's mail (default false): for a
     * directory whose mail attributes users cannot change, since the account, an administrator's
     * included, is then theirs. The way to bring existing local accounts under the directory.
     */
    linkByEmail: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)
export type LdapServerConfig = Static<typeof LdapServer>

export const ConfigSchema = Type.Object(
  {
    /** host:port the HTTP server binds. */
    listen: Type.String({ pattern: LISTEN_PATTERN, description: 'host:port' }),
    /** The URL clients use to reach Wharf (registry host in image names, token realm). */
    publicUrl: Type.String({ pattern: '^https?://[^/\\s?#]+/?$', description: 'http(s)://host[:port]' }),
    /** Directory for the SQLite database, blobs and upload temp files. */
    data: Type.String({ minLength: 1 }),
    logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
    /** Where metadata lives: the data directory's SQLite file unless `url` names another file or a PostgreSQL database. */
    database: Type.Object(
      {
        /** `sqlite:<path>` or `postgres://user:password@host:port/database` (also `postgresql://`; `?host=/dir` for a unix socket). */
        url: Type.Optional(
          Type.String({
            pattern: '^(sqlite:.+|postgres(ql)?://.+)$',
            description: 'sqlite:<path> or postgres://user:password@host/database',
          }),
        ),
        /** PostgreSQL connections this process opens at most (SQLite has one). */
        poolSize: Type.Integer({ minimum: 1, maximum: 1000, description: 'a count, 1 to 1000' }),
      },
      { additionalProperties: false },
    ),
    auth: Type.Object(
      {
        /** Lifetime of registry bearer tokens; short, because clients fetch new ones as needed. */
        tokenTtlSeconds: Type.Integer({ minimum: 30, maximum: 3600 }),
        /**
         * Lifetime of the secrets docker-credential-wharf gets from a `wharf login` (it renews them
         * before they expire); minutes, so a copied secret is soon useless.
         */
        loginSecretTtlSeconds: Type.Integer({ minimum: 5, maximum: 3600 }),
        /** Password for the administrator `root` created at first start; generated and printed once if unset. */
        rootPassword: Type.Optional(Type.String({ minLength: 8, description: 'at least 8 characters' })),
        /** Local passwords sign in (web, API, git, docker login); false leaves SSO and tokens only. */
        passwordSignIn: Type.Boolean(),
        /** With passwordSignIn off, administrators with a local password may still use it (the break-glass path). */
        passwordBreakGlass: Type.Boolean(),
      },
      { additionalProperties: false },
    ),
    /** Serve HTTPS from these PEM files (both or neither); `wharf tls init` makes a pair. */
    tls: Type.Optional(
      Type.Object(
        {
          /** Server certificate, optionally followed by its chain (leaf first). */
          cert: Type.String({ minLength: 1, description: 'a path' }),
          /** Private key of the certificate. */
          key: Type.String({ minLength: 1, description: 'a path' }),
        },
        { additionalProperties: false },
      ),
    ),
    limits: Type.Object(
      {
        /** spec: registries SHOULD accept manifests of at least 4 MiB. */
        manifestBytes: Type.Integer({ minimum: 4096, maximum: 64 << 20 }),
        /** Upload sessions untouched this long are expired and their temp files removed. */
        uploadTtlSeconds: Type.Integer({ minimum: 60 }),
        /** Largest page served by tags/list, _catalog and referrers. */
        pageMax: Type.Integer({ minimum: 1, maximum: 100_000 }),
        /** Registry storage quota of each top-level namespace (group or user), deduplicated blob bytes; none when unset. */
        namespaceStorageBytes: Type.Optional(Type.Integer({ minimum: 0, description: 'bytes' })),
        /** git processes run at once (each costs a process and about six file descriptors); more wait in line. */
        gitProcesses: Type.Integer({ minimum: 1, maximum: 1024 }),
        /** git operations allowed to wait for a slot; past that a request is answered 503 with Retry-After. */
        gitQueue: Type.Integer({ minimum: 0, maximum: 100_000 }),
        /** A request body that delivers no byte this long is aborted (an upload stays resumable at the offset it reached). */
        bodyIdleTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, description: 'seconds, 1 to 3600' }),
        /** Time a client has to send a request's headers. */
        headersTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 600, description: 'seconds, 1 to 600' }),
        /** An idle keep-alive connection is closed after this long. */
        keepAliveTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 3600, description: 'seconds, 1 to 3600' }),
        /** Open connections allowed from one client address; 0 turns the cap off (e.g. behind a reverse proxy, where every connection comes from the proxy). */
        maxConnectionsPerAddress: Type.Integer({ minimum: 0, maximum: 1_000_000, description: 'a count, 0 for no cap' }),
      },
      { additionalProperties: false },
    ),
    /** Prometheus metrics: a separate listener and/or a bearer token for /-/metrics on the public one. */
    metrics: Type.Object(
      {
        /** host:port of a listener serving only GET /metrics (bind it to a private interface). */
        listen: Type.Optional(Type.String({ pattern: '^(\\[[0-9a-fA-F:.]+\\]|[A-Za-z0-9.-]+):([0-9]{1,5})$', description: 'host:port' })),
        /** Bearer token a scrape must send; /-/metrics on the public listener is served only when set. */
        token: Type.Optional(Type.String({ minLength: 16, description: 'at least 16 characters' })),
      },
      { additionalProperties: false },
    ),
    /** Keys kept outside the database. */
    secrets: Type.Object(
      {
        /**
         * The sealing key (32 random bytes, base64, one line) every node of a cluster shares; by
         * default each data directory makes its own in secrets/sealing.key, which serves one node only.
         */
        sealingKeyFile: Type.Optional(Type.String({ minLength: 1, description: 'a path' })),
      },
      { additionalProperties: false },
    ),
    /** On SIGTERM/SIGINT, in-flight requests get this long to finish before their connections are closed. */
    shutdownGraceSeconds: Type.Integer({ minimum: 0, maximum: 3600, description: 'seconds, 0 to 3600' }),
    /** The pull-through cache (GitLab's dependency proxy and a registry mirror listener). */
    dependencyProxy: Type.Object(
      {
        /** Registries images are pulled through; the first one is what the mirror listener serves by default. */
        upstreams: Type.Array(Upstream, { minItems: 1, maxItems: 32, description: 'a list of {host, url} (YAML/JSON)' }),
        /** host:port of the pull-only mirror listener (Docker `registry-mirrors`, containerd `hosts.toml`); off when unset. */
        mirrorListen: Type.Optional(Type.String({ pattern: LISTEN_PATTERN, description: 'host:port' })),
        /** `anonymous`: anyone who can reach the mirror pulls through it; `token`: Wharf's token auth (any signed-in user, deploy token or CI job). */
        mirrorAuth: Type.Union([Type.Literal('anonymous'), Type.Literal('token')], { description: 'anonymous or token' }),
        /** A cached tag is served without asking the upstream this long; then it is revalidated with a HEAD. */
        tagTtlSeconds: Type.Integer({ minimum: 0, maximum: 30 * 86_400, description: 'seconds, 0 to 2592000' }),
        /** Cached images not pulled for this many days are removed and their bytes freed. */
        cleanupDays: Type.Integer({ minimum: 1, maximum: 3650, description: 'days, 1 to 3650' }),
        /** An upstream that sends no response headers (or no body bytes) for this long counts as unreachable. */
        upstreamTimeoutSeconds: Type.Integer({ minimum: 1, maximum: 600, description: 'seconds, 1 to 600' }),
      },
      { additionalProperties: false },
    ),
    /** Outbound webhook deliveries. */
    webhooks: Type.Object(
      {
        /** Allow hooks aimed at loopback, private, link-local and other non-global addresses (GitLab: "Allow requests to the local network"). */
        allowLocalNetwork: Type.Boolean(),
        /** Hosts (names or IP addresses) hooks may target even when they are on the local network. */
        allowedHosts: Type.Array(Type.String({ minLength: 1, maxLength: 255 }), {
          maxItems: 1000,
          description: 'a list of host names or addresses',
        }),
        /** A receiver that has not answered this long fails the attempt (it is retried with backoff). */
        timeoutSeconds: Type.Integer({ minimum: 1, maximum: 120, description: 'seconds, 1 to 120' }),
      },
      { additionalProperties: false },
    ),
    /** Online garbage collection of the registry (also `wharf gc`). */
    gc: Type.Object(
      {
        /** Minutes between scheduled collections in the server; 0 turns the schedule off (run `wharf gc` instead). */
        intervalMinutes: Type.Integer({ minimum: 0, maximum: 7 * 24 * 60, description: 'minutes, 0 (off) to 10080' }),
        /** Blobs and blob links no manifest references are kept this long (a push's layers before its manifest). */
        graceSeconds: Type.Integer({ minimum: 0, maximum: 30 * 86_400, description: 'seconds, 0 to 2592000' }),
        /** Untagged manifests are kept this long after losing their last tag (GitLab: 24 hours). */
        untaggedDelaySeconds: Type.Integer({ minimum: 0, maximum: 365 * 86_400, description: 'seconds, 0 to 31536000' }),
      },
      { additionalProperties: false },
    ),
    /** Single sign-on: OpenID Connect providers, and how often linked identities are checked again. */
    sso: Type.Object(
      {
        oidc: Type.Array(OidcProvider, { maxItems: 32, description: 'a list of OIDC providers (YAML/JSON)' }),
        ldap: Type.Array(LdapServer, { maxItems: 32, description: 'a list of LDAP servers (YAML/JSON)' }),
        /** Every linked identity is checked with its provider this often (refresh token); a user the provider no longer knows is blocked. */
        syncIntervalSeconds: Type.Integer({ minimum: 1, maximum: 7 * 86_400, description: 'seconds, 1 to 604800' }),
      },
      { additionalProperties: false },
    ),
    /** Where blobs, upload temp files, job logs and artifacts live: the data directory, or an S3-compatible bucket. */
    storage: Type.Object(
      {
        driver: Type.Union([Type.Literal('filesystem'), Type.Literal('s3')], { description: 'filesystem or s3' }),
        filesystem: Type.Optional(
          Type.Object(
            {
              /**
               * The internal location of the reverse proxy in front (nginx) that serves `<data>/storage/blobs/`:
               * a blob GET it marks with `X-Sendfile-Type: X-Accel-Redirect` is answered with an empty body
               * and `X-Accel-Redirect: <prefix><algorithm>/<xx>/<hex>`, and nginx sends the file. Off when unset.
               */
              accelRedirect: Type.Optional(
                Type.String({ pattern: '^/([A-Za-z0-9_-][A-Za-z0-9._-]*/)+$', description: 'a URI path starting and ending with /' }),
              ),
            },
            { additionalProperties: false },
          ),
        ),
        s3: Type.Optional(
          Type.Object(
            {
              /** http(s)://host[:port] of an S3-compatible service; AWS's regional endpoint when unset. */
              endpoint: Type.Optional(Type.String({ pattern: '^https?://[^/\\s?#@]+/?$', description: 'http(s)://host[:port]' })),
              region: Type.Optional(Type.String({ minLength: 1 })),
              bucket: Type.Optional(Type.String({ pattern: '^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$', description: 'an S3 bucket name' })),
              /** Key prefix of everything Wharf stores (several instances may share a bucket). */
              prefix: Type.Optional(Type.String({ pattern: '^([A-Za-z0-9._-]+/)*$', description: "'' or segments each ending in /" })),
              accessKeyId: Type.Optional(Type.String({ minLength: 1 })),
              /** Never shown (verify-config, errors, logs); best given through WHARF_S3_SECRET_ACCESS_KEY from a secret store. */
              secretAccessKey: Type.Optional(Type.String({ minLength: 1 })),
              /** Bucket in the URL path, as most S3-compatible servers (MinIO, Ceph RGW, Swift) want. */
              forcePathStyle: Type.Optional(Type.Boolean()),
              /** Blob GETs answered with a redirect to a presigned URL: clients download from the store directly. */
              redirect: Type.Optional(Type.Boolean()),
            },
            { additionalProperties: false },
          ),
        ),
      },
      { additionalProperties: false },
    ),
    git: Type.Object(
      {
        /**
         * Where project repositories live (default `<data>/git`): one directory every node mounts
         * (NFS, CephFS, EFS) when several nodes serve git, as Gitea and Forgejo scale.
         */
        repositoriesDir: Type.Optional(Type.String({ minLength: 1, description: 'a directory path' })),
      },
      { additionalProperties: false },
    ),
    ci: Type.Object(
      {
        /** A running job whose runner sent no update (state or log) this long is failed as a runner system failure. */
        jobHeartbeatTimeoutSeconds: Type.Integer({ minimum: 10, maximum: 86_400, description: 'seconds, 10 to 86400' }),
        /** Most jobs one pipeline may have (GitLab's ci_pipeline_size); a larger one is created failed. */
        maxJobsPerPipeline: Type.Integer({ minimum: 1, maximum: 10_000, description: '1 to 10000' }),
        /** How often due pipeline schedules and delayed (`start_in`) jobs are looked for. */
        schedulerIntervalSeconds: Type.Integer({ minimum: 1, maximum: 3600, description: 'seconds, 1 to 3600' }),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false },
)

export type Config = Static<typeof ConfigSchema>

export const DEFAULTS: Omit<Config, 'publicUrl'> = {
  listen: '127.0.0.1:5000',
  data: './data',
  logLevel: 'info',
  database: { poolSize: 10 },
  metrics: {},
  secrets: {},
  shutdownGraceSeconds: 30,
  auth: { tokenTtlSeconds: 300, loginSecretTtlSeconds: 300, passwordSignIn: true, passwordBreakGlass: true },
  // GitLab checks LDAP users hourly.
  sso: { oidc: [], ldap: [], syncIntervalSeconds: 3600 },
  limits: {
    manifestBytes: 4 << 20,
    uploadTtlSeconds: 24 * 3600,
    pageMax: 10_000,
    gitProcesses: 8,
    gitQueue: 512,
    bodyIdleTimeoutSeconds: 60,
    headersTimeoutSeconds: 30,
    // Longer than the 60 s idle timeout of common proxies and load balancers, so they close first.
    keepAliveTimeoutSeconds: 72,
    // A CI fleet behind one NAT address pushes several layers per job at once; 256 leaves room for ~50 concurrent pushes.
    maxConnectionsPerAddress: 256,
  },
  dependencyProxy: {
    upstreams: [{ host: 'docker.io', url: 'https://registry-1.docker.io' }],
    mirrorAuth: 'anonymous',
    tagTtlSeconds: 600,
    cleanupDays: 90,
    upstreamTimeoutSeconds: 30,
  },
  webhooks: { allowLocalNetwork: false, allowedHosts: [], timeoutSeconds: 10 },
  git: {},
  ci: { jobHeartbeatTimeoutSeconds: 300, maxJobsPerPipeline: 500, schedulerIntervalSeconds: 15 },
  storage: { driver: 'filesystem' },
  // A day either way, as GitLab's online GC reviews blobs and untagged manifests after 24 hours.
  gc: { intervalMinutes: 60, graceSeconds: 86_400, untaggedDelaySeconds: 86_400 },
}
