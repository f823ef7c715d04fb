import { CiConfigError } from './errors.ts'
import { resolveExtends } from './extends.ts'
import { expandIncludes, IncludeError, type IncludeSource } from './include.ts'
import { resolveReferences } from './reference.ts'
import {
  DEFAULT_JOB_STAGE,
  DEFAULT_STAGES,
  POST_STAGE,
  PRE_STAGE,
  type CiArtifacts,
  type CiCache,
  type CiConfig,
  type CiIdToken,
  type CiImage,
  type CiJob,
  type CiNeed,
  type CiRetry,
  type CiRule,
  type CiService,
  type MatrixEntry,
} from './types.ts'
import { expandParallel } from './parallel.ts'
import { getKey, hasKey, isHash, isString, isStringArray, list, type Hash } from './util.ts'
import {
  CONFIG_LIMITS,
  DEFAULT_KEYS,
  Errors,
  checkKeys,
  isCrossNeed,
  validateAllowFailure,
  validateAutoCancel,
  validateArtifacts,
  validateBoolean,
  validateCaches,
  validateCommands,
  validateCoverage,
  validateEnvironment,
  validateRelease,
  validateIdTokens,
  validateImage,
  validateInherit,
  validateNeeds,
  validateParallel,
  validatePolicy,
  validateRetry,
  validateRules,
  validateServices,
  validateStartIn,
  validateStages,
  validateTags,
  validateTimeout,
  validateTrigger,
  validateVariables,
  validateWhen,
  type DefaultKey,
} from './validate.ts'
import { loadYaml } from './yaml-load.ts'

// parseCiConfig: `.gitlab-ci.yml` text to a validated CiConfig, in GitLab's order:
// YAML (anchors, merge keys) → include:local → extends → !reference → keyword validation →
// logical checks (stages, needs, dependencies). All errors are collected and thrown together.

export interface ParseCiConfigOptions extends IncludeSource {
  /** Hears the configuration with includes, `extends` and `!reference` expanded (CI lint's merged YAML). */
  onExpanded?(root: Hash): void
}

/** Top-level keys that are never jobs (GitLab's reserved root entries). */
const GLOBAL_KEYS = [
  'default',
  'include',
  'before_script',
  'image',
  'services',
  'after_script',
  'variables',
  'stages',
  'types',
  'cache',
  'workflow',
] as const
/** Pre-`default:` top-level spellings of default keywords. */
const LEGACY_DEFAULT_KEYS = ['before_script', 'image', 'services', 'after_script', 'cache'] as const

const JOB_KEYS = [
  'extends',
  'stage',
  'type',
  'only',
  'except',
  'rules',
  'variables',
  'inherit',
  'allow_failure',
  'when',
  'needs',
  'tags',
  'script',
  'image',
  'services',
  'artifacts',
  'cache',
  'dependencies',
  'before_script',
  'after_script',
  'environment',
  'coverage',
  'retry',
  'interruptible',
  'timeout',
  'id_tokens',
  'parallel',
  'resource_group',
  'start_in',
  'release',
] as const
/** GitLab job keywords Wharf does not implement: an error, never silently ignored. */
const UNSUPPORTED_JOB_KEYS = [
  'run',
  'secrets',
  'pages',
  'hooks',
  'identity',
  'dast_configuration',
  'manual_confirmation',
  'inputs',
  'publish',
] as const
/** Keywords of a bridge job (`trigger:`), GitLab's Config::Entry::Bridge: no script, image or other runner keywords. */
const BRIDGE_KEYS = [
  'trigger',
  'extends',
  'stage',
  'only',
  'except',
  'rules',
  'variables',
  'inherit',
  'allow_failure',
  'when',
  'needs',
  'environment',
  'parallel',
  'resource_group',
] as const
const BRIDGE_WHEN = ['on_success', 'on_failure', 'always', 'manual'] as const
const UNSUPPORTED_DEFAULT_KEYS = ['hooks', 'identity'] as const

interface Defaults {
  before_script?: string[]
  image?: CiImage
  services?: CiService[]
  after_script?: string[]
  cache?: CiCache[]
  interruptible?: boolean
  timeout?: number
  retry?: CiRetry
  tags?: string[]
  artifacts?: CiArtifacts
  id_tokens?: Record<string, CiIdToken>
}

