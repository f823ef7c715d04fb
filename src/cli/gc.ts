import { parseArgs } from 'node:util'
import { ConfigError, loadConfigFromArgs, SETTINGS } from '../config/load.ts'
import { WharfError } from '../core/errors.ts'
import { GarbageCollector, type GcItem, type GcReport } from '../gc/index.ts'
import { DatabaseUnavailableError, databaseConfig, migrate, openDb, SchemaTooNewError } from '../metadata/db.ts'
import { Metrics } from '../ops/index.ts'
import { createRegistry } from '../registry/index.ts'
import { openStorage } from '../storage/open.ts'

export const GC_USAGE = `Usage: wharf gc [--dry-run] [--json] [options]

Online garbage collection of the registry, beside a running server (no read-only window):
deletes untagged manifests older than gc.untaggedDelaySeconds that no tag reaches (through an
index or as a referrer of a kept subject), then blob links and blobs no manifest references
that are older than gc.graceSeconds, then blob files with no database row.

  --dry-run   list what would be deleted, why, and the bytes; change nothing
  --json      print the report as JSON

The same configuration as "wharf serve" applies (--config, --data, --gc-grace-seconds,
--gc-untagged-delay-seconds, WHARF_* variables). One collection runs at a time: when the server's
schedule (gc.intervalMinutes) or another "wharf gc" is running, this one exits with status 1.
`

/** `wharf gc`: returns the process exit code. */
export async function gcCommand(argv: string[]): Promise<number> {
  const err = (line: string) => process.stderr.write(`wharf gc: ${line}\n`)
  let values: Record<string, string | boolean | undefined>
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      config: { type: 'string' },
    }
    for (const s of SETTINGS) options[s.flag] = { type: 'string' }
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | boolean | undefined
    >
  } catch (e) {
    err((e as Error).message)
    return 2
  }
  if (values.help) {
    process.stdout.write(GC_USAGE)
    return 0
  }
  let config
  try {
    config = loadConfigFromArgs(values)
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message)
      return 2
    }
    throw e
  }
  const dbConfig = databaseConfig(config.database, config.data)
  const db = openDb(dbConfig)
  try {
    await migrate(db, dbConfig.kind)
    const metrics = new Metrics()
    const driver = (await openStorage(config.data, config.storage)).blobs
    const registry = createRegistry(db, driver, { pageMax: config.limits.pageMax, metrics, gcGraceSeconds: config.gc.graceSeconds })
    const gc = new GarbageCollector(db, registry.blobs, driver, config.gc, metrics)
    const report = await gc.run({ dryRun: values['dry-run'] === true })
    process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report))
    return 0
  } catch (e) {
    if (e instanceof WharfError || e instanceof SchemaTooNewError || e instanceof DatabaseUnavailableError) {
      err(e.message)
      return 1
    }
    throw e
  } finally {
    await db.destroy()
  }
}

function describe(i: GcItem): string {
  const what =
    i.kind === 'manifest'
      ? `manifest ${i.repository}@${i.digest}`
      : i.kind === 'link'
        ? `link ${i.repository} -> ${i.digest}`
        : `blob ${i.digest}`
  return `${what}${i.kind === 'link' ? '' : ` (${i.bytes} bytes)`}: ${i.reason}`
}

export function formatReport(r: GcReport): string {
  const verb = r.dryRun ? 'would delete' : 'deleted'
  const lines = r.items.map((i) => `${verb} ${describe(i)}`)
  const c = r.counts
  lines.push(
    `${r.dryRun ? 'dry run' : 'done'}: ${c.manifests} manifests, ${c.links} blob links, ${c.blobs} blobs; ${r.freedBytes} bytes ${r.dryRun ? 'would be ' : ''}freed (${r.durationMs} ms)`,
  )
  return `${lines.join('\n')}\n`
}
