import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { splitDependencyProxyName } from '../core/names.ts'
import { groupCacheRepository, mirrorCacheRepository, upstreamImageName } from './names.ts'

describe('upstream image names', () => {
  it("follows Docker Hub's rules: official images under library/, docker.io/ and index.docker.io/ prefixes", () => {
    assert.equal(upstreamImageName('docker.io', 'alpine'), 'library/alpine')
    assert.equal(upstreamImageName('docker.io', 'library/alpine'), 'library/alpine')
    assert.equal(upstreamImageName('docker.io', 'docker.io/library/alpine'), 'library/alpine')
    assert.equal(upstreamImageName('docker.io', 'index.docker.io/alpine'), 'library/alpine')
    assert.equal(upstreamImageName('docker.io', 'bitnami/redis'), 'bitnami/redis')
    // Other registries keep names as they are.
    assert.equal(upstreamImageName('ghcr.io', 'alpine'), 'alpine')
    assert.equal(upstreamImageName('quay.io', 'docker.io/x'), 'docker.io/x')
  })

  it('places cached copies where no project can own them', () => {
    assert.equal(groupCacheRepository('Team/Sub', 'library/alpine'), 'team/sub/dependency_proxy/containers/library/alpine')
    assert.equal(mirrorCacheRepository('docker.io', 'library/alpine'), 'dependency_proxy/docker.io/library/alpine')
    assert.equal(mirrorCacheRepository('localhost:5000', 'x'), 'dependency_proxy/localhost-5000/x')
    assert.throws(() => groupCacheRepository('g', 'a'.repeat(250)), /too long/)
  })

  it('splits GitLab group paths', () => {
    assert.deepEqual(splitDependencyProxyName('team/sub/dependency_proxy/containers/alpine'), { group: 'team/sub', image: 'alpine' })
    assert.deepEqual(splitDependencyProxyName('team/dependency_proxy/containers/docker.io/library/alpine'), {
      group: 'team',
      image: 'docker.io/library/alpine',
    })
    assert.equal(splitDependencyProxyName('dependency_proxy/containers/alpine'), undefined)
    assert.equal(splitDependencyProxyName('team/app'), undefined)
    assert.equal(splitDependencyProxyName('team/dependency_proxy/containers/'), undefined)
  })
})
