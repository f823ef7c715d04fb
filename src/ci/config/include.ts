import { loadYaml } from './yaml-load.ts'
import { deepMerge, getKey, isHash, isString, list, type Hash } from './util.ts'

// `include: local` and `include: template` as GitLab processes them: each included file (its own
// includes expanded first) is deep-merged in order, then the including file is merged on top, so
// that its own keys win. Local paths are relative to the repository root; a leading "/" is
// optional. Templates are the built-in set (`Docker.gitlab-ci.yml`), which the caller supplies.

export const INCLUDE_LIMITS = {
  /** GitLab's default ci_max_includes; every include counts, nested and repeated ones too. */
  files: 150,
} as const

export interface IncludeSource {
  readFile(path: string): Promise<string | undefined>
  /** A built-in template by file name (`Docker.gitlab-ci.yml`); without it, include:template is refused. */
  readTemplate?(file: string): string | undefined
}

/** Known `include` forms Wharf does not fetch: they fail loudly rather than being skipped. */
const UNSUPPORTED_INCLUDE_KEYS = [
  'remote',
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
    const target = includeTarget(location)
    state.count++
    if (state.count > INCLUDE_LIMITS.files) {
      throw new IncludeError(`Maximum of ${INCLUDE_LIMITS.files} nested includes are allowed!`)
    }
    const loaded = target.template === undefined ? loadLocal(target.local, source, state) : loadTemplate(target.template, source, state)
    merged = deepMerge(merged, await loaded)
  }
  return deepMerge(merged, rest)
}

type IncludeTarget = { local: string; template?: undefined } | { template: string; local?: undefined }

function includeTarget(location: unknown): IncludeTarget {
  let path: string
  if (isString(location)) {
    if (/^https?:\/\//i.test(location))
      throw new IncludeError(`Included file \`${location}\`: remote includes are not supported; use include:local`)
    path = location
  } else if (isHash(location)) {
    const keys = Object.keys(location)
    const unsupported = keys.filter((k) => (UNSUPPORTED_INCLUDE_KEYS as readonly string[]).includes(k))
    const unknown = keys.filter((k) => k !== 'local' && k !== 'template' && !unsupported.includes(k))
    if (unknown.length) throw new IncludeError(`include config contains unknown keys: ${list(unknown)}`)
    if (unsupported.length)
      throw new IncludeError(
        `include config contains unsupported keys: ${list(unsupported)} (only include:local and include:template are supported)`,
      )
    if (keys.includes('template')) {
      if (keys.length > 1) throw new IncludeError('Each include must use only one of: local, template')
      const template = getKey(location, 'template')
      if (!isString(template)) throw new IncludeError(`Included file \`${String(template)}\` needs to be a string`)
      if (!YAML_EXTENSION.test(template)) throw new IncludeError(`Included file \`${template}\` does not have YAML extension!`)
      return { template }
    }
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
  return { local: clean }
}

async function loadLocal(path: string, source: IncludeSource, state: State): Promise<Hash> {
  const content = await source.readFile(path)
  if (content === undefined) throw new IncludeError(`Local file \`${path}\` does not exist!`)
  if (content.trim() === '') throw new IncludeError(`Local file \`${path}\` is empty!`)
  return loadContent(path, content, source, state)
}

async function loadTemplate(file: string, source: IncludeSource, state: State): Promise<Hash> {
  const content = source.readTemplate?.(file)
  if (content === undefined) throw new IncludeError(`Included file \`${file}\` is empty or does not exist!`)
  return loadContent(file, content, source, state)
}

async function loadContent(path: string, content: string, source: IncludeSource, state: State): Promise<Hash> {
  const loaded = loadYaml(content, path)
  if (!loaded.ok) throw new IncludeError(loaded.error)
  if (!isHash(loaded.value)) throw new IncludeError(`Included file \`${path}\` does not have valid YAML syntax!`)
  state.included.push(path)
  return expand(loaded.value, source, state)
}
