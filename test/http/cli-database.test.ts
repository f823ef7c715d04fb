// A database that cannot be used stops `wharf serve`, `admin` and `gc` with one line, not a stack trace.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { it } from 'node:test'

const repo = resolve(import.meta.dirname, '..', '..')
const node = join(repo, 'node_modules', '.bin', 'node')

it('an unreachable PostgreSQL stops serve, admin and gc with one line that does not repeat the password', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-cli-db-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    // A unix socket in a directory with no server: refused at once, nothing on the network.
    WHARF_DATABASE_URL: `postgres://wharf:db-secret-value@localhost/wharf?host=${join(dir, 'no-server')}`,
  }
  for (const args of [
    ['serve', '--listen', '127.0.0.1:0'],
    ['admin', 'group', 'create', '--path', 'g'],
    ['gc', '--dry-run'],
  ]) {
    const r = spawnSync(node, ['src/cli/main.ts', ...args, '--data', join(dir, 'data')], {
      cwd: repo,
      env,
      encoding: 'utf8',
      timeout: 60_000,
    })
    assert.notEqual(r.status, 0, args.join(' '))
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /^wharf.*: cannot use the database \(database\.url\): connect ENOENT .*no-server/)
    assert.ok(!r.stderr.includes('db-secret-value'), r.stderr)
  }
})
