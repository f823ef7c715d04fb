import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { ConfigError, listenAddress, loadConfig } from './load.ts'
import { DEFAULTS } from './schema.ts'

let dir: string
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'wharf-config-test-'))
})
after(async () => {
  await rm(dir, { recursive: true, force: true })
})

let fileCounter = 0
async function configFile(text: string, ext = 'yaml'): Promise<string> {
  const path = join(dir, `config-${++fileCounter}.${ext}`)
  await writeFile(path, text)
  return path
}

/** Asserts a ConfigError whose single-line message names the setting and where it came from. */
function assertConfigError(fn: () => unknown, ...mustMention: string[]): string {
  let caught: unknown
  try {
    fn()
  } catch (e) {
    caught = e
  }
  assert.ok(caught instanceof ConfigError, `expected ConfigError, got ${String(caught)}`)
  const msg = caught.message
  assert.equal(caught.name, 'ConfigError')
  assert.ok(!msg.includes('\n'), `message must be one line: ${JSON.stringify(msg)}`)
  for (const m of mustMention) assert.ok(msg.includes(m), `message ${JSON.stringify(msg)} should mention ${JSON.stringify(m)}`)
  return msg
}

describe('loadConfig defaults', () => {
  it('uses the defaults with no sources and derives publicUrl from listen', () => {
    const c = loadConfig({ env: {} })
    assert.equal(c.listen, DEFAULTS.listen)
    assert.equal(c.listen, '127.0.0.1:5000')
    assert.equal(c.publicUrl, 'http://127.0.0.1:5000')
    assert.equal(c.data, resolve('./data'))
    assert.equal(c.logLevel, 'info')
    assert.deepEqual(
      { ...c.limits },
      {
        manifestBytes: 4 << 20,
        uploadTtlSeconds: 86400,
        pageMax: 10_000,
        gitProcesses: 8,
        gitQueue: 512,
        bodyIdleTimeoutSeconds: 60,
        headersTimeoutSeconds: 30,
        keepAliveTimeoutSeconds: 72,
        maxConnectionsPerAddress: 256,
      },
    )
  })

  it('reads the connection limits from flags and environment; 0 turns the per-address cap off', () => {
    const c = loadConfig({
      env: { WHARF_LIMITS_BODY_IDLE_TIMEOUT_SECONDS: '5', WHARF_LIMITS_MAX_CONNECTIONS_PER_ADDRESS: '0' },
      flags: { 'keep-alive-timeout-seconds': '9', 'headers-timeout-seconds': '7' },
    })
    assert.equal(c.limits.bodyIdleTimeoutSeconds, 5)
    assert.equal(c.limits.maxConnectionsPerAddress, 0)
    assert.equal(c.limits.keepAliveTimeoutSeconds, 9)
    assert.equal(c.limits.headersTimeoutSeconds, 7)
    assertConfigError(
      () => loadConfig({ env: {}, flags: { 'body-idle-timeout-seconds': '0' } }),
      'limits.bodyIdleTimeoutSeconds',
      '--body-idle-timeout-seconds',
    )
  })

  it('returns a deeply frozen object and does not mutate DEFAULTS', () => {
    const c = loadConfig({ env: {}, flags: { 'page-max': '7' } })
    assert.ok(Object.isFrozen(c))
    assert.ok(Object.isFrozen(c.limits))
    assert.equal(DEFAULTS.limits.pageMax, 10_000)
    assert.equal(Object.isFrozen(DEFAULTS), false)
  })

  it('ignores empty environment variables', () => {
    const c = loadConfig({ env: { WHARF_LISTEN: '', WHARF_LIMITS_PAGE_MAX: '' } })
    assert.equal(c.listen, '127.0.0.1:5000')
    assert.equal(c.limits.pageMax, 10_000)
  })
})

