// docker-credential-wharf's protocol edges, through its real entry (bin/docker-credential-wharf.js)
// in a child process with a private store: what docker's `store`/`erase`/`list` calls see, the
// "not found" answer, errors on stdout with exit status 1, and the store's file modes. The device
// login path (minting and renewing secrets against a server) is test/e2e/credential-helper.test.ts.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { test } from 'node:test'
import { stillFresh } from './credential-helper.ts'
import { hostOf } from './credential-store.ts'

const ENTRY = path.join(import.meta.dirname, '..', '..', 'bin', 'docker-credential-wharf.js')

function helper(dir: string, command: string, input = '') {
  // PATH without secret-tool: the file store, whatever the machine has.
  const r = spawnSync(process.execPath, [ENTRY, command], {
    input,
    encoding: 'utf8',
    env: { HOME: dir, XDG_CONFIG_HOME: path.join(dir, 'config'), PATH: '/nonexistent' },
    timeout: 30_000,
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('store, get, list and erase as docker calls them; unknown hosts are "not found"; errors on stdout with exit 1', async (t) => {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-helper-'))
  t.after(() => rm(dir, { recursive: true, force: true }))

  const miss = helper(dir, 'get', 'registry.example:5000\n')
  assert.deepEqual([miss.code, miss.stdout], [1, 'credentials not found in native keychain\n'])

  const creds = { ServerURL: 'https://Registry.Example:5000', Username: 'ci-bot', Secret: 'glpat-abc' }
  const stored = helper(dir, 'store', JSON.stringify(creds))
  assert.equal(stored.code, 0, stored.stdout + stored.stderr)
  // docker asks by host[:port]; podman by host; both find it, case-insensitively.
  const got = helper(dir, 'get', 'registry.example:5000')
  assert.equal(got.code, 0, got.stdout)
  assert.deepEqual(JSON.parse(got.stdout), { ServerURL: 'registry.example:5000', Username: 'ci-bot', Secret: 'glpat-abc' })
  assert.deepEqual(JSON.parse(helper(dir, 'list').stdout), { 'registry.example:5000': 'ci-bot' })

  // The secret is in the 0600 store, not in the non-secret logins file.
  const store = path.join(dir, 'config', 'wharf')
  assert.equal((await stat(path.join(store, 'secrets.json'))).mode & 0o777, 0o600)
  assert.equal((await stat(store)).mode & 0o777, 0o700)
  assert.ok(!(await readFile(path.join(store, 'logins.json'), 'utf8')).includes('glpat-abc'))

  assert.equal(helper(dir, 'erase', 'registry.example:5000').code, 0)
  assert.deepEqual(helper(dir, 'get', 'registry.example:5000').stdout, 'credentials not found in native keychain\n')
  assert.ok(!(await readFile(path.join(store, 'secrets.json'), 'utf8')).includes('glpat-abc'))
  assert.deepEqual([helper(dir, 'erase', 'registry.example:5000').code], [1])

  const bad = helper(dir, 'store', '{"ServerURL": 1}')
  assert.equal(bad.code, 1)
  assert.match(bad.stdout, /store expects \{"ServerURL","Username","Secret"\}/)
  const unknown = helper(dir, 'frobnicate')
  assert.equal(unknown.code, 1)
  assert.match(unknown.stdout, /^Usage: docker-credential-wharf/)
  assert.match(helper(dir, 'version').stdout, /^docker-credential-wharf \d+\.\d+\.\d+\n$/)
})

test('hostOf keys URLs and host[:port] forms alike', () => {
  assert.equal(hostOf('127.0.0.1:5000'), '127.0.0.1:5000')
  assert.equal(hostOf('http://127.0.0.1:5000/v2/'), '127.0.0.1:5000')
  assert.equal(hostOf('HTTPS://Wharf.Example'), 'wharf.example')
  assert.equal(hostOf('wharf.example/team/app'), 'wharf.example')
})

test('a cached secret is renewed once a third of its life (at most a minute) is left', () => {
  const issuedAt = 1_000_000
  const short = { secret: 's', issuedAt, expiresAt: issuedAt + 9_000 }
  assert.equal(stillFresh(short, issuedAt + 5_999), true)
  assert.equal(stillFresh(short, issuedAt + 6_000), false)
  const long = { secret: 's', issuedAt, expiresAt: issuedAt + 300_000 }
  assert.equal(stillFresh(long, issuedAt + 239_999), true)
  assert.equal(stillFresh(long, issuedAt + 240_000), false)
})
