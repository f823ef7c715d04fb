import { isVersionQuery, LATEST_VERSION, pickVersion } from './component-version.ts'
import { evaluateExpression, isValidExpression } from './expression.ts'
import { anyGlobMatches } from './glob.ts'
import type { CiChanges } from './types.ts'
import { Errors, validateChanges } from './validate.ts'
import { InputError, interpolate, resolveInputs } from './inputs.ts'
import { deepMerge, getKey, hasKey, isHash, isString, isStringArray, list, type Hash } from './util.ts'
import { expandVariables } from './variables.ts'
import { loadYaml } from './yaml-load.ts'

// `include:` as GitLab processes it: each included file (its own includes expanded first) is
// deep-merged in order, then the including file is merged on top, so that its own keys win.
// Forms: `remote` (an HTTPS URL the caller fetches), `local` (this repository at the pipeline's commit; a leading "/" is optional), `project`
// with `ref` and `file` (a list too; the pipeline's user must be able to read it), `component`
// (`<host>/<project path>/<name>@<version>`: `templates/<name>.yml` or `templates/<name>/template.yml`
// of that project at a ref, or at the tag `~latest` or `1.2` picks: ./component-version.ts), `artifact` with `job` (child pipelines only), `template` (the built-in set,
// `Docker.gitlab-ci.yml`, which the caller supplies); any of them with `inputs:` for a
// file whose `spec:` header declares them, and `rules:` deciding whether it is included at all.
// Paths and project names expand the predefined and project variables (not YAML ones), as on GitLab.

export const INCLUDE_LIMITS = {
  /** GitLab's default ci_max_includes; every include counts, nested and repeated ones too. */
  files: 150,
} as const

/** A remote file's text, or why it could not be fetched (GitLab's words). */
export type RemoteFile = { content: string } | { error: string }

/** A file of another project: its content, or which part of the address does not exist (or may not be read). */
export type ProjectFile = { content: string } | { missing: 'project' | 'ref' | 'file' }

export interface IncludeSource {
  readFile(path: string): Promise<string | undefined>
  /**
   * A file of a job's artifacts archive in the parent pipeline (`include:artifact`); only a child
   * pipeline's configuration (`trigger:include`) has it.
   */
  readArtifact?(job: string, path: string): Promise<string | undefined>
  /** A file of another project at a ref (its default branch when null), if the pipeline's user may read it. */
  readProjectFile?(project: string, ref: string | null, path: string): Promise<ProjectFile>
  /** Tag names of another project (`include:component` versions), if the pipeline's user may read it. */
  projectTags?(project: string): Promise<string[] | { missing: 'project' }>
  /** `include:remote`: an HTTPS URL, fetched by the caller under its outbound rules. */
  readRemote?(url: string): Promise<RemoteFile>
  /** A built-in template by file name (`Docker.gitlab-ci.yml`); without it, include:template is refused. */
  readTemplate?(file: string): string | undefined
  /** Predefined and project variables: include paths and `include:rules` see these. */
  variables?: Readonly<Record<string, string>>
  /** Names among `variables` that are masked: `expand_vars` refuses them. */
  maskedVariables?: readonly string[]
  /**
   * Paths changed by the push (`compareTo` null) or since the merge base with `compareTo`, for
   * `include:rules:changes`; undefined when unknown, and `changes` then holds. Throws IncludeError
   * for a `compare_to` that names no ref.
   */
  changedFiles?(compareTo: string | null): Promise<string[] | undefined>
  /** Whether a file matching the glob exists at the pipeline's commit (`include:rules:exists`). */
  fileExists?(glob: string): boolean
}

/** Where one included file comes from. `inputs` are the values given for its `spec:inputs`. */
type Location =
  | { kind: 'local'; path: string; inputs?: Hash }
  | { kind: 'artifact'; job: string; path: string; inputs?: Hash }
  | { kind: 'project'; project: string; ref: string | null; path: string; inputs?: Hash }
  | { kind: 'component'; address: string; project: string; ref: string; name: string; inputs?: Hash }
  | { kind: 'remote'; url: string; inputs?: Hash }
  | { kind: 'template'; file: string; inputs?: Hash }

