// The administrator area, /-/admin/<tab>: usage at a glance, users (create, block, make admin,
// reset password, delete), every project and group, instance runners, registry signing keys, the
// audit log (filtered by actor, action and target) and the effective settings. The link shows only
// to administrators; the API refuses everyone else (its 403 is what a non-administrator sees here).
import { api, apiPage, enc } from './api.js'
import { confirmDialog, errorBox, formatBytes, formValues, h, mount, timeAgo, toast } from './dom.js'
import { state } from './state.js'

const TABS = [
  ['', 'Overview'],
  ['users', 'Users'],
  ['projects', 'Projects'],
  ['groups', 'Groups'],
  ['runners', 'Runners'],
  ['signing_keys', 'Signing keys'],
  ['audit_log', 'Audit log'],
  ['settings', 'Settings'],
]
const PER_PAGE = 20

const table = (label, heads, rows) =>
  h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      { 'aria-label': label },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          heads.map((t) => h('th', {}, t)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  )
const actionsHead = h('span', { class: 'visually-hidden' }, 'Actions')

function frame(tab, ...children) {
  mount(
    h('h1', {}, 'Admin area'),
    h(
      'nav',
      { class: 'tabs', 'aria-label': 'Admin area' },
      TABS.map(([key, label]) =>
        h('a', { href: key ? `/-/admin/${key}` : '/-/admin', 'aria-current': key === tab ? 'page' : null }, label),
      ),
    ),
    ...children,
  )
}

/** Previous/next for a paged list; `go(page)` re-renders. */
function pager(page, total, go) {
  const pages = Math.max(1, Math.ceil(total / PER_PAGE))
  return h(
    'div',
    { class: 'pager' },
    h('span', { class: 'muted' }, `${total} in all · page ${page} of ${pages}`),
    h('button', { type: 'button', class: 'secondary small', disabled: page <= 1, onclick: () => go(page - 1) }, 'Previous'),
    h('button', { type: 'button', class: 'secondary small', disabled: page >= pages, onclick: () => go(page + 1) }, 'Next'),
  )
}

export async function adminPage(tab = '') {
  const pages = { '': overview, users, projects, groups, runners, signing_keys: signingKeys, audit_log: auditLog, settings }
  // Some tabs read lists any signed-in user may read (users, projects); the API still decides who
  // is an administrator, so a non-administrator gets its 403 here, on every tab.
  if (!state.user.is_admin) await api('GET', '/application/statistics')
  await pages[tab]()
}

async function overview() {
  const s = await api('GET', '/application/statistics')
  const figure = (label, value, hint) =>
    h(
      'div',
      { class: 'panel', 'data-figure': label },
      h('div', { class: 'muted' }, label),
      h('strong', { class: 'figure' }, String(value)),
      hint ? h('div', { class: 'hint' }, hint) : null,
    )
  frame(
    '',
    h('h2', {}, 'Usage at a glance'),
    h(
      'div',
      { class: 'figures' },
      figure('Users', s.users, `${s.active_users} active · ${s.blocked_users} blocked · ${s.admins} admins`),
      figure('Groups', s.groups),
      figure('Projects', s.projects),
      figure('Image repositories', s.repositories),
      figure('Blobs', s.blobs, formatBytes(s.blob_bytes)),
      figure('Pipelines', s.pipelines, `${s.jobs} jobs`),
      figure('Runners online', `${s.runners_online} of ${s.runners}`),
    ),
  )
}

// ---- Users ----

