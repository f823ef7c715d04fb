import { readdirSync, readFileSync } from 'node:fs'
import path from 'node:path'

// The built-in `.gitlab-ci.yml` templates (./templates/<key>.gitlab-ci.yml): listed and served by
// `GET /api/v4/templates/gitlab_ci_ymls[/:key]` as GitLab does, offered by the web UI's CI editor,
// and included by `include: template: <key>.gitlab-ci.yml`. They ship with the code (prepack copies
// the folder), so a running server has one fixed set: read once, on first use.

const TEMPLATE_DIR = path.join(import.meta.dirname, 'templates')
const SUFFIX = '.gitlab-ci.yml'

export interface CiTemplate {
  /** GitLab's key: the file name without `.gitlab-ci.yml` (`Docker`). */
  key: string
  name: string
  content: string
}

let loaded: Map<string, CiTemplate> | undefined

function templates(): Map<string, CiTemplate> {
  if (!loaded) {
    loaded = new Map()
    for (const file of readdirSync(TEMPLATE_DIR).sort()) {
      if (!file.endsWith(SUFFIX)) continue
      const key = file.slice(0, -SUFFIX.length)
      loaded.set(key, { key, name: key, content: readFileSync(path.join(TEMPLATE_DIR, file), 'utf8') })
    }
  }
  return loaded
}

/** Every template, Docker first (the seed's), then by name. */
export function listCiTemplates(): CiTemplate[] {
  return [...templates().values()].sort((a, b) => (a.key === 'Docker' ? -1 : b.key === 'Docker' ? 1 : a.key.localeCompare(b.key)))
}

export function ciTemplate(key: string): CiTemplate | undefined {
  return templates().get(key)
}

/** `include: template:` names a file (`Docker.gitlab-ci.yml`); its content, or undefined when there is none. */
export function ciTemplateFile(file: string): string | undefined {
  return file.endsWith(SUFFIX) ? ciTemplate(file.slice(0, -SUFFIX.length))?.content : undefined
}
