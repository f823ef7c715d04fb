// The app's only way to the server: the public REST API (/api/v4) and the session endpoints.
// Cookie-authenticated state-changing calls carry the session's CSRF token.

let csrfToken = null

export class ApiError extends Error {
  constructor(status, message) {
    super(message)
    this.status = status
  }
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`
  try {
    const body = await res.json()
    if (body && typeof body.message === 'string') message = body.message
    else if (body && typeof body.error === 'string') message = body.error
  } catch {}
  return new ApiError(res.status, message)
}

/** The signed-in user, or null. */
export async function currentSession() {
  const res = await fetch('/-/session', { credentials: 'same-origin' })
  if (res.status === 401) return null
  if (!res.ok) throw await errorOf(res)
  const body = await res.json()
  csrfToken = body.csrf_token
  return body.user
}

export async function signIn(username, password) {
  const res = await fetch('/-/session', {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ username, password }),
  })
  if (!res.ok) throw await errorOf(res)
  const body = await res.json()
  csrfToken = body.csrf_token
  return body.user
}

/** The sign-in page's options: identity providers and whether the password form is offered. */
export async function signInOptions() {
  const res = await fetch('/-/auth/providers', { credentials: 'same-origin' })
  if (!res.ok) throw await errorOf(res)
  return res.json()
}

export async function signOut() {
  await fetch('/-/session', { method: 'DELETE', credentials: 'same-origin', headers: csrfToken ? { 'X-CSRF-Token': csrfToken } : {} })
  csrfToken = null
}

/** Raw API request: returns the Response (for headers such as X-Total-Pages or Content-Range). */
export async function apiRaw(method, path, { body, headers = {} } = {}) {
  const h = { ...headers }
  if (body !== undefined) h['Content-Type'] = 'application/json'
  if (method !== 'GET' && method !== 'HEAD' && csrfToken) h['X-CSRF-Token'] = csrfToken
  return fetch(`/api/v4${path}`, {
    method,
    credentials: 'same-origin',
    headers: h,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
}

/** JSON API request; throws ApiError carrying the API's `message`. */
export async function api(method, path, body) {
  const res = await apiRaw(method, path, { body })
  if (!res.ok) throw await errorOf(res)
  if (res.status === 204) return null
  const text = await res.text()
  return text ? JSON.parse(text) : null
}

/** A GET returning the JSON and the pagination headers. */
export async function apiPage(path) {
  const res = await apiRaw('GET', path)
  if (!res.ok) throw await errorOf(res)
  return {
    items: await res.json(),
    total: Number(res.headers.get('X-Total') ?? 0),
    totalPages: Number(res.headers.get('X-Total-Pages') ?? 1),
  }
}

/** Every item of a paginated list (`path` sets per_page), following X-Next-Page. */
export async function apiAll(path) {
  const items = []
  for (let page = 1; page; ) {
    const res = await apiRaw('GET', `${path}${path.includes('?') ? '&' : '?'}page=${page}`)
    if (!res.ok) throw await errorOf(res)
    items.push(...(await res.json()))
    page = Number(res.headers.get('X-Next-Page')) || 0
  }
  return items
}

export const enc = encodeURIComponent