/** The project a file came from: a `local` include inside another project's file reads that project. */
type Origin = { project: string; ref: string | null } | null

/** Known `include` forms Wharf does not fetch: they fail loudly rather than being skipped. */
const UNSUPPORTED_INCLUDE_KEYS = ['with', 'integrity', 'cache'] as const
const KEYS_BY_FORM = {
  remote: ['remote', 'inputs', 'rules'],
  local: ['local', 'inputs', 'rules'],
  project: ['project', 'file', 'ref', 'inputs', 'rules'],
  component: ['component', 'inputs', 'rules'],
  artifact: ['artifact', 'job', 'inputs', 'rules'],
  template: ['template', 'inputs', 'rules'],
} as const
const FORMS = ['local', 'project', 'component', 'artifact', 'remote', 'template'] as const
const YAML_EXTENSION = /.+\.(yml|yaml)$/i

export class IncludeError extends Error {}

interface State {
  count: number
  included: string[]
}

/** Expands `include:` in `root` (recursively). Throws IncludeError with GitLab's message. */
export async function expandIncludes(root: Hash, source: IncludeSource, included: string[]): Promise<Hash> {
  return expand(root, source, { count: 0, included }, null)
}

async function expand(values: Hash, source: IncludeSource, state: State, origin: Origin): Promise<Hash> {
  const raw = getKey(values, 'include')
  const { include: _drop, ...rest } = values
  if (raw === undefined || raw === null) return rest
  const entries = Array.isArray(raw) ? raw.filter((x) => x !== null && x !== undefined) : [raw]
  let merged: Hash = {}
  for (const entry of entries) {
    const locations = parseLocations(entry, source, origin)
    if (isHash(entry) && hasKey(entry, 'rules') && !(await rulesInclude(getKey(entry, 'rules'), source))) continue
    for (const location of locations) {
      state.count++
      if (state.count > INCLUDE_LIMITS.files) {
        throw new IncludeError(`Maximum of ${INCLUDE_LIMITS.files} nested includes are allowed!`)
      }
      merged = deepMerge(merged, await load(location, source, state))
    }
  }
  return deepMerge(merged, rest)
}

const expand$ = (s: string, source: IncludeSource): string => expandVariables(s, source.variables ?? {}, { keepUnknown: true })

/**
 * `include:rules`: `if`, `exists` and `changes` (with `compare_to`), first match decides; `when: never`
 * or no match leaves the file out. `changes` holds when the changed paths are unknown (a new branch,
 * a tag, a pipeline that is not a push), as it does for jobs on GitLab.
 */
async function rulesInclude(rules: unknown, source: IncludeSource): Promise<boolean> {
  if (!Array.isArray(rules)) throw new IncludeError('include rules config should be an array of hashes')
  const vars = source.variables ?? {}
  const lookup = (name: string) => (Object.hasOwn(vars, name) ? vars[name] : undefined)
  for (const rule of rules) {
    if (!isHash(rule)) throw new IncludeError('include rules config should be an array of hashes')
    const unknown = Object.keys(rule).filter((k) => !['if', 'exists', 'changes', 'when'].includes(k))
    if (unknown.length) throw new IncludeError(`include rule config contains unknown keys: ${list(unknown)}`)
    const cond = getKey(rule, 'if')
    const exists = getKey(rule, 'exists')
    const changesRaw = getKey(rule, 'changes')
    const when = getKey(rule, 'when')
    if (cond !== undefined && !(isString(cond) && isValidExpression(cond)))
      throw new IncludeError('include rule if invalid expression syntax')
    if (exists !== undefined && !(isString(exists) || isStringArray(exists))) {
      throw new IncludeError('include rule exists should be a string or an array of strings')
    }
    let changes: CiChanges | undefined
    if (changesRaw !== undefined) {
      const e = new Errors()
      changes = validateChanges(e, 'include rule changes', changesRaw)
      if (!changes) throw new IncludeError(e.list[0] ?? 'include rule changes config is invalid')
    }
    if (when !== undefined && when !== 'never' && when !== 'always')
      throw new IncludeError('include rule when should be one of: never, always')
    if (isString(cond) && !evaluateExpression(cond, lookup)) continue
    if (exists !== undefined) {
      const globs = isString(exists) ? [exists] : exists
      if (!globs.some((g) => source.fileExists?.(expand$(g, source)) ?? false)) continue
    }
    if (changes) {
      const compareTo = changes.compareTo === null ? null : expand$(changes.compareTo, source)
      const changed = await source.changedFiles?.(compareTo)
      if (
        changed !== undefined &&
        !anyGlobMatches(
          changes.paths.map((p) => expand$(p, source)),
          changed,
        )
      )
        continue
    }
    return when !== 'never'
  }
  return false
}

