// The Repository tab: the tree and files at any branch, tag or commit, a file's view, its history,
// one commit with its diff; creating, editing, renaming and deleting files, each a commit on a branch
// (GitLab's repository API); and the project page's overview (README, or how to start an empty one).
import { api, apiAll, apiPage, ApiError, enc } from './api.js'
import { commandLine, confirmDialog, errorBox, formatBytes, formValues, h, timeAgo, toast } from './dom.js'
import { navigate } from './nav.js'

const CI_FILE = '.gitlab-ci.yml'
/** Larger files are offered as a download rather than shown. */
const VIEW_MAX_BYTES = 1 << 20

/** `/-/projects/:id/repository[/kind]?ref=&path=` */
export function repoHref(projectId, kind, { ref, path } = {}) {
  const q = new URLSearchParams()
  if (ref) q.set('ref', ref)
  if (path) q.set('path', path)
  const s = q.toString()
  return `/-/projects/${projectId}/repository${kind ? `/${kind}` : ''}${s ? `?${s}` : ''}`
}

function query() {
  const q = new URLSearchParams(location.search)
  return { ref: q.get('ref') || undefined, path: (q.get('path') || '').replace(/^\/+|\/+$/g, '') }
}

const filesUrl = (projectId, path) => `/projects/${projectId}/repository/files/${enc(path)}`

/** Branches and tags (each at most the first 100), and the default branch (undefined: empty repository). */
async function refsOf(projectId) {
  const [branches, tags] = await Promise.all([
    apiPage(`/projects/${projectId}/repository/branches?per_page=100`),
    apiPage(`/projects/${projectId}/repository/tags?per_page=100`),
  ])
  return { branches: branches.items, tags: tags.items, defaultBranch: branches.items.find((b) => b.default)?.name }
}

/** A file at a ref: metadata and its bytes (undefined when there is no such file). */
async function readFileAt(projectId, ref, path) {
  try {
    const f = await api('GET', `${filesUrl(projectId, path)}?ref=${enc(ref)}`)
    return { ...f, bytes: Uint8Array.from(atob(f.content), (c) => c.charCodeAt(0)) }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined
    throw err
  }
}

/** Text, or undefined for binary content (a NUL byte, as git decides, or invalid UTF-8). */
function textOf(bytes) {
  if (bytes.subarray(0, 8000).includes(0)) return undefined
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes)
  } catch {
    return undefined
  }
}

/** base64 of UTF-8 text, so any content survives the JSON body byte for byte. */
function base64Of(text) {
  const bytes = new TextEncoder().encode(text)
  let bin = ''
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000))
  return btoa(bin)
}

/**
 * Markdown rendered by the server (POST /markdown: markdown-it with raw HTML off, so it holds only
 * markdown-it's own tags, with script URLs refused). This is the one place the app inserts HTML it did
 * not build node by node; the page's CSP forbids inline script as a second line. `at` is where the
 * file lives: its relative links open files of the repository, its relative images load them raw.
 */
