// Wharf web UI: a small single-page app over the public REST API. Every page is a function that
// renders into <main>; links under / are routed here without reloading.
import { api, apiPage, currentSession, enc, signIn, signInOptions, signOut, ApiError } from './api.js'
import { errorBox, fill, formValues, h, mount, toast } from './dom.js'
import { registryTab } from './registry.js'
import { blobPage, commitPage, commitsPage, editFilePage, newFilePage, projectOverview, repositoryTab } from './repository.js'
import { ciEditorPage } from './ci-editor.js'
import { jobPage, newPipelinePage, pipelinePage, pipelinesTab } from './ci.js'
import { scheduleFormPage, schedulesPage } from './schedules.js'
import { environmentPage, environmentsTab, releasesTab } from './environments.js'
import { accountPage, tokensPage } from './user.js'
import { adminPage } from './admin.js'
import { devicePage } from './device.js'
import { settingsTab } from './settings.js'
import { membersTab } from './members.js'
import { groupPage, projectItem } from './groups.js'
import { navigate, runCleanups, setRenderer } from './nav.js'
import { PAGES } from './pages.js'
import { state } from './state.js'

const ROUTES = [
  [PAGES.home, homePage],
  [PAGES.signIn, signInPage],
  [PAGES.newProject, newProjectPage],
  [PAGES.newGroup, newGroupPage],
  [PAGES.group, groupPage],
  [PAGES.project, (id) => projectPage(id, 'registry', async (p) => [await projectOverview(p), await registryTab(p)])],
  [PAGES.projectRegistry, (id) => projectPage(id, 'registry')],
  [PAGES.pipelines, (id) => projectPage(id, 'pipelines')],
  [PAGES.newPipeline, (id) => projectPage(id, 'pipelines', newPipelinePage)],
  [PAGES.schedules, (id) => projectPage(id, 'pipelines', schedulesPage)],
  [PAGES.newSchedule, (id) => projectPage(id, 'pipelines', (p) => scheduleFormPage(p))],
  [PAGES.editSchedule, (id, sid) => projectPage(id, 'pipelines', (p) => scheduleFormPage(p, sid))],
  [PAGES.pipeline, (id, pid) => projectPage(id, 'pipelines', (p) => pipelinePage(p, pid))],
  [PAGES.job, (id, jid) => projectPage(id, 'pipelines', (p) => jobPage(p, jid))],
  [PAGES.repository, (id) => projectPage(id, 'repository')],
  [PAGES.blob, (id) => projectPage(id, 'repository', blobPage)],
  [PAGES.newFile, (id) => projectPage(id, 'repository', newFilePage)],
  [PAGES.editFile, (id) => projectPage(id, 'repository', editFilePage)],
  [PAGES.commits, (id) => projectPage(id, 'repository', commitsPage)],
  [PAGES.commit, (id, sha) => projectPage(id, 'repository', (p) => commitPage(p, sha))],
  [PAGES.ciEditor, (id) => projectPage(id, 'pipelines', ciEditorPage)],
  [PAGES.environments, (id) => projectPage(id, 'environments')],
  [PAGES.environment, (id, eid) => projectPage(id, 'environments', (p) => environmentPage(p, eid))],
  [PAGES.releases, (id) => projectPage(id, 'releases')],
  [PAGES.members, (id) => projectPage(id, 'members')],
  [PAGES.settings, (id) => projectPage(id, 'settings')],
  [PAGES.tokens, tokensPage],
  [PAGES.account, accountPage],
  [PAGES.device, devicePage],
  [PAGES.admin, (tab) => adminPage(tab ?? '')],
]

