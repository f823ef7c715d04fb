// Project Settings tab: CI/CD variables, runners, deploy tokens, the job-token allowlist, the registry's
// settings (registry-settings.js) and webhooks.
// Each section loads and reloads on its own; failures show the API's message in the section.
import { api, apiAll, apiPage, enc } from './api.js'
import { commandLine, confirmDialog, copyButton, errorBox, formValues, h, timeAgo, toast } from './dom.js'
import { registryHost } from './registry.js'
import { registrySettingsSections } from './registry-settings.js'
import { webhooksSection } from './webhooks.js'

/** A titled section whose body `load()` fills; returns [element, reload]. */
export function section(id, title, intro, load) {
  const body = h('div', { 'aria-live': 'polite' }, h('p', { class: 'muted' }, 'Loading…'))
  const el = h(
    'section',
    { class: 'settings-section', 'aria-labelledby': id },
    h('h2', { id }, title),
    intro ? h('p', { class: 'hint' }, intro) : null,
    body,
  )
  const reload = async (...args) => {
    try {
      body.replaceChildren(...[await load(reload, ...args)].flat(Infinity).filter(Boolean))
    } catch (err) {
      body.replaceChildren(errorBox(err))
    }
  }
  reload()
  return el
}

/** A secret shown once, with a copy button. */
function secretBox(title, value, id, extra = []) {
  return h(
    'div',
    { class: 'secret', role: 'alert' },
    h('p', {}, h('strong', {}, title), ' Copy it now: it will not be shown again.'),
    h('div', { class: 'cmd' }, h('code', { id }, value), copyButton(value, 'Copy token')),
    extra,
  )
}

const check = (name, label, hint) =>
  h(
    'div',
    {},
    h(
      'label',
      { class: 'inline' },
      h('input', { type: 'checkbox', name, value: '1' }),
      h('span', {}, h('strong', {}, label), hint ? ` — ${hint}` : ''),
    ),
  )
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
          heads.map(([t, cls]) => h('th', cls ? { class: cls } : {}, t)),
        ),
      ),
      h('tbody', {}, rows),
    ),
  )
const actionsHead = [h('span', { class: 'visually-hidden' }, 'Actions')]

export async function settingsTab(project) {
  return [
    visibilitySection(project),
    variablesSection(project),
    runnersSection(project),
    deployTokensSection(project),
    allowlistSection(project),
    registrySettingsSections(section, project),
    webhooksSection(section, project),
  ]
}

// ---- Visibility ----

const VISIBILITIES = [
  ['private', 'members only'],
  ['internal', 'any signed-in user'],
  ['public', 'anyone, without signing in'],
]

function visibilitySection(project) {
  return section(
    'visibility-title',
    'Visibility',
    'Who can see this project, pull its images and clone it. Maintainers and owners can change it.',
    async (reload) => {
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel' },
        error,
        h(
          'fieldset',
          {},
          h('legend', {}, 'Project visibility'),
          VISIBILITIES.map(([value, text]) =>
            h(
              'div',
              {},
              h(
                'label',
                { class: 'inline' },
                h('input', { type: 'radio', name: 'visibility', value, checked: value === project.visibility }),
                h('span', {}, h('strong', {}, value), ' — ', text),
              ),
            ),
          ),
        ),
        h('p', {}, h('button', { type: 'submit' }, 'Save visibility')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const { visibility } = formValues(form)
        try {
          const p = await api('PUT', `/projects/${project.id}`, { visibility })
          project.visibility = p.visibility
          const badge = document.getElementById('project-visibility')
          if (badge) badge.textContent = p.visibility
          toast(`The project is now ${p.visibility}`)
          await reload()
        } catch (err) {
          error.replaceChildren(
            errorBox(err.status === 403 ? `${err.message} — only maintainers and owners can change the visibility.` : err),
          )
        }
      })
      return form
    },
  )
}

// ---- CI/CD variables ----

