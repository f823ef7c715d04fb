// End-to-end: `wharf runner --executor docker` on a private Docker engine against a started Wharf.
// Job and service images live in the project's own Wharf registry and are pulled with the job
// token from the job payload (no credential anywhere in the YAML); another private project's image
// needs DOCKER_AUTH_CONFIG, or that project's job token allowlist (refused first, with the fix named
// in the job log). The seed's pipeline builds and pushes through the bound engine socket; its job
// token is dead afterwards and the pushed image pulls back byte-identical. Services answer at their alias on the job's network; artifacts pass
// along `needs`; failure, cancel and timeout behave; masked values never reach the stored log;
// containers and networks are gone after each job.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { startEngine, type Engine } from '../helpers/engine.ts'
import { getManifest, sha256, type ImageManifest } from '../helpers/registry.ts'
import { describeResult } from '../helpers/run.ts'
import { extractZip } from '../../src/runner/archive.ts'
import { CiProject, ciImages, IMPORT_CHANGES, plainLog, startRunner, type RunnerChild } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let engine: Engine
let wharf: Wharf
let runner: RunnerChild
let project: CiProject
let other: CiProject
let work: string
let image: string
let webImage: string
let otherImage: string
let cliImage: string

const SECRET = 'Docker-Masked-Value-77'

async function docker(args: string[], opts: { input?: string; env?: Record<string, string> } = {}) {
  const r = await engine.docker(args, { timeoutMs: 120_000, ...opts })
  assert.equal(r.code, 0, describeResult(r))
  return r.stdout
}

/** Containers and networks the runner left behind for a job. */
async function leftovers(jobId: number): Promise<string> {
  const containers = await docker(['ps', '-aq', '--filter', `label=com.wharf.runner.job=${jobId}`])
  const networks = await docker(['network', 'ls', '-q', '--filter', `label=com.wharf.runner.job=${jobId}`])
  return (containers + networks).trim()
}

before(async () => {
  ;[engine, wharf] = await Promise.all([startEngine(), startWharf()])
  work = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-runner-docker-'))
  project = await CiProject.create(wharf, 'e2e-runner/docker')
  other = await CiProject.create(wharf, 'e2e-runner/other')
  const v = await wharf.api('POST', `/api/v4/projects/${project.id}/variables`, { key: 'DEPLOY_PASSWORD', value: SECRET, masked: true })
  assert.equal(v.status, 201, v.describe)

  // Images from local files, pushed to the projects' registries, then untagged locally.
  const files = await ciImages()
  await docker(['import', ...IMPORT_CHANGES, files.busybox, 'wharf-ci/busybox:1'])
  await writeFile(
    path.join(work, 'Dockerfile'),
    'FROM wharf-ci/busybox:1\nRUN mkdir /www && echo hello-from-service > /www/hello.txt\nEXPOSE 8080\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n',
  )
  await docker(['import', ...IMPORT_CHANGES, files.dockerCli, 'wharf-ci/docker-cli:1'])
  await docker(['build', '--network', 'none', '-q', '-t', 'wharf-ci/web:1', work], { env: { DOCKER_BUILDKIT: '0' } })
  image = `${wharf.host}/e2e-runner/docker/busybox:1`
  webImage = `${wharf.host}/e2e-runner/docker/web:1`
  otherImage = `${wharf.host}/e2e-runner/other/tools:1`
  cliImage = `${wharf.host}/e2e-runner/docker/docker-cli:1`
  await docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
  for (const [local, remote] of [
    ['wharf-ci/busybox:1', image],
    ['wharf-ci/web:1', webImage],
    ['wharf-ci/busybox:1', otherImage],
    ['wharf-ci/docker-cli:1', cliImage],
  ] as const) {
    await docker(['tag', local, remote])
    await docker(['push', '-q', remote])
    await docker(['rmi', remote])
  }
  await docker(['logout', wharf.host])

  // The runner sees no docker client config: credentials come from the job payload or DOCKER_AUTH_CONFIG.
  const emptyConfig = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-runner-dockercfg-'))
  runner = await startRunner(
    wharf,
    ['--executor', 'docker', '--docker-host', engine.dockerHost, '--concurrent', '3', '--name', 'e2e-docker', '--bind-docker-socket'],
    {
      env: { DOCKER_CONFIG: emptyConfig, DOCKER_HOST: engine.dockerHost },
    },
  )
})

