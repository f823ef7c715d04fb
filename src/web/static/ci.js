// Pipelines tab, pipeline page (jobs by stage), job page with a live log, and "run pipeline".
import { api, apiAll, apiPage, apiRaw, currentSession } from './api.js'
import { AnsiRenderer } from './ansi.js'
import { duration, errorBox, fill, formValues, h, sessionEnded, statusBadge, timeAgo, toast } from './dom.js'
import { navigate, onLeave } from './nav.js'

const ACTIVE = new Set(['created', 'pending', 'preparing', 'waiting_for_resource', 'running', 'scheduled'])
const POLL_MS = 1500

/** Runs `fn` every `ms` until the page is left or the session ends (then says so); other failures are retried. */
function every(ms, fn) {
  let stopped = false
  let timer
  const tick = async () => {
    if (stopped) return
    try {
      await fn()
    } catch {
      // A signed-out user sees 401, or 404 for a project only members may see: ask the session itself.
      if ((await currentSession().catch(() => undefined)) === null) {
        stop()
        sessionEnded()
      }
    }
    if (!stopped) timer = setTimeout(tick, ms)
  }
  timer = setTimeout(tick, ms)
  const stop = () => {
    stopped = true
    clearTimeout(timer)
  }
  onLeave(stop)
  return stop
}

export async function pipelinesTab(project) {
  const { items } = await apiPage(`/projects/${project.id}/pipelines?per_page=20`)
  const details = await Promise.all(items.map((p) => api('GET', `/projects/${project.id}/pipelines/${p.id}`).catch(() => p)))
  const head = h(
    'div',
    { class: 'spread' },
    h('h2', {}, 'Pipelines'),
    h(
      'div',
      { class: 'row' },
      h('a', { class: 'button secondary', href: `/-/projects/${project.id}/ci/editor` }, 'CI editor'),
      h('a', { class: 'button secondary', href: `/-/projects/${project.id}/pipelines/schedules` }, 'Schedules'),
      h('a', { class: 'button', href: `/-/projects/${project.id}/pipelines/new` }, 'Run pipeline'),
    ),
  )
  if (details.length === 0) {
    return [
      head,
      h(
        'div',
        { class: 'panel' },
        h('p', {}, 'No pipelines yet.'),
        h(
          'p',
          {},
          'Add a ',
          h('code', {}, '.gitlab-ci.yml'),
          ' to the repository and push (or write one in the “CI editor”, from a template): every push runs a pipeline. Or run one for a branch with “Run pipeline”.',
        ),
      ),
    ]
  }
  return [
    head,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'aria-label': 'Pipelines' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'Status'),
            h('th', {}, 'Pipeline'),
            h('th', {}, 'Ref'),
            h('th', { class: 'hide-narrow' }, 'Commit'),
            h('th', {}, 'Duration'),
            h('th', { class: 'hide-narrow' }, 'Created'),
          ),
        ),
        h(
          'tbody',
          {},
          details.map((p) =>
            h(
              'tr',
              {},
              h('td', {}, statusBadge(p.status)),
              h('td', {}, h('a', { href: `/-/projects/${project.id}/pipelines/${p.id}` }, `#${p.id}`)),
              h('td', { class: 'mono' }, p.ref),
              h('td', { class: 'mono hide-narrow' }, (p.sha ?? '').slice(0, 8)),
              h('td', {}, duration(p.duration)),
              h('td', { class: 'hide-narrow' }, timeAgo(p.created_at)),
            ),
          ),
        ),
      ),
    ),
  ]
}

