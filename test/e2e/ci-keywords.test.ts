// End-to-end: issue 17's CI keywords on `wharf runner --executor shell`, pipelines started by real
// git pushes, ending in the states GitLab gives: parallel and parallel:matrix (a 2x3 matrix),
// trigger: child pipelines (include:local and include:artifact, strategy: depend, forward) and
// multi-project pipelines (project/branch, the triggering user's permission on the target),
// environment: deployments serialised by a resource_group and stopped through on_stop, and a
// release: made when a tag pipeline's job succeeds.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer as createHttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { issueServerCertificate } from '../../src/tls/ca.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'
import { CiProject, plainLog, startRunner, type JobJson, type PipelineJson, type RunnerChild } from '../helpers/runner.ts'

let wharf: Wharf
let runner: RunnerChild
const projects: CiProject[] = []

/** An HTTPS server for include:remote, with a certificate from a local CA the server is told to trust. */
let remote: { url: string; close(): Promise<void>; dir: string }

before(async () => {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-remote-'))
  const issued = await issueServerCertificate({ dir, names: ['127.0.0.1'] })
  const [cert, key] = await Promise.all([readFile(issued.files.serverCert, 'utf8'), readFile(issued.files.serverKey, 'utf8')])
  const server = createHttpsServer({ cert, key }, (req, res) => {
    if (req.url === '/shared/remote.yml') return res.end('remote-job:\n  script:\n    - echo "from a remote include"\n')
    res.statusCode = 404
    res.end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  remote = {
    url: `https://127.0.0.1:${(server.address() as AddressInfo).port}`,
    dir,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
  // Loopback is the local network: allowed here by the webhooks' setting, which include:remote shares.
  wharf = await startWharf({ extraArgs: ['--webhooks-allow-local-network', 'true'], env: { NODE_EXTRA_CA_CERTS: issued.files.caCert } })
  runner = await startRunner(wharf, ['--executor', 'shell', '--concurrent', '4', '--name', 'e2e-keywords'])
})

after(async () => {
  await remote?.close()
  if (remote) await rm(remote.dir, { recursive: true, force: true })
  await runner?.stop()
  for (const p of projects) await p.dispose()
  await wharf?.stop()
})

async function project(path: string): Promise<CiProject> {
  const p = await CiProject.create(wharf, path)
  projects.push(p)
  return p
}

interface BridgeJson extends JobJson {
  downstream_pipeline: (PipelineJson & { project_id: number }) | null
}

const statuses = (jobs: JobJson[]) => Object.fromEntries(jobs.map((j) => [j.name, j.status]))

/** Waits until the bridges of a pipeline and their downstream pipelines are finished. */
async function waitBridges(p: CiProject, pipelineId: number, timeoutMs = 60_000): Promise<BridgeJson[]> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const bridges = await p.api<BridgeJson[]>('GET', `/projects/${p.id}/pipelines/${pipelineId}/bridges`)
    const done = (s: string | undefined) => ['success', 'failed', 'canceled', 'skipped'].includes(s ?? '')
    if (bridges.every((b) => done(b.status) && (b.downstream_pipeline === null || done(b.downstream_pipeline.status)))) return bridges
    if (Date.now() > deadline) throw new Error(`bridges still running: ${JSON.stringify(bridges, null, 1)}`)
    await new Promise((r) => setTimeout(r, 250))
  }
}

describe('CI keywords on wharf runner', { timeout: 300_000 }, () => {
  it('parallel:matrix (2x3) and parallel: N, with CI_NODE_INDEX/CI_NODE_TOTAL and needs:parallel:matrix', async () => {
    const p = await project('e2e-kw/matrix')
    const ci = `
stages: [build, test]
build:
  stage: build
  parallel:
    matrix:
      - ARCH: [amd64, arm64]
        DISTRO: [bookworm, trixie, sid]
  script:
    - echo "building $ARCH on $DISTRO, node $CI_NODE_INDEX of $CI_NODE_TOTAL"
    - mkdir -p out && echo "$ARCH-$DISTRO" > "out/$ARCH-$DISTRO.txt"
  artifacts:
    paths: [out/]
shard:
  stage: test
  parallel: 3
  needs: []
  script:
    - echo "shard $CI_NODE_INDEX/$CI_NODE_TOTAL"
    - test "$CI_NODE_TOTAL" = 3
arm-trixie:
  stage: test
  needs:
    - job: build
      parallel:
        matrix:
          - ARCH: arm64
            DISTRO: trixie
  script:
    - ls out
    - test -f out/arm64-trixie.txt
    - test ! -e out/amd64-sid.txt
`
    const pushed = await p.push({ '.gitlab-ci.yml': ci }, 'matrix')
    const { pipeline, jobs } = await p.wait(pushed.id, 120_000)
    assert.equal(pipeline.status, 'success', JSON.stringify(jobs))
    assert.deepEqual(statuses(jobs), {
      'build: [amd64, bookworm]': 'success',
      'build: [amd64, trixie]': 'success',
      'build: [amd64, sid]': 'success',
      'build: [arm64, bookworm]': 'success',
      'build: [arm64, trixie]': 'success',
      'build: [arm64, sid]': 'success',
      'shard 1/3': 'success',
      'shard 2/3': 'success',
      'shard 3/3': 'success',
      'arm-trixie': 'success',
    })
    const log = (name: string) => p.trace(jobs.find((j) => j.name === name)!.id).then(plainLog)
    assert.match(await log('build: [arm64, trixie]'), /building arm64 on trixie, node 5 of 6\n/)
    assert.match(await log('shard 2/3'), /shard 2\/3\n/)
    const arm = await log('arm-trixie')
    assert.match(arm, /Downloading artifacts for build: \[arm64, trixie\]/)
    assert.doesNotMatch(arm, /Downloading artifacts for build: \[amd64/)
  })

  it('child pipelines: include:local and include:artifact, forwarded variables, strategy: depend fails the parent', async () => {
    const p = await project('e2e-kw/parent')
    const ci = `
stages: [build, trigger, after]
gen:
  stage: build
  script:
    - mkdir -p gen
    - printf 'generated:\\n  script:\\n    - echo "generated sees $PARENT_VAR"\\n' > gen/child.yml
  artifacts:
    paths: [gen/]
ok-child:
  stage: trigger
  variables:
    PARENT_VAR: forwarded
  trigger:
    include:
      - local: ci/child-ok.yml
      - artifact: gen/child.yml
        job: gen
    strategy: depend
bad-child:
  stage: trigger
  trigger:
    include: ci/child-bad.yml
    strategy: depend
fire-and-forget:
  stage: trigger
  trigger:
    include: ci/child-bad.yml
after:
  stage: after
  script: [echo never]
`
    const files = {
      '.gitlab-ci.yml': ci,
      'ci/child-ok.yml': 'ok:\n  script:\n    - test "$CI_PIPELINE_SOURCE" = parent_pipeline\n    - echo "PARENT_VAR=$PARENT_VAR"\n',
      'ci/child-bad.yml': 'fails:\n  script:\n    - echo failing on purpose\n    - exit 4\n',
    }
    const pushed = await p.push(files, 'children')
    const { pipeline, jobs } = await p.wait(pushed.id, 120_000)
    const bridges = await waitBridges(p, pushed.id)
    assert.equal(pipeline.status, 'failed', JSON.stringify({ jobs, bridges }, null, 1))
    assert.deepEqual(statuses(jobs), { gen: 'success', after: 'skipped' })
    const byName = Object.fromEntries(bridges.map((b) => [b.name, b]))
    assert.deepEqual(bridges.map((b) => [b.name, b.status, b.downstream_pipeline?.status]).sort(), [
      ['bad-child', 'failed', 'failed'],
      ['fire-and-forget', 'success', 'failed'],
      ['ok-child', 'success', 'success'],
    ])
    assert.equal(byName['bad-child']!.failure_reason, 'downstream_pipeline_failed')
    const okChild = byName['ok-child']!.downstream_pipeline!
    assert.equal(okChild.project_id, p.id)
    assert.equal(okChild.sha, pushed.sha)
    const child = await p.api<PipelineJson>('GET', `/projects/${p.id}/pipelines/${okChild.id}`)
    assert.equal(child.source, 'parent_pipeline')
    const childJobs = await p.jobs(okChild.id)
    assert.deepEqual(statuses(childJobs), { ok: 'success', generated: 'success' })
    const childLog = async (name: string) => plainLog(await p.trace(childJobs.find((j) => j.name === name)!.id))
    assert.match(await childLog('ok'), /PARENT_VAR=forwarded\n/)
    assert.match(await childLog('generated'), /generated sees forwarded\n/)
    // Child pipelines are listed with their source; a push filter leaves them out.
    const children = await p.api<PipelineJson[]>('GET', `/projects/${p.id}/pipelines?source=parent_pipeline`)
    assert.equal(children.length, 3)
  })

  it('include:component with spec:inputs from another project at a tag, include:project, include:rules; the user must read the project', async () => {
    const components = await project('e2e-kw/components')
    const component = `spec:
  inputs:
    name:
      description: who to greet
    times:
      type: number
      default: 2
    loud:
      type: boolean
      default: false
    stage:
      default: test
---
"greet-$[[ inputs.name ]]":
  stage: $[[ inputs.stage ]]
  variables:
    LOUD: $[[ inputs.loud ]]
  script:
    - for i in $(seq $[[ inputs.times ]]); do echo "hello $[[ inputs.name ]] v1 ($i)"; done
    - test "$LOUD" = true
`
    // A project without a CI file: commits pushed with git alone (no pipeline to wait for).
    const commit = async (files: Record<string, string>, message: string) => {
      for (const [f, content] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(components.dir, f)), { recursive: true })
        await writeFile(path.join(components.dir, f), content)
      }
      await components.git(['add', '-A'])
      await components.git(['commit', '-q', '-m', message])
      await components.git(['push', '-q', 'origin', 'HEAD:main'])
    }
    await commit({ 'templates/greet.yml': component, 'shared/extra.yml': 'extra:\n  script: [echo "extra from $CI_PROJECT_PATH"]\n' }, 'v1')
    await components.git(['tag', 'v1'])
    await components.git(['push', '-q', 'origin', 'v1'])
    // main moves on: the pipeline below must use the tag.
    await commit({ 'templates/greet.yml': component.replace(' v1 ', ' v2 ') }, 'v2')

    const app = await project('e2e-kw/consumer')
    const ci = `
include:
  - component: $CI_SERVER_FQDN/e2e-kw/components/greet@v1
    inputs:
      name: wharf
      times: 3
      loud: true
  - project: e2e-kw/components
    ref: v1
    file: shared/extra.yml
  - local: ci/never.yml
    rules:
      - if: $CI_COMMIT_BRANCH == "nope"
  - remote: ${remote.url}/shared/remote.yml
`
    const pushed = await app.push({ '.gitlab-ci.yml': ci, 'ci/never.yml': 'never:\n  script: [exit 1]\n' }, 'component')
    const { pipeline, jobs } = await app.wait(pushed.id, 60_000)
    assert.equal(pipeline.status, 'success', JSON.stringify(jobs))
    assert.deepEqual(statuses(jobs), { 'greet-wharf': 'success', extra: 'success', 'remote-job': 'success' })
    assert.match(plainLog(await app.trace(jobs.find((j) => j.name === 'remote-job')!.id)), /from a remote include\n/)
    const log = plainLog(await app.trace(jobs.find((j) => j.name === 'greet-wharf')!.id))
    assert.match(log, /hello wharf v1 \(1\)\nhello wharf v1 \(2\)\nhello wharf v1 \(3\)\n/)
    assert.match(plainLog(await app.trace(jobs.find((j) => j.name === 'extra')!.id)), /extra from e2e-kw\/consumer\n/)

    // A developer of the consumer who cannot read the (private) components project: the pipeline fails as GitLab's does.
    const user = await wharf.api('POST', '/api/v4/users', {
      username: 'kwreader',
      name: 'kwreader',
      email: 'kwreader@example.com',
      password: 'kwreader-Passw0rd!',
    })
    assert.equal(user.status, 201, user.describe)
    assert.equal((await wharf.api('POST', `/api/v4/projects/${app.id}/members`, { user_id: user.json!.id, access_level: 30 })).status, 201)
    const pat = await wharf.api('POST', `/api/v4/users/${user.json!.id}/personal_access_tokens`, { name: 'kw', scopes: ['api'] })
    const denied = await wharf.api('POST', `/api/v4/projects/${app.id}/pipeline`, { ref: 'main' }, { token: pat.json!.token as string })
    assert.equal(denied.status, 201, denied.describe)
    assert.equal(denied.json!.status, 'failed')
    assert.equal(
      denied.json!.yaml_errors,
      'Project `e2e-kw/components` not found or access denied! Make sure any includes in the pipeline configuration are correctly defined.',
    )
  })

  it('resource_group: two deployments to one group run one after the other, the second waiting for the resource', async () => {
    const p = await project('e2e-kw/deploy')
    const ci = `
deploy:
  resource_group: production
  script:
    - echo "deploying pipeline $CI_PIPELINE_ID"
    - sleep 4
    - echo "deployed pipeline $CI_PIPELINE_ID"
unrelated:
  script: [sleep 1]
`
    const first = await p.push({ '.gitlab-ci.yml': ci }, 'deploy 1')
    // The group exists once a job names it; ask for the oldest waiting job first.
    const put = await wharf.api('PUT', `/api/v4/projects/${p.id}/resource_groups/production`, { process_mode: 'oldest_first' })
    assert.equal(put.status, 200, put.describe)
    assert.equal(put.json!.process_mode, 'oldest_first')
    const second = await p.push({ 'again.txt': 'x' }, 'deploy 2')
    // While one deployment runs, the other waits for the resource (and is listed as upcoming).
    const waitingSeen = await p.wait(second.id, 30_000, (_p, jobs) =>
      jobs.some((j) => j.name === 'deploy' && j.status === 'waiting_for_resource'),
    )
    assert.ok(waitingSeen)
    const upcoming = await p.api<JobJson[]>('GET', `/projects/${p.id}/resource_groups/production/upcoming_jobs`)
    assert.deepEqual(
      upcoming.map((j) => j.name),
      ['deploy'],
    )
    const a = await p.wait(first.id, 60_000)
    const b = await p.wait(second.id, 60_000)
    assert.equal(a.pipeline.status, 'success')
    assert.equal(b.pipeline.status, 'success')
    type Timed = JobJson & { started_at: string; finished_at: string }
    const d1 = a.jobs.find((j) => j.name === 'deploy') as Timed
    const d2 = b.jobs.find((j) => j.name === 'deploy') as Timed
    assert.ok(
      new Date(d2.started_at).getTime() >= new Date(d1.finished_at).getTime(),
      `the second deployment started (${d2.started_at}) before the first finished (${d1.finished_at})`,
    )
    // The unrelated job of the second pipeline did not wait for the resource.
    const u2 = b.jobs.find((j) => j.name === 'unrelated') as Timed
    assert.ok(new Date(u2.started_at).getTime() < new Date(d1.finished_at).getTime(), 'a job without the group ran meanwhile')
    const groups = await p.api<Array<{ key: string; process_mode: string }>>('GET', `/projects/${p.id}/resource_groups`)
    assert.deepEqual(
      groups.map((g) => [g.key, g.process_mode]),
      [['production', 'oldest_first']],
    )
  })

  it('environment and release: two deployments to one environment in one resource_group run in turn, on_stop stops it, a tag makes a release', async () => {
    const p = await project('e2e-kw/envs')
    const ci = `
deploy:
  stage: deploy
  resource_group: production
  except: [tags]
  environment:
    name: production
    url: https://prod.example.com/$CI_COMMIT_REF_SLUG
    on_stop: stop
  script:
    - echo "deploying $CI_PIPELINE_ID to $CI_ENVIRONMENT_NAME ($CI_ENVIRONMENT_SLUG, $CI_ENVIRONMENT_TIER, $CI_ENVIRONMENT_ACTION) at $CI_ENVIRONMENT_URL"
    - sleep 3
stop:
  stage: deploy
  when: manual
  except: [tags]
  environment:
    name: production
    action: stop
  script:
    - echo "stopping $CI_ENVIRONMENT_NAME ($CI_ENVIRONMENT_ACTION)"
release:
  stage: deploy
  only: [tags]
  script:
    - echo "releasing $CI_COMMIT_TAG"
  release:
    tag_name: $CI_COMMIT_TAG
    name: Release $CI_COMMIT_TAG
    description: Tagged at $CI_COMMIT_SHORT_SHA
    assets:
      links:
        - name: image
          url: https://registry.example.com/envs:$CI_COMMIT_TAG
`
    const first = await p.push({ '.gitlab-ci.yml': ci }, 'deploy 1')
    // The first deployment has started before the second pipeline exists (so it is not auto-canceled as redundant).
    await p.wait(first.id, 30_000, (_p, jobs) => jobs.some((j) => j.name === 'deploy' && j.status === 'running'))
    const second = await p.push({ 'again.txt': 'x' }, 'deploy 2')
    await p.wait(second.id, 30_000, (_p, jobs) => jobs.some((j) => j.name === 'deploy' && j.status === 'waiting_for_resource'))
    const a = await p.wait(first.id, 60_000)
    const b = await p.wait(second.id, 60_000)
    assert.deepEqual([a.pipeline.status, b.pipeline.status], ['success', 'success'])
    type Deployment = { iid: number; status: string; sha: string; deployable: { id: number; started_at: string; finished_at: string } }
    const deployments = await p.api<Deployment[]>('GET', `/projects/${p.id}/deployments?environment=production&order_by=iid`)
    assert.deepEqual(
      deployments.map((d) => [d.iid, d.status, d.sha]),
      [
        [1, 'success', first.sha],
        [2, 'success', second.sha],
      ],
    )
    const [d1, d2] = deployments.map((d) => d.deployable)
    assert.ok(Date.parse(d2!.started_at) >= Date.parse(d1!.finished_at), 'the second deployment waited for the first')
    const [env] = await p.api<Array<{ id: number; slug: string; state: string; external_url: string; last_deployment: Deployment }>>(
      'GET',
      `/projects/${p.id}/environments?name=production`,
    )
    assert.deepEqual([env!.state, env!.external_url, env!.last_deployment.iid], ['available', 'https://prod.example.com/main', 2])
    assert.match(
      plainLog(await p.trace(d1!.id)),
      new RegExp(`deploying ${first.id} to production \\(production, production, start\\) at https://prod.example.com/main\n`),
    )

    // Stopping runs the stop job of the pipeline that deployed last.
    const stopping = await p.api<{ state: string }>('POST', `/projects/${p.id}/environments/${env!.id}/stop`)
    assert.equal(stopping.state, 'stopping')
    const stopped = await p.wait(second.id, 30_000, (_p, jobs) => jobs.some((j) => j.name === 'stop' && j.status === 'success'))
    assert.match(plainLog(await p.trace(stopped.jobs.find((j) => j.name === 'stop')!.id)), /stopping production \(stop\)\n/)
    assert.equal((await p.job(first.id, 'stop')).status, 'manual', "the older pipeline's stop job was not run")
    assert.equal((await p.api<{ state: string }>('GET', `/projects/${p.id}/environments/${env!.id}`)).state, 'stopped')

    // A tag pipeline's release: job: the server makes the release when the job succeeds.
    await p.git(['tag', 'v1.0'])
    await p.git(['push', '-q', 'origin', 'v1.0'])
    let tagged: PipelineJson | undefined
    for (const deadline = Date.now() + 10_000; !tagged && Date.now() < deadline; await new Promise((r) => setTimeout(r, 200)))
      tagged = (await p.api<PipelineJson[]>('GET', `/projects/${p.id}/pipelines?ref=v1.0`))[0]
    assert.ok(tagged, 'the tag started a pipeline')
    const t = await p.wait(tagged.id, 60_000)
    assert.equal(t.pipeline.status, 'success', JSON.stringify(t.jobs))
    assert.match(plainLog(await p.trace(t.jobs[0]!.id)), /Created release v1\.0 \(Release v1\.0\) as root/)
    const release = await p.api<{ name: string; description: string; commit: { id: string }; assets: { links: Array<{ url: string }> } }>(
      'GET',
      `/projects/${p.id}/releases/v1.0`,
    )
    assert.deepEqual(
      [release.name, release.description, release.commit.id, release.assets.links[0]!.url],
      ['Release v1.0', `Tagged at ${second.sha.slice(0, 8)}`, second.sha, 'https://registry.example.com/envs:v1.0'],
    )
  })

  it('multi-project pipelines: project and branch, strategy: depend, and the user needs access to the target', async () => {
    const upstream = await project('e2e-kw/upstream')
    const downstream = await project('e2e-kw/downstream')
    const secret = await project('e2e-kw/secret')
    await downstream.push(
      { '.gitlab-ci.yml': 'deploy:\n  script:\n    - echo "deploying $UPSTREAM_REF from $CI_PIPELINE_SOURCE"\n' },
      'x',
      'stable',
    )
    await secret.push({ '.gitlab-ci.yml': 'x:\n  script: [echo secret]\n' }, 'x')
    const ci = `
downstream:
  variables:
    UPSTREAM_REF: $CI_COMMIT_REF_NAME
  trigger:
    project: e2e-kw/downstream
    branch: stable
    strategy: depend
`
    // As root, an administrator.
    const pushed = await upstream.push({ '.gitlab-ci.yml': ci }, 'multi')
    const [bridge] = await waitBridges(upstream, pushed.id)
    assert.equal(bridge!.status, 'success', JSON.stringify(bridge))
    const d = bridge!.downstream_pipeline!
    assert.equal(d.project_id, downstream.id)
    assert.equal(d.ref, 'stable')
    assert.equal((await upstream.api<PipelineJson>('GET', `/projects/${upstream.id}/pipelines/${pushed.id}`)).status, 'success')
    const [deploy] = await downstream.jobs(d.id)
    assert.match(plainLog(await downstream.trace(deploy!.id)), /deploying main from pipeline\n/)

    // A developer of the upstream project who is not a member of the target: the bridge fails.
    const user = await wharf.api('POST', '/api/v4/users', {
      username: 'kwdev',
      name: 'kwdev',
      email: 'kwdev@example.com',
      password: 'kwdev-Passw0rd!',
    })
    assert.equal(user.status, 201, user.describe)
    const member = await wharf.api('POST', `/api/v4/projects/${upstream.id}/members`, { user_id: user.json!.id, access_level: 30 })
    assert.equal(member.status, 201, member.describe)
    const pat = await wharf.api('POST', `/api/v4/users/${user.json!.id}/personal_access_tokens`, { name: 'kw', scopes: ['api'] })
    assert.equal(pat.status, 201, pat.describe)
    const token = pat.json!.token as string
    await upstream.push(
      { '.gitlab-ci.yml': ci.replace('e2e-kw/downstream', 'e2e-kw/secret').replace('branch: stable', 'branch: main') },
      'denied',
    )
    const created = await wharf.api('POST', `/api/v4/projects/${upstream.id}/pipeline`, { ref: 'main' }, { token })
    assert.equal(created.status, 201, created.describe)
    const [denied] = await waitBridges(upstream, created.json!.id as number)
    assert.equal(denied!.status, 'failed')
    assert.equal(denied!.failure_reason, 'downstream_bridge_project_not_found')
    assert.equal(denied!.downstream_pipeline, null)
    const after = await upstream.wait(created.json!.id as number)
    assert.equal(after.pipeline.status, 'failed')
    // Made a reporter of the target, the user is seen but may not run pipelines there.
    assert.equal(
      (await wharf.api('POST', `/api/v4/projects/${secret.id}/members`, { user_id: user.json!.id, access_level: 20 })).status,
      201,
    )
    const again = await wharf.api('POST', `/api/v4/projects/${upstream.id}/pipeline`, { ref: 'main' }, { token })
    const [reporter] = await waitBridges(upstream, again.json!.id as number)
    assert.equal(reporter!.failure_reason, 'insufficient_bridge_permissions')
  })

  it('a component at ~latest with interpolation functions, include:rules:changes, dotenv variables, a child pipeline from trigger:include:project', async () => {
    // Commits pushed with git alone: a project without a CI file starts no pipeline.
    const commit = async (p: CiProject, files: Record<string, string>, message: string, tag?: string) => {
      for (const [f, content] of Object.entries(files)) {
        await mkdir(path.dirname(path.join(p.dir, f)), { recursive: true })
        await writeFile(path.join(p.dir, f), content)
      }
      await p.git(['add', '-A'])
      await p.git(['commit', '-q', '-m', message])
      await p.git(['push', '-q', 'origin', 'HEAD:main'])
      if (tag) {
        await p.git(['tag', tag])
        await p.git(['push', '-q', 'origin', tag])
      }
    }
    const versions = await project('e2e-kw/versions')
    const greet = (mark: string) => `spec:
  inputs:
    name:
      description: who to greet
    from:
      default: $CI_PROJECT_NAME-$CI_COMMIT_REF_NAME-$NOT_A_VARIABLE
---
"greet-$[[ inputs.name | truncate(0,5) ]]":
  script:
    - echo "component ${mark}"
    - echo hello $[[ inputs.name | posix_escape ]] from $[[ inputs.from | expand_vars | posix_escape ]]
`
    const child = 'child-job:\n  script:\n    - echo "child of $CI_PIPELINE_SOURCE got $FORWARDED"\n'
    await commit(versions, { 'templates/greet.yml': greet('1.0.0'), 'ci/child.yml': child }, 'one', '1.0.0')
    await commit(versions, { 'templates/greet.yml': greet('1.2.0') }, 'two', '1.2.0')
    await commit(versions, { 'templates/greet.yml': greet('2.0.0-rc.1') }, 'rc', '2.0.0-rc.1')
    // main moves on, with a pipeline whose job's artifacts another project needs (needs:project).
    const pkg = await versions.push(
      {
        'templates/greet.yml': greet('main'),
        'ci/child.yml': 'broken: [',
        '.gitlab-ci.yml': 'package:\n  script: [echo "package of $CI_PROJECT_PATH" > pkg.txt]\n  artifacts:\n    paths: [pkg.txt]\n',
      },
      'main moves on',
    )
    assert.equal((await versions.wait(pkg.id, 60_000)).pipeline.status, 'success')

    const app = await project('e2e-kw/consumer2')
    await commit(
      app,
      {
        'docs/guide.md': 'v1\n',
        'src/app.sh': 'echo app\n',
        'ci/docs.yml': 'docs-job:\n  script: [echo docs]\n',
        'ci/code.yml': 'code-job:\n  script: [echo code]\n',
        'ci/child-needs.yml':
          'use-parent:\n  needs:\n    - pipeline: $PARENT_PIPELINE_ID\n      job: version\n  script:\n    - cat build.env\n',
      },
      'base',
    )
    const ci = `
stages: [build, test, trigger]
include:
  - component: $CI_SERVER_FQDN/e2e-kw/versions/greet@~latest
    inputs:
      name: "wharf's app"
  - local: ci/docs.yml
    rules:
      - changes: ['docs/**/*']
  - local: ci/code.yml
    rules:
      - changes: ['src/**/*']
version:
  stage: build
  script:
    - echo "IMAGE_TAG=1.2.$CI_PIPELINE_ID" > build.env
    - echo "FROM_DOTENV=yes" >> build.env
  artifacts:
    paths: [build.env]
    reports:
      dotenv: build.env
from-versions:
  stage: test
  needs:
    - project: e2e-kw/versions
      job: package
      ref: main
  script: [cat pkg.txt]
use-version:
  stage: test
  variables:
    IMAGE_TAG: from-yaml
  coverage: '/Coverage: \\d+\\.\\d+%/'
  script:
    - echo "tag $IMAGE_TAG, $FROM_DOTENV"
    - 'echo "Coverage: 12.00%"; echo "Coverage: 87.50% of lines"'
child:
  stage: trigger
  variables:
    FORWARDED: from-parent
  trigger:
    include:
      - project: e2e-kw/versions
        ref: 1.2.0
        file: ci/child.yml
    strategy: depend
child-needs:
  stage: trigger
  variables:
    PARENT_PIPELINE_ID: $CI_PIPELINE_ID
  trigger:
    include: ci/child-needs.yml
    strategy: depend
`
    // needs:project downloads with this project's job token: the versions project lets it in.
    await app.api('POST', `/projects/${versions.id}/job_token_scope/allowlist`, { target_project_id: app.id })
    // Only the CI file and the docs change in this push: include:rules:changes leaves ci/code.yml out.
    const pushed = await app.push({ '.gitlab-ci.yml': ci, 'docs/guide.md': 'v2\n' }, 'pipeline')
    const { pipeline, jobs } = await app.wait(pushed.id, 120_000)
    const bridges = await waitBridges(app, pushed.id)
    assert.equal(pipeline.status, 'success', JSON.stringify({ jobs, bridges }, null, 1))
    const log = async (name: string) => plainLog(await app.trace(jobs.find((j) => j.name === name)!.id))
    assert.deepEqual(statuses(jobs), {
      'greet-wharf': 'success',
      'docs-job': 'success',
      version: 'success',
      'from-versions': 'success',
      'use-version': 'success',
    })
    assert.match(await log('from-versions'), /package of e2e-kw\/versions\n/)
    const greeted = await log('greet-wharf')
    assert.match(greeted, /component 1\.2\.0\n/)
    assert.match(greeted, /hello wharf's app from consumer2-main-\$NOT_A_VARIABLE\n/)
    // The dotenv report's variables reach the later job, over its own YAML value, as on GitLab.
    // coverage: the last match in the log, in the job and (as the mean of its jobs') the pipeline.
    assert.equal((jobs.find((j) => j.name === 'use-version') as JobJson & { coverage: number | null }).coverage, 87.5)
    assert.equal((await app.api<PipelineJson & { coverage: string }>('GET', `/projects/${app.id}/pipelines/${pushed.id}`)).coverage, '87.5')
    assert.match(await log('use-version'), new RegExp(`tag 1\\.2\\.${pushed.id}, yes\\n`))
    const bridge = bridges.find((b) => b.name === 'child')!
    assert.equal(bridge.status, 'success')
    const [childJob] = await app.jobs(bridge.downstream_pipeline!.id)
    assert.equal(childJob!.name, 'child-job')
    assert.match(plainLog(await app.trace(childJob!.id)), /child of parent_pipeline got from-parent\n/)
    // needs:pipeline:job: the child's job takes the parent's job's artifacts.
    const needing = bridges.find((b) => b.name === 'child-needs')!
    assert.equal(needing.status, 'success', JSON.stringify(needing))
    const [useParent] = await app.jobs(needing.downstream_pipeline!.id)
    assert.match(plainLog(await app.trace(useParent!.id)), new RegExp(`IMAGE_TAG=1\\.2\\.${pushed.id}\\n`))

    // A dotenv report GitLab would refuse fails its job at upload.
    const bad = await app.push(
      {
        '.gitlab-ci.yml':
          'bad-env:\n  script:\n    - printf "A=1\\n\\nB=2\\n" > bad.env\n  artifacts:\n    reports:\n      dotenv: bad.env\n',
      },
      'bad dotenv',
    )
    const failed = await app.wait(bad.id, 60_000)
    assert.equal(failed.pipeline.status, 'failed')
    assert.match(plainLog(await app.trace(failed.jobs[0]!.id)), /Invalid Format/)
  })
})
