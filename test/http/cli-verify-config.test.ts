// `wharf verify-config` prints the effective config, with every secret hidden.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { it } from 'node:test'

const repo = resolve(import.meta.dirname, '..', '..')
const node = join(repo, 'node_modules', '.bin', 'node')

it('verify-config shows the dependency proxy upstreams without their password or token', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-verify-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'wharf.yaml')
  await writeFile(file, 'dependencyProxy:\n  upstreams:\n    - host: docker.io\n      url: https://hub.example\n      username: bot\n      password: hunter2-secret\n    - host: ghcr.io\n      url: https://ghcr.io\n      token: ghp-static-secret\n')
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))
  const r = spawnSync(node, ['src/cli/main.ts', 'verify-config', '--config', file], { cwd: repo, env, encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  const shown = JSON.parse(r.stdout) as { dependencyProxy: { upstreams: Array<Record<string, string>> } }
  assert.deepEqual(shown.dependencyProxy.upstreams, [
    { host: 'docker.io', url: 'https://hub.example', username: 'bot', password: '(hidden)' },
    { host: 'ghcr.io', url: 'https://ghcr.io', token: '(hidden)' },
  ])
  assert.ok(!r.stdout.includes('hunter2') && !r.stdout.includes('ghp-static'))
})
