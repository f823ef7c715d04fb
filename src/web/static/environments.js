// Environments (list with the last deployment, URL, Stop) and one environment's deployments; Releases
// (newest first, the description rendered by the server's Markdown renderer, asset links).
import { api, apiAll, enc } from './api.js'
import { confirmDialog, errorBox, h, statusBadge, timeAgo, toast } from './dom.js'
import { navigate } from './nav.js'
import { markdownBlock } from './repository.js'

/** An external link the environment or release names: http(s) only, opened without the app's context. */
function externalLink(url, text = url) {
  return /^https?:\/\//i.test(url ?? '') ? h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, text) : '—'
}

function deploymentCells(project, d) {
  if (!d) return [h('td', {}, '—'), h('td', { class: 'hide-narrow' }, '—')]
  return [
    h(
      'td',
      {},
      statusBadge(d.status),
      ' ',
      d.deployable ? h('a', { href: `/-/projects/${project.id}/jobs/${d.deployable.id}` }, `#${d.iid} ${d.deployable.name}`) : `#${d.iid}`,
      ' ',
      h('span', { class: 'mono muted' }, d.ref),
    ),
    h('td', { class: 'hide-narrow' }, timeAgo(d.finished_at ?? d.created_at)),
  ]
}

export async function environmentsTab(project) {
  const envs = await apiAll(`/projects/${project.id}/environments?per_page=100`)
  const error = h('div')
  if (envs.length === 0)
    return [
      h('h2', {}, 'Environments'),
      h(
        'div',
        { class: 'panel' },
        h('p', {}, 'No environments yet.'),
        h(
          'p',
          {},
          'A job with ',
          h('code', {}, 'environment: production'),
          ' in .gitlab-ci.yml deploys to one; its deployments are listed here.',
        ),
      ),
    ]
  const row = (e) =>
    h(
      'tr',
      {},
      h('td', {}, h('a', { href: `/-/projects/${project.id}/environments/${e.id}` }, e.name), ' ', h('span', { class: 'badge' }, e.tier)),
      h('td', {}, statusBadge(e.state)),
      ...deploymentCells(project, e.last_deployment),
      h('td', { class: 'hide-narrow' }, externalLink(e.external_url)),
      h(
        'td',
        { class: 'row' },
        e.state === 'available'
          ? h(
              'button',
              {
                type: 'button',
                class: 'danger small',
                'aria-label': `Stop ${e.name}`,
                onclick: async () => {
                  const ok = await confirmDialog({
                    title: `Stop environment ${e.name}?`,
                    body: 'The stop job of its last deployment runs (on_stop), if it has one.',
                    confirm: 'Stop',
                  })
                  if (!ok) return
                  try {
                    const after = await api('POST', `/projects/${project.id}/environments/${e.id}/stop`)
                    toast(`Environment ${e.name} is ${after.state}`)
                    navigate(`/-/projects/${project.id}/environments`)
                  } catch (err) {
                    error.replaceChildren(errorBox(err))
                  }
                },
              },
              'Stop',
            )
          : null,
      ),
    )
  return [
    h('h2', {}, 'Environments'),
    error,
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { 'aria-label': 'Environments' },
        h(
          'thead',
          {},
          h(
            'tr',
            {},
            h('th', {}, 'Environment'),
            h('th', {}, 'State'),
            h('th', {}, 'Last deployment'),
            h('th', { class: 'hide-narrow' }, 'When'),
            h('th', { class: 'hide-narrow' }, 'URL'),
            h('th', {}, h('span', { class: 'visually-hidden' }, 'Actions')),
          ),
        ),
        h('tbody', {}, envs.map(row)),
      ),
    ),
  ]
}

export async function environmentPage(project, envId) {
  const env = await api('GET', `/projects/${project.id}/environments/${envId}`)
  const deployments = await apiAll(`/projects/${project.id}/deployments?environment=${enc(env.name)}&order_by=iid&sort=desc&per_page=100`)
  return [
    h('p', {}, h('a', { href: `/-/projects/${project.id}/environments` }, '← Environments')),
    h('div', { class: 'spread' }, h('h2', {}, env.name), statusBadge(env.state)),
    h(
      'p',
      { class: 'muted' },
      'Tier ',
      h('strong', {}, env.tier),
      env.external_url ? [' · ', externalLink(env.external_url)] : '',
      env.auto_stop_at ? [' · stops ', h('time', { datetime: env.auto_stop_at }, new Date(env.auto_stop_at).toLocaleString())] : '',
    ),
    deployments.length === 0
      ? h('div', { class: 'panel' }, h('p', {}, 'No deployments yet.'))
      : h(
          'div',
          { class: 'table-wrap' },
          h(
            'table',
            { 'aria-label': 'Deployments' },
            h(
              'thead',
              {},
              h(
                'tr',
                {},
                h('th', {}, 'Deployment'),
                h('th', { class: 'hide-narrow' }, 'When'),
                h('th', {}, 'Commit'),
                h('th', { class: 'hide-narrow' }, 'By'),
              ),
            ),
            h(
              'tbody',
              {},
              deployments.map((d) =>
                h(
                  'tr',
                  {},
                  ...deploymentCells(project, d),
                  h('td', { class: 'mono' }, h('a', { href: `/-/projects/${project.id}/repository/commits/${d.sha}` }, d.sha.slice(0, 8))),
                  h('td', { class: 'hide-narrow' }, d.user ? d.user.username : '—'),
                ),
              ),
            ),
          ),
        ),
  ]
}

export async function releasesTab(project) {
  const releases = await apiAll(`/projects/${project.id}/releases?per_page=100`)
  if (releases.length === 0)
    return [
      h('h2', {}, 'Releases'),
      h(
        'div',
        { class: 'panel' },
        h('p', {}, 'No releases yet.'),
        h('p', {}, 'A job with ', h('code', {}, 'release:'), ' in a tag pipeline creates one when it succeeds, or use the releases API.'),
      ),
    ]
  const sections = []
  for (const r of releases) {
    const links = r.assets.links
    sections.push(
      h(
        'section',
        { class: 'panel', 'aria-label': `Release ${r.name}` },
        h('div', { class: 'spread' }, h('h3', {}, r.name), h('span', { class: 'badge mono' }, r.tag_name)),
        h(
          'p',
          { class: 'muted' },
          'Released ',
          timeAgo(r.released_at),
          r.author ? ` by ${r.author.username}` : '',
          r.commit
            ? [' · ', h('a', { class: 'mono', href: `/-/projects/${project.id}/repository/commits/${r.commit.id}` }, r.commit.short_id)]
            : '',
        ),
        r.description ? await markdownBlock(r.description, `${r.name} notes`, { projectId: project.id, ref: r.tag_name, dir: '' }) : null,
        links.length
          ? h(
              'ul',
              { 'aria-label': `${r.name} assets` },
              links.map((l) =>
                h('li', {}, externalLink(l.direct_asset_url ?? l.url, l.name), ' ', h('span', { class: 'badge' }, l.link_type)),
              ),
            )
          : null,
      ),
    )
  }
  return [h('h2', {}, 'Releases'), ...sections]
}
