// The dependency rule of src/, checked by `npm test` (depcruise src --config .dependency-cruiser.cjs).
// docs/architecture.md explains it; change the tiers there and here together.
//
// A folder of src/ (or a file at its root) may import its own files and folders in LOWER tiers
// only: never a folder of the same tier, never one above. So no cycle can run between folders, and
// a back edge fails the build with the rule's name and both files.
const TIERS = [
  ['core'], // no imports from src/: errors, digests, names, secrets, path segments, pools, spawn
  ['config', 'metadata', 'storage', 'tls', 'runner', 'connections.ts'], // leaves over core; runner ships on its own
  ['api'], // /api/v4 plumbing: scope, problem+json, pagination, schemas, forms, OpenAPI — no domain
  ['auth'], // principals, credentials, tokens, access rules; reads accounts and projects through ports
  ['users'], // accounts and their personal namespace
  ['projects'], // groups, projects, members, access levels
  ['git'], // repositories, smart HTTP, push events
  ['ops'], // metrics, probes, shutdown, backup (which copies git repositories)
  ['registry'], // OCI v2 and its /api/v4 routes
  ['proxy', 'ci', 'gc', 'sso'], // the pull-through cache; pipelines, jobs and the runner API; registry garbage collection; single sign-on
  ['admin', 'web', 'hooks'], // the administrator area's API; the web UI and its sessions; webhooks (they hear git, CI and the registry)
  ['app.ts', 'services.ts'], // the composition root: the only files that know every domain
  ['server.ts'],
  ['cli'],
]

const escapeDots = (name) => name.replace(/\./g, '\\.')
/** A tier member as a path pattern: a folder and everything in it, or one file at src/'s root. */
const pathOf = (name) => (name.endsWith('.ts') ? `^src/${escapeDots(name)}$` : `^src/${escapeDots(name)}/`)
const below = (tier) => TIERS.slice(0, tier).flat()

const known = new Set(TIERS.flat())
const layering = TIERS.flatMap((members, tier) =>
  members.map((name) => ({
    name: `layer-${name}`,
    comment: `src/${name} may import only: ${below(tier).join(', ') || 'nothing else in src/'} (docs/architecture.md, "Dependency rule")`,
    severity: 'error',
    // Tests may wire whatever they exercise (a unit test of ci/ may start the whole services).
    from: { path: pathOf(name), pathNot: '\\.test\\.ts$' },
    to: { path: '^src/', pathNot: [pathOf(name), ...below(tier).map(pathOf)] },
  })),
)

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'No import cycle anywhere in src/, between files of one folder either (type-only imports count).',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    ...layering,
    {
      name: 'folder-in-a-tier',
      comment: 'Every folder of src/ (and file at its root) has a tier in .dependency-cruiser.cjs, so the layering covers it.',
      severity: 'error',
      from: { path: '^src/', pathNot: [...known].map(pathOf) },
      to: {},
    },
    {
      name: 'runner-protocol-only',
      comment:
        'Outside the runner (and the cli that starts it), only the shared contract src/runner/protocol.ts is imported: the runner can ship as its own package.',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/runner/', '^src/cli/'] },
      to: { path: '^src/runner/', pathNot: '^src/runner/protocol\\.ts$' },
    },
    {
      name: 'no-test-imports',
      comment:
        'Nothing in src/ imports test/ (test helpers stay out of the shipped package); unit tests, which are not shipped, may (test/helpers/database.ts opens their database on SQLite or PostgreSQL).',
      severity: 'error',
      from: { path: '^src/', pathNot: '\\.test\\.ts$' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // Type-only imports are coupling too: a type from a higher layer is a back edge.
    tsPreCompilationDeps: true,
    // The web UI's browser modules (plain JS and their .d.ts) import only each other.
    exclude: { path: '^src/web/static/' },
  },
}
