import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { containerMirrorUrl, dindCommand, hubRepository, isDindImage, mirroredName, resolveMirror } from './mirror.ts'

const DIGEST = '@sha256:123456789012345678901234567890123456789012345678901234567890abcd'

describe('Docker Hub images through the registry mirror', () => {
  it("uses the server's announced mirror with `auto`, the runner's own URL, or none", () => {
    assert.equal(resolveMirror('auto', 'http://127.0.0.1:5001')?.origin, 'http://127.0.0.1:5001')
    assert.equal(resolveMirror('auto', undefined), undefined)
    assert.equal(resolveMirror('auto', ''), undefined)
    assert.equal(resolveMirror('auto', 'ftp://x:1'), undefined, 'only http(s)')
    assert.equal(resolveMirror('auto', 'not a url'), undefined)
    assert.equal(resolveMirror('off', 'http://127.0.0.1:5001'), undefined)
    assert.equal(resolveMirror('https://mirror.example:5001', 'http://127.0.0.1:5001')?.origin, 'https://mirror.example:5001')
  })

  it("maps Docker Hub's names (library/, docker.io/ prefixes, tags, digests) and leaves other registries alone", () => {
    const m = new URL('http://127.0.0.1:5001')
    assert.equal(mirroredName('nginx:latest', m), '127.0.0.1:5001/library/nginx:latest')
    assert.equal(mirroredName('docker:dind', m), '127.0.0.1:5001/library/docker:dind')
    assert.equal(mirroredName('bitnami/redis:7', m), '127.0.0.1:5001/bitnami/redis:7')
    assert.equal(mirroredName('docker.io/library/alpine:3', m), '127.0.0.1:5001/library/alpine:3')
    assert.equal(mirroredName('index.docker.io/alpine', m), '127.0.0.1:5001/library/alpine:latest')
    assert.equal(mirroredName(`alpine${DIGEST}`, m), `127.0.0.1:5001/library/alpine${DIGEST}`)
    for (const other of [
      '127.0.0.1:5000/group/app:main',
      'registry.example/app:1',
      'localhost/app:1',
      'quay.io/org/app:1',
      `ghcr.io/o/a${DIGEST}`,
      '127.0.0.1:5000/g/dependency_proxy/containers/alpine:3',
    ]) {
      assert.equal(hubRepository(other), undefined, other)
    }
    assert.equal(hubRepository('Bad/Name:1'), undefined, 'not a valid repository name')
  })

  it('recognizes docker:*dind services', () => {
    for (const yes of ['docker:dind', 'docker:27-dind', 'docker:dind-rootless', 'docker.io/library/docker:24.0-dind'])
      assert.ok(isDindImage(yes), yes)
    for (const no of ['docker:latest', 'docker:cli', `docker${DIGEST}`, 'me/docker:dind', 'registry.example/docker:dind'])
      assert.ok(!isDindImage(no), no)
  })

  it("appends --registry-mirror to a daemon's flags only, never over the user's own mirror", () => {
    const url = 'http://172.18.0.1:5001'
    assert.deepEqual(dindCommand([], url), [`--registry-mirror=${url}`])
    assert.deepEqual(dindCommand(['--tls=false', '--mtu=1400'], url), ['--tls=false', '--mtu=1400', `--registry-mirror=${url}`])
    assert.equal(dindCommand(['--registry-mirror=https://mine.example'], url), undefined)
    assert.equal(dindCommand(['--registry-mirror', 'https://mine.example'], url), undefined)
    assert.equal(dindCommand(['dockerd', '--debug'], url), undefined, 'a command, not flags')
    assert.equal(dindCommand(['sh', '-c', 'dockerd'], url), undefined)
  })

  it("gives containers a loopback mirror at their network's gateway; other hosts as they are", () => {
    const loop = new URL('http://127.0.0.1:5001')
    assert.equal(containerMirrorUrl(loop, 'wharf-job-1', '172.18.0.1'), 'http://172.18.0.1:5001')
    assert.equal(containerMirrorUrl(new URL('http://localhost:5001/'), '', '10.0.0.1'), 'http://10.0.0.1:5001')
    assert.equal(containerMirrorUrl(new URL('http://[::1]:5001'), 'n', 'fd00::1'), 'http://[fd00::1]:5001')
    assert.equal(containerMirrorUrl(loop, 'host', undefined), 'http://127.0.0.1:5001')
    assert.equal(containerMirrorUrl(loop, 'none', undefined), undefined)
    assert.equal(containerMirrorUrl(new URL('https://wharf.example:5001'), 'wharf-job-1', '172.18.0.1'), 'https://wharf.example:5001')
  })
})