function parseLocations(entry: unknown, source: IncludeSource, origin: Origin): Location[] {
  if (isString(entry)) {
    if (/^https?:\/\//i.test(entry)) return [remote(expand$(entry, source), undefined)]
    return [local(expand$(entry, source), undefined, origin)]
  }
  if (!isHash(entry)) throw new IncludeError('Each include must be a hash or a string')
  const keys = Object.keys(entry)
  const unsupported = keys.filter((k) => (UNSUPPORTED_INCLUDE_KEYS as readonly string[]).includes(k))
  if (unsupported.length) throw new IncludeError(`include config contains unsupported keys: ${list(unsupported)}`)
  const forms = FORMS.filter((f) => hasKey(entry, f))
  if (forms.length > 1) throw new IncludeError(`Each include must use only one of: ${list(forms)}`)
  const form = forms[0] ?? (hasKey(entry, 'job') ? 'artifact' : undefined)
  const allowed: readonly string[] = form ? KEYS_BY_FORM[form] : ['local']
  const unknown = keys.filter((k) => !allowed.includes(k))
  if (unknown.length) throw new IncludeError(`include config contains unknown keys: ${list(unknown)}`)
  const inputsRaw = getKey(entry, 'inputs')
  if (inputsRaw !== undefined && !isHash(inputsRaw)) throw new IncludeError('include inputs config should be a hash')
  const inputs = inputsRaw as Hash | undefined
  switch (form) {
    case 'artifact': {
      const artifact = getKey(entry, 'artifact')
      const job = getKey(entry, 'job')
      if (!isString(artifact) || !isString(job) || job === '')
        throw new IncludeError('Job must be provided when including configs from artifacts')
      if (!source.readArtifact) throw new IncludeError('Including configs from artifacts is only allowed when triggering child pipelines')
      return [{ kind: 'artifact', job, path: checkedPath(artifact), ...(inputs ? { inputs } : {}) }]
    }
    case 'project': {
      const project = getKey(entry, 'project')
      const ref = getKey(entry, 'ref')
      const file = getKey(entry, 'file')
      if (!isString(project) || project === '') throw new IncludeError('include project should be a string')
      if (ref !== undefined && !isString(ref)) throw new IncludeError('include ref should be a string')
      if (file === undefined) throw new IncludeError('Included file needs to be a string or an array of strings: file is missing')
      if (!(isString(file) || (isStringArray(file) && file.length > 0))) {
        throw new IncludeError('Included file needs to be a string or an array of strings')
      }
      const files = isString(file) ? [file] : file
      const p = expand$(project, source).replace(/^\/+|\/+$/g, '')
      const r = isString(ref) ? expand$(ref, source) : null
      return files.map((f) => ({
        kind: 'project',
        project: p,
        ref: r,
        path: checkedPath(expand$(f, source)),
        ...(inputs ? { inputs } : {}),
      }))
    }
    case 'remote': {
      const url = getKey(entry, 'remote')
      if (!isString(url)) throw new IncludeError('include remote should be a string')
      return [remote(expand$(url, source), inputs)]
    }
    case 'template': {
      const file = getKey(entry, 'template')
      if (!isString(file)) throw new IncludeError(`Included file \`${String(file)}\` needs to be a string`)
      if (!YAML_EXTENSION.test(file)) throw new IncludeError(`Included file \`${file}\` does not have YAML extension!`)
      return [{ kind: 'template', file, ...(inputs ? { inputs } : {}) }]
    }
    case 'component': {
      const address = getKey(entry, 'component')
      if (!isString(address)) throw new IncludeError('include component should be a string')
      return [component(expand$(address, source), source, inputs)]
    }
    default: {
      const path = getKey(entry, 'local')
      if (!isString(path)) throw new IncludeError(`Included file \`${String(path)}\` needs to be a string`)
      return [local(expand$(path, source), inputs, origin)]
    }
  }
}

function local(path: string, inputs: Hash | undefined, origin: Origin): Location {
  const clean = checkedPath(path)
  const withInputs = inputs ? { inputs } : {}
  // A local include in another project's file is a file of that project, at the same ref.
  return origin
    ? { kind: 'project', project: origin.project, ref: origin.ref, path: clean, ...withInputs }
    : { kind: 'local', path: clean, ...withInputs }
}

function remote(url: string, inputs: Hash | undefined): Location {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw new IncludeError(`Remote file \`${url}\` is not a valid address!`)
  }
  if (parsed.protocol !== 'https:') throw new IncludeError(`Remote file \`${url}\` must be fetched over HTTPS`)
  if (!YAML_EXTENSION.test(parsed.pathname)) throw new IncludeError(`Included file \`${url}\` does not have YAML extension!`)
  return { kind: 'remote', url, ...(inputs ? { inputs } : {}) }
}

