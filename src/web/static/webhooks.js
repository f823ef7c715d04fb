// Project Settings → Webhooks: add, test and delete hooks, and read each hook's recent deliveries
// (status, the receiver's answer, resend). The API refuses local-network targets unless the
// administrator allows them; its message is shown as is.
import { api, apiPage } from './api.js'
import { confirmDialog, errorBox, formValues, h, timeAgo, toast } from './dom.js'

const EVENTS = [
  ['push_events', 'Push events', 'a branch is pushed'],
  ['tag_push_events', 'Tag push events', 'a tag is pushed'],
  ['pipeline_events', 'Pipeline events', 'a pipeline changes status'],
  ['job_events', 'Job events', 'a job changes status'],
  ['registry_events', 'Registry events', 'an image tag is pushed or deleted'],
]

export function webhooksSection(section, project) {
  const base = `/projects/${project.id}/hooks`
  return section(
    'hooks-title',
    'Webhooks',
    "Wharf posts a JSON event to these URLs (GitLab's payloads and X-Gitlab-* headers). Maintainers manage them.",
    async (reload) => {
      const { items } = await apiPage(`${base}?per_page=100`)
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'hook-new' },
        h('h3', { id: 'hook-new' }, 'Add a webhook'),
        error,
        h('label', { for: 'hook-url' }, 'URL'),
        h('input', {
          type: 'url',
          id: 'hook-url',
          name: 'url',
          required: true,
          maxlength: 2048,
          placeholder: 'https://ci.example.com/hooks/wharf',
        }),
        h('label', { for: 'hook-token' }, 'Secret token (optional)'),
        h('input', {
          type: 'password',
          id: 'hook-token',
          name: 'token',
          maxlength: 255,
          autocomplete: 'off',
          'aria-describedby': 'hook-token-hint',
        }),
        h(
          'p',
          { class: 'hint', id: 'hook-token-hint' },
          'Sent as ',
          h('code', {}, 'X-Gitlab-Token'),
          ' so the receiver can check the event came from here. It is never shown again.',
        ),
        h(
          'fieldset',
          {},
          h('legend', {}, 'Trigger'),
          EVENTS.map(([name, label, hint]) =>
            h(
              'div',
              {},
              h(
                'label',
                { class: 'inline' },
                h('input', { type: 'checkbox', name, value: '1', checked: name === 'push_events' }),
                h('span', {}, h('strong', {}, label), ` — ${hint}`),
              ),
            ),
          ),
        ),
        h('label', { for: 'hook-branch' }, 'Branch filter for push events (optional)'),
        h('input', {
          type: 'text',
          id: 'hook-branch',
          name: 'push_events_branch_filter',
          maxlength: 255,
          placeholder: 'main or release/*',
        }),
        h(
          'div',
          {},
          h(
            'label',
            { class: 'inline' },
            h('input', { type: 'checkbox', name: 'enable_ssl_verification', value: '1', checked: true }),
            h('span', {}, h('strong', {}, 'Verify TLS certificates')),
          ),
        ),
        h('p', {}, h('button', { type: 'submit' }, 'Add webhook')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const v = formValues(form)
        const body = { url: v.url, enable_ssl_verification: !!v.enable_ssl_verification }
        for (const [name] of EVENTS) body[name] = !!v[name]
        if (v.token) body.token = v.token
        if (v.push_events_branch_filter) body.push_events_branch_filter = v.push_events_branch_filter
        try {
          await api('POST', base, body)
          toast('Webhook added')
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      const test = async (hook) => {
        try {
          await api('POST', `${base}/${hook.id}/test/push_events`)
          toast('Test event queued')
          await reload(hook.id)
        } catch (err) {
          toast(err.message)
        }
      }
      const remove = async (hook) => {
        if (
          !(await confirmDialog({
            title: `Delete the webhook to ${hook.url}?`,
            body: 'Events are no longer sent there, and its delivery log goes with it.',
          }))
        )
          return
        try {
          await api('DELETE', `${base}/${hook.id}`)
          toast('Webhook deleted')
          await reload()
        } catch (err) {
          toast(err.message)
        }
      }
      const row = (hook) =>
        h(
          'tr',
          { 'data-hook': hook.id },
          h('td', { class: 'mono' }, hook.url),
          h(
            'td',
            {},
            EVENTS.filter(([name]) => hook[name]).map(([name, label]) =>
              h('span', { class: 'badge', 'data-event': name }, label.replace(' events', '')),
            ),
          ),
          h(
            'td',
            {},
            h(
              'div',
              { class: 'row' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'secondary small',
                  'aria-label': `Deliveries of the webhook to ${hook.url}`,
                  onclick: (e) => toggleDeliveries(e.target.closest('tr'), hook),
                },
                'Deliveries',
              ),
              h(
                'button',
                { type: 'button', class: 'secondary small', 'aria-label': `Test the webhook to ${hook.url}`, onclick: () => test(hook) },
                'Test',
              ),
              h(
                'button',
                { type: 'button', class: 'danger small', 'aria-label': `Delete the webhook to ${hook.url}`, onclick: () => remove(hook) },
                'Delete',
              ),
            ),
          ),
        )
      const toggleDeliveries = async (tr, hook) => {
        const next = tr.nextElementSibling
        if (next?.dataset.deliveries) return next.remove()
        const cell = h('td', { colspan: 3 }, h('p', { class: 'muted' }, 'Loading…'))
        tr.after(h('tr', { 'data-deliveries': hook.id }, cell))
        cell.replaceChildren(await deliveries(hook))
      }
      const deliveries = async (hook) => {
        try {
          const { items } = await apiPage(`${base}/${hook.id}/events?per_page=20`)
          if (items.length === 0) return h('p', { class: 'muted' }, 'Nothing delivered yet.')
          const resend = async (d) => {
            try {
              await api('POST', `${base}/${hook.id}/events/${d.id}/resend`)
              toast('Delivery queued again')
            } catch (err) {
              toast(err.message)
            }
          }
          const state = (d) =>
            d.status === 'delivered'
              ? h('span', { class: 'badge st-success' }, `${d.response_status}`)
              : d.status === 'failed'
                ? h('span', { class: 'badge st-failed' }, 'failed')
                : h('span', { class: 'badge st-pending' }, d.attempts ? 'retrying' : 'queued')
          return h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { 'aria-label': `Deliveries of the webhook to ${hook.url}` },
              h(
                'thead',
                {},
                h(
                  'tr',
                  {},
                  h('th', {}, 'Event'),
                  h('th', {}, 'Result'),
                  h('th', {}, 'When'),
                  h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
                ),
              ),
              h(
                'tbody',
                {},
                items.map((d) =>
                  h(
                    'tr',
                    { 'data-delivery': d.id },
                    h('td', {}, d.request_headers['X-Gitlab-Event']),
                    h('td', {}, state(d), d.internal_error_message ? h('div', { class: 'hint' }, d.internal_error_message) : null),
                    h('td', {}, timeAgo(d.updated_at), d.attempts > 1 ? h('div', { class: 'hint' }, `${d.attempts} attempts`) : null),
                    h('td', {}, h('button', { type: 'button', class: 'secondary small', onclick: () => resend(d) }, 'Resend')),
                  ),
                ),
              ),
            ),
          )
        } catch (err) {
          return errorBox(err)
        }
      }
      return [
        items.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { 'aria-label': 'Webhooks' },
                h(
                  'thead',
                  {},
                  h('tr', {}, h('th', {}, 'URL'), h('th', {}, 'Events'), h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions'))),
                ),
                h('tbody', {}, items.map(row)),
              ),
            )
          : h('p', { class: 'panel' }, 'No webhooks yet.'),
        form,
      ]
    },
  )
}
