// The project's registry settings (Settings tab): usage and quota, tag and repository protection
// rules, and the cleanup policy with a preview of what it would delete and why.
import { api, apiPage } from './api.js'
import { confirmDialog, errorBox, formatBytes, formValues, h, toast } from './dom.js'

const LEVELS = ['maintainer', 'owner', 'admin']

const levelSelect = (id, name, none) =>
  h(
    'select',
    { id, name },
    h('option', { value: '' }, none),
    LEVELS.map((l) => h('option', { value: l }, l)),
  )

const rulesTable = (label, heads, rows) =>
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

export function registrySettingsSections(section, project) {
  return [
    usageSection(section, project),
    tagRulesSection(section, project),
    repositoryRulesSection(section, project),
    cleanupSection(section, project),
  ]
}

/** A warning when the project is over its soft quota (also shown on the Registry tab); nothing for those who cannot read the quota. */
export async function quotaWarning(project) {
  const q = await api('GET', `/projects/${project.id}/registry/quota`).catch(() => undefined)
  if (!q?.over_soft_limit) return null
  return h(
    'p',
    { class: 'warning', role: 'alert' },
    `Registry storage is over its soft quota: ${formatBytes(q.used_bytes)} used of ${formatBytes(q.soft_limit_bytes)}`,
    q.hard_limit_bytes === null ? '.' : ` (pushes stop at ${formatBytes(q.hard_limit_bytes)}).`,
    ' Delete tags or set a cleanup policy.',
  )
}

const figure = (label, value) =>
  h('div', { class: 'panel', 'data-figure': label }, h('div', { class: 'muted' }, label), h('strong', { class: 'figure' }, value))

function usageSection(section, project) {
  return section(
    'registry-usage-title',
    'Registry storage',
    'Bytes of the layers and configs of this project’s images, each shared layer counted once. Administrators set the quota: over the soft limit pushes still land, with a warning; over the hard limit they are refused.',
    async (reload) => {
      const q = await api('GET', `/projects/${project.id}/registry/quota`)
      const limit = (n) => (n === null ? 'none' : formatBytes(n))
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'quota-form-title' },
        h('h3', { id: 'quota-form-title' }, 'Quota (administrators)'),
        error,
        h('label', { for: 'quota-hard' }, 'Hard limit in bytes (empty: none)'),
        h('input', { type: 'number', min: 0, id: 'quota-hard', name: 'hard', value: q.hard_limit_bytes ?? '' }),
        h('label', { for: 'quota-soft' }, 'Soft limit in bytes (empty: none)'),
        h('input', { type: 'number', min: 0, id: 'quota-soft', name: 'soft', value: q.soft_limit_bytes ?? '' }),
        h('p', {}, h('button', { type: 'submit' }, 'Save quota')),
      )
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        const v = formValues(form)
        try {
          await api('PUT', `/projects/${project.id}/registry/quota`, {
            hard_limit_bytes: v.hard === '' ? null : Number(v.hard),
            soft_limit_bytes: v.soft === '' ? null : Number(v.soft),
          })
          toast('Quota saved')
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      return [
        h(
          'div',
          { class: 'figures' },
          figure('Used', formatBytes(q.used_bytes)),
          figure('Soft limit', limit(q.soft_limit_bytes)),
          figure('Hard limit', limit(q.hard_limit_bytes)),
        ),
        q.over_hard_limit
          ? h('p', { class: 'warning', role: 'alert' }, 'The hard quota is reached: pushes of new layers are refused.')
          : q.over_soft_limit
            ? h(
                'p',
                { class: 'warning', role: 'alert' },
                'Over the soft quota: pushes still land, but delete tags or set a cleanup policy.',
              )
            : null,
        form,
      ]
    },
  )
}

