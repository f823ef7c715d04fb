import { Kind, Type, TypeRegistry, type ObjectOptions, type TProperties, type TSchema, type TUnsafe } from '@sinclair/typebox'

// TypeBox's pattern for a custom kind, so Value.Check (tests) understands it as Fastify's ajv does.
if (!TypeRegistry.Has('StringEnum'))
  TypeRegistry.Set<{ enum: string[] }>('StringEnum', (schema, value) => typeof value === 'string' && schema.enum.includes(value))

/** A string enum as plain JSON Schema `enum` (clearer validation messages than a union of literals). */
export function StringEnum<T extends readonly string[]>(
  values: T,
  opts: { description?: string; default?: T[number] } = {},
): TUnsafe<T[number]> {
  return Type.Unsafe<T[number]>({ [Kind]: 'StringEnum', type: 'string', enum: [...values], ...opts })
}

/**
 * GitLab's visibility levels, as auth/roles.ts's VISIBILITIES lists them (api/ imports no domain;
 * test/http/api-openapi.test.ts checks real responses against the entities that use it).
 */
export const VisibilitySchema = StringEnum(['private', 'internal', 'public'] as const, { description: 'private, internal or public' })

/**
 * A request body of exactly these attributes. Anything else fails validation with a 400 naming it
 * (`unknown attribute: creator_id`, see problem.ts), so a caller can never choose what gets written.
 * Every write route uses it; test/http/api-strict-bodies.test.ts checks that they do.
 */
export const Body = <T extends TProperties>(properties: T, opts: ObjectOptions = {}) =>
  Type.Object(properties, { ...opts, additionalProperties: false })

/** GitLab's `:id`: a numeric id or the URL-encoded full path (`group%2Fproject`). */
export const IdParam = Type.Object({ id: Type.String({ description: 'numeric id or URL-encoded full path' }) })

// Null first: with coercion on, ajv would otherwise turn a JSON null into 0 or "" for the other branch.
export const Nullable = <T extends TSchema>(t: T) => Type.Union([Type.Null(), t])

export const DateString = Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}$', description: 'YYYY-MM-DD' })

// Response shapes, for the OpenAPI document (`x-response`) and the tests that check real responses
// against it. Not used for serialization, so an extra field never silently disappears.

const Str = Type.String()
const NStr = Nullable(Type.String())
const Int = Type.Integer()
const NInt = Nullable(Type.Integer())

export const NamespaceEntity = Type.Object({
  id: Int,
  name: Str,
  path: Str,
  kind: StringEnum(['user', 'group'] as const),
  full_path: Str,
  parent_id: NInt,
  avatar_url: Type.Null(),
  web_url: Str,
})

/** GitLab's `statistics` of a project or group (with `statistics=true`); Wharf fills in the registry's share. */
const StatisticsOf = Type.Optional(
  Type.Object({ container_registry_size: Type.Integer({ description: 'bytes the images hold, each shared blob counted once' }) }),
)
export const StatisticsQuery = Type.Object({ statistics: Type.Optional(Type.Boolean()) })

export const ProjectEntity = Type.Object({
  id: Int,
  statistics: StatisticsOf,
  description: Str,
  name: Str,
  name_with_namespace: Str,
  path: Str,
  path_with_namespace: Str,
  created_at: Str,
  last_activity_at: Str,
  default_branch: NStr,
  tag_list: Type.Array(Str),
  topics: Type.Array(Str),
  http_url_to_repo: Str,
  web_url: Str,
  avatar_url: Type.Null(),
  visibility: VisibilitySchema,
  namespace: Nullable(NamespaceEntity),
  creator_id: NInt,
  archived: Type.Boolean(),
  empty_repo: Type.Boolean(),
  container_registry_enabled: Type.Boolean(),
  container_registry_access_level: Str,
  container_registry_image_prefix: Type.String({ description: '<registry host>/<full path lowercased>' }),
  _links: Type.Object({ self: Str, members: Str }),
  /** GitLab's registry cleanup policy of the project. */
  container_expiration_policy: Type.Optional(
    Type.Object({
      enabled: Type.Boolean(),
      cadence: Str,
      keep_n: NInt,
      older_than: NStr,
      name_regex: NStr,
      name_regex_keep: NStr,
      next_run_at: NStr,
      remove_deleted_branch_tags: Type.Boolean(),
      keep_protected_branch_latest: Type.Boolean(),
    }),
  ),
})

