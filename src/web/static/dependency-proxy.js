// The group page's "Dependency proxy" section: how to pull Docker Hub images through the group's
// cache (docker and CI), what the cache holds, the purge (owners and administrators, as GitLab), and
// for administrators the upstreams' last reported rate limits.
import { api, apiAll } from './api.js'
import { commandLine, confirmDialog, copyButton, formatBytes, h, timeAgo, toast } from './dom.js'
import { section } from './settings.js'
import { state } from './state.js'

/** GitLab's Owner level: DELETE /groups/:id/dependency_proxy/cache requires it. */
const OWNER = 50

export function dependencyProxySection(group) {
  return section(
    'dependency-proxy-title',
    'Dependency proxy',
    'Docker Hub images pulled through this group are cached here: every later pull, and every CI job, is served from the cache.',
    async (reload) => {
      const prefix = `${location.host}/${group.full_path}/dependency_proxy/containers`
      const ci = `image: \${CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX}/alpine:3`
      const [cache, canPurge, upstreams] = await Promise.all([
        api('GET', `/groups/${group.id}/dependency_proxy/cache`),
        mayPurge(group),
        state.user?.is_admin ? api('GET', '/dependency_proxy/upstreams') : null,
      ])
      return [
        h('p', {}, 'Pull through it (sign in with ', h('code', {}, `docker login ${location.host}`), ' first):'),
        commandLine(`docker pull ${prefix}/alpine:3`),
        h('p', {}, 'In ', h('code', {}, '.gitlab-ci.yml'), ' (jobs sign in by themselves; the prefix names the job’s top-level group):'),
        h('div', { class: 'cmd' }, h('code', {}, ci), copyButton(ci, 'Copy CI line')),
        cacheTable(cache),
        canPurge && cache.images.length
          ? h('p', {}, h('button', { type: 'button', class: 'danger', onclick: () => purge(group, cache, reload) }, 'Purge cache'))
          : null,
        upstreams ? upstreamTable(upstreams) : null,
      ]
    },
  )
}

/** Owners of the group (directly or from a group above) and administrators. */
async function mayPurge(group) {
  if (!state.user) return false
  if (state.user.is_admin) return true
  const members = await apiAll(`/groups/${group.id}/members/all?per_page=100`)
  return (members.find((m) => m.id === state.user.id)?.access_level ?? 0) >= OWNER
}

function cacheTable(cache) {
  if (cache.images.length === 0) return h('p', { class: 'panel', id: 'dependency-proxy-empty' }, 'Nothing cached yet.')
  return [
    h('p', { class: 'muted' }, `${cache.images.length} image${cache.images.length === 1 ? '' : 's'}, ${formatBytes(cache.size)} in all`),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'aria-label': 'Cached images' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Image'), h('th', {}, 'Tags'), h('th', {}, 'Size'), h('th', {}, 'Last pull'))),
        h(
          'tbody',
          {},
          cache.images.map((i) =>
            h(
              'tr',
              { 'data-image': i.name },
              h('td', { class: 'mono' }, i.upstream === 'docker.io' ? i.name : `${i.upstream}/${i.name}`),
              h('td', { class: 'mono' }, i.tags.length ? i.tags.map((t) => t.name).join(', ') : '—'),
              h('td', {}, formatBytes(i.size)),
              h('td', {}, timeAgo(i.last_pulled_at)),
            ),
          ),
        ),
      ),
    ),
  ]
}

async function purge(group, cache, reload) {
  const ok = await confirmDialog({
    title: 'Purge the dependency proxy cache?',
    body: `The ${cache.images.length} cached image${cache.images.length === 1 ? '' : 's'} of ${group.full_path} are removed; the next pull fetches from Docker Hub again. Images pushed to projects are not touched.`,
    confirm: 'Purge cache',
  })
  if (!ok) return
  try {
    await api('DELETE', `/groups/${group.id}/dependency_proxy/cache`)
    toast('Dependency proxy cache purged')
    await reload()
  } catch (err) {
    toast(err.message)
  }
}

function upstreamTable(upstreams) {
  return [
    h('h3', { id: 'upstreams-title' }, 'Upstream rate limits'),
    h('p', { class: 'hint' }, 'Administrators only: what each upstream reported on its last answer.'),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'aria-labelledby': 'upstreams-title' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Upstream'), h('th', {}, 'Pulls left'), h('th', {}, 'Reported'), h('th', {}, 'Last error'))),
        h(
          'tbody',
          {},
          upstreams.map((u) =>
            h(
              'tr',
              { 'data-upstream': u.host },
              h('td', { class: 'mono' }, u.host, u.authenticated ? h('span', { class: 'badge' }, 'authenticated') : null),
              h(
                'td',
                {},
                u.rate_limit
                  ? `${u.rate_limit.remaining} of ${u.rate_limit.limit}${u.rate_limit.window_seconds ? ` per ${Math.round(u.rate_limit.window_seconds / 3600)} h` : ''}`
                  : 'not reported yet',
              ),
              h('td', {}, u.rate_limit ? timeAgo(u.rate_limit.observed_at) : '—'),
              h('td', {}, u.last_error ? u.last_error.message : '—'),
            ),
          ),
        ),
      ),
    ),
  ]
}