/** A rules section: list with delete buttons and an add form; `fields` and `describe` give the rule's own parts. */
function rulesSection(section, project, o) {
  const base = `/projects/${project.id}/registry/protection/${o.kind}/rules`
  return section(`${o.kind}-rules-title`, o.title, o.intro, async (reload) => {
    const { items } = await apiPage(`${base}?per_page=100`)
    const error = h('div')
    const form = h(
      'form',
      { class: 'panel', 'aria-labelledby': `${o.kind}-rule-new` },
      h('h3', { id: `${o.kind}-rule-new` }, o.newTitle),
      error,
      h('label', { for: `${o.kind}-rule-pattern` }, o.patternLabel),
      h('input', {
        type: 'text',
        id: `${o.kind}-rule-pattern`,
        name: 'pattern',
        required: true,
        maxlength: 255,
        placeholder: o.placeholder,
      }),
      h('label', { for: `${o.kind}-rule-push` }, 'Minimum role to push'),
      levelSelect(`${o.kind}-rule-push`, 'push', o.none),
      h('label', { for: `${o.kind}-rule-delete` }, 'Minimum role to delete'),
      levelSelect(`${o.kind}-rule-delete`, 'delete', o.none),
      h('p', {}, h('button', { type: 'submit' }, o.addLabel)),
    )
    form.addEventListener('submit', async (e) => {
      e.preventDefault()
      const v = formValues(form)
      try {
        await api('POST', base, {
          [o.patternField]: v.pattern,
          minimum_access_level_for_push: v.push || null,
          minimum_access_level_for_delete: v.delete || null,
        })
        toast('Rule added')
        await reload()
      } catch (err) {
        error.replaceChildren(errorBox(err))
      }
    })
    const remove = async (r) => {
      if (
        !(await confirmDialog({
          title: `Delete the rule for ${r[o.patternField]}?`,
          body: 'Matching images lose this protection.',
          confirm: 'Delete rule',
        }))
      )
        return
      try {
        await api('DELETE', `${base}/${r.id}`)
        toast('Rule deleted')
        await reload()
      } catch (err) {
        toast(err.message)
      }
    }
    const row = (r) =>
      h(
        'tr',
        { [`data-${o.kind}-rule`]: r[o.patternField] },
        h('td', { class: 'mono' }, r[o.patternField]),
        h('td', {}, r.minimum_access_level_for_push ?? o.none),
        h('td', {}, r.minimum_access_level_for_delete ?? o.none),
        h(
          'td',
          {},
          h(
            'button',
            { type: 'button', class: 'danger small', 'aria-label': `Delete ${o.kind} rule ${r[o.patternField]}`, onclick: () => remove(r) },
            'Delete',
          ),
        ),
      )
    return [
      items.length
        ? rulesTable(o.title, [o.patternHead, 'Push', 'Delete', h('span', { class: 'visually-hidden' }, 'Actions')], items.map(row))
        : h('p', { class: 'panel' }, 'No rules.'),
      form,
    ]
  })
}

function tagRulesSection(section, project) {
  return rulesSection(section, project, {
    kind: 'tag',
    title: 'Tag protection rules',
    intro:
      'Tags matching a pattern (RE2, whole name) need the given role to be pushed or deleted. With neither role the tags are immutable: once pushed, nobody can overwrite or delete them, cleanup included.',
    newTitle: 'New tag rule',
    patternField: 'tag_name_pattern',
    patternHead: 'Tag pattern',
    patternLabel: 'Tag name pattern',
    placeholder: 'v.*',
    none: 'immutable',
    addLabel: 'Add tag rule',
  })
}

function repositoryRulesSection(section, project) {
  return rulesSection(section, project, {
    kind: 'repository',
    title: 'Image protection rules',
    intro: `Images whose path matches (${project.path_with_namespace}/*: every image below the project) need the given role to push to them or delete from them. Cleanup policies never delete from an image protected against deletes.`,
    newTitle: 'New image rule',
    patternField: 'repository_path_pattern',
    patternHead: 'Image path pattern',
    patternLabel: 'Image path pattern (* matches anything)',
    placeholder: `${project.path_with_namespace}/*`,
    none: 'anyone who may',
    addLabel: 'Add image rule',
  })
}

const CADENCES = ['1d', '7d', '14d', '1month', '3month']
const KEEP_N = ['', '1', '5', '10', '25', '50', '100']
const OLDER_THAN = ['', '7d', '14d', '30d', '90d']

