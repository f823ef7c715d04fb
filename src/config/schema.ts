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

export const ConfigSchema = Type.Object(
  {
    /** host:port the HTTP server binds. */
    listen: Type.String({ pattern: LISTEN_PATTERN, description: 'host:port' }),
    /** The URL clients use to reach Wharf (registry host in image names, token realm). */
    publicUrl: Type.String({ pattern: '^https?://[^/\\s?#]+/?$', description: 'http(s)://host[:port]' }),
    /** Directory for the SQLite database, blobs and upload temp files. */
    data: Type.String({ minLength: 1 }),
    logLevel: Type.Union(LOG_LEVELS.map((l) => Type.Literal(l))),
    auth: Type.Object(
      {
        /** Lifetime of registry bearer tokens; short, because clients fetch new ones as needed. */
        tokenTtlSeconds: Type.Integer({ minimum: 30, maximum: 3600 }),
        /** Password for the administrator `root` created at first start; generated and printed once if unset. */
        rootPassword: Type.Optional(Type.String({ minLength: 8, description: 'at least 8 characters' })),
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
    /** Where blobs, upload temp files, job logs and artifacts live: the data directory, or an S3-compatible bucket. */
    storage: Type.Object(
      {
        driver: Type.Union([Type.Literal('filesystem'), Type.Literal('s3')], { description: 'filesystem or s3' }),
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
    ci: Type.Object(
      {
        /** A running job whose runner sent no update (state or log) this long is failed as a runner system failure. */
        jobHeartbeatTimeoutSeconds: Type.Integer({ minimum: 10, maximum: 86_400, description: 'seconds, 10 to 86400' }),
        /** Most jobs one pipeline may have (GitLab's ci_pipeline_size); a larger one is created failed. */
        maxJobsPerPipeline: Type.Integer({ minimum: 1, maximum: 10_000, description: '1 to 10000' }),
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
  metrics: {},
  shutdownGraceSeconds: 30,
  auth: { tokenTtlSeconds: 300 },
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
  ci: { jobHeartbeatTimeoutSeconds: 300, maxJobsPerPipeline: 500 },
  storage: { driver: 'filesystem' },
  // A day either way, as GitLab's online GC reviews blobs and untagged manifests after 24 hours.
  gc: { intervalMinutes: 60, graceSeconds: 86_400, untaggedDelaySeconds: 86_400 },
}
