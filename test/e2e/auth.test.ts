// End-to-end: registry authentication with the real docker CLI (a private engine) and skopeo.
// Accounts, projects and tokens are made through the REST API, as an administrator would.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { testImages, type TestImages } from '../helpers/images.ts'
import { run, describeResult, type RunResult } from '../helpers/run.ts'
import { http, layoutManifest, parseChallenge, registryToken } from '../helpers/registry.ts'

let wharf: Wharf
let engine: Engine
let images: TestImages
let work: string

const ALICE = { username: 'alice', password: 'alice-e2e-password' }
let aliceToken = '' // OAuth token for alice's own API calls
let sharedDeployToken = { username: '', token: '' }

async function log(): Promise<string> {
  return `--- server log ---\n${await wharf.logTail(30)}`
}

async function docker(args: string[], input?: string): Promise<RunResult> {
  return engine.docker(args, { timeoutMs: 120_000, ...(input === undefined ? {} : { input }) })
}

async function dockerOk(args: string[], input?: string): Promise<RunResult> {
  const r = await docker(args, input)
  assert.equal(r.code, 0, `docker failed:\n${describeResult(r)}\n${await log()}`)
  return r
}

async function dockerFails(args: string[], input?: string): Promise<RunResult> {
  const r = await docker(args, input)
  assert.notEqual(r.code, 0, `docker should have failed:\n${describeResult(r)}`)
  return r
}

async function login(username: string, secret: string): Promise<RunResult> {
  return dockerOk(['login', '--username', username, '--password-stdin', wharf.host], secret)
}

function skopeo(args: string[]): Promise<RunResult> {
  return run('skopeo', ['--insecure-policy', ...args], { timeoutMs: 120_000 })
}

async function skopeoOk(args: string[]): Promise<RunResult> {
  const r = await skopeo(args)
  assert.equal(r.code, 0, `skopeo failed:\n${describeResult(r)}\n${await log()}`)
  return r
}

const ref = (repoAndTag: string) => `${wharf.host}/${repoAndTag}`
const rootCreds = () => `root:${wharf.rootPassword}`

/** Pushes the amd64 test image to `repo:tag` as root with skopeo. */
async function seed(repoAndTag: string): Promise<void> {
  await skopeoOk(['copy', '--dest-tls-verify=false', '--dest-creds', rootCreds(), images.oci('amd64'), `docker://${ref(repoAndTag)}`])
}

async function apiOk(method: string, apiPath: string, body?: unknown, token?: string): Promise<any> {
  const r = await wharf.api(method, apiPath, body, token === undefined ? {} : { token })
  assert.ok(r.status >= 200 && r.status < 300, r.describe)
  return r.json
}

/** The tag-and-push dance: the loaded test image under `repo:tag`. */
async function pushAs(repoAndTag: string): Promise<RunResult> {
  await dockerOk(['tag', images.dockerArchiveTag, ref(repoAndTag)])
  return docker(['push', ref(repoAndTag)])
}

before(async () => {
  images = await testImages()
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-auth-'))
  ;[wharf, engine] = await Promise.all([startWharf(), startEngine()])
  await dockerOk(['load', '-i', images.dockerArchive])

  // Root's projects: one private, one public, one private with a read-only deploy token.
  await wharf.createProject('e2e/secret', 'private')
  await wharf.createProject('e2e/public', 'public')
  const shared = await wharf.createProject('e2e/shared', 'private')
  const dt = await apiOk('POST', `/api/v4/projects/${shared}/deploy_tokens`, { name: 'read-only', scopes: ['read_registry'] })
  sharedDeployToken = { username: dt.username, token: dt.token }
  await seed('e2e/public:v1')
  await seed('e2e/shared:v1')

  // Alice, with her own project (created by her) and developer access to Team/App.
  const alice = await apiOk('POST', '/api/v4/users', {
    username: ALICE.username,
    password: ALICE.password,
    name: 'Alice',
    email: 'alice@example.com',
  })
  const oauth = await wharf.api('POST', '/oauth/token', { grant_type: 'password', ...ALICE }, { token: null })
  assert.equal(oauth.status, 200, oauth.describe)
  aliceToken = oauth.json.access_token
  const own = await apiOk('POST', '/api/v4/projects', { path: 'app', name: 'app' }, aliceToken)
  assert.equal(own.path_with_namespace, 'alice/app')
  const teamApp = await wharf.createProject('Team/App', 'private')
  await apiOk('POST', `/api/v4/projects/${teamApp}/members`, { user_id: alice.id, access_level: 30 })
  // Look-alike neighbours, root's and private.
  await wharf.createProject('Team/App2', 'private')
  await wharf.createProject('TeamX/App', 'private')
  await seed('team/app2:v1')
  await seed('teamx/app:v1')
})