export async function markdownBlock(text, label, at) {
  const { html } = await api('POST', '/markdown', { text, gfm: true })
  const doc = new DOMParser().parseFromString(html, 'text/html')
  const resolve = (href) => {
    try {
      const url = new URL(href, `http://repo/${at.dir ? `${at.dir}/` : ''}`)
      return url.origin === 'http://repo' ? decodeURIComponent(url.pathname.slice(1)) : undefined
    } catch {
      return undefined // a malformed URL stays as markdown-it wrote it
    }
  }
  for (const a of doc.querySelectorAll('a[href]')) {
    const href = a.getAttribute('href')
    if (/^([a-z][a-z0-9+.-]*:|\/|#)/i.test(href)) continue
    const path = resolve(href)
    if (path !== undefined) a.setAttribute('href', repoHref(at.projectId, path.endsWith('/') ? '' : 'blob', { ref: at.ref, path }))
  }
  for (const img of doc.querySelectorAll('img[src]')) {
    const src = img.getAttribute('src')
    if (/^([a-z][a-z0-9+.-]*:|\/)/i.test(src)) continue
    const path = resolve(src)
    if (path !== undefined) img.setAttribute('src', `/api/v4${filesUrl(at.projectId, path)}/raw?ref=${enc(at.ref)}`)
  }
  return h('article', { class: 'panel markdown', 'aria-label': label }, [...doc.body.childNodes])
}

function refSwitcher(project, refs, current, kind, path) {
  const select = h(
    'select',
    {
      id: 'ref-switch',
      onchange: () => navigate(repoHref(project.id, kind, { ref: select.value, path })),
    },
    h(
      'optgroup',
      { label: 'Branches' },
      refs.branches.map((b) => h('option', { value: b.name, selected: b.name === current }, b.name)),
    ),
    refs.tags.length
      ? h(
          'optgroup',
          { label: 'Tags' },
          refs.tags.map((t) => h('option', { value: t.name, selected: t.name === current }, t.name)),
        )
      : null,
    [...refs.branches, ...refs.tags].some((r) => r.name === current) ? null : h('option', { value: current, selected: true }, current),
  )
  return h('span', { class: 'row' }, h('label', { for: 'ref-switch', class: 'inline' }, 'Branch or tag'), select)
}

function breadcrumbs(project, ref, path, kind) {
  const parts = path ? path.split('/') : []
  return h(
    'nav',
    { class: 'crumbs mono', 'aria-label': 'Path' },
    h('a', { href: repoHref(project.id, '', { ref }) }, project.path),
    parts.map((part, i) => {
      const sub = parts.slice(0, i + 1).join('/')
      const last = i === parts.length - 1
      return [
        ' / ',
        last
          ? h('span', { 'aria-current': 'page' }, part)
          : h('a', { href: repoHref(project.id, kind === 'blob' && last ? 'blob' : '', { ref, path: sub }) }, part),
      ]
    }),
  )
}

// ---- The tab: tree, README, branches and tags ----

export async function repositoryTab(project) {
  let refs
  try {
    refs = await refsOf(project.id)
  } catch (err) {
    // A Guest of a private project may not read its code: the clone URL and the API's reason.
    if (!(err instanceof ApiError) || err.status === 401) throw err
    return [cloneSection(project), errorBox(err)]
  }
  if (!refs.defaultBranch && refs.branches.length === 0) return emptyRepository(project)
  const { ref = refs.defaultBranch ?? refs.branches[0].name, path } = query()
  let entries
  try {
    entries = await apiAll(`/projects/${project.id}/repository/tree?ref=${enc(ref)}&path=${enc(path)}&per_page=100`)
  } catch (err) {
    return [h('h2', {}, 'Files'), errorBox(err), h('p', {}, h('a', { href: repoHref(project.id) }, 'Back to the default branch'))]
  }
  entries.sort((a, b) => (a.type === b.type ? a.name.localeCompare(b.name) : a.type === 'tree' ? -1 : 1))
  const onBranch = refs.branches.some((b) => b.name === ref)
  const readme = entries.find((e) => e.type === 'blob' && /^readme(\.md|\.markdown)?$/i.test(e.name))
  const hasCi = !path && entries.some((e) => e.name === CI_FILE)
  const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''
  const out = [
    h(
      'div',
      { class: 'spread' },
      refSwitcher(project, refs, ref, '', path),
      h(
        'div',
        { class: 'row' },
        onBranch ? h('a', { class: 'button', href: repoHref(project.id, 'new', { ref, path }) }, 'New file') : null,
        onBranch && !path
          ? h('a', { class: 'button secondary', href: ciEditorHref(project.id, ref) }, hasCi ? 'Edit CI' : 'Set up CI')
          : null,
        h('a', { class: 'button secondary', href: repoHref(project.id, 'commits', { ref, path }) }, 'History'),
      ),
    ),
    breadcrumbs(project, ref, path, 'tree'),
    h(
      'section',
      { 'aria-labelledby': 'files-title' },
      h('h2', { id: 'files-title', class: 'visually-hidden' }, 'Files'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { 'aria-labelledby': 'files-title' },
          h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', { class: 'hide-narrow' }, 'Type'))),
          h(
            'tbody',
            {},
            path
              ? h(
                  'tr',
                  {},
                  h('td', {}, h('a', { href: repoHref(project.id, '', { ref, path: parent }) }, '..')),
                  h('td', { class: 'hide-narrow' }, ''),
                )
              : null,
            entries.map((e) =>
              h(
                'tr',
                {},
                h(
                  'td',
                  { class: 'mono' },
                  h(
                    'a',
                    { href: repoHref(project.id, e.type === 'tree' ? '' : 'blob', { ref, path: e.path }) },
                    e.type === 'tree' ? `${e.name}/` : e.name,
                  ),
                ),
                h('td', { class: 'hide-narrow muted' }, e.type === 'tree' ? 'folder' : e.type === 'commit' ? 'submodule' : 'file'),
              ),
            ),
          ),
        ),
      ),
    ),
  ]
  if (readme) {
    const f = await readFileAt(project.id, ref, readme.path)
    const text = f && textOf(f.bytes)
    if (text !== undefined)
      out.push(
        /\.(md|markdown)$/i.test(readme.name)
          ? await markdownBlock(text, readme.name, { projectId: project.id, ref, dir: path })
          : h('pre', { class: 'panel' }, text),
      )
  }
  if (!path) out.push(cloneSection(project), ...refTables(refs))
  return out
}

function cloneSection(project) {
  return h(
    'section',
    { class: 'panel', 'aria-labelledby': 'clone-title' },
    h('h2', { id: 'clone-title' }, 'Clone'),
    commandLine(`git clone ${project.http_url_to_repo}`),
  )
}

function refTables(refs) {
  return [
    h(
      'section',
      { 'aria-labelledby': 'branches-title' },
      h('h2', { id: 'branches-title' }, 'Branches'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h('thead', {}, h('tr', {}, h('th', {}, 'Branch'), h('th', {}, 'Last commit'), h('th', { class: 'hide-narrow' }, 'When'))),
          h(
            'tbody',
            {},
            refs.branches.map((b) =>
              h(
                'tr',
                {},
                h('td', { class: 'mono' }, b.name, b.default ? ' (default)' : ''),
                h('td', {}, h('code', {}, b.commit?.short_id ?? ''), ' ', b.commit?.title ?? ''),
                h('td', { class: 'hide-narrow' }, timeAgo(b.commit?.committed_date)),
              ),
            ),
          ),
        ),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'tags-title' },
      h('h2', { id: 'tags-title' }, 'Tags'),
      refs.tags.length
        ? h(
            'div',
            { class: 'table-wrap' },
            h(
              'table',
              {},
              h('thead', {}, h('tr', {}, h('th', {}, 'Tag'), h('th', {}, 'Commit'), h('th', { class: 'hide-narrow' }, 'When'))),
              h(
                'tbody',
                {},
                refs.tags.map((t) =>
                  h(
                    'tr',
                    {},
                    h('td', { class: 'mono' }, t.name),
                    h('td', {}, h('code', {}, t.commit?.short_id ?? ''), ' ', t.message || t.commit?.title || ''),
                    h('td', { class: 'hide-narrow' }, timeAgo(t.commit?.committed_date)),
                  ),
                ),
              ),
            ),
          )
        : h(
            'p',
            { class: 'panel' },
            'No tags yet. ',
            h('code', {}, 'git tag v1.0.0 && git push origin v1.0.0'),
            ' tags a release (and starts its pipeline).',
          ),
    ),
  ]
}

