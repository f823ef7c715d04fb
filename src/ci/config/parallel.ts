import type { CiJob, CiNeed, CiParallel, CiVariable, MatrixEntry } from './types.ts'
import { list, setKey } from './util.ts'
import type { Errors } from './validate.ts'

// `parallel: N` and `parallel:matrix` as GitLab's Config::Normalizer expands them: each job becomes
// N jobs named `name 1/N` … `name N/N`, or one per matrix combination named `name: [v1, v2]` (values
// in the order the entry lists its variables) carrying those variables; every instance gets
// CI_NODE_INDEX and CI_NODE_TOTAL. `needs:` and `dependencies:` naming the job then mean every
// instance, or, with `needs:parallel:matrix`, the instances of the listed combinations.

/** The variable combinations of a matrix, in GitLab's order (entry by entry, the first variable varying slowest). */
export function matrixCombinations(matrix: MatrixEntry[]): Array<Record<string, string>> {
  const out: Array<Record<string, string>> = []
  for (const entry of matrix) {
    let combos: Array<Record<string, string>> = [{}]
    for (const [key, values] of Object.entries(entry)) {
      combos = combos.flatMap((c) =>
        values.map((value) => {
          const next = { ...c }
          setKey(next, key, value)
          return next
        }),
      )
    }
    out.push(...combos)
  }
  return out
}

export function matrixJobName(name: string, values: Record<string, string>): string {
  return `${name}: [${list(Object.values(values))}]`
}

/**
 * Replaces each job that has `parallel` by its instances, and rewrites `needs`/`dependencies`
 * naming such a job. `parallel` maps a job name to its instance count or combinations.
 */
export function expandParallel(e: Errors, jobs: CiJob[], parallel: Map<string, number | MatrixEntry[]>): CiJob[] {
  const instances = new Map<string, CiJob[]>()
  for (const job of jobs) {
    const p = parallel.get(job.name)
    if (p === undefined) continue
    const combos = typeof p === 'number' ? Array.from({ length: p }, () => null) : matrixCombinations(p)
    const total = combos.length
    instances.set(
      job.name,
      combos.map((combo, i): CiJob => {
        const info: CiParallel = { group: job.name, index: i + 1, total, matrix: combo }
        const variables: Record<string, CiVariable> = { ...job.variables }
        for (const [k, value] of Object.entries(combo ?? {})) setKey(variables, k, { value, expand: true, description: null })
        setKey(variables, 'CI_NODE_INDEX', { value: String(i + 1), expand: false, description: null })
        setKey(variables, 'CI_NODE_TOTAL', { value: String(total), expand: false, description: null })
        return { ...job, name: combo ? matrixJobName(job.name, combo) : `${job.name} ${i + 1}/${total}`, variables, parallel: info }
      }),
    )
  }
  const expandNeeds = (owner: string, needs: CiNeed[] | null): CiNeed[] | null => {
    if (!needs) return needs
    return needs.flatMap((need): CiNeed[] => {
      const { matrix, ...plain } = need
      const group = instances.get(need.job)
      if (!matrix) return group ? group.map((j) => ({ ...plain, job: j.name })) : [plain]
      if (!group) {
        e.add('', `${owner} job: undefined need: ${need.job}`)
        return []
      }
      const names = matrixCombinations(matrix).map((c) => matrixJobName(need.job, c))
      const known = new Set(group.map((j) => j.name))
      const missing = names.filter((n) => !known.has(n))
      if (missing.length && !need.optional) e.add('', `${owner} job: undefined need: ${list(missing)}`)
      return names.filter((n) => known.has(n)).map((n) => ({ ...plain, job: n }))
    })
  }
  return jobs.flatMap((job) =>
    (instances.get(job.name) ?? [job]).map((j) => ({
      ...j,
      needs: expandNeeds(j.name, j.needs),
      rules: j.rules?.map((r) => ({ ...r, needs: expandNeeds(j.name, r.needs) })) ?? null,
      dependencies: j.dependencies?.flatMap((d) => instances.get(d)?.map((x) => x.name) ?? [d]) ?? null,
    })),
  )
}
