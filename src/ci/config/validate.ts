import { REGISTRY_SERVICE } from '../../core/names.ts'
import { isValidExpression, patternFromString } from './expression.ts'
import { MAX_JOB_TIMEOUT_SECONDS, parseDuration } from './duration.ts'
import {
  AUTO_CANCEL_MODES,
  AUTO_CANCEL_ON_JOB_FAILURE,
  ARTIFACTS_ACCESS,
  ARTIFACTS_WHEN,
  JOB_WHEN,
  PULL_POLICIES,
  RELEASE_LINK_TYPES,
  RETRY_WHEN,
  RULE_WHEN,
  WORKFLOW_WHEN,
  type ArtifactsWhen,
  type AutoCancelMode,
  type AutoCancelOnJobFailure,
  type CiAutoCancel,
  type CiArtifacts,
  type CiCache,
  type CiChanges,
  type CiCrossNeed,
  type CiEnvironment,
  type CiIdToken,
  type CiImage,
  type CiInherit,
  type CiNeed,
  type CiPolicy,
  type CiRelease,
  type CiReleaseLink,
  type CiRetry,
  type CiRule,
  type CiService,
  type CiTrigger,
  type CiTriggerInclude,
  type CiVariable,
  type JobWhen,
  type MatrixEntry,
  type PullPolicy,
  type RuleWhen,
} from './types.ts'
import { getKey, hasKey, isHash, isScalar, isString, isStringArray, list, setKey, type Hash } from './util.ts'

// One validator per keyword. Each takes the value and its location ("jobs:build:cache"),
// records GitLab-worded errors, and returns the normalized value, or undefined when invalid.

export const CONFIG_LIMITS = {
  /** Commands, stages and rules may nest lists this deep (GitLab's MAX_NESTING_LEVEL). */
  nesting: 10,
  /** Paths in one `changes:` or `exists:` (GitLab's limit). */
  rulePaths: 50,
  /** `needs:` entries per job (GitLab's default ci_needs_size_limit). */
  needs: 50,
  /** `cache:` entries per job. */
  caches: 4,
  /** `cache:key:files` entries. */
  cacheKeyFiles: 2,
  /** `cache:fallback_keys` entries. */
  fallbackKeys: 5,
  /** `tags:` per job. */
  tags: 50,
  /** Job name length (GitLab stores at most 255 characters). */
  jobName: 255,
} as const

export class Errors {
  readonly list: string[] = []
  add(loc: string, message: string): undefined {
    const line = loc ? `${loc} ${message}` : message
    if (!this.list.includes(line)) this.list.push(line)
    return undefined
  }
  get size(): number {
    return this.list.length
  }
}

/** Reports keys outside `allowed` as unknown, and known-but-unimplemented ones as unsupported. */
export function checkKeys(e: Errors, loc: string, h: Hash, allowed: readonly string[], unsupported: readonly string[] = []): boolean {
  const keys = Object.keys(h)
  const unknown = keys.filter((k) => !allowed.includes(k) && !unsupported.includes(k))
  const notSupported = keys.filter((k) => unsupported.includes(k))
  if (unknown.length) e.add(loc, `config contains unknown keys: ${list(unknown)}`)
  if (notSupported.length) e.add(loc, `config contains unsupported keys: ${list(notSupported)}`)
  return unknown.length === 0 && notSupported.length === 0
}

const present = (v: unknown): boolean => v !== undefined && v !== null

function nestedStrings(v: unknown, level: number): boolean {
  if (isString(v)) return true
  return level > 0 && Array.isArray(v) && v.every((x) => nestedStrings(x, level - 1))
}

function flatten<T>(v: unknown): T[] {
  return Array.isArray(v) ? v.flatMap((x) => flatten<T>(x)) : [v as T]
}

/** `script`, `before_script`, `after_script`: a string or nested lists of strings, flattened. */
export function validateCommands(e: Errors, loc: string, v: unknown): string[] | undefined {
  if (isString(v)) return [v]
  if (Array.isArray(v) && nestedStrings(v, CONFIG_LIMITS.nesting)) return flatten<string>(v)
  return e.add(loc, `config should be a string or a nested array of strings up to ${CONFIG_LIMITS.nesting} levels deep`)
}

export function validateStages(e: Errors, loc: string, v: unknown): string[] | undefined {
  if (Array.isArray(v) && nestedStrings(v, CONFIG_LIMITS.nesting)) return flatten<string>(v)
  return e.add(loc, `config should be an array of strings or a nested array of strings up to ${CONFIG_LIMITS.nesting} levels deep`)
}

export function validateBoolean(e: Errors, loc: string, v: unknown): boolean | undefined {
  if (typeof v === 'boolean') return v
  return e.add(loc, 'config should be a boolean value')
}

export function validateStringArray(e: Errors, loc: string, v: unknown): string[] | undefined {
  if (isStringArray(v)) return v
  return e.add(loc, 'config should be an array of strings')
}

function isInteger(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v)
}

function intOrInts(v: unknown): number[] | undefined {
  if (isInteger(v)) return [v]
  if (Array.isArray(v) && v.every(isInteger)) return v
  return undefined
}

/** `variables:`. `data` lists the keys a `{ value: ... }` form may have (none: strings only). */
export function validateVariables(e: Errors, loc: string, v: unknown, data: readonly string[]): Record<string, CiVariable> | undefined {
  if (!present(v)) return {}
  if (!isHash(v)) return e.add(loc, 'config should be a hash of key value pairs')
  const out: Record<string, CiVariable> = {}
  let ok = true
  for (const key of Object.keys(v)) {
    const raw = v[key]
    const at = `${loc}:${key}`
    if (isScalar(raw)) {
      setKey(out, key, { value: String(raw), expand: true, description: null })
      continue
    }
    if (!isHash(raw)) {
      ok = false
      e.add(at, 'variable definition must be either a string or a hash')
      continue
    }
    if (data.length === 0) {
      ok = false
      e.add(at, 'config must be a string')
      continue
    }
    const extra = Object.keys(raw).filter((k) => !data.includes(k))
    if (extra.length) {
      ok = false
      e.add(at, `config uses invalid data keys: ${list(extra)}`)
      continue
    }
    const value = getKey(raw, 'value')
    const description = getKey(raw, 'description')
    const expand = getKey(raw, 'expand')
    const options = getKey(raw, 'options')
    if (present(value) && !isScalar(value)) {
      ok = false
      e.add(at, 'config value must be a scalar')
      continue
    }
    if (present(description) && !isString(description)) {
      ok = false
      e.add(at, 'config description must be a string')
      continue
    }
    if (present(expand) && typeof expand !== 'boolean') {
      ok = false
      e.add(at, 'config expand should be a boolean value')
      continue
    }
    const text = present(value) ? String(value) : ''
    if (present(options)) {
      if (!isStringArray(options)) {
        ok = false
        e.add(at, 'config options should be an array of strings')
        continue
      }
      if (!options.includes(text)) {
        ok = false
        e.add(at, 'config value must be present in options')
        continue
      }
    }
    setKey(out, key, { value: text, expand: expand !== false, description: isString(description) ? description : null })
  }
  return ok ? out : undefined
}