function cleanupSection(section, project) {
  return section(
    'cleanup-title',
    'Cleanup policy',
    'On its cadence, each image of the project loses the tags the policy selects. Protected tags and images always stay. Preview it before saving.',
    async (reload) => {
      const p = (await api('GET', `/projects/${project.id}`)).container_expiration_policy
      const select = (id, name, values, current) =>
        h(
          'select',
          { id, name },
          values.map((v) => h('option', { value: v, selected: String(current ?? '') === v }, v || 'no limit')),
        )
      const checkbox = (name, label, checked) =>
        h('div', {}, h('label', { class: 'inline' }, h('input', { type: 'checkbox', name, value: '1', checked }), h('span', {}, label)))
      const error = h('div')
      const preview = h('div', { 'aria-live': 'polite' })
      const form = h(
        'form',
        { class: 'panel', 'aria-labelledby': 'cleanup-form-title' },
        h('h3', { id: 'cleanup-form-title' }, 'Policy'),
        error,
        checkbox('enabled', 'Enabled', p.enabled),
        h('label', { for: 'cleanup-cadence' }, 'Run every'),
        select('cleanup-cadence', 'cadence', CADENCES, p.cadence),
        h('label', { for: 'cleanup-regex' }, 'Delete tags matching (RE2, empty: none by name)'),
        h('input', { type: 'text', id: 'cleanup-regex', name: 'name_regex', value: p.name_regex ?? '' }),
        h('label', { for: 'cleanup-keep-regex' }, 'Keep tags matching'),
        h('input', { type: 'text', id: 'cleanup-keep-regex', name: 'name_regex_keep', value: p.name_regex_keep ?? '' }),
        h('label', { for: 'cleanup-keep-n' }, 'Keep the newest'),
        select('cleanup-keep-n', 'keep_n', KEEP_N, p.keep_n),
        h('label', { for: 'cleanup-older' }, 'Only tags older than'),
        select('cleanup-older', 'older_than', OLDER_THAN, p.older_than),
        checkbox('remove_deleted_branch_tags', 'Delete the tags CI pushed for branches that no longer exist', p.remove_deleted_branch_tags),
        checkbox(
          'keep_protected_branch_latest',
          'Keep what the latest successful pipeline of each protected branch pushed',
          p.keep_protected_branch_latest,
        ),
        h(
          'p',
          { class: 'row' },
          h('button', { type: 'button', class: 'secondary', onclick: () => showPreview() }, 'Preview'),
          h('button', { type: 'submit' }, 'Save policy'),
        ),
      )
      const attributes = () => {
        const v = formValues(form)
        const data = new FormData(form)
        return {
          enabled: data.has('enabled'),
          cadence: v.cadence,
          name_regex: v.name_regex || null,
          name_regex_keep: v.name_regex_keep || null,
          keep_n: v.keep_n ? Number(v.keep_n) : null,
          older_than: v.older_than || null,
          remove_deleted_branch_tags: data.has('remove_deleted_branch_tags'),
          keep_protected_branch_latest: data.has('keep_protected_branch_latest'),
        }
      }
      const showPreview = async () => {
        error.replaceChildren()
        try {
          const r = await api('POST', `/projects/${project.id}/registry/cleanup_policy/preview`, attributes())
          const rows = r.repositories.flatMap((repo) => [
            ...repo.delete.map((t) =>
              h(
                'tr',
                { 'data-preview': `${repo.path}:${t.name}` },
                h('td', { class: 'mono' }, `${repo.path}:${t.name}`),
                h('td', {}, 'delete'),
                h('td', {}, t.reason),
              ),
            ),
            ...repo.keep.map((t) =>
              h(
                'tr',
                { 'data-preview': `${repo.path}:${t.name}` },
                h('td', { class: 'mono' }, `${repo.path}:${t.name}`),
                h('td', {}, 'keep'),
                h('td', {}, t.reason),
              ),
            ),
          ])
          const n = r.repositories.reduce((s, repo) => s + repo.delete.length, 0)
          preview.replaceChildren(
            h('h3', {}, `Preview: ${n} tag${n === 1 ? '' : 's'} would be deleted now`),
            rows.length
              ? rulesTable('Cleanup preview', ['Tag', 'Action', 'Why'], rows)
              : h('p', { class: 'panel' }, 'Nothing would be deleted.'),
          )
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      }
      form.addEventListener('submit', async (e) => {
        e.preventDefault()
        try {
          await api('PUT', `/projects/${project.id}`, { container_expiration_policy_attributes: attributes() })
          toast('Cleanup policy saved')
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      })
      return [form, preview]
    },
  )
}
