// Fastify's own route table, for tests that must cover every route (a new one cannot slip by).

/**
 * Every (METHOD, path) Fastify knows, parsed from printRoutes' tree. Pass the default tree
 * (`printRoutes()`): with `commonPrefix: false` a wildcard under a shared prefix loses the static
 * segments between them (`/jobs/artifacts/:ref/raw/*` prints as `/jobs*`).
 */
export function registeredRoutes(tree: string): Array<[string, string]> {
  const out: Array<[string, string]> = []
  const stack: string[] = []
  for (const line of tree.split('\n')) {
    const m = /^([│ ]*)(?:├── |└── )(.*?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (!m) continue
    const depth = m[1]!.length / 4
    const full = (depth > 0 ? stack[depth - 1]! : '') + m[2]!
    stack[depth] = full
    stack.length = depth + 1
    for (const method of m[3]?.split(', ') ?? []) out.push([method, full])
  }
  return out
}
