// The project's Registry tab: how to push when empty; images, their tags, copy-pull, delete-one-tag, bulk
// delete with its preview, delete-image; a warning over the soft quota.
import { api, enc } from './api.js'
import { commandLine, confirmDialog, copyButton, errorBox, formatBytes, formValues, h, timeAgo, toast } from './dom.js'
import { navigate } from './nav.js'
import { quotaWarning } from './registry-settings.js'

const TAGS_PER_PAGE = 20

export function registryHost(project) {
  return project.container_registry_image_prefix.split('/')[0]
}

/** The commands for this server and this project, and the CI job that builds with the job token. */
function pushInstructions(project) {
  const host = registryHost(project)
  const image = project.container_registry_image_prefix
  // The 2016 docker-in-docker template, as the README's "CI and runners" runs it.
  const ci = [
    'image: docker:latest',
    'services:',
    '  - docker:dind',
    'build:',
    '  script:',
    '    - docker login -u gitlab-ci-token -p "$CI_BUILD_TOKEN" $CI_REGISTRY',
    '    - docker build --pull -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .',
    '    - docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"',
  ].join('\n')
  return [
    h(
      'ol',
      { class: 'steps' },
      h(
        'li',
        {},
        h(
          'p',
          {},
          'Sign in to the registry with your username and password (or a personal access token with the ',
          h('code', {}, 'write_registry'),
          ' scope):',
        ),
        commandLine(`docker login ${host}`),
      ),
      h('li', {}, h('p', {}, 'Build an image named after this project (names are lowercase):'), commandLine(`docker build -t ${image} .`)),
      h('li', {}, h('p', {}, 'Push it:'), commandLine(`docker push ${image}`)),
    ),
    h('p', {}, 'Images below the project path work too, e.g. ', h('code', {}, `${image}/api:1.0`), '.'),
    h('h3', {}, 'From CI'),
    h('p', {}, 'Jobs get a registry token of their own: nothing to configure. Add to ', h('code', {}, '.gitlab-ci.yml'), ':'),
    h('div', { class: 'cmd' }, h('pre', { class: 'snippet' }, ci), copyButton(ci, 'Copy CI snippet')),
    h(
      'p',
      {},
      'It runs on a ',
      h('code', {}, 'wharf runner'),
      ' with the Docker executor and the docker-in-docker privileges (',
      h('code', {}, 'wharf runner help'),
      '). When this server runs a registry mirror (',
      h('code', {}, 'wharf serve --mirror-listen'),
      '), the runner pulls Docker Hub images, and the ',
      h('code', {}, 'docker:dind'),
      ' daemon its own, through this server’s cache: Docker Hub sees each image once.',
    ),
  ]
}

export async function registryTab(project) {
  const repos = await api('GET', `/projects/${project.id}/registry/repositories?tags=true&tags_count=true&size=true&per_page=100`)
  if (repos.length === 0) {
    return h(
      'section',
      { class: 'panel', 'aria-labelledby': 'reg-empty' },
      h('h2', { id: 'reg-empty' }, 'No container images yet'),
      h('p', {}, 'This project’s registry is ', h('code', {}, project.container_registry_image_prefix), '. Push an image:'),
      pushInstructions(project),
    )
  }
  const wanted = Number(new URLSearchParams(location.search).get('repository'))
  const current = repos.find((r) => r.id === wanted) ?? repos[0]
  return [
    await quotaWarning(project),
    h(
      'section',
      { 'aria-labelledby': 'images-title' },
      h('h2', { id: 'images-title' }, 'Images'),
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          {},
          h(
            'thead',
            {},
            h('tr', {}, h('th', {}, 'Image'), h('th', {}, 'Tags'), h('th', {}, 'Size'), h('th', { class: 'hide-narrow' }, 'Created')),
          ),
          h(
            'tbody',
            {},
            repos.map((r) =>
              h(
                'tr',
                {},
                h(
                  'td',
                  {},
                  h(
                    'a',
                    { href: `/-/projects/${project.id}/registry?repository=${r.id}`, 'aria-current': r.id === current.id ? 'true' : null },
                    r.location,
                  ),
                ),
                h('td', {}, String(r.tags_count)),
                h('td', { title: 'distinct layers and configs of the tagged images' }, r.size === undefined ? '' : formatBytes(r.size)),
                h('td', { class: 'hide-narrow' }, timeAgo(r.created_at)),
              ),
            ),
          ),
        ),
      ),
    ),
    tagsSection(project, current),
    h('details', { class: 'panel' }, h('summary', {}, 'How to push another image'), pushInstructions(project)),
  ]
}