/** What an empty project shows: how to push an existing repository, and the first files to add here. */
function emptyRepository(project) {
  const url = project.http_url_to_repo
  return [
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'empty-title' },
      h('h2', { id: 'empty-title' }, 'The repository is empty'),
      h('p', {}, 'Add the first files here, each a commit on ', h('code', {}, 'main'), ':'),
      h(
        'div',
        { class: 'row' },
        h('a', { class: 'button', href: newFileHref(project.id, 'main', 'README.md') }, 'Add README'),
        h('a', { class: 'button secondary', href: newFileHref(project.id, 'main', 'Dockerfile') }, 'Add Dockerfile'),
        h('a', { class: 'button secondary', href: ciEditorHref(project.id, 'main') }, 'Set up CI'),
      ),
      h('h3', {}, 'Push an existing repository'),
      commandLine('cd existing_repo'),
      commandLine(`git remote add origin ${url}`),
      commandLine('git push -u origin --all && git push -u origin --tags'),
      h('h3', {}, 'Or start from a clone'),
      commandLine(`git clone ${url}`),
      h('p', { class: 'hint' }, 'A ', h('code', {}, CI_FILE), ' in a pushed branch starts a pipeline.'),
    ),
  ]
}

function newFileHref(projectId, ref, name) {
  return `${repoHref(projectId, 'new', { ref })}&name=${enc(name)}`
}

