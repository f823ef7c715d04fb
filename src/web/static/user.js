// User settings: personal access tokens (created with scopes and expiry, shown once; revoked) and
// device logins (`wharf login`: "signed in on <device>", revoked here).
import { api, apiPage } from './api.js'
import { confirmDialog, copyButton, errorBox, formValues, h, mount, timeAgo, toast } from './dom.js'
import { state } from './state.js'

const SCOPES = [
  ['api', 'full API access'],
  ['read_api', 'read the API'],
  ['read_user', 'read your profile'],
  ['read_registry', 'pull images'],
  ['write_registry', 'push images'],
  ['read_repository', 'clone'],
  ['write_repository', 'push to repositories'],
]

export async function tokensPage(created) {
  const [{ items }, devices] = await Promise.all([
    apiPage(`/personal_access_tokens?user_id=${state.user.id}&per_page=100`),
    apiPage('/user/device_logins?per_page=100'),
  ])
  const active = items.filter((t) => t.active)
  const error = h('div')
  const form = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'new-token' },
    h('h2', { id: 'new-token' }, 'New token'),
    error,
    h('label', { for: 't-name' }, 'Token name'),
    h('input', { type: 'text', id: 't-name', name: 'name', required: true, maxlength: 255 }),
    h('label', { for: 't-exp' }, 'Expires on (optional)'),
    h('input', { type: 'date', id: 't-exp', name: 'expires_at', min: new Date(Date.now() + 86400_000).toISOString().slice(0, 10) }),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Scopes'),
      SCOPES.map(([s, text]) =>
        h(
          'div',
          {},
          h(
            'label',
            { class: 'inline' },
            h('input', { type: 'checkbox', name: 'scopes', value: s }),
            h('span', {}, h('code', {}, s), ` — ${text}`),
          ),
        ),
      ),
    ),
    h('p', {}, h('button', { type: 'submit' }, 'Create token')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const scopes = new FormData(form).getAll('scopes')
    if (scopes.length === 0) {
      error.replaceChildren(errorBox('Choose at least one scope.'))
      return
    }
    try {
      const t = await api('POST', '/user/personal_access_tokens', {
        name: v.name,
        scopes,
        ...(v.expires_at ? { expires_at: v.expires_at } : {}),
      })
      await tokensPage(t)
      toast('Token created')
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  mount(
    h('h1', {}, 'Personal access tokens'),
    h(
      'p',
      {},
      'Tokens sign scripts, git and ',
      h('code', {}, 'docker login'),
      ' in as you, limited to their scopes. Use your username with the token as the password.',
    ),
    created
      ? h(
          'div',
          { class: 'secret', role: 'alert' },
          h('p', {}, h('strong', {}, `Your new token “${created.name}”. `), 'Copy it now: it will not be shown again.'),
          h('div', { class: 'cmd' }, h('code', { id: 'new-token-value' }, created.token), copyButton(created.token, 'Copy token')),
        )
      : null,
    form,
    h('h2', {}, `Active tokens (${active.length})`),
    active.length === 0 ? h('p', { class: 'panel' }, 'You have no active tokens.') : tokenTable(active),
    h('h2', {}, `Signed-in devices (${devices.items.length})`),
    h(
      'p',
      { class: 'hint' },
      h('code', {}, 'wharf login'),
      ' signs a machine in for docker, podman, buildah and skopeo through docker-credential-wharf. Revoking stops its next pull.',
    ),
    devices.items.length === 0 ? h('p', { class: 'panel' }, 'No device is signed in.') : deviceTable(devices.items),
  )
}

function deviceTable(logins) {
  const revoke = async (d) => {
    if (
      !(await confirmDialog({
        title: `Revoke “${d.name}”?`,
        body: 'Its next pull or push fails; it must run wharf login again.',
        confirm: 'Revoke',
      }))
    )
      return
    try {
      await api('DELETE', `/user/device_logins/${d.id}`)
      toast(`Revoked: ${d.name}`)
      await tokensPage()
    } catch (err) {
      toast(err.message)
    }
  }
  const row = (d) =>
    h(
      'tr',
      { 'data-device': d.device_name },
      h('td', {}, d.name),
      h('td', { class: 'mono' }, d.scopes.join(', ')),
      h('td', { class: 'hide-narrow' }, timeAgo(d.created_at)),
      h('td', { class: 'hide-narrow' }, d.last_used_at ? timeAgo(d.last_used_at) : 'never'),
      h(
        'td',
        {},
        h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke ${d.name}`, onclick: () => revoke(d) }, 'Revoke'),
      ),
    )
  const head = h(
    'thead',
    {},
    h(
      'tr',
      {},
      h('th', {}, 'Device'),
      h('th', {}, 'Scopes'),
      h('th', { class: 'hide-narrow' }, 'Signed in'),
      h('th', { class: 'hide-narrow' }, 'Last used'),
      h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
    ),
  )
  return h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Signed-in devices' }, head, h('tbody', {}, logins.map(row))))
}

function tokenTable(active) {
  const revoke = async (t) => {
    if (
      !(await confirmDialog({ title: `Revoke ${t.name}?`, body: 'Scripts and logins using it stop working at once.', confirm: 'Revoke' }))
    )
      return
    try {
      await api('DELETE', `/personal_access_tokens/${t.id}`)
      toast(`Token ${t.name} revoked`)
      await tokensPage()
    } catch (err) {
      toast(err.message)
    }
  }
  const row = (t) =>
    h(
      'tr',
      { 'data-token': t.name },
      h('td', {}, t.name),
      h('td', { class: 'mono' }, t.scopes.join(', ')),
      h('td', { class: 'hide-narrow' }, timeAgo(t.created_at)),
      h('td', {}, t.expires_at ?? 'never'),
      h('td', { class: 'hide-narrow' }, t.last_used_at ? timeAgo(t.last_used_at) : 'never'),
      h(
        'td',
        {},
        h('button', { type: 'button', class: 'danger small', 'aria-label': `Revoke token ${t.name}`, onclick: () => revoke(t) }, 'Revoke'),
      ),
    )
  const head = h(
    'thead',
    {},
    h(
      'tr',
      {},
      h('th', {}, 'Name'),
      h('th', {}, 'Scopes'),
      h('th', { class: 'hide-narrow' }, 'Created'),
      h('th', {}, 'Expires'),
      h('th', { class: 'hide-narrow' }, 'Last used'),
      h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
    ),
  )
  return h('div', { class: 'table-wrap' }, h('table', { 'aria-label': 'Active tokens' }, head, h('tbody', {}, active.map(row))))
}

// ---- Account: password ----

export async function accountPage() {
  const error = h('div')
  const done = h('div', { 'aria-live': 'polite' })
  const form = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'pw-title' },
    h('h2', { id: 'pw-title' }, 'Change your password'),
    error,
    done,
    h('input', { type: 'text', name: 'username', autocomplete: 'username', value: state.user.username, hidden: true, readonly: true }),
    h('label', { for: 'pw-new' }, 'New password'),
    h('input', {
      type: 'password',
      id: 'pw-new',
      name: 'password',
      required: true,
      autocomplete: 'new-password',
      'aria-describedby': 'pw-hint',
    }),
    h(
      'p',
      { class: 'hint', id: 'pw-hint' },
      'At least 8 characters. It signs you in here, to git and to ',
      h('code', {}, 'docker login'),
      '.',
    ),
    h('label', { for: 'pw-confirm' }, 'Confirm new password'),
    h('input', { type: 'password', id: 'pw-confirm', name: 'confirm', required: true, autocomplete: 'new-password' }),
    h('p', {}, h('button', { type: 'submit' }, 'Change password')),
    h('p', { class: 'hint' }, 'Personal access tokens keep working; OAuth tokens obtained with the old password stop working.'),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    done.replaceChildren()
    if (v.password !== v.confirm) return error.replaceChildren(errorBox('The two passwords differ.'))
    try {
      await api('PUT', `/users/${state.user.id}`, { password: v.password })
      error.replaceChildren()
      form.reset()
      done.replaceChildren(h('p', { class: 'notice' }, 'Password changed. Use it the next time you sign in.'))
      toast('Password changed')
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  const linked = await fetch('/-/auth/identities', { credentials: 'same-origin' }).then((r) => (r.ok ? r.json() : null))
  const ssoError = new URLSearchParams(location.search).get('sso_error')
  const identities =
    linked && (linked.identities.length || linked.linkable.length)
      ? h(
          'section',
          { class: 'panel', 'aria-labelledby': 'sso-title' },
          h('h2', { id: 'sso-title' }, 'Sign-in providers'),
          ssoError ? errorBox('Linking failed: the provider refused, or its account is linked to someone else already.') : null,
          linked.identities.length
            ? h(
                'ul',
                { 'aria-label': 'Linked providers' },
                linked.identities.map((i) => h('li', {}, `${i.label}, linked ${timeAgo(i.linked_at)}`)),
              )
            : h('p', {}, 'No provider is linked to this account.'),
          linked.linkable.map((p) => h('p', {}, h('a', { class: 'button secondary', href: p.url }, `Link ${p.label}`))),
        )
      : null
  mount(
    h('h1', {}, 'Account'),
    h(
      'p',
      {},
      'Signed in as ',
      h('strong', {}, state.user.username),
      '. ',
      h('a', { href: '/-/user/tokens' }, 'Personal access tokens'),
      ' are for scripts, git and docker.',
    ),
    identities,
    form,
  )
  form.querySelector('#pw-new').focus()
}
