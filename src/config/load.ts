import { createPrivateKey, X509Certificate } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { Value } from '@sinclair/typebox/value'
import { parse as parseYaml } from 'yaml'
import { ConfigSchema, DEFAULTS, type Config } from './schema.ts'
import { sealingKeyProblem } from '../core/sealing.ts'

/** Every setting, with the flag and environment variable that override it (flags win, then env, then file). */
export const SETTINGS = [
  { key: 'listen', flag: 'listen', env: 'WHARF_LISTEN', kind: 'string' },
  { key: 'publicUrl', flag: 'public-url', env: 'WHARF_PUBLIC_URL', kind: 'string' },
  { key: 'data', flag: 'data', env: 'WHARF_DATA', kind: 'string' },
  { key: 'logLevel', flag: 'log-level', env: 'WHARF_LOG_LEVEL', kind: 'string' },
  { key: 'database.url', flag: 'database-url', env: 'WHARF_DATABASE_URL', kind: 'string' },
  { key: 'database.poolSize', flag: 'database-pool-size', env: 'WHARF_DATABASE_POOL_SIZE', kind: 'integer' },
  { key: 'auth.tokenTtlSeconds', flag: 'token-ttl-seconds', env: 'WHARF_AUTH_TOKEN_TTL_SECONDS', kind: 'integer' },
  {
    key: 'auth.loginSecretTtlSeconds',
    flag: 'login-secret-ttl-seconds',
    env: 'WHARF_AUTH_LOGIN_SECRET_TTL_SECONDS',
    kind: 'integer',
  },
  { key: 'auth.rootPassword', flag: 'root-password', env: 'WHARF_ROOT_PASSWORD', kind: 'string' },
  { key: 'auth.passwordSignIn', flag: 'password-sign-in', env: 'WHARF_AUTH_PASSWORD_SIGN_IN', kind: 'boolean' },
  { key: 'auth.passwordBreakGlass', flag: 'password-break-glass', env: 'WHARF_AUTH_PASSWORD_BREAK_GLASS', kind: 'boolean' },
  { key: 'sso.oidc', flag: 'sso-oidc', env: 'WHARF_SSO_OIDC', kind: 'json' },
  { key: 'sso.ldap', flag: 'sso-ldap', env: 'WHARF_SSO_LDAP', kind: 'json' },
  { key: 'sso.syncIntervalSeconds', flag: 'sso-sync-interval-seconds', env: 'WHARF_SSO_SYNC_INTERVAL_SECONDS', kind: 'integer' },
  { key: 'tls.cert', flag: 'tls-cert', env: 'WHARF_TLS_CERT', kind: 'string' },
  { key: 'tls.key', flag: 'tls-key', env: 'WHARF_TLS_KEY', kind: 'string' },
  { key: 'metrics.listen', flag: 'metrics-listen', env: 'WHARF_METRICS_LISTEN', kind: 'string' },
  { key: 'metrics.token', flag: 'metrics-token', env: 'WHARF_METRICS_TOKEN', kind: 'string' },
  { key: 'secrets.sealingKeyFile', flag: 'sealing-key-file', env: 'WHARF_SEALING_KEY_FILE', kind: 'string' },
  { key: 'shutdownGraceSeconds', flag: 'shutdown-grace-seconds', env: 'WHARF_SHUTDOWN_GRACE_SECONDS', kind: 'integer' },
  { key: 'limits.manifestBytes', flag: 'max-manifest-bytes', env: 'WHARF_LIMITS_MANIFEST_BYTES', kind: 'integer' },
  { key: 'limits.uploadTtlSeconds', flag: 'upload-ttl-seconds', env: 'WHARF_LIMITS_UPLOAD_TTL_SECONDS', kind: 'integer' },
  { key: 'limits.pageMax', flag: 'page-max', env: 'WHARF_LIMITS_PAGE_MAX', kind: 'integer' },
  {
    key: 'limits.namespaceStorageBytes',
    flag: 'namespace-storage-bytes',
    env: 'WHARF_LIMITS_NAMESPACE_STORAGE_BYTES',
    kind: 'integer',
  },
  { key: 'limits.gitProcesses', flag: 'git-processes', env: 'WHARF_LIMITS_GIT_PROCESSES', kind: 'integer' },
  { key: 'limits.gitQueue', flag: 'git-queue', env: 'WHARF_LIMITS_GIT_QUEUE', kind: 'integer' },
  {
    key: 'limits.bodyIdleTimeoutSeconds',
    flag: 'body-idle-timeout-seconds',
    env: 'WHARF_LIMITS_BODY_IDLE_TIMEOUT_SECONDS',
    kind: 'integer',
  },
  { key: 'limits.headersTimeoutSeconds', flag: 'headers-timeout-seconds', env: 'WHARF_LIMITS_HEADERS_TIMEOUT_SECONDS', kind: 'integer' },
  {
    key: 'limits.keepAliveTimeoutSeconds',
    flag: 'keep-alive-timeout-seconds',
    env: 'WHARF_LIMITS_KEEP_ALIVE_TIMEOUT_SECONDS',
    kind: 'integer',
  },
  {
    key: 'limits.maxConnectionsPerAddress',
    flag: 'max-connections-per-address',
    env: 'WHARF_LIMITS_MAX_CONNECTIONS_PER_ADDRESS',
    kind: 'integer',
  },
  { key: 'dependencyProxy.upstreams', flag: 'proxy-upstreams', env: 'WHARF_DEPENDENCY_PROXY_UPSTREAMS', kind: 'json' },
  { key: 'dependencyProxy.mirrorListen', flag: 'mirror-listen', env: 'WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN', kind: 'string' },
  { key: 'dependencyProxy.mirrorAuth', flag: 'mirror-auth', env: 'WHARF_DEPENDENCY_PROXY_MIRROR_AUTH', kind: 'string' },
  { key: 'dependencyProxy.tagTtlSeconds', flag: 'proxy-tag-ttl-seconds', env: 'WHARF_DEPENDENCY_PROXY_TAG_TTL_SECONDS', kind: 'integer' },
  { key: 'dependencyProxy.cleanupDays', flag: 'proxy-cleanup-days', env: 'WHARF_DEPENDENCY_PROXY_CLEANUP_DAYS', kind: 'integer' },
  {
    key: 'dependencyProxy.upstreamTimeoutSeconds',
    flag: 'proxy-upstream-timeout-seconds',
    env: 'WHARF_DEPENDENCY_PROXY_UPSTREAM_TIMEOUT_SECONDS',
    kind: 'integer',
  },
  { key: 'git.repositoriesDir', flag: 'git-repositories-dir', env: 'WHARF_GIT_REPOSITORIES_DIR', kind: 'string' },
  {
    key: 'ci.jobHeartbeatTimeoutSeconds',
    flag: 'job-heartbeat-timeout-seconds',
    env: 'WHARF_CI_JOB_HEARTBEAT_TIMEOUT_SECONDS',
    kind: 'integer',
  },
  { key: 'ci.maxJobsPerPipeline', flag: 'max-jobs-per-pipeline', env: 'WHARF_CI_MAX_JOBS_PER_PIPELINE', kind: 'integer' },
  {
    key: 'ci.schedulerIntervalSeconds',
    flag: 'ci-scheduler-interval-seconds',
    env: 'WHARF_CI_SCHEDULER_INTERVAL_SECONDS',
    kind: 'integer',
  },
  { key: 'webhooks.allowLocalNetwork', flag: 'webhooks-allow-local-network', env: 'WHARF_WEBHOOKS_ALLOW_LOCAL_NETWORK', kind: 'boolean' },
  { key: 'webhooks.allowedHosts', flag: 'webhooks-allowed-hosts', env: 'WHARF_WEBHOOKS_ALLOWED_HOSTS', kind: 'list' },
  { key: 'webhooks.timeoutSeconds', flag: 'webhooks-timeout-seconds', env: 'WHARF_WEBHOOKS_TIMEOUT_SECONDS', kind: 'integer' },
  { key: 'storage.driver', flag: 'storage', env: 'WHARF_STORAGE', kind: 'string' },
  {
    key: 'storage.filesystem.accelRedirect',
    flag: 'filesystem-accel-redirect',
    env: 'WHARF_FILESYSTEM_ACCEL_REDIRECT',
    kind: 'string',
  },
  { key: 'storage.s3.endpoint', flag: 's3-endpoint', env: 'WHARF_S3_ENDPOINT', kind: 'string' },
  { key: 'storage.s3.region', flag: 's3-region', env: 'WHARF_S3_REGION', kind: 'string' },
  { key: 'storage.s3.bucket', flag: 's3-bucket', env: 'WHARF_S3_BUCKET', kind: 'string' },
  { key: 'storage.s3.prefix', flag: 's3-prefix', env: 'WHARF_S3_PREFIX', kind: 'string' },
  { key: 'storage.s3.accessKeyId', flag: 's3-access-key-id', env: 'WHARF_S3_ACCESS_KEY_ID', kind: 'string' },
  { key: 'storage.s3.secretAccessKey', flag: 's3-secret-access-key', env: 'WHARF_S3_SECRET_ACCESS_KEY', kind: 'string' },
  { key: 'storage.s3.forcePathStyle', flag: 's3-force-path-style', env: 'WHARF_S3_FORCE_PATH_STYLE', kind: 'boolean' },
  { key: 'storage.s3.redirect', flag: 's3-redirect', env: 'WHARF_S3_REDIRECT', kind: 'boolean' },
  { key: 'gc.intervalMinutes', flag: 'gc-interval-minutes', env: 'WHARF_GC_INTERVAL_MINUTES', kind: 'integer' },
  { key: 'gc.graceSeconds', flag: 'gc-grace-seconds', env: 'WHARF_GC_GRACE_SECONDS', kind: 'integer' },
  { key: 'gc.untaggedDelaySeconds', flag: 'gc-untagged-delay-seconds', env: 'WHARF_GC_UNTAGGED_DELAY_SECONDS', kind: 'integer' },
] as const