after(async () => {
  await runner?.stop()
  await project?.dispose()
  await other?.dispose()
  await wharf?.stop()
  await engine?.stop()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('wharf runner, docker executor', { timeout: 150_000 }, () => {
  it('runs a pipeline in containers: private job image with the job token, a service at its alias, artifacts via needs, masking', async () => {
    const ci = `
default:
  image: ${image}
stages: [build, test]
build:
  stage: build
  services:
    - name: ${webImage}
      alias: web
  script:
    - wget -qO- http://web:8080/hello.txt
    - echo "secret $DEPLOY_PASSWORD"
    - test "$(pwd)" = /builds/e2e-runner/docker && test "$CI_PROJECT_DIR" = "$(pwd)"
    - cat README.md
    - mkdir -p dist && echo "from build on $(cat /etc/hostname)" > dist/a.txt
  after_script:
    - echo "after in container"
  artifacts:
    paths: [dist/]
test:
  stage: test
  needs: [build]
  image:
    name: ${image}
    entrypoint: ["/bin/sh", "-c", "echo entrypoint-override-ran; exec \\"$@\\"", "--"]
  script:
    - cat dist/a.txt
`
    const p = await project.push({ '.gitlab-ci.yml': ci, 'README.md': 'readme-from-git\n' }, 'pipeline')
    const { pipeline, jobs } = await project.wait(p.id, 90_000)
    const logs = Object.fromEntries(await Promise.all(jobs.map(async (j) => [j.name, await project.trace(j.id)] as const)))
    assert.equal(pipeline.status, 'success', JSON.stringify({ jobs: jobs.map((j) => [j.name, j.status, j.failure_reason]), logs }, null, 1))
    const build = plainLog(logs.build!)
    assert.match(build, /Preparing the "docker" executor/)
    assert.match(build, /Authenticating with credentials from job payload \(Wharf registry\)/)
    assert.match(build, new RegExp(`Pulling docker image ${image.replaceAll('.', '\\.')}`))
    assert.match(build, /hello-from-service/)
    assert.match(build, /readme-from-git/)
    assert.match(build, /secret \[MASKED\]/)
    assert.match(build, /after in container/)
    assert.match(build, /Timing: queued [\d.]+ s, image pull [\d.]+ s, script [\d.]+ s/)
    const test = plainLog(logs.test!)
    assert.match(test, /entrypoint-override-ran/)
    assert.match(test, /from build on /)
    for (const [name, log] of Object.entries(logs)) {
      assert.ok(!log.includes(SECRET), `${name}'s log shows the masked value`)
      assert.ok(!log.includes('glcbt-'), `${name}'s log shows a job token`)
    }
    const finished = runner.logs().filter((l) => l.msg === 'job finished')
    assert.ok(finished.every((f) => typeof f.pull_ms === 'number' && typeof f.script_ms === 'number' && typeof f.queue_wait_s === 'number'))
    for (const j of jobs) assert.equal(await leftovers(j.id), '', `job ${j.name} left containers or networks behind`)
  })

  it('a failing job fails the pipeline and skips the jobs after it', async () => {
    const ci = `
default:
  image: ${image}
stages: [build, deploy]
build:
  stage: build
  script: [echo failing, exit 4]
deploy:
  stage: deploy
  script: [echo unreachable]
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'fail')
    const { pipeline, jobs } = await project.wait(p.id, 60_000)
    assert.equal(pipeline.status, 'failed')
    assert.deepEqual(
      jobs.map((j) => [j.name, j.status, j.failure_reason]),
      [
        ['build', 'failed', 'script_failure'],
        ['deploy', 'skipped', null],
      ],
    )
    assert.match(plainLog(await project.trace(jobs[0]!.id)), /ERROR: Job failed: exit code 4/)
  })

  it('cancel kills the running container; a timeout kills it too', async () => {
    const ci = `
default:
  image: ${image}
slow:
  script:
    - echo started; printf '%0100d\\n' 0
    - sleep 120
    - echo never
limited:
  timeout: 4s
  script:
    - sleep 60
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'cancel and timeout')
    const { jobs } = await project.wait(p.id, 60_000, (_p, js) => js.some((j) => j.name === 'slow' && j.status === 'running'))
    const slow = jobs.find((j) => j.name === 'slow')!
    const deadline = Date.now() + 40_000
    while (!(await project.trace(slow.id)).includes('started')) {
      assert.ok(Date.now() < deadline, 'the job never started its script')
      await new Promise((r) => setTimeout(r, 250))
    }
    const t0 = Date.now()
    await project.api('POST', `/projects/${project.id}/jobs/${slow.id}/cancel`)
    const { pipeline, jobs: after } = await project.wait(p.id, 60_000, (_p, js) =>
      js.every((j) => j.status !== 'running' && j.status !== 'pending'),
    )
    const done = Date.now()
    const limited = after.find((j) => j.name === 'limited')!
    assert.equal(after.find((j) => j.name === 'slow')!.status, 'canceled')
    assert.equal(limited.status, 'failed')
    assert.equal(limited.failure_reason, 'job_execution_timeout')
    assert.ok(done - t0 < 30_000, 'both stopped long before their sleeps end')
    assert.notEqual(pipeline.status, 'success')
    // The runner reports the cancel, and removes the containers.
    const deadline2 = Date.now() + 20_000
    while (!runner.logs().some((l) => l.msg === 'job finished' && l.job === slow.id)) {
      assert.ok(Date.now() < deadline2, runner.output())
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.equal(runner.logs().find((l) => l.msg === 'job finished' && l.job === slow.id)!.failure_reason, 'job_canceled')
    assert.doesNotMatch(plainLog(await project.trace(slow.id)), /^never$/m)
    assert.match(plainLog(await project.trace(limited.id)), /execution took longer than 4s seconds/)
    for (const j of after) assert.equal(await leftovers(j.id), '', `job ${j.name} left containers or networks behind`)
  })

  it("another private project's image: refused with the job token, pulled with DOCKER_AUTH_CONFIG; pull_policy never", async () => {
    const auth = JSON.stringify({ auths: { [wharf.host]: { auth: Buffer.from(`root:${wharf.rootPassword}`).toString('base64') } } })
    const v = await wharf.api('POST', `/api/v4/projects/${project.id}/variables`, { key: 'ROOT_DOCKER_AUTH', value: auth })
    assert.equal(v.status, 201, v.describe)
    const ci = `
without-auth:
  image: ${otherImage}
  script: [echo should not run]
with-auth:
  image: ${otherImage}
  variables:
    DOCKER_AUTH_CONFIG: $ROOT_DOCKER_AUTH
  script: [echo ran with DOCKER_AUTH_CONFIG]
never-pulled:
  image:
    name: ${wharf.host}/e2e-runner/docker/absent:1
    pull_policy: never
  script: [echo should not run]
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'auth')
    const { jobs } = await project.wait(p.id, 60_000)
    const by = Object.fromEntries(jobs.map((j) => [j.name, j]))
    assert.equal(by['with-auth']!.status, 'success', plainLog(await project.trace(by['with-auth']!.id)))
    assert.match(plainLog(await project.trace(by['with-auth']!.id)), /Authenticating with credentials from \$DOCKER_AUTH_CONFIG/)
    assert.deepEqual([by['without-auth']!.status, by['without-auth']!.failure_reason], ['failed', 'image_pull_failure'])
    assert.match(plainLog(await project.trace(by['without-auth']!.id)), /failed to pull image/)
    assert.deepEqual([by['never-pulled']!.status, by['never-pulled']!.failure_reason], ['failed', 'image_pull_failure'])
    assert.match(plainLog(await project.trace(by['never-pulled']!.id)), /pull policy is "never"/)
  })

  it("another private project's image with no credential in the YAML: refused with the allowlist fix named, then pulled with the job token once that project allow-lists this one", async () => {
    // A third private project of the same owner (root), with an image in its registry.
    const toolsId = await wharf.createProject('e2e-runner/private-tools', 'private')
    const toolsImage = `${wharf.host}/e2e-runner/private-tools/tools:1`
    await docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    try {
      await docker(['tag', 'wharf-ci/busybox:1', toolsImage])
      await docker(['push', '-q', toolsImage])
      await docker(['rmi', toolsImage])
    } finally {
      await docker(['logout', wharf.host])
    }
    const ci = `
use-tools:
  image: ${toolsImage}
  script: [echo ran with the job token of e2e-runner/docker]
`
    const p = await project.push({ '.gitlab-ci.yml': ci }, 'allowlist')
    const first = await project.wait(p.id, 60_000)
    const refused = first.jobs[0]!
    const refusedLog = plainLog(await project.trace(refused.id))
    assert.deepEqual(
      [first.pipeline.status, refused.status, refused.failure_reason],
      ['failed', 'failed', 'image_pull_failure'],
      refusedLog,
    )
    assert.match(refusedLog, /Authenticating with credentials from job payload \(Wharf registry\)/)
    // The message names the project that must change, what it must add, and how.
    assert.ok(
      refusedLog.includes(`e2e-runner/private-tools does not allow CI job tokens from e2e-runner/docker`) &&
        refusedLog.includes(`A maintainer of e2e-runner/private-tools must add e2e-runner/docker to its job token allowlist`) &&
        refusedLog.includes(`POST /api/v4/projects/${toolsId}/job_token_scope/allowlist with target_project_id=${project.id}`),
      refusedLog,
    )

    const allow = await wharf.api('POST', `/api/v4/projects/${toolsId}/job_token_scope/allowlist`, { target_project_id: project.id })
    assert.equal(allow.status, 201, allow.describe)
    assert.deepEqual(allow.json, { source_project_id: toolsId, target_project_id: project.id })

    await project.api('POST', `/projects/${project.id}/pipelines/${p.id}/retry`)
    const second = await project.wait(
      p.id,
      60_000,
      (pl, js) => js.length > 0 && js[0]!.id !== refused.id && ['success', 'failed', 'canceled'].includes(pl.status),
    )
    const log = plainLog(await project.trace(second.jobs[0]!.id))
    assert.equal(second.pipeline.status, 'success', log)
    assert.match(log, new RegExp(`Pulling docker image ${toolsImage.replaceAll('.', '\\.')}`))
    assert.match(log, /^ran with the job token of e2e-runner\/docker$/m)
  })

  it("the seed's pipeline: docker login with the job token, docker build --pull and docker push through the bound engine socket; the token dies with the job; the image pulls back byte-identical", async (t) => {
    // The seed's three commands verbatim, except `--network none` on `docker build`: this engine has
    // no default bridge network (DEVELOPERS.md), and the Dockerfile needs no network anyway. The
    // first and last lines are this test's: they keep the job token as an artifact (to show it is
    // rejected after the job) and print the image id the job's engine built.
    const ci = `
build-image:
  image: ${cliImage}
  variables:
    DOCKER_BUILDKIT: "0"
  script:
    - printf '%s' "$CI_JOB_TOKEN" > token.txt
    - docker login -u "gitlab-ci-token" -p "$CI_BUILD_TOKEN" $CI_REGISTRY
    - docker build --pull --network none -t "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME" .
    - docker push "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"
    - docker image inspect -f 'built image id {{.Id}}' "$CI_REGISTRY_IMAGE:$CI_BUILD_REF_NAME"
  artifacts:
    paths: [token.txt]
`
    const dockerfile = `FROM ${image}\nCOPY app.txt /app.txt\nCMD ["cat", "/app.txt"]\n`
    const p = await project.push({ '.gitlab-ci.yml': ci, Dockerfile: dockerfile, 'app.txt': 'built in CI\n' }, 'seed pipeline')
    const { pipeline, jobs } = await project.wait(p.id, 90_000)
    const job = jobs[0]!
    const log = plainLog(await project.trace(job.id))
    // The stored log, in the test output: what a user sees on the job page.
    t.diagnostic(`seed pipeline job log:\n${log}`)
    assert.equal(pipeline.status, 'success', log)
    assert.match(log, /Login Succeeded/)
    assert.ok(!log.includes('glcbt-'), 'the job token is masked')
    const pushedDigest = /main: digest: (sha256:[0-9a-f]{64}) size: \d+/.exec(log)?.[1]
    const builtId = /^built image id (sha256:[0-9a-f]{64})$/m.exec(log)?.[1]
    assert.ok(pushedDigest && builtId, log)

    // The job token, read back from the job's artifacts (downloaded as root), is dead now.
    const oauth = await wharf.api(
      'POST',
      '/oauth/token',
      { grant_type: 'password', username: 'root', password: wharf.rootPassword },
      { token: null },
    )
    const zipRes = await fetch(`${wharf.url}/api/v4/projects/${project.id}/jobs/${job.id}/artifacts`, {
      headers: { authorization: `Bearer ${oauth.json.access_token}` },
    })
    assert.equal(zipRes.status, 200, await zipRes.clone().text())
    const zipDir = await mkdtemp(path.join(work, 'artifacts-'))
    await writeFile(path.join(zipDir, 'a.zip'), Buffer.from(await zipRes.arrayBuffer()))
    await extractZip(path.join(zipDir, 'a.zip'), path.join(zipDir, 'out'))
    const token = (await readFile(path.join(zipDir, 'out', 'token.txt'), 'utf8')).trim()
    assert.match(token, /^glcbt-[A-Za-z0-9_-]{43}$/)
    const basic = `Basic ${Buffer.from(`gitlab-ci-token:${token}`).toString('base64')}`
    const jwt = await fetch(`${wharf.url}/jwt/auth?service=container_registry&scope=repository:e2e-runner/docker:pull`, {
      headers: { authorization: basic },
    })
    assert.equal(jwt.status, 401, await jwt.text())
    const login = await engine.docker(['login', '-u', 'gitlab-ci-token', '--password-stdin', wharf.host], {
      input: token,
      timeoutMs: 60_000,
    })
    assert.notEqual(login.code, 0, describeResult(login))
    assert.match(login.stderr, /unauthorized|401/i, describeResult(login))

    // The registry serves for :main exactly what the job pushed; pulled back, it is the image the job built.
    const served = await getManifest(wharf.url, 'e2e-runner/docker', 'main')
    assert.equal(served.status, 200, served.describe)
    assert.equal(served.headers.get('docker-content-digest'), pushedDigest)
    assert.equal(sha256(served.body), pushedDigest)
    const manifest = JSON.parse(served.body.toString('utf8')) as ImageManifest
    assert.equal(manifest.config.digest, builtId)
    const pushed = `${wharf.host}/e2e-runner/docker:main`
    await docker(['login', '-u', 'root', '--password-stdin', wharf.host], { input: wharf.rootPassword })
    try {
      await docker(['rmi', '-f', pushed]).catch(() => undefined)
      await docker(['pull', '-q', pushed])
      const inspected = JSON.parse(await docker(['image', 'inspect', pushed])) as Array<{ Id: string; RepoDigests: string[] }>
      assert.equal(inspected[0]!.Id, builtId)
      assert.ok(
        inspected[0]!.RepoDigests.includes(`${wharf.host}/e2e-runner/docker@${pushedDigest}`),
        JSON.stringify(inspected[0]!.RepoDigests),
      )
      assert.equal((await docker(['run', '--rm', '--network', 'none', pushed])).trim(), 'built in CI')
    } finally {
      await docker(['logout', wharf.host])
    }
  })
})