after(async () => {
  await Promise.all([engine?.stop(), wharf?.stop()])
  if (work) await rm(work, { recursive: true, force: true })
})

describe('registry auth with docker and skopeo', { timeout: 300_000 }, () => {
  it('an anonymous docker push is denied', async () => {
    const push = await pushAs('e2e/secret:anon')
    assert.notEqual(push.code, 0, describeResult(push))
    assert.match(push.stderr + push.stdout, /denied: push access to e2e\/secret denied/, describeResult(push))
  })

  it('docker login with a wrong password fails; with the root password it succeeds, with no identity token stored', async () => {
    const bad = await dockerFails(['login', '--username', 'root', '--password-stdin', wharf.host], 'not-the-password')
    assert.match(bad.stderr, /unauthorized|incorrect username or password|invalid username or password/i, describeResult(bad))
    const ok = await login('root', wharf.rootPassword)
    assert.match(ok.stdout, /Login Succeeded/, describeResult(ok))
    // docker login asks for offline_token; like GitLab, Wharf hands out no refresh token there, so
    // docker keeps the credentials it was given (as for any registry without a credential helper)
    // and no `identitytoken` that podman and buildah would refuse (test/e2e/login-order.test.ts).
    const config = JSON.parse(await readFile(path.join(engine.env.DOCKER_CONFIG!, 'config.json'), 'utf8')) as {
      auths: Record<string, { identitytoken?: string; auth?: string }>
    }
    const entry = config.auths[wharf.host]
    assert.ok(entry?.auth, JSON.stringify(config))
    assert.equal(entry.identitytoken, undefined, JSON.stringify(config))
  })

  it('root pushes to its private project', async () => {
    const r = await pushAs('e2e/secret:v1')
    assert.equal(r.code, 0, `${describeResult(r)}\n${await log()}`)
    assert.match(r.stdout, /digest: sha256:[0-9a-f]{64}/)
  })

  it('alice pushes to her own project, and is denied someone else’s private project with the reason', async () => {
    await login(ALICE.username, ALICE.password)
    const own = await pushAs('alice/app:v1')
    assert.equal(own.code, 0, `${describeResult(own)}\n${await log()}`)
    const denied = await pushAs('e2e/secret:alice')
    assert.notEqual(denied.code, 0, describeResult(denied))
    assert.match(
      denied.stderr + denied.stdout,
      /denied: push access to e2e\/secret denied: no project you can access exists at that path/,
      describeResult(denied),
    )
    // Nor can she read it.
    const pull = await dockerFails(['pull', ref('e2e/secret:v1')])
    assert.match(pull.stderr, /denied|not found|does not exist/i, describeResult(pull))
  })

  it('a push to a path with no project is refused, saying so', async () => {
    const r = await pushAs('alice/nothing-here:v1')
    assert.notEqual(r.code, 0, describeResult(r))
    assert.match(r.stderr + r.stdout, /no project you can access exists at that path/, describeResult(r))
  })

  it('uppercase or look-alike paths cannot reach another project', async () => {
    // The docker CLI itself rejects uppercase repository names.
    const upper = await dockerFails(['push', ref('Team/App:v1')])
    assert.match(upper.stderr, /invalid reference format/i, describeResult(upper))
    assert.match(upper.stderr, /must be lowercase/i, describeResult(upper))
    // Team/App's registry path is team/app, where alice is a developer.
    const lower = await pushAs('team/app:v1')
    assert.equal(lower.code, 0, `${describeResult(lower)}\n${await log()}`)
    for (const repo of ['team/app2', 'teamx/app', 'team/ap']) {
      const r = await pushAs(`${repo}:alice`)
      assert.notEqual(r.code, 0, `${repo}: ${describeResult(r)}`)
      assert.match(r.stderr + r.stdout, /denied/, describeResult(r))
      const inspect = await skopeo([
        'inspect',
        '--tls-verify=false',
        '--creds',
        `${ALICE.username}:${ALICE.password}`,
        `docker://${ref(`${repo}:v1`)}`,
      ])
      assert.notEqual(inspect.code, 0, `${repo}: ${describeResult(inspect)}`)
    }
    // Root's images there are untouched.
    const tags = await http('GET', `${wharf.url}/v2/team/app2/tags/list`)
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['v1'], tags.describe)
  })

  it('docker login with a PAT works; revoking the PAT stops it at once', async () => {
    const pat = await apiOk(
      'POST',
      '/api/v4/user/personal_access_tokens',
      { name: 'laptop', scopes: ['read_registry', 'write_registry'] },
      aliceToken,
    )
    assert.match(pat.token, /^glpat-/)
    await dockerOk(['logout', wharf.host])
    await login(ALICE.username, pat.token)
    const push = await pushAs('alice/app:pat')
    assert.equal(push.code, 0, `${describeResult(push)}\n${await log()}`)
    await dockerOk(['rmi', ref('alice/app:pat')])
    await dockerOk(['pull', ref('alice/app:pat')])

    // A registry token minted from the PAT works until the PAT is revoked...
    const url = `${wharf.url}/v2/alice/app/tags/list`
    const challenge = parseChallenge((await http('GET', url, { as: 'none' })).headers.get('www-authenticate'))
    assert.ok(challenge)
    const token = await registryToken(challenge, { username: ALICE.username, password: pat.token })
    assert.equal((await http('GET', url, { headers: { authorization: `Bearer ${token}` } })).status, 200)
    const revoke = await wharf.api('DELETE', `/api/v4/personal_access_tokens/${pat.id}`, undefined, { token: aliceToken })
    assert.equal(revoke.status, 204, revoke.describe)
    // ...and not a moment longer.
    const after = await http('GET', url, { headers: { authorization: `Bearer ${token}` }, as: 'none' })
    assert.equal(after.status, 401, after.describe)
    // docker's stored refresh token came from the PAT: it is dead too.
    await dockerOk(['rmi', ref('alice/app:pat')])
    const pull = await dockerFails(['pull', ref('alice/app:pat')])
    assert.match(pull.stderr, /unauthorized|revoked|denied|authentication required/i, describeResult(pull))
    const again = await pushAs('alice/app:after-revoke')
    assert.notEqual(again.code, 0, describeResult(again))
    await dockerFails(['login', '--username', ALICE.username, '--password-stdin', wharf.host], pat.token)
  })

  it('anonymous pulls of a public project work (skopeo without credentials, docker logged out); private ones do not', async () => {
    await dockerOk(['logout', wharf.host])
    const inspect = await skopeoOk(['inspect', '--tls-verify=false', '--no-creds', `docker://${ref('e2e/public:v1')}`])
    assert.equal((JSON.parse(inspect.stdout) as { Digest: string }).Digest, images.digests.amd64Manifest)
    const dest = path.join(work, 'public')
    await skopeoOk(['copy', '--src-tls-verify=false', '--src-no-creds', `docker://${ref('e2e/public:v1')}`, `oci:${dest}:v1`])
    assert.equal((await layoutManifest(dest, 'v1')).digest, images.digests.amd64Manifest)
    await dockerOk(['pull', ref('e2e/public:v1')])

    const priv = await skopeo(['inspect', '--tls-verify=false', '--no-creds', `docker://${ref('e2e/shared:v1')}`])
    assert.notEqual(priv.code, 0, describeResult(priv))
    assert.match(priv.stderr, /denied|unauthorized|authentication required/i, describeResult(priv))
    // Anonymous writes to the public project are refused.
    const push = await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-no-creds',
      images.oci('amd64'),
      `docker://${ref('e2e/public:anon')}`,
    ])
    assert.notEqual(push.code, 0, describeResult(push))
  })

  it('a read-only deploy token can pull but cannot push', async () => {
    await login(sharedDeployToken.username, sharedDeployToken.token)
    await dockerOk(['pull', ref('e2e/shared:v1')])
    const push = await pushAs('e2e/shared:v2')
    assert.notEqual(push.code, 0, describeResult(push))
    assert.match(push.stderr + push.stdout, /denied: push access to e2e\/shared denied/, describeResult(push))
    const creds = `${sharedDeployToken.username}:${sharedDeployToken.token}`
    await skopeoOk(['inspect', '--tls-verify=false', '--creds', creds, `docker://${ref('e2e/shared:v1')}`])
    const copy = await skopeo([
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      creds,
      images.oci('amd64'),
      `docker://${ref('e2e/shared:v3')}`,
    ])
    assert.notEqual(copy.code, 0, describeResult(copy))
    // It reaches no other private project.
    const other = await skopeo(['inspect', '--tls-verify=false', '--creds', creds, `docker://${ref('e2e/secret:v1')}`])
    assert.notEqual(other.code, 0, describeResult(other))
    const tags = await http('GET', `${wharf.url}/v2/e2e/shared/tags/list`)
    assert.deepEqual(JSON.parse(tags.body.toString()).tags, ['v1'], tags.describe)
  })
})
