/**
 * The schema of `wharf runner`'s settings (the config file's shape, snake_case as in
 * gitlab-runner's config.toml; flags are laid over it before it is checked). Each setting's
 * `description` is what an error says was expected. The file format is documented in config.ts.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { PULL_POLICIES } from './protocol.ts'

export const EXECUTORS = ['shell', 'docker'] as const
export const SHELLS = ['bash', 'sh'] as const
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

const str = (description = 'a string') => Type.String({ description })
const int = (minimum: number, maximum?: number) =>
  Type.Integer({
    minimum,
    ...(maximum === undefined ? {} : { maximum }),
    description: maximum === undefined ? `an integer of at least ${minimum}` : `an integer between ${minimum} and ${maximum}`,
  })
const bool = () => Type.Boolean({ description: 'true or false' })
const oneOf = <T extends string>(values: readonly T[]) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { description: `one of ${values.join(', ')}` },
  )
const list = <S extends TSchema>(item: S, opts: { minItems?: number } = {}) =>
  Type.Array(item, { ...opts, description: opts.minItems ? 'a list that is not empty' : 'a list' })

/** Scheme and host, no credentials (they would end up in logs): the runner authenticates with its token. */
const URL_PATTERN = 'https?://[^/\\s?#@]+(/[^\\s?#@]*)?'
const url = () => Type.String({ pattern: `^${URL_PATTERN}$`, description: 'an http:// or https:// URL without credentials' })
/** Linux capability names as the engine takes them: `ALL`, `NET_ADMIN` or `CAP_NET_ADMIN`. */
const capabilities = () =>
  list(Type.String({ pattern: '^(CAP_)?[A-Za-z][A-Za-z0-9_]*$', description: 'a capability name like NET_ADMIN or ALL' }))
/** `--security-opt` values the engine understands, plus the docker CLI's `systempaths=unconfined`. */
const securityOptions = () =>
  list(
    Type.String({
      pattern: '^(no-new-privileges([=:](true|false))?|(seccomp|apparmor|label)[=:].+|systempaths[=:]unconfined)$',
      description: 'seccomp=…, apparmor=…, label=…, no-new-privileges or systempaths=unconfined',
    }),
  )

export const DockerSchema = Type.Object(
  {
    host: Type.String({ pattern: '^(unix|tcp|http|https|npipe)://', description: 'unix://PATH or tcp://HOST:PORT' }),
    image: str(),
    pull_policy: list(oneOf(PULL_POLICIES), { minItems: 1 }),
    allowed_pull_policies: list(oneOf(PULL_POLICIES), { minItems: 1 }),
    network_mode: str(),
    bind_docker_socket: bool(),
    privileged: bool(),
    cap_add: capabilities(),
    cap_drop: capabilities(),
    security_opt: securityOptions(),
    services_privileged: bool(),
    services_cap_add: capabilities(),
    services_cap_drop: capabilities(),
    services_security_opt: securityOptions(),
    volumes: list(Type.String({ pattern: '^[^:]+:/[^:]*(:(ro|rw))?$', description: '"host-path:/container-path[:ro|rw]"' })),
    extra_hosts: list(str('"name:ip"')),
    wait_for_services_timeout: int(0, 3600),
    /** DOCKER_AUTH_CONFIG for image pulls; that it is a JSON object is checked after the schema. */
    auth_config: str('a JSON object like {"auths": {...}}'),
    registry_mirror: Type.String({
      pattern: `^(auto|off|${URL_PATTERN})$`,
      description: 'auto, off or an http:// or https:// URL without credentials',
    }),
  },
  { additionalProperties: false, description: 'a mapping' },
)

export const RunnerEntrySchema = Type.Object(
  {
    name: Type.Optional(str()),
    url: url(),
    token: Type.String({ minLength: 1, description: 'a runner authentication token (glrt-…)' }),
    executor: oneOf(EXECUTORS),
    limit: Type.Optional(int(0)),
    builds_dir: Type.Optional(str('a path')),
    cache_dir: Type.Optional(str('a path')),
    clone_url: Type.Optional(url()),
    tags: Type.Optional(list(str())),
    environment: Type.Optional(list(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*=', description: '"NAME=value"' }))),
    /** KiB, as gitlab-runner's output_limit. */
    output_limit: Type.Optional(int(1, 1 << 20)),
    after_script_timeout: Type.Optional(int(1)),
    shell: Type.Optional(oneOf(SHELLS)),
    docker: Type.Optional(Type.Partial(DockerSchema, { additionalProperties: false, description: 'a mapping' })),
  },
  { additionalProperties: false, description: 'a mapping' },
)

export const RunnerFileSchema = Type.Object(
  {
    concurrent: Type.Optional(int(1, 1000)),
    check_interval: Type.Optional(int(0, 3600)),
    shutdown_timeout: Type.Optional(int(0, 86400)),
    log_level: Type.Optional(oneOf(LOG_LEVELS)),
    runners: Type.Array(RunnerEntrySchema, { description: 'a list of runners' }),
  },
  { additionalProperties: false, description: 'a mapping' },
)

export type RunnerFile = Static<typeof RunnerFileSchema>
export type RunnerFileEntry = Static<typeof RunnerEntrySchema>
