import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { serviceAliases, splitNameAndVersion, withDefaultTag } from './image-names.ts'

const DIGEST = '@sha256:123456789012345678901234567890123456789012345678901234567890abcd'

// The table of gitlab-runner's helpers/container/services tests: description → image, service, version, aliases.
const CASES: [string, string, string, string, string[]][] = [
  ['service', 'service:latest', 'service', 'latest', ['service']],
  ['service:version', 'service:version', 'service', 'version', ['service']],
  ['docker:dind', 'docker:dind', 'docker', 'dind', ['docker']],
  ['namespace/service', 'namespace/service:latest', 'namespace/service', 'latest', ['namespace__service', 'namespace-service']],
  [
    'domain.tld/namespace/service:version',
    'domain.tld/namespace/service:version',
    'domain.tld/namespace/service',
    'version',
    ['domain.tld__namespace__service', 'domain.tld-namespace-service'],
  ],
  [
    'domain.tld:8080/service',
    'domain.tld:8080/service:latest',
    'domain.tld/service',
    'latest',
    ['domain.tld__service', 'domain.tld-service'],
  ],
  [
    'subdomain.domain.tld:8080/namespace/service:version',
    'subdomain.domain.tld:8080/namespace/service:version',
    'subdomain.domain.tld/namespace/service',
    'version',
    ['subdomain.domain.tld__namespace__service', 'subdomain.domain.tld-namespace-service'],
  ],
  [`service${DIGEST}`, `service${DIGEST}`, 'service', DIGEST, ['service']],
  [
    `domain.tld:8080/namespace/service${DIGEST}`,
    `domain.tld:8080/namespace/service${DIGEST}`,
    'domain.tld/namespace/service',
    DIGEST,
    ['domain.tld__namespace__service', 'domain.tld-namespace-service'],
  ],
]

describe('service names and aliases', () => {
  for (const [description, image, service, version, aliases] of CASES) {
    it(description, () => {
      assert.deepEqual(splitNameAndVersion(description), { image, service, version, aliases })
    })
  }

  it('explicit aliases come first, comma or space separated, without duplicates', () => {
    assert.deepEqual(serviceAliases('docker:dind', 'dind, engine docker'), ['dind', 'engine', 'docker'])
    assert.deepEqual(serviceAliases('127.0.0.1:5000/e2e/redis:7', undefined), ['127.0.0.1__e2e__redis', '127.0.0.1-e2e-redis'])
  })

  it('adds :latest only when there is no tag or digest', () => {
    assert.equal(withDefaultTag('busybox'), 'busybox:latest')
    assert.equal(withDefaultTag('localhost:5000/a/b'), 'localhost:5000/a/b:latest')
    assert.equal(withDefaultTag('localhost:5000/a/b:1'), 'localhost:5000/a/b:1')
    assert.equal(withDefaultTag(`a${DIGEST}`), `a${DIGEST}`)
  })
})
