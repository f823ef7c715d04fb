// End-to-end: the real git CLI against a freshly started Wharf, over smart HTTP. Credentials come
// from GIT_ASKPASS after Wharf's 401 challenge, as a user's credential helper would give them: they
// never appear in a remote URL or on a command line.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, type RunResult } from '../helpers/run.ts'
import { gitClient, type Creds, type GitClient } from '../helpers/git.ts'

let wharf: Wharf
let client: GitClient
let work: string

const git = (args: string[], opts: { cwd?: string; creds?: Creds } = {}): Promise<RunResult> => client.git(args, opts)

async function gitOk(args: string[], opts: { cwd?: string; creds?: Creds } = {}): Promise<RunResult> {
  const r = await git(args, opts)
  assert.equal(r.code, 0, `git failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(30)}`)
  return r
}

const root = (): Creds => ({ username: 'root', password: wharf.rootPassword })
const repoUrl = (fullPath: string) => `${wharf.url}/${fullPath}.git`

async function apiOk(method: string, apiPath: string, body?: unknown) {
  const r = await wharf.api(method, apiPath, body)
  assert.ok(r.status >= 200 && r.status < 300, r.describe)
  return r.json
}

/** A user with a password, optionally a project member with a GitLab access level, optionally a PAT. */
async function makeUser(
  username: string,
  projectId: number | null,
  accessLevel: number,
  scopes?: string[],
): Promise<{ id: number; creds: Creds }> {
  const password = `pw-${username}-12345`
  const user = await apiOk('POST', '/api/v4/users', { username, name: username, email: `${username}@example.com`, password })
  if (projectId !== null) await apiOk('POST', `/api/v4/projects/${projectId}/members`, { user_id: user.id, access_level: accessLevel })
  if (!scopes) return { id: user.id, creds: { username, password } }
  const pat = await apiOk('POST', `/api/v4/users/${user.id}/personal_access_tokens`, { name: 'git', scopes })
  return { id: user.id, creds: { username, password: pat.token } }
}

interface PushEventJson {
  action_name: string
  author_username: string
  push_data: {
    action: string
    ref_type: string
    ref: string
    commit_from: string | null
    commit_to: string | null
    commit_title: string | null
  }
}

const events = async (projectId: number): Promise<PushEventJson[]> =>
  apiOk('GET', `/api/v4/projects/${projectId}/events?action=pushed&per_page=100`)

before(async () => {
  client = await gitClient()
  work = client.work
  wharf = await startWharf()
})

after(async () => {
  await wharf?.stop()
  await client?.dispose()
})

