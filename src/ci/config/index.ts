// Public surface of the `.gitlab-ci.yml` domain: parse, plan, expressions, variables, globs.
export { parseCiConfig, type ParseCiConfigOptions } from './parse.ts'
export {
  planPipeline,
  FILTERED_BY_WORKFLOW,
  NO_JOBS,
  PIPELINE_SOURCES,
  type PipelinePlan,
  type PipelineSource,
  type PlanContext,
  type PlannedJob,
} from './plan.ts'
export { CiConfigError, isCiConfigError } from './errors.ts'
export {
  parseExpression,
  evaluateExpression,
  isValidExpression,
  ExpressionSyntaxError,
  type Expr,
} from './expression.ts'
export { expandVariables, expandAllVariables, referencedVariables, type VariableDefinition, type VariableLookup } from './variables.ts'
export { matchGlob, globToRegExp, anyGlobMatches } from './glob.ts'
export { parseDuration, MAX_JOB_TIMEOUT_SECONDS } from './duration.ts'
export { INCLUDE_LIMITS } from './include.ts'
export { CONFIG_LIMITS } from './validate.ts'
export { YAML_LIMITS } from './yaml-load.ts'
export * from './types.ts'
