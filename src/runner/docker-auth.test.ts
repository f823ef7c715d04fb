import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import {
  authForImage,
  credentialsEntries,
  DockerAuthConfigError,
  mergeAuthSources,
  normalizeImageRef,
  parseDockerAuthConfig,
  registryPath,
  runCredentialHelper,
  type HelperRunner,
} from './docker-auth.ts'

const b64 = (s: string) => Buffer.from(s).toString('base64')

describe('DOCKER_AUTH_CONFIG', () => {
  it('normalizes image references and config keys as gitlab-runner does', () => {
    assert.equal(normalizeImageRef('nginx'), 'docker.io/nginx')
    assert.equal(normalizeImageRef('library/nginx:1.25'), 'docker.io/library/nginx')
    assert.equal(normalizeImageRef('index.docker.io/user/app:1'), 'docker.io/user/app')
    assert.equal(normalizeImageRef('Registry.Example:5000/Group/App:1@sha256:abc'), 'registry.example:5000/Group/App')
    assert.equal(normalizeImageRef('localhost/app'), 'localhost/app')
    assert.equal(registryPath('https://index.docker.io/v1/'), 'docker.io')
    assert.equal(registryPath('http://Registry.Example:5000/v2/'), 'registry.example:5000')
    assert.equal(registryPath('registry.example:5000/group/'), 'registry.example:5000/group')
    assert.equal(registryPath('registry.example/group/app:tag'), 'registry.example/group/app')
  })

  it('reads auths with base64 auth, username/password and identity tokens', async () => {
    const entries = await parseDockerAuthConfig(
      JSON.stringify({
        auths: {
          'registry.example:5000': { auth: b64('alice:pa:ss') },
          'https://index.docker.io/v1/': { username: 'bob', password: 'hub' },
          'tokens.example': { identitytoken: 'refresh-me' },
          'empty.example': {},
        },
      }),
      '$DOCKER_AUTH_CONFIG',
    )
    assert.deepEqual(
      entries.map((e) => e.path),
      ['docker.io', 'registry.example:5000', 'tokens.example'],
    )
    assert.deepEqual(await authForImage('registry.example:5000/team/app:1', entries)!.get(), {
      username: 'alice',
      password: 'pa:ss',
      serveraddress: 'registry.example:5000',
    })
    assert.deepEqual(await authForImage('redis:7', entries)!.get(), {
      username: 'bob',
      password: 'hub',
      serveraddress: 'https://index.docker.io/v1/',
    })
    assert.deepEqual(await authForImage('tokens.example/x', entries)!.get(), {
      identitytoken: 'refresh-me',
      serveraddress: 'tokens.example',
    })
    assert.equal(authForImage('other.example/x', entries), undefined)
  })

  it('uses the longest matching registry path', async () => {
    const entries = await parseDockerAuthConfig(
      JSON.stringify({ auths: { 'r.example': { auth: b64('a:1') }, 'r.example/team': { auth: b64('b:2') } } }),
      's',
    )
    assert.equal((await authForImage('r.example/team/app', entries)!.get()).username, 'b')
    assert.equal((await authForImage('r.example/other/app', entries)!.get()).username, 'a')
  })

  it('runs credHelpers and credsStore only for the registry in use', async () => {
    const calls: string[] = []
    const run: HelperRunner = async (helper, action, input) => {
      calls.push(`${helper} ${action} ${input}`)
      if (action === 'list') return JSON.stringify({ 'store.example': 'carol' })
      return JSON.stringify({ ServerURL: input, Username: helper === 'ecr-login' ? 'AWS' : '<token>', Secret: `secret-from-${helper}` })
    }
    const entries = await parseDockerAuthConfig(
      JSON.stringify({ credsStore: 'desktop', credHelpers: { '123.dkr.ecr.example': 'ecr-login', 'gcr.example': 'gcloud' } }),
      'cfg',
      run,
    )
    assert.deepEqual(calls, ['desktop list '])
    assert.deepEqual(await authForImage('123.dkr.ecr.example/app:1', entries)!.get(), {
      username: 'AWS',
      password: 'secret-from-ecr-login',
      serveraddress: '123.dkr.ecr.example',
    })
    assert.deepEqual(await authForImage('store.example/app', entries)!.get(), {
      identitytoken: 'secret-from-desktop',
      serveraddress: 'store.example',
    })
    assert.deepEqual(calls, ['desktop list ', 'ecr-login get 123.dkr.ecr.example', 'desktop get store.example'])
  })

  it('runs a real docker-credential-<name> program from PATH', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'wharf-credhelper-'))
    after(() => rmSync(dir, { recursive: true, force: true }))
    const helper = path.join(dir, 'docker-credential-wharftest')
    writeFileSync(
      helper,
      '#!/bin/sh\nread server\nprintf \'{"ServerURL":"%s","Username":"helper-user","Secret":"helper-secret"}\' "$server"\n',
    )
    chmodSync(helper, 0o755)
    const oldPath = process.env.PATH
    process.env.PATH = `${dir}:${oldPath}`
    try {
      const entries = await parseDockerAuthConfig(JSON.stringify({ credHelpers: { 'helped.example': 'wharftest' } }), 'cfg')
      assert.deepEqual(await authForImage('helped.example/app', entries)!.get(), {
        username: 'helper-user',
        password: 'helper-secret',
        serveraddress: 'helped.example',
      })
      await assert.rejects(runCredentialHelper('../evil', 'get', 'x'), /invalid credential helper name/)
      await assert.rejects(runCredentialHelper('missing-helper-xyz', 'get', 'x'), /docker-credential-missing-helper-xyz: ENOENT/)
    } finally {
      process.env.PATH = oldPath
    }
  })

  it('rejects malformed configs with a message naming the source', async () => {
    await assert.rejects(
      parseDockerAuthConfig('{nope', '$DOCKER_AUTH_CONFIG'),
      (e: Error) => e instanceof DockerAuthConfigError && /\$DOCKER_AUTH_CONFIG: not valid JSON/.test(e.message),
    )
    await assert.rejects(parseDockerAuthConfig('[]', 'x'), /expected a JSON object/)
    await assert.rejects(
      parseDockerAuthConfig(JSON.stringify({ auths: { r: { auth: b64('nocolon') } } }), 'x'),
      /auths\.r\.auth is not base64/,
    )
  })

  it('gives the first source precedence: DOCKER_AUTH_CONFIG over the job payload credentials', async () => {
    const user = await parseDockerAuthConfig(
      JSON.stringify({ auths: { '127.0.0.1:5000': { auth: b64('me:mine') } } }),
      '$DOCKER_AUTH_CONFIG',
    )
    const job = credentialsEntries([
      { type: 'registry', url: '127.0.0.1:5000', username: 'gitlab-ci-token', password: 'glcbt-x' },
      { type: 'registry', url: 'other:5000', username: 'gitlab-ci-token', password: 'glcbt-x' },
    ])
    const merged = mergeAuthSources([user, job])
    assert.equal((await authForImage('127.0.0.1:5000/g/p:1', merged)!.get()).username, 'me')
    assert.equal(authForImage('other:5000/g/p', merged)!.source, 'job payload (Wharf registry)')
  })

  it("pulls the group path's images with the job's dependency proxy credential (the port written out)", async () => {
    const job = credentialsEntries([
      { type: 'registry', url: 'wharf.test', username: 'gitlab-ci-token', password: 'glcbt-x' },
      { type: 'registry', url: 'wharf.test:443', username: 'gitlab-ci-token', password: 'glcbt-x' },
    ])
    const entry = authForImage('wharf.test:443/team/dependency_proxy/containers/alpine:3', job)
    assert.deepEqual(await entry!.get(), { username: 'gitlab-ci-token', password: 'glcbt-x', serveraddress: 'wharf.test:443' })
  })
})