function tagsSection(project, repo) {
  const all = repo.tags.map((t) => t.name).sort((a, b) => a.localeCompare(b))
  let filter = ''
  let page = 1
  const list = h('div')
  const pager = h('div', { class: 'pager' })
  const search = h('input', { type: 'search', id: 'tag-filter', placeholder: 'Filter tags', 'aria-label': 'Filter tags' })
  let seq = 0

  const draw = async () => {
    const mine = ++seq
    const shown = filter ? all.filter((t) => t.toLowerCase().includes(filter.toLowerCase())) : all
    const pages = Math.max(1, Math.ceil(shown.length / TAGS_PER_PAGE))
    page = Math.min(page, pages)
    const slice = shown.slice((page - 1) * TAGS_PER_PAGE, page * TAGS_PER_PAGE)
    pager.replaceChildren(
      h(
        'span',
        { class: 'muted' },
        `${shown.length} tag${shown.length === 1 ? '' : 's'}${filter ? ` matching “${filter}”` : ''} · page ${page} of ${pages}`,
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          disabled: page <= 1,
          onclick: () => {
            page--
            draw()
          },
        },
        'Previous',
      ),
      h(
        'button',
        {
          type: 'button',
          class: 'secondary small',
          disabled: page >= pages,
          onclick: () => {
            page++
            draw()
          },
        },
        'Next',
      ),
    )
    if (slice.length === 0) {
      list.replaceChildren(h('p', { class: 'panel' }, all.length ? 'No tag matches this filter.' : 'This image has no tags.'))
      return
    }
    const details = await Promise.all(
      slice.map((t) =>
        api('GET', `/projects/${project.id}/registry/repositories/${repo.id}/tags/${enc(t)}`).catch((err) => ({ name: t, error: err })),
      ),
    )
    if (mine !== seq) return
    list.replaceChildren(
      h(
        'div',
        { class: 'table-wrap' },
        h(
          'table',
          { 'aria-label': `Tags of ${repo.location}` },
          h(
            'thead',
            {},
            h(
              'tr',
              {},
              h('th', {}, 'Tag'),
              h('th', {}, 'Digest'),
              h('th', {}, 'Size'),
              h('th', { class: 'hide-narrow' }, 'Created'),
              h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
            ),
          ),
          h(
            'tbody',
            {},
            details.map((t) => tagRow(project, repo, t)),
          ),
        ),
      ),
    )
  }

  search.addEventListener('input', () => {
    filter = search.value.trim()
    page = 1
    draw()
  })
  draw()
  return h(
    'section',
    { 'aria-labelledby': 'tags-title' },
    h(
      'div',
      { class: 'spread' },
      h('h2', { id: 'tags-title' }, 'Tags of ', h('code', {}, repo.location)),
      h('div', { class: 'row' }, search, deleteImageButton(project, repo)),
    ),
    list,
    pager,
    bulkDelete(project, repo),
  )
}

