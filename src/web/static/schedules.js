// Pipelines → Schedules: the project's pipeline schedules (cron in a time zone), run now, edit, delete.
import { api, apiAll, apiPage } from './api.js'
import { confirmDialog, errorBox, fill, formValues, h, statusBadge, toast } from './dom.js'
import { navigate } from './nav.js'

const when = (iso) => h('time', { datetime: iso, title: iso }, new Date(iso).toLocaleString())

export async function schedulesPage(project) {
  const schedules = await apiAll(`/projects/${project.id}/pipeline_schedules?per_page=100`)
  const details = await Promise.all(schedules.map((s) => api('GET', `/projects/${project.id}/pipeline_schedules/${s.id}`).catch(() => s)))
  const error = h('div')
  const head = h(
    'div',
    { class: 'spread' },
    h('h2', {}, 'Pipeline schedules'),
    h('a', { class: 'button', href: `/-/projects/${project.id}/pipelines/schedules/new` }, 'New schedule'),
  )
  const back = h('p', {}, h('a', { href: `/-/projects/${project.id}/pipelines` }, '← Pipelines'))
  if (details.length === 0)
    return [
      back,
      head,
      h(
        'div',
        { class: 'panel' },
        h('p', {}, 'No schedules yet.'),
        h('p', {}, 'A schedule runs a pipeline for a branch or tag at the times a cron line names, in the time zone you choose.'),
      ),
    ]
  const base = `/projects/${project.id}/pipeline_schedules`
  const row = (s) =>
    h(
      'tr',
      {},
      h('td', {}, s.description, s.active ? '' : h('span', { class: 'badge', style: 'margin-left:.4rem' }, 'inactive')),
      h('td', { class: 'mono' }, s.ref),
      h('td', {}, h('code', {}, s.cron), ' ', h('span', { class: 'muted' }, s.cron_timezone)),
      h('td', { class: 'hide-narrow' }, s.active ? when(s.next_run_at) : '—'),
      h(
        'td',
        {},
        s.last_pipeline
          ? h('a', { href: `/-/projects/${project.id}/pipelines/${s.last_pipeline.id}` }, statusBadge(s.last_pipeline.status))
          : '—',
      ),
      h('td', { class: 'hide-narrow' }, s.owner ? s.owner.username : '—'),
      h(
        'td',
        { class: 'row' },
        h(
          'button',
          {
            type: 'button',
            class: 'small',
            'aria-label': `Run ${s.description} now`,
            onclick: async () => {
              try {
                await api('POST', `${base}/${s.id}/play`)
                toast(`Schedule ${s.description} started a pipeline`)
                navigate(`/-/projects/${project.id}/pipelines/schedules`)
              } catch (err) {
                error.replaceChildren(errorBox(err))
              }
            },
          },
          'Run now',
        ),
        h('a', { class: 'button secondary small', href: `/-/projects/${project.id}/pipelines/schedules/${s.id}/edit` }, 'Edit'),
        h(
          'button',
          {
            type: 'button',
            class: 'danger small',
            'aria-label': `Delete ${s.description}`,
            onclick: async () => {
              if (!(await confirmDialog({ title: `Delete schedule ${s.description}?`, body: 'Pipelines it started are kept.' }))) return
              try {
                await api('DELETE', `${base}/${s.id}`)
                toast(`Schedule ${s.description} deleted`)
                navigate(`/-/projects/${project.id}/pipelines/schedules`)
              } catch (err) {
                error.replaceChildren(errorBox(err))
              }
            },
          },
          'Delete',
        ),
      ),
    )
  return [
    back,
    head,
    error,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'aria-label': 'Pipeline schedules' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'Description'),
            h('th', {}, 'Target'),
            h('th', {}, 'Interval'),
            h('th', { class: 'hide-narrow' }, 'Next run'),
            h('th', {}, 'Last pipeline'),
            h('th', { class: 'hide-narrow' }, 'Owner'),
            h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
          ),
        ),
        h('tbody', {}, details.map(row)),
      ),
    ),
  ]
}

/** New schedule, or editing `scheduleId`: description, target ref, cron, time zone, active. */
export async function scheduleFormPage(project, scheduleId) {
  const base = `/projects/${project.id}/pipeline_schedules`
  const existing = scheduleId ? await api('GET', `${base}/${scheduleId}`) : undefined
  let branches = []
  try {
    branches = (await apiPage(`/projects/${project.id}/repository/branches?per_page=100`)).items
  } catch {}
  // The browser's own list of IANA zones; the server checks the one chosen.
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : []
  const localZone = Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'
  const error = h('div')
  const form = h(
    'form',
    { class: 'panel' },
    error,
    h('label', { for: 'description' }, 'Description'),
    h('input', { type: 'text', id: 'description', name: 'description', required: true, value: existing?.description ?? '' }),
    h('label', { for: 'cron' }, 'Interval pattern (cron: minute hour day-of-month month day-of-week)'),
    h('input', {
      type: 'text',
      id: 'cron',
      name: 'cron',
      required: true,
      class: 'mono',
      placeholder: '0 2 * * *',
      value: existing?.cron ?? '',
    }),
    h(
      'p',
      { class: 'muted' },
      'For example ',
      h('code', {}, '0 2 * * *'),
      ' every day at 02:00, ',
      h('code', {}, '30 6 * * 1-5'),
      ' on weekdays at 06:30.',
    ),
    h('label', { for: 'cron_timezone' }, 'Time zone'),
    h('input', {
      type: 'text',
      id: 'cron_timezone',
      name: 'cron_timezone',
      required: true,
      list: 'zones',
      value: existing?.cron_timezone ?? localZone,
    }),
    h(
      'datalist',
      { id: 'zones' },
      zones.map((z) => h('option', { value: z })),
    ),
    h('label', { for: 'ref' }, 'Target branch or tag'),
    h('input', {
      type: 'text',
      id: 'ref',
      name: 'ref',
      required: true,
      list: 'refs',
      value: existing?.ref ?? branches.find((b) => b.default)?.name ?? branches[0]?.name ?? 'main',
    }),
    h(
      'datalist',
      { id: 'refs' },
      branches.map((b) => h('option', { value: b.name })),
    ),
    h(
      'label',
      { class: 'row' },
      h('input', { type: 'checkbox', name: 'active', id: 'active', checked: existing ? existing.active : true }),
      ' Active',
    ),
    h('p', {}, h('button', { type: 'submit' }, existing ? 'Save changes' : 'Create schedule')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const body = { description: v.description, cron: v.cron, cron_timezone: v.cron_timezone, ref: v.ref, active: v.active === 'on' }
    try {
      if (existing) await api('PUT', `${base}/${existing.id}`, body)
      else await api('POST', base, body)
      toast(existing ? 'Schedule saved' : 'Schedule created')
      navigate(`/-/projects/${project.id}/pipelines/schedules`)
    } catch (err) {
      fill(error, errorBox(err))
    }
  })
  return [h('h2', {}, existing ? `Edit schedule ${existing.description}` : 'New pipeline schedule'), form]
}
