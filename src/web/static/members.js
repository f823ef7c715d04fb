// Members of a project (its Members tab) or of a group (the group page): direct members with their
// roles (add by username, change role, remove), and the members inherited from the groups above,
// read-only here.
import { api, apiPage, enc } from './api.js'
import { confirmDialog, errorBox, formValues, h, toast } from './dom.js'
import { section } from './settings.js'
import { state } from './state.js'

export const ROLES = [
  [10, 'Guest'],
  [20, 'Reporter'],
  [30, 'Developer'],
  [40, 'Maintainer'],
  [50, 'Owner'],
]
const roleName = (level) => ROLES.find(([l]) => l === level)?.[1] ?? String(level)

function roleSelect(attrs, selected) {
  return h(
    'select',
    attrs,
    ROLES.map(([l, name]) => h('option', { value: l, selected: l === selected }, name)),
  )
}

export async function membersTab(project) {
  return membersSection(
    { kind: 'projects', id: project.id, noun: 'project', parentPath: project.namespace?.full_path },
    'Guests see the project; reporters pull images and read pipelines; developers push images and run pipelines; maintainers change settings and members; owners can also delete the project.',
  )
}

/** Group members: the same table over /groups/:id/members; their roles reach every project inside. */
export function groupMembersSection(group) {
  return membersSection(
    { kind: 'groups', id: group.id, noun: 'group', parentPath: group.parent_id ? group.full_path.split('/').slice(0, -1).join('/') : null },
    'Members of a group have their role in every project and subgroup inside it. Maintainers and owners manage them.',
  )
}

function membersSection(target, intro) {
  const base = `/${target.kind}/${target.id}/members`
  return section('members-title', 'Members', intro, async (reload) => {
    const [direct, all] = await Promise.all([apiPage(`${base}?per_page=100`), apiPage(`${base}/all?per_page=100`)])
    const directIds = new Set(direct.items.map((m) => m.id))
    const inherited = all.items.filter((m) => !directIds.has(m.id))
    const error = h('div')
    const listError = h('div')
    const form = h(
      'form',
      { class: 'panel', 'aria-labelledby': 'member-new' },
      h('h3', { id: 'member-new' }, 'Add a member'),
      error,
      h('label', { for: 'm-username' }, 'Username'),
      h('input', { type: 'text', id: 'm-username', name: 'username', required: true, autocomplete: 'off', spellcheck: 'false' }),
      h('label', { for: 'm-role' }, 'Role'),
      roleSelect({ id: 'm-role', name: 'access_level' }, 30),
      h('p', {}, h('button', { type: 'submit' }, 'Add member')),
    )
    form.addEventListener('submit', async (e) => {
      e.preventDefault()
      const v = formValues(form)
      const username = v.username.trim().replace(/^@/, '')
      try {
        const [user] = await api('GET', `/users?username=${enc(username)}`)
        if (!user) throw new Error(`There is no user named ${username}.`)
        await api('POST', base, { user_id: user.id, access_level: Number(v.access_level) })
        toast(`${user.username} added as ${roleName(Number(v.access_level))}`)
        await reload()
      } catch (err) {
        error.replaceChildren(errorBox(err))
      }
    })
    const changeRole = async (m, select) => {
      const level = Number(select.value)
      try {
        await api('PUT', `${base}/${m.id}`, { access_level: level })
        m.access_level = level
        toast(`${m.username} is now ${roleName(level)}`)
        listError.replaceChildren()
      } catch (err) {
        select.value = String(m.access_level)
        listError.replaceChildren(errorBox(err))
      }
    }
    const remove = async (m) => {
      const self = m.id === state.user.id
      if (
        !(await confirmDialog({
          title: self ? `Leave this ${target.noun}?` : `Remove ${m.username}?`,
          body: self ? 'You lose the access this membership gives.' : `${m.username} loses the access this membership gives.`,
          confirm: self ? 'Leave' : 'Remove',
        }))
      )
        return
      try {
        await api('DELETE', `${base}/${m.id}`)
        toast(self ? `You left the ${target.noun}` : `${m.username} removed`)
        await reload()
      } catch (err) {
        listError.replaceChildren(errorBox(err))
      }
    }
    const who = (m) =>
      h(
        'td',
        {},
        h('strong', {}, m.name),
        ' ',
        h('span', { class: 'muted mono' }, `@${m.username}`),
        m.id === state.user.id ? h('span', { class: 'muted' }, ' (you)') : null,
      )
    const directRow = (m) => {
      const select = roleSelect({ 'aria-label': `Role of ${m.username}`, class: 'role' }, m.access_level)
      select.addEventListener('change', () => changeRole(m, select))
      return h(
        'tr',
        { 'data-member': m.username },
        who(m),
        h('td', {}, select),
        h('td', { class: 'hide-narrow' }, m.expires_at ?? 'never'),
        h(
          'td',
          {},
          h(
            'button',
            { type: 'button', class: 'danger small', 'aria-label': `Remove member ${m.username}`, onclick: () => remove(m) },
            'Remove',
          ),
        ),
      )
    }
    const head = (cells) =>
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          cells.map(([t, cls]) => h('th', cls ? { class: cls } : {}, t)),
        ),
      )
    return [
      listError,
      direct.items.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              { 'aria-label': 'Members' },
              head([['Member'], ['Role'], ['Expires', 'hide-narrow'], [h('span', { class: 'visually-hidden' }, 'Actions')]]),
              h('tbody', {}, direct.items.map(directRow)),
            ),
          )
        : h('p', { class: 'panel' }, target.kind === 'projects' ? 'No direct members: access comes from the group.' : 'No direct members.'),
      inherited.length
        ? [
            h('h3', {}, `Inherited from ${target.parentPath ?? 'the groups above'}`),
            h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { 'aria-label': 'Inherited members' },
                head([['Member'], ['Role']]),
                h(
                  'tbody',
                  {},
                  inherited.map((m) => h('tr', { 'data-inherited': m.username }, who(m), h('td', {}, roleName(m.access_level)))),
                ),
              ),
            ),
            h(
              'p',
              { class: 'hint' },
              `Change these in the group above. Adding one of them here with a higher role raises their role in this ${target.noun}.`,
            ),
          ]
        : null,
      form,
    ]
  })
}
