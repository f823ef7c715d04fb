import './threadpool.ts'
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import type { RunningServer } from '../server.ts'
import { ConfigError, loadConfig, SETTINGS, type SettingFlag } from '../config/load.ts'
import { DatabaseUnavailableError, SchemaTooNewError } from '../metadata/db.ts'
import { SealingKeyMismatchError } from '../core/sealing.ts'
import { installProcessGuards } from './guards.ts'

const USAGE = `Usage: wharf <command> [options]

Commands:
  serve           start the server (registry at /v2/)
  verify-config   check the configuration and print it
  version         print Wharf's version (also --version)
  tls init        create a local CA and a server certificate for HTTPS ("wharf tls help")
  admin           create users, groups, projects and tokens offline ("wharf admin help")
  backup          back up a live data directory, restore into an empty one ("wharf backup help")
  gc              online garbage collection of the registry; --dry-run lists what would go ("wharf gc --help")
  runner          run CI jobs for a Wharf server ("wharf runner help")
  login [URL]     sign docker, podman, buildah and skopeo in through docker-credential-wharf ("wharf login --help")
  logout [URL]    revoke and forget that login
  help            show this help

CI: "wharf serve --mirror-listen 127.0.0.1:5001" caches Docker Hub's images, and "wharf runner"
pulls jobs' Docker Hub images through it; the 2016 docker:latest + docker:dind template runs
unchanged on a runner with the dind privileges ("wharf runner help", README "CI and runners").

Options (each also settable as an environment variable or in a YAML/JSON file):
  --config FILE   config file (WHARF_CONFIG)
${SETTINGS.map((s) => `  --${s.flag.padEnd(22)} ${s.env}`).join('\n')}
`

function fail(message: string): never {
  process.stderr.write(`wharf: ${message}\n`)
  process.exit(2)
}

function parse(args: string[]) {
  const options: Record<string, { type: 'string' }> = { config: { type: 'string' } }
  for (const s of SETTINGS) options[s.flag] = { type: 'string' }
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false })
    const { config, ...flags } = values as Record<string, string | undefined>
    return loadConfig({ flags: flags as Partial<Record<SettingFlag, string>>, file: config })
  } catch (e) {
    if (e instanceof ConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) fail((e as Error).message)
    throw e
  }
}

/**
 * The first SIGTERM or SIGINT closes gracefully (in-flight requests finish within
 * shutdownGraceSeconds, runner long polls end, the database closes); a second one exits at once.
 */
function shutdown(server: RunningServer): void {
  const now = (signal: NodeJS.Signals) => {
    process.stderr.write(`wharf: ${signal} again: exiting without waiting\n`)
    process.exit(128 + (signal === 'SIGINT' ? 2 : 15))
  }
  process.once('SIGINT', now)
  process.once('SIGTERM', now)
  server.close().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`wharf: shutdown failed: ${(err as Error).message}\n`)
      process.exit(1)
    },
  )
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  switch (command) {
    case 'serve': {
      const config = parse(rest)
      // Loaded here, as the other commands' modules are: `wharf gc`, `admin` or `login` need none of the server.
      const { startServer } = await import('../server.ts')
      const server = await startServer(config).catch((e: NodeJS.ErrnoException) => {
        if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL')
          fail(`cannot listen on ${config.listen}: ${e.code}`)
        if (e instanceof SchemaTooNewError || e instanceof DatabaseUnavailableError || e instanceof SealingKeyMismatchError) fail(e.message)
        throw e
      })
      const host = new URL(server.url).host
      const admin = server.generatedRootPassword
        ? `root / ${server.generatedRootPassword}   (generated now and shown only once: keep it, or set WHARF_ROOT_PASSWORD before the first start)`
        : 'root (password set at first start)'
      process.stdout.write(
        `Wharf is running at ${server.url}\n` +
          `  sign in:  ${server.url} as ${admin}\n` +
          `  registry: docker login ${host}   then   docker push ${host}/<namespace>/<project>:<tag>\n` +
          `  data:     ${config.data}\n`,
      )
      installProcessGuards(server.app.log)
      const stop = () => {
        shutdown(server)
      }
      process.once('SIGINT', stop)
      process.once('SIGTERM', stop)
      return
    }
    case 'verify-config': {
      const config = parse(rest)
      // Secrets are never printed (upstream credentials included); JSON.stringify drops the undefined ones.
      const hide = (v: string | undefined) => (v === undefined ? undefined : '(hidden)')
      const upstreams = config.dependencyProxy.upstreams.map((u) => ({ ...u, password: hide(u.password), token: hide(u.token) }))
      const shown = {
        ...config,
        database: { ...config.database, ...(config.database.url ? { url: '(hidden)' } : {}) },
        auth: { ...config.auth, ...(config.auth.rootPassword ? { rootPassword: '(hidden)' } : {}) },
        metrics: { ...config.metrics, ...(config.metrics.token ? { token: '(hidden)' } : {}) },
        dependencyProxy: { ...config.dependencyProxy, upstreams },
        sso: {
          ...config.sso,
          oidc: config.sso.oidc.map((p) => ({ ...p, clientSecret: hide(p.clientSecret) })),
          ldap: config.sso.ldap.map((l) => ({ ...l, bindPassword: hide(l.bindPassword) })),
        },
        storage: {
          ...config.storage,
          ...(config.storage.s3 && { s3: { ...config.storage.s3, secretAccessKey: hide(config.storage.s3.secretAccessKey) } }),
        },
      }
      process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`)
      return
    }
    case 'tls': {
      // Loaded on demand: the certificate library is needed only here.
      const { tlsCommand } = await import('./tls.ts')
      await tlsCommand(rest)
      return
    }
    case 'admin': {
      const { adminCommand } = await import('./admin.ts')
      process.exitCode = await adminCommand(rest)
      return
    }
    case 'backup': {
      const { backupCommand } = await import('./backup.ts')
      process.exitCode = await backupCommand(rest)
      return
    }
    case 'gc': {
      const { gcCommand } = await import('./gc.ts')
      process.exitCode = await gcCommand(rest)
      return
    }
    case 'login':
    case 'logout': {
      const { loginCommand, logoutCommand } = await import('./login.ts')
      try {
        process.exitCode = await (command === 'login' ? loginCommand : logoutCommand)(rest)
      } catch (e) {
        process.stderr.write(`wharf ${command}: ${(e as Error).message}\n`)
        process.exitCode = 1
      }
      return
    }
    case 'runner': {
      const { runnerCommand } = await import('./runner.ts')
      process.exitCode = await runnerCommand(rest)
      return
    }
    case 'version':
    case '--version':
    case '-v': {
      // Read at run time: package.json is the one place the version is kept, and npm ships it.
      const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
      process.stdout.write(`wharf ${pkg.version}\n`)
      return
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE)
      return
    default:
      fail(`unknown command ${JSON.stringify(command)}; run "wharf help"`)
  }
}

await main(process.argv.slice(2))
