import { WharfError } from './errors.ts'

// spec (distribution-spec, "Pulling manifests"): <name> grammar. Lowercase only, so two names
// that differ in case can never exist (a pitfall in the seed).
const NAME_COMPONENT = '[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*'
const NAME_GRAMMAR = new RegExp(`^${NAME_COMPONENT}(?:/${NAME_COMPONENT})*$`)
const TAG_GRAMMAR = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/

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
