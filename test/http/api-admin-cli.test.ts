// `wharf admin`: offline creation of users, groups, projects and tokens on the data directory,
// then the server built over the same directory accepts what was created.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test } from 'node:test'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { createServices } from '../../src/services.ts'
import { createFsDriver } from '../../src/storage/fs-driver.ts'
import { openTestDb, testDatabaseUrl } from '../helpers/database.ts'

const repo = resolve(import.meta.dirname, '..', '..')
const node = join(repo, 'node_modules', '.bin', 'node')

async function wharf(data: string, args: string[], input?: string) {
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    WHARF_ROOT_PASSWORD: 'root-password-123',
    WHARF_LOG_LEVEL: 'silent',
    WHARF_DATABASE_URL: await testDatabaseUrl(data),
  }
  const r = spawnSync(node, ['src/cli/main.ts', 'admin', ...args, '--data', data], {
    cwd: repo,
    env,
    input: input ?? '',
    encoding: 'utf8',
    timeout: 60_000,
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

test('wharf admin creates users, groups, projects and tokens that the server then accepts', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'wharf-admin-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  const data = join(root, 'data')

  let r = await wharf(data, ['user', 'create', '--username', 'alice', '--password-stdin'], 'alice-password-1\n')
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /created user alice/)
  r = await wharf(data, ['group', 'create', '--path', 'Team', '--visibility', 'internal', '--owner', 'alice'])
  assert.equal(r.code, 0, r.stderr)
  r = await wharf(data, ['project', 'create', '--path', 'team/App', '--visibility', 'private'])
  assert.equal(r.code, 0, r.stderr)
  assert.match(r.stdout, /team\/app/)
  // Paths are unique regardless of case: one clear line, non-zero exit.
  r = await wharf(data, ['project', 'create', '--path', 'TEAM/app'])
  assert.equal(r.code, 1)
  assert.match(r.stderr, /^wharf admin project create: the path .* is already taken.*\n$/)
  r = await wharf(data, [
    'token',
    'create',
    '--user',
    'alice',
    '--name',
    'ci',
    '--scopes',
    'api,read_registry',
    '--expires-at',
    '2999-01-01',
  ])
  assert.equal(r.code, 0, r.stderr)
  const pat = r.stdout.trim()
  assert.match(pat, /^glpat-\S+$/)
  r = await wharf(data, ['deploy-token', 'create', '--project', 'team/app', '--scopes', 'read_registry'])
  assert.equal(r.code, 0, r.stderr)
  const deployUser = /username: (\S+)/.exec(r.stdout)?.[1]
  const deployToken = /token:\s+(\S+)/.exec(r.stdout)?.[1]
  assert.ok(deployUser && deployToken?.startsWith('gldt-'), r.stdout)

  // Clear one-line errors for bad input.
  for (const args of [
    ['token', 'create', '--user', 'alice', '--name', 'x', '--scopes', 'bogus'],
    ['token', 'create', '--user', 'nobody', '--name', 'x', '--scopes', 'api'],
    ['project', 'create', '--path', 'nowhere/app'],
    ['user', 'create'],
    ['frob'],
  ]) {
    r = await wharf(data, args)
    assert.notEqual(r.code, 0, args.join(' '))
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr)
    assert.match(r.stderr, /^wharf admin/)
  }

  // The server over the same data sees all of it.
  const db = await openTestDb(data)
  const services = await createServices(db, createFsDriver(join(data, 'storage')), {
    publicUrl: 'http://wharf.test',
    tokenTtlSeconds: 300,
    pageMax: 100,
  })
  const app = await buildApp({
    logger: pino({ level: 'silent' }),
    ...services,
    publicUrl: 'http://wharf.test',
    limits: { manifestBytes: 4 << 20 },
  })
  t.after(async () => {
    await app.close()
    await db.destroy()
  })
  const me = await app.inject({ method: 'GET', url: '/api/v4/user', headers: { 'private-token': pat } })
  assert.equal(me.statusCode, 200, me.body)
  assert.equal((me.json() as { username: string }).username, 'alice')
  const project = await app.inject({ method: 'GET', url: '/api/v4/projects/team%2Fapp', headers: { 'private-token': pat } })
  assert.equal(project.statusCode, 200, project.body) // alice owns the group, so she sees its private project
  const basic = (u: string, p: string) => `Basic ${Buffer.from(`${u}:${p}`).toString('base64')}`
  const pw = await app.inject({
    method: 'GET',
    url: '/jwt/auth?service=container_registry&scope=repository:team/app:pull,push',
    headers: { authorization: basic('alice', 'alice-password-1') },
  })
  assert.equal(pw.statusCode, 200, pw.body)
  const dt = await app.inject({
    method: 'GET',
    url: '/jwt/auth?service=container_registry&scope=repository:team/app:pull,push',
    headers: { authorization: basic(deployUser!, deployToken!) },
  })
  assert.equal(dt.statusCode, 200, dt.body)
  assert.deepEqual((dt.json() as { token: string }).token.split('.').length, 3)
})