/** Variables that can only be strings (rules, services): name to value. */
export function validatePlainVariables(e: Errors, loc: string, v: unknown): Record<string, string> | undefined {
  const vars = validateVariables(e, loc, v, [])
  if (!vars) return undefined
  const out: Record<string, string> = {}
  for (const [k, def] of Object.entries(vars)) setKey(out, k, def.value)
  return out
}

function validatePullPolicy(e: Errors, loc: string, v: unknown): PullPolicy[] | undefined {
  const allowed = PULL_POLICIES as readonly string[]
  if (isString(v)) {
    if (allowed.includes(v)) return [v as PullPolicy]
    return e.add(loc, 'config is not included in the list')
  }
  if (isStringArray(v) && v.length > 0) {
    const unknown = v.filter((p) => !allowed.includes(p))
    if (unknown.length) return e.add(loc, `config contains unknown values: ${list(unknown)}`)
    return v as PullPolicy[]
  }
  return e.add(loc, 'config should be an array of strings or a string')
}

function validateDocker(e: Errors, loc: string, v: unknown): CiImage['docker'] | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ['platform', 'user'])) return undefined
  const out: { platform?: string; user?: string } = {}
  for (const k of ['platform', 'user'] as const) {
    const x = getKey(v, k)
    if (!present(x)) continue
    if (!isString(x)) return e.add(loc, `${k} should be a string`)
    out[k] = x
  }
  return out
}

const IMAGE_KEYS = ['name', 'entrypoint', 'pull_policy', 'docker'] as const
const SERVICE_KEYS = [...IMAGE_KEYS, 'command', 'alias', 'variables'] as const

function imageFields(e: Errors, loc: string, h: Hash): CiImage | undefined {
  const errs = e.size
  const name = getKey(h, 'name')
  if (!present(name) || name === '') e.add(loc, "name can't be blank")
  else if (!isString(name)) e.add(loc, 'name should be a string')
  const entrypoint = getKey(h, 'entrypoint')
  if (present(entrypoint) && !isStringArray(entrypoint)) e.add(loc, 'entrypoint should be an array of strings')
  const pull = getKey(h, 'pull_policy')
  const pullPolicy = present(pull) ? validatePullPolicy(e, `${loc}:pull_policy`, pull) : null
  const dockerRaw = getKey(h, 'docker')
  const docker = present(dockerRaw) ? validateDocker(e, `${loc}:docker`, dockerRaw) : null
  if (e.size !== errs) return undefined
  return {
    name: name as string,
    entrypoint: isStringArray(entrypoint) ? entrypoint : null,
    pullPolicy: pullPolicy ?? null,
    docker: docker ?? null,
  }
}

export function validateImage(e: Errors, loc: string, v: unknown): CiImage | undefined {
  if (isString(v)) return v === '' ? e.add(loc, "name can't be blank") : { name: v, entrypoint: null, pullPolicy: null, docker: null }
  if (!isHash(v)) return e.add(loc, 'config should be a hash or a string')
  if (!checkKeys(e, loc, v, IMAGE_KEYS, ['ports'])) return undefined
  return imageFields(e, loc, v)
}

function validateService(e: Errors, loc: string, v: unknown): CiService | undefined {
  if (isString(v)) {
    if (v === '') return e.add(loc, "name can't be blank")
    return { name: v, entrypoint: null, pullPolicy: null, docker: null, alias: null, command: null, variables: {} }
  }
  if (!isHash(v)) return e.add(loc, 'config should be a hash or a string')
  if (!checkKeys(e, loc, v, SERVICE_KEYS, ['ports'])) return undefined
  const errs = e.size
  const image = imageFields(e, loc, v)
  const command = getKey(v, 'command')
  if (present(command) && !isStringArray(command)) e.add(loc, 'command should be an array of strings')
  const alias = getKey(v, 'alias')
  if (present(alias) && !isString(alias)) e.add(loc, 'alias should be a string')
  const variables = validatePlainVariables(e, `${loc}:variables`, getKey(v, 'variables'))
  if (!image || !variables || e.size !== errs) return undefined
  return {
    ...image,
    alias: isString(alias) ? alias : null,
    command: isStringArray(command) ? command : null,
    variables,
  }
}

export function validateServices(e: Errors, loc: string, v: unknown): CiService[] | undefined {
  if (!Array.isArray(v)) return e.add(loc, 'config should be an array')
  const out: CiService[] = []
  let ok = true
  for (const item of v) {
    const s = validateService(e, `${loc}:service`, item)
    if (s) out.push(s)
    else ok = false
  }
  return ok ? out : undefined
}

function validatePaths(e: Errors, loc: string, v: unknown, what: string): string[] | undefined {
  if (!isStringArray(v)) return e.add(loc, `${what} should be an array of strings`)
  if (v.length > CONFIG_LIMITS.rulePaths) return e.add(loc, `${what} has too many entries (maximum ${CONFIG_LIMITS.rulePaths})`)
  return v
}

export function validateChanges(e: Errors, loc: string, v: unknown): CiChanges | undefined {
  if (Array.isArray(v)) {
    const paths = validatePaths(e, loc, v, 'config')
    return paths && { paths, compareTo: null }
  }
  if (isHash(v)) {
    if (!checkKeys(e, loc, v, ['paths', 'compare_to'])) return undefined
    if (!hasKey(v, 'paths')) return e.add(loc, 'config missing required keys: paths')
    const paths = validatePaths(e, loc, getKey(v, 'paths'), 'paths')
    const compareTo = getKey(v, 'compare_to')
    if (present(compareTo) && !isString(compareTo)) return e.add(loc, 'compare_to should be a string')
    return paths && { paths, compareTo: isString(compareTo) ? compareTo : null }
  }
  return e.add(loc, 'should be an array or a hash')
}

