// Upgrades: today's server opens a data directory written by the previous release (the fixture in
// test/fixtures/upgrade-0.1.0, made by commit 4fa8714 with migrations 0001-0006), runs the later
// migrations forward, and everything in it still works with real clients. A database written by a
// newer release is refused with one clear line: migrations never go backward.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises'
import { DatabaseSync } from 'node:sqlite'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { gitClient } from '../helpers/git.ts'
import { run, describeResult } from '../helpers/run.ts'
import { migrationProvider } from '../../src/metadata/migrations/index.ts'

const fixture = path.join(repoRoot, 'test', 'fixtures', 'upgrade-0.1.0')
const values = new Map(
  (await readFile(path.join(fixture, 'fixture.env'), 'utf8'))
    .split('\n')
    .filter((l) => l.includes('='))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
)
const value = (k: string): string => {
  const v = values.get(k)
  assert.ok(v, `fixture.env has no ${k}`)
  return v
}

async function copyFixture(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-upgrade-'))
  await cp(path.join(fixture, 'data'), path.join(dir, 'data'), { recursive: true })
  return dir
}

function appliedMigrations(dataDir: string): string[] {
  const db = new DatabaseSync(path.join(dataDir, 'wharf.db'), { readOnly: true })
  try {
    return (db.prepare('select name from kysely_migration order by name').all() as Array<{ name: string }>).map((r) => r.name)
  } finally {
    db.close()
  }
}

describe('upgrading a 0.1.0 data directory', () => {
  let dir: string
  let wharf: Wharf
  const pat = value('PAT')

  before(async () => {
    dir = await copyFixture()
    assert.deepEqual(appliedMigrations(path.join(dir, 'data')), [
      '0001-registry',
      '0002-accounts',
      '0003-oauth-tokens',
      '0004-ci',
      '0005-runners',
      '0006-sessions',
    ])
    wharf = await startWharf({ dataDir: path.join(dir, 'data') })
  })
  after(async () => {
    await wharf?.stop()
    await rm(dir, { recursive: true, force: true })
  })

  it('runs every later migration forward', async () => {
    const all = Object.keys(await migrationProvider('sqlite').getMigrations()).sort()
    assert.ok(all.length > 6)
    assert.deepEqual(appliedMigrations(wharf.dataDir), all)
  })

  it('lets the users sign in with their passwords, and not with a wrong one', async () => {
    for (const [username, password] of [
      ['alice', 'alice-fixture-pass'],
      ['bob', 'bob-fixture-pass'],
      ['root', 'root-fixture-pass'],
    ]) {
      const res = await fetch(`${wharf.url}/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ grant_type: 'password', username, password }),
      })
      assert.equal(res.status, 200, `${username}: ${await res.clone().text()}`)
      const { access_token } = (await res.json()) as { access_token: string }
      const me = await wharf.api('GET', '/api/v4/user', undefined, { token: access_token })
      assert.equal(me.status, 200, me.describe)
      assert.equal((me.json as { username: string }).username, username)
    }
    const wrong = await fetch(`${wharf.url}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'password', username: 'alice', password: 'bob-fixture-pass' }),
    })
    assert.equal(wrong.status, 400)
  })

  it('accepts the personal access token made before the upgrade', async () => {
    const res = await fetch(`${wharf.url}/api/v4/projects/${encodeURIComponent('acme/app')}`, { headers: { 'private-token': pat } })
    assert.equal(res.status, 200)
    const project = (await res.json()) as { path_with_namespace: string; visibility: string }
    assert.equal(project.path_with_namespace, 'acme/app')
    assert.equal(project.visibility, 'private')
  })

  it('lists the pipeline the pre-upgrade push created', async () => {
    const res = await fetch(`${wharf.url}/api/v4/projects/${encodeURIComponent('acme/app')}/pipelines`, {
      headers: { 'private-token': pat },
    })
    assert.equal(res.status, 200)
    const pipelines = (await res.json()) as Array<{ id: number; ref: string; sha: string; status: string }>
    assert.deepEqual(
      pipelines.map((p) => [p.id, p.ref, p.sha, p.status]),
      [[1, 'main', value('COMMIT'), 'pending']],
    )
  })

  it('pulls the image byte-identical with skopeo and the deploy token', async (t) => {
    const out = await mkdtemp(path.join(tmpdir(), 'wharf-upgrade-pull-'))
    t.after(() => rm(out, { recursive: true, force: true }))
    const creds = `${value('DEPLOY_USERNAME')}:${value('DEPLOY_TOKEN')}`
    const r = await run(
      'skopeo',
      ['--insecure-policy', 'copy', '--src-tls-verify=false', '--src-creds', creds, `docker://${wharf.host}/acme/app:v1`, `oci:${out}:v1`],
      { timeoutMs: 120_000 },
    )
    assert.equal(r.code, 0, describeResult(r))
    const index = JSON.parse(await readFile(path.join(out, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> }
    assert.equal(index.manifests[0]?.digest, value('MANIFEST'))
    for (const digest of [value('MANIFEST'), value('CONFIG'), value('LAYER')]) {
      const bytes = await readFile(path.join(out, 'blobs', 'sha256', digest.slice('sha256:'.length)))
      assert.equal(`sha256:${createHash('sha256').update(bytes).digest('hex')}`, digest)
    }
  })

  it('clones the git repository at the pre-upgrade commit', async (t) => {
    const client = await gitClient('wharf-upgrade-git-')
    t.after(() => client.dispose())
    const clone = await client.git(['clone', `${wharf.url}/acme/app.git`, 'app'], { creds: { username: 'alice', password: pat } })
    assert.equal(clone.code, 0, describeResult(clone))
    const head = await client.git(['rev-parse', 'HEAD'], { cwd: path.join(client.work, 'app') })
    assert.equal(head.stdout.trim(), value('COMMIT'))
    assert.equal(await readFile(path.join(client.work, 'app', 'README.md'), 'utf8'), 'hello from before the upgrade\n')
  })
})

it('refuses a database written by a newer release with one clear line, and leaves it untouched', async (t) => {
  const dir = await copyFixture()
  t.after(() => rm(dir, { recursive: true, force: true }))
  const data = path.join(dir, 'data')
  const db = new DatabaseSync(path.join(data, 'wharf.db'))
  db.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('9999-from-the-future', new Date().toISOString())
  db.close()
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))
  for (const args of [
    ['serve', '--listen', '127.0.0.1:0', '--data', data],
    ['admin', 'user', 'create', '--username', 'carol', '--data', data],
  ]) {
    const r = spawnSync(projectNode, ['src/cli/main.ts', ...args], { cwd: repoRoot, env, encoding: 'utf8', timeout: 60_000 })
    assert.notEqual(r.status, 0, `${args[0]}: ${r.stdout}`)
    const lines = r.stderr.trim().split('\n')
    assert.equal(lines.length, 1, r.stderr)
    assert.match(lines[0]!, /newer Wharf \(migration 9999-from-the-future is unknown to this version\); downgrades are not supported/)
  }
  // Nothing ran: the later migrations are still missing, and the future one is still recorded.
  assert.deepEqual(appliedMigrations(data).slice(-2), ['0006-sessions', '9999-from-the-future'])
})