async function users(page = 1, search = '') {
  const list = await apiPage(`/users?per_page=${PER_PAGE}&page=${page}${search ? `&search=${enc(search)}` : ''}`)
  const error = h('div')
  const act = async (fn, done) => {
    try {
      await fn()
      toast(done)
      await users(page, search)
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  }
  const resetForm = (u) => {
    // No layout class on the form itself: a display rule would override `hidden`.
    const form = h(
      'form',
      { hidden: true, 'data-reset': u.username },
      h(
        'div',
        { class: 'row' },
        h('label', { for: `pw-${u.id}`, class: 'visually-hidden' }, `New password for ${u.username}`),
        h('input', {
          type: 'password',
          id: `pw-${u.id}`,
          name: 'password',
          minlength: 8,
          required: true,
          autocomplete: 'new-password',
          placeholder: 'new password',
        }),
        h('button', { type: 'submit', class: 'small', 'aria-label': `Set password of ${u.username}` }, 'Set password'),
      ),
    )
    form.addEventListener('submit', (e) => {
      e.preventDefault()
      act(() => api('PUT', `/users/${u.id}`, { password: formValues(form).password }), `Password of ${u.username} reset`)
    })
    return form
  }
  const row = (u) => {
    const self = u.id === state.user.id
    const reset = resetForm(u)
    const button = (label, onclick, cls = 'secondary small') =>
      h('button', { type: 'button', class: cls, 'aria-label': `${label} ${u.username}`, onclick }, label)
    return h(
      'tr',
      { 'data-user': u.username },
      h('td', {}, h('strong', {}, u.username), h('div', { class: 'hint' }, u.name, u.email ? ` · ${u.email}` : '')),
      h(
        'td',
        {},
        h('span', { class: `badge ${u.state === 'blocked' ? 'st-failed' : 'st-success'}` }, u.state),
        u.is_admin ? [' ', h('span', { class: 'badge' }, 'admin')] : null,
      ),
      h('td', {}, timeAgo(u.created_at)),
      h(
        'td',
        {},
        h(
          'div',
          { class: 'row' },
          self
            ? null
            : button(u.is_admin ? 'Remove admin' : 'Make admin', () =>
                act(
                  () => api('PUT', `/users/${u.id}`, { admin: !u.is_admin }),
                  `${u.username} is ${u.is_admin ? 'no longer' : 'now'} an administrator`,
                ),
              ),
          self
            ? null
            : button(u.state === 'blocked' ? 'Unblock' : 'Block', () =>
                act(
                  () => api('POST', `/users/${u.id}/${u.state === 'blocked' ? 'unblock' : 'block'}`),
                  `${u.username} ${u.state === 'blocked' ? 'unblocked' : 'blocked'}`,
                ),
              ),
          button('Reset password', () => {
            reset.hidden = !reset.hidden
            if (!reset.hidden) reset.querySelector('input').focus()
          }),
          self
            ? null
            : button(
                'Delete',
                async () => {
                  if (
                    await confirmDialog({
                      title: `Delete ${u.username}?`,
                      body: 'Their account, personal projects, memberships and tokens are removed. A group they alone own must get another owner or be deleted first.',
                    })
                  )
                    await act(() => api('DELETE', `/users/${u.id}`), `${u.username} deleted`)
                },
                'danger small',
              ),
        ),
        reset,
      ),
    )
  }
  const create = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'new-user' },
    h('h2', { id: 'new-user' }, 'New user'),
    h('label', { for: 'nu-username' }, 'Username'),
    h('input', { type: 'text', id: 'nu-username', name: 'username', required: true, maxlength: 100, autocomplete: 'off' }),
    h('label', { for: 'nu-name' }, 'Name (optional)'),
    h('input', { type: 'text', id: 'nu-name', name: 'name', maxlength: 255 }),
    h('label', { for: 'nu-email' }, 'Email (optional)'),
    h('input', { type: 'email', id: 'nu-email', name: 'email', maxlength: 255 }),
    h('label', { for: 'nu-password' }, 'Password'),
    h('input', { type: 'password', id: 'nu-password', name: 'password', minlength: 8, required: true, autocomplete: 'new-password' }),
    h(
      'div',
      {},
      h('label', { class: 'inline' }, h('input', { type: 'checkbox', name: 'admin', value: '1' }), h('span', {}, 'Administrator')),
    ),
    h('p', {}, h('button', { type: 'submit' }, 'Create user')),
  )
  create.addEventListener('submit', (e) => {
    e.preventDefault()
    const v = formValues(create)
    act(
      () =>
        api('POST', '/users', {
          username: v.username,
          password: v.password,
          admin: v.admin === '1',
          ...(v.name ? { name: v.name } : {}),
          ...(v.email ? { email: v.email } : {}),
        }),
      `User ${v.username} created`,
    )
  })
  const find = h(
    'form',
    { class: 'row', role: 'search' },
    h('label', { for: 'user-search', class: 'visually-hidden' }, 'Search users'),
    h('input', { type: 'search', id: 'user-search', name: 'search', value: search, placeholder: 'Search users' }),
    h('button', { type: 'submit', class: 'secondary small' }, 'Search'),
  )
  find.addEventListener('submit', (e) => {
    e.preventDefault()
    users(1, formValues(find).search)
  })
  frame(
    'users',
    error,
    find,
    table('Users', ['User', 'State', 'Created', actionsHead], list.items.map(row)),
    pager(page, list.total, (p) => users(p, search)),
    create,
  )
}