/** Settings never echoed back (errors, verify-config). */
export const SECRET_KEYS: ReadonlySet<string> = new Set([
  'auth.rootPassword',
  'metrics.token',
  'dependencyProxy.upstreams',
  // A PostgreSQL URL carries the password.
  'database.url',
  'storage.s3.secretAccessKey',
])
/** Fields secret wherever they appear in a list of settings (`sso.oidc.0.clientSecret`). */
const SECRET_FIELDS: ReadonlySet<string> = new Set(['clientSecret', 'bindPassword'])

/** A key at or below a secret setting (`dependencyProxy.upstreams.0.password`), or a secret field. */
function isSecret(key: string): boolean {
  for (const k of SECRET_KEYS) if (key === k || key.startsWith(`${k}.`)) return true
  return SECRET_FIELDS.has(key.slice(key.lastIndexOf('.') + 1))
}

/** The configuration as administrators may see it: secret settings that are set show as `(set)`. */
export function publicSettings(config: Readonly<Config>): Record<string, unknown> {
  const mask = (node: unknown, prefix: string): unknown => {
    if (prefix && isSecret(prefix)) return node === undefined || node === null ? null : '(set)'
    if (Array.isArray(node)) return node.map((v, i) => mask(v, `${prefix}.${i}`))
    if (node === null || typeof node !== 'object') return node
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, mask(v, prefix ? `${prefix}.${k}` : k)]))
  }
  return mask(config, '') as Record<string, unknown>
}

