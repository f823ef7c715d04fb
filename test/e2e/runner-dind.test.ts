// End-to-end: the first seed's 2016 CI template, verbatim, on `wharf runner --executor docker` with
// a `docker:dind` service and no Docker Hub: `docker:latest`, `docker:dind` and `nginx` are the
// offline stand-ins of scripts/make-dind-images.sh (Debian's docker.io binaries), loaded into a
// private engine and used through the `if-not-present` pull policy. The dind service runs without
// --privileged (which this sandbox refuses) on the runner's services_cap_add/services_cap_drop/
// services_security_opt/volumes settings; the job's docker CLI reaches it at tcp://docker:2375 as
// the official image's entrypoint picks; the inner daemon pulls `FROM nginx` through a registry
// mirror, logs in to the project's registry with the job token, builds and pushes; the image
// pulls back from Wharf with nginx's layers.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { openSync } from 'node:fs'
import { createServer } from 'node:net'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { dindImages, type DindImages } from '../helpers/images.ts'
import { getManifest, readLayoutBlob, sha256, type ImageManifest } from '../helpers/registry.ts'
import { describeResult, runOk } from '../helpers/run.ts'
import { CiProject, createRunner, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { freePort, startWharf, type Wharf } from '../helpers/wharf.ts'

// The template of the first seed, character for character.
const TEMPLATE_2016 = `image: docker:latest
services:
  - docker:dind
build:
  script:
    - docker login -u gitlab-ci-token -p "$CI_BUILD_TOKEN" $CI_REGISTRY
    - docker build --pull -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .
    - docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"
`

let engine: Engine
let wharf: Wharf
let images: DindImages
let work: string
let hub: { url: string; host: string; log: string; child: ChildProcess }
let runner: RunnerChild
/** The same privileges on the default network mode (a network per job, services by alias), for tagged jobs. */
let netRunner: RunnerChild
let project: CiProject

async function docker(args: string[], opts: { input?: string } = {}): Promise<string> {
  const r = await engine.docker(args, { timeoutMs: 180_000, ...opts })
  assert.equal(r.code, 0, describeResult(r))
  return r.stdout
}

/**
 * Debian's docker-registry on 127.0.0.1 holding library/nginx:latest: where the inner daemon's
 * `FROM nginx` comes from while Docker Hub is unreachable (Wharf's pull-through cache will take
 * its place).
 */
async function startHub(): Promise<typeof hub> {
  const port = await freePort()
  const dir = path.join(work, 'hub')
  const config = path.join(work, 'hub.yml')
  await writeFile(config, `version: 0.1\nlog: { level: info, accesslog: { disabled: false } }\nstorage: { filesystem: { rootdirectory: ${JSON.stringify(dir)} } }\nhttp: { addr: "127.0.0.1:${port}" }\n`)
  const log = path.join(work, 'hub.log')
  const out = openSync(log, 'a')
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', out, out] })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    const ok = await fetch(`${url}/v2/`).then((r) => r.status === 200, () => false)
    if (ok) break
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`docker-registry did not start:\n${await readFile(log, 'utf8')}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, host: `127.0.0.1:${port}`, log, child }
}

/** With `network_mode: host` the dind service listens on the host's port 2375: say so if it is taken. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`port ${port} is in use (${e.code}): the host-network dind service of this test needs it`)))
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve()))
  })
}

before(async () => {
  await assertPortFree(2375)
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-dind-'))
  ;[engine, wharf, images] = await Promise.all([startEngine(), startWharf(), dindImages()])
  hub = await startHub()
  await runOk('skopeo', ['copy', '-q', '--dest-tls-verify=false', images.oci('nginx'), `docker://${hub.host}/library/nginx:latest`], { timeoutMs: 60_000 })
  // The job and service images, as Docker Hub's names, local only: pull_policy if-not-present.
  for (const archive of [images.archives.docker, images.archives.dind]) await docker(['load', '-q', '-i', archive])
  project = await CiProject.create(wharf, 'e2e-dind/app')

  // The mirror reaches the inner daemon through the runner's config, not the project's YAML.
  const daemonJson = path.join(work, 'daemon.json')
  await writeFile(daemonJson, JSON.stringify({ 'registry-mirrors': [hub.url] }))
  const config = path.join(work, 'runner.yml')
  await writeFile(
    config,
    [
      'runners:',
      '  - name: e2e-dind',
      '    docker:',
      // The services' daemon must reach Wharf's registry, which listens on 127.0.0.1 only here
      // (and is insecure-allowed there): jobs and services share the host's network; the `docker`
      // alias becomes 127.0.0.1 in the job container.
      '      network_mode: host',
      '      pull_policy: [if-not-present]',
      // docker:dind without --privileged, which this sandbox refuses.
      '      services_cap_add: [ALL]',
      '      services_cap_drop: [SYS_RESOURCE]',
      '      services_security_opt: [seccomp=unconfined, apparmor=unconfined]',
      '      volumes:',
      '        - /sys/fs/cgroup:/sys/fs/cgroup',
      // PROXY: the one line the pull-through cache makes unnecessary: the runner will point a
      // docker:dind service's daemon at Wharf's mirror listener by itself.
      `        - ${daemonJson}:/etc/docker/daemon.json:ro`,
      '',
    ].join('\n'),
  )
  const emptyConfig = await mkdtemp(path.join(work, 'dockercfg-'))
  const env = { DOCKER_CONFIG: emptyConfig, DOCKER_HOST: engine.dockerHost }
  runner = await startRunner(wharf, ['--config', config, '--executor', 'docker', '--docker-host', engine.dockerHost], { env })
  const netConfig = path.join(work, 'runner-net.yml')
  await writeFile(
    netConfig,
    (await readFile(config, 'utf8'))
      .split('\n')
      .filter((l) => !l.includes('network_mode') && !l.includes('daemon.json'))
      .join('\n')
      .replace('e2e-dind', 'e2e-dind-net'),
  )
  const tagged = await createRunner(wharf, { tag_list: ['job-network'], run_untagged: false })
  netRunner = await startRunner(wharf, ['--config', netConfig, '--executor', 'docker', '--docker-host', engine.dockerHost], { env, token: tagged.token })
})