export async function parseCiConfig(text: string, opts: ParseCiConfigOptions): Promise<CiConfig> {
  if (text.trim() === '') throw new CiConfigError(['Please provide content of .gitlab-ci.yml'])
  const loaded = loadYaml(text, '.gitlab-ci.yml')
  if (!loaded.ok) throw new CiConfigError([loaded.error])
  if (!isHash(loaded.value)) throw new CiConfigError(['Invalid configuration format'])

  const includes: string[] = []
  let root: Hash
  try {
    root = await expandIncludes(loaded.value, opts, includes)
  } catch (e) {
    if (e instanceof IncludeError) throw new CiConfigError([e.message])
    throw e
  }
  const extendErrors = resolveExtends(root)
  if (extendErrors.length) throw new CiConfigError(extendErrors)
  const referenceErrors = resolveReferences(root)
  if (referenceErrors.length) throw new CiConfigError(referenceErrors)
  opts.onExpanded?.(root)

  const e = new Errors()
  const config = buildConfig(e, root, includes)
  if (e.size) throw new CiConfigError(e.list)
  return config
}

const present = (v: unknown): boolean => v !== undefined && v !== null

function buildConfig(e: Errors, root: Hash, includes: string[]): CiConfig {
  const stagesRaw = present(getKey(root, 'stages')) ? getKey(root, 'stages') : getKey(root, 'types')
  const configured = present(stagesRaw) ? (validateStages(e, 'stages', stagesRaw) ?? []) : [...DEFAULT_STAGES]
  const stages = [PRE_STAGE, ...new Set(configured.filter((s) => s !== PRE_STAGE && s !== POST_STAGE)), POST_STAGE]

  const variables = validateVariables(e, 'variables', getKey(root, 'variables'), ['value', 'description', 'expand', 'options']) ?? {}
  const workflow = buildWorkflow(e, getKey(root, 'workflow'))
  const defaults = buildDefaults(e, root)

  let jobs: CiJob[] = []
  const parallel = new Map<string, number | MatrixEntry[]>()
  let visible = 0
  for (const name of Object.keys(root)) {
    if ((GLOBAL_KEYS as readonly string[]).includes(name)) continue
    const value = root[name]
    const loc = `jobs:${name}`
    if (name.startsWith('.')) {
      if (!present(value) || value === '' || (Array.isArray(value) && value.length === 0)) e.add(loc, "config can't be blank")
      continue
    }
    if (!isHash(value) || !(hasKey(value, 'script') || hasKey(value, 'trigger'))) {
      e.add(loc, 'config should implement the script:, run:, or trigger: keyword')
      if (isHash(value)) checkKeys(e, loc, value, JOB_KEYS, UNSUPPORTED_JOB_KEYS)
      continue
    }
    visible++
    const job = buildJob(e, name, value, defaults)
    if (job) jobs.push(job)
    if (job && present(getKey(value, 'parallel'))) {
      const p = validateParallel(e, `${loc}:parallel`, getKey(value, 'parallel'))
      if (p !== undefined) parallel.set(name, p)
    }
  }
  if (visible === 0) e.add('jobs', 'config should contain at least one visible job')
  if (e.size === 0) jobs = expandParallel(e, jobs, parallel)
  if (e.size === 0) checkJobGraph(e, stages, jobs)
  return { stages, variables, workflow, jobs, includes }
}

function buildWorkflow(e: Errors, v: unknown): CiConfig['workflow'] {
  const none = { name: null, rules: null, autoCancelOnNewCommit: null, autoCancelOnJobFailure: null }
  if (!present(v)) return none
  if (!isHash(v)) return e.add('workflow', 'config should be a hash') ?? none
  if (Object.keys(v).length === 0) return e.add('workflow', "config can't be blank") ?? none
  if (!checkKeys(e, 'workflow', v, ['rules', 'name', 'auto_cancel'], [])) return none
  const name = getKey(v, 'name')
  if (present(name) && !(isString(name) && name.length <= 255)) e.add('workflow', 'name should be a string of at most 255 characters')
  const rulesRaw = getKey(v, 'rules')
  const rules = present(rulesRaw) ? (validateRules(e, 'workflow:rules', rulesRaw, 'workflow') ?? null) : null
  const autoCancelRaw = getKey(v, 'auto_cancel')
  const autoCancel = present(autoCancelRaw) ? validateAutoCancel(e, 'workflow:auto_cancel', autoCancelRaw) : undefined
  return {
    name: isString(name) ? name : null,
    rules,
    autoCancelOnNewCommit: autoCancel?.onNewCommit ?? null,
    autoCancelOnJobFailure: autoCancel?.onJobFailure ?? null,
  }
}