describe('loadConfig precedence: flags > env > file > defaults', () => {
  it('flag beats env beats file, per setting', async () => {
    const file = await configFile('listen: 127.0.0.1:1001\nlogLevel: warn\nlimits:\n  pageMax: 11\n  manifestBytes: 5000\n')
    const env = { WHARF_LISTEN: '127.0.0.1:1002', WHARF_LIMITS_PAGE_MAX: '22', WHARF_LOG_LEVEL: 'debug' }
    const c = loadConfig({ file, env, flags: { listen: '127.0.0.1:1003' } })
    assert.equal(c.listen, '127.0.0.1:1003') // flag
    assert.equal(c.logLevel, 'debug') // env over file
    assert.equal(c.limits.pageMax, 22) // env over file
    assert.equal(c.limits.manifestBytes, 5000) // file over default
    assert.equal(c.limits.uploadTtlSeconds, 86400) // default
    assert.equal(c.publicUrl, 'http://127.0.0.1:1003')
  })

  it('ci.maxJobsPerPipeline from the file, env or flag, 500 by default, within 1 to 10000', async () => {
    assert.equal(loadConfig({ env: {} }).ci.maxJobsPerPipeline, 500)
    const file = await configFile('ci:\n  maxJobsPerPipeline: 40\n')
    assert.equal(loadConfig({ file, env: {} }).ci.maxJobsPerPipeline, 40)
    assert.equal(loadConfig({ file, env: { WHARF_CI_MAX_JOBS_PER_PIPELINE: '41' } }).ci.maxJobsPerPipeline, 41)
    assert.equal(
      loadConfig({ file, env: { WHARF_CI_MAX_JOBS_PER_PIPELINE: '41' }, flags: { 'max-jobs-per-pipeline': '42' } }).ci.maxJobsPerPipeline,
      42,
    )
    assertConfigError(
      () => loadConfig({ env: {}, flags: { 'max-jobs-per-pipeline': '0' } }),
      'ci.maxJobsPerPipeline',
      '--max-jobs-per-pipeline',
    )
    assertConfigError(
      () => loadConfig({ env: { WHARF_CI_MAX_JOBS_PER_PIPELINE: '10001' } }),
      'ci.maxJobsPerPipeline',
      'WHARF_CI_MAX_JOBS_PER_PIPELINE',
    )
  })

  it('env beats file', async () => {
    const file = await configFile('listen: 127.0.0.1:1001\n')
    assert.equal(loadConfig({ file, env: { WHARF_LISTEN: '127.0.0.1:1002' } }).listen, '127.0.0.1:1002')
  })

  it('reads the file named by WHARF_CONFIG when no file is given', async () => {
    const file = await configFile('logLevel: error\n')
    assert.equal(loadConfig({ env: { WHARF_CONFIG: file } }).logLevel, 'error')
  })

  it('reads JSON config files too', async () => {
    const file = await configFile(JSON.stringify({ listen: '0.0.0.0:7000', limits: { uploadTtlSeconds: 120 } }), 'json')
    const c = loadConfig({ file, env: {} })
    assert.equal(c.listen, '0.0.0.0:7000')
    assert.equal(c.limits.uploadTtlSeconds, 120)
  })

  it('an explicit publicUrl from a lower-precedence source is not replaced by a derived one', async () => {
    const file = await configFile('publicUrl: https://registry.example.com/\n')
    const c = loadConfig({ file, env: {}, flags: { listen: '0.0.0.0:9999' } })
    assert.equal(c.publicUrl, 'https://registry.example.com')
  })
})

describe('publicUrl derived from listen', () => {
  const cases: Array<[string, string]> = [
    ['127.0.0.1:5000', 'http://127.0.0.1:5000'],
    ['0.0.0.0:8080', 'http://127.0.0.1:8080'],
    ['[::]:8080', 'http://127.0.0.1:8080'],
    ['[::1]:8080', 'http://[::1]:8080'],
    ['registry.local:443', 'http://registry.local:443'],
  ]
  for (const [listen, url] of cases) {
    it(`${listen} → ${url}`, () => {
      assert.equal(loadConfig({ env: {}, flags: { listen } }).publicUrl, url)
    })
  }

  it('strips a trailing slash from an explicit publicUrl', () => {
    assert.equal(loadConfig({ env: { WHARF_PUBLIC_URL: 'http://h:1/' } }).publicUrl, 'http://h:1')
  })

  it('listenAddress splits host and port, unbracketing IPv6', () => {
    assert.deepEqual(listenAddress(loadConfig({ env: {}, flags: { listen: '[::1]:8080' } })), { host: '::1', port: 8080 })
    assert.deepEqual(listenAddress(loadConfig({ env: {}, flags: { listen: '0.0.0.0:0' } })), { host: '0.0.0.0', port: 0 })
  })
})

