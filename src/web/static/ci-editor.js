// The CI editor: `.gitlab-ci.yml` of a branch, started from a built-in template if wanted, checked by
// CI lint (Wharf's own parser: the errors a pipeline would get) before it is committed, with the
// merged YAML (includes and `extends` expanded) to read. The commit starts the branch's pipeline.
import { api, apiPage, ApiError, enc } from './api.js'
import { errorBox, formValues, h, toast } from './dom.js'
import { navigate } from './nav.js'

const CI_FILE = '.gitlab-ci.yml'

async function readCiFile(projectId, branch) {
  try {
    const f = await api('GET', `/projects/${projectId}/repository/files/${enc(CI_FILE)}?ref=${enc(branch)}`)
    const bytes = Uint8Array.from(atob(f.content), (c) => c.charCodeAt(0))
    return { text: new TextDecoder().decode(bytes), lastCommitId: f.last_commit_id }
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) return undefined
    throw err
  }
}

export async function ciEditorPage(project) {
  const [branches, templates] = await Promise.all([
    apiPage(`/projects/${project.id}/repository/branches?per_page=100`),
    apiPage('/templates/gitlab_ci_ymls?per_page=100'),
  ])
  const defaultBranch = branches.items.find((b) => b.default)?.name
  const branch = new URLSearchParams(location.search).get('branch') || defaultBranch || 'main'
  const exists = branches.items.some((b) => b.name === branch)
  const current = exists ? await readCiFile(project.id, branch) : undefined

  const result = h('div', { id: 'lint-result' })
  const merged = h(
    'pre',
    { class: 'file', 'aria-label': 'Merged YAML' },
    h('code', {}, 'Validate to see the configuration with includes and extends expanded.'),
  )
  const form = h(
    'form',
    { class: 'panel editor' },
    h('label', { for: 'ci-template' }, 'Choose a template'),
    h(
      'select',
      { id: 'ci-template', name: 'template' },
      h('option', { value: '' }, current ? '(keep the current file)' : '(none: start empty)'),
      templates.items.map((t) => h('option', { value: t.key }, t.name)),
    ),
    h('label', { for: 'ci-content' }, CI_FILE),
    h('textarea', { id: 'ci-content', name: 'content', rows: 22, class: 'mono', spellcheck: 'false' }),
    h('p', { class: 'row' }, h('button', { type: 'button', class: 'secondary', id: 'ci-validate' }, 'Validate')),
    result,
    h('label', { for: 'ci-message' }, 'Commit message'),
    h('input', {
      type: 'text',
      id: 'ci-message',
      name: 'message',
      required: true,
      value: current ? `Update ${CI_FILE}` : `Add ${CI_FILE}`,
    }),
    h('label', { for: 'ci-branch' }, 'Target branch'),
    h('input', { type: 'text', id: 'ci-branch', name: 'branch', required: true, value: branch, class: 'mono' }),
    h('p', { class: 'row' }, h('button', { type: 'submit' }, 'Commit changes')),
  )
  const content = form.querySelector('#ci-content')
  content.value = current?.text ?? ''
  const select = form.querySelector('#ci-template')
  select.addEventListener('change', async () => {
    if (!select.value) {
      content.value = current?.text ?? ''
      return
    }
    try {
      const t = await api('GET', `/templates/gitlab_ci_ymls/${enc(select.value)}`)
      content.value = t.content
      result.replaceChildren()
    } catch (err) {
      result.replaceChildren(errorBox(err))
    }
  })

  /** CI lint of the text as a pipeline of the branch would plan it; shows the outcome and the merged YAML. */
  const validate = async () => {
    if (!exists) {
      result.replaceChildren(
        h('p', { class: 'hint' }, `${branch} has no commit yet, so the file is checked when its first pipeline is created.`),
      )
      return true
    }
    const lint = await api('POST', `/projects/${project.id}/ci/lint`, { content: content.value, ref: branch, include_jobs: true })
    merged.firstChild.textContent = lint.merged_yaml ?? '(the file did not get as far as expanding includes and extends)'
    result.replaceChildren(
      lint.valid
        ? h(
            'p',
            { class: 'ok', role: 'status' },
            `This GitLab CI configuration is valid: ${lint.jobs.length} ${lint.jobs.length === 1 ? 'job' : 'jobs'} for ${branch} (`,
            lint.jobs.map((j) => j.name).join(', '),
            ').',
          )
        : h(
            'div',
            { class: 'error', role: 'alert' },
            h('p', {}, 'This GitLab CI configuration is invalid:'),
            h(
              'ul',
              {},
              lint.errors.map((e) => h('li', {}, e)),
            ),
          ),
    )
    return lint.valid
  }
  form.querySelector('#ci-validate').addEventListener('click', async () => {
    try {
      await validate()
    } catch (err) {
      result.replaceChildren(errorBox(err))
    }
  })
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    const v = formValues(form)
    try {
      if (!(await validate())) return
      const target = v.branch.trim()
      const body = {
        branch: target,
        commit_message: v.message,
        actions: [
          current
            ? { action: 'update', file_path: CI_FILE, content: v.content, last_commit_id: current.lastCommitId }
            : { action: 'create', file_path: CI_FILE, content: v.content },
        ],
      }
      if (target !== branch && exists) body.start_branch = branch
      await api('POST', `/projects/${project.id}/repository/commits`, body)
      toast(`Committed ${CI_FILE} to ${target}`)
      navigate(`/-/projects/${project.id}/pipelines`)
    } catch (err) {
      result.replaceChildren(
        err instanceof ApiError && /has changed since you started editing/.test(err.message)
          ? h(
              'div',
              { class: 'error', role: 'alert' },
              h('p', {}, h('strong', {}, `Someone changed ${CI_FILE} on ${branch} since you opened it. `), err.message),
              h('p', {}, 'Nothing was committed. Copy your text, reload this page for the current file, and apply your change to it.'),
            )
          : errorBox(err),
      )
    }
  })
  return [
    h('h2', {}, exists ? `CI configuration of ${branch}` : 'Set up CI'),
    h('p', { class: 'muted' }, 'A commit of ', h('code', {}, CI_FILE), ' starts a pipeline on that branch.'),
    form,
    h('section', { 'aria-labelledby': 'merged-title' }, h('h2', { id: 'merged-title' }, 'Merged YAML'), merged),
  ]
}