// ---- Projects, groups, runners ----

async function projects(page = 1) {
  const list = await apiPage(`/projects?per_page=${PER_PAGE}&page=${page}`)
  frame(
    'projects',
    table(
      'Projects',
      ['Project', 'Visibility', 'Created'],
      list.items.map((p) =>
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `/-/projects/${p.id}` }, p.path_with_namespace)),
          h('td', {}, h('span', { class: 'badge' }, p.visibility)),
          h('td', {}, timeAgo(p.created_at)),
        ),
      ),
    ),
    pager(page, list.total, projects),
  )
}

async function groups(page = 1) {
  const list = await apiPage(`/groups?per_page=${PER_PAGE}&page=${page}`)
  frame(
    'groups',
    table(
      'Groups',
      ['Group', 'Visibility', 'Created'],
      list.items.map((g) =>
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `/-/groups/${g.full_path}` }, g.full_path)),
          h('td', {}, h('span', { class: 'badge' }, g.visibility)),
          h('td', {}, timeAgo(g.created_at)),
        ),
      ),
    ),
    pager(page, list.total, groups),
  )
}

async function runners(page = 1) {
  const list = await apiPage(`/runners/all?per_page=${PER_PAGE}&page=${page}`)
  frame(
    'runners',
    list.items.length
      ? table(
          'Runners',
          ['Runner', 'Type', 'Status', 'Last contact'],
          list.items.map((r) =>
            h(
              'tr',
              { 'data-runner': r.id },
              h('td', {}, `#${r.id} `, r.description || h('span', { class: 'muted' }, '(no description)')),
              h('td', {}, r.runner_type.replace('_type', '')),
              h(
                'td',
                {},
                h('span', { class: `badge ${r.online ? 'st-success' : 'st-canceled'}` }, r.status.replace('_', ' ')),
                r.paused ? [' ', h('span', { class: 'badge st-manual' }, 'paused')] : null,
              ),
              h('td', {}, r.contacted_at ? timeAgo(r.contacted_at) : 'never'),
            ),
          ),
        )
      : h('p', { class: 'panel' }, 'No runners are registered.'),
    pager(page, list.total, runners),
  )
}

// ---- Signing keys, audit log, settings ----