async function render() {
  runCleanups()
  const path = location.pathname
  renderNav()
  for (const [re, page] of ROUTES) {
    const m = re.exec(path)
    if (!m) continue
    if (!state.user && page !== signInPage) return navigate(`/-/sign_in?return_to=${enc(path + location.search)}`, { replace: true })
    try {
      await page(...m.slice(1))
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) {
        state.user = null
        return navigate(`/-/sign_in?return_to=${enc(path)}`, { replace: true })
      }
      mount(h('h1', {}, 'Something went wrong'), errorBox(err), h('p', {}, h('a', { href: '/' }, 'Back to your projects')))
    }
    const main = document.getElementById('main')
    if (document.activeElement === document.body) main.focus({ preventScroll: true })
    return
  }
  mount(
    h('h1', {}, 'Page not found'),
    h('p', {}, 'There is no page at ', h('code', {}, path), '. ', h('a', { href: '/' }, 'Go to your projects'), '.'),
  )
}

function renderNav() {
  const nav = document.getElementById('nav')
  nav.replaceChildren()
  if (!state.user) return
  nav.append(
    h('a', { href: '/' }, 'Projects'),
    h('a', { href: '/-/user/tokens' }, 'Access tokens'),
    h('a', { href: '/-/user/account' }, 'Account'),
    state.user.is_admin ? h('a', { href: '/-/admin' }, 'Admin') : null,
    h('span', { class: 'hide-narrow' }, state.user.username),
    h(
      'button',
      {
        type: 'button',
        class: 'small',
        onclick: async () => {
          await signOut()
          state.user = null
          toast('Signed out')
          navigate('/-/sign_in')
        },
      },
      'Sign out',
    ),
  )
}

// ---- Sign in ----

/** What the sign-in page says when a sign-in through an identity provider came back failed (the details are in the audit log). */
const SSO_ERRORS = {
  unreachable: 'The identity provider could not be reached. Try again later; if it persists, tell an administrator.',
  misconfigured: 'Signing in with this provider is not set up correctly in Wharf. An administrator can see why under Admin › Settings.',
  denied: 'The identity provider did not let you sign in.',
  not_allowed:
    'Your identity provider account may not sign in to Wharf here (its email domain is not allowed, or no Wharf account is linked to it). Ask an administrator.',
  blocked: 'Your Wharf account is blocked. Ask an administrator.',
  expired: 'The sign-in took too long or was started in another browser tab. Please try again.',
}