function validateExists(e: Errors, loc: string, v: unknown): string[] | undefined {
  if (isString(v)) return [v]
  if (Array.isArray(v)) return validatePaths(e, loc, v, 'config')
  if (isHash(v)) {
    if (!checkKeys(e, loc, v, ['paths'], ['project', 'ref'])) return undefined
    if (!hasKey(v, 'paths')) return e.add(loc, 'config missing required keys: paths')
    return validatePaths(e, loc, getKey(v, 'paths'), 'paths')
  }
  return e.add(loc, 'should be a string, an array of strings, or a hash')
}

export function validateNeeds(e: Errors, loc: string, v: unknown): Array<CiNeed | CiCrossNeed> | undefined {
  const items = isHash(v) ? [v] : v
  if (!Array.isArray(items)) return e.add(loc, 'config can only be a Hash or an Array')
  if (items.length > CONFIG_LIMITS.needs) {
    return e.add(loc, `one job can only need ${CONFIG_LIMITS.needs} others, but you have listed ${items.length}`)
  }
  const out: Array<CiNeed | CiCrossNeed> = []
  const at = `${loc}:need`
  let ok = true
  for (const item of items) {
    if (isString(item) && item !== '') {
      out.push({ job: item, artifacts: true, optional: false })
      continue
    }
    if (!isHash(item)) {
      ok = false
      e.add(at, 'has an unsupported type')
      continue
    }
    const cross = hasKey(item, 'pipeline') || hasKey(item, 'project')
    const keys = !cross
      ? ['job', 'artifacts', 'optional', 'parallel']
      : hasKey(item, 'project')
        ? ['project', 'job', 'ref', 'artifacts']
        : ['pipeline', 'job', 'artifacts']
    if (!checkKeys(e, at, item, keys)) {
      ok = false
      continue
    }
    const job = getKey(item, 'job')
    const artifacts = getKey(item, 'artifacts')
    const optional = getKey(item, 'optional')
    if (!isString(job) || job === '') {
      ok = false
      e.add(at, "job can't be blank")
      continue
    }
    if (present(artifacts) && typeof artifacts !== 'boolean') {
      ok = false
      e.add(at, 'artifacts should be a boolean value')
      continue
    }
    if (cross) {
      const pipeline = getKey(item, 'pipeline')
      const project = getKey(item, 'project')
      const ref = getKey(item, 'ref')
      if (hasKey(item, 'project')) {
        if (!isString(project) || project === '') e.add(at, "project can't be blank")
        else if (!isString(ref) || ref === '') e.add(at, "ref can't be blank")
        else {
          out.push({ job, artifacts: artifacts !== false, project, ref })
          continue
        }
      } else if (!isString(pipeline) || pipeline === '') e.add(at, "pipeline can't be blank")
      else {
        out.push({ job, artifacts: artifacts !== false, pipeline })
        continue
      }
      ok = false
      continue
    }
    if (present(optional) && typeof optional !== 'boolean') {
      ok = false
      e.add(at, 'optional should be a boolean value')
      continue
    }
    const parallel = getKey(item, 'parallel')
    const matrix = present(parallel) ? validateNeedParallel(e, `${at}:parallel`, parallel) : null
    if (matrix === undefined) {
      ok = false
      continue
    }
    out.push({ job, artifacts: artifacts !== false, optional: optional === true, ...(matrix ? { matrix } : {}) })
  }
  return ok ? out : undefined
}

/** Whether a need is outside this pipeline (`needs:pipeline:job`, `needs:project`). */
export function isCrossNeed(n: CiNeed | CiCrossNeed): n is CiCrossNeed {
  return 'pipeline' in n || 'project' in n
}

export type RulesMode = 'job' | 'workflow'

const JOB_RULE_KEYS = ['if', 'changes', 'exists', 'when', 'allow_failure', 'variables', 'needs', 'interruptible', 'start_in'] as const
const WORKFLOW_RULE_KEYS = ['if', 'changes', 'exists', 'when', 'variables', 'auto_cancel'] as const

/** `workflow:auto_cancel` or `workflow:rules:auto_cancel`: `on_new_commit`, `on_job_failure`. */
export function validateAutoCancel(e: Errors, loc: string, v: unknown): CiAutoCancel | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ['on_new_commit', 'on_job_failure'])) return undefined
  const out: CiAutoCancel = { onNewCommit: null, onJobFailure: null }
  const onNewCommit = getKey(v, 'on_new_commit')
  if (present(onNewCommit)) {
    if (isString(onNewCommit) && (AUTO_CANCEL_MODES as readonly string[]).includes(onNewCommit)) {
      out.onNewCommit = onNewCommit as AutoCancelMode
    } else return e.add(loc, `on new commit must be one of: ${list(AUTO_CANCEL_MODES)}`)
  }
  const onJobFailure = getKey(v, 'on_job_failure')
  if (present(onJobFailure)) {
    if (isString(onJobFailure) && (AUTO_CANCEL_ON_JOB_FAILURE as readonly string[]).includes(onJobFailure)) {
      out.onJobFailure = onJobFailure as AutoCancelOnJobFailure
    } else return e.add(loc, `on job failure must be one of: ${list(AUTO_CANCEL_ON_JOB_FAILURE)}`)
  }
  return out
}