/** GitLab's bulk tag delete, previewed first: the tags it would delete and why, then a confirmed delete. */
function bulkDelete(project, repo) {
  const base = `/projects/${project.id}/registry/repositories/${repo.id}/tags`
  const error = h('div')
  const result = h('div', { 'aria-live': 'polite' })
  const field = (id, name, label, attrs = {}) => [h('label', { for: id }, label), h('input', { id, name, ...attrs })]
  const form = h(
    'form',
    {},
    error,
    field('bulk-regex', 'name_regex_delete', 'Delete tags matching (RE2, whole name)', { type: 'text', required: true, value: '.*' }),
    field('bulk-keep', 'name_regex_keep', 'Keep tags matching (optional)', { type: 'text' }),
    field('bulk-keep-n', 'keep_n', 'Keep the newest (optional)', { type: 'number', min: 0 }),
    field('bulk-older', 'older_than', 'Only tags older than (optional: 1h, 7d, 1month)', { type: 'text' }),
    h('p', {}, h('button', { type: 'submit', class: 'secondary' }, 'Preview')),
  )
  const rules = () => {
    const v = formValues(form)
    return {
      name_regex_delete: v.name_regex_delete,
      ...(v.name_regex_keep ? { name_regex_keep: v.name_regex_keep } : {}),
      ...(v.keep_n ? { keep_n: Number(v.keep_n) } : {}),
      ...(v.older_than ? { older_than: v.older_than } : {}),
    }
  }
  form.addEventListener('submit', async (e) => {
    e.preventDefault()
    error.replaceChildren()
    const r = rules()
    try {
      const plan = await api('POST', `${base}/preview`, r)
      const row = (t, action) =>
        h('tr', { 'data-bulk': t.name }, h('td', { class: 'mono' }, t.name), h('td', {}, action), h('td', {}, t.reason))
      const del = async () => {
        const n = plan.delete.length
        if (
          !(await confirmDialog({
            title: `Delete ${n} tag${n === 1 ? '' : 's'}?`,
            body: `From ${repo.location}, as previewed.`,
            confirm: 'Delete tags',
          }))
        )
          return
        try {
          await api('DELETE', `${base}?${new URLSearchParams(Object.entries(r).map(([k, v]) => [k, String(v)]))}`)
          toast(`Deleted the matching tags of ${repo.location}`)
          navigate(location.pathname + location.search, { replace: true })
        } catch (err) {
          error.replaceChildren(errorBox(err))
        }
      }
      result.replaceChildren(
        h('h3', {}, `Preview: ${plan.delete.length} tag${plan.delete.length === 1 ? '' : 's'} would be deleted`),
        plan.delete.length + plan.keep.length
          ? h(
              'div',
              { class: 'table-wrap' },
              h(
                'table',
                { 'aria-label': 'Bulk delete preview' },
                h('thead', {}, h('tr', {}, h('th', {}, 'Tag'), h('th', {}, 'Action'), h('th', {}, 'Why'))),
                h(
                  'tbody',
                  {},
                  plan.delete.map((t) => row(t, 'delete')),
                  plan.keep.map((t) => row(t, 'keep')),
                ),
              ),
            )
          : null,
        plan.delete.length ? h('p', {}, h('button', { type: 'button', class: 'danger', onclick: del }, 'Delete previewed tags')) : null,
      )
    } catch (err) {
      error.replaceChildren(errorBox(err))
    }
  })
  return h('details', { class: 'panel' }, h('summary', {}, 'Delete tags by pattern'), form, result)
}

/** Deletes the image repository with all its tags (maintainers; the API refuses others). */
function deleteImageButton(project, repo) {
  return h(
    'button',
    {
      type: 'button',
      class: 'danger small',
      'aria-label': `Delete image ${repo.location}`,
      onclick: async () => {
        const n = repo.tags_count
        const ok = await confirmDialog({
          title: `Delete image ${repo.location}?`,
          body: `Its ${n} tag${n === 1 ? '' : 's'} and manifests are deleted now; layers no other image uses are freed by garbage collection. Pulls of this image stop working.`,
          confirm: 'Delete image',
        })
        if (!ok) return
        try {
          await api('DELETE', `/projects/${project.id}/registry/repositories/${repo.id}`)
          toast(`Image ${repo.location} deleted`)
          navigate(`/-/projects/${project.id}/registry`, { replace: true })
        } catch (err) {
          toast(err.message)
        }
      },
    },
    'Delete image',
  )
}

