import { parseArgs } from 'node:util'
import { ConfigError, loadConfigFromArgs, SETTINGS } from '../config/load.ts'
import { VISIBILITIES, type Visibility } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import { DatabaseUnavailableError, databaseConfig, migrate, openDb, SchemaTooNewError } from '../metadata/db.ts'
import type { User } from '../metadata/schema.ts'
import { createServices, type Services } from '../services.ts'
import { openStorage } from '../storage/open.ts'

export const ADMIN_USAGE = `Usage: wharf admin <command> [options]   (works offline on the data directory)

Commands:
  user create --username U [--name N] [--email E] [--password-stdin] [--admin]
  group create --path P [--parent GROUP] [--visibility private|internal|public] [--name N] [--owner USER]
  project create --path NS/PROJ [--visibility private|internal|public] [--name N]
  token create --user U --name N --scopes a,b [--expires-at YYYY-MM-DD]
  deploy-token create (--project NS/PROJ | --group GROUP) --scopes read_registry[,write_registry] [--name N] [--username U] [--expires-at YYYY-MM-DD]
  signing-key rotate      add a new registry-token signing key (restart the server to use it; old tokens stay valid)
  signing-key retire      retire every key but the newest (after one token lifetime, tokens they signed stop working)

The same configuration as "wharf serve" applies (--config, --data, WHARF_* variables).
Tokens are printed once; only their digests are stored.
`

const ACTOR = 'wharf-admin'