export type SettingFlag = (typeof SETTINGS)[number]['flag']

const LISTEN = new RegExp(ConfigSchema.properties.listen.pattern!)

export class ConfigError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

export interface ConfigSources {
  flags?: Partial<Record<SettingFlag, string>>
  env?: Record<string, string | undefined>
  /** Path of a YAML or JSON config file; WHARF_CONFIG when not given. */
  file?: string
  /** Check that tls.cert/tls.key are readable and match (default); `wharf tls init` skips it, since it writes them. */
  checkTlsFiles?: boolean
}

type Origin = string
type Tree = Record<string, unknown>

function setPath(tree: Tree, path: string, value: unknown): void {
  const parts = path.split('.')
  let node = tree
  for (const p of parts.slice(0, -1)) {
    node[p] ??= {}
    node = node[p] as Tree
  }
  node[parts.at(-1)!] = value
}

function flatten(tree: unknown, prefix = '', out = new Map<string, unknown>()): Map<string, unknown> {
  // An empty section in YAML (`limits:` with every key commented out) parses as null.
  if (tree === null && SETTINGS.some((s) => s.key.startsWith(`${prefix}.`))) return out
  if (tree !== null && typeof tree === 'object' && !Array.isArray(tree)) {
    for (const [k, v] of Object.entries(tree)) flatten(v, prefix ? `${prefix}.${k}` : k, out)
  } else out.set(prefix, tree)
  return out
}