describe('invalid settings give a one-line ConfigError naming the setting and its origin', () => {
  it('invalid listen from a flag', () => {
    assertConfigError(() => loadConfig({ env: {}, flags: { listen: 'nope' } }), 'listen', '--listen', '"nope"')
  })

  it('invalid listen from the environment', () => {
    assertConfigError(() => loadConfig({ env: { WHARF_LISTEN: 'bad host:5000' } }), 'listen', 'WHARF_LISTEN')
  })

  it('invalid listen from the file', async () => {
    const file = await configFile('listen: "http://x:5000"\n')
    assertConfigError(() => loadConfig({ file, env: {} }), 'listen', file)
  })

  it('port out of range', () => {
    assertConfigError(() => loadConfig({ env: {}, flags: { listen: '127.0.0.1:70000' } }), 'listen', '--listen', '70000')
  })

  it('invalid publicUrl', () => {
    assertConfigError(() => loadConfig({ env: {}, flags: { 'public-url': 'ftp://x' } }), 'publicUrl', '--public-url')
    assertConfigError(() => loadConfig({ env: { WHARF_PUBLIC_URL: 'http://h/path' } }), 'publicUrl', 'WHARF_PUBLIC_URL')
    assertConfigError(() => loadConfig({ env: { WHARF_PUBLIC_URL: 'localhost:5000' } }), 'publicUrl', 'WHARF_PUBLIC_URL')
  })

  it('invalid logLevel', async () => {
    assertConfigError(() => loadConfig({ env: { WHARF_LOG_LEVEL: 'loud' } }), 'logLevel', 'WHARF_LOG_LEVEL', 'loud')
    assertConfigError(() => loadConfig({ env: {}, flags: { 'log-level': 'INFO' } }), 'logLevel', '--log-level')
    const file = await configFile('logLevel: verbose\n')
    assertConfigError(() => loadConfig({ file, env: {} }), 'logLevel', file)
  })

  it('non-integer values', () => {
    assertConfigError(
      () => loadConfig({ env: {}, flags: { 'max-manifest-bytes': 'abc' } }),
      'limits.manifestBytes',
      '--max-manifest-bytes',
      'integer',
    )
    assertConfigError(() => loadConfig({ env: { WHARF_LIMITS_PAGE_MAX: '1.5' } }), 'limits.pageMax', 'WHARF_LIMITS_PAGE_MAX')
    assertConfigError(
      () => loadConfig({ env: { WHARF_LIMITS_UPLOAD_TTL_SECONDS: '-5' } }),
      'limits.uploadTtlSeconds',
      'WHARF_LIMITS_UPLOAD_TTL_SECONDS',
    )
    assertConfigError(() => loadConfig({ env: { WHARF_LIMITS_PAGE_MAX: '1e3' } }), 'limits.pageMax', 'WHARF_LIMITS_PAGE_MAX')
  })

  it('integers out of range', () => {
    assertConfigError(() => loadConfig({ env: {}, flags: { 'page-max': '0' } }), 'limits.pageMax', '--page-max')
    assertConfigError(
      () => loadConfig({ env: { WHARF_LIMITS_UPLOAD_TTL_SECONDS: '59' } }),
      'limits.uploadTtlSeconds',
      'WHARF_LIMITS_UPLOAD_TTL_SECONDS',
    )
    assertConfigError(() => loadConfig({ env: {}, flags: { 'max-manifest-bytes': '100' } }), 'limits.manifestBytes', '--max-manifest-bytes')
  })

  it('wrong types in the file', async () => {
    const file = await configFile('limits:\n  pageMax: "many"\n')
    assertConfigError(() => loadConfig({ file, env: {} }), 'limits.pageMax', file)
    const file2 = await configFile('limits:\n  pageMax: 2.5\n')
    assertConfigError(() => loadConfig({ file: file2, env: {} }), 'limits.pageMax', file2)
  })

  it('unknown keys in the file are rejected', async () => {
    const file = await configFile('listen: 127.0.0.1:5000\nlistne: 127.0.0.1:6000\n')
    assertConfigError(() => loadConfig({ file, env: {} }), 'listne', file)
    const nested = await configFile('limits:\n  pageMax: 5\n  bogus: 1\n')
    assertConfigError(() => loadConfig({ file: nested, env: {} }), 'limits.bogus', nested)
  })

  it('an empty section (all its keys commented out) is not an unknown setting', async () => {
    const file = await configFile('listen: 127.0.0.1:5001\nlimits:\n  # pageMax: 5\n')
    const c = loadConfig({ file, env: {} })
    assert.equal(c.listen, '127.0.0.1:5001')
    assert.equal(c.limits.pageMax, 10_000)
  })

  it('an empty file is the defaults', async () => {
    const file = await configFile('# nothing here\n')
    assert.equal(loadConfig({ file, env: {} }).listen, '127.0.0.1:5000')
  })

  it('an unreadable or unparsable file is a ConfigError naming the file', async () => {
    const missing = join(dir, 'does-not-exist.yaml')
    assertConfigError(() => loadConfig({ file: missing, env: {} }), missing)
    const broken = await configFile('listen: [unclosed\n  - x: : :\n')
    assertConfigError(() => loadConfig({ file: broken, env: {} }), broken)
  })

  it('a later valid source does not hide an earlier invalid value of another setting', async () => {
    const file = await configFile('logLevel: nope\n')
    assertConfigError(() => loadConfig({ file, env: { WHARF_LISTEN: '127.0.0.1:1' } }), 'logLevel', file)
  })

  it('a valid flag overrides an invalid env value for the same setting', () => {
    const c = loadConfig({ env: { WHARF_LOG_LEVEL: 'loud' }, flags: { 'log-level': 'warn' } })
    assert.equal(c.logLevel, 'warn')
  })
})