async function signInPage() {
  if (state.user) return navigate('/', { replace: true })
  const params = new URLSearchParams(location.search)
  const back = params.get('return_to')
  const returnTo = back?.startsWith('/') && !back.startsWith('//') ? back : '/'
  const options = await signInOptions()
  const error = h('div')
  const ssoError = params.get('sso_error')
  if (ssoError)
    error.replaceChildren(
      h('div', { class: 'error', role: 'alert' }, SSO_ERRORS[ssoError] ?? 'Signing in with the identity provider failed.'),
    )
  const providers = options.providers.length
    ? h(
        'div',
        { role: 'group', 'aria-label': 'Sign in with an identity provider' },
        options.providers.map((p) =>
          h('p', {}, h('a', { class: 'button', href: `${p.url}?return_to=${enc(returnTo)}` }, `Sign in with ${p.label}`)),
        ),
      )
    : null
  const directories = options.directories.map((d) => d.label).join(' or ')
  const showPassword = options.password_sign_in || options.password_break_glass || options.directories.length > 0
  const form = h(
    'form',
    { class: 'panel signin', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in to Wharf'),
    error,
    providers,
    directories ? h('p', { class: 'hint' }, `Sign in with your ${directories} username and password.`) : null,
    !options.password_sign_in && options.password_break_glass
      ? h('p', { class: 'hint' }, 'Local passwords are disabled on this instance; administrators may still use theirs.')
      : null,
    showPassword ? h('label', { for: 'username' }, 'Username') : null,
    showPassword
      ? h('input', { type: 'text', id: 'username', name: 'username', autocomplete: 'username', required: true, autofocus: true })
      : null,
    showPassword ? h('label', { for: 'password' }, 'Password') : null,
    showPassword
      ? h('input', { type: 'password', id: 'password', name: 'password', autocomplete: 'current-password', required: true })
      : null,
    showPassword ? h('p', {}, h('button', { type: 'submit' }, 'Sign in')) : null,
    showPassword
      ? h('p', { class: 'hint' }, 'Use your account password. Personal access tokens are for the API, git and docker login.')
      : null,
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const { username, password } = formValues(form)
    try {
      state.user = await signIn(username, password)
      navigate(returnTo)
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  mount(form)
  form.querySelector('#username')?.focus()
}

// ---- Projects and groups ----

async function homePage() {
  const [projects, groups] = await Promise.all([apiPage('/projects?membership=true&per_page=100'), apiPage('/groups?per_page=100')])
  mount(
    h(
      'div',
      { class: 'spread' },
      h('h1', {}, 'Your projects'),
      h(
        'div',
        { class: 'row' },
        h('a', { class: 'button', href: '/-/projects/new' }, 'New project'),
        h('a', { class: 'button secondary', href: '/-/groups/new' }, 'New group'),
      ),
    ),
    projects.items.length
      ? h('ul', { class: 'cards', 'aria-label': 'Projects' }, projects.items.map(projectItem))
      : h(
          'div',
          { class: 'panel' },
          h('p', {}, 'You are not a member of any project yet.'),
          h('p', {}, h('a', { href: '/-/projects/new' }, 'Create your first project'), ' to push images and run pipelines.'),
        ),
    h('h2', {}, 'Groups'),
    groups.items.length
      ? h(
          'ul',
          { class: 'cards', 'aria-label': 'Groups' },
          groups.items.map((g) =>
            h(
              'li',
              {},
              h(
                'div',
                { class: 'spread' },
                h('a', { href: `/-/groups/${g.full_path}` }, g.full_name),
                h('span', { class: 'badge' }, g.visibility),
              ),
              h('span', { class: 'muted mono' }, g.full_path),
            ),
          ),
        )
      : h('p', { class: 'muted' }, 'No groups yet. Groups hold projects that belong together and share members.'),
  )
}

function visibilityField(selected = 'private') {
  const opt = (value, text) =>
    h(
      'label',
      { class: 'inline' },
      h('input', { type: 'radio', name: 'visibility', value, checked: value === selected }),
      h('span', {}, h('strong', {}, value), ' — ', text),
    )
  return h(
    'fieldset',
    {},
    h('legend', {}, 'Visibility'),
    h('div', {}, opt('private', 'members only')),
    h('div', {}, opt('internal', 'any signed-in user')),
    h('div', {}, opt('public', 'anyone, without signing in')),
  )
}

async function newProjectPage() {
  const groups = await apiPage('/groups?per_page=100')
  const preset = new URLSearchParams(location.search).get('namespace_id')
  const error = h('div')
  const form = h(
    'form',
    { class: 'panel' },
    error,
    h('label', { for: 'p-name' }, 'Project name'),
    h('input', { type: 'text', id: 'p-name', name: 'name', required: true, maxlength: 255 }),
    h('label', { for: 'p-path' }, 'Path (optional)'),
    h('input', { type: 'text', id: 'p-path', name: 'path', maxlength: 100, 'aria-describedby': 'p-path-hint' }),
    h(
      'p',
      { class: 'hint', id: 'p-path-hint' },
      'Lowercase letters, digits, ".", "_" and "-". Derived from the name when empty. Image names use this path.',
    ),
    h('label', { for: 'p-ns' }, 'Namespace'),
    h(
      'select',
      { id: 'p-ns', name: 'namespace_id' },
      h('option', { value: '' }, `${state.user.username} (your namespace)`),
      groups.items.map((g) => h('option', { value: g.id, selected: String(g.id) === preset }, g.full_path)),
    ),
    h('label', { for: 'p-desc' }, 'Description (optional)'),
    h('textarea', { id: 'p-desc', name: 'description', rows: 2, maxlength: 2000 }),
    visibilityField(),
    h('p', {}, h('button', { type: 'submit' }, 'Create project')),
  )
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const body = { name: v.name, visibility: v.visibility }
    if (v.path) body.path = v.path
    if (v.namespace_id) body.namespace_id = Number(v.namespace_id)
    if (v.description) body.description = v.description
    try {
      const p = await api('POST', '/projects', body)
      toast(`Project ${p.path_with_namespace} created`)
      navigate(`/-/projects/${p.id}`)
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  mount(h('h1', {}, 'New project'), form)
  form.querySelector('#p-name').focus()
}

async function newGroupPage() {
  const groups = await apiPage('/groups?per_page=100')
  const error = h('div')
  const form = h(
    'form',
    { class: 'panel' },
    error,
    h('label', { for: 'g-name' }, 'Group name'),
    h('input', { type: 'text', id: 'g-name', name: 'name', required: true, maxlength: 255 }),
    h('label', { for: 'g-path' }, 'Path'),
    h('input', {
      type: 'text',
      id: 'g-path',
      name: 'path',
      required: true,
      maxlength: 100,
      pattern: '[A-Za-z0-9_.\\-]+',
      'aria-describedby': 'g-path-hint',
    }),
    h('p', { class: 'hint', id: 'g-path-hint' }, 'Used in URLs and image names, e.g. ', h('code', {}, 'team'), '.'),
    h('label', { for: 'g-parent' }, 'Parent group (optional)'),
    h(
      'select',
      { id: 'g-parent', name: 'parent_id' },
      h('option', { value: '' }, 'None: a top-level group'),
      groups.items.map((g) => h('option', { value: g.id }, g.full_path)),
    ),
    visibilityField(),
    h('p', {}, h('button', { type: 'submit' }, 'Create group')),
  )
  const name = form.querySelector('#g-name')
  const path = form.querySelector('#g-path')
  name.addEventListener('input', () => {
    if (!path.dataset.touched)
      path.value = name.value
        .trim()
        .toLowerCase()
        .replace(/[^a-z0-9_.]+/g, '-')
        .replace(/^[-_.]+|[-_.]+$/g, '')
  })
  path.addEventListener('input', () => (path.dataset.touched = '1'))
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const body = { name: v.name, path: v.path, visibility: v.visibility }
    if (v.parent_id) body.parent_id = Number(v.parent_id)
    try {
      const g = await api('POST', '/groups', body)
      toast(`Group ${g.full_path} created`)
      navigate(`/-/groups/${g.full_path}`)
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  mount(h('h1', {}, 'New group'), form)
  name.focus()
}

// ---- Project page ----

async function projectPage(id, tab, sub) {
  const project = await api('GET', `/projects/${id}`)
  const tabs = [
    ['registry', 'Registry'],
    ['pipelines', 'Pipelines'],
    ['repository', 'Repository'],
    ['environments', 'Environments'],
    ['releases', 'Releases'],
    ['members', 'Members'],
    ['settings', 'Settings'],
  ]
  const body = h('div')
  mount(
    h('p', { class: 'muted' }, h('a', { href: '/' }, 'Projects'), ' / ', project.namespace ? project.namespace.full_path : ''),
    h('div', { class: 'spread' }, h('h1', {}, project.name), h('span', { class: 'badge', id: 'project-visibility' }, project.visibility)),
    h(
      'nav',
      { class: 'tabs', 'aria-label': 'Project' },
      tabs.map(([key, label]) => h('a', { href: `/-/projects/${id}/${key}`, 'aria-current': key === tab ? 'page' : null }, label)),
    ),
    body,
  )
  const render =
    sub ??
    {
      registry: registryTab,
      pipelines: pipelinesTab,
      repository: repositoryTab,
      environments: environmentsTab,
      releases: releasesTab,
      members: membersTab,
      settings: settingsTab,
    }[tab]
  const content = await render(project)
  fill(body, content)
}

// ---- Start ----

document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[href]')
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target) return
  const url = new URL(a.href, location.href)
  // /-/static/ and /-/auth/ (sign-in with an identity provider: a redirect) are the server's, not app pages.
  if (
    url.origin !== location.origin ||
    !(url.pathname === '/' || url.pathname.startsWith('/-/')) ||
    url.pathname.startsWith('/-/static/') ||
    url.pathname.startsWith('/-/auth/')
  )
    return
  e.preventDefault()
  navigate(url.pathname + url.search)
})
window.addEventListener('popstate', () => render())
setRenderer(render)

try {
  state.user = await currentSession()
} catch (err) {
  mount(errorBox(err))
}
render()