export function ciEditorHref(projectId, branch) {
  return `/-/projects/${projectId}/ci/editor${branch ? `?branch=${enc(branch)}` : ''}`
}

/** The project page's overview above its registry: the README, or an empty repository's first steps. */
export async function projectOverview(project) {
  let refs
  try {
    refs = await refsOf(project.id)
  } catch {
    return null // no read access to the repository (e.g. a Guest): the registry alone
  }
  if (refs.branches.length === 0) return h('div', { class: 'overview' }, emptyRepository(project))
  const ref = refs.defaultBranch ?? refs.branches[0].name
  const [readme, ci] = await Promise.all([readFileAt(project.id, ref, 'README.md'), readFileAt(project.id, ref, CI_FILE)])
  const text = readme && textOf(readme.bytes)
  return h(
    'div',
    { class: 'overview' },
    h(
      'div',
      { class: 'row' },
      h('a', { class: 'button secondary', href: repoHref(project.id, '', { ref }) }, 'Files'),
      h('a', { class: 'button secondary', href: repoHref(project.id, 'new', { ref }) }, 'New file'),
      readme ? null : h('a', { class: 'button secondary', href: newFileHref(project.id, ref, 'README.md') }, 'Add README'),
      h('a', { class: 'button secondary', href: ciEditorHref(project.id, ref) }, ci ? 'Edit CI' : 'Set up CI'),
    ),
    text !== undefined ? await markdownBlock(text, 'README.md', { projectId: project.id, ref, dir: '' }) : null,
  )
}

// ---- A file ----

