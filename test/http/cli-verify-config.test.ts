// `wharf verify-config` prints the effective config, with every secret hidden.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { it } from 'node:test'
import { SETTINGS } from '../../src/config/load.ts'

const repo = resolve(import.meta.dirname, '..', '..')
const node = join(repo, 'node_modules', '.bin', 'node')

it('verify-config shows the dependency proxy upstreams without their password or token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-verify-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'wharf.yaml')
  await writeFile(
    file,
    'dependencyProxy:\n  upstreams:\n    - host: docker.io\n      url: https://hub.example\n      username: bot\n      password: hunter2-secret\n    - host: ghcr.io\n      url: https://ghcr.io\n      token: ghp-static-secret\n',
  )
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))
  const r = spawnSync(node, ['src/cli/main.ts', 'verify-config', '--config', file], { cwd: repo, env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  const shown = JSON.parse(r.stdout) as { dependencyProxy: { upstreams: Array<Record<string, string>> } }
  assert.deepEqual(shown.dependencyProxy.upstreams, [
    { host: 'docker.io', url: 'https://hub.example', username: 'bot', password: '(hidden)' },
    { host: 'ghcr.io', url: 'https://ghcr.io', token: '(hidden)' },
  ])
  assert.ok(!r.stdout.includes('hunter2') && !r.stdout.includes('ghp-static'))
})