export async function newPipelinePage(project) {
  let branches = []
  try {
    branches = (await apiPage(`/projects/${project.id}/repository/branches?per_page=100`)).items
  } catch {}
  const error = h('div')
  const vars = h('div', { id: 'variables' })
  let n = 0
  const addVar = () => {
    n++
    vars.append(
      h(
        'div',
        { class: 'row', style: 'margin:.3rem 0' },
        h('input', { type: 'text', name: `key${n}`, placeholder: 'KEY', 'aria-label': `Variable ${n} key`, style: 'max-width:12rem' }),
        h('input', {
          type: 'text',
          name: `value${n}`,
          placeholder: 'value',
          'aria-label': `Variable ${n} value`,
          style: 'max-width:16rem',
        }),
      ),
    )
  }
  addVar()
  const form = h(
    'form',
    { class: 'panel' },
    error,
    h('label', { for: 'ref' }, 'Branch or tag'),
    h('input', {
      type: 'text',
      id: 'ref',
      name: 'ref',
      required: true,
      list: 'refs',
      value: branches.find((b) => b.default)?.name ?? branches[0]?.name ?? 'main',
    }),
    h(
      'datalist',
      { id: 'refs' },
      branches.map((b) => h('option', { value: b.name })),
    ),
    h(
      'fieldset',
      {},
      h('legend', {}, 'Variables (optional)'),
      vars,
      h('button', { type: 'button', class: 'secondary small', onclick: addVar }, 'Add variable'),
    ),
    h('p', {}, h('button', { type: 'submit' }, 'Run pipeline')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const variables = []
    for (let i = 1; i <= n; i++) if (v[`key${i}`]) variables.push({ key: v[`key${i}`], value: v[`value${i}`] ?? '' })
    try {
      const p = await api('POST', `/projects/${project.id}/pipeline`, { ref: v.ref, variables })
      toast(`Pipeline #${p.id} created`)
      navigate(`/-/projects/${project.id}/pipelines/${p.id}`)
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  return [h('h2', {}, 'Run a pipeline'), form]
}

export async function pipelinePage(project, pipelineId) {
  const root = h('div')
  const draw = async () => {
    const [p, jobs] = await Promise.all([
      api('GET', `/projects/${project.id}/pipelines/${pipelineId}`),
      apiAll(`/projects/${project.id}/pipelines/${pipelineId}/jobs?per_page=100`),
    ])
    const stages = new Map()
    for (const j of [...jobs].sort((a, b) => a.id - b.id)) {
      if (!stages.has(j.stage)) stages.set(j.stage, [])
      stages.get(j.stage).push(j)
    }
    const action = (label, path, cls = 'secondary') =>
      h(
        'button',
        {
          type: 'button',
          class: cls,
          onclick: async () => {
            try {
              await api('POST', `/projects/${project.id}/pipelines/${pipelineId}/${path}`)
              toast(`${label}: done`)
              await draw()
            } catch (err) {
              toast(err.message)
            }
          },
        },
        label,
      )
    fill(
      root,
      h(
        'div',
        { class: 'spread' },
        h('h2', {}, 'Pipeline #', String(p.id), ' ', statusBadge(p.status)),
        h(
          'div',
          { class: 'row' },
          ACTIVE.has(p.status) ? action('Cancel pipeline', 'cancel', 'danger') : null,
          p.status === 'failed' || p.status === 'canceled' ? action('Retry failed jobs', 'retry') : null,
        ),
      ),
      h(
        'p',
        { class: 'muted' },
        'Ref ',
        h('code', {}, p.ref),
        ' · commit ',
        h('code', {}, (p.sha ?? '').slice(0, 8)),
        ' · ',
        p.source,
        ' · duration ',
        duration(p.duration),
        ' · created ',
        timeAgo(p.created_at),
      ),
      p.yaml_errors ? h('p', { class: 'error', role: 'alert' }, p.yaml_errors) : null,
      stages.size === 0
        ? h('p', { class: 'panel' }, 'This pipeline has no jobs.')
        : h(
            'div',
            { class: 'stages' },
            [...stages].map(([stage, js]) =>
              h(
                'section',
                { class: 'stage', 'aria-label': `Stage ${stage}` },
                h('h3', {}, stage),
                h(
                  'ul',
                  {},
                  js.map((j) =>
                    h(
                      'li',
                      {},
                      h(
                        'a',
                        { href: `/-/projects/${project.id}/jobs/${j.id}`, 'data-job': j.name },
                        h('span', {}, j.name),
                        statusBadge(j.status),
                      ),
                    ),
                  ),
                ),
              ),
            ),
          ),
    )
    return p
  }
  const p = await draw()
  if (ACTIVE.has(p.status)) {
    const stop = every(POLL_MS * 2, async () => {
      const now = await draw()
      if (!ACTIVE.has(now.status)) stop()
    })
  }
  return root
}

export async function jobPage(project, jobId) {
  const job = await api('GET', `/projects/${project.id}/jobs/${jobId}`)
  const header = h('div')
  const log = h('pre', { class: 'log', id: 'job-log', 'aria-label': 'Job log', tabindex: '0' })
  const live = h('p', { class: 'muted', 'aria-live': 'polite' })
  const renderer = new AnsiRenderer(log)
  const decoder = new TextDecoder()
  let offset = 0
  let status = job.status

  const drawHeader = (j) => {
    const act = (label, path, cls) =>
      h(
        'button',
        {
          type: 'button',
          class: cls,
          onclick: async () => {
            try {
              const next = await api('POST', `/projects/${project.id}/jobs/${j.id}/${path}`)
              toast(`${label}: done`)
              navigate(`/-/projects/${project.id}/jobs/${next.id}`)
            } catch (err) {
              toast(err.message)
            }
          },
        },
        label,
      )
    fill(
      header,
      h(
        'div',
        { class: 'spread' },
        h('h2', {}, 'Job ', h('code', {}, j.name), ' ', statusBadge(j.status)),
        h(
          'div',
          { class: 'row' },
          // A manual job waits to be played; a delayed one (scheduled) may be started before its time.
          j.status === 'manual' || j.status === 'scheduled' ? act(j.status === 'manual' ? 'Play' : 'Run now', 'play', '') : null,
          ACTIVE.has(j.status) ? act('Cancel', 'cancel', 'danger') : act('Retry', 'retry', 'secondary'),
        ),
      ),
      h(
        'p',
        { class: 'muted' },
        h('a', { href: `/-/projects/${project.id}/pipelines/${j.pipeline.id}` }, `Pipeline #${j.pipeline.id}`),
        ' · stage ',
        j.stage,
        ' · ref ',
        h('code', {}, j.ref),
        ' · duration ',
        duration(j.duration),
        j.failure_reason ? ` · ${j.failure_reason}` : '',
        j.status === 'scheduled' && j.scheduled_at ? ` · starts ${new Date(j.scheduled_at).toLocaleString()}` : '',
      ),
    )
  }

  /** Reads what the log gained since `offset` (206), or nothing new (416). */
  const pull = async () => {
    const res = await apiRaw('GET', `/projects/${project.id}/jobs/${jobId}/trace`, { headers: { Range: `bytes=${offset}-` } })
    if (res.status === 206 || res.status === 200) {
      const bytes = new Uint8Array(await res.arrayBuffer())
      if (res.status === 200) {
        log.replaceChildren()
        offset = 0
      }
      offset += bytes.length
      const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 24
      renderer.write(decoder.decode(bytes, { stream: true }))
      if (stick) log.scrollTop = log.scrollHeight
    } else if (res.status !== 416) {
      throw new Error(`log: ${res.status}`)
    }
    const st = res.headers.get('Job-Status') ?? res.headers.get('X-Job-Status')
    return st
  }

  drawHeader(job)
  await pull()
  if (ACTIVE.has(status)) {
    live.textContent = 'Following the log live…'
    const stop = every(POLL_MS, async () => {
      await pull()
      const j = await api('GET', `/projects/${project.id}/jobs/${jobId}`)
      if (j.status !== status) drawHeader(j)
      status = j.status
      if (!ACTIVE.has(status)) {
        await pull()
        live.textContent = `Job ${status}.`
        stop()
      }
    })
  } else if (offset === 0) {
    live.textContent = 'This job has no log.'
  }
  return [header, log, live]
}
