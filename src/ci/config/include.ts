import { loadYaml } from './yaml-load.ts'
import { deepMerge, getKey, isHash, isString, list, type Hash } from './util.ts'

// `include: local` as GitLab processes it: each included file (its own includes expanded
// first) is deep-merged in order, then the including file is merged on top, so that its own
// keys win. Paths are relative to the repository root; a leading "/" is optional.

export const INCLUDE_LIMITS = {
  /** GitLab's default ci_max_includes; every include counts, nested and repeated ones too. */
  files: 150,
} as const

export interface IncludeSource {
  readFile(path: string): Promise<string | undefined>
}

/** Known `include` forms Wharf does not fetch: they fail loudly rather than being skipped. */
const UNSUPPORTED_INCLUDE_KEYS = [
  'remote',
  'template',
  'project',
  'component',
  'file',
  'ref',
  'artifact',
  'job',
  'rules',
  'inputs',
  'with',
  'integrity',
] as const
const YAML_EXTENSION = /.+\.(yml|yaml)$/i

export class IncludeError extends Error {}

interface State {
  count: number
  included: string[]
}

/** Expands `include:` in `root` (recursively). Throws IncludeError with GitLab's message. */
export async function expandIncludes(root: Hash, source: IncludeSource, included: string[]): Promise<Hash> {
  return expand(root, source, { count: 0, included })
}

async function expand(values: Hash, source: IncludeSource, state: State): Promise<Hash> {
  const raw = getKey(values, 'include')
  const { include: _drop, ...rest } = values
  if (raw === undefined || raw === null) return rest
  const locations = Array.isArray(raw) ? raw.filter((x) => x !== null && x !== undefined) : [raw]
  let merged: Hash = {}
  for (const location of locations) {
    const path = localPath(location)
    state.count++
    if (state.count > INCLUDE_LIMITS.files) {
      throw new IncludeError(`Maximum of ${INCLUDE_LIMITS.files} nested includes are allowed!`)
    }
    merged = deepMerge(merged, await loadLocal(path, source, state))
  }
  return deepMerge(merged, rest)
}

function localPath(location: unknown): string {
  let path: string
  if (isString(location)) {
    if (/^https?:\/\//i.test(location))
      throw new IncludeError(`Included file \`${location}\`: remote includes are not supported; use include:local`)
    path = location
  } else if (isHash(location)) {
    const keys = Object.keys(location)
    const unsupported = keys.filter((k) => (UNSUPPORTED_INCLUDE_KEYS as readonly string[]).includes(k))
    const unknown = keys.filter((k) => k !== 'local' && !unsupported.includes(k))
    if (unknown.length) throw new IncludeError(`include config contains unknown keys: ${list(unknown)}`)
    if (unsupported.length)
      throw new IncludeError(`include config contains unsupported keys: ${list(unsupported)} (only include:local is supported)`)
    const local = getKey(location, 'local')
    if (!isString(local)) throw new IncludeError(`Included file \`${String(local)}\` needs to be a string`)
    path = local
  } else {
    throw new IncludeError('Each include must be a hash or a string')
  }
  const clean = path.replace(/^\/+/, '')
  if (/[*?[{]/.test(clean)) throw new IncludeError(`Included file \`${clean}\`: wildcard paths are not supported`)
  if (!YAML_EXTENSION.test(clean.split('/').pop() ?? '')) {
    throw new IncludeError(`Included file \`${clean}\` does not have YAML extension!`)
  }
  return clean
}

async function loadLocal(path: string, source: IncludeSource, state: State): Promise<Hash> {
  const content = await source.readFile(path)
  if (content === undefined) throw new IncludeError(`Local file \`${path}\` does not exist!`)
  if (content.trim() === '') throw new IncludeError(`Local file \`${path}\` is empty!`)
  const loaded = loadYaml(content, path)
  if (!loaded.ok) throw new IncludeError(loaded.error)
  if (!isHash(loaded.value)) throw new IncludeError(`Included file \`${path}\` does not have valid YAML syntax!`)
  state.included.push(path)
  return expand(loaded.value, source, state)
}