/** GitLab's container_expiration_policy_attributes (PUT /projects/:id); values are checked against GitLab's lists by the registry. */
export const ExpirationPolicyBody = Body({
  enabled: Type.Optional(Type.Boolean()),
  cadence: Type.Optional(Type.String({ description: '1d, 7d, 14d, 1month or 3month' })),
  keep_n: Type.Optional(Nullable(Type.Integer({ description: '1, 5, 10, 25, 50 or 100' }))),
  older_than: Type.Optional(Nullable(Type.String({ description: '7d, 14d, 30d or 90d' }))),
  name_regex: Type.Optional(Nullable(Type.String({ maxLength: 255, description: 'RE2 pattern of tag names to delete' }))),
  name_regex_keep: Type.Optional(Nullable(Type.String({ maxLength: 255, description: 'RE2 pattern of tag names to keep' }))),
  remove_deleted_branch_tags: Type.Optional(
    Type.Boolean({
      description: "Wharf extension: delete a tag a CI job pushed as its branch's CI_COMMIT_REF_SLUG once the branch is gone",
    }),
  ),
  keep_protected_branch_latest: Type.Optional(
    Type.Boolean({ description: 'Wharf extension: keep the tags the latest successful pipeline of each protected branch pushed' }),
  ),
})

export const GroupEntity = Type.Object({
  id: Int,
  statistics: StatisticsOf,
  web_url: Str,
  name: Str,
  path: Str,
  description: Str,
  visibility: VisibilitySchema,
  full_name: Str,
  full_path: Str,
  parent_id: NInt,
  created_at: Str,
  avatar_url: Type.Null(),
})

export const UserEntity = Type.Object({
  id: Int,
  username: Str,
  name: Str,
  state: StringEnum(['active', 'blocked', 'deactivated'] as const),
  locked: Type.Boolean(),
  avatar_url: Type.Null(),
  web_url: Str,
  created_at: Str,
  bot: Type.Boolean(),
  email: Type.Optional(NStr),
  is_admin: Type.Optional(Type.Boolean({ description: 'administrators and oneself only' })),
  can_create_group: Type.Optional(Type.Boolean()),
  can_create_project: Type.Optional(Type.Boolean()),
})

export const MemberEntity = Type.Object({
  id: Int,
  username: Str,
  name: Str,
  state: Str,
  avatar_url: Type.Null(),
  web_url: Str,
  access_level: Int,
  expires_at: NStr,
  created_at: Str,
})

export const PatEntity = Type.Object({
  id: Int,
  name: Str,
  revoked: Type.Boolean(),
  created_at: Str,
  scopes: Type.Array(Str),
  user_id: Int,
  last_used_at: NStr,
  active: Type.Boolean(),
  expires_at: NStr,
  token: Type.Optional(Type.String({ description: 'only in the response that created the token' })),
})

export const DeployTokenEntity = Type.Object({
  id: Int,
  name: Str,
  username: Str,
  expires_at: NStr,
  scopes: Type.Array(Str),
  revoked: Type.Boolean(),
  expired: Type.Boolean(),
  token: Type.Optional(Type.String({ description: 'only in the response that created the token' })),
})

export const TagEntity = Type.Object({ name: Str, path: Str, location: Str })

export const TagDetailEntity = Type.Object({
  name: Str,
  path: Str,
  location: Str,
  digest: Str,
  media_type: Str,
  revision: Type.String({ description: "the config blob's hex digest" }),
  short_revision: Str,
  total_size: Type.Integer({ description: 'bytes of the manifest, its config and layers' }),
  created_at: Str,
  platforms: Type.Optional(
    Type.Array(Str, { description: "Wharf extension, for an index or manifest list: its children's platforms, e.g. linux/amd64" }),
  ),
})

export const RepositoryEntity = Type.Object({
  id: Int,
  name: Type.String({ description: "the image name below the project path ('' for the project's own image)" }),
  path: Str,
  project_id: Int,
  location: Str,
  created_at: Str,
  cleanup_policy_started_at: Type.Null(),
  tags_count: Int,
  size: Type.Optional(
    Type.Integer({
      description: 'Wharf extension (with ?size=true): total compressed size of the distinct blobs referenced by the tagged manifests',
    }),
  ),
  tags: Type.Optional(Type.Array(TagEntity)),
})

export const OAuthTokenEntity = Type.Object({
  access_token: Str,
  token_type: Type.Literal('Bearer'),
  expires_in: Int,
  refresh_token: Str,
  scope: Str,
  created_at: Int,
})

export const Accepted = Type.Object({ message: Type.Literal('202 Accepted') })