function coerce(setting: (typeof SETTINGS)[number], raw: string, origin: Origin): unknown {
  if (setting.kind === 'integer') {
    if (!/^[0-9]+$/.test(raw.trim()))
      throw new ConfigError(`invalid setting ${setting.key} (${origin}): expected an integer, got ${JSON.stringify(raw)}`)
    return Number(raw.trim())
  }
  if (setting.kind === 'boolean') {
    const v = raw.trim().toLowerCase()
    if (v === 'true' || v === '1') return true
    if (v === 'false' || v === '0') return false
    throw new ConfigError(`invalid setting ${setting.key} (${origin}): expected true or false, got ${JSON.stringify(raw)}`)
  }
  if (setting.kind === 'list')
    return raw
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s.length > 0)
  if (setting.kind === 'json') {
    // Lists do not fit a flag or variable otherwise; the value is hidden because it may hold credentials.
    try {
      return JSON.parse(raw)
    } catch {
      throw new ConfigError(`invalid setting ${setting.key} (${origin}): expected JSON (a list of objects), got (hidden)`)
    }
  }
  return raw
}

/** Reads file, environment and flags, validates once and returns a frozen config. Throws ConfigError with one line naming the setting. */
/** The config a command line gives: `--config FILE` and each setting's own flag; other parsed values are ignored. */
export function loadConfigFromArgs(values: Readonly<Record<string, unknown>>): Readonly<Config> {
  const flags: Partial<Record<SettingFlag, string>> = {}
  for (const s of SETTINGS) if (typeof values[s.flag] === 'string') flags[s.flag] = values[s.flag] as string
  return loadConfig({ flags, file: typeof values.config === 'string' ? values.config : undefined })
}

