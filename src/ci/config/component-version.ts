// Which tag an `include:component` version names, when it is not a ref itself: `~latest` is the
// highest released version, `1` and `1.2` the highest version with that major (and minor). Wharf
// has no CI/CD catalog, so a project's released versions are its tags named as semantic versions
// (`1.2.3`, as the catalog requires); pre-releases (`1.3.0-rc.1`) are never picked, as on GitLab.

const SEMVER = /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/
const PARTIAL = /^(0|[1-9]\d*)(?:\.(0|[1-9]\d*))?$/

export const LATEST_VERSION = '~latest'

/** Whether `version` is resolved against the project's version tags rather than used as a ref. */
export function isVersionQuery(version: string): boolean {
  return version === LATEST_VERSION || PARTIAL.test(version)
}

/** The tag `query` picks among `tags`, or undefined when none matches. */
export function pickVersion(query: string, tags: readonly string[]): string | undefined {
  const partial = PARTIAL.exec(query)
  const want = partial ? [Number(partial[1]), partial[2] === undefined ? undefined : Number(partial[2])] : []
  let best: { tag: string; parts: number[] } | undefined
  for (const tag of tags) {
    const m = SEMVER.exec(tag)
    if (!m || m[4] !== undefined) continue
    const parts = [Number(m[1]), Number(m[2]), Number(m[3])]
    if (want[0] !== undefined && parts[0] !== want[0]) continue
    if (want[1] !== undefined && parts[1] !== want[1]) continue
    if (!best || compare(parts, best.parts) > 0) best = { tag, parts }
  }
  return best?.tag
}

function compare(a: number[], b: number[]): number {
  for (let i = 0; i < 3; i++) if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0)
  return 0
}