/** `<host>/<project path>/<component name>@<ref>`; the host must be this instance's. */
function component(address: string, source: IncludeSource, inputs: Hash | undefined): Location {
  const at = address.lastIndexOf('@')
  const ref = at > 0 ? address.slice(at + 1) : ''
  const parts = (at > 0 ? address.slice(0, at) : address).split('/')
  if (ref === '') throw new IncludeError(`Component '${address}' - the component path must end with @<version>`)
  if (ref.startsWith('~') && ref !== LATEST_VERSION) {
    throw new IncludeError(
      `Component '${address}' - version ${ref} is not supported: use ${LATEST_VERSION}, a version (1, 1.2 or 1.2.3), a tag, a branch or a commit SHA`,
    )
  }
  const vars = source.variables ?? {}
  const hosts = [vars.CI_SERVER_FQDN, vars.CI_SERVER_HOST].filter((h): h is string => h !== undefined)
  if (parts.length < 3 || !hosts.includes(parts[0]!)) {
    throw new IncludeError(`Component '${address}' - the component path must start with this instance's host (${hosts[0] ?? 'unknown'})`)
  }
  const name = parts.at(-1)!
  if (!/^[\w.-]+$/.test(name)) throw new IncludeError(`Component '${address}' - invalid component name`)
  return { kind: 'component', address, project: parts.slice(1, -1).join('/'), ref, name, ...(inputs ? { inputs } : {}) }
}