function validateRule(e: Errors, loc: string, v: unknown, mode: RulesMode): CiRule | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (Object.keys(v).length === 0) return e.add(loc, "config can't be blank")
  const allowed = mode === 'job' ? JOB_RULE_KEYS : WORKFLOW_RULE_KEYS
  if (!checkKeys(e, loc, v, allowed)) return undefined
  const errs = e.size
  const cond = getKey(v, 'if')
  if (present(cond) && !(isString(cond) && isValidExpression(cond))) e.add(loc, 'if invalid expression syntax')
  const when = getKey(v, 'when')
  const whens: readonly string[] = mode === 'job' ? RULE_WHEN : WORKFLOW_WHEN
  if (present(when)) {
    if (!isString(when) || !whens.includes(when)) e.add(loc, `when unknown value: ${String(when)}`)
  }
  const startIn = mode === 'job' ? validateStartIn(e, loc, getKey(v, 'start_in'), when === 'delayed') : null
  const allowFailure = getKey(v, 'allow_failure')
  if (present(allowFailure) && typeof allowFailure !== 'boolean') e.add(loc, 'allow_failure should be a boolean value')
  const interruptible = getKey(v, 'interruptible')
  if (present(interruptible) && typeof interruptible !== 'boolean') e.add(loc, 'interruptible should be a boolean value')
  const changesRaw = getKey(v, 'changes')
  const changes = present(changesRaw) ? validateChanges(e, `${loc}:changes`, changesRaw) : null
  const existsRaw = getKey(v, 'exists')
  const exists = present(existsRaw) ? validateExists(e, `${loc}:exists`, existsRaw) : null
  const varsRaw = getKey(v, 'variables')
  const variables = present(varsRaw) ? validatePlainVariables(e, `${loc}:variables`, varsRaw) : null
  const needsRaw = getKey(v, 'needs')
  const needs = present(needsRaw) ? validateNeeds(e, `${loc}:needs`, needsRaw) : null
  if (needs?.some(isCrossNeed)) e.add(`${loc}:needs`, 'may only name jobs of this pipeline (not pipeline: or project:)')
  const autoCancelRaw = getKey(v, 'auto_cancel')
  const autoCancel = present(autoCancelRaw) ? validateAutoCancel(e, `${loc}:auto_cancel`, autoCancelRaw) : null
  if (e.size !== errs) return undefined
  return {
    if: isString(cond) ? cond : null,
    changes: changes ?? null,
    exists: exists ?? null,
    when: isString(when) ? (when as RuleWhen) : null,
    allowFailure: typeof allowFailure === 'boolean' ? allowFailure : null,
    variables: variables ?? null,
    needs: (needs as CiNeed[] | null | undefined) ?? null,
    interruptible: typeof interruptible === 'boolean' ? interruptible : null,
    startIn: startIn ?? null,
    ...(autoCancel ? { autoCancel } : {}),
  }
}

/** GitLab's longest `start_in`. */
const MAX_START_IN_SECONDS = 7 * 86_400

/**
 * `start_in` of a job or a job rule: required with `when: delayed` (a duration of at most a week,
 * GitLab's messages), refused without it. Null when absent and not needed.
 */
export function validateStartIn(e: Errors, loc: string, v: unknown, delayed: boolean): number | null | undefined {
  if (!present(v)) return delayed ? e.add(loc, "start in can't be blank") : null
  if (!delayed) return e.add(loc, 'start in must be blank')
  const seconds = isString(v) ? parseDuration(v) : undefined
  if (seconds === undefined) return e.add(loc, 'start in should be a duration')
  if (seconds > MAX_START_IN_SECONDS) return e.add(loc, 'start in should not exceed the limit')
  return seconds
}

function nestedHashes(v: unknown, level: number): boolean {
  if (isHash(v)) return true
  return level > 0 && Array.isArray(v) && v.every((x) => nestedHashes(x, level - 1))
}

/** `rules:` (of a job, `loc` = "jobs:x:rules") or `workflow:rules:`. */
export function validateRules(e: Errors, loc: string, v: unknown, mode: RulesMode): CiRule[] | undefined {
  if (!Array.isArray(v)) return e.add(loc, 'config should be an array')
  if (v.length === 0) return e.add(loc, "config can't be blank")
  if (!nestedHashes(v, CONFIG_LIMITS.nesting)) {
    const parent = loc.slice(0, loc.lastIndexOf(':'))
    return e.add(parent || loc, 'rules should be an array containing hashes and arrays of hashes')
  }
  const out: CiRule[] = []
  let ok = true
  for (const item of flatten<Hash>(v)) {
    const rule = validateRule(e, `${loc}:rule`, item, mode)
    if (rule) out.push(rule)
    else ok = false
  }
  return ok ? out : undefined
}

function refsOk(v: unknown): v is string[] {
  return isStringArray(v) && v.every((r) => patternFromString(r) !== null)
}

/** `only:` / `except:`. */
export function validatePolicy(e: Errors, loc: string, v: unknown): CiPolicy | undefined {
  if (Array.isArray(v)) {
    if (!refsOk(v)) return e.add(loc, 'config should be an array of strings or regular expressions using re2 syntax')
    return { refs: v, variables: null, changes: null, kubernetes: null }
  }
  if (isHash(v)) {
    if (Object.keys(v).length === 0) return e.add(loc, "config can't be blank")
    if (!checkKeys(e, loc, v, ['refs', 'variables', 'changes', 'kubernetes'])) return undefined
    const errs = e.size
    const refs = getKey(v, 'refs')
    if (present(refs) && !refsOk(refs)) e.add(loc, 'refs should be an array of strings or regular expressions using re2 syntax')
    const variables = getKey(v, 'variables')
    if (present(variables)) {
      if (!isStringArray(variables)) e.add(loc, 'variables should be an array of strings')
      else if (!variables.every(isValidExpression)) e.add(loc, 'variables invalid expression syntax')
    }
    const changesRaw = getKey(v, 'changes')
    const changes = present(changesRaw) ? validateChanges(e, `${loc}:changes`, changesRaw) : null
    const kubernetes = getKey(v, 'kubernetes')
    if (present(kubernetes) && kubernetes !== 'active') e.add(loc, `kubernetes unknown value: ${String(kubernetes)}`)
    if (e.size !== errs) return undefined
    return {
      refs: isStringArray(refs) ? refs : null,
      variables: isStringArray(variables) ? variables : null,
      changes: changes ?? null,
      kubernetes: kubernetes === 'active' ? 'active' : null,
    }
  }
  return e.add(loc, 'has to be either an array of conditions or a hash')
}

const ARTIFACTS_KEYS = ['name', 'untracked', 'paths', 'reports', 'when', 'expire_in', 'expose_as', 'exclude', 'public', 'access'] as const

