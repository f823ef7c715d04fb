/**
 * Image references as gitlab-runner reads them for services (helpers/container/services): the
 * service name (registry port dropped), its version, the image to pull (`:latest` added) and the
 * host names derived from it: `/` becomes `__`, and an RFC 1123 alternative with `-`.
 *   `docker:dind` → docker (aliases: docker)
 *   `registry.example:5000/group/redis:7` → registry.example/group/redis (aliases:
 *   registry.example__group__redis, registry.example-group-redis)
 */
export interface ServiceName {
  service: string
  version: string
  image: string
  aliases: string[]
}

export function splitNameAndVersion(description: string): ServiceName {
  const at = description.indexOf('@')
  const digest = at === -1 ? '' : description.slice(at)
  const named = at === -1 ? description : description.slice(0, at)
  const slash = named.lastIndexOf('/')
  const colon = named.lastIndexOf(':')
  const tag = colon > slash ? named.slice(colon + 1) : ''
  const withoutVersion = colon > slash ? named.slice(0, colon) : named
  if (withoutVersion === '' || !/^[A-Za-z0-9._\-/:]+$/.test(withoutVersion))
    return { service: '', version: 'latest', image: description, aliases: [] }
  // Drop a registry port: host:5000/path → host/path.
  const m = /^(.*?)(|:[0-9]+)(|\/.*)$/.exec(withoutVersion)!
  const service = `${m[1]}${m[3]}`
  let version: string
  let image: string
  if (tag) {
    version = tag
    image = description
  } else if (/^@sha256:.{64}$/.test(digest)) {
    version = digest
    image = description
  } else {
    version = 'latest'
    image = `${withoutVersion}:latest`
  }
  const alias = service.replaceAll('/', '__')
  const alternative = service.replaceAll('/', '-')
  return { service, version, image, aliases: alias === alternative ? [alias] : [alias, alternative] }
}

/** Explicit aliases (`alias: "db, cache"` → db, cache) followed by the name-derived ones. */
export function serviceAliases(name: string, alias: string | undefined): string[] {
  const explicit = (alias ?? '').split(/[\s,]+/).filter(Boolean)
  return [...new Set([...explicit, ...splitNameAndVersion(name).aliases])]
}

/** `busybox` → `busybox:latest`; references with a tag or digest stay as they are. */
export function withDefaultTag(image: string): string {
  if (image.includes('@')) return image
  const slash = image.lastIndexOf('/')
  return image.lastIndexOf(':') > slash ? image : `${image}:latest`
}