function variablesSection(project) {
  const base = `/projects/${project.id}/variables`
  return section(
    'vars-title',
    'CI/CD variables',
    'Given to every job as environment variables. Masked values are hidden in job logs; protected ones reach only protected branches and tags.',
    async (reload) => {
      const vars = await apiAll(`${base}?per_page=100`)
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'var-new' },
        h('h3', { id: 'var-new' }, 'Add a variable'),
        error,
        h('label', { for: 'var-key' }, 'Key'),
        h('input', {
          type: 'text',
          id: 'var-key',
          name: 'key',
          required: true,
          maxlength: 255,
          pattern: '[A-Za-z0-9_]+',
          autocomplete: 'off',
          'aria-describedby': 'var-key-hint',
        }),
        h('p', { class: 'hint', id: 'var-key-hint' }, 'Letters, digits and "_", e.g. ', h('code', {}, 'DEPLOY_TOKEN'), '.'),
        h('label', { for: 'var-value' }, 'Value'),
        h('textarea', { id: 'var-value', name: 'value', rows: 2, autocomplete: 'off', spellcheck: 'false' }),
        h(
          'fieldset',
          {},
          h('legend', {}, 'Options'),
          check('protected', 'Protected', 'only for protected branches and tags'),
          check('masked', 'Masked', 'hidden in job logs (8+ characters from letters, digits and +/=@:.~_-)'),
          check('file', 'File', 'the job gets a path to a file holding the value'),
        ),
        h('p', {}, h('button', { type: 'submit' }, 'Add variable')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const v = formValues(form)
        try {
          await api('POST', base, {
            key: v.key,
            value: v.value ?? '',
            protected: !!v.protected,
            masked: !!v.masked,
            variable_type: v.file ? 'file' : 'env_var',
          })
          toast(`Variable ${v.key} added`)
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      const row = (v) => {
        const tr = h(
          'tr',
          { 'data-variable': v.key },
          h('td', { class: 'mono' }, v.key),
          h('td', { class: 'mono' }, v.masked ? '••••••••' : v.value.length > 60 ? `${v.value.slice(0, 60)}…` : v.value),
          h(
            'td',
            {},
            [v.protected && 'protected', v.masked && 'masked', v.variable_type === 'file' && 'file']
              .filter(Boolean)
              .map((f) => h('span', { class: 'badge' }, f)),
            ' ',
          ),
          h(
            'td',
            {},
            h(
              'div',
              { class: 'row' },
              h(
                'button',
                { type: 'button', class: 'secondary small', 'aria-label': `Edit variable ${v.key}`, onclick: () => edit(tr, v) },
                'Edit',
              ),
              h(
                'button',
                { type: 'button', class: 'danger small', 'aria-label': `Delete variable ${v.key}`, onclick: () => remove(v) },
                'Delete',
              ),
            ),
          ),
        )
        return tr
      }
      const edit = (tr, v) => {
        const err = h('div')
        const f = h(
          'form',
          {},
          err,
          h('label', { for: `edit-${v.key}` }, `New value of ${v.key}`),
          h('textarea', { id: `edit-${v.key}`, name: 'value', rows: 2, autocomplete: 'off', spellcheck: 'false' }),
          h(
            'div',
            { class: 'row' },
            h('button', { type: 'submit', class: 'small' }, 'Save'),
            h('button', { type: 'button', class: 'secondary small', onclick: () => reload() }, 'Cancel'),
          ),
        )
        f.querySelector('textarea').value = v.value
        f.addEventListener('submit', async (e) => {
          e.preventDefault()
          try {
            await api('PUT', `${base}/${enc(v.key)}`, { value: f.querySelector('textarea').value })
            toast(`Variable ${v.key} saved`)
            await reload()
          } catch (e2) {
            err.replaceChildren(errorBox(e2))
          }
        })
        tr.replaceChildren(h('td', { colspan: 4 }, f))
        f.querySelector('textarea').focus()
      }
      const remove = async (v) => {
        if (!(await confirmDialog({ title: `Delete variable ${v.key}?`, body: 'Pipelines started from now on will not have it.' }))) return
        try {
          await api('DELETE', `${base}/${enc(v.key)}`)
          toast(`Variable ${v.key} deleted`)
          await reload()
        } catch (err) {
          toast(err.message)
        }
      }
      return [
        vars.length
          ? table('CI/CD variables', [['Key'], ['Value'], ['Options'], actionsHead], vars.map(row))
          : h('p', { class: 'panel' }, 'No variables yet. Add one below; jobs read it as ', h('code', {}, '$KEY'), '.'),
        form,
      ]
    },
  )
}

// ---- Runners ----

function runnersSection(project) {
  const url = new URL(project.web_url).origin
  return section(
    'runners-title',
    'Runners',
    "Runners pick up this project's jobs. A project runner runs only this project's jobs.",
    async (reload, created) => {
      const { items } = await apiPage(`/projects/${project.id}/runners?per_page=100`)
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'runner-new' },
        h('h3', { id: 'runner-new' }, 'Register a project runner'),
        error,
        h('label', { for: 'runner-desc' }, 'Description (optional)'),
        h('input', { type: 'text', id: 'runner-desc', name: 'description', maxlength: 1024 }),
        h('label', { for: 'runner-tags' }, 'Tags (optional)'),
        h('input', { type: 'text', id: 'runner-tags', name: 'tag_list', 'aria-describedby': 'runner-tags-hint' }),
        h(
          'p',
          { class: 'hint', id: 'runner-tags-hint' },
          'Comma-separated, e.g. ',
          h('code', {}, 'docker, linux'),
          '. Jobs with tags run only on runners having them all.',
        ),
        check('run_untagged', 'Run untagged jobs'),
        h('p', {}, h('button', { type: 'submit' }, 'Register runner')),
      )
      form.querySelector('input[name=run_untagged]').checked = true
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const v = formValues(form)
        const body = { runner_type: 'project_type', project_id: project.id, run_untagged: !!v.run_untagged }
        if (v.description) body.description = v.description
        if (v.tag_list)
          body.tag_list = v.tag_list
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean)
        try {
          const r = await api('POST', '/user/runners', body)
          toast('Runner registered')
          await reload(r)
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      const togglePause = async (r) => {
        try {
          await api('PUT', `/runners/${r.id}`, { paused: !r.paused })
          toast(`Runner #${r.id} ${r.paused ? 'resumed' : 'paused'}`)
          await reload()
        } catch (err) {
          toast(err.message)
        }
      }
      const status = (r) =>
        h(
          'span',
          { class: `badge ${r.online ? 'st-success' : 'st-canceled'}` },
          r.status === 'never_contacted' ? 'never contacted' : r.online ? 'online' : 'offline',
        )
      const row = (r) =>
        h(
          'tr',
          { 'data-runner': r.id },
          h(
            'td',
            {},
            `#${r.id} `,
            r.description || h('span', { class: 'muted' }, '(no description)'),
            h('div', { class: 'hint' }, r.runner_type.replace('_type', '')),
          ),
          h('td', {}, status(r), r.paused ? [' ', h('span', { class: 'badge st-manual' }, 'paused')] : null),
          h('td', {}, r.contacted_at ? timeAgo(r.contacted_at) : 'never'),
          h('td', { class: 'hide-narrow mono' }, r.tag_list.join(', ') || '—'),
          h(
            'td',
            {},
            h(
              'button',
              {
                type: 'button',
                class: 'secondary small',
                'aria-label': `${r.paused ? 'Resume' : 'Pause'} runner #${r.id}`,
                onclick: () => togglePause(r),
              },
              r.paused ? 'Resume' : 'Pause',
            ),
          ),
        )
      const command = created ? `wharf runner --url ${url} --token ${created.token} --executor docker` : null
      return [
        created
          ? secretBox(`Runner #${created.id} registered. Its token:`, created.token, 'new-runner-token', [
              h('p', {}, 'Start it on a machine with Docker:'),
              h('div', { class: 'cmd' }, h('code', { id: 'new-runner-command' }, command), copyButton(command, 'Copy command')),
              h(
                'p',
                { class: 'hint' },
                'Add ',
                h('code', {}, '--bind-docker-socket'),
                ' for jobs that run ',
                h('code', {}, 'docker build'),
                '.',
              ),
            ])
          : null,
        items.length
          ? table('Runners', [['Runner'], ['Status'], ['Last contact'], ['Tags', 'hide-narrow'], actionsHead], items.map(row))
          : h(
              'p',
              { class: 'panel' },
              "No runner can run this project's jobs yet: pipelines stay pending until one does. Register one below.",
            ),
        form,
      ]
    },
  )
}