describe('operations settings: metrics and shutdown', () => {
  it('defaults: no metrics token or listener, 30 s of shutdown grace', () => {
    const c = loadConfig({ env: {} })
    assert.deepEqual({ ...c.metrics }, {})
    assert.equal(c.shutdownGraceSeconds, 30)
  })

  it('reads metrics.token, metrics.listen and shutdownGraceSeconds from each source', async () => {
    const file = await configFile('metrics:\n  listen: 127.0.0.1:9464\nshutdownGraceSeconds: 5\n')
    const c = loadConfig({ file, env: { WHARF_METRICS_TOKEN: 'a-long-enough-token' }, flags: { 'shutdown-grace-seconds': '0' } })
    assert.equal(c.metrics.listen, '127.0.0.1:9464')
    assert.equal(c.metrics.token, 'a-long-enough-token')
    assert.equal(c.shutdownGraceSeconds, 0)
  })

  it('a short metrics token is refused without echoing it; a bad listener or grace names the setting', () => {
    const msg = assertConfigError(
      () => loadConfig({ env: { WHARF_METRICS_TOKEN: 'short-secret' } }),
      'metrics.token',
      'WHARF_METRICS_TOKEN',
      'at least 16',
    )
    assert.ok(!msg.includes('short-secret'), msg)
    assertConfigError(() => loadConfig({ env: {}, flags: { 'metrics-listen': 'nope' } }), 'metrics.listen', '--metrics-listen', 'host:port')
    assertConfigError(
      () => loadConfig({ env: { WHARF_METRICS_LISTEN: '127.0.0.1:70000' } }),
      'metrics.listen',
      'WHARF_METRICS_LISTEN',
      'out of range',
    )
    assertConfigError(
      () => loadConfig({ env: { WHARF_SHUTDOWN_GRACE_SECONDS: '3601' } }),
      'shutdownGraceSeconds',
      'WHARF_SHUTDOWN_GRACE_SECONDS',
    )
  })
})