export function loadConfig(sources: ConfigSources = {}): Readonly<Config> {
  const env = sources.env ?? process.env
  const origins = new Map<string, Origin>()
  const tree: Tree = structuredClone(DEFAULTS) as unknown as Tree

  const file = sources.file ?? env.WHARF_CONFIG
  if (file) {
    let parsed: unknown
    try {
      parsed = parseYaml(readFileSync(file, 'utf8'))
    } catch (e) {
      throw new ConfigError(`cannot read config file ${file}: ${(e as Error).message.split('\n')[0]}`)
    }
    for (const [key, value] of flatten(parsed ?? {})) {
      if (!SETTINGS.some((s) => s.key === key)) throw new ConfigError(`unknown setting ${key} in config file ${file}`)
      setPath(tree, key, value)
      origins.set(key, `config file ${file}`)
    }
  }
  for (const s of SETTINGS) {
    const fromEnv = env[s.env]
    if (fromEnv !== undefined && fromEnv !== '') {
      setPath(tree, s.key, coerce(s, fromEnv, s.env))
      origins.set(s.key, s.env)
    }
    const fromFlag = sources.flags?.[s.flag]
    if (fromFlag !== undefined) {
      setPath(tree, s.key, coerce(s, fromFlag, `--${s.flag}`))
      origins.set(s.key, `--${s.flag}`)
    }
  }

  const listenSetting = SETTINGS[0]
  if (typeof tree.listen !== 'string' || !LISTEN.test(tree.listen)) {
    throw new ConfigError(
      `invalid setting listen (${origins.get('listen') ?? `--${listenSetting.flag} / ${listenSetting.env}`}): expected host:port, got ${JSON.stringify(tree.listen)}`,
    )
  }
  // tls.cert and tls.key come together; HTTPS then changes the default publicUrl.
  const tls = tree.tls as { cert?: unknown; key?: unknown } | undefined
  if (tls && (tls.cert === undefined) !== (tls.key === undefined)) {
    const [set, missing] = tls.cert === undefined ? (['tls.key', 'tls.cert'] as const) : (['tls.cert', 'tls.key'] as const)
    throw new ConfigError(
      `missing setting ${missing} (${settingOrigin(missing, origins)}): ${set} is set, and HTTPS needs both tls.cert and tls.key`,
    )
  }
  if (tree.publicUrl === undefined) {
    const m = /^(.*):(\d+)$/.exec(tree.listen)
    if (m) {
      const host = m[1] === '0.0.0.0' || m[1] === '[::]' ? '127.0.0.1' : m[1]
      tree.publicUrl = `${tls ? 'https' : 'http'}://${host}:${m[2]}`
    }
  }

  const error = Value.Errors(ConfigSchema, tree).First()
  if (error) {
    const key = error.path.replace(/^\//, '').replaceAll('/', '.') || 'config'
    // An error inside a list names the element (`dependencyProxy.upstreams.0.url`); its origin is the list's.
    const setting = SETTINGS.find((s) => s.key === key || key.startsWith(`${s.key}.`))
    const origin = (setting && origins.get(setting.key)) ?? (setting ? `--${setting.flag} / ${setting.env}` : 'config')
    const want = (error.schema as { description?: string }).description
    // An upstream's host, url and caFile are not its credentials; a database URL may hold a password.
    const got =
      isSecret(key) && !/^dependencyProxy\.upstreams\.\d+\.(host|url|caFile)$/.test(key) ? '(hidden)' : JSON.stringify(error.value)
    throw new ConfigError(`invalid setting ${key} (${origin}): ${want ? `expected ${want}` : error.message}, got ${got}`)
  }
  const config = tree as unknown as Config
  const port = Number(/:(\d+)$/.exec(config.listen)![1])
  if (port > 65535) throw new ConfigError(`invalid setting listen (${origins.get('listen') ?? 'default'}): port ${port} is out of range`)
  const metricsPort = config.metrics.listen ? Number(/:(\d+)$/.exec(config.metrics.listen)![1]) : 0
  if (metricsPort > 65535)
    throw new ConfigError(
      `invalid setting metrics.listen (${settingOrigin('metrics.listen', origins)}): port ${metricsPort} is out of range`,
    )
  config.publicUrl = config.publicUrl.replace(/\/$/, '')
  config.data = resolve(config.data)
  if (config.git.repositoriesDir !== undefined) config.git.repositoriesDir = resolve(config.git.repositoriesDir)
  // A relative SQLite path is relative to where Wharf was started, like `data`.
  if (config.database.url?.startsWith('sqlite:')) config.database.url = `sqlite:${resolve(config.database.url.slice('sqlite:'.length))}`
  checkUpstreams(config.dependencyProxy, origins)
  checkOidcProviders(config.sso, origins)
  checkLdapServers(config.sso, origins)
  checkStorage(config.storage, origins)
  if (config.secrets.sealingKeyFile) {
    const at = 'secrets.sealingKeyFile'
    config.secrets.sealingKeyFile = resolve(config.secrets.sealingKeyFile)
    const problem = sealingKeyProblem(readSecretFile(at, settingOrigin(at, origins), config.secrets.sealingKeyFile))
    if (problem) throw new ConfigError(`invalid setting ${at} (${settingOrigin(at, origins)}): ${problem}`)
  }
  if (config.tls)
    config.tls =
      sources.checkTlsFiles === false ? { cert: resolve(config.tls.cert), key: resolve(config.tls.key) } : checkTls(config.tls, origins)
  return deepFreeze(config)
}

/** Credentials come in pairs or as a token, host names are unique, CA files are readable PEM. */
function checkUpstreams(dp: Config['dependencyProxy'], origins: Map<string, Origin>): void {
  const where = settingOrigin('dependencyProxy.upstreams', origins)
  const seen = new Set<string>()
  dp.upstreams.forEach((u, i) => {
    const at = `dependencyProxy.upstreams.${i}`
    if ((u.username === undefined) !== (u.password === undefined))
      throw new ConfigError(`invalid setting ${at} (${where}): username and password come together`)
    if (u.token !== undefined && u.username !== undefined)
      throw new ConfigError(`invalid setting ${at} (${where}): give either token or username/password, not both`)
    if (seen.has(u.host)) throw new ConfigError(`invalid setting ${at}.host (${where}): ${u.host} is listed twice`)
    seen.add(u.host)
    u.url = u.url.replace(/\/$/, '')
    if (u.caFile !== undefined) {
      u.caFile = resolve(u.caFile)
      let pem: string
      try {
        pem = readFileSync(u.caFile, 'utf8')
      } catch (e) {
        throw new ConfigError(
          `invalid setting ${at}.caFile (${where}): cannot read ${u.caFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        )
      }
      if (!pem.includes('-----BEGIN CERTIFICATE-----'))
        throw new ConfigError(`invalid setting ${at}.caFile (${where}): ${u.caFile} holds no PEM certificate`)
    }
  })
  if (dp.mirrorListen !== undefined && Number(/:(\d+)$/.exec(dp.mirrorListen)![1]) > 65535) {
    throw new ConfigError(
      `invalid setting dependencyProxy.mirrorListen (${settingOrigin('dependencyProxy.mirrorListen', origins)}): port is out of range`,
    )
  }
}

/** Ids are unique, each provider has exactly one secret source (a file is read here), and plain http only reaches loopback. */
function checkOidcProviders(sso: Config['sso'], origins: Map<string, Origin>): void {
  const where = settingOrigin('sso.oidc', origins)
  const seen = new Set<string>()
  sso.oidc.forEach((p, i) => {
    const at = `sso.oidc.${i}`
    if (seen.has(p.id)) throw new ConfigError(`invalid setting ${at}.id (${where}): ${p.id} is listed twice`)
    seen.add(p.id)
    if ((p.clientSecret === undefined) === (p.clientSecretFile === undefined))
      throw new ConfigError(`invalid setting ${at} (${where}): give exactly one of clientSecret and clientSecretFile`)
    const issuer = new URL(p.issuer)
    if (issuer.protocol === 'http:' && !['127.0.0.1', 'localhost', '[::1]'].includes(issuer.hostname))
      throw new ConfigError(`invalid setting ${at}.issuer (${where}): an issuer must use https (plain http only on loopback)`)
    if (p.clientSecretFile !== undefined) {
      const file = resolve(p.clientSecretFile)
      let secret: string
      try {
        secret = readFileSync(file, 'utf8').split('\n', 1)[0]!.trim()
      } catch (e) {
        throw new ConfigError(
          `invalid setting ${at}.clientSecretFile (${where}): cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
        )
      }
      if (!secret) throw new ConfigError(`invalid setting ${at}.clientSecretFile (${where}): ${file} is empty`)
      // The rest of Wharf sees one field; publicSettings masks it.
      p.clientSecret = secret
      delete p.clientSecretFile
    }
  })
}

/** A file's first line, for a secret kept out of the config file. */
function readSecretFile(at: string, where: string, path: string): string {
  const file = resolve(path)
  let secret: string
  try {
    secret = readFileSync(file, 'utf8').split('\n', 1)[0]!.trim()
  } catch (e) {
    throw new ConfigError(
      `invalid setting ${at} (${where}): cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    )
  }
  if (!secret) throw new ConfigError(`invalid setting ${at} (${where}): ${file} is empty`)
  return secret
}

/** Ids unique (across OIDC too: identities are keyed by id), one bind password source, TLS one way, a readable CA file for it. */
function checkLdapServers(sso: Config['sso'], origins: Map<string, Origin>): void {
  const where = settingOrigin('sso.ldap', origins)
  const seen = new Set(sso.oidc.map((p) => p.id))
  sso.ldap.forEach((l, i) => {
    const at = `sso.ldap.${i}`
    if (seen.has(l.id)) throw new ConfigError(`invalid setting ${at}.id (${where}): ${l.id} is already used by another provider`)
    seen.add(l.id)
    if (l.bindPassword !== undefined && l.bindPasswordFile !== undefined)
      throw new ConfigError(`invalid setting ${at} (${where}): give bindPassword or bindPasswordFile, not both`)
    if ((l.bindPassword !== undefined || l.bindPasswordFile !== undefined) && l.bindDn === undefined)
      throw new ConfigError(`invalid setting ${at} (${where}): a bind password needs bindDn`)
    if (l.startTls && l.url.startsWith('ldaps:'))
      throw new ConfigError(`invalid setting ${at}.startTls (${where}): ldaps:// is TLS already; use ldap:// with startTls`)
    if (l.caFile !== undefined && !l.startTls && !l.url.startsWith('ldaps:'))
      throw new ConfigError(`invalid setting ${at}.caFile (${where}): ${l.url} is plain LDAP; use ldaps:// or startTls: true for TLS`)
    if (l.bindPasswordFile !== undefined) {
      l.bindPassword = readSecretFile(`${at}.bindPasswordFile`, where, l.bindPasswordFile)
      delete l.bindPasswordFile
    }
    if (l.caFile !== undefined) {
      l.caFile = resolve(l.caFile)
      try {
        if (!readFileSync(l.caFile, 'utf8').includes('-----BEGIN CERTIFICATE-----'))
          throw new ConfigError(`invalid setting ${at}.caFile (${where}): ${l.caFile} holds no PEM certificate`)
      } catch (e) {
        if (e instanceof ConfigError) throw e
        throw new ConfigError(`invalid setting ${at}.caFile (${where}): cannot read ${l.caFile}: ${(e as NodeJS.ErrnoException).code}`)
      }
    }
  })
}

/** S3 needs a bucket, and a secret key with its key id (or neither: the SDK's default credentials then). */
function checkStorage(storage: Config['storage'], origins: Map<string, Origin>): void {
  const s3 = storage.s3
  if (storage.driver !== 's3') return
  if (!s3?.bucket)
    throw new ConfigError(`missing setting storage.s3.bucket (${settingOrigin('storage.s3.bucket', origins)}): storage is s3`)
  if ((s3.accessKeyId === undefined) !== (s3.secretAccessKey === undefined))
    throw new ConfigError(
      `invalid setting storage.s3.accessKeyId (${settingOrigin('storage.s3.accessKeyId', origins)}): the key id and the secret key come together (or neither, for the SDK's default credentials)`,
    )
}

function settingOrigin(key: string, origins: Map<string, Origin>): string {
  const s = SETTINGS.find((x) => x.key === key)
  return origins.get(key) ?? (s ? `--${s.flag} / ${s.env}` : 'config')
}

/** Each file a readable PEM, and the key belongs to the certificate. Paths come back absolute. */
function checkTls(tls: NonNullable<Config['tls']>, origins: Map<string, Origin>): { cert: string; key: string } {
  const where = (key: 'tls.cert' | 'tls.key') => settingOrigin(key, origins)
  const read = (key: 'tls.cert' | 'tls.key', path: string) => {
    try {
      return readFileSync(path)
    } catch (e) {
      throw new ConfigError(
        `invalid setting ${key} (${where(key)}): cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
      )
    }
  }
  const cert = resolve(tls.cert)
  const key = resolve(tls.key)
  let x509: X509Certificate
  try {
    x509 = new X509Certificate(read('tls.cert', cert))
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new ConfigError(`invalid setting tls.cert (${where('tls.cert')}): ${cert} holds no PEM certificate`)
  }
  let privateKey: ReturnType<typeof createPrivateKey>
  try {
    privateKey = createPrivateKey(read('tls.key', key))
  } catch (e) {
    if (e instanceof ConfigError) throw e
    throw new ConfigError(`invalid setting tls.key (${where('tls.key')}): ${key} holds no unencrypted PEM private key`)
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new ConfigError(`invalid setting tls.key (${where('tls.key')}): ${key} is not the key of the certificate in ${cert}`)
  }
  return { cert, key }
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object') {
    for (const v of Object.values(o)) deepFreeze(v)
    Object.freeze(o)
  }
  return o
}

export function listenAddress(config: Pick<Config, 'listen'>): { host: string; port: number } {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(config.listen)!
  return { host: m[1]!, port: Number(m[2]) }
}