function checkedPath(path: string): string {
  const clean = path.replace(/^\/+/, '')
  if (/[*?[{]/.test(clean)) throw new IncludeError(`Included file \`${clean}\`: wildcard paths are not supported`)
  if (clean.split('/').includes('..')) throw new IncludeError(`Included file \`${clean}\`: paths may not contain ".."`)
  if (!YAML_EXTENSION.test(clean.split('/').pop() ?? '')) {
    throw new IncludeError(`Included file \`${clean}\` does not have YAML extension!`)
  }
  return clean
}

function projectNotFound(project: string): IncludeError {
  return new IncludeError(
    `Project \`${project}\` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.`,
  )
}

async function projectFile(source: IncludeSource, project: string, ref: string | null, path: string): Promise<string> {
  if (!source.readProjectFile) throw new IncludeError('include:project is not available here')
  const found = await source.readProjectFile(project, ref, path)
  if ('content' in found) return found.content
  if (found.missing === 'project') throw projectNotFound(project)
  if (found.missing === 'ref') throw new IncludeError(`Project \`${project}\` reference \`${ref ?? 'HEAD'}\` does not exist!`)
  throw new IncludeError(`Project \`${project}\` file \`${path}\` does not exist!`)
}

/** Reads a location: its text, the label its messages use, and the origin of the includes it has. */
async function read(location: Location, source: IncludeSource): Promise<{ text: string; label: string; origin: Origin }> {
  switch (location.kind) {
    case 'local': {
      const text = await source.readFile(location.path)
      if (text === undefined) throw new IncludeError(`Local file \`${location.path}\` does not exist!`)
      return { text, label: location.path, origin: null }
    }
    case 'artifact': {
      const text = await source.readArtifact?.(location.job, location.path)
      if (text === undefined) throw new IncludeError(`Artifact \`${location.path}\` of job \`${location.job}\` does not exist!`)
      return { text, label: location.path, origin: null }
    }
    case 'project': {
      const text = await projectFile(source, location.project, location.ref, location.path)
      return { text, label: `${location.project}/${location.path}`, origin: { project: location.project, ref: location.ref } }
    }
    case 'remote': {
      if (!source.readRemote) throw new IncludeError('include:remote is not available here')
      const got = await source.readRemote(location.url)
      if ('error' in got) throw new IncludeError(got.error)
      return { text: got.content, label: location.url, origin: null }
    }
    case 'template': {
      const text = source.readTemplate?.(location.file)
      if (text === undefined) throw new IncludeError(`Included file \`${location.file}\` is empty or does not exist!`)
      return { text, label: location.file, origin: null }
    }
    case 'component': {
      const { project, name } = location
      const ref = await componentRef(location, source)
      const origin = { project, ref }
      for (const path of [`templates/${name}.yml`, `templates/${name}/template.yml`]) {
        const found = await source.readProjectFile?.(project, ref, path)
        if (found && 'content' in found) return { text: found.content, label: `${project}/${path}`, origin }
        if (found && found.missing !== 'file') await projectFile(source, project, ref, path) // throws the project or ref message
      }
      throw new IncludeError(`Component '${location.address}' - content not found`)
    }
  }
}

/** The ref a component's version names: `~latest` and partial versions pick a version tag. */
async function componentRef(location: Extract<Location, { kind: 'component' }>, source: IncludeSource): Promise<string> {
  const { project, ref, address } = location
  if (!isVersionQuery(ref)) return ref
  const tags = await source.projectTags?.(project)
  if (tags === undefined) throw new IncludeError(`Component '${address}' - versions cannot be resolved here`)
  if (!Array.isArray(tags)) throw projectNotFound(project)
  const picked = pickVersion(ref, tags)
  if (picked === undefined) {
    const wanted = ref === LATEST_VERSION ? 'no released version' : `no released version matches ${ref}`
    throw new IncludeError(
      `Component '${address}' - content not found: ${wanted} (released versions are tags named as semantic versions, such as 1.0.0)`,
    )
  }
  return picked
}

async function load(location: Location, source: IncludeSource, state: State): Promise<Hash> {
  const { text, label, origin } = await read(location, source)
  if (text.trim() === '') throw new IncludeError(`Local file \`${label}\` is empty!`)
  const loaded = loadYaml(text, label, true)
  if (!loaded.ok) throw new IncludeError(loaded.error)
  let value = loaded.value
  if (loaded.spec !== undefined || location.inputs !== undefined) {
    if (loaded.spec === undefined) {
      throw new IncludeError(`\`${label}\`: Given inputs not defined in the \`spec\` section of the included configuration file`)
    }
    try {
      value = interpolate(value, resolveInputs(loaded.spec, location.inputs, label), label, {
        variables: source.variables ?? {},
        ...(source.maskedVariables ? { masked: source.maskedVariables } : {}),
      })
    } catch (e) {
      if (e instanceof InputError) throw new IncludeError(e.message)
      throw e
    }
  }
  if (!isHash(value)) throw new IncludeError(`Included file \`${label}\` does not have valid YAML syntax!`)
  state.included.push(label)
  return expand(value, source, state, origin)
}