describe('dependencyProxy settings', () => {
  it('defaults to Docker Hub, a 600 s tag TTL, 90-day cleanup and no mirror listener', () => {
    const c = loadConfig({ env: {} })
    assert.deepEqual(c.dependencyProxy.upstreams, [{ host: 'docker.io', url: 'https://registry-1.docker.io' }])
    assert.equal(c.dependencyProxy.tagTtlSeconds, 600)
    assert.equal(c.dependencyProxy.cleanupDays, 90)
    assert.equal(c.dependencyProxy.mirrorListen, undefined)
    assert.equal(c.dependencyProxy.mirrorAuth, 'anonymous')
  })

  it('takes upstreams from the config file as a YAML list, and from WHARF_DEPENDENCY_PROXY_UPSTREAMS as JSON', async () => {
    const file = await configFile(
      'dependencyProxy:\n  mirrorListen: 0.0.0.0:5001\n  upstreams:\n    - host: docker.io\n      url: https://hub.example/\n      username: bot\n      password: s3cret\n    - host: ghcr.io\n      url: https://ghcr.io\n',
    )
    const c = loadConfig({ env: {}, file })
    assert.equal(c.dependencyProxy.mirrorListen, '0.0.0.0:5001')
    assert.deepEqual(
      c.dependencyProxy.upstreams.map((u) => [u.host, u.url]),
      [
        ['docker.io', 'https://hub.example'],
        ['ghcr.io', 'https://ghcr.io'],
      ],
    )
    const e = loadConfig({
      env: {
        WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"quay.io","url":"http://127.0.0.1:9000"}]',
        WHARF_DEPENDENCY_PROXY_TAG_TTL_SECONDS: '5',
      },
    })
    assert.deepEqual(e.dependencyProxy.upstreams, [{ host: 'quay.io', url: 'http://127.0.0.1:9000' }])
    assert.equal(e.dependencyProxy.tagTtlSeconds, 5)
  })

  it('rejects bad upstreams with one line naming the element, never echoing a password', async () => {
    assertConfigError(
      () => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: 'not json' } }),
      'dependencyProxy.upstreams',
      'WHARF_DEPENDENCY_PROXY_UPSTREAMS',
      'expected JSON',
    )
    assertConfigError(
      () => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"docker.io","url":"ftp://x"}]' } }),
      'dependencyProxy.upstreams.0.url',
      'WHARF_DEPENDENCY_PROXY_UPSTREAMS',
    )
    const pw = assertConfigError(
      () => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"docker.io","url":"https://x","password":""}]' } }),
      'dependencyProxy.upstreams.0.password',
    )
    assert.ok(pw.includes('(hidden)'))
    const half = assertConfigError(
      () => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"docker.io","url":"https://x","password":"hunter2"}]' } }),
      'username and password come together',
    )
    assert.ok(!half.includes('hunter2'))
    assertConfigError(
      () =>
        loadConfig({
          env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"docker.io","url":"https://x"},{"host":"docker.io","url":"https://y"}]' },
        }),
      'listed twice',
    )
    assertConfigError(
      () =>
        loadConfig({
          env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[{"host":"docker.io","url":"https://x","caFile":"/nonexistent/ca.pem"}]' },
        }),
      'dependencyProxy.upstreams.0.caFile',
      'cannot read',
    )
    assertConfigError(() => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_UPSTREAMS: '[]' } }), 'dependencyProxy.upstreams')
    assertConfigError(() => loadConfig({ env: {}, flags: { 'mirror-listen': 'nope' } }), 'dependencyProxy.mirrorListen', '--mirror-listen')
    assertConfigError(
      () => loadConfig({ env: { WHARF_DEPENDENCY_PROXY_MIRROR_AUTH: 'basic' } }),
      'dependencyProxy.mirrorAuth',
      'expected anonymous or token',
    )
  })
})

