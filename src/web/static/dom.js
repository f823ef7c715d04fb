// Small DOM helpers. Text always goes through text nodes, never innerHTML, so API data cannot inject markup.

/** h('a', { href: '/' }, 'text', child...) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v)
    else if (k === 'class') el.className = v
    else if (k === 'dataset') Object.assign(el.dataset, v)
    else if (v === true) el.setAttribute(k, '')
    else el.setAttribute(k, String(v))
  }
  append(el, children)
  return el
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue
    el.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
}

/** Replaces `el`'s children, skipping null/undefined/false like h() does (replaceChildren would print "null"). */
export function fill(el, ...children) {
  el.replaceChildren()
  append(el, children)
  return el
}

export function mount(...children) {
  return fill(document.getElementById('main'), ...children)
}

/** Says, once and where it stays visible, that the session ended while a page was polling. */
export function sessionEnded() {
  if (document.getElementById('session-ended')) return
  const back = location.pathname + location.search
  document
    .getElementById('main')
    .prepend(
      h(
        'p',
        { class: 'error', role: 'alert', id: 'session-ended' },
        'Your session has ended, so this page stopped updating. ',
        h('a', { href: `/-/sign_in?return_to=${encodeURIComponent(back)}` }, 'Sign in again'),
        ' to continue.',
      ),
    )
}

let toastTimer
export function toast(message) {
  const t = document.getElementById('toast')
  t.textContent = message
  clearTimeout(toastTimer)
  toastTimer = setTimeout(() => (t.textContent = ''), 3000)
}

export function errorBox(err) {
  return h('p', { class: 'error', role: 'alert' }, err instanceof Error ? err.message : String(err))
}

/** Copies text; falls back to a selection where the Clipboard API is unavailable (plain-http hosts). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text)
    return
  } catch {}
  const ta = h('textarea', { 'aria-hidden': 'true', style: 'position:fixed;left:-9999px' })
  ta.value = text
  document.body.append(ta)
  ta.select()
  document.execCommand('copy')
  ta.remove()
}

/** A button that copies `text` and says so. */
export function copyButton(text, label = 'Copy') {
  return h(
    'button',
    {
      type: 'button',
      class: 'secondary small',
      'aria-label': `${label}: ${text}`,
      title: text,
      onclick: async () => {
        await copyText(text)
        toast('Copied to the clipboard')
      },
    },
    'Copy',
  )
}

/** A command in a code block with its copy button. */
export function commandLine(text) {
  return h('div', { class: 'cmd' }, h('code', {}, text), copyButton(text, 'Copy command'))
}

/** A modal confirmation; resolves true when confirmed. */
export function confirmDialog({ title, body, confirm = 'Delete', danger = true }) {
  return new Promise((resolve) => {
    const d = h(
      'dialog',
      { 'aria-labelledby': 'confirm-title' },
      h('h2', { id: 'confirm-title' }, title),
      h('p', {}, body),
      h(
        'div',
        { class: 'row' },
        h('button', { type: 'button', class: danger ? 'danger' : '', onclick: () => close(true) }, confirm),
        h('button', { type: 'button', class: 'secondary', onclick: () => close(false) }, 'Cancel'),
      ),
    )
    const close = (v) => {
      d.close()
      d.remove()
      resolve(v)
    }
    d.addEventListener('cancel', () => close(false))
    document.body.append(d)
    d.showModal()
  })
}

export function statusBadge(status) {
  return h('span', { class: `badge st-${status}` }, status)
}

export function formatBytes(n) {
  if (n === null || n === undefined) return '—'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  let v = Number(n)
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`
}

export function timeAgo(iso) {
  if (!iso) return '—'
  const s = Math.round((Date.now() - new Date(iso).getTime()) / 1000)
  const text =
    s < 60
      ? 'just now'
      : s < 3600
        ? `${Math.floor(s / 60)} min ago`
        : s < 86400
          ? `${Math.floor(s / 3600)} h ago`
          : `${Math.floor(s / 86400)} d ago`
  return h('time', { datetime: iso, title: new Date(iso).toLocaleString() }, text)
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—'
  const s = Math.round(seconds)
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`
}

/** Reads a form's fields by name. */
export function formValues(form) {
  return Object.fromEntries(new FormData(form).entries())
}