after(async () => {
  await runner?.stop()
  await netRunner?.stop()
  await project?.dispose()
  hub?.child.kill('SIGTERM')
  await wharf?.stop()
  await engine?.stop()
  if (work && process.env.WHARF_E2E_KEEP !== '1') await rm(work, { recursive: true, force: true })
})

describe('wharf runner, docker executor, docker-in-docker', { timeout: 360_000 }, () => {
  it("runs the 2016 template verbatim: docker:latest + docker:dind build FROM nginx and push to the project's registry; the image pulls back", async (t) => {
    const started = Date.now()
    const p = await project.push({ '.gitlab-ci.yml': TEMPLATE_2016, Dockerfile: 'FROM nginx\n' }, 'the 2016 template')
    const { pipeline, jobs } = await project.wait(p.id, 300_000)
    const job = jobs[0]!
    const log = plainLog(await project.trace(job.id))
    t.diagnostic(`pipeline took ${((Date.now() - started) / 1000).toFixed(1)} s; job log:\n${log}`)
    assert.equal(pipeline.status, 'success', `${log}\n--- runner ---\n${runner.output().slice(-4000)}`)
    assert.match(log, /Using locally found image version due to "if-not-present" pull policy/)
    assert.match(log, /Starting service docker:dind \.\.\./)
    assert.doesNotMatch(log, /probably didn't start properly/, 'the job waited for the daemon, not for a timeout')
    assert.match(log, /Login Succeeded/)
    assert.ok(!log.includes('glcbt-'), 'the job token is masked')
    const pushed = /main: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(log)?.[1]
    assert.ok(pushed, log)

    // FROM nginx came through the mirror (Docker Hub is unreachable here).
    // (dockerd 20.10 asks the tag with HEAD, then GETs the manifest by digest.)
    const hubLog = (await readFile(hub.log, 'utf8')).split('\n').filter((l) => l.includes('/manifests/') && l.includes('"docker/'))
    assert.ok(hubLog.some((l) => l.includes('"HEAD /v2/library/nginx/manifests/latest HTTP/1.1" 200')), hubLog.join('\n'))
    assert.ok(hubLog.some((l) => l.includes(`"GET /v2/library/nginx/manifests/${images.digests.nginx} HTTP/1.1" 200`)), hubLog.join('\n'))

    // Wharf serves what the job pushed; pulled back, it is nginx's filesystem.
    const served = await getManifest(wharf.url, 'e2e-dind/app', 'main')
    assert.equal(served.status, 200, served.describe)
    assert.equal(sha256(served.body), pushed)
    const nginxConfig = JSON.parse((await readLayoutBlob(images.ociLayout, images.digests.nginxConfig)).toString('utf8')) as { rootfs: { diff_ids: string[] } }
    const image = `${wharf.host}/e2e-dind/app:main`
    await docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    try {
      await docker(['pull', '-q', image])
      const inspected = JSON.parse(await docker(['image', 'inspect', image])) as Array<{ RootFS: { Layers: string[] }; RepoDigests: string[] }>
      assert.deepEqual(inspected[0]!.RootFS.Layers, nginxConfig.rootfs.diff_ids)
      assert.ok(inspected[0]!.RepoDigests.includes(`${wharf.host}/e2e-dind/app@${pushed}`), JSON.stringify(inspected[0]!.RepoDigests))
      assert.match(await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'cat', image, '/usr/share/nginx/html/index.html']), /Welcome to nginx!/)
    } finally {
      await docker(['logout', wharf.host])
    }
    const manifest = JSON.parse(served.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.layers.length, nginxConfig.rootfs.diff_ids.length)

    // Nothing of the job is left on the engine: containers, networks, or the dind's /var/lib/docker volume.
    const left = await docker(['ps', '-aq', '--filter', `label=com.wharf.runner.job=${job.id}`])
    assert.equal(left.trim(), '')
    assert.equal((await docker(['volume', 'ls', '-q'])).trim(), '', 'the anonymous /var/lib/docker volume of the dind service is removed')
  })

  it("on the job's own network (the default network_mode), the job reaches the dind service at its alias `docker`", async (t) => {
    // The inner daemon cannot reach 127.0.0.1 services from there, so nothing is pulled or pushed:
    // `FROM scratch` builds offline.
    const ci = `
dind-on-job-network:
  image: docker:latest
  services:
    - docker:dind
  tags: [job-network]
  script:
    - echo "DOCKER_HOST=$DOCKER_HOST"
    - nslookup docker >/dev/null && echo "docker resolves"
    - docker info --format 'server {{.ServerVersion}} driver {{.Driver}}'
    - printf 'FROM scratch\\nCOPY hello.txt /hello.txt\\n' > Dockerfile.scratch
    - docker build -q -f Dockerfile.scratch -t local/hello .
    - docker create --name hello local/hello /none >/dev/null && docker cp hello:/hello.txt - | tar -xO
`
    const started = Date.now()
    const p = await project.push({ '.gitlab-ci.yml': ci, 'hello.txt': 'hello from the inner daemon\n' }, 'job network')
    const { pipeline, jobs } = await project.wait(p.id, 180_000)
    const log = plainLog(await project.trace(jobs[0]!.id))
    t.diagnostic(`pipeline took ${((Date.now() - started) / 1000).toFixed(1)} s`)
    assert.equal(pipeline.status, 'success', `${log}\n--- runner ---\n${netRunner.output().slice(-4000)}`)
    assert.match(log, /on e2e-dind-net /)
    assert.match(log, /Creating network wharf-job-/)
    assert.match(log, /^DOCKER_HOST=tcp:\/\/docker:2375$/m)
    assert.match(log, /^docker resolves$/m)
    assert.match(log, /^server 20\.10\.\S+ driver vfs$/m)
    assert.match(log, /^hello from the inner daemon$/m)
    assert.doesNotMatch(log, /probably didn't start properly/)
    assert.equal((await docker(['network', 'ls', '-q', '--filter', `label=com.wharf.runner.job=${jobs[0]!.id}`])).trim(), '')
  })
})