describe('git over smart HTTP', { timeout: 60_000 }, () => {
  let projectId: number
  let main: string

  it('clones an empty private project, pushes a branch and a tag, and records both pushes', async () => {
    projectId = await wharf.createProject('e2e/app', 'private')
    const clone = await gitOk(['clone', repoUrl('e2e/app'), 'app'], { creds: root() })
    assert.match(clone.stderr, /cloned an empty repository/)
    const dir = path.join(work, 'app')
    await writeFile(path.join(dir, 'README.md'), '# app\n')
    await writeFile(path.join(dir, '.gitlab-ci.yml'), 'test:\n  script: [echo hi]\n')
    await gitOk(['add', '.'], { cwd: dir })
    await gitOk(['commit', '-q', '-m', 'Initial commit', '-m', 'With a body.'], { cwd: dir })
    await gitOk(['push', 'origin', 'main'], { cwd: dir, creds: root() })
    await gitOk(['tag', '-a', 'v1.0.0', '-m', 'First release'], { cwd: dir })
    await gitOk(['push', 'origin', 'v1.0.0'], { cwd: dir, creds: root() })
    main = (await gitOk(['rev-parse', 'HEAD'], { cwd: dir })).stdout.trim()
    // No credentials were written anywhere git keeps them.
    assert.equal((await gitOk(['remote', 'get-url', 'origin'], { cwd: dir })).stdout.trim(), repoUrl('e2e/app'))

    const list = await events(projectId)
    assert.deepEqual(
      list.map((e) => [
        e.action_name,
        e.push_data.action,
        e.push_data.ref_type,
        e.push_data.ref,
        e.push_data.commit_from,
        e.author_username,
      ]),
      [
        ['pushed new', 'created', 'tag', 'v1.0.0', null, 'root'],
        ['pushed new', 'created', 'branch', 'main', null, 'root'],
      ],
    )
    assert.equal(list[1]!.push_data.commit_to, main)
    assert.equal(list[1]!.push_data.commit_title, 'Initial commit')

    const branches = await apiOk('GET', `/api/v4/projects/${projectId}/repository/branches`)
    assert.deepEqual(
      branches.map((b: { name: string; default: boolean; protected: boolean; commit: { id: string; message: string } }) => [
        b.name,
        b.default,
        b.protected,
        b.commit.id,
        b.commit.message,
      ]),
      [['main', true, false, main, 'Initial commit\n\nWith a body.\n']],
    )
    const tags = await apiOk('GET', `/api/v4/projects/${encodeURIComponent('e2e/app')}/repository/tags`)
    assert.deepEqual(
      tags.map((t: { name: string; message: string; commit: { id: string } }) => [t.name, t.message, t.commit.id]),
      [['v1.0.0', 'First release\n', main]],
    )
  })

  it('records a moved branch and a deleted one', async () => {
    const dir = path.join(work, 'app')
    await gitOk(['checkout', '-q', '-b', 'feature'], { cwd: dir })
    await writeFile(path.join(dir, 'feature.txt'), 'f\n')
    await gitOk(['add', '.'], { cwd: dir })
    await gitOk(['commit', '-q', '-m', 'Add feature'], { cwd: dir })
    await gitOk(['push', 'origin', 'feature'], { cwd: dir, creds: root() })
    const feature = (await gitOk(['rev-parse', 'HEAD'], { cwd: dir })).stdout.trim()
    await gitOk(['push', 'origin', 'feature:main'], { cwd: dir, creds: root() })
    await gitOk(['push', 'origin', '--delete', 'feature'], { cwd: dir, creds: root() })
    const [deleted, moved, created] = await events(projectId)
    assert.deepEqual([created!.action_name, created!.push_data.ref, created!.push_data.commit_to], ['pushed new', 'feature', feature])
    assert.deepEqual(
      [moved!.action_name, moved!.push_data.action, moved!.push_data.ref, moved!.push_data.commit_from, moved!.push_data.commit_to],
      ['pushed to', 'pushed', 'main', main, feature],
    )
    assert.deepEqual(
      [
        deleted!.action_name,
        deleted!.push_data.action,
        deleted!.push_data.ref,
        deleted!.push_data.commit_from,
        deleted!.push_data.commit_to,
      ],
      ['deleted', 'removed', 'feature', feature, null],
    )
  })

  it('clones a public project anonymously, but not a private one (401)', async () => {
    await wharf.createProject('e2e/open', 'public')
    const dir = path.join(work, 'app')
    await gitOk(['push', repoUrl('e2e/open'), 'HEAD:main'], { cwd: dir, creds: root() })
    await gitOk(['clone', '-q', repoUrl('e2e/open'), 'open-anon'])
    assert.equal((await gitOk(['log', '-1', '--format=%s'], { cwd: path.join(work, 'open-anon') })).stdout.trim(), 'Add feature')

    const r = await git(['clone', '-q', repoUrl('e2e/app'), 'app-anon'])
    assert.notEqual(r.code, 0, describeResult(r))
    assert.match(r.stderr, /could not read Username|Authentication failed/)
    const res = await fetch(`${repoUrl('e2e/app')}/info/refs?service=git-upload-pack`)
    assert.equal(res.status, 401)
    assert.equal(res.headers.get('www-authenticate'), 'Basic realm="Wharf"')
  })

  it('lets a reporter clone but not push (403)', async () => {
    const reporter = await makeUser('rita', projectId, 20)
    await gitOk(['clone', '-q', repoUrl('e2e/app'), 'app-rita'], { creds: reporter.creds })
    const dir = path.join(work, 'app-rita')
    await gitOk(['commit', '-q', '--allow-empty', '-m', 'reporter change'], { cwd: dir })
    const r = await git(['push', 'origin', 'main'], { cwd: dir, creds: reporter.creds })
    assert.notEqual(r.code, 0, describeResult(r))
    assert.match(r.stderr, /403/)
    assert.match(r.stderr, /not allowed to push/)
  })

  it('lets a read_repository token clone but not push; write_repository pushes', async () => {
    const reader = await makeUser('dora', projectId, 30, ['read_repository'])
    await gitOk(['clone', '-q', repoUrl('e2e/app'), 'app-dora'], { creds: reader.creds })
    const dir = path.join(work, 'app-dora')
    await gitOk(['commit', '-q', '--allow-empty', '-m', 'token change'], { cwd: dir })
    const r = await git(['push', 'origin', 'HEAD:dora'], { cwd: dir, creds: reader.creds })
    assert.notEqual(r.code, 0, describeResult(r))
    assert.match(r.stderr, /write_repository/)

    const writer = await makeUser('walt', projectId, 30, ['write_repository'])
    await gitOk(['push', 'origin', 'HEAD:walt'], { cwd: dir, creds: writer.creds })
    const [e] = await events(projectId)
    assert.deepEqual([e!.action_name, e!.push_data.ref, e!.author_username], ['pushed new', 'walt', 'walt'])
  })

  it('answers 404 for an unknown project to a signed-in user', async () => {
    const r = await git(['ls-remote', repoUrl('e2e/missing')], { creds: root() })
    assert.notEqual(r.code, 0)
    assert.match(r.stderr, /not found|404/i)
  })
})