export async function blobPage(project) {
  const refs = await refsOf(project.id)
  const { ref = refs.defaultBranch, path } = query()
  const f = ref && path ? await readFileAt(project.id, ref, path) : undefined
  if (!f) return [breadcrumbs(project, ref, path, 'blob'), errorBox(new Error(`There is no file ${path} at ${ref}.`))]
  const onBranch = refs.branches.some((b) => b.name === ref)
  const text = f.size <= VIEW_MAX_BYTES ? textOf(f.bytes) : undefined
  const raw = `/api/v4${filesUrl(project.id, path)}/raw?ref=${enc(ref)}`
  const deleteFile = async () => {
    const message = `Delete ${path}`
    if (!(await confirmDialog({ title: `Delete ${path}?`, body: `A commit "${message}" on ${ref} removes it.` }))) return
    try {
      await api('POST', `/projects/${project.id}/repository/commits`, {
        branch: ref,
        commit_message: message,
        actions: [{ action: 'delete', file_path: path, last_commit_id: f.last_commit_id }],
      })
      toast(`${path} deleted`)
      const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : ''
      navigate(repoHref(project.id, '', { ref, path: dir }))
    } catch (err) {
      status.replaceChildren(conflictBox(err, project, ref, path))
    }
  }
  const status = h('div')
  return [
    h(
      'div',
      { class: 'spread' },
      refSwitcher(project, refs, ref, 'blob', path),
      h(
        'div',
        { class: 'row' },
        onBranch && text !== undefined ? h('a', { class: 'button', href: repoHref(project.id, 'edit', { ref, path }) }, 'Edit') : null,
        onBranch ? h('button', { type: 'button', class: 'danger', onclick: deleteFile }, 'Delete') : null,
        h('a', { class: 'button secondary', href: repoHref(project.id, 'commits', { ref, path }) }, 'History'),
        h('a', { class: 'button secondary', href: raw, download: f.file_name }, 'Download'),
      ),
    ),
    breadcrumbs(project, ref, path, 'blob'),
    status,
    h(
      'p',
      { class: 'muted' },
      formatBytes(f.size),
      ' · last changed in ',
      h('a', { href: commitHref(project.id, f.last_commit_id) }, h('code', {}, f.last_commit_id.slice(0, 8))),
    ),
    text === undefined
      ? h(
          'p',
          { class: 'panel' },
          f.size > VIEW_MAX_BYTES ? 'This file is too large to show here. ' : 'This is a binary file. ',
          h('a', { href: raw, download: f.file_name }, 'Download it'),
          '.',
        )
      : /\.(md|markdown)$/i.test(path)
        ? await markdownBlock(text, path, {
            projectId: project.id,
            ref,
            dir: path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '',
          })
        : h('pre', { class: 'file', 'aria-label': path }, h('code', {}, text)),
  ]
}

/**
 * A failed write, said clearly: when the branch moved (the file changed since it was opened, or the
 * branch was updated by someone else meanwhile), what happened and how to go on; else the API's message.
 */
function conflictBox(err, project, ref, path) {
  const moved = err instanceof ApiError && (/has changed since you started editing/.test(err.message) || err.status === 409)
  if (!moved) return errorBox(err)
  return h(
    'div',
    { class: 'error', role: 'alert' },
    h('p', {}, h('strong', {}, `Someone changed ${path} on ${ref} since you opened it. `), err.message),
    h(
      'p',
      {},
      'Nothing was committed. Your text is still here: copy it, then ',
      h('a', { href: repoHref(project.id, 'blob', { ref, path }), target: '_blank' }, `open the current ${path}`),
      ' and ',
      h('a', { href: repoHref(project.id, 'commits', { ref, path }), target: '_blank' }, 'see what changed'),
      ', and apply your change to it.',
    ),
  )
}

// ---- New, edit and rename ----

export async function newFilePage(project) {
  return fileEditor(project, undefined)
}

export async function editFilePage(project) {
  const { ref, path } = query()
  const f = ref && path ? await readFileAt(project.id, ref, path) : undefined
  if (!f) return errorBox(new Error(`There is no file ${path} at ${ref}.`))
  const text = textOf(f.bytes)
  if (text === undefined) return errorBox(new Error(`${path} is a binary file; it cannot be edited here.`))
  return fileEditor(project, { ...f, text })
}

