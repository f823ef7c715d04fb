import { mkdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { buildApp } from './app.ts'
import { listenAddress, publicSettings } from './config/load.ts'
import { gitPool } from './git/index.ts'
import type { Config } from './config/schema.ts'
import { databaseConfig, migrate, openDb } from './metadata/db.ts'
import { connectHookSources } from './hooks/sources.ts'
import { createServices } from './services.ts'
import { openStorage } from './storage/open.ts'
import { Metrics, metricsServer } from './ops/index.ts'
import { buildMirrorApp } from './proxy/index.ts'
import { WharfError } from './core/errors.ts'
import { LeasedTask } from './metadata/leases.ts'

/** How often stale upload sessions are looked for; a quarter of the TTL, at most every ten minutes. */
const sweepPeriodMs = (ttlSeconds: number) => Math.min(ttlSeconds * 250, 10 * 60 * 1000)
/** How often push events whose listeners failed (or never ran) are delivered again. */
const PUSH_REDELIVERY_MS = 30_000

/** How often cleanup policies are checked for a due run (their cadences are days). */
const POLICY_CHECK_MS = 10 * 60 * 1000

/** How often the dependency proxy's cleanup looks for images not pulled within cleanupDays. */
const CLEANUP_PERIOD_MS = 60 * 60 * 1000

export interface RunningServer {
  app: FastifyInstance
  url: string
  /** This node's id in the leases of the periodic tasks (random per process). */
  nodeId: string
  /** Set only on the first start when no WHARF_ROOT_PASSWORD was given. */
  generatedRootPassword?: string
  close(): Promise<void>
}

/** The mirror listener as clients reach it: the public host name, the mirror's port, the same scheme. */
function mirrorUrl(config: Readonly<Config>): string | undefined {
  if (!config.dependencyProxy.mirrorListen) return undefined
  const url = new URL(config.publicUrl)
  return `${url.protocol}//${url.hostname}:${listenAddress({ listen: config.dependencyProxy.mirrorListen }).port}`
}

/** Composition root: config → database → storage → registry → HTTP. */
export async function startServer(config: Readonly<Config>): Promise<RunningServer> {
  const logger = pino({
    level: config.logLevel,
    redact: ['req.headers.authorization', 'headers.authorization', 'req.headers["private-token"]', 'req.headers["job-token"]'],
  })
  await mkdir(config.data, { recursive: true })
  // Made first: the database and the storage driver are timed at their one entry point each.
  const metrics = new Metrics({ process: true })
  const dbConfig = databaseConfig(config.database, config.data)
  const db = openDb(dbConfig, { log: metrics.onQuery })
  await migrate(db, dbConfig.kind)
  const storage = await openStorage(config.data, config.storage)
  gitPool.configure({ concurrency: config.limits.gitProcesses, queue: config.limits.gitQueue })
  // A node that cannot start (another sealing key, say) lets go of its database connections.
  const services = await createServices(db, storage.blobs, {
    metrics,
    publicUrl: config.publicUrl,
    tokenTtlSeconds: config.auth.tokenTtlSeconds,
    loginSecretTtlSeconds: config.auth.loginSecretTtlSeconds,
    pageMax: config.limits.pageMax,
    namespaceStorageBytes: config.limits.namespaceStorageBytes,
    // Blob files are on this node's disk only with filesystem storage (with s3, storage.s3.redirect offloads).
    accelRedirect: config.storage.driver === 'filesystem' ? config.storage.filesystem?.accelRedirect : undefined,
    rootPassword: config.auth.rootPassword,
    gitRoot: config.git.repositoriesDir ?? join(config.data, 'git'),
    ciStorage: storage.ci,
    jobHeartbeatTimeoutSeconds: config.ci.jobHeartbeatTimeoutSeconds,
    maxJobsPerPipeline: config.ci.maxJobsPerPipeline,
    dependencyProxy: { ...config.dependencyProxy, manifestBytes: config.limits.manifestBytes },
    registryMirror: mirrorUrl(config),
    secretsDir: join(config.data, 'secrets'),
    sealingKeyFile: config.secrets.sealingKeyFile,
    webhooks: config.webhooks,
    gc: config.gc,
    passwords: { signIn: config.auth.passwordSignIn, breakGlass: config.auth.passwordBreakGlass },
    oidcProviders: config.sso.oidc,
    ldapServers: config.sso.ldap,
  }).catch(async (e: unknown) => {
    await db.destroy()
    throw e
  })
  const { registry, generatedRootPassword } = services
  const https = config.tls && { cert: await readFile(config.tls.cert), key: await readFile(config.tls.key) }
  const app = await buildApp({
    logger,
    ...services,
    shutdownGraceMs: config.shutdownGraceSeconds * 1000,
    metricsToken: config.metrics.token,
    publicUrl: config.publicUrl,
    limits: config.limits,
    settings: publicSettings(config),
    ...(https ? { https } : {}),
  })

  // Every periodic task runs on one node at a time: the one holding its lease (metadata/leases.ts).
  logger.info({ node: services.leases.nodeId }, 'node id (holder of the periodic tasks it runs)')
  const tasks: LeasedTask[] = []
  const task = (name: string, periodMs: number, work: () => Promise<unknown>, failed: string) => {
    const t = new LeasedTask(services.leases, { name, periodMs, work, onError: (err) => logger.error({ err }, failed) })
    tasks.push(t)
    return t
  }
  const sweep = task(
    'uploads.sweep',
    sweepPeriodMs(config.limits.uploadTtlSeconds),
    async () => {
      const r = await registry.uploads.sweep(config.limits.uploadTtlSeconds)
      if (r.expired || r.orphans) logger.info(r, 'expired stale uploads')
    },
    'upload sweep failed',
  )
  await sweep.runNow()
  sweep.start()
  if (config.metrics.listen) {
    const listener = metricsServer(metrics, config.metrics.token)
    const m = listenAddress({ listen: config.metrics.listen })
    await new Promise<void>((resolve, reject) => listener.once('error', reject).listen(m.port, m.host, () => resolve()))
    // Closed with the main server (app.close() ends with it).
    app.server.once('close', () => listener.close().closeAllConnections())
  }
  // Cached upstream images not pulled for cleanupDays are removed (and their bytes freed) hourly.
  const cleanup = task(
    'dependency-proxy.cleanup',
    CLEANUP_PERIOD_MS,
    async () => {
      const r = await services.dependencyProxy.cleanup(config.dependencyProxy.cleanupDays)
      if (r.images) logger.info(r, 'removed dependency proxy images not pulled recently')
    },
    'dependency proxy cleanup failed',
  )
  await cleanup.runNow()
  cleanup.start()
  // Online GC on its schedule; a run still going (or one `wharf gc` holds the gc lease for) is not doubled.
  if (config.gc.intervalMinutes > 0)
    task(
      'gc',
      config.gc.intervalMinutes * 60_000,
      () =>
        services.gc.run().then(
          (r) => logger.info({ ...r.counts, freedBytes: r.freedBytes, durationMs: r.durationMs }, 'garbage collection done'),
          (err: unknown) => {
            if (!(err instanceof WharfError && err.code === 'CONFLICT')) throw err
            logger.info('garbage collection skipped: another one is running')
          },
        ),
      'garbage collection failed',
    ).start()
  // Projects' cleanup policies (GitLab's container_expiration_policy) whose cadence came round.
  task(
    'registry.cleanup-policies',
    POLICY_CHECK_MS,
    async () => {
      const r = await services.registry.manifests.policies.runDue()
      if (r.policies) logger.info(r, 'ran container registry cleanup policies')
    },
    'container registry cleanup policies failed',
  ).start()
  // Single sign-on: a wrong issuer or an unreachable provider is logged now (and shown on the admin
  // page); linked identities are then checked with their provider every sso.syncIntervalSeconds.
  // Not awaited: a provider that is down (up to its 10 s timeouts) must not hold the server's start
  // and readiness back; check() settles every provider's outcome itself and never rejects.
  void services.sso.check(logger)
  // Ticks at a tenth of the interval (at least every second), so an identity is checked at most that late.
  if (config.sso.oidc.length + config.sso.ldap.length)
    task(
      'sso.sync',
      Math.max(1000, config.sso.syncIntervalSeconds * 100),
      async () => {
        const r = await services.sso.sync(config.sso.syncIntervalSeconds, logger)
        if (r.checked) logger.info(r, 'sso identities checked')
      },
      'sso identity check failed',
    ).start()
  const mirrorAuth =
    config.dependencyProxy.mirrorAuth === 'token' ? { auth: services.auth, realm: `${config.publicUrl}/jwt/auth` } : undefined
  const mirror = config.dependencyProxy.mirrorListen
    ? await buildMirrorApp({ logger, proxy: services.dependencyProxy, https, auth: mirrorAuth, limits: config.limits })
    : undefined

  // Before any push is served: the spooled updates of pushes a crash interrupted.
  await services.git?.recoverSpooled(logger)
  const { host, port } = listenAddress(config)
  await app.listen({ host, port })
  // Out of descriptors, libuv accepts and drops pending connections with a descriptor it keeps in
  // reserve; when it cannot get that reserve back (another thread took it), the failed accept()
  // is emitted as 'error' on the listening server, and Fastify listens for it only during
  // listen(): unheard, it is an uncaught exception. The server keeps listening either way.
  app.server.on('error', (err) => logger.warn({ err }, 'cannot accept a connection'))

  // Pushes recorded before a crash (or whose pipeline creation failed) get their pipelines now,
  // and failures are retried; in the background, so that start-up does not wait for them.
  const git = services.git
  const redeliver =
    git && task('git.push-redelivery', PUSH_REDELIVERY_MS, () => git.redeliverPending(logger), 'push event redelivery failed')
  // Once at start whoever holds the lease: a node restarted after a crash must not wait for its dead
  // predecessor's lease to expire. Safe beside the holder's run: each ref update is acknowledged by a
  // conditional update, so a second delivery of the same update is refused, never doubled.
  const startupRedelivery = git?.redeliverPending(logger).catch((err: unknown) => logger.error({ err }, 'push event redelivery failed'))
  const disconnectHooks = connectHookSources({
    db,
    hooks: services.hooks,
    projectAccess: services.projectAccess,
    publicUrl: config.publicUrl,
    registryHost: new URL(config.publicUrl).host,
    git: services.git,
    pipelines: services.ci?.pipelines,
    manifests: registry.manifests,
    log: logger,
  })
  await services.hooks.start(logger)
  redeliver?.start()
  // Pipeline schedules that came due start, delayed jobs whose start_in passed are queued; a tick
  // still running is not doubled.
  const ci = services.ci
  if (ci)
    task(
      'ci.schedules',
      config.ci.schedulerIntervalSeconds * 1000,
      () =>
        Promise.all([
          ci.schedules.runDue().then((r) => {
            if (r.ran.length || r.deactivated.length) logger.info({ ran: r.ran, deactivated: r.deactivated }, 'ran pipeline schedules')
            if (r.failed.length) logger.warn({ failed: r.failed }, 'pipeline schedules could not start a pipeline')
          }),
          ci.pipelines.releaseDelayed().then((ids) => ids.length && logger.info({ jobs: ids }, 'released delayed jobs')),
          ci.environments
            .stopExpired()
            .then((ids) => ids.length && logger.info({ environments: ids }, 'stopped environments (auto_stop_in)')),
        ]),
      'pipeline scheduler failed',
    ).start()
  if (mirror) await mirror.listen(listenAddress({ listen: config.dependencyProxy.mirrorListen! }))
  return {
    app,
    url: config.publicUrl,
    nodeId: services.leases.nodeId,
    ...(generatedRootPassword ? { generatedRootPassword } : {}),
    async close() {
      // No new runs from here; each waits for its run still going, then gives its lease to the other nodes.
      const stopping = Promise.all(tasks.map((t) => t.stop()))
      await mirror?.close()
      await app.close()
      await stopping
      await startupRedelivery
      disconnectHooks()
      await services.hooks.close()
      await services.ci?.pipelines.close()
      await db.destroy()
    },
  }
}
