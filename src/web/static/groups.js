// The group page, /-/groups/<path> (or its id): the group's projects, its members (add, change
// role, remove), its visibility and its dependency proxy.
import { api, apiPage, enc } from './api.js'
import { dependencyProxySection } from './dependency-proxy.js'
import { errorBox, formValues, h, mount, toast } from './dom.js'
import { groupMembersSection } from './members.js'
import { section } from './settings.js'

export function projectItem(p) {
  return h(
    'li',
    {},
    h(
      'div',
      { class: 'spread' },
      h('a', { href: `/-/projects/${p.id}` }, p.name_with_namespace),
      h('span', { class: 'badge' }, p.visibility),
    ),
    p.description ? h('p', { class: 'muted' }, p.description) : null,
  )
}

/** `ref` is a numeric id or a full path such as `team/backend`. */
export async function groupPage(ref) {
  const group = await api('GET', `/groups/${/^\d+$/.test(ref) ? ref : enc(ref)}`)
  const projects = await apiPage(`/groups/${group.id}/projects?per_page=100`)
  mount(
    h('p', { class: 'muted' }, h('a', { href: '/' }, 'Projects'), ' / Groups'),
    h('div', { class: 'spread' }, h('h1', {}, group.full_name), h('span', { class: 'badge', id: 'group-visibility' }, group.visibility)),
    h('p', { class: 'muted' }, h('span', { class: 'mono' }, group.full_path), group.description ? ` · ${group.description}` : ''),
    h(
      'section',
      { 'aria-labelledby': 'group-projects' },
      h(
        'div',
        { class: 'spread' },
        h('h2', { id: 'group-projects' }, 'Projects'),
        h('a', { class: 'button', href: `/-/projects/new?namespace_id=${group.id}` }, 'New project in this group'),
      ),
      projects.items.length
        ? h('ul', { class: 'cards', 'aria-label': 'Projects' }, projects.items.map(projectItem))
        : h('p', { class: 'panel' }, 'This group has no projects yet.'),
    ),
    groupMembersSection(group),
    visibilitySection(group),
    dependencyProxySection(group),
  )
}

const VISIBILITIES = [
  ['private', 'members only'],
  ['internal', 'any signed-in user'],
  ['public', 'anyone, without signing in'],
]

function visibilitySection(group) {
  return section(
    'group-visibility-title',
    'Visibility',
    'Who can see this group. Projects and subgroups inside it can be at most as open. Owners can change it.',
    async (reload) => {
      const error = h('div')
      const form = h(
        'form',
        { class: 'panel' },
        error,
        h(
          'fieldset',
          {},
          h('legend', {}, 'Group visibility'),
          VISIBILITIES.map(([value, text]) =>
            h(
              'div',
              {},
              h(
                'label',
                { class: 'inline' },
                h('input', { type: 'radio', name: 'visibility', value, checked: value === group.visibility }),
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
          const g = await api('PUT', `/groups/${group.id}`, { visibility })
          group.visibility = g.visibility
          const badge = document.getElementById('group-visibility')
          if (badge) badge.textContent = g.visibility
          toast(`The group is now ${g.visibility}`)
          await reload()
        } catch (err) {
          error.replaceChildren(errorBox(err.status === 403 ? `${err.message} — only owners can change the group’s visibility.` : err))
        }
      })
      return form
    },
  )
}
