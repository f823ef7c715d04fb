import type { Principal } from '../auth/principals.ts'
import type { PersonalAccessToken, User } from '../metadata/schema.ts'

// JSON shapes of the REST API for users and their personal access tokens (GitLab's field names).

/** Public fields for everyone; email and admin flag only to administrators and the user themself. */
export function userJson(user: User, viewer: Principal, urls: { publicUrl: string }) {
  const base = {
    id: user.id,
    username: user.username,
    name: user.name,
    state: user.state,
    locked: false,
    avatar_url: null,
    web_url: `${urls.publicUrl}/${user.username}`,
    created_at: user.created_at,
    bot: false,
  }
  const privileged = viewer.kind === 'user' && (viewer.isAdmin || viewer.userId === user.id)
  return privileged ? { ...base, email: user.email, is_admin: user.is_admin === 1, can_create_group: true, can_create_project: true } : base
}

export const expired = (at: string | null) => at !== null && new Date(at).getTime() <= Date.now()

export function patJson(t: PersonalAccessToken, token?: string) {
  return {
    id: t.id,
    name: t.name,
    revoked: t.revoked === 1,
    created_at: t.created_at,
    scopes: JSON.parse(t.scopes) as string[],
    user_id: t.user_id,
    last_used_at: t.last_used_at,
    active: t.revoked === 0 && !expired(t.expires_at),
    expires_at: t.expires_at,
    ...(token ? { token } : {}),
  }
}
