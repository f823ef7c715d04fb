import { WharfError } from './errors.ts'

// spec (distribution-spec, "Pulling manifests"): <name> grammar. Lowercase only, so two names
// that differ in case can never exist (a pitfall in the seed).
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*'
const NAME_GRAMMAR = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`)
const TAG_GRAMMAR = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/

/**
 * The registry's `service` in Docker token authentication, and so the audience of its tokens. Job
 * ID tokens (`id_tokens:`) share the issuer and keys, so CI refuses this audience for them.
 */
export const REGISTRY_SERVICE = 'container_registry'

/** Longest repository name accepted; distribution uses the same bound. */
export const MAX_NAME_LENGTH = 255

export type RepoName = string & { readonly __repo: unique symbol }
export type Tag = string & { readonly __tag: unique symbol }

export function parseRepoName(value: string): RepoName {
  if (value.length === 0 || value.length > MAX_NAME_LENGTH || !NAME_GRAMMAR.test(value)) {
    throw new WharfError('NAME_INVALID', 'invalid repository name', { name: value.slice(0, MAX_NAME_LENGTH + 1) })
  }
  return value as RepoName
}

export function isTag(value: string): value is Tag {
  return TAG_GRAMMAR.test(value)
}

export function parseTag(value: string): Tag {
  if (!isTag(value)) throw new WharfError('MANIFEST_INVALID', 'invalid tag', { tag: value.slice(0, 200) })
  return value
}

/** GitLab's group dependency proxy lives at `<group path>/dependency_proxy/containers/<image>`. */
const DEPENDENCY_PROXY_INFIX = '/dependency_proxy/containers/'

/** Splits a dependency proxy repository name into its group path and image; undefined for any other name. */
export function splitDependencyProxyName(name: string): { group: string; image: string } | undefined {
  const i = name.indexOf(DEPENDENCY_PROXY_INFIX)
  if (i <= 0) return undefined
  const image = name.slice(i + DEPENDENCY_PROXY_INFIX.length)
  return image === '' ? undefined : { group: name.slice(0, i), image }
}

export function dependencyProxyName(group: string, image: string): string {
  return `${group}${DEPENDENCY_PROXY_INFIX}${image}`
}

/** The mirror listener's cached copies live under this reserved top-level path (`dependency_proxy/<host>/<name>`). */
export const MIRROR_CACHE_PREFIX = 'dependency_proxy/'

/** GitLab's CI_COMMIT_REF_SLUG: lowercased, non-alphanumerics to '-', at most 63 chars, no '-' at the ends. */
export function refSlug(ref: string): string {
  return ref
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '-')
    .slice(0, 63)
    .replace(/^-+|-+$/g, '')
}
