// Compatibility (issue 12): the stock @gitbeaker/rest client (npm) against a started Wharf, through
// what a registry + CI user automates: users, groups, projects, members, CI variables, deploy
// tokens, PATs, registry repositories and tags, pipelines, jobs, runners and triggers.
import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { Gitlab } from '@gitbeaker/rest'
import { testImages } from '../helpers/images.ts'
import { describeResult, run } from '../helpers/run.ts'
import { CiProject } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

let wharf: Wharf
let api: InstanceType<typeof Gitlab<false>>
let ci: CiProject
let aliceId: number
let groupId: number

before(async () => {
  const images = await testImages()
  wharf = await startWharf()
  const pat = await wharf.api('POST', '/api/v4/user/personal_access_tokens', { name: 'gitbeaker', scopes: ['api'] })
  assert.equal(pat.status, 201, pat.describe)
  api = new Gitlab({ host: wharf.url, token: pat.json.token })
  ci = await CiProject.create(wharf, 'beaker/app')
  await ci.push({ '.gitlab-ci.yml': 'build:\n  script: [echo build]\ntest:\n  script: [echo test]\n' })
  for (const ref of ['beaker/app:v1', 'beaker/app:v2', 'beaker/app/extra:v1']) {
    const r = await run(
      'skopeo',
      [
        '--insecure-policy',
        'copy',
        '--dest-tls-verify=false',
        '--dest-creds',
        `root:${wharf.rootPassword}`,
        images.oci('amd64'),
        `docker://${wharf.host}/${ref}`,
      ],
      { timeoutMs: 120_000 },
    )
    assert.equal(r.code, 0, describeResult(r))
  }
})

after(async () => {
  await ci?.dispose()
  await wharf?.stop()
})