it('verify-config shows every setting (each set here through its WHARF_* variable), secrets as "(hidden)"', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-verify-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const bare = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'),
  ) as Record<string, string>
  const tls = spawnSync(node, ['src/cli/main.ts', 'tls', 'init', '--out', join(dir, 'tls'), '--data', join(dir, 'data')], {
    cwd: repo,
    env: bare,
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(tls.status, 0, tls.stderr)
  const cert = join(dir, 'tls', 'server.crt')
  const key = join(dir, 'tls', 'server.key')
  const sealingKey = join(dir, 'sealing.key')
  await writeFile(sealingKey, `${randomBytes(32).toString('base64')}\n`)
  // Keyed by every setting: a new setting without a value here does not compile.
  const sample: Record<(typeof SETTINGS)[number]['key'], { env: string; shown: unknown }> = {
    listen: { env: '0.0.0.0:5443', shown: '0.0.0.0:5443' },
    publicUrl: { env: 'https://wharf.example.test', shown: 'https://wharf.example.test' },
    data: { env: join(dir, 'data'), shown: join(dir, 'data') },
    logLevel: { env: 'warn', shown: 'warn' },
    'database.url': { env: 'postgres://wharf:db-secret-value@db.example.test/wharf', shown: '(hidden)' },
    'database.poolSize': { env: '23', shown: 23 },
    'auth.tokenTtlSeconds': { env: '600', shown: 600 },
    'auth.loginSecretTtlSeconds': { env: '120', shown: 120 },
    'auth.rootPassword': { env: 'root-secret-value', shown: '(hidden)' },
    'auth.passwordSignIn': { env: 'false', shown: false },
    'auth.passwordBreakGlass': { env: 'false', shown: false },
    'sso.oidc': {
      env: JSON.stringify([
        { id: 'corp', label: 'Corp', issuer: 'https://idp.example', clientId: 'wharf', clientSecret: 'oidc-secret-value' },
      ]),
      shown: [{ id: 'corp', label: 'Corp', issuer: 'https://idp.example', clientId: 'wharf', clientSecret: '(hidden)' }],
    },
    'sso.ldap': {
      env: JSON.stringify([
        {
          id: 'dir',
          label: 'Directory',
          url: 'ldap://ldap.example',
          bindDn: 'cn=wharf',
          bindPassword: 'ldap-secret-value',
          baseDn: 'dc=x',
        },
      ]),
      shown: [{ id: 'dir', label: 'Directory', url: 'ldap://ldap.example', bindDn: 'cn=wharf', bindPassword: '(hidden)', baseDn: 'dc=x' }],
    },
    'sso.syncIntervalSeconds': { env: '23', shown: 23 },
    'tls.cert': { env: cert, shown: cert },
    'tls.key': { env: key, shown: key },
    'metrics.listen': { env: '127.0.0.1:9464', shown: '127.0.0.1:9464' },
    'metrics.token': { env: 'metrics-secret-value', shown: '(hidden)' },
    'secrets.sealingKeyFile': { env: sealingKey, shown: sealingKey },
    shutdownGraceSeconds: { env: '45', shown: 45 },
    'limits.manifestBytes': { env: '8192', shown: 8192 },
    'limits.uploadTtlSeconds': { env: '3600', shown: 3600 },
    'limits.pageMax': { env: '500', shown: 500 },
    'limits.namespaceStorageBytes': { env: '1000000', shown: 1000000 },
    'limits.gitProcesses': { env: '3', shown: 3 },
    'limits.gitQueue': { env: '7', shown: 7 },
    'limits.bodyIdleTimeoutSeconds': { env: '11', shown: 11 },
    'limits.headersTimeoutSeconds': { env: '12', shown: 12 },
    'limits.keepAliveTimeoutSeconds': { env: '13', shown: 13 },
    'limits.maxConnectionsPerAddress': { env: '14', shown: 14 },
    'dependencyProxy.upstreams': {
      env: JSON.stringify([{ host: 'quay.io', url: 'https://quay.example', username: 'bot', password: 'upstream-secret-value' }]),
      shown: [{ host: 'quay.io', url: 'https://quay.example', username: 'bot', password: '(hidden)' }],
    },
    'dependencyProxy.mirrorListen': { env: '127.0.0.1:5001', shown: '127.0.0.1:5001' },
    'dependencyProxy.mirrorAuth': { env: 'token', shown: 'token' },
    'dependencyProxy.tagTtlSeconds': { env: '15', shown: 15 },
    'dependencyProxy.cleanupDays': { env: '16', shown: 16 },
    'dependencyProxy.upstreamTimeoutSeconds': { env: '17', shown: 17 },
    'ci.jobHeartbeatTimeoutSeconds': { env: '18', shown: 18 },
    'git.repositoriesDir': { env: join(dir, 'shared-git'), shown: join(dir, 'shared-git') },
    'ci.maxJobsPerPipeline': { env: '19', shown: 19 },
    'ci.schedulerIntervalSeconds': { env: '21', shown: 21 },
    'webhooks.allowLocalNetwork': { env: 'true', shown: true },
    'webhooks.allowedHosts': { env: 'hooks.internal, 10.0.0.7', shown: ['hooks.internal', '10.0.0.7'] },
    'webhooks.timeoutSeconds': { env: '20', shown: 20 },
    'storage.driver': { env: 's3', shown: 's3' },
    'storage.filesystem.accelRedirect': { env: '/_wharf_blobs/', shown: '/_wharf_blobs/' },
    'storage.s3.endpoint': { env: 'http://127.0.0.1:9000', shown: 'http://127.0.0.1:9000' },
    'storage.s3.region': { env: 'eu-west-3', shown: 'eu-west-3' },
    'storage.s3.bucket': { env: 'wharf-blobs', shown: 'wharf-blobs' },
    'storage.s3.prefix': { env: 'prod/', shown: 'prod/' },
    'storage.s3.accessKeyId': { env: 'AKIDEXAMPLE', shown: 'AKIDEXAMPLE' },
    'storage.s3.secretAccessKey': { env: 's3-secret-value', shown: '(hidden)' },
    'storage.s3.forcePathStyle': { env: 'true', shown: true },
    'storage.s3.redirect': { env: '1', shown: true },
    'gc.intervalMinutes': { env: '20', shown: 20 },
    'gc.graceSeconds': { env: '21', shown: 21 },
    'gc.untaggedDelaySeconds': { env: '22', shown: 22 },
  }
  const env = { ...bare }
  for (const s of SETTINGS) env[s.env] = sample[s.key].env
  const r = spawnSync(node, ['src/cli/main.ts', 'verify-config'], { cwd: repo, env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  const shown = JSON.parse(r.stdout) as Record<string, unknown>
  for (const s of SETTINGS) {
    const value = s.key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown> | undefined)?.[k], shown)
    assert.deepEqual(value, sample[s.key].shown, `${s.key} (${s.env})`)
  }
  assert.ok(!r.stdout.includes('secret-value'), r.stdout)
})