function tagRow(project, repo, t) {
  const pull = `docker pull ${repo.location}:${t.name}`
  if (t.error) return h('tr', { 'data-tag': t.name }, h('td', { class: 'mono' }, t.name), h('td', { colspan: 4 }, errorBox(t.error)))
  const short = t.digest ? t.digest.replace(/^sha256:/, '').slice(0, 12) : ''
  return h(
    'tr',
    { 'data-tag': t.name },
    h('td', { class: 'mono' }, t.name, t.platforms?.length ? h('div', { class: 'muted' }, t.platforms.join(', ')) : null),
    h('td', { class: 'mono', title: t.digest }, short),
    h('td', {}, formatBytes(t.total_size)),
    h('td', { class: 'hide-narrow' }, timeAgo(t.created_at)),
    h(
      'td',
      {},
      h(
        'div',
        { class: 'row' },
        copyButton(pull, `Copy pull command for ${t.name}`),
        h(
          'button',
          {
            type: 'button',
            class: 'secondary small',
            'aria-label': `History of tag ${t.name}`,
            onclick: () => tagHistory(project, repo, t),
          },
          'History',
        ),
        h(
          'button',
          {
            type: 'button',
            class: 'danger small',
            'aria-label': `Delete tag ${t.name}`,
            onclick: async () => {
              const ok = await confirmDialog({
                title: `Delete tag ${t.name}?`,
                body: `Only the tag ${repo.location}:${t.name} is removed. Other tags of the same image (${short}) stay.`,
                confirm: 'Delete tag',
              })
              if (!ok) return
              try {
                await api('DELETE', `/projects/${project.id}/registry/repositories/${repo.id}/tags/${enc(t.name)}`)
                toast(`Tag ${t.name} deleted`)
                navigate(location.pathname + location.search, { replace: true })
              } catch (err) {
                toast(err.message)
              }
            },
          },
          'Delete',
        ),
      ),
    ),
  )
}

/** A tag's pushes (who or which CI job, when, which digest) in a dialog, each earlier digest with a way back to it. */
async function tagHistory(project, repo, t) {
  const base = `/projects/${project.id}/registry/repositories/${repo.id}/tags/${enc(t.name)}`
  let entries
  try {
    entries = await api('GET', `${base}/history?per_page=50`)
  } catch (err) {
    return toast(err.message)
  }
  const who = (e) => (e.job_id ? `job ${e.job_id} (pipeline ${e.pipeline_id}, ${e.ref_type} ${e.ref})` : (e.actor ?? 'unknown'))
  const close = () => {
    d.close()
    d.remove()
  }
  const restore = async (e) => {
    try {
      await api('POST', `${base}/restore`, { digest: e.digest })
      close()
      toast(`Tag ${t.name} points at ${e.digest.slice(7, 19)} again`)
      navigate(location.pathname + location.search, { replace: true })
    } catch (err) {
      toast(err.message)
    }
  }
  const d = h(
    'dialog',
    { 'aria-labelledby': 'history-title' },
    h('h2', { id: 'history-title' }, `History of ${repo.location}:${t.name}`),
    entries.length
      ? h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'aria-label': `Pushes of ${t.name}` },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'Digest'),
                h('th', {}, 'Pushed'),
                h('th', {}, 'By'),
                h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
              ),
            ),
            h(
              'tbody',
              {},
              entries.map((e) =>
                h(
                  'tr',
                  { 'data-digest': e.digest },
                  h('td', { class: 'mono', title: e.digest }, e.digest.replace(/^sha256:/, '').slice(0, 12)),
                  h('td', {}, timeAgo(e.pushed_at)),
                  h('td', {}, who(e)),
                  h(
                    'td',
                    {},
                    e.digest === t.digest
                      ? h('span', { class: 'muted' }, 'current')
                      : h('button', { type: 'button', class: 'small', onclick: () => restore(e) }, 'Point tag here'),
                  ),
                ),
              ),
            ),
          ),
        )
      : h('p', {}, 'No recorded pushes (the tag predates tag history).'),
    h('div', { class: 'row' }, h('button', { type: 'button', class: 'secondary', onclick: close }, 'Close')),
  )
  d.addEventListener('cancel', close)
  document.body.append(d)
  d.showModal()
}