export function validateArtifacts(e: Errors, loc: string, v: unknown): CiArtifacts | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ARTIFACTS_KEYS)) return undefined
  const errs = e.size
  const get = (k: string): unknown => getKey(v, k)
  const name = get('name')
  if (present(name) && !isString(name)) e.add(loc, 'name should be a string')
  for (const k of ['untracked', 'public'] as const) {
    const b = get(k)
    if (present(b) && typeof b !== 'boolean') e.add(loc, `${k} should be a boolean value`)
  }
  for (const k of ['paths', 'exclude'] as const) {
    const p = get(k)
    if (present(p) && !isStringArray(p)) e.add(loc, `${k} should be an array of strings`)
  }
  const reports = get('reports')
  if (present(reports) && !isHash(reports)) e.add(loc, 'reports should be a hash')
  const when = get('when')
  if (present(when) && !(isString(when) && (ARTIFACTS_WHEN as readonly string[]).includes(when))) {
    e.add(loc, `when should be one of: ${list(ARTIFACTS_WHEN)}`)
  }
  const expire = get('expire_in')
  let expireIn: number | 'never' | null = null
  if (present(expire)) {
    const seconds = isString(expire) ? (expire.trim().toLowerCase() === 'never' ? 'never' : parseDuration(expire)) : undefined
    if (seconds === undefined) e.add(loc, 'expire_in should be a duration')
    else expireIn = seconds
  }
  const exposeAs = get('expose_as')
  if (present(exposeAs)) {
    if (!isString(exposeAs) || exposeAs.length > 100 || !/^\w[-\w ]*$/.test(exposeAs)) {
      e.add(loc, "expose_as can contain only letters, digits, '-', '_' and spaces")
    } else if (!present(get('paths'))) e.add(loc, "paths can't be blank")
  }
  const access = get('access')
  if (present(access) && !(isString(access) && (ARTIFACTS_ACCESS as readonly string[]).includes(access))) {
    e.add(loc, `access should be one of: ${list(ARTIFACTS_ACCESS)}`)
  }
  if (present(access) && present(get('public'))) e.add(loc, 'config these keys cannot be used together: public, access')
  if (e.size !== errs) return undefined
  const paths = get('paths')
  const exclude = get('exclude')
  return {
    name: isString(name) ? name : null,
    paths: isStringArray(paths) ? paths : [],
    exclude: isStringArray(exclude) ? exclude : [],
    expireIn,
    when: isString(when) ? (when as ArtifactsWhen) : 'on_success',
    untracked: get('untracked') === true,
    reports: isHash(reports) ? reports : null,
    exposeAs: isString(exposeAs) ? exposeAs : null,
    public: typeof get('public') === 'boolean' ? (get('public') as boolean) : null,
    access: isString(access) ? (access as CiArtifacts['access']) : null,
  }
}

const CACHE_KEYS = ['key', 'untracked', 'paths', 'when', 'policy', 'unprotect', 'fallback_keys'] as const
const CACHE_POLICY = /^(pull-push|push|pull|\$\w{1,255})$/

function validateCacheKey(e: Errors, loc: string, v: unknown): CiCache['key'] | undefined {
  if (!present(v)) return 'default'
  if (isString(v)) {
    let path = v
    try {
      path = decodeURIComponent(v)
    } catch {
      /* not escaped */
    }
    if (path.includes('/')) return e.add(loc, 'config cannot contain the "/" character')
    if (path === '.' || path === '..') return e.add(loc, 'config cannot be "." or ".."')
    return v
  }
  if (!isHash(v)) return e.add(loc, 'config should be a hash, a string or a symbol')
  if (!checkKeys(e, loc, v, ['files', 'prefix'])) return undefined
  const files = getKey(v, 'files')
  if (!present(files)) return e.add(loc, 'config missing required keys: files')
  if (!isStringArray(files) || files.length === 0) return e.add(`${loc}:files`, 'config should be an array of strings')
  if (files.length > CONFIG_LIMITS.cacheKeyFiles)
    return e.add(`${loc}:files`, `config has too many entries (maximum ${CONFIG_LIMITS.cacheKeyFiles})`)
  const prefix = getKey(v, 'prefix')
  if (present(prefix) && !isString(prefix)) return e.add(`${loc}:prefix`, 'config should be a string')
  return { files, prefix: isString(prefix) ? prefix : null }
}

function validateCache(e: Errors, loc: string, v: unknown): CiCache | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, CACHE_KEYS)) return undefined
  const errs = e.size
  const key = validateCacheKey(e, `${loc}:key`, getKey(v, 'key'))
  const pathsRaw = getKey(v, 'paths')
  const paths = present(pathsRaw) ? validateStringArray(e, `${loc}:paths`, pathsRaw) : []
  const policy = getKey(v, 'policy')
  if (present(policy) && policy !== '' && !(isString(policy) && CACHE_POLICY.test(policy))) {
    e.add(loc, 'policy should be a variable or one of: pull-push, push, pull')
  }
  const when = getKey(v, 'when')
  if (present(when) && !(isString(when) && (ARTIFACTS_WHEN as readonly string[]).includes(when))) {
    e.add(loc, `when should be one of: ${list(ARTIFACTS_WHEN)}`)
  }
  const untrackedRaw = getKey(v, 'untracked')
  const untracked = present(untrackedRaw) ? validateBoolean(e, `${loc}:untracked`, untrackedRaw) : false
  const unprotectRaw = getKey(v, 'unprotect')
  const unprotect = present(unprotectRaw) ? validateBoolean(e, `${loc}:unprotect`, unprotectRaw) : false
  const fallbackRaw = getKey(v, 'fallback_keys')
  const fallbackKeys = present(fallbackRaw) ? validateStringArray(e, `${loc}:fallback_keys`, fallbackRaw) : []
  if (fallbackKeys && fallbackKeys.length > CONFIG_LIMITS.fallbackKeys) {
    e.add(loc, `fallback_keys has too many entries (maximum ${CONFIG_LIMITS.fallbackKeys})`)
  }
  if (e.size !== errs || key === undefined || !paths || !fallbackKeys) return undefined
  return {
    key,
    paths,
    policy: isString(policy) && policy !== '' ? policy : 'pull-push',
    when: isString(when) ? (when as ArtifactsWhen) : 'on_success',
    untracked: untracked === true,
    unprotect: unprotect === true,
    fallbackKeys,
  }
}

export function validateCaches(e: Errors, loc: string, v: unknown): CiCache[] | undefined {
  if (isHash(v)) {
    const c = validateCache(e, loc, v)
    return c && [c]
  }
  if (!Array.isArray(v)) return e.add(loc, 'config should be a hash or an array of hashes')
  if (v.length > CONFIG_LIMITS.caches) return e.add(loc, `config no more than ${CONFIG_LIMITS.caches} caches can be created`)
  const out: CiCache[] = []
  let ok = true
  for (const item of v) {
    const c = validateCache(e, loc, item)
    if (c) out.push(c)
    else ok = false
  }
  return ok ? out : undefined
}

