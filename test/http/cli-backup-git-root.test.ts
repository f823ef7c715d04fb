// `wharf backup` copies the data directory; repositories kept elsewhere (git.repositoriesDir, a
// volume several nodes share) are not in it, so it refuses rather than make a backup without them.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { it } from 'node:test'

const repo = resolve(import.meta.dirname, '..', '..')
const node = join(repo, 'node_modules', '.bin', 'node')

it('backup create refuses when the repositories live outside the data directory', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-backup-git-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))
  const args = [
    'src/cli/main.ts',
    'backup',
    'create',
    '--dir',
    join(dir, 'out'),
    '--data',
    join(dir, 'data'),
    '--public-url',
    'http://wharf.test',
  ]
  const r = spawnSync(node, [...args, '--git-repositories-dir', join(dir, 'shared-git')], {
    cwd: repo,
    env,
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /the repositories are not in the data directory \(git\.repositoriesDir is .*shared-git\)/)
  assert.deepEqual(await readdir(dir), [], 'nothing was written')
})