function validateDefaultKey(e: Errors, loc: string, key: DefaultKey, v: unknown, into: Defaults): void {
  switch (key) {
    case 'before_script':
    case 'after_script': {
      const cmds = validateCommands(e, loc, v)
      if (cmds) into[key] = cmds
      return
    }
    case 'image': {
      const x = validateImage(e, loc, v)
      if (x) into.image = x
      return
    }
    case 'services': {
      const x = validateServices(e, loc, v)
      if (x) into.services = x
      return
    }
    case 'cache': {
      const x = validateCaches(e, loc, v)
      if (x) into.cache = x
      return
    }
    case 'interruptible': {
      const x = validateBoolean(e, loc, v)
      if (x !== undefined) into.interruptible = x
      return
    }
    case 'timeout': {
      const x = validateTimeout(e, loc, v)
      if (x !== undefined) into.timeout = x
      return
    }
    case 'retry': {
      const x = validateRetry(e, loc, v)
      if (x) into.retry = x
      return
    }
    case 'tags': {
      const x = validateTags(e, loc, v)
      if (x) into.tags = x
      return
    }
    case 'artifacts': {
      const x = validateArtifacts(e, loc, v)
      if (x) into.artifacts = x
      return
    }
    case 'id_tokens': {
      const x = validateIdTokens(e, loc, v)
      if (x) into.id_tokens = x
      return
    }
  }
}

function buildDefaults(e: Errors, root: Hash): Defaults {
  const out: Defaults = {}
  const def = getKey(root, 'default')
  if (present(def)) {
    if (!isHash(def)) e.add('default', 'config should be a hash')
    else if (checkKeys(e, 'default', def, DEFAULT_KEYS, UNSUPPORTED_DEFAULT_KEYS)) {
      for (const key of DEFAULT_KEYS) {
        const v = getKey(def, key)
        if (present(v)) validateDefaultKey(e, `default:${key}`, key, v, out)
      }
    }
  }
  for (const key of LEGACY_DEFAULT_KEYS) {
    const v = getKey(root, key)
    if (!present(v)) continue
    if (isHash(def) && present(getKey(def, key))) {
      e.add('', `${key} is defined in top-level and \`default:\` entry`)
      continue
    }
    validateDefaultKey(e, key, key, v, out)
  }
  return out
}

function inherits(inherit: boolean | string[], key: DefaultKey): boolean {
  return inherit === true || (Array.isArray(inherit) && inherit.includes(key))
}

