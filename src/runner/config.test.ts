import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { loadRunnerConfig, RunnerConfigError, type RunnerFlags } from './config.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'wharf-runner-config-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function file(text: string): string {
  const f = path.join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`)
  writeFileSync(f, text)
  return f
}

const minimal: RunnerFlags = { url: 'http://wharf.test:5000/', token: 'glrt-abc', executor: 'shell' }

function fails(flags: RunnerFlags, pattern: RegExp) {
  assert.throws(
    () => loadRunnerConfig(flags, {}),
    (e: Error) => {
      assert.ok(e instanceof RunnerConfigError, e.message)
      assert.doesNotMatch(e.message, /\n/, 'one line')
      assert.match(e.message, pattern)
      return true
    },
  )
}

describe('runner config', () => {
  it('starts from flags alone, with defaults', () => {
    const c = loadRunnerConfig(minimal, {})
    assert.equal(c.concurrent, 1)
    assert.equal(c.runners.length, 1)
    const r = c.runners[0]!
    assert.equal(r.url, 'http://wharf.test:5000')
    assert.equal(r.executor, 'shell')
    assert.equal(r.docker.image, 'busybox:latest')
    assert.deepEqual(r.docker.pullPolicy, ['always'])
    assert.equal(r.docker.bindDockerSocket, false)
    assert.equal(r.docker.registryMirror, 'auto', "Docker Hub images through the server's mirror unless turned off")
    assert.equal(r.outputLimitBytes, 4096 * 1024)
    assert.ok(path.isAbsolute(r.buildsDir))
  })

  it('reads several runners from a YAML file; flags override every runner', () => {
    const f = file(`
concurrent: 4
shutdown_timeout: 5
runners:
  - name: one
    url: http://a.test
    token: glrt-1
    executor: docker
    builds_dir: b1
    docker:
      image: alpine:3
      pull_policy: [if-not-present, always]
      bind_docker_socket: true
      volumes: ["/srv/cache:/cache:ro"]
  - name: two
    url: http://b.test
    token: glrt-2
    executor: shell
    environment: ["FOO=bar"]
`)
    const c = loadRunnerConfig({ config: f, concurrent: '2', 'clone-url': 'http://172.18.0.1:5000' }, {})
    assert.equal(c.concurrent, 2)
    assert.equal(c.shutdownTimeoutSeconds, 5)
    assert.deepEqual(
      c.runners.map((r) => [r.name, r.executor, r.cloneUrl]),
      [
        ['one', 'docker', 'http://172.18.0.1:5000'],
        ['two', 'shell', 'http://172.18.0.1:5000'],
      ],
    )
    assert.equal(c.runners[0]!.buildsDir, path.join(dir, 'b1'), 'relative paths are relative to the file')
    assert.deepEqual(c.runners[0]!.docker.pullPolicy, ['if-not-present', 'always'])
    assert.equal(c.runners[0]!.docker.bindDockerSocket, true)
    assert.deepEqual(c.runners[1]!.environment, ['FOO=bar'])
  })

  it('reads the privilege settings of job and service containers (docker-in-docker without --privileged)', () => {
    const f = file(`
runners:
  - url: http://a.test
    token: glrt-1
    executor: docker
    docker:
      cap_add: [net_admin]
      security_opt: ["no-new-privileges"]
      services_cap_add: [ALL]
      services_cap_drop: [SYS_RESOURCE]
      services_security_opt: [seccomp=unconfined, "apparmor:unconfined", systempaths=unconfined]
      volumes: ["/sys/fs/cgroup:/sys/fs/cgroup"]
`)
    const d = loadRunnerConfig({ config: f }, {}).runners[0]!.docker
    assert.deepEqual([d.privileged, d.capAdd, d.capDrop, d.securityOpt], [false, ['NET_ADMIN'], [], ['no-new-privileges']])
    assert.deepEqual(
      [d.servicesPrivileged, d.servicesCapAdd, d.servicesCapDrop, d.servicesSecurityOpt],
      [false, ['ALL'], ['SYS_RESOURCE'], ['seccomp=unconfined', 'apparmor:unconfined', 'systempaths=unconfined']],
    )
    assert.deepEqual(d.volumes, ['/sys/fs/cgroup:/sys/fs/cgroup'])
    // services follow `privileged` unless services_privileged says otherwise, as in gitlab-runner
    assert.equal(loadRunnerConfig({ ...minimal, privileged: true }, {}).runners[0]!.docker.servicesPrivileged, true)
    const g = file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {privileged: true, services_privileged: false}}\n')
    assert.deepEqual(
      [
        loadRunnerConfig({ config: g }, {}).runners[0]!.docker.privileged,
        loadRunnerConfig({ config: g }, {}).runners[0]!.docker.servicesPrivileged,
      ],
      [true, false],
    )
  })

  it('reads registry_mirror: auto, off or a URL, the flag over the file', () => {
    const f = file(
      'runners:\n  - {url: http://x, token: t, executor: docker, docker: {registry_mirror: "off"}}\n  - {url: http://y, token: u, executor: docker, docker: {registry_mirror: "http://mirror.example:5001/"}}\n',
    )
    assert.deepEqual(
      loadRunnerConfig({ config: f }, {}).runners.map((r) => r.docker.registryMirror),
      ['off', 'http://mirror.example:5001'],
    )
    assert.deepEqual(
      loadRunnerConfig({ config: f, 'registry-mirror': 'auto' }, {}).runners.map((r) => r.docker.registryMirror),
      ['auto', 'auto'],
    )
  })

  it('names the bad setting in one line', () => {
    fails(
      { ...minimal, 'registry-mirror': 'mirror.example:5001' },
      /--registry-mirror.*expected auto, off or an http:\/\/ or https:\/\/ URL/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {registry_mirror: "http://u:p@m:1"}}\n') },
      /docker\.registry_mirror.*credentials/,
    )
    fails({ ...minimal, executor: 'dokcer' }, /executor \(--executor\): expected one of shell, docker, got "dokcer"/)
    fails({ token: 'glrt-x', executor: 'shell' }, /url.*is required/)
    fails({ url: 'http://x', executor: 'shell' }, /token.*is required/)
    fails({ ...minimal, url: 'ftp://x' }, /--url.*http:\/\/ or https:\/\//)
    fails({ ...minimal, url: 'http://user:pw@x' }, /--url.*credentials/)
    fails({ ...minimal, concurrent: '0' }, /--concurrent.*between 1 and 1000/)
    fails({ ...minimal, concurrent: 'many' }, /--concurrent.*integer/)
    fails(
      { ...minimal, 'pull-policy': 'sometimes' },
      /docker\.pull_policy\[0\] \(--pull-policy\): expected one of always, if-not-present, never/,
    )
    fails({ ...minimal, 'docker-host': '/var/run/docker.sock' }, /docker\.host.*unix:\/\/PATH/)
    fails(
      { config: file('runners:\n  - url: http://x\n    token: t\n    executor: shell\n    buidls_dir: x\n') },
      /runners\[0\]\.buidls_dir .*unknown setting/,
    )
    fails(
      { config: file('runners:\n  - url: http://x\n    token: t\n    executor: shell\n    docker: {image: [1]}\n') },
      /runners\[0\]\.docker\.image .*expected a string/,
    )
    fails(
      { config: file('runners:\n  - url: http://x\n    token: t\n    executor: shell\n    docker: {auth_config: "{nope"}\n') },
      /auth_config.*JSON object/,
    )
    fails({ config: file('runners: {}\n') }, /runners .*expected a list/)
    fails({ config: file('concurrent: [\n') }, /not valid YAML/)
    fails({ config: path.join(dir, 'missing.yaml') }, /cannot read runner config file .*ENOENT/)
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: shell}\n  - {url: http://y, token: t, executor: shell}\n') },
      /runners\[1\]\.token .*twice/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: shell, environment: ["no-equals"]}\n') },
      /environment\[0\].*NAME=value/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {services_cap_add: ["ALL", "sys admin"]}}\n') },
      /docker\.services_cap_add\[1\].*capability name/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {security_opt: ["systempaths=confined"]}}\n') },
      /docker\.security_opt\[0\].*systempaths=unconfined/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {services_security_opt: ["seccomp"]}}\n') },
      /docker\.services_security_opt\[0\]/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {services_privileged: "yes"}}\n') },
      /docker\.services_privileged.*true or false/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {pull_policy: []}}\n') },
      /runners\[0\]\.docker\.pull_policy .*not empty, got an empty list/,
    )
    fails(
      { config: file('bogus: 1\nrunners:\n  - {url: http://x, token: t, executor: shell}\n') },
      /^invalid runner setting bogus \(file .*\): unknown setting \(known: concurrent, /,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, executor: shell}\n') },
      /runners\[0\]\.token \(file .*\): is required \(--token or `token:`/,
    )
    fails({ config: file('runners:\n  - 5\n') }, /runners\[0\] \(file .*\): expected a mapping, got 5/)
  })

  it('lays flags over the file before checking: an error names the flag it came from', () => {
    const f = file('runners:\n  - {url: http://x, token: t, executor: docker, docker: {image: alpine}}\n')
    fails(
      { config: f, 'pull-policy': 'always,sometimes' },
      /^invalid runner setting runners\[0\]\.docker\.pull_policy\[1\] \(--pull-policy\): expected one of always, if-not-present, never, got "sometimes"$/,
    )
    fails(
      { config: f, 'check-interval': '-1' },
      /^invalid runner setting check_interval \(--check-interval\): expected an integer between 0 and 3600, got -1$/,
    )
  })

  it('never echoes a secret in an error', () => {
    fails(
      { config: file('runners:\n  - {url: http://x, token: [glrt-secret], executor: shell}\n') },
      /runners\[0\]\.token .*got \(hidden\)$/,
    )
    fails(
      { config: file('runners:\n  - {url: http://x, token: t, executor: shell, environment: ["TOKEN: s3cret"]}\n') },
      /environment\[0\].*got \(hidden\)$/,
    )
  })

  it('takes strings for numbers and switches, and comma-separated lists, as YAML or flags give them', () => {
    const f = file(
      'concurrent: "3"\nrunners:\n  - {url: http://x/, token: 5, executor: docker, tags: "a, b", limit: "2", docker: {privileged: "true", cap_add: net_admin, registry_mirror: "http://m:1/"}}\n',
    )
    const c = loadRunnerConfig({ config: f }, {})
    const r = c.runners[0]!
    assert.deepEqual(
      [c.concurrent, r.token, r.tags, r.limit, r.docker.privileged, r.docker.capAdd, r.docker.registryMirror, r.url],
      [3, '5', ['a', 'b'], 2, true, ['NET_ADMIN'], 'http://m:1', 'http://x'],
    )
  })
})