describe('@gitbeaker/rest', { timeout: 300_000 }, () => {
  it('current user and users: create, list, show, edit, block, unblock', async () => {
    const me = await api.Users.showCurrentUser()
    assert.equal(me.username, 'root')
    const alice = await api.Users.create({ username: 'alice', name: 'Alice', email: 'alice@example.com', password: 'alice-password-1' })
    aliceId = alice.id
    assert.equal((await api.Users.edit(alice.id, { name: 'Alice A.' })).name, 'Alice A.')
    await api.Users.block(alice.id)
    assert.deepEqual(
      (await api.Users.all({ blocked: true })).map((u) => u.username),
      ['alice'],
    )
    await api.Users.unblock(alice.id)
    assert.equal((await api.Users.show(alice.id)).state, 'active')
    assert.deepEqual(
      (await api.Users.all({ username: 'alice' })).map((u) => u.id),
      [alice.id],
    )
  })

  it('groups and projects: create, list, show by path, edit, delete', async () => {
    const g = await api.Groups.create('Team', 'team', { description: 'the team' })
    groupId = g.id
    assert.equal((await api.Groups.show('team')).description, 'the team')
    await api.Groups.edit(g.id, { description: 'our team' })
    const p = await api.Projects.create({ name: 'svc', namespaceId: g.id, description: 'a service' })
    assert.equal((await api.Projects.show('team/svc')).id, p.id)
    assert.equal((await api.Projects.edit(p.id, { description: 'renamed' })).description, 'renamed')
    assert.deepEqual(
      (await api.Groups.allProjects(g.id)).map((x) => x.path),
      ['svc'],
    )
    assert.deepEqual(await api.Projects.all({ owned: true }), [])
    assert.ok((await api.Projects.all({ membership: true })).some((x) => x.path_with_namespace === 'beaker/app'))
    const tmp = await api.Projects.create({ name: 'tmp', namespaceId: g.id })
    await api.Projects.remove(tmp.id)
    assert.deepEqual((await api.Groups.all()).map((x) => x.full_path).sort(), ['beaker', 'team'])
  })

  it('members of a project and a group: add, list, edit, remove', async () => {
    await api.ProjectMembers.add('team/svc', 30, { userId: aliceId })
    await api.ProjectMembers.edit('team/svc', aliceId, 40)
    assert.equal((await api.ProjectMembers.show('team/svc', aliceId)).access_level, 40)
    assert.ok((await api.ProjectMembers.all('team/svc')).some((m) => m.username === 'alice'))
    await api.ProjectMembers.remove('team/svc', aliceId)
    assert.ok(!(await api.ProjectMembers.all('team/svc')).some((m) => m.username === 'alice'))
    await api.GroupMembers.add(groupId, 20, { userId: aliceId })
    assert.equal((await api.GroupMembers.show(groupId, aliceId)).access_level, 20)
    await api.GroupMembers.remove(groupId, aliceId)
  })

  it('CI/CD variables of a project and a group: create, list, show, edit, remove', async () => {
    await api.ProjectVariables.create(ci.id, 'DEPLOY_ENV', 'staging')
    await api.ProjectVariables.edit(ci.id, 'DEPLOY_ENV', 'production')
    assert.equal((await api.ProjectVariables.show(ci.id, 'DEPLOY_ENV')).value, 'production')
    assert.deepEqual(
      (await api.ProjectVariables.all(ci.id)).map((v) => v.key),
      ['DEPLOY_ENV'],
    )
    await api.ProjectVariables.remove(ci.id, 'DEPLOY_ENV')
    assert.deepEqual(await api.ProjectVariables.all(ci.id), [])
    await api.GroupVariables.create('beaker', 'REGION', 'eu')
    assert.equal((await api.GroupVariables.show('beaker', 'REGION')).value, 'eu')
    await api.GroupVariables.remove('beaker', 'REGION')
  })

  it('deploy tokens and personal access tokens: create, list, revoke', async () => {
    const d = await api.DeployTokens.create('ci-pull', ['read_registry'], { projectId: ci.id })
    assert.ok(d.token)
    assert.deepEqual(
      (await api.DeployTokens.all({ projectId: ci.id })).map((x) => x.name),
      ['ci-pull'],
    )
    await api.DeployTokens.remove(d.id, { projectId: ci.id })
    const gd = await api.DeployTokens.create('group-pull', ['read_registry'], { groupId })
    await api.DeployTokens.remove(gd.id, { groupId })
    const t = await api.Users.createPersonalAccessToken(aliceId, 'automation', ['api'])
    const asAlice = new Gitlab({ host: wharf.url, token: t.token as string })
    assert.equal((await asAlice.Users.showCurrentUser()).username, 'alice')
    assert.deepEqual(
      (await api.PersonalAccessTokens.all({ userId: aliceId })).map((x) => x.name),
      ['automation'],
    )
    await api.PersonalAccessTokens.remove({ tokenId: t.id })
    await assert.rejects(
      asAlice.Users.showCurrentUser(),
      (e: Error & { cause?: { response?: Response } }) => e.cause?.response?.status === 401,
    )
  })

  it('container registry: repositories and tags (list, show, remove a tag, remove a repository)', async () => {
    const repos = (await api.ContainerRegistry.allRepositories({ projectId: ci.id })).sort((a, b) => a.path.localeCompare(b.path))
    assert.deepEqual(
      repos.map((r) => r.location),
      [`${wharf.host}/beaker/app`, `${wharf.host}/beaker/app/extra`],
    )
    const repoId = repos[0]!.id
    assert.deepEqual((await api.ContainerRegistry.allTags(ci.id, repoId)).map((t) => t.name).sort(), ['v1', 'v2'])
    const v1 = await api.ContainerRegistry.showTag(ci.id, repoId, 'v1')
    assert.match(String(v1.digest), /^sha256:/)
    await api.ContainerRegistry.removeTag(ci.id, repoId, 'v2')
    assert.deepEqual(
      (await api.ContainerRegistry.allTags(ci.id, repoId)).map((t) => t.name),
      ['v1'],
    )
    await api.ContainerRegistry.removeRepository(ci.id, repos[1]!.id)
    // Accepted (202) and removed in the background, as GitLab does.
    let left: string[] = []
    for (let i = 0; i < 50; i++) {
      left = (await api.ContainerRegistry.allRepositories({ projectId: ci.id })).map((r) => r.path)
      if (left.length === 1) break
      await new Promise((r) => setTimeout(r, 200))
    }
    assert.deepEqual(left, ['beaker/app'])
  })

  it('pipelines and jobs: create with variables, list, jobs, log, cancel, retry, remove', async () => {
    const pl = await api.Pipelines.create(ci.id, 'main', { variables: [{ key: 'GREETING', value: 'hello' }] })
    assert.deepEqual(
      (await api.Pipelines.allVariables(ci.id, pl.id)).map((v) => [v.key, v.value]),
      [['GREETING', 'hello']],
    )
    const jobs = await api.Jobs.all(ci.id, { pipelineId: pl.id })
    assert.deepEqual(jobs.map((j) => j.name).sort(), ['build', 'test'])
    assert.equal(typeof (await api.Jobs.showLog(ci.id, jobs[0]!.id)), 'string')
    assert.equal((await api.Jobs.show(ci.id, jobs[0]!.id)).name, jobs[0]!.name)
    await api.Jobs.cancel(ci.id, jobs[0]!.id)
    const retried = await api.Jobs.retry(ci.id, jobs[0]!.id)
    assert.equal(retried.name, jobs[0]!.name)
    await api.Pipelines.cancel(ci.id, pl.id)
    assert.equal((await api.Pipelines.show(ci.id, pl.id)).status, 'canceled')
    await api.Pipelines.retry(ci.id, pl.id)
    assert.ok((await api.Pipelines.all(ci.id)).some((x) => x.id === pl.id))
    await api.Pipelines.cancel(ci.id, pl.id)
    await api.Pipelines.remove(ci.id, pl.id)
    await assert.rejects(
      api.Pipelines.show(ci.id, pl.id),
      (e: Error & { cause?: { response?: Response } }) => e.cause?.response?.status === 404,
    )
  })

  it('runners: create, list, show, edit, remove', async () => {
    const created = await api.Users.createCIRunner('project_type', { projectId: ci.id, description: 'gitbeaker' })
    assert.ok(created.token)
    assert.ok((await api.Runners.all({ projectId: ci.id })).some((r) => r.id === created.id))
    assert.ok((await api.Runners.all()).some((r) => r.id === created.id))
    await api.Runners.edit(created.id, { description: 'renamed', tagList: ['docker'] })
    const shown = await api.Runners.show(created.id)
    assert.equal(shown.description, 'renamed')
    assert.deepEqual(shown.tag_list, ['docker'])
    await api.Runners.remove({ runnerId: created.id })
    await assert.rejects(api.Runners.show(created.id))
  })

  it("runners enabled for another project and disabled, a runner's jobs; namespaces; group and single registry repositories", async () => {
    const runner = await api.Users.createCIRunner('project_type', { projectId: ci.id, description: 'shared across' })
    const group = await api.Groups.show('beaker')
    const target = await api.Projects.create({ name: 'runner-target', namespaceId: group.id })
    assert.equal((await api.Runners.enable(target.id, runner.id)).id, runner.id)
    assert.ok((await api.Runners.all({ projectId: target.id })).some((r) => r.id === runner.id))
    await api.Runners.disable(target.id, runner.id)
    assert.ok(!(await api.Runners.all({ projectId: target.id })).some((r) => r.id === runner.id))
    assert.deepEqual(await api.Runners.allJobs(runner.id, { status: 'running' }), [])

    const namespaces = await api.Namespaces.all({ search: 'beaker' })
    assert.deepEqual(
      namespaces.map((n) => [n.full_path, n.kind]),
      [['beaker', 'group']],
    )
    const repos = await api.ContainerRegistry.allRepositories({ groupId: group.id })
    const own = await api.ContainerRegistry.allRepositories({ projectId: ci.id })
    assert.deepEqual(repos.map((r) => r.path).sort(), own.map((r) => r.path).sort())
    const one = await api.ContainerRegistry.showRepository(repos[0]!.id, { tags: true, tagsCount: true })
    assert.equal(one.path, repos[0]!.path)
    assert.equal(one.tags_count, one.tags?.length)
  })

  it('pipeline triggers: create, list, trigger (without and with variables), remove', async () => {
    const t = await api.PipelineTriggerTokens.create(ci.id, 'nightly')
    assert.deepEqual(
      (await api.PipelineTriggerTokens.all(ci.id)).map((x) => x.description),
      ['nightly'],
    )
    const plain = await api.PipelineTriggerTokens.trigger(ci.id, 'main', t.token as string)
    assert.equal(plain.ref, 'main')
    const withVars = await api.PipelineTriggerTokens.trigger(ci.id, 'main', t.token as string, { variables: { NIGHTLY: 'true' } })
    assert.deepEqual(
      (await api.Pipelines.allVariables(ci.id, withVars.id)).map((v) => [v.key, v.value]),
      [['NIGHTLY', 'true']],
    )
    await api.PipelineTriggerTokens.remove(ci.id, t.id)
    assert.deepEqual(await api.PipelineTriggerTokens.all(ci.id), [])
  })
  it('CI templates (GitLabCIYMLTemplates: all, show) and Markdown.render', async () => {
    const all = await api.GitLabCIYMLTemplates.all()
    assert.deepEqual(
      all.map((x) => x.key),
      ['Docker', 'Docker-Multiarch', 'Go', 'Nodejs', 'Python'],
    )
    const docker = await api.GitLabCIYMLTemplates.show('Docker')
    assert.equal(docker.name, 'Docker')
    assert.match(String(docker.content), /services:\n {4}- docker:dind/)
    const md = await api.Markdown.render('# Hi <script>x</script>', { gfm: 'true' })
    assert.equal(md.html, '<h1>Hi &lt;script&gt;x&lt;/script&gt;</h1>\n')
  })

  it('PipelineSchedules: create, all, show, edit, run, allTriggeredPipelines, takeOwnership, variables, remove', async () => {
    const s = await api.PipelineSchedules.create(ci.id, 'Nightly', 'main', '0 3 * * *', { cronTimezone: 'Europe/Paris', active: true })
    assert.deepEqual([s.description, s.cron_timezone, s.active], ['Nightly', 'Europe/Paris', true])
    assert.deepEqual(
      (await api.PipelineSchedules.all(ci.id, { scope: 'active' })).map((x) => x.id),
      [s.id],
    )
    await api.PipelineScheduleVariables.create(ci.id, s.id, 'NIGHTLY', 'yes')
    await api.PipelineScheduleVariables.edit(ci.id, s.id, 'NIGHTLY', 'sure')
    const edited = await api.PipelineSchedules.edit(ci.id, s.id, { cron: '30 4 * * *' })
    assert.equal(edited.cron, '30 4 * * *')
    await api.PipelineSchedules.run(ci.id, s.id)
    const shown = await api.PipelineSchedules.show(ci.id, s.id)
    assert.deepEqual(
      shown.variables.map((v) => [v.key, v.value]),
      [['NIGHTLY', 'sure']],
    )
    assert.equal((await api.Pipelines.show(ci.id, shown.last_pipeline!.id)).source, 'schedule')
    const triggered = await api.PipelineSchedules.allTriggeredPipelines(ci.id, s.id)
    assert.deepEqual(
      triggered.map((p) => p.id),
      [shown.last_pipeline!.id],
    )
    assert.deepEqual(
      (await api.Pipelines.allVariables(ci.id, triggered[0]!.id)).map((v) => [v.key, v.value]),
      [['NIGHTLY', 'sure']],
    )
    assert.equal((await api.PipelineSchedules.takeOwnership(ci.id, s.id)).owner.username, 'root')
    await api.PipelineScheduleVariables.remove(ci.id, s.id, 'NIGHTLY')
    await api.PipelineSchedules.remove(ci.id, s.id)
    assert.deepEqual(await api.PipelineSchedules.all(ci.id), [])
  })

  it('Users.deactivate and activate', async () => {
    const bo = await api.Users.create({ username: 'bo', name: 'Bo', email: 'bo@example.com', password: 'bo-password-12' })
    await api.Users.deactivate(bo.id)
    assert.equal((await api.Users.show(bo.id)).state, 'deactivated')
    await api.Users.activate(bo.id)
    assert.equal((await api.Users.show(bo.id)).state, 'active')
    await api.Users.remove(bo.id)
  })
})

