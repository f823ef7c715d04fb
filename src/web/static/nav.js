// Navigation shared by the pages: history routing and per-page cleanups (pollers).
let renderer = async () => {}
const cleanups = []

export function setRenderer(fn) {
  renderer = fn
}

/** Registers a function run when the user leaves the current page. */
export function onLeave(fn) {
  cleanups.push(fn)
}

export function runCleanups() {
  for (const fn of cleanups.splice(0)) fn()
}

export function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState(null, '', path)
  else history.pushState(null, '', path)
  return renderer()
}