function checkRetryMax(e: Errors, loc: string, what: string, v: unknown): number | undefined {
  if (typeof v !== 'number' || !Number.isInteger(v)) return e.add(loc, `${what} must be an integer`)
  if (v < 0) return e.add(loc, `${what} must be greater than or equal to 0`)
  if (v > 2) return e.add(loc, `${what} must be less than or equal to 2`)
  return v
}

export function validateRetry(e: Errors, loc: string, v: unknown): CiRetry | undefined {
  if (typeof v === 'number') {
    const max = checkRetryMax(e, loc, 'config', v)
    return max === undefined ? undefined : { max, when: ['always'], exitCodes: [] }
  }
  if (!isHash(v)) return e.add(loc, 'config has to be either an integer or a hash')
  if (!checkKeys(e, loc, v, ['max', 'when', 'exit_codes'])) return undefined
  const errs = e.size
  const maxRaw = getKey(v, 'max')
  const max = present(maxRaw) ? checkRetryMax(e, loc, 'max', maxRaw) : 0
  const whenRaw = getKey(v, 'when')
  let when: string[] = ['always']
  if (present(whenRaw)) {
    const allowed = RETRY_WHEN as readonly string[]
    if (isString(whenRaw)) {
      if (!allowed.includes(whenRaw)) e.add(loc, 'when is not included in the list')
      when = [whenRaw]
    } else if (isStringArray(whenRaw)) {
      const unknown = whenRaw.filter((w) => !allowed.includes(w))
      if (unknown.length) e.add(loc, `when contains unknown values: ${list(unknown)}`)
      when = whenRaw
    } else e.add(loc, 'when should be an array of strings or a string')
  }
  const codesRaw = getKey(v, 'exit_codes')
  const exitCodes = present(codesRaw) ? intOrInts(codesRaw) : []
  if (!exitCodes) e.add(loc, 'exit_codes should be an array of integers or an integer')
  if (e.size !== errs || max === undefined || !exitCodes) return undefined
  return { max, when, exitCodes }
}

export function validateTimeout(e: Errors, loc: string, v: unknown): number | undefined {
  const seconds = isString(v) ? parseDuration(v) : undefined
  if (seconds === undefined) return e.add(loc, 'config should be a duration')
  if (seconds > MAX_JOB_TIMEOUT_SECONDS) return e.add(loc, 'config should not exceed the limit')
  return seconds
}

export function validateTags(e: Errors, loc: string, v: unknown): string[] | undefined {
  const tags = validateStringArray(e, loc, v)
  if (tags && tags.length > CONFIG_LIMITS.tags) return e.add(loc, `config must be less than the limit of ${CONFIG_LIMITS.tags} tags`)
  return tags
}

const ENVIRONMENT_ACTIONS = ['start', 'stop', 'prepare', 'verify', 'access'] as const
const DEPLOYMENT_TIERS = ['production', 'staging', 'testing', 'development', 'other'] as const

export function validateEnvironment(e: Errors, loc: string, v: unknown): CiEnvironment | undefined {
  const empty = { url: null, action: 'start' as const, onStop: null, autoStopIn: null, deploymentTier: null }
  if (isString(v)) return v === '' ? e.add(loc, "name can't be blank") : { name: v, ...empty }
  if (!isHash(v)) return e.add(loc, 'config should be a hash or a string')
  if (!checkKeys(e, loc, v, ['name', 'url', 'action', 'on_stop', 'auto_stop_in', 'deployment_tier'], ['kubernetes'])) return undefined
  const errs = e.size
  const name = getKey(v, 'name')
  if (!isString(name) || name === '') e.add(loc, "name can't be blank")
  const str = (k: string): string | null => {
    const x = getKey(v, k)
    if (!present(x)) return null
    if (!isString(x)) {
      e.add(loc, `${k} should be a string`)
      return null
    }
    return x
  }
  const url = str('url')
  if (url !== null && url.length > 255) e.add(loc, 'url is too long (maximum is 255 characters)')
  const action = str('action')
  if (action !== null && !(ENVIRONMENT_ACTIONS as readonly string[]).includes(action)) {
    e.add(loc, `action should be one of: ${list(ENVIRONMENT_ACTIONS)}`)
  }
  const onStop = str('on_stop')
  const autoStopIn = str('auto_stop_in')
  if (autoStopIn !== null && autoStopIn.trim().toLowerCase() !== 'never' && parseDuration(autoStopIn) === undefined) {
    e.add(loc, 'auto_stop_in should be a duration')
  }
  const tier = str('deployment_tier')
  if (tier !== null && !(DEPLOYMENT_TIERS as readonly string[]).includes(tier)) {
    e.add(loc, `deployment_tier must be one of ${list(DEPLOYMENT_TIERS)}`)
  }
  if (e.size !== errs) return undefined
  return {
    name: name as string,
    url,
    action: (action ?? 'start') as CiEnvironment['action'],
    onStop,
    autoStopIn,
    deploymentTier: tier,
  }
}

const RELEASE_KEYS = ['tag_name', 'tag_message', 'name', 'description', 'ref', 'released_at', 'assets'] as const

function validateReleaseLinks(e: Errors, loc: string, v: unknown): CiReleaseLink[] | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ['links'])) return undefined
  const links = getKey(v, 'links')
  const at = `${loc}:links`
  if (!Array.isArray(links) || links.length === 0) return e.add(at, 'config should be an array of hashes')
  const out: CiReleaseLink[] = []
  for (const link of links) {
    if (!isHash(link)) return e.add(at, 'config should be an array of hashes')
    if (!checkKeys(e, `${at}:link`, link, ['name', 'url', 'filepath', 'direct_asset_path', 'link_type'])) return undefined
    const name = getKey(link, 'name')
    const url = getKey(link, 'url')
    const path = getKey(link, 'direct_asset_path') ?? getKey(link, 'filepath')
    const type = getKey(link, 'link_type')
    if (!isString(name) || name === '') return e.add(`${at}:link`, "name can't be blank")
    if (!isString(url) || url === '') return e.add(`${at}:link`, "url can't be blank")
    if (present(path) && !isString(path)) return e.add(`${at}:link`, 'direct_asset_path should be a string')
    if (present(type) && !(isString(type) && (RELEASE_LINK_TYPES as readonly string[]).includes(type)))
      return e.add(`${at}:link`, `link_type should be one of: ${list(RELEASE_LINK_TYPES)}`)
    out.push({
      name,
      url,
      directAssetPath: isString(path) ? path : null,
      linkType: isString(type) ? (type as CiReleaseLink['linkType']) : 'other',
    })
  }
  return out
}

