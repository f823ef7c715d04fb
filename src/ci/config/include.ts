import { loadYaml } from './yaml-load.ts'
import { deepMerge, getKey, hasKey, isHash, isString, list, type Hash } from './util.ts'

// `include: local` as GitLab processes it: each included file (its own includes expanded
// first) is deep-merged in order, then the including file is merged on top, so that its own
// keys win. Paths are relative to the repository root; a leading "/" is optional.

export const INCLUDE_LIMITS = {
  /** GitLab's default ci_max_includes; every include counts, nested and repeated ones too. */
  files: 150,
} as const

export interface IncludeSource {
  readFile(path: string): Promise<string | undefined>
  /**
   * A file of a job's artifacts archive in the parent pipeline (`include:artifact`); only a child
   * pipeline's configuration (`trigger:include`) has it.
   */
  readArtifact?(job: string, path: string): Promise<string | undefined>
}

/** Where one included file comes from. */
type Location = { kind: 'local'; path: string } | { kind: 'artifact'; job: string; path: string }

/** Known `include` forms Wharf does not fetch: they fail loudly rather than being skipped. */
const UNSUPPORTED_INCLUDE_KEYS = [
  'remote',
  'template',
  'project',
  'component',
  'file',
  'ref',
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
  for (const raw of locations) {
    const location = parseLocation(raw, source)
    state.count++
    if (state.count > INCLUDE_LIMITS.files) {
      throw new IncludeError(`Maximum of ${INCLUDE_LIMITS.files} nested includes are allowed!`)
    }
    merged = deepMerge(merged, await load(location, source, state))
  }
  return deepMerge(merged, rest)
}

function parseLocation(location: unknown, source: IncludeSource): Location {
  let path: string
  if (isHash(location) && (hasKey(location, 'artifact') || hasKey(location, 'job'))) {
    const extra = Object.keys(location).filter((k) => k !== 'artifact' && k !== 'job')
    if (extra.length) throw new IncludeError(`include config contains unknown keys: ${list(extra)}`)
    const artifact = getKey(location, 'artifact')
    const job = getKey(location, 'job')
    if (!isString(artifact) || !isString(job) || job === '')
      throw new IncludeError('Job must be provided when including configs from artifacts')
    if (!source.readArtifact) throw new IncludeError('Including configs from artifacts is only allowed when triggering child pipelines')
    return { kind: 'artifact', job, path: checkedPath(artifact) }
  }
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
  return { kind: 'local', path: checkedPath(path) }
}

function checkedPath(path: string): string {
  const clean = path.replace(/^\/+/, '')
  if (/[*?[{]/.test(clean)) throw new IncludeError(`Included file \`${clean}\`: wildcard paths are not supported`)
  if (!YAML_EXTENSION.test(clean.split('/').pop() ?? '')) {
    throw new IncludeError(`Included file \`${clean}\` does not have YAML extension!`)
  }
  return clean
}

async function load(location: Location, source: IncludeSource, state: State): Promise<Hash> {
  const { path } = location
  const content = location.kind === 'local' ? await source.readFile(path) : await source.readArtifact?.(location.job, path)
  if (location.kind === 'artifact') {
    if (content === undefined) throw new IncludeError(`Artifact \`${path}\` of job \`${location.job}\` does not exist!`)
    if (content.trim() === '') throw new IncludeError(`Artifact \`${path}\` of job \`${location.job}\` is empty!`)
  }
  if (content === undefined) throw new IncludeError(`Local file \`${path}\` does not exist!`)
  if (content.trim() === '') throw new IncludeError(`Local file \`${path}\` is empty!`)
  const loaded = loadYaml(content, path)
  if (!loaded.ok) throw new IncludeError(loaded.error)
  if (!isHash(loaded.value)) throw new IncludeError(`Included file \`${path}\` does not have valid YAML syntax!`)
  state.included.push(path)
  return expand(loaded.value, source, state)
}