// ---- Deploy tokens ----

const DEPLOY_SCOPES = [
  ['read_registry', 'pull images'],
  ['write_registry', 'push images'],
  ['read_repository', 'clone'],
]

function deployTokensSection(project) {
  const base = `/projects/${project.id}/deploy_tokens`
  const host = registryHost(project)
  return section(
    'deploy-title',
    'Deploy tokens',
    "For machines that pull images or clone, without a user account. Sign in with the token's username and the token.",
    async (reload, created) => {
      const { items } = await apiPage(`${base}?per_page=100`)
      const active = items.filter((t) => !t.revoked && !t.expired)
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'deploy-new' },
        h('h3', { id: 'deploy-new' }, 'New deploy token'),
        error,
        h('label', { for: 'dt-name' }, 'Name'),
        h('input', { type: 'text', id: 'dt-name', name: 'name', required: true, maxlength: 255 }),
        h('label', { for: 'dt-username' }, 'Username (optional)'),
        h('input', { type: 'text', id: 'dt-username', name: 'username', maxlength: 255, autocomplete: 'off' }),
        h('label', { for: 'dt-exp' }, 'Expires on (optional)'),
        h('input', { type: 'date', id: 'dt-exp', name: 'expires_at', min: new Date(Date.now() + 86400_000).toISOString().slice(0, 10) }),
        h(
          'fieldset',
          {},
          h('legend', {}, 'Scopes'),
          DEPLOY_SCOPES.map(([s, text]) =>
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
        h('p', {}, h('button', { type: 'submit' }, 'Create deploy token')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const v = formValues(form)
        const scopes = new FormData(form).getAll('scopes')
        if (scopes.length === 0) return error.replaceChildren(errorBox('Choose at least one scope.'))
        try {
          const t = await api('POST', base, {
            name: v.name,
            scopes,
            ...(v.username ? { username: v.username } : {}),
            ...(v.expires_at ? { expires_at: v.expires_at } : {}),
          })
          toast('Deploy token created')
          await reload(t)
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      const revoke = async (t) => {
        if (
          !(await confirmDialog({ title: `Revoke ${t.name}?`, body: 'Machines using it can no longer pull or clone.', confirm: 'Revoke' }))
        )
          return
        try {
          await api('DELETE', `${base}/${t.id}`)
          toast(`Deploy token ${t.name} revoked`)
          await reload()
        } catch (err) {
          toast(err.message)
        }
      }
      const row = (t) =>
        h(
          'tr',
          { 'data-deploy-token': t.name },
          h('td', {}, t.name),
          h('td', { class: 'mono' }, t.username),
          h('td', { class: 'mono hide-narrow' }, t.scopes.join(', ')),
          h('td', {}, t.expires_at ? t.expires_at.slice(0, 10) : 'never'),
          h(
            'td',
            {},
            h(
              'button',
              { type: 'button', class: 'danger small', 'aria-label': `Revoke deploy token ${t.name}`, onclick: () => revoke(t) },
              'Revoke',
            ),
          ),
        )
      return [
        created
          ? secretBox(`Deploy token “${created.name}” (username ${created.username}).`, created.token, 'new-deploy-token', [
              created.scopes.some((s) => s.endsWith('_registry')) ? commandLine(`docker login ${host} -u ${created.username}`) : null,
            ])
          : null,
        active.length
          ? table('Active deploy tokens', [['Name'], ['Username'], ['Scopes', 'hide-narrow'], ['Expires'], actionsHead], active.map(row))
          : h('p', { class: 'panel' }, 'No active deploy tokens.'),
        form,
      ]
    },
  )
}

// ---- Job-token allowlist ----

function allowlistSection(project) {
  const base = `/projects/${project.id}/job_token_scope/allowlist`
  return section(
    'allow-title',
    'Job token allowlist',
    `CI jobs of the projects listed here may use their CI_JOB_TOKEN to pull images from and clone ${project.path_with_namespace}. Its own jobs always can.`,
    async (reload) => {
      const list = await apiAll(`${base}?per_page=100`)
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'allow-new' },
        h('h3', { id: 'allow-new' }, 'Add a project'),
        error,
        h('label', { for: 'allow-path' }, 'Project path'),
        h('input', { type: 'text', id: 'allow-path', name: 'path', required: true, placeholder: 'group/project', autocomplete: 'off' }),
        h('p', {}, h('button', { type: 'submit' }, 'Add project')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const path = formValues(form)
          .path.trim()
          .replace(/^\/+|\/+$/g, '')
        try {
          let target
          try {
            target = await api('GET', `/projects/${enc(path)}`)
          } catch (err) {
            if (err.status === 404) throw new Error(`No project ${path} that you can see.`)
            throw err
          }
          await api('POST', base, { target_project_id: target.id })
          toast(`${target.path_with_namespace} allowed`)
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      const remove = async (p) => {
        try {
          await api('DELETE', `${base}/${p.id}`)
          toast(`${p.path_with_namespace} removed`)
          await reload()
        } catch (err) {
          toast(err.message)
        }
      }
      return [
        list.length
          ? h(
              'ul',
              { class: 'cards', 'aria-label': 'Allowed projects' },
              list.map((p) =>
                h(
                  'li',
                  { 'data-allowed': p.path_with_namespace },
                  h(
                    'div',
                    { class: 'spread' },
                    h('span', { class: 'mono' }, p.path_with_namespace),
                    h(
                      'button',
                      {
                        type: 'button',
                        class: 'danger small',
                        'aria-label': `Remove ${p.path_with_namespace} from the allowlist`,
                        onclick: () => remove(p),
                      },
                      'Remove',
                    ),
                  ),
                ),
              ),
            )
          : h('p', { class: 'panel' }, 'No other project may use its job token here.'),
        form,
      ]
    },
  )
}