function buildJob(e: Errors, name: string, h: Hash, defaults: Defaults): CiJob | undefined {
  const loc = `jobs:${name}`
  const errs = e.size
  if (name.length > CONFIG_LIMITS.jobName) e.add(loc, `name is too long (maximum is ${CONFIG_LIMITS.jobName} characters)`)
  const get = (k: string): unknown => getKey(h, k)
  const has = (k: string): boolean => present(get(k))
  const bridge = hasKey(h, 'trigger')
  if (bridge) checkKeys(e, loc, h, BRIDGE_KEYS, UNSUPPORTED_JOB_KEYS)
  else checkKeys(e, loc, h, JOB_KEYS, UNSUPPORTED_JOB_KEYS)
  const trigger = bridge ? validateTrigger(e, `${loc}:trigger`, get('trigger')) : null

  if (has('rules')) {
    const clash = ['only', 'except'].filter(has)
    if (clash.length) e.add(loc, `config key may not be used with \`rules\`: ${list(clash)}`)
  }

  const ext = get('extends')
  if (present(ext) && !(isString(ext) || isStringArray(ext))) e.add(loc, 'extends should be an array of strings or a string')

  const stageRaw = has('stage') ? get('stage') : get('type')
  let stage = DEFAULT_JOB_STAGE
  if (present(stageRaw)) {
    if (isString(stageRaw)) stage = stageRaw
    else e.add(`${loc}:stage`, 'config should be a string')
  }

  const scriptRaw = get('script')
  let script: string[] | undefined
  if (bridge) script = []
  else if (!present(scriptRaw) || scriptRaw === '' || (Array.isArray(scriptRaw) && scriptRaw.length === 0))
    e.add(loc, "script can't be blank")
  else script = validateCommands(e, `${loc}:script`, scriptRaw)

  const inherit = validateInherit(e, `${loc}:inherit`, get('inherit')) ?? { default: true, variables: true }
  // A job's own keyword wins; otherwise `default:` (or its top-level spelling), unless `inherit:default` says no.
  const own: Defaults = {}
  for (const key of DEFAULT_KEYS) {
    if (has(key)) validateDefaultKey(e, `${loc}:${key}`, key, get(key), own)
  }
  // A bridge runs nowhere: `default:` keywords (image, scripts, tags...) do not apply to it.
  const pick = <K extends DefaultKey>(key: K): Defaults[K] =>
    has(key) ? own[key] : !bridge && inherits(inherit.default, key) ? defaults[key] : undefined

  const variables = validateVariables(e, `${loc}:variables`, get('variables'), ['value', 'expand'])
  const rules = has('rules') ? validateRules(e, `${loc}:rules`, get('rules'), 'job') : null
  const only = has('only') ? validatePolicy(e, `${loc}:only`, get('only')) : null
  const except = has('except') ? validatePolicy(e, `${loc}:except`, get('except')) : null
  const allNeeds = has('needs') ? validateNeeds(e, `${loc}:needs`, get('needs')) : null
  // Needs outside this pipeline give artifacts only; the job waits for the jobs of this pipeline it names.
  const needs = allNeeds ? allNeeds.filter((n): n is CiNeed => !isCrossNeed(n)) : allNeeds
  const crossNeeds = allNeeds ? allNeeds.filter(isCrossNeed) : []
  let dependencies: string[] | null = null
  if (has('dependencies')) {
    const d = get('dependencies')
    if (isStringArray(d)) dependencies = d
    else e.add(loc, 'dependencies should be an array of strings')
  }
  const when = has('when') ? validateWhen(e, loc, get('when')) : 'on_success'
  const allow = has('allow_failure') ? validateAllowFailure(e, loc, get('allow_failure')) : null
  const environment = has('environment') ? validateEnvironment(e, `${loc}:environment`, get('environment')) : null
  const release = has('release') ? validateRelease(e, `${loc}:release`, get('release')) : null
  const coverage = has('coverage') ? validateCoverage(e, `${loc}:coverage`, get('coverage')) : null
  const resourceGroup = get('resource_group')
  if (present(resourceGroup) && !(isString(resourceGroup) && resourceGroup !== '' && resourceGroup.length <= 255)) {
    e.add(`${loc}:resource_group`, 'config should be a string of at most 255 characters')
  }
  // A bridge is never delayed (GitLab's Bridge::ALLOWED_WHEN); `start_in` is not one of its keys.
  if (bridge && when === 'delayed') e.add(loc, `when should be one of: ${list(BRIDGE_WHEN)}`)
  // With rules, the delay belongs to the rule that says `when: delayed` (GitLab: "start in must be blank").
  const startIn = bridge ? null : validateStartIn(e, loc, get('start_in'), when === 'delayed' && !has('rules'))

  if (
    e.size !== errs ||
    !script ||
    !variables ||
    rules === undefined ||
    only === undefined ||
    except === undefined ||
    needs === undefined ||
    !when ||
    allow === undefined ||
    environment === undefined ||
    release === undefined ||
    coverage === undefined ||
    trigger === undefined ||
    startIn === undefined
  ) {
    return undefined
  }
  return {
    name,
    stage,
    extends: isString(ext) ? [ext] : isStringArray(ext) ? ext : [],
    image: pick('image') ?? null,
    services: pick('services') ?? [],
    beforeScript: pick('before_script') ?? [],
    script,
    afterScript: pick('after_script') ?? [],
    variables,
    inherit,
    rules,
    only,
    except,
    needs,
    crossNeeds,
    dependencies,
    artifacts: pick('artifacts') ?? null,
    cache: pick('cache') ?? [],
    when,
    // GitLab: a job-level `when: manual` may fail unless `allow_failure` says otherwise.
    allowFailure: allow ? allow.allowFailure : when === 'manual',
    allowFailureExitCodes: allow?.exitCodes ?? null,
    retry: pick('retry') ?? null,
    timeout: pick('timeout') ?? null,
    tags: pick('tags') ?? [],
    interruptible: pick('interruptible') ?? null,
    startIn,
    environment,
    release,
    coverage,
    idTokens: pick('id_tokens') ?? null,
    parallel: null,
    trigger,
    resourceGroup: isString(resourceGroup) ? resourceGroup : null,
  }
}