describe('sso settings', () => {
  const provider = { id: 'corp', label: 'Corp', issuer: 'https://idp.example', clientId: 'wharf' }
  const env = (oidc: unknown, ldap?: unknown) => ({
    WHARF_SSO_OIDC: JSON.stringify(oidc),
    ...(ldap === undefined ? {} : { WHARF_SSO_LDAP: JSON.stringify(ldap) }),
  })

  it('defaults to no providers, passwords on with break glass, an hourly sync', () => {
    const c = loadConfig({ env: {} })
    assert.deepEqual(c.sso, { oidc: [], ldap: [], syncIntervalSeconds: 3600 })
    assert.deepEqual([c.auth.passwordSignIn, c.auth.passwordBreakGlass], [true, true])
  })

  it('reads a client secret from its file, and wants exactly one of clientSecret and clientSecretFile', async () => {
    const file = await configFile('the-client-secret\n', 'secret')
    const c = loadConfig({ env: env([{ ...provider, clientSecretFile: file }]) })
    assert.equal(c.sso.oidc[0]!.clientSecret, 'the-client-secret')
    assert.equal(c.sso.oidc[0]!.clientSecretFile, undefined)
    assertConfigError(() => loadConfig({ env: env([provider]) }), 'sso.oidc.0', 'exactly one of clientSecret and clientSecretFile')
    assertConfigError(
      () => loadConfig({ env: env([{ ...provider, clientSecret: 'a', clientSecretFile: file }]) }),
      'exactly one of clientSecret and clientSecretFile',
    )
    assertConfigError(
      () => loadConfig({ env: env([{ ...provider, clientSecretFile: join(dir, 'absent') }]) }),
      'sso.oidc.0.clientSecretFile',
      'ENOENT',
    )
  })

  it('refuses plain http issuers except on loopback, duplicate ids, and never echoes a secret', () => {
    const msg = assertConfigError(
      () => loadConfig({ env: env([{ ...provider, issuer: 'http://idp.example', clientSecret: 'hush-hush' }]) }),
      'sso.oidc.0.issuer',
      'https',
    )
    assert.ok(!msg.includes('hush-hush'))
    assert.equal(loadConfig({ env: env([{ ...provider, issuer: 'http://127.0.0.1:9000', clientSecret: 's' }]) }).sso.oidc.length, 1)
    assertConfigError(
      () =>
        loadConfig({
          env: env([
            { ...provider, clientSecret: 's' },
            { ...provider, clientSecret: 's' },
          ]),
        }),
      'sso.oidc.1.id',
      'listed twice',
    )
    const bad = assertConfigError(
      () => loadConfig({ env: env([{ ...provider, clientSecret: 'hush-hush', scopes: ['bad scope'] }]) }),
      'sso.oidc.0.scopes.0',
    )
    assert.ok(!bad.includes('hush-hush'))
  })

  it('checks LDAP servers: a bind password needs a bind DN, ids are unique across providers, TLS one way', async () => {
    const dirSettings = { id: 'dir', label: 'Dir', url: 'ldap://ldap.example', baseDn: 'dc=x' }
    assert.equal(loadConfig({ env: env([], [dirSettings]) }).sso.ldap.length, 1)
    assertConfigError(() => loadConfig({ env: env([], [{ ...dirSettings, bindPassword: 'p' }]) }), 'sso.ldap.0', 'needs bindDn')
    assertConfigError(
      () => loadConfig({ env: env([{ ...provider, id: 'dir', clientSecret: 's' }], [dirSettings]) }),
      'sso.ldap.0.id',
      'already used',
    )
    assert.equal(loadConfig({ env: env([], [{ ...dirSettings, startTls: true }]) }).sso.ldap[0]!.startTls, true)
    assertConfigError(
      () => loadConfig({ env: env([], [{ ...dirSettings, url: 'ldaps://ldap.example', startTls: true }]) }),
      'sso.ldap.0.startTls',
      'TLS already',
    )
    // ldapts would silently speak TLS to the plain port when given a CA: refused, with the two ways to get TLS.
    const ca = join(dir, 'ldap-ca.pem')
    await writeFile(ca, '-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n')
    assertConfigError(() => loadConfig({ env: env([], [{ ...dirSettings, caFile: ca }]) }), 'sso.ldap.0.caFile', 'startTls: true')
    assert.equal(loadConfig({ env: env([], [{ ...dirSettings, caFile: ca, startTls: true }]) }).sso.ldap[0]!.caFile, ca)
  })
})

