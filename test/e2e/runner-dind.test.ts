// End-to-end: the first seed's 2016 CI template, verbatim, on `wharf runner --executor docker` with
// a `docker:dind` service, Docker Hub unreachable and nothing loaded into the runner's engine:
// `docker:latest`, `docker:dind` and `nginx` (the offline stand-ins of scripts/make-dind-images.sh,
// Debian's docker.io binaries) live on a stand-in Docker Hub (test/helpers/docker-hub.ts) behind
// Wharf's pull-through cache. The runner, on its defaults (`registry_mirror: auto`, pull policy
// `always`), pulls the job and service images through the mirror the server announces and gives
// the dind daemon the mirror as `--registry-mirror`, so the inner `docker build --pull` of `FROM
// nginx` comes through the cache too. The dind service runs without --privileged (which this
// sandbox refuses) on the runner's services_cap_add/services_cap_drop/services_security_opt/volumes
// settings; the job's docker CLI reaches it at tcp://docker:2375 as the official image's entrypoint
// picks; it logs in to the project's registry with the job token, builds and pushes; the image
// pulls back from Wharf with nginx's layers. A second run costs the stand-in no GET at all. A job
// image written on the group path ($CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX) pulls with the job token.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startDockerHub, type DockerHub } from '../helpers/docker-hub.ts'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { dindImages, type DindImages } from '../helpers/images.ts'
import { getManifest, readLayoutBlob, sha256, type ImageManifest } from '../helpers/registry.ts'
import { describeResult } from '../helpers/run.ts'
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
let hub: DockerHub
let mirrorPort: number
let runner: RunnerChild
/** The same privileges on the default network mode (a network per job, services by alias), for tagged jobs. */
let netRunner: RunnerChild
let project: CiProject

async function docker(args: string[], opts: { input?: string } = {}): Promise<string> {
  const r = await engine.docker(args, { timeoutMs: 180_000, ...opts })
  assert.equal(r.code, 0, describeResult(r))
  return r.stdout
}

/** The stand-in Docker Hub's GETs (manifests and blobs) since its counters were last reset. */
function upstreamGets(kind: 'manifests' | 'blobs'): string[] {
  return [...hub.counts.entries()]
    .filter(([k, n]) => n > 0 && k.startsWith('GET /v2/') && k.includes(`/${kind}/`))
    .map(([k, n]) => `${k} ×${n}`)
}

/** With `network_mode: host` the dind service listens on the host's port 2375: say so if it is taken. */
function assertPortFree(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', (e: NodeJS.ErrnoException) =>
      reject(new Error(`port ${port} is in use (${e.code}): the host-network dind service of this test needs it`)),
    )
    srv.listen(port, '0.0.0.0', () => srv.close(() => resolve()))
  })
}

