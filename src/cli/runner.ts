// `wharf runner`: runs CI jobs for a Wharf server (src/runner). Logs are pino JSON lines on stdout.
import { parseArgs } from 'node:util'
import { pino } from 'pino'
import { loadRunnerConfig, RunnerConfigError, type RunnerFlags } from '../runner/config.ts'
import { RunnerProcess, RunnerStartError } from '../runner/poller.ts'

export const RUNNER_USAGE = `Usage: wharf runner --url URL --token glrt-… --executor shell|docker [options]

Runs CI jobs for a Wharf server (GitLab's runner API). Flags override the config file.

Options:
  --config FILE            YAML runner config, several runners possible (WHARF_RUNNER_CONFIG)
  --url URL                Wharf's URL as this runner reaches it
  --token TOKEN            runner authentication token (glrt-…)
  --executor KIND          shell | docker
  --name NAME              shown in logs and job traces (default: host name)
  --concurrent N           jobs at once over all runners (default 1)
  --limit N                jobs at once for this runner (default: concurrent)
  --builds-dir DIR         per-job directories (default ./builds)
  --cache-dir DIR          local cache archives (default ./cache)
  --clone-url URL          Wharf's URL as job containers reach it
  --tags a,b               tags (informational; set them when creating the runner)
  --shell bash|sh          shell executor's shell (default bash)
  --docker-host URL        Docker engine (default DOCKER_HOST)
  --docker-image IMAGE     image for jobs that name none (default busybox:latest)
  --pull-policy P[,P]      always | if-not-present | never (default always)
  --network-mode MODE      "" (a network per job), host, or a network name
  --bind-docker-socket     bind the engine socket at /var/run/docker.sock in job containers
  --privileged             run job and service containers privileged
  --registry-mirror M      auto (default): Docker Hub images of jobs, services and docker:dind's
                           daemon come through the pull-through cache the server offers, if it
                           offers one; off; or a mirror URL
  --check-interval S       seconds between job requests when the server does not long-poll (3)
  --shutdown-timeout S     seconds running jobs get after SIGINT/SIGTERM (30); a second signal ends them
  --log-level LEVEL        fatal|error|warn|info|debug|trace (info)

Docker-in-docker (image: docker:latest, services: [docker:dind]), the 2016 template unchanged,
with a config file (--config runner.yml) on the runner's entry:
  environment: ["DOCKER_TLS_CERTDIR="]   # dind and the client on plain tcp://docker:2375
  docker: { network_mode: host, services_cap_add: [ALL], services_cap_drop: [SYS_RESOURCE],
            services_security_opt: [seccomp=unconfined, apparmor=unconfined],
            volumes: ["/sys/fs/cgroup:/sys/fs/cgroup"] }
The services_* keys give dind what it needs where --privileged is refused (else set
services_privileged: true); network_mode: host lets the inner daemon reach a registry on
127.0.0.1. When the server runs a registry mirror (wharf serve --mirror-listen), Docker Hub
images of jobs and services, and the dind daemon's own pulls, come through Wharf's cache
(--registry-mirror auto); the job log says where each image came from.
`

const STRING_FLAGS = [
  'config',
  'url',
  'token',
  'executor',
  'name',
  'concurrent',
  'limit',
  'builds-dir',
  'cache-dir',
  'clone-url',
  'tags',
  'shell',
  'docker-host',
  'docker-image',
  'pull-policy',
  'network-mode',
  'registry-mirror',
  'log-level',
  'shutdown-timeout',
  'check-interval',
] as const

export async function runnerCommand(args: string[]): Promise<number> {
  if (args[0] === 'help' || args.includes('--help') || args.includes('-h')) {
    process.stdout.write(RUNNER_USAGE)
    return 0
  }
  const options: Record<string, { type: 'string' | 'boolean' }> = {
    'bind-docker-socket': { type: 'boolean' },
    privileged: { type: 'boolean' },
  }
  for (const f of STRING_FLAGS) options[f] = { type: 'string' }
  let config
  try {
    const { values } = parseArgs({ args, options, strict: true, allowPositionals: false })
    config = loadRunnerConfig(values as RunnerFlags)
  } catch (e) {
    if (e instanceof RunnerConfigError || (e as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`wharf runner: ${(e as Error).message}\n`)
      return 2
    }
    throw e
  }
  const log = pino({ level: config.logLevel, base: { pid: process.pid }, redact: ['token', '*.token'] })
  const runner = new RunnerProcess({ config, log })
  let signals = 0
  const onSignal = (sig: NodeJS.Signals) => {
    signals++
    log.info(
      { signal: sig, forced: signals > 1 },
      signals > 1 ? 'stopping now' : 'stopping: no new jobs; running jobs get the shutdown timeout',
    )
    void runner.stop()
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  try {
    await runner.start()
  } catch (e) {
    if (e instanceof RunnerStartError) {
      process.stderr.write(`wharf runner: ${e.message}\n`)
      await runner.stop()
      return 1
    }
    throw e
  }
  log.info({ runners: config.runners.length, concurrent: config.concurrent }, 'runner started')
  await runner.done()
  await runner.stop()
  log.info({}, 'runner stopped')
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
  return 0
}