async function fileEditor(project, file) {
  const refs = await refsOf(project.id)
  const q = new URLSearchParams(location.search)
  const ref = q.get('ref') || refs.defaultBranch || 'main'
  const dir = file ? '' : (q.get('path') || '').replace(/^\/+|\/+$/g, '')
  const name = file ? file.file_path : `${dir ? `${dir}/` : ''}${q.get('name') ?? ''}`
  const error = h('div')
  const form = h(
    'form',
    { class: 'panel editor' },
    h('h2', {}, file ? `Edit ${file.file_path}` : 'New file'),
    error,
    h('label', { for: 'f-path' }, 'File path'),
    h('input', {
      type: 'text',
      id: 'f-path',
      name: 'path',
      required: true,
      value: name,
      class: 'mono',
      'aria-describedby': file ? 'f-path-hint' : null,
    }),
    file ? h('p', { class: 'hint', id: 'f-path-hint' }, 'Change the path to rename or move the file.') : null,
    h('label', { for: 'f-content' }, 'Content'),
    h('textarea', { id: 'f-content', name: 'content', rows: 18, class: 'mono', spellcheck: 'false' }),
    h('label', { for: 'f-message' }, 'Commit message'),
    h('input', {
      type: 'text',
      id: 'f-message',
      name: 'message',
      required: true,
      value: file ? `Update ${file.file_path}` : name ? `Add ${name}` : '',
    }),
    h('label', { for: 'f-branch' }, 'Target branch'),
    h('input', {
      type: 'text',
      id: 'f-branch',
      name: 'branch',
      required: true,
      value: ref,
      class: 'mono',
      'aria-describedby': 'f-branch-hint',
    }),
    h('p', { class: 'hint', id: 'f-branch-hint' }, 'Another name creates that branch from ', h('code', {}, ref), '.'),
    h(
      'p',
      { class: 'row' },
      h('button', { type: 'submit' }, 'Commit changes'),
      h(
        'a',
        {
          class: 'button secondary',
          href: file ? repoHref(project.id, 'blob', { ref, path: file.file_path }) : repoHref(project.id, '', { ref, path: dir }),
        },
        'Cancel',
      ),
    ),
  )
  const content = form.querySelector('#f-content')
  content.value = file ? file.text : ''
  const pathInput = form.querySelector('#f-path')
  const message = form.querySelector('#f-message')
  if (!file)
    pathInput.addEventListener('input', () => {
      if (!message.dataset.touched) message.value = `Add ${pathInput.value}`
    })
  message.addEventListener('input', () => (message.dataset.touched = '1'))
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    const path = v.path.trim().replace(/^\/+/, '')
    const body = { branch: v.branch.trim(), commit_message: v.message }
    // A new branch starts from the ref being edited (an empty repository has none yet).
    if (body.branch !== ref && refs.branches.some((b) => b.name === ref)) body.start_branch = ref
    const action = !file
      ? { action: 'create', file_path: path }
      : path !== file.file_path
        ? { action: 'move', file_path: path, previous_path: file.file_path, last_commit_id: file.last_commit_id }
        : { action: 'update', file_path: path, last_commit_id: file.last_commit_id }
    try {
      await api('POST', `/projects/${project.id}/repository/commits`, {
        ...body,
        actions: [{ ...action, content: base64Of(content.value), encoding: 'base64' }],
      })
      toast(`Committed to ${body.branch}`)
      navigate(repoHref(project.id, 'blob', { ref: body.branch, path }))
    } catch (err) {
      error.replaceChildren(file ? conflictBox(err, project, ref, file.file_path) : errorBox(err))
    }
  })
  queueMicrotask(() => (file ? content : pathInput.value.endsWith('/') || !pathInput.value ? pathInput : content).focus())
  return [breadcrumbs(project, ref, file ? file.file_path : dir, file ? 'blob' : 'tree'), form]
}

// ---- History and one commit ----

function commitHref(projectId, sha) {
  return `/-/projects/${projectId}/repository/commits/${sha}`
}