const ADMIN_OPTIONS = {
  username: { type: 'string' },
  name: { type: 'string' },
  email: { type: 'string' },
  'password-stdin': { type: 'boolean' },
  admin: { type: 'boolean' },
  path: { type: 'string' },
  parent: { type: 'string' },
  visibility: { type: 'string' },
  owner: { type: 'string' },
  user: { type: 'string' },
  scopes: { type: 'string' },
  'expires-at': { type: 'string' },
  project: { type: 'string' },
  group: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

type Flags = { [K in keyof typeof ADMIN_OPTIONS]?: (typeof ADMIN_OPTIONS)[K]['type'] extends 'boolean' ? boolean : string }

class UsageError extends Error {}

function need(flags: Flags, key: keyof Flags): string {
  const v = flags[key]
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${key} is required`)
  return v
}

function visibility(v: string | undefined): Visibility | undefined {
  if (v === undefined) return undefined
  if (!(VISIBILITIES as readonly string[]).includes(v)) throw new UsageError(`--visibility must be one of ${VISIBILITIES.join(', ')}`)
  return v as Visibility
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of process.stdin) chunks.push(c as Buffer)
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '')
}

/** `wharf admin ...`: returns the process exit code; prints one line on error. */
export async function adminCommand(argv: string[]): Promise<number> {
  let parsed
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...ADMIN_OPTIONS, config: { type: 'string' } }
    for (const s of SETTINGS) options[s.flag] = { type: 'string' }
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (e) {
    process.stderr.write(`wharf admin: ${(e as Error).message}\n`)
    return 2
  }
  const { positionals, values } = parsed
  const all = values as Record<string, string | boolean | undefined>
  const [noun, verb] = positionals
  if (all.help || noun === undefined || noun === 'help') {
    process.stdout.write(ADMIN_USAGE)
    return 0
  }
  const command = `${noun} ${verb ?? ''}`.trim()
  if (
    ![
      'user create',
      'group create',
      'project create',
      'token create',
      'deploy-token create',
      'signing-key rotate',
      'signing-key retire',
    ].includes(command) ||
    positionals.length > 2
  ) {
    process.stderr.write(`wharf admin: unknown command "${positionals.join(' ')}"; run "wharf admin help"\n`)
    return 2
  }

  let config
  try {
    config = loadConfigFromArgs(all)
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`wharf admin: ${e.message}\n`)
      return 2
    }
    throw e
  }

  const flags = values as Flags
  let password: string | undefined
  try {
    // Validate flags before touching the database.
    if (command === 'user create') need(flags, 'username')
    if (command === 'group create' || command === 'project create') {
      need(flags, 'path')
      visibility(flags.visibility)
    }
    if (command === 'token create') for (const f of ['user', 'name', 'scopes'] as const) need(flags, f)
    if (command === 'deploy-token create') {
      need(flags, 'scopes')
      if (!flags.project === !flags.group) throw new UsageError('give exactly one of --project or --group')
    }
    if (command === 'user create' && flags['password-stdin']) password = await readStdin()
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`wharf admin ${command}: ${e.message}\n`)
      return 2
    }
    throw e
  }

  const dbConfig = databaseConfig(config.database, config.data)
  const db = openDb(dbConfig)
  try {
    await migrate(db, dbConfig.kind)
    const storage = await openStorage(config.data, config.storage)
    const services = await createServices(db, storage.blobs, {
      ciStorage: storage.ci,
      publicUrl: config.publicUrl,
      tokenTtlSeconds: config.auth.tokenTtlSeconds,
      pageMax: config.limits.pageMax,
      rootPassword: config.auth.rootPassword,
    })
    if (services.generatedRootPassword) {
      process.stderr.write(`wharf admin: created the administrator root / ${services.generatedRootPassword}   (shown only once)\n`)
    }
    await run(command, flags, password, services, new URL(config.publicUrl).host)
    return 0
  } catch (e) {
    if (e instanceof WharfError || e instanceof UsageError || e instanceof SchemaTooNewError || e instanceof DatabaseUnavailableError) {
      process.stderr.write(`wharf admin ${command}: ${e.message}\n`)
      return 1
    }
    throw e
  } finally {
    await db.destroy()
  }
}

async function userNamed(services: Services, username: string): Promise<User> {
  const { rows } = await services.users.searchUsers({ username }, { limit: 1, offset: 0 })
  if (!rows[0]) throw new UsageError(`no user ${username}`)
  return rows[0]
}

/** An administrator to act as (group and project creation are authorized like any other actor). */
async function anAdmin(services: Services): Promise<User> {
  const root = (await services.users.searchUsers({ username: 'root' }, { limit: 1, offset: 0 })).rows[0]
  if (root?.is_admin === 1 && root.state === 'active') return root
  for (let offset = 0; ; offset += 100) {
    const { rows } = await services.users.searchUsers({ blocked: false }, { limit: 100, offset })
    const admin = rows.find((u) => u.is_admin === 1)
    if (admin) return admin
    if (rows.length < 100) throw new UsageError('no active administrator to act as')
  }
}

async function run(command: string, flags: Flags, password: string | undefined, services: Services, registryHost: string): Promise<void> {
  const { users, projects, groups, accessTokens } = services
  const out = (line: string) => process.stdout.write(`${line}\n`)
  const scopes = () =>
    need(flags, 'scopes')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
  switch (command) {
    case 'user create': {
      const user = await users.createUser({
        username: need(flags, 'username'),
        name: flags.name ?? need(flags, 'username'),
        email: flags.email ?? null,
        password: password ?? null,
        isAdmin: flags.admin === true,
      })
      await services.credentials.audit(
        ACTOR,
        'user.created',
        null,
        { username: user.username, admin: user.is_admin === 1 },
        `user:${user.id}`,
      )
      out(
        `created user ${user.username} (id ${user.id}${user.is_admin ? ', administrator' : ''}${password ? '' : ', no password: use a personal access token'})`,
      )
      return
    }
    case 'group create': {
      const actor = flags.owner ? await userNamed(services, flags.owner) : await anAdmin(services)
      let parentId: number | null = null
      if (flags.parent) {
        const parent = await groups.findGroupRef(flags.parent)
        if (!parent) throw new UsageError(`no group ${flags.parent}`)
        parentId = parent.id
      }
      const path = need(flags, 'path')
      const group = await groups.createGroupChecked(actor, {
        path,
        name: flags.name ?? path,
        parentId,
        visibility: visibility(flags.visibility) ?? 'private',
      })
      out(`created group ${group.full_path} (id ${group.id}, ${group.visibility}, owner ${actor.username})`)
      return
    }
    case 'project create': {
      const full = need(flags, 'path').replace(/^\/+|\/+$/g, '')
      const i = full.lastIndexOf('/')
      if (i <= 0) throw new UsageError('--path must be NAMESPACE/PROJECT')
      const ns = await groups.findNamespaceRef(full.slice(0, i))
      if (!ns) throw new UsageError(`no namespace ${full.slice(0, i)}`)
      const path = full.slice(i + 1)
      const project = await projects.createProjectChecked(await anAdmin(services), {
        namespaceId: ns.id,
        path,
        name: flags.name ?? path,
        visibility: visibility(flags.visibility) ?? 'private',
      })
      out(
        `created project ${project.full_path} (id ${project.id}, ${project.visibility}); images: ${registryHost}/${project.full_path_lower}[/<image>]`,
      )
      return
    }
    case 'token create': {
      const user = await userNamed(services, need(flags, 'user'))
      const { token, row } = await accessTokens.createPat(
        user.id,
        { name: need(flags, 'name'), scopes: scopes(), expiresAt: flags['expires-at'] ?? null },
        ACTOR,
      )
      out(token)
      process.stderr.write(
        `personal access token ${row.id} for ${user.username} (${JSON.parse(row.scopes).join(', ')}${row.expires_at ? `, expires ${row.expires_at}` : ''}); shown only once\n`,
      )
      return
    }
    case 'signing-key rotate': {
      out(`new signing key ${await services.auth.tokens.rotate()}`)
      return
    }
    case 'signing-key retire': {
      out(`retired ${await services.auth.tokens.retireOldKeys()} signing key(s)`)
      return
    }
    case 'deploy-token create': {
      let owner: { projectId: number } | { namespaceId: number }
      if (flags.project) {
        const project = await projects.findProjectRef(flags.project)
        if (!project) throw new UsageError(`no project ${flags.project}`)
        owner = { projectId: project.id }
      } else {
        const group = await groups.findGroupRef(flags.group!)
        if (!group) throw new UsageError(`no group ${flags.group}`)
        owner = { namespaceId: group.id }
      }
      const { token, row } = await accessTokens.createDeployToken(
        owner,
        { name: flags.name ?? 'deploy-token', username: flags.username ?? null, scopes: scopes(), expiresAt: flags['expires-at'] ?? null },
        ACTOR,
      )
      out(`username: ${row.username}`)
      out(`token:    ${token}`)
      process.stderr.write(`deploy token ${row.id} (${JSON.parse(row.scopes).join(', ')}); the token is shown only once\n`)
      return
    }
  }
}
