import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { healthcheckPort, privilegeHostConfig } from './docker-executor.ts'
import { variable } from './script.ts'

describe('docker executor host config', () => {
  it('passes capabilities and security options to the engine, systempaths=unconfined as the docker CLI sends it', () => {
    assert.deepEqual(privilegeHostConfig(false, [], [], []), { Privileged: false })
    assert.deepEqual(privilegeHostConfig(false, ['ALL'], ['SYS_RESOURCE'], ['seccomp=unconfined', 'systempaths=unconfined']), {
      Privileged: false,
      CapAdd: ['ALL'],
      CapDrop: ['SYS_RESOURCE'],
      SecurityOpt: ['seccomp=unconfined'],
      MaskedPaths: [],
      ReadonlyPaths: [],
    })
    assert.deepEqual(privilegeHostConfig(true, [], [], ['systempaths:unconfined']), {
      Privileged: true,
      MaskedPaths: [],
      ReadonlyPaths: [],
    })
  })

  it("reads a service's HEALTHCHECK_TCP_PORT (the last one wins; junk is ignored)", () => {
    assert.equal(healthcheckPort([]), undefined)
    assert.equal(healthcheckPort([variable('HEALTHCHECK_TCP_PORT', '2376')]), 2376)
    assert.equal(healthcheckPort([variable('HEALTHCHECK_TCP_PORT', '2375'), variable('HEALTHCHECK_TCP_PORT', ' 2376 ')]), 2376)
    for (const bad of ['', 'http', '0', '70000', '23 75'])
      assert.equal(healthcheckPort([variable('HEALTHCHECK_TCP_PORT', bad)]), undefined, bad)
  })
})
