import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { Readable, Writable } from 'node:stream'
import { ConfigError, loadConfigFromArgs, SETTINGS } from '../config/load.ts'
import { databaseConfig } from '../metadata/db.ts'
import { BackupError, createBackup, restoreBackup } from '../ops/backup.ts'

export const BACKUP_USAGE = `Usage: wharf backup <command> [options]

Commands:
  create  (--dir DIR | --tar FILE)   back up the data directory while the server serves it:
                                     the database (SQLite's online backup), every blob it lists
                                     (digest-checked), the git repositories, CI logs and artifacts
  restore (--dir DIR | --tar FILE)   restore a backup into an empty data directory (--data),
                                     checking every blob's digest; then start "wharf serve" on it

  --dir DIR    a directory backup (create: a new or empty directory)
  --tar FILE   a tar archive; "-" is standard output (create) or standard input (restore)

The same configuration as "wharf serve" applies (--config, --data, WHARF_* variables).
A backup holds every secret of the instance (signing keys, token digests, password hashes): keep it safe.
`

const OPTIONS = { dir: { type: 'string' }, tar: { type: 'string' }, help: { type: 'boolean', short: 'h' } } as const

/** `wharf backup ...`: returns the process exit code; progress and errors go to stderr (stdout may be the archive). */
export async function backupCommand(argv: string[]): Promise<number> {
  const err = (line: string) => process.stderr.write(`wharf backup: ${line}\n`)
  let parsed
  try {
    const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { ...OPTIONS, config: { type: 'string' } }
    for (const s of SETTINGS) options[s.flag] = { type: 'string' }
    parsed = parseArgs({ args: argv, options, strict: true, allowPositionals: true })
  } catch (e) {
    err((e as Error).message)
    return 2
  }
  const { positionals } = parsed
  const all = parsed.values as Record<string, string | boolean | undefined>
  const [verb] = positionals
  if (all.help || verb === undefined || verb === 'help') {
    process.stdout.write(BACKUP_USAGE)
    return 0
  }
  if ((verb !== 'create' && verb !== 'restore') || positionals.length > 1) {
    err(`unknown command "${positionals.join(' ')}"; run "wharf backup help"`)
    return 2
  }
  const dir = typeof all.dir === 'string' ? all.dir : undefined
  const tarFile = typeof all.tar === 'string' ? all.tar : undefined
  if ((dir === undefined) === (tarFile === undefined) || dir === '' || tarFile === '') {
    err(`${verb}: give exactly one of --dir DIR or --tar FILE`)
    return 2
  }

  let config
  try {
    config = loadConfigFromArgs(all)
  } catch (e) {
    if (e instanceof ConfigError) {
      err(e.message)
      return 2
    }
    throw e
  }

  // The backup reads and writes the data directory's SQLite file; a PostgreSQL database is the
  // operator's to back up with its own tools, consistently with the files (README, "Run on PostgreSQL").
  const database = databaseConfig(config.database, config.data)
  if (database.kind === 'postgres' || database.path !== join(config.data, 'wharf.db')) {
    err(
      database.kind === 'postgres'
        ? `${verb}: the database is PostgreSQL: back it up with pg_dump (restore with pg_restore), and the data directory's files (storage, git, ci, secrets) with a file copy taken after the dump`
        : `${verb}: the database is not the data directory's wharf.db (database.url is ${database.path}); back it up with sqlite3's .backup`,
    )
    return 2
  }

  // Repositories on a volume of their own (several nodes share it) are backed up with that volume.
  if (config.git.repositoriesDir !== undefined && config.git.repositoriesDir !== join(config.data, 'git')) {
    err(
      `${verb}: the repositories are not in the data directory (git.repositoriesDir is ${config.git.repositoriesDir}); back that directory up with a file copy, with the data directory's`,
    )
    return 2
  }

  const log = (line: string) => err(line)
  try {
    if (verb === 'create') {
      let out: Writable | undefined
      if (tarFile !== undefined) {
        // 'wx': never overwrite an earlier backup.
        out = tarFile === '-' ? process.stdout : createWriteStream(tarFile, { flags: 'wx', mode: 0o600 })
        if (tarFile !== '-') await once(out, 'open')
      }
      const summary = await createBackup({ data: config.data, to: out ? { tar: out } : { dir: dir! }, log })
      log(
        `done: ${summary.blobs} blobs (${summary.blobBytes} bytes), ${summary.repositories} repositories, ${summary.files} files, database as of ${summary.createdAt}`,
      )
    } else {
      let input: Readable | undefined
      if (tarFile !== undefined) {
        input = tarFile === '-' ? process.stdin : createReadStream(tarFile)
        if (tarFile !== '-') await once(input, 'open')
      }
      await restoreBackup({ data: config.data, from: input ? { tar: input } : { dir: dir! }, log })
      log(`done: start "wharf serve --data ${config.data}"`)
    }
    return 0
  } catch (e) {
    // A file system error (no such file, exists, no space, ...) is reported by its message, like a BackupError.
    if (e instanceof BackupError || typeof (e as NodeJS.ErrnoException).syscall === 'string') {
      err(`${verb}: ${(e as Error).message}`)
      return 1
    }
    throw e
  }
}