/** `release:` (GitLab's Config::Entry::Release): `tag_name` and `description` required. */
export function validateRelease(e: Errors, loc: string, v: unknown): CiRelease | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, RELEASE_KEYS, ['milestones'])) return undefined
  const errs = e.size
  const str = (k: string, required: boolean): string | null => {
    const x = getKey(v, k)
    if (!present(x) || x === '') {
      if (required) e.add(loc, `${k} can't be blank`)
      return null
    }
    if (!isString(x)) {
      e.add(loc, `${k} should be a string`)
      return null
    }
    return x
  }
  const tagName = str('tag_name', true)
  const description = str('description', true)
  const releasedAt = str('released_at', false)
  if (releasedAt !== null && !/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$/.test(releasedAt))
    e.add(loc, 'released_at must be a valid datetime')
  const assets = getKey(v, 'assets')
  const links = present(assets) ? validateReleaseLinks(e, `${loc}:assets`, assets) : []
  const out = {
    tagName: tagName!,
    tagMessage: str('tag_message', false),
    name: str('name', false),
    description: description!,
    ref: str('ref', false),
    releasedAt,
    links: links ?? [],
  }
  return e.size === errs && links ? out : undefined
}

export function validateCoverage(e: Errors, loc: string, v: unknown): string | undefined {
  if (isString(v) && patternFromString(v)) return v
  return e.add(loc, 'config must be a regular expression with re2 syntax')
}

export function validateWhen(e: Errors, loc: string, v: unknown): JobWhen | undefined {
  if (isString(v) && (JOB_WHEN as readonly string[]).includes(v)) return v as JobWhen
  return e.add(loc, `when should be one of: ${list(JOB_WHEN)}`)
}

export function validateAllowFailure(
  e: Errors,
  jobLoc: string,
  v: unknown,
): { allowFailure: boolean; exitCodes: number[] | null } | undefined {
  if (typeof v === 'boolean') return { allowFailure: v, exitCodes: null }
  if (!isHash(v)) return e.add(jobLoc, 'allow_failure should be a hash or a boolean value')
  const loc = `${jobLoc}:allow_failure`
  if (!checkKeys(e, loc, v, ['exit_codes'])) return undefined
  const raw = getKey(v, 'exit_codes')
  const codes = present(raw) ? intOrInts(raw) : []
  if (!codes) return e.add(loc, 'exit_codes should be an array of integers or an integer')
  return { allowFailure: false, exitCodes: codes }
}

/**
 * `id_tokens:` (GitLab's ComposableHash of IdToken entries): `{NAME: {aud: string | [string, ...]}}`.
 * The registry's own audience is refused: ID tokens share its issuer and keys.
 */
export function validateIdTokens(e: Errors, loc: string, v: unknown): Record<string, CiIdToken> | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  const out: Record<string, CiIdToken> = {}
  const before = e.size
  for (const name of Object.keys(v)) {
    const at = `${loc}:${name}`
    const token = v[name]
    if (!isHash(token)) {
      e.add(at, 'config should be a hash')
      continue
    }
    const unknown = Object.keys(token).filter((k) => k !== 'aud')
    if (unknown.length) e.add(at, `config contains unknown keys: ${list(unknown)}`)
    const aud = getKey(token, 'aud')
    if (!present(aud)) {
      e.add(at, 'config missing required keys: aud')
      continue
    }
    if (!(isString(aud) || isStringArray(aud))) {
      e.add(at, 'aud should be an array of strings or a string')
      continue
    }
    const auds = isString(aud) ? [aud] : aud
    if (auds.length === 0 || auds.includes('')) {
      e.add(at, "aud can't be blank")
      continue
    }
    if (auds.includes(REGISTRY_SERVICE)) {
      e.add(at, `aud must not be ${REGISTRY_SERVICE}: it is the audience of the container registry's own tokens`)
      continue
    }
    setKey(out, name, { aud })
  }
  return e.size === before ? out : undefined
}

/** `default:` keywords, the values `inherit:default` may list. */
export const DEFAULT_KEYS = [
  'before_script',
  'image',
  'services',
  'after_script',
  'cache',
  'interruptible',
  'timeout',
  'retry',
  'tags',
  'artifacts',
  'id_tokens',
] as const
export type DefaultKey = (typeof DEFAULT_KEYS)[number]

function inheritPart(e: Errors, loc: string, v: unknown, allowed: readonly string[] | null): boolean | string[] | undefined {
  if (typeof v === 'boolean') return v
  if (isStringArray(v)) {
    if (allowed) {
      const unknown = v.filter((x) => !allowed.includes(x))
      if (unknown.length) return e.add(loc, `config contains unknown values: ${list(unknown)}`)
    }
    return v
  }
  return e.add(loc, 'should be a bool or array of strings')
}

export function validateInherit(e: Errors, loc: string, v: unknown): CiInherit | undefined {
  if (!present(v)) return { default: true, variables: true }
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ['default', 'variables'])) return undefined
  const d = getKey(v, 'default')
  const vars = getKey(v, 'variables')
  const def = present(d) ? inheritPart(e, `${loc}:default`, d, DEFAULT_KEYS) : true
  const variables = present(vars) ? inheritPart(e, `${loc}:variables`, vars, null) : true
  if (def === undefined || variables === undefined) return undefined
  return { default: def, variables }
}

export const PARALLEL_LIMITS = {
  /** GitLab's bounds for `parallel: N` and for the jobs one matrix generates. */
  min: 1,
  max: 200,
} as const

function validateMatrix(e: Errors, loc: string, v: unknown): MatrixEntry[] | undefined {
  if (!Array.isArray(v) || v.length === 0 || !v.every(isHash)) return e.add(loc, 'config should be an array of hashes')
  const out: MatrixEntry[] = []
  for (const [i, raw] of v.entries()) {
    const at = `${loc}:${i}`
    const entry: MatrixEntry = {}
    const keys = Object.keys(raw)
    if (keys.length === 0) return e.add(at, "config can't be blank")
    for (const key of keys) {
      const value = raw[key]
      const values = isScalar(value) ? [String(value)] : Array.isArray(value) && value.every(isScalar) ? value.map(String) : undefined
      if (!values || values.length === 0) return e.add(`${at}:${key}`, 'config should be a string or an array of strings')
      setKey(entry, key, values)
    }
    out.push(entry)
  }
  return out
}

