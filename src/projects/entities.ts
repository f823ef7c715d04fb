import type { ApiUrls as Urls } from '../api/context.ts'
import type { DeployToken, Namespace, Project } from '../metadata/schema.ts'
import { expired } from '../users/entities.ts'
import type { ProjectAccess } from './access-levels.ts'

// JSON shapes of the REST API for namespaces, groups, projects, members and deploy tokens, following
// GitLab's field names where they overlap.

export function namespaceJson(ns: Namespace, urls: Urls) {
  return {
    id: ns.id,
    name: ns.name,
    path: ns.path,
    kind: ns.kind,
    full_path: ns.full_path,
    parent_id: ns.parent_id,
    avatar_url: null,
    web_url: `${urls.publicUrl}/${ns.kind === 'group' ? 'groups/' : ''}${ns.full_path}`,
  }
}

export async function projectJson(project: Project, access: ProjectAccess, urls: Urls) {
  const chain = (await access.namespaceChain(project.namespace_id)).reverse()
  const ns = chain.at(-1)
  return {
    id: project.id,
    description: project.description,
    name: project.name,
    name_with_namespace: [...chain.map((n) => n.name), project.name].join(' / '),
    path: project.path,
    path_with_namespace: project.full_path,
    created_at: project.created_at,
    last_activity_at: project.created_at,
    default_branch: null,
    tag_list: [],
    topics: [],
    http_url_to_repo: `${urls.publicUrl}/${project.full_path}.git`,
    web_url: `${urls.publicUrl}/${project.full_path}`,
    avatar_url: null,
    visibility: project.visibility,
    namespace: ns ? namespaceJson(ns, urls) : null,
    creator_id: project.creator_id,
    archived: false,
    empty_repo: true,
    container_registry_enabled: true,
    container_registry_access_level: 'enabled',
    // Image names are lowercase (a pitfall in the seed): the registry path is the full path lowercased.
    container_registry_image_prefix: `${urls.registryHost}/${project.full_path_lower}`,
    _links: {
      self: `${urls.publicUrl}/api/v4/projects/${project.id}`,
      members: `${urls.publicUrl}/api/v4/projects/${project.id}/members`,
    },
  }
}

export function groupJson(group: Namespace, urls: Urls, fullName?: string) {
  return {
    id: group.id,
    web_url: `${urls.publicUrl}/groups/${group.full_path}`,
    name: group.name,
    path: group.path,
    description: group.description,
    visibility: group.visibility,
    full_name: fullName ?? group.name,
    full_path: group.full_path,
    parent_id: group.parent_id,
    created_at: group.created_at,
    avatar_url: null,
  }
}

export async function groupJsonFull(group: Namespace, access: ProjectAccess, urls: Urls) {
  const chain = (await access.namespaceChain(group.id)).reverse()
  return groupJson(group, urls, chain.map((n) => n.name).join(' / '))
}

export function memberJson(
  m: { id: number; username: string; name: string; state: string; access_level: number; expires_at: string | null; created_at: string },
  urls: Urls,
) {
  return {
    id: m.id,
    username: m.username,
    name: m.name,
    state: m.state,
    avatar_url: null,
    web_url: `${urls.publicUrl}/${m.username}`,
    access_level: m.access_level,
    expires_at: m.expires_at,
    created_at: m.created_at,
  }
}

export function deployTokenJson(t: DeployToken, token?: string) {
  return {
    id: t.id,
    name: t.name,
    username: t.username,
    expires_at: t.expires_at,
    scopes: JSON.parse(t.scopes) as string[],
    revoked: t.revoked === 1,
    expired: expired(t.expires_at),
    ...(token ? { token } : {}),
  }
}