describe('database.url', () => {
  it('defaults to the data directory; a relative sqlite: path is made absolute; postgres URLs pass as given, password hidden', () => {
    assert.equal(loadConfig({ env: {} }).database.url, undefined)
    assert.equal(loadConfig({ env: { WHARF_DATABASE_URL: 'sqlite:meta/w.db' } }).database.url, `sqlite:${resolve('meta/w.db')}`)
    const pg = loadConfig({ env: { WHARF_DATABASE_URL: 'postgresql://wharf:pw-secret@db:5432/wharf', WHARF_DATABASE_POOL_SIZE: '4' } })
    assert.deepEqual(pg.database, { url: 'postgresql://wharf:pw-secret@db:5432/wharf', poolSize: 4 })
  })

  it('refuses another scheme and a pool size of 0 with one line naming the setting, never echoing the URL', () => {
    const msg = assertConfigError(
      () => loadConfig({ env: { WHARF_DATABASE_URL: 'mysql://root:pw-secret@db/wharf' } }),
      'database.url',
      'WHARF_DATABASE_URL',
    )
    assert.ok(!msg.includes('pw-secret'), msg)
    assertConfigError(() => loadConfig({ flags: { 'database-pool-size': '0' } }), 'database.poolSize', '--database-pool-size')
  })
})

describe('storage settings', () => {
  it('defaults to the filesystem; s3 reads its settings from a file and the secret from the environment', async () => {
    assert.deepEqual(loadConfig({ env: {} }).storage, { driver: 'filesystem' })
    const file = await configFile(
      'storage:\n  driver: s3\n  s3:\n    bucket: wharf-blobs\n    endpoint: http://127.0.0.1:9000\n    forcePathStyle: true\n',
    )
    const c = loadConfig({ env: { WHARF_S3_ACCESS_KEY_ID: 'AKID', WHARF_S3_SECRET_ACCESS_KEY: 'hunter2-s3' }, file })
    assert.deepEqual(c.storage, {
      driver: 's3',
      s3: {
        bucket: 'wharf-blobs',
        endpoint: 'http://127.0.0.1:9000',
        forcePathStyle: true,
        accessKeyId: 'AKID',
        secretAccessKey: 'hunter2-s3',
      },
    })
  })

  it('s3 needs a bucket, a key id with its secret, and an S3 bucket name; a bad secret is never echoed', () => {
    assertConfigError(() => loadConfig({ env: { WHARF_STORAGE: 's3' } }), 'storage.s3.bucket')
    assertConfigError(() => loadConfig({ env: { WHARF_STORAGE: 'gcs' } }), 'storage.driver', 'WHARF_STORAGE')
    assertConfigError(() => loadConfig({ env: { WHARF_STORAGE: 's3', WHARF_S3_BUCKET: 'Bad_Bucket' } }), 'storage.s3.bucket')
    assertConfigError(
      () => loadConfig({ env: { WHARF_STORAGE: 's3', WHARF_S3_BUCKET: 'b-1', WHARF_S3_ACCESS_KEY_ID: 'AKID' } }),
      'storage.s3.accessKeyId',
    )
    const msg = assertConfigError(
      () => loadConfig({ env: { WHARF_STORAGE: 's3', WHARF_S3_BUCKET: 'b-1', WHARF_S3_SECRET_ACCESS_KEY: 'hunter2-s3' } }),
      'storage.s3.accessKeyId',
    )
    assert.ok(!msg.includes('hunter2'))
  })
})

describe('secrets.sealingKeyFile', () => {
  it('is resolved and must hold a 32-byte base64 key; a missing or malformed file names the setting', async () => {
    const good = join(dir, 'sealing.key')
    await writeFile(good, `${Buffer.alloc(32, 7).toString('base64')}\n`)
    const config = loadConfig({ env: { WHARF_SEALING_KEY_FILE: good } })
    assert.equal(config.secrets.sealingKeyFile, good)
    assertConfigError(
      () => loadConfig({ env: { WHARF_SEALING_KEY_FILE: join(dir, 'absent.key') } }),
      'secrets.sealingKeyFile',
      'WHARF_SEALING_KEY_FILE',
      'cannot read',
    )
    const short = join(dir, 'short.key')
    await writeFile(short, `${Buffer.alloc(16).toString('base64')}\n`)
    assertConfigError(() => loadConfig({ env: { WHARF_SEALING_KEY_FILE: short } }), 'secrets.sealingKeyFile', '32 random bytes')
  })
})
