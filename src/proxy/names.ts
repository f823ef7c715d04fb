// Image names as upstream registries know them, and the registry repositories their cached copies live in.
import { dependencyProxyName, MIRROR_CACHE_PREFIX, parseRepoName, type RepoName } from '../core/names.ts'
import { WharfError } from '../core/errors.ts'

export const DOCKER_HUB = 'docker.io'

/**
 * The name an upstream knows an image by. Docker Hub's rules: `docker.io/` and `index.docker.io/`
 * prefixes name Docker Hub itself, and a single component is an official image (`alpine` is
 * `library/alpine`).
 */
export function upstreamImageName(upstreamHost: string, image: string): RepoName {
  let name = image
  if (upstreamHost === DOCKER_HUB) {
    for (const prefix of ['docker.io/', 'index.docker.io/', 'registry-1.docker.io/'])
      if (name.startsWith(prefix)) name = name.slice(prefix.length)
    if (!name.includes('/')) name = `library/${name}`
  }
  return parseRepoName(name)
}

/** The repository a group's dependency proxy caches an upstream image in: `<group>/dependency_proxy/containers/<name>`. */
export function groupCacheRepository(groupPath: string, upstreamName: string): RepoName {
  return checked(dependencyProxyName(groupPath.toLowerCase(), upstreamName))
}

/**
 * The repository the mirror listener caches an upstream image in: `dependency_proxy/<host>/<name>`.
 * `dependency_proxy` is a reserved path, so no project can own (or push to) these names.
 */
export function mirrorCacheRepository(upstreamHost: string, upstreamName: string): RepoName {
  return checked(`${MIRROR_CACHE_PREFIX}${upstreamHost.replace(':', '-')}/${upstreamName}`)
}

function checked(name: string): RepoName {
  try {
    return parseRepoName(name)
  } catch {
    throw new WharfError('NAME_INVALID', 'invalid repository name: the cached name would be too long', { name: name.slice(0, 300) })
  }
}