/** `parallel:` of a job: an instance count or a matrix (see ./parallel.ts, which expands it). */
export function validateParallel(e: Errors, loc: string, v: unknown): MatrixEntry[] | number | undefined {
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) return e.add(loc, 'config should be an integer or a hash')
    if (v < PARALLEL_LIMITS.min) return e.add(loc, `config must be greater than or equal to ${PARALLEL_LIMITS.min}`)
    if (v > PARALLEL_LIMITS.max) return e.add(loc, `config must be less than or equal to ${PARALLEL_LIMITS.max}`)
    return v
  }
  if (!isHash(v)) return e.add(loc, 'config should be an integer or a hash')
  if (!checkKeys(e, loc, v, ['matrix'])) return undefined
  const matrix = validateMatrix(e, `${loc}:matrix`, getKey(v, 'matrix'))
  if (!matrix) return undefined
  // Counted before the product is built: a hostile matrix costs no more than this.
  const count = matrix.reduce((n, entry) => n + Object.values(entry).reduce((p, vals) => p * vals.length, 1), 0)
  if (count > PARALLEL_LIMITS.max) return e.add(`${loc}:matrix`, `config generates too many jobs (maximum is ${PARALLEL_LIMITS.max})`)
  return matrix
}

/** `needs:parallel:` of one need: `{ matrix: [...] }` only. */
export function validateNeedParallel(e: Errors, loc: string, v: unknown): MatrixEntry[] | undefined {
  if (!isHash(v)) return e.add(loc, 'config should be a hash')
  if (!checkKeys(e, loc, v, ['matrix'])) return undefined
  return validateMatrix(e, `${loc}:matrix`, getKey(v, 'matrix'))
}

const TRIGGER_KEYS = ['project', 'branch', 'strategy', 'include', 'forward'] as const
/** A path of a project (`group/sub/project`), as the string form of `trigger:` names it. */
const PROJECT_PATH = /^[\w.-]+(\/[\w.-]+)+$/

/** The forms of a `trigger:include` entry and the keys each may have. */
const TRIGGER_INCLUDE_FORMS = {
  local: ['local', 'inputs'],
  artifact: ['artifact', 'job', 'inputs'],
  project: ['project', 'file', 'ref', 'inputs'],
  template: ['template', 'inputs'],
  component: ['component', 'inputs'],
  remote: ['remote', 'inputs'],
} as const

function validateTriggerInclude(e: Errors, loc: string, v: unknown): CiTriggerInclude[] | undefined {
  const items = Array.isArray(v) ? v : [v]
  if (items.length === 0) return e.add(loc, 'config should be a string or an array of hashes')
  const out: CiTriggerInclude[] = []
  for (const item of items) {
    if (isString(item) && item !== '') {
      out.push({ local: item })
      continue
    }
    if (!isHash(item)) return e.add(loc, 'config should be a string or an array of hashes')
    const forms = Object.keys(TRIGGER_INCLUDE_FORMS).filter((f) => hasKey(item, f)) as Array<keyof typeof TRIGGER_INCLUDE_FORMS>
    if (forms.length > 1) return e.add(loc, `config these keys cannot be used together: ${list(forms)}`)
    const form = forms[0] ?? (hasKey(item, 'job') ? 'artifact' : undefined)
    if (!form) return e.add(loc, `config should be one of: ${list(Object.keys(TRIGGER_INCLUDE_FORMS))}`)
    if (!checkKeys(e, loc, item, TRIGGER_INCLUDE_FORMS[form])) return undefined
    const main = getKey(item, form)
    if (form === 'artifact' && !(isString(getKey(item, 'job')) && getKey(item, 'job') !== '')) {
      return e.add(loc, 'config must specify the job where to fetch the artifact from')
    }
    if (!isString(main) || main === '') return e.add(loc, `${form} should be a string`)
    const inputs = getKey(item, 'inputs')
    if (present(inputs) && !isHash(inputs)) return e.add(loc, 'inputs should be a hash')
    // The file list, ref and inputs are checked where the child pipeline expands them, as any include.
    out.push({ ...item })
  }
  return out
}

/** `trigger:`: a project path, or a hash (GitLab's Config::Entry::Trigger). */
export function validateTrigger(e: Errors, loc: string, v: unknown): CiTrigger | undefined {
  const forward = { yamlVariables: true, pipelineVariables: false }
  if (isString(v)) {
    if (!PROJECT_PATH.test(v)) return e.add(loc, 'config should be a project path or a hash')
    return { project: v, branch: null, include: null, depend: false, forward }
  }
  if (!isHash(v)) return e.add(loc, 'config should be a hash or a string')
  if (!checkKeys(e, loc, v, TRIGGER_KEYS)) return undefined
  const errs = e.size
  const project = getKey(v, 'project')
  const branch = getKey(v, 'branch')
  const strategy = getKey(v, 'strategy')
  const includeRaw = getKey(v, 'include')
  if (present(project) && present(includeRaw)) e.add(loc, 'config these keys cannot be used together: project, include')
  if (!present(project) && !present(includeRaw)) e.add(loc, 'config must specify either project or include')
  if (present(project) && !(isString(project) && project !== '')) e.add(loc, 'project should be a string')
  if (present(branch) && !isString(branch)) e.add(loc, 'branch should be a string')
  if (present(branch) && present(includeRaw)) e.add(loc, 'config these keys cannot be used together: branch, include')
  if (present(strategy) && strategy !== 'depend') e.add(loc, 'strategy should be one of: depend')
  const include = present(includeRaw) ? validateTriggerInclude(e, `${loc}:include`, includeRaw) : null
  const fwd = getKey(v, 'forward')
  if (present(fwd)) {
    if (!isHash(fwd)) e.add(`${loc}:forward`, 'config should be a hash')
    else if (checkKeys(e, `${loc}:forward`, fwd, ['yaml_variables', 'pipeline_variables'])) {
      for (const [key, field] of [
        ['yaml_variables', 'yamlVariables'],
        ['pipeline_variables', 'pipelineVariables'],
      ] as const) {
        const x = getKey(fwd, key)
        if (!present(x)) continue
        if (typeof x !== 'boolean') e.add(`${loc}:forward`, `${key} should be a boolean value`)
        else forward[field] = x
      }
    }
  }
  if (e.size !== errs || include === undefined) return undefined
  return {
    project: isString(project) ? project : null,
    branch: isString(branch) ? branch : null,
    include,
    depend: strategy === 'depend',
    forward,
  }
}