before(async () => {
  await assertPortFree(2375)
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-dind-'))
  ;[engine, images, hub] = await Promise.all([startEngine(), dindImages(), startDockerHub()])
  // Docker Hub's names for the stand-ins; the runner's engine has none of them.
  await hub.seed(images.oci('docker'), 'library/docker:latest')
  await hub.seed(images.oci('dind'), 'library/docker:dind')
  await hub.seed(images.oci('nginx'), 'library/nginx:latest')
  mirrorPort = await freePort()
  wharf = await startWharf({
    env: {
      WHARF_DEPENDENCY_PROXY_UPSTREAMS: JSON.stringify([{ host: 'docker.io', url: hub.url }]),
      // All addresses: the dind daemon on a job's own network reaches it at the network's gateway.
      WHARF_DEPENDENCY_PROXY_MIRROR_LISTEN: `0.0.0.0:${mirrorPort}`,
    },
  })
  project = await CiProject.create(wharf, 'e2e-dind/app')

  // Only the DinD privileges: the mirror is the runner's default when the server offers one.
  const config = path.join(work, 'runner.yml')
  await writeFile(
    config,
    [
      'runners:',
      '  - name: e2e-dind',
      // The official images' plain tcp://docker:2375 (this dind stand-in makes no TLS certificates anyway).
      '    environment: ["DOCKER_TLS_CERTDIR="]',
      '    docker:',
      // The services' daemon must reach Wharf's registry, which listens on 127.0.0.1 only here
      // (and is insecure-allowed there): jobs and services share the host's network; the `docker`
      // alias becomes 127.0.0.1 in the job container.
      '      network_mode: host',
      // docker:dind without --privileged, which this sandbox refuses.
      '      services_cap_add: [ALL]',
      '      services_cap_drop: [SYS_RESOURCE]',
      '      services_security_opt: [seccomp=unconfined, apparmor=unconfined]',
      '      volumes:',
      '        - /sys/fs/cgroup:/sys/fs/cgroup',
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
      .filter((l) => !l.includes('network_mode'))
      .join('\n')
      .replace('e2e-dind', 'e2e-dind-net'),
  )
  const tagged = await createRunner(wharf, { tag_list: ['job-network'], run_untagged: false })
  netRunner = await startRunner(wharf, ['--config', netConfig, '--executor', 'docker', '--docker-host', engine.dockerHost], {
    env,
    token: tagged.token,
  })
})

after(async () => {
  await runner?.stop()
  await netRunner?.stop()
  await project?.dispose()
  await wharf?.stop()
  await hub?.close()
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
    const mirror = `http://127.0.0.1:${mirrorPort}`
    assert.match(log, /Starting service docker:dind \.\.\./)
    assert.ok(
      log.includes(
        `Docker Hub images come through Wharf's pull-through cache at ${mirror} (the server's registry mirror; runner setting registry_mirror: auto)`,
      ),
      log,
    )
    for (const image of ['docker:dind', 'docker:latest']) {
      assert.ok(
        log.includes(`Pulling docker image ${image} through Wharf's pull-through cache as 127.0.0.1:${mirrorPort}/library/${image} ...`),
        log,
      )
      assert.ok(log.includes(`Image ${image} came from Wharf's pull-through cache of docker.io (registry mirror ${mirror})`), log)
    }
    assert.ok(
      log.includes(`Service docker:dind's daemon pulls Docker Hub images through Wharf's pull-through cache: --registry-mirror=${mirror}`),
      log,
    )
    assert.doesNotMatch(log, /probably didn't start properly/, 'the job waited for the daemon, not for a timeout')
    assert.match(log, /Login Succeeded/)
    assert.ok(!log.includes('glcbt-'), 'the job token is masked')
    const pushed = /main: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(log)?.[1]
    assert.ok(pushed, log)

    // The job's, the service's and FROM nginx's layers all came from the stand-in through Wharf,
    // whose cache now holds the three images (the runner's engine had none; Docker Hub is unreachable).
    const cached = await wharf.api('GET', '/api/v4/dependency_proxy/cache')
    assert.equal(cached.status, 200, cached.text)
    const names = cached.text
    for (const repo of ['library/docker', 'library/nginx']) assert.ok(names.includes(repo), names)
    // Each layer once: Wharf's store is content-addressed, so the base layer nginx shares with the
    // docker images is not fetched again.
    for (const image of ['docker', 'dind', 'nginx'] as const) {
      const manifest = JSON.parse((await readLayoutBlob(images.ociLayout, images.digests[image])).toString('utf8')) as ImageManifest
      for (const layer of manifest.layers) {
        const gets = upstreamGets('blobs').filter((k) => k.includes(`/blobs/${layer.digest} `))
        assert.deepEqual(
          gets.map((k) => k.replace(/.* ×/, '×')),
          ['×1'],
          `${image} layer ${layer.digest}: ${upstreamGets('blobs').join(', ')}`,
        )
      }
    }
    assert.ok(
      upstreamGets('manifests').some((k) => k.startsWith('GET /v2/library/nginx/manifests/')),
      upstreamGets('manifests').join(', '),
    )

    // Wharf serves what the job pushed; pulled back, it is nginx's filesystem.
    const served = await getManifest(wharf.url, 'e2e-dind/app', 'main')
    assert.equal(served.status, 200, served.describe)
    assert.equal(sha256(served.body), pushed)
    const nginxConfig = JSON.parse((await readLayoutBlob(images.ociLayout, images.digests.nginxConfig)).toString('utf8')) as {
      rootfs: { diff_ids: string[] }
    }
    const image = `${wharf.host}/e2e-dind/app:main`
    await docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    try {
      await docker(['pull', '-q', image])
      const inspected = JSON.parse(await docker(['image', 'inspect', image])) as Array<{
        RootFS: { Layers: string[] }
        RepoDigests: string[]
      }>
      assert.deepEqual(inspected[0]!.RootFS.Layers, nginxConfig.rootfs.diff_ids)
      assert.ok(inspected[0]!.RepoDigests.includes(`${wharf.host}/e2e-dind/app@${pushed}`), JSON.stringify(inspected[0]!.RepoDigests))
      assert.match(
        await docker(['run', '--rm', '--network', 'none', '--entrypoint', 'cat', image, '/usr/share/nginx/html/index.html']),
        /Welcome to nginx!/,
      )
    } finally {
      await docker(['logout', wharf.host])
    }
    const manifest = JSON.parse(served.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.layers.length, nginxConfig.rootfs.diff_ids.length)

    // Nothing of the job is left on the engine: containers, networks, or the dind's /var/lib/docker volume.
    const left = await docker(['ps', '-aq', '--filter', `label=com.wharf.runner.job=${job.id}`])
    assert.equal(left.trim(), '')
    assert.equal((await docker(['volume', 'ls', '-q'])).trim(), '', 'the anonymous /var/lib/docker volume of the dind service is removed')

    // Again: the runner pulls (policy `always`) and the fresh dind daemon pulls nginx whole, all from
    // Wharf's cache: the stand-in Docker Hub sees no GET, of a blob or of a manifest.
    hub.resetCounts()
    const again = Date.now()
    const p2 = await project.push({ '.gitlab-ci.yml': TEMPLATE_2016, Dockerfile: 'FROM nginx\nLABEL run=2\n' }, 'the 2016 template, again')
    const second = await project.wait(p2.id, 300_000)
    const log2 = plainLog(await project.trace(second.jobs[0]!.id))
    t.diagnostic(
      `second pipeline took ${((Date.now() - again) / 1000).toFixed(1)} s; upstream requests: ${JSON.stringify([...hub.counts])}`,
    )
    assert.equal(second.pipeline.status, 'success', log2)
    assert.match(log2, /Image docker:dind came from Wharf's pull-through cache of docker\.io/)
    assert.match(log2, /Image docker:latest came from Wharf's pull-through cache of docker\.io/)
    assert.deepEqual(upstreamGets('blobs'), [])
    assert.deepEqual(upstreamGets('manifests'), [])
  })

  it("pulls a job image written on the group path (GitLab's dependency proxy) with the job's token", async (t) => {
    const ci = `
group-path:
  image: \${CI_DEPENDENCY_PROXY_GROUP_IMAGE_PREFIX}/docker:latest
  script:
    - docker --version
`
    const started = Date.now()
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'group path')
    const { pipeline, jobs } = await project.wait(p.id, 180_000)
    const log = plainLog(await project.trace(jobs[0]!.id))
    t.diagnostic(`pipeline took ${((Date.now() - started) / 1000).toFixed(1)} s`)
    assert.equal(pipeline.status, 'success', `${log}\n--- runner ---\n${runner.output().slice(-4000)}`)
    const image = `${wharf.host}/e2e-dind/dependency_proxy/containers/docker:latest`
    assert.ok(log.includes(`Authenticating with credentials from job payload (Wharf registry)\nPulling docker image ${image} ...`), log)
    assert.ok(
      log.includes(`Image ${image} came from Wharf's pull-through cache of docker.io (the group dependency proxy on ${wharf.host})`),
      log,
    )
    assert.match(log, /^Docker version 20\.10\./m)
  })

  it("an image the cache cannot get: the job log gives Wharf's reason, then Docker Hub's, and the job fails", async () => {
    const p = await project.push({ '.gitlab-ci.yml': 'missing:\n  image: busybox:9\n  script: [echo never]\n' }, 'missing image')
    const { pipeline, jobs } = await project.wait(p.id, 180_000)
    const log = plainLog(await project.trace(jobs[0]!.id))
    assert.equal(pipeline.status, 'failed', log)
    assert.match(log, /Pulling docker image busybox:9 through Wharf's pull-through cache as 127\.0\.0\.1:\d+\/library\/busybox:9 \.\.\./)
    assert.match(log, /Failed to pull busybox:9 through Wharf's pull-through cache: .*manifest unknown.*; trying docker\.io itself/i)
    assert.match(log, /failed to pull image "busybox:9"/)
    assert.doesNotMatch(log, /echo never/)
  })

  it("on the job's own network (the default network_mode), the job reaches the dind service at its alias `docker`, whose daemon pulls through Wharf's mirror at the network's gateway", async (t) => {
    // Wharf's registry (127.0.0.1 only here) is out of the inner daemon's reach from there, so
    // nothing is pushed: `FROM scratch` builds offline; nginx comes from the mirror, which listens
    // on all addresses.
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
    - docker pull -q nginx
    - docker run --rm --entrypoint cat nginx /usr/share/nginx/html/index.html | grep -o 'Welcome to nginx!'
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
    const gateway = new RegExp(
      `Service docker:dind's daemon pulls Docker Hub images through Wharf's pull-through cache: --registry-mirror=http://(\\d+\\.\\d+\\.\\d+\\.\\d+):${mirrorPort}$`,
      'm',
    ).exec(log)
    assert.ok(gateway && !gateway[1]!.startsWith('127.'), log)
    assert.match(log, /^Welcome to nginx!$/m)
    assert.doesNotMatch(log, /probably didn't start properly/)
    assert.equal((await docker(['network', 'ls', '-q', '--filter', `label=com.wharf.runner.job=${jobs[0]!.id}`])).trim(), '')
  })
})