export async function commitsPage(project) {
  const refs = await refsOf(project.id)
  const { ref = refs.defaultBranch, path } = query()
  const page = Number(new URLSearchParams(location.search).get('page')) || 1
  if (!ref) return h('p', { class: 'panel' }, 'The repository is empty: no commits yet.')
  const list = await apiPage(
    `/projects/${project.id}/repository/commits?ref_name=${enc(ref)}${path ? `&path=${enc(path)}` : ''}&per_page=30&page=${page}`,
  )
  const pageHref = (n) => `${repoHref(project.id, 'commits', { ref, path })}&page=${n}`
  return [
    h('div', { class: 'spread' }, refSwitcher(project, refs, ref, 'commits', path), path ? h('span', { class: 'mono' }, path) : null),
    h(
      'section',
      { 'aria-labelledby': 'commits-title' },
      h('h2', { id: 'commits-title' }, 'Commits'),
      h(
        'ul',
        { class: 'cards', 'aria-label': 'Commits' },
        list.items.map((c) =>
          h(
            'li',
            {},
            h('div', { class: 'spread' }, h('a', { href: commitHref(project.id, c.id) }, c.title), h('code', {}, c.short_id)),
            h('span', { class: 'muted' }, c.author_name, ' · ', timeAgo(c.committed_date)),
          ),
        ),
      ),
      h(
        'p',
        { class: 'row' },
        page > 1 ? h('a', { href: pageHref(page - 1) }, 'Newer') : null,
        page < list.totalPages ? h('a', { href: pageHref(page + 1) }, 'Older') : null,
      ),
    ),
  ]
}

export async function commitPage(project, sha) {
  const [c, diffs] = await Promise.all([
    api('GET', `/projects/${project.id}/repository/commits/${enc(sha)}`),
    apiAll(`/projects/${project.id}/repository/commits/${enc(sha)}/diff?per_page=100`),
  ])
  return [
    h(
      'section',
      { class: 'panel', 'aria-labelledby': 'commit-title' },
      h('h2', { id: 'commit-title' }, c.title),
      c.message.trim() !== c.title ? h('pre', { class: 'message' }, c.message.trim()) : null,
      h('p', { class: 'muted' }, c.author_name, ' authored ', timeAgo(c.authored_date), ' · ', h('code', {}, c.id)),
      h(
        'p',
        { class: 'muted' },
        c.parent_ids.length
          ? ['Parent ', c.parent_ids.map((p) => h('a', { href: commitHref(project.id, p) }, h('code', {}, p.slice(0, 8))))]
          : 'Root commit',
        c.stats ? ` · ${c.stats.additions} additions, ${c.stats.deletions} deletions` : '',
        ' · ',
        h('a', { href: repoHref(project.id, '', { ref: c.id }) }, 'Browse files'),
      ),
    ),
    h(
      'section',
      { 'aria-labelledby': 'diff-title' },
      h('h2', { id: 'diff-title' }, `Changes (${diffs.length} ${diffs.length === 1 ? 'file' : 'files'})`),
      diffs.map((d) => diffBlock(project, c.id, d)),
    ),
  ]
}

function diffBlock(project, sha, d) {
  const title = d.renamed_file ? `${d.old_path} → ${d.new_path}` : d.new_path
  const what = d.new_file ? 'added' : d.deleted_file ? 'deleted' : d.renamed_file ? 'renamed' : 'changed'
  return h(
    'article',
    { class: 'diff', 'aria-label': title },
    h(
      'div',
      { class: 'spread' },
      h('strong', { class: 'mono' }, title),
      h(
        'span',
        {},
        h('span', { class: 'badge' }, what),
        ' ',
        d.deleted_file ? null : h('a', { href: repoHref(project.id, 'blob', { ref: sha, path: d.new_path }) }, 'View file'),
      ),
    ),
    d.diff
      ? h(
          'pre',
          {},
          d.diff
            .replace(/\n$/, '')
            .split('\n')
            .map((line) =>
              h(
                'span',
                { class: line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : line.startsWith('@@') ? 'hunk' : '' },
                `${line}\n`,
              ),
            ),
        )
      : h('p', { class: 'muted' }, 'No textual change (binary file, or mode only).'),
  )
}
