/**
 * Docker Hub images through Wharf's pull-through cache, for the docker executor (setting
 * `docker.registry_mirror`, default `auto`: the mirror the server announces to jobs in
 * WHARF_REGISTRY_MIRROR).
 *
 * - The runner's engine pulls `<mirror host>/library/nginx:latest` for `nginx`, then tags it back
 *   to `nginx:latest` so `if-not-present` finds it next time.
 * - A `docker:*dind` service's daemon gets `--registry-mirror=<url>`, so what the job builds
 *   `FROM` Docker Hub comes through the cache too. Containers see the mirror from their own
 *   network: a loopback mirror (`http://127.0.0.1:5001`, the announced URL when Wharf's public URL
 *   is a loopback one) becomes the job network's gateway (`http://172.18.0.1:5001`, so Wharf's
 *   mirror listener must listen there, e.g. `0.0.0.0:5001`); on `network_mode: host` it stays as
 *   it is; any other host name is used as announced.
 */
import { isIP } from 'node:net'
import { isLoopback } from '../core/hosts.ts'

const HUB_PREFIXES = ['docker.io/', 'index.docker.io/', 'registry-1.docker.io/']

/**
 * The mirror the runner uses: the setting's URL, or with `auto` the server's announced one (if
 * it is an http(s) URL), or none.
 */
export function resolveMirror(setting: string, announced: string | undefined): URL | undefined {
  if (setting === 'off') return undefined
  const raw = setting === 'auto' ? announced?.trim() : setting
  if (!raw) return undefined
  try {
    const u = new URL(raw)
    return (u.protocol === 'http:' || u.protocol === 'https:') && !u.username && !u.password ? u : undefined
  } catch {
    return undefined
  }
}

/**
 * A Docker Hub image's repository path and reference (`nginx` → library/nginx, `:latest`), or
 * undefined for images of another registry.
 */
export function hubRepository(image: string): { repository: string; reference: string } | undefined {
  let name = image
  for (const p of HUB_PREFIXES) if (name.toLowerCase().startsWith(p)) name = name.slice(p.length)
  const at = name.indexOf('@')
  const named = at === -1 ? name : name.slice(0, at)
  const slash = named.lastIndexOf('/')
  const colon = named.lastIndexOf(':')
  const repo = colon > slash ? named.slice(0, colon) : named
  const reference = at !== -1 ? name.slice(at) : colon > slash ? named.slice(colon) : ':latest'
  const first = repo.split('/')[0]!
  // A first component with a dot or a port, or `localhost`, names another registry (Docker's rule).
  if (repo.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) return undefined
  if (!/^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:\/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$/.test(repo)) return undefined
  return { repository: repo.includes('/') ? repo : `library/${repo}`, reference }
}

/** The name to pull from the mirror for a Docker Hub image (`127.0.0.1:5001/library/nginx:latest`). */
export function mirroredName(image: string, mirror: URL): string | undefined {
  const hub = hubRepository(image)
  return hub && `${mirror.host}/${hub.repository}${hub.reference}`
}

/** Docker Hub's `docker:<anything>dind<anything>` (docker:dind, docker:27-dind, docker:dind-rootless). */
export function isDindImage(image: string): boolean {
  const hub = hubRepository(image)
  return hub?.repository === 'library/docker' && hub.reference.startsWith(':') && hub.reference.includes('dind')
}

/**
 * The dind service's command with `--registry-mirror=<url>` appended, or undefined when it is left
 * alone: a command that is not daemon flags (the entrypoint would not start dockerd with them), or
 * one that names its own mirror. (A daemon.json would clash with any `--registry-mirror` flag.)
 */
export function dindCommand(command: readonly string[], mirror: string): string[] | undefined {
  if (!command.every((a) => a.startsWith('-'))) return undefined
  if (command.some((a) => a === '--registry-mirror' || a.startsWith('--registry-mirror='))) return undefined
  return [...command, `--registry-mirror=${mirror}`]
}

/**
 * The mirror as containers on the job's network reach it: a loopback host becomes the network's
 * gateway (on the host network, loopback is the host's own). Undefined when a loopback mirror has
 * no gateway to stand for it.
 */
export function containerMirrorUrl(mirror: URL, networkMode: string, gateway: string | undefined): string | undefined {
  const origin = mirror.origin
  if (!isLoopback(mirror.hostname) || networkMode === 'host') return origin
  if (!gateway) return undefined
  const u = new URL(origin)
  u.hostname = isIP(gateway) === 6 ? `[${gateway}]` : gateway
  return u.origin
}
