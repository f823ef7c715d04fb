// Device sign-in (`wharf login`, RFC 8628): the person enters (or follows a link with) the code the
// device shows, sees which client, device and scopes ask, and approves or denies. The code is checked
// by the server (throttled); approving needs this signed-in browser session, not a token.
import { api, enc } from './api.js'
import { errorBox, formValues, h, mount, toast } from './dom.js'

const SCOPE_TEXT = { read_registry: 'pull images', write_registry: 'push images', api: 'full API access' }

export async function devicePage() {
  const given = new URLSearchParams(location.search).get('user_code') ?? ''
  if (given) return confirmStep(given)
  return codeStep()
}

function codeStep(problem) {
  const error = h('div')
  if (problem) error.replaceChildren(errorBox(problem))
  const form = h(
    'form',
    { class: 'panel', 'aria-labelledby': 'device-title' },
    h('h1', { id: 'device-title' }, 'Sign in a device'),
    h('p', {}, 'Enter the code shown by ', h('code', {}, 'wharf login'), ' on your device.'),
    error,
    h('label', { for: 'user-code' }, 'Code'),
    h('input', {
      type: 'text',
      id: 'user-code',
      name: 'user_code',
      required: true,
      autocomplete: 'off',
      autocapitalize: 'characters',
      spellcheck: 'false',
      placeholder: 'XXXX-XXXX',
      maxlength: 16,
    }),
    h('p', {}, h('button', { type: 'submit' }, 'Continue')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    await confirmStep(formValues(form).user_code.trim())
  })
  mount(form)
  form.querySelector('#user-code').focus()
}

async function confirmStep(code) {
  let pending
  try {
    pending = await api('GET', `/user/device_authorizations/${enc(code)}`)
  } catch (err) {
    return codeStep(err)
  }
  const error = h('div')
  const decide = async (approve) => {
    try {
      await api('POST', `/user/device_authorizations/${enc(pending.user_code)}/${approve ? 'approve' : 'deny'}`, {})
      toast(approve ? 'Device signed in' : 'Sign-in denied')
      mount(
        h('h1', {}, approve ? 'Device signed in' : 'Sign-in denied'),
        h(
          'p',
          { role: 'status' },
          approve
            ? `${pending.device_name} is signed in. You can close this page; the login is listed under Access tokens, where you can revoke it.`
            : `${pending.device_name} was not signed in.`,
        ),
        h('p', {}, h('a', { href: '/-/user/tokens' }, 'Access tokens')),
      )
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  }
  mount(
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'device-confirm' },
      h('h1', { id: 'device-confirm' }, 'Sign in a device?'),
      error,
      h(
        'p',
        {},
        h('strong', {}, pending.client_name),
        ' on ',
        h('strong', {}, pending.device_name),
        ' asks to act as you with the code ',
        h('code', {}, pending.user_code),
        ':',
      ),
      h(
        'ul',
        { 'aria-label': 'Requested scopes' },
        pending.scopes.map((s) => h('li', {}, h('code', {}, s), ` — ${SCOPE_TEXT[s] ?? s}`)),
      ),
      h('p', { class: 'hint' }, 'Approve only if you started this sign-in yourself, on that device, just now.'),
      h(
        'p',
        { class: 'row' },
        h('button', { type: 'button', onclick: () => decide(true) }, 'Approve'),
        h('button', { type: 'button', class: 'secondary', onclick: () => decide(false) }, 'Deny'),
      ),
    ),
  )
}