describe('@gitbeaker/rest: repository', { timeout: 300_000 }, () => {
  it('RepositoryFiles, Commits.create with actions, trees, compare, archives, Branches, Tags and protected refs after a real git push', async () => {
    const repo = await CiProject.create(wharf, 'beaker/files')
    try {
      const pushed = await repo.push({ 'README.md': 'hello\n', '.gitlab-ci.yml': 'build:\n  script: [echo build]\n' })
      const id = repo.id
      await api.RepositoryFiles.create(id, 'docs/a.md', 'main', 'one', 'add a', { authorName: 'Bot', authorEmail: 'bot@example.com' })
      const shown = await api.RepositoryFiles.show(id, 'docs/a.md', 'main')
      assert.equal(Buffer.from(shown.content, 'base64').toString(), 'one')
      await api.RepositoryFiles.edit(id, 'docs/a.md', 'main', 'two', 'update a', { lastCommitId: shown.last_commit_id })
      assert.equal(await api.RepositoryFiles.showRaw(id, 'docs/a.md', 'main'), 'two')
      // A stale last_commit_id is refused with GitLab's 400.
      await assert.rejects(
        api.RepositoryFiles.edit(id, 'docs/a.md', 'main', 'three', 'stale', { lastCommitId: shown.last_commit_id }),
        (e: Error & { cause?: { response?: Response } }) => e.cause?.response?.status === 400,
      )
      const c = await api.Commits.create(id, 'main', 'many', [
        { action: 'create', filePath: 'run.sh', content: 'echo hi' },
        { action: 'move', previousPath: 'docs/a.md', filePath: 'a.md' },
        { action: 'delete', filePath: 'README.md' },
      ])
      assert.equal((await api.Commits.show(id, c.id)).title, 'many')
      assert.deepEqual((await api.Commits.showDiff(id, c.id)).map((d) => d.new_path).sort(), ['README.md', 'a.md', 'run.sh'])
      assert.deepEqual((await api.Commits.all(id, { refName: 'main' })).map((x) => x.title).slice(0, 3), ['many', 'update a', 'add a'])
      assert.deepEqual((await api.Repositories.allRepositoryTrees(id, { recursive: true })).map((e) => e.path).sort(), [
        '.gitlab-ci.yml',
        'a.md',
        'run.sh',
      ])
      const cmp = await api.Repositories.compare(id, pushed.sha, 'main')
      assert.equal((cmp.commits as unknown[]).length, 3)
      const zip = (await api.Repositories.showArchive(id, { fileType: 'zip', sha: 'main' })) as unknown as Blob
      assert.equal(
        Buffer.from(await zip.arrayBuffer())
          .subarray(0, 2)
          .toString(),
        'PK',
      )
      await api.Branches.create(id, 'feature', 'main')
      await api.RepositoryFiles.remove(id, 'a.md', 'feature', 'rm a')
      await api.Tags.create(id, 'v1', 'main', { message: 'first release' })
      assert.equal((await api.Tags.show(id, 'v1')).message, 'first release\n')
      await api.ProtectedBranches.protect(id, 'main', { pushAccessLevel: 40, mergeAccessLevel: 40 })
      await api.ProtectedTags.protect(id, 'v*', { createAccessLevel: 40 })
      assert.deepEqual(
        (await api.ProtectedBranches.all(id)).map((b) => b.name),
        ['main'],
      )
      assert.deepEqual(
        (await api.ProtectedTags.all(id)).map((t) => t.name),
        ['v*'],
      )
      assert.equal((await api.Branches.show(id, 'main')).protected, true)
      await api.Commits.editStatus(id, c.id, 'running', { name: 'ext/ci', targetUrl: 'https://ci.example.com/1' })
      await api.Commits.editStatus(id, c.id, 'success', { name: 'ext/ci' })
      assert.deepEqual(
        (await api.Commits.allStatuses(id, c.id)).map((x) => [x.name, x.status]),
        [['ext/ci', 'success']],
      )
      assert.equal((await api.Lint.lint(id, 'build:\n  script: [echo]\n')).valid, true)
      assert.equal((await api.Lint.lint(id, 'build:\n  script: [echo]\n  colour: red\n')).valid, false)
      assert.equal((await api.Lint.check(id, { ref: 'main' })).valid, true)
      await api.ProtectedBranches.unprotect(id, 'main')
      await api.ProtectedTags.unprotect(id, 'v*')
      await api.Branches.remove(id, 'feature')
      await api.Tags.remove(id, 'v1')
      assert.deepEqual(
        (await api.Branches.all(id)).map((b) => b.name),
        ['main'],
      )
      assert.deepEqual(await api.Tags.all(id), [])
      // The commits made through the API started pipelines, as pushes do.
      assert.ok((await api.Pipelines.all(id)).some((pl) => pl.sha === c.id))
    } finally {
      await repo.dispose()
    }
  })
})
