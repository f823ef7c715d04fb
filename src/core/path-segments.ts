import { WharfError } from '../core/errors.ts'

// A namespace or project path segment. Lowercased it must be a valid OCI name component,
// because the registry path of a project is its full path lowercased.
const SEGMENT = /^[a-zA-Z0-9]+(?:(?:\.|_|__|-+)[a-zA-Z0-9]+)*$/
const RESERVED = new Set([
  'v2',
  'api',
  'jwt',
  'oauth',
  '-',
  'help',
  'admin',
  'users',
  'groups',
  'projects',
  'explore',
  'assets',
  'dashboard',
  'login',
  'logout',
  'gitlab-ci-token',
  'dependency_proxy',
])
export const MAX_SEGMENT = 100

export function validateSegment(path: string, what: string): string {
  if (path.length === 0 || path.length > MAX_SEGMENT || !SEGMENT.test(path) || path.endsWith('.git') || path.endsWith('.atom')) {
    throw new WharfError('BAD_REQUEST', `${what} path is invalid: use letters, digits, and single '.', '_' or '-' between them`, {
      path: path.slice(0, MAX_SEGMENT + 1),
    })
  }
  if (RESERVED.has(path.toLowerCase())) throw new WharfError('BAD_REQUEST', `${what} path "${path}" is reserved`, { path })
  return path
}