/** GitLab's logical validation (YamlProcessor): stages exist, needs and dependencies point back. */
function checkJobGraph(e: Errors, stages: string[], jobs: CiJob[]): void {
  const byName = new Map(jobs.map((j) => [j.name, j]))
  const stageIndex = (job: CiJob): number => stages.indexOf(job.stage)
  for (const job of jobs) {
    if (!stages.includes(job.stage)) {
      e.add('', `${job.name} job: chosen stage ${job.stage} does not exist; available stages are ${list(stages)}`)
      continue
    }
    const checkDependency = (dep: string, type: 'need' | 'dependency', optional: boolean): void => {
      const target = byName.get(dep)
      if (!target) {
        if (!optional) e.add('', `${job.name} job: undefined ${type}: ${dep}`)
        return
      }
      const idx = stageIndex(target)
      if (idx < 0 || idx > stageIndex(job)) e.add('', `${job.name} job: ${type} ${dep} is not defined in current or prior stages`)
    }
    for (const dep of job.dependencies ?? []) checkDependency(dep, 'dependency', false)
    const needLists: CiNeed[][] = []
    if (job.needs) needLists.push(job.needs)
    for (const rule of job.rules ?? []) if (rule.needs) needLists.push(rule.needs)
    for (const needs of needLists) {
      for (const need of needs) checkDependency(need.job, 'need', need.optional)
      const seen = new Set<string>()
      const dups = new Set<string>()
      for (const need of needs) (seen.has(need.job) ? dups : seen).add(need.job)
      if (dups.size) e.add('', `${job.name} has the following needs duplicated: ${list([...dups])}.`)
    }
    if (job.dependencies && job.needs) {
      const needed = new Set(job.needs.map((n) => n.job))
      const missing = job.dependencies.filter((d) => !needed.has(d))
      if (missing.length) e.add(`jobs:${job.name}`, `dependencies the ${list(missing)} should be part of needs`)
    }
  }
  if (e.size === 0) checkCycles(e, jobs)
}

function checkCycles(e: Errors, jobs: CiJob[]): void {
  const names = new Set(jobs.map((j) => j.name))
  const edges = new Map<string, string[]>()
  for (const job of jobs) {
    const needs = [...(job.needs ?? []), ...(job.rules ?? []).flatMap((r: CiRule) => r.needs ?? [])]
    edges.set(
      job.name,
      needs.map((n) => n.job).filter((n) => names.has(n)),
    )
  }
  const state = new Map<string, 'visiting' | 'done'>()
  const stack: string[] = []
  const visit = (name: string): string[] | undefined => {
    const s = state.get(name)
    if (s === 'done') return undefined
    if (s === 'visiting') return stack.slice(stack.indexOf(name))
    state.set(name, 'visiting')
    stack.push(name)
    for (const next of edges.get(name) ?? []) {
      const cycle = visit(next)
      if (cycle) return cycle
    }
    stack.pop()
    state.set(name, 'done')
    return undefined
  }
  for (const job of jobs) {
    const cycle = visit(job.name)
    if (cycle) {
      const detail =
        cycle.length === 1 ? `self-dependency: ${cycle[0]}` : `topological sort failed: [${cycle.map((c) => JSON.stringify(c)).join(', ')}]`
      e.add('', `The pipeline has circular dependencies: ${detail}`)
      return
    }
  }
}