async function signingKeys() {
  const list = await apiPage('/admin/signing_keys?per_page=100')
  const error = h('div')
  const rotate = async () => {
    if (
      !(await confirmDialog({
        title: 'Rotate the signing key?',
        body: 'New registry tokens are signed with a new key; tokens signed by the old ones stay valid until they expire.',
        confirm: 'Rotate',
        danger: false,
      }))
    )
      return
    try {
      const k = await api('POST', '/admin/signing_keys/rotate')
      toast(`New signing key ${k.kid.slice(0, 12)}…`)
      await signingKeys()
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  }
  frame(
    'signing_keys',
    h(
      'p',
      {},
      'Keys that sign registry tokens (',
      h('code', {}, 'docker login'),
      '). Only their ids are shown. Retire old keys with ',
      h('code', {}, 'wharf admin signing-key retire'),
      ' after one token lifetime.',
    ),
    error,
    table(
      'Signing keys',
      ['Key id', 'State', 'Created'],
      list.items.map((k) =>
        h(
          'tr',
          {},
          h('td', { class: 'mono' }, k.kid),
          h('td', {}, h('span', { class: `badge ${k.active ? 'st-success' : 'st-canceled'}` }, k.active ? 'active' : 'retired')),
          h('td', {}, timeAgo(k.created_at)),
        ),
      ),
    ),
    h('p', {}, h('button', { type: 'button', onclick: rotate }, 'Rotate signing key')),
  )
}

async function auditLog(page = 1, filter = {}) {
  const q = Object.entries(filter)
    .filter(([, v]) => v)
    .map(([k, v]) => `&${k}=${enc(v)}`)
    .join('')
  const list = await apiPage(`/audit_events?per_page=${PER_PAGE}&page=${page}${q}`)
  const field = (name, label, hint) =>
    h(
      'div',
      {},
      h('label', { for: `af-${name}` }, label),
      h('input', { type: 'text', id: `af-${name}`, name, value: filter[name] ?? '', placeholder: hint }),
    )
  const form = h(
    'form',
    { class: 'panel', role: 'search', 'aria-label': 'Filter the audit log' },
    h(
      'div',
      { class: 'filters' },
      field('actor', 'Actor', 'root'),
      field('action', 'Action', 'user.blocked, or user.'),
      field('target', 'Target', 'user:12'),
    ),
    h('p', {}, h('button', { type: 'submit', class: 'small' }, 'Filter')),
  )
  form.addEventListener('submit', (e) => {
    e.preventDefault()
    auditLog(1, formValues(form))
  })
  const details = (d) =>
    d
      ? Object.entries(d)
          .map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`)
          .join(', ')
      : ''
  frame(
    'audit_log',
    form,
    list.items.length
      ? table(
          'Audit events',
          ['When', 'Actor', 'Action', 'Target', 'Details'],
          list.items.map((e) =>
            h(
              'tr',
              { 'data-audit': e.id },
              h('td', {}, timeAgo(e.created_at)),
              h('td', {}, e.actor),
              h('td', { class: 'mono' }, e.action),
              h('td', { class: 'mono' }, e.target || '—'),
              h('td', { class: 'hint' }, details(e.details), e.ip_address ? h('div', {}, `from ${e.ip_address}`) : null),
            ),
          ),
        )
      : h('p', { class: 'panel' }, 'No audit events match.'),
    pager(page, list.total, (p) => auditLog(p, filter)),
  )
}

async function settings() {
  const [s, sso] = await Promise.all([api('GET', '/admin/settings'), api('GET', '/admin/sso')])
  frame(
    'settings',
    h('h2', {}, 'Single sign-on'),
    h(
      'p',
      {},
      sso.password_sign_in
        ? 'Local passwords sign in.'
        : sso.password_break_glass
          ? 'Local passwords are disabled, except for administrators (break glass).'
          : 'Local passwords are disabled.',
    ),
    sso.providers.length
      ? h(
          'table',
          { 'aria-label': 'Identity providers' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Provider'), h('th', {}, 'Issuer'), h('th', {}, 'State'))),
          h(
            'tbody',
            {},
            sso.providers.map((p) =>
              h(
                'tr',
                {},
                h('td', {}, `${p.label} (${p.id})`),
                h('td', {}, h('code', {}, p.issuer)),
                h('td', {}, p.ok === null ? 'not contacted yet' : p.ok ? 'working' : h('span', { class: 'error' }, p.error)),
              ),
            ),
          ),
        )
      : h('p', {}, 'No identity providers are configured (', h('code', {}, 'sso.oidc'), ', ', h('code', {}, 'sso.ldap'), ').'),
    h('h2', {}, 'Effective settings'),
    h(
      'p',
      {},
      'The effective configuration (file, ',
      h('code', {}, 'WHARF_*'),
      ' variables and flags). Secrets show as ',
      h('code', {}, '(set)'),
      '. Change settings where they are set and restart.',
    ),
    h('pre', { class: 'snippet', 'aria-label': 'Settings' }, JSON.stringify(s, null, 2)),
  )
}
