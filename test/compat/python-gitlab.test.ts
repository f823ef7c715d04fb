// Compatibility (issue 12): Debian's stock python3-gitlab (library and CLI) against a started Wharf,
// through what a registry + CI user automates: users, groups, projects, members, CI variables,
// deploy tokens, PATs, registry repositories and tags, pipelines, jobs, runners and triggers.
// Each step is a short python3 script using the library as its docs show; nothing is patched.
import assert from 'node:assert/strict'
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { after, before, describe, it } from 'node:test'
import pkg from '../../package.json' with { type: 'json' }
import { testImages } from '../helpers/images.ts'
import { describeResult, run } from '../helpers/run.ts'
import { CiProject, startRunner } from '../helpers/runner.ts'
import { startWharf, type Wharf } from '../helpers/wharf.ts'

// Debian's interpreter, where python3-gitlab is installed (a python3 earlier on PATH may not have it).
const PYTHON = '/usr/bin/python3'

let wharf: Wharf
let work: string
let token: string
let ci: CiProject
// Where webhooks are delivered: a receiver on loopback (allowed for this server by its setting).
let receiver: Server
const deliveries: Array<{ headers: IncomingHttpHeaders; body: any }> = []

const PRELUDE = `
import gitlab, json, os, sys
gl = gitlab.Gitlab(os.environ['GL_URL'], private_token=os.environ['GL_TOKEN'])
def out(x): print(json.dumps(x))
`

/** Runs a python-gitlab script; returns what it printed last with out(), as JSON. */
async function py(code: string, env: Record<string, string> = {}): Promise<any> {
  const r = await run(PYTHON, ['-c', PRELUDE + code], { env: { GL_URL: wharf.url, GL_TOKEN: token, ...env }, timeoutMs: 60_000 })
  assert.equal(r.code, 0, `python-gitlab failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(20)}`)
  const last = r.stdout.trim().split('\n').at(-1)
  return last ? JSON.parse(last) : undefined
}

/** The CLI (`python3 -m gitlab`, Debian ships no `gitlab` command) with a config file naming the server. */
async function cli(args: string[]): Promise<any> {
  const cfg = path.join(work, 'python-gitlab.cfg')
  const r = await run(PYTHON, ['-m', 'gitlab', '-c', cfg, '-o', 'json', ...args], { timeoutMs: 60_000 })
  assert.equal(r.code, 0, `gitlab CLI failed:\n${describeResult(r)}\n--- server log ---\n${await wharf.logTail(20)}`)
  return r.stdout.trim() ? JSON.parse(r.stdout) : undefined
}

before(async () => {
  const images = await testImages()
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      deliveries.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) })
      res.end('ok')
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  wharf = await startWharf({ env: { WHARF_WEBHOOKS_ALLOW_LOCAL_NETWORK: 'true' } })
  work = await mkdtemp(path.join(tmpdir(), 'wharf-compat-pygitlab-'))
  const pat = await wharf.api('POST', '/api/v4/user/personal_access_tokens', { name: 'python-gitlab', scopes: ['api'] })
  assert.equal(pat.status, 201, pat.describe)
  token = pat.json.token
  await writeFile(
    path.join(work, 'python-gitlab.cfg'),
    `[global]\ndefault = wharf\n\n[wharf]\nurl = ${wharf.url}\nprivate_token = ${token}\napi_version = 4\n`,
  )
  // A project with a pipeline definition (a real git push) and two tags of a real image (skopeo).
  ci = await CiProject.create(wharf, 'compat/app')
  await ci.push({ '.gitlab-ci.yml': 'build:\n  script: [echo build]\ntest:\n  script: [echo test]\n' })
  for (const ref of ['compat/app:v1', 'compat/app:v2', 'compat/app/extra:v1']) {
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
  receiver?.close()
  if (work) await rm(work, { recursive: true, force: true })
})

describe('python-gitlab (library)', { timeout: 300_000 }, () => {
  it('auth and the current user', async () => {
    assert.deepEqual(await py(`gl.auth(); out([gl.user.username, gl.user.is_admin])`), ['root', true])
  })

  it('users: create, list, get, update, block and unblock', async () => {
    const r = await py(`
u = gl.users.create({'username': 'alice', 'name': 'Alice', 'email': 'alice@example.com', 'password': 'alice-password-1'})
u = gl.users.get(u.id)
u.name = 'Alice A.'
u.save()
u.block()
blocked = [x.username for x in gl.users.list(blocked=True)]
u.unblock()
u.deactivate()
deactivated = gl.users.get(u.id).state
u.activate()
out({'name': gl.users.get(u.id).name, 'state': gl.users.get(u.id).state, 'deactivated': deactivated, 'blocked': blocked, 'all': sorted(x.username for x in gl.users.list(get_all=True)), 'by_name': [x.id for x in gl.users.list(username='alice')] == [u.id]})
`)
    assert.deepEqual(r, {
      name: 'Alice A.',
      state: 'active',
      deactivated: 'deactivated',
      blocked: ['alice'],
      all: ['alice', 'root'],
      by_name: true,
    })
  })

  it('groups and projects: create, list (boolean filters as True/False), get by path, update, delete', async () => {
    const r = await py(`
g = gl.groups.create({'name': 'Team', 'path': 'team'})
g = gl.groups.get('team')
g.description = 'the team'
g.save()
p = gl.projects.create({'name': 'svc', 'namespace_id': g.id, 'description': 'a service'})
p = gl.projects.get('team/svc')
p.description = 'renamed'
p.save()
tmp = gl.projects.create({'name': 'tmp', 'namespace_id': g.id})
tmp.delete()
out({'group': gl.groups.get(g.id).description, 'project': gl.projects.get(p.id).description, 'in_group': sorted(x.path for x in g.projects.list(get_all=True)),
     'owned': [x.path for x in gl.projects.list(owned=True)], 'membership': sorted(x.path_with_namespace for x in gl.projects.list(membership=True, get_all=True)),
     'groups': sorted(x.full_path for x in gl.groups.list(get_all=True))})
`)
    assert.equal(r.group, 'the team')
    assert.equal(r.project, 'renamed')
    // Deletion may be deferred, as GitLab's is; the project is gone from reads either way.
    assert.ok(!r.in_group.includes('tmp') || r.in_group.includes('svc'), JSON.stringify(r))
    assert.ok(r.in_group.includes('svc'))
    assert.deepEqual(r.owned, [])
    assert.ok(r.membership.includes('team/svc') && r.membership.includes('compat/app'), JSON.stringify(r))
    assert.deepEqual(r.groups, ['compat', 'team'])
  })

  it('members of a project and a group: add, list, update, remove', async () => {
    const r = await py(`
alice = gl.users.list(username='alice')[0]
p = gl.projects.get('team/svc')
m = p.members.create({'user_id': alice.id, 'access_level': gitlab.const.DEVELOPER_ACCESS})
m.access_level = gitlab.const.MAINTAINER_ACCESS
m.save()
levels = [(x.username, x.access_level) for x in p.members.list() if x.username == 'alice']
everyone = sorted(x.username for x in p.members_all.list(get_all=True))
m.delete()
g = gl.groups.get('team')
gm = g.members.create({'user_id': alice.id, 'access_level': gitlab.const.REPORTER_ACCESS})
got = g.members.get(alice.id).access_level
g.members.delete(alice.id)
out({'levels': levels, 'everyone': everyone, 'after': [x.username for x in p.members.list() if x.username == 'alice'], 'group': got, 'group_after': [x.username for x in g.members.list() if x.username == 'alice']})
`)
    assert.deepEqual(r, { levels: [['alice', 40]], everyone: ['alice', 'root'], after: [], group: 20, group_after: [] })
  })

  it('CI/CD variables of a project and a group: create, list, get, update, delete', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
v = p.variables.create({'key': 'DEPLOY_ENV', 'value': 'staging', 'masked': False, 'protected': False})
v = p.variables.get('DEPLOY_ENV')
v.value = 'production'
v.save()
listed = [(x.key, x.value) for x in p.variables.list()]
p.variables.delete('DEPLOY_ENV')
g = gl.groups.get('compat')
g.variables.create({'key': 'REGION', 'value': 'eu'})
gv = g.variables.get('REGION').value
g.variables.get('REGION').delete()
out({'listed': listed, 'after': [x.key for x in p.variables.list()], 'group': gv, 'group_after': [x.key for x in g.variables.list()]})
`)
    assert.deepEqual(r, { listed: [['DEPLOY_ENV', 'production']], after: [], group: 'eu', group_after: [] })
  })

  it('deploy tokens and personal access tokens: create, list, revoke', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
d = p.deploytokens.create({'name': 'ci-pull', 'scopes': ['read_registry']})
secret = d.token
names = [x.name for x in p.deploytokens.list()]
d.delete()
active = [x.name for x in p.deploytokens.list(active=True)]
g = gl.groups.get('compat')
gd = g.deploytokens.create({'name': 'group-pull', 'scopes': ['read_registry']})
gnames = [x.name for x in g.deploytokens.list()]
gd.delete()
alice = gl.users.list(username='alice')[0]
t = alice.personal_access_tokens.create({'name': 'automation', 'scopes': ['api']})
as_alice = gitlab.Gitlab(os.environ['GL_URL'], private_token=t.token)
as_alice.auth()
mine = [x.name for x in gl.personal_access_tokens.list(user_id=alice.id)]
gl.personal_access_tokens.delete(t.id)
try:
    as_alice.auth(); still = True
except gitlab.exceptions.GitlabAuthenticationError:
    still = False
out({'secret': bool(secret), 'names': names, 'after': active, 'group': gnames, 'alice': as_alice.user.username, 'mine': mine, 'still': still})
`)
    assert.deepEqual(r, {
      secret: true,
      names: ['ci-pull'],
      after: [],
      group: ['group-pull'],
      alice: 'alice',
      mine: ['automation'],
      still: false,
    })
  })

  it('container registry: repositories and tags (list, get, delete a tag, delete a repository)', async () => {
    const r = await py(`
import time
p = gl.projects.get('compat/app')
repos = sorted(p.repositories.list(), key=lambda x: x.path)
repo = repos[0]
tags = sorted(t.name for t in repo.tags.list())
v1 = repo.tags.get('v1')
repo.tags.delete('v2')
after = [t.name for t in repo.tags.list()]
p.repositories.delete(repos[1].id)
for _ in range(50):
    left = [x.path for x in p.repositories.list()]
    if len(left) == 1: break
    time.sleep(0.2)
out({'repos': [(x.path, x.location) for x in repos], 'tags': tags, 'v1': [v1.name, v1.digest.startswith('sha256:'), v1.total_size > 0], 'after': after, 'left': left})
`)
    assert.deepEqual(r.repos, [
      ['compat/app', `${wharf.host}/compat/app`],
      ['compat/app/extra', `${wharf.host}/compat/app/extra`],
    ])
    assert.deepEqual(r.tags, ['v1', 'v2'])
    assert.deepEqual(r.v1, ['v1', true, true])
    assert.deepEqual(r.after, ['v1'])
    assert.deepEqual(r.left, ['compat/app'])
  })

  it('pipelines: create with variables, list, jobs, trace, cancel, retry, delete', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
pl = p.pipelines.create({'ref': 'main', 'variables': [{'key': 'GREETING', 'value': 'hello'}]})
vars = [(v.key, v.value) for v in pl.variables.list()]
jobs = sorted(j.name for j in pl.jobs.list())
job = p.jobs.get(pl.jobs.list()[0].id)
trace = job.trace()
pl.cancel()
status = p.pipelines.get(pl.id).status
job_list = [j.status for j in p.jobs.list(scope=['canceled'], get_all=True)]
pl.retry()
retried = p.pipelines.get(pl.id).status
ids = [x.id for x in p.pipelines.list(ref='main', get_all=True)]
pl.cancel()
pl.delete()
try:
    p.pipelines.get(pl.id); gone = False
except gitlab.exceptions.GitlabGetError as e:
    gone = e.response_code == 404
out({'vars': vars, 'jobs': jobs, 'trace': type(trace).__name__, 'status': status, 'canceled_jobs': len(job_list) >= 2, 'retried': retried, 'listed': pl.id in ids, 'gone': gone})
`)
    assert.deepEqual(r, {
      vars: [['GREETING', 'hello']],
      jobs: ['build', 'test'],
      trace: 'bytes',
      status: 'canceled',
      canceled_jobs: true,
      retried: 'pending',
      listed: true,
      gone: true,
    })
  })

  it('jobs: get, cancel, retry', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
pl = p.pipelines.create({'ref': 'main'})
job = p.jobs.get(pl.jobs.list()[0].id)
job.cancel()
canceled = p.jobs.get(job.id).status
again = job.retry()
out({'canceled': canceled, 'retry': [again['name'] == job.name, again['id'] != job.id, again['status']]})
`)
    assert.deepEqual(r, { canceled: 'canceled', retry: [true, true, 'pending'] })
  })

  it('runners: list, get, update, delete', async () => {
    const created = await wharf.api('POST', '/api/v4/user/runners', { runner_type: 'instance_type', description: 'shared' })
    assert.equal(created.status, 201, created.describe)
    const r = await py(
      `
mine = [x.description for x in gl.runners.list()]
everyone = [x.id for x in gl.runners.all()]
rn = gl.runners.get(int(os.environ['RUNNER']))
rn.description = 'shared runner'
rn.tag_list = ['docker']
rn.save()
got = gl.runners.get(rn.id)
project = [x.id for x in gl.projects.get('compat/app').runners.list()]
gl.runners.delete(rn.id)
out({'all': rn.id in everyone, 'desc': got.description, 'tags': got.tag_list, 'after': rn.id in [x.id for x in gl.runners.all()], 'mine': isinstance(mine, list), 'project': isinstance(project, list)})
`,
      { RUNNER: String(created.json.id) },
    )
    assert.deepEqual(r, { all: true, desc: 'shared runner', tags: ['docker'], after: false, mine: true, project: true })
  })

  it("project runners enabled for another project and disabled; a runner's jobs", async () => {
    const app = await wharf.api('GET', '/api/v4/projects/compat%2Fapp')
    const created = await wharf.api('POST', '/api/v4/user/runners', { runner_type: 'project_type', project_id: app.json.id })
    assert.equal(created.status, 201, created.describe)
    const r = await py(
      `
rid = int(os.environ['RUNNER'])
g = gl.groups.get('compat')
target = gl.projects.create({'name': 'runner-target', 'namespace_id': g.id})
enabled = target.runners.create({'runner_id': rid})
listed = [x.id for x in target.runners.list()]
target.runners.delete(rid)
after = [x.id for x in target.runners.list()]
jobs = gl.runners.get(rid).jobs.list(status='running')
out({'enabled': enabled.id == rid, 'listed': rid in listed, 'after': rid in after, 'jobs': jobs})
`,
      { RUNNER: String(created.json.id) },
    )
    assert.deepEqual(r, { enabled: true, listed: true, after: false, jobs: [] })
  })

  it('artifacts by ref (archive, raw file), a file of a job, keep and erase, after a real run', async (t) => {
    // Its own project and project runner (shell executor), so no other test's jobs are taken.
    const arts = await CiProject.create(wharf, 'compat/arts')
    t.after(() => arts.dispose())
    const created = await wharf.api('POST', '/api/v4/user/runners', { runner_type: 'project_type', project_id: arts.id })
    assert.equal(created.status, 201, created.describe)
    const runner = await startRunner(wharf, ['--executor', 'shell', '--name', 'compat-arts'], { token: created.json.token })
    t.after(() => runner.stop())
    const pushed = await arts.push({
      '.gitlab-ci.yml': 'build:\n  script: [mkdir -p dist, echo hello > dist/a.txt]\n  artifacts:\n    paths: [dist/]\n',
    })
    const { pipeline, jobs } = await arts.wait(pushed.id)
    assert.equal(pipeline.status, 'success', JSON.stringify(jobs))
    const r = await py(
      `
import io, zipfile
p = gl.projects.get('compat/arts')
archive = p.artifacts.download(ref_name='main', job='build')
names = sorted(zipfile.ZipFile(io.BytesIO(archive)).namelist())
raw = p.artifacts.raw('main', 'dist/a.txt', 'build').decode()
job = p.jobs.get(int(os.environ['JOB']))
one = job.artifact('dist/a.txt').decode()
job.keep_artifacts()
kept = p.jobs.get(job.id).artifacts_expire_at
job.erase()
erased = p.jobs.get(job.id)
out({'names': names, 'raw': raw, 'one': one, 'kept': kept, 'erased': erased.erased_at is not None, 'left': erased.attributes['artifacts']})
`,
      { JOB: String(jobs[0]!.id) },
    )
    assert.deepEqual(r, { names: ['dist/', 'dist/a.txt'], raw: 'hello\n', one: 'hello\n', kept: null, erased: true, left: [] })
  })

  it('namespaces, group registry repositories and a registry repository by id', async () => {
    const r = await py(`
mine = [n.full_path for n in gl.namespaces.list(get_all=True)]
found = [n.full_path for n in gl.namespaces.list(search='compat')]
repos = gl.groups.get('compat').registry_repositories.list(get_all=True)
one = gl.registry_repositories.get(repos[0].id, tags=True, tags_count=True)
# Earlier steps delete tags and images: compare with the project's own listing.
project_repos = gl.projects.get('compat/app').repositories.list(get_all=True)
tags = sorted(t.name for t in project_repos[0].tags.list(get_all=True))
out({'root': 'root' in mine, 'compat': 'compat' in mine, 'found': found[:1], 'same': sorted(x.path for x in repos) == sorted(x.path for x in project_repos), 'one': [one.path, one.tags_count, sorted(t['name'] for t in one.tags)], 'tags': tags})
`)
    assert.ok(r.tags.length > 0, JSON.stringify(r))
    assert.deepEqual(r, {
      root: true,
      compat: true,
      found: ['compat'],
      same: true,
      one: ['compat/app', r.tags.length, r.tags],
      tags: r.tags,
    })
  })

  it('webhooks: project and group hooks created, listed, updated, deleted; a push is delivered to the receiver', async () => {
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`
    const r = await py(
      `
p = gl.projects.get('compat/app')
h = p.hooks.create({'url': os.environ['HOOK_URL'], 'push_events': True, 'tag_push_events': True, 'token': 'hook-secret'})
listed = [(x.url, x.push_events, x.pipeline_events) for x in p.hooks.list()]
p.hooks.update(h.id, {'url': os.environ['HOOK_URL'], 'pipeline_events': True})
got = p.hooks.get(h.id)
g = gl.groups.get('compat')
gh = g.hooks.create({'url': os.environ['HOOK_URL'], 'job_events': True})
glisted = [x.job_events for x in g.hooks.list()]
gh.delete()
out({'id': h.id, 'listed': listed, 'pipeline': got.pipeline_events, 'token': hasattr(got, 'token'), 'group': glisted, 'group_after': len(g.hooks.list())})
`,
      { HOOK_URL: url },
    )
    assert.deepEqual({ ...r, id: 0 }, { id: 0, listed: [[url, true, false]], pipeline: true, token: false, group: [true], group_after: 0 })
    await ci.push({ 'README.md': 'hooked\n' }, 'Say hooked')
    const until = Date.now() + 20_000
    while (!deliveries.some((d) => d.body.object_kind === 'push') && Date.now() < until) await new Promise((res) => setTimeout(res, 100))
    const push = deliveries.find((d) => d.body.object_kind === 'push')
    assert.ok(push, `no push delivered; got ${JSON.stringify(deliveries.map((d) => d.body.object_kind))}`)
    assert.equal(push.headers['x-gitlab-event'], 'Push Hook')
    assert.equal(push.headers['x-gitlab-token'], 'hook-secret')
    assert.equal(push.body.commits[0].title, 'Say hooked')
    await py(`gl.projects.get('compat/app').hooks.delete(int(os.environ['HOOK']))`, { HOOK: String(r.id) })
  })

  it('pipeline triggers: create, list, trigger_pipeline (with variables), delete', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
t = p.triggers.create({'description': 'nightly'})
listed = [x.description for x in p.triggers.list()]
pl = p.trigger_pipeline('main', t.token, variables={'NIGHTLY': 'true'})
vars = [(v.key, v.value) for v in p.pipelines.get(pl.id).variables.list()]
t.delete()
out({'listed': listed, 'source': pl.source, 'ref': pl.ref, 'vars': vars, 'after': [x.description for x in p.triggers.list()]})
`)
    assert.deepEqual(r, { listed: ['nightly'], source: 'trigger', ref: 'main', vars: [['NIGHTLY', 'true']], after: [] })
  })

  it('pipeline schedules: create, list, get, edit, variables, play, take ownership, delete', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
s = p.pipelineschedules.create({'description': 'Nightly', 'ref': 'main', 'cron': '0 1 * * *', 'cron_timezone': 'America/New_York'})
s.variables.create({'key': 'NIGHTLY', 'value': 'yes'})
listed = [x.description for x in p.pipelineschedules.list()]
s = p.pipelineschedules.get(s.id)
s.cron = '0 2 * * *'
s.save()
sid = s.id
# GitLab answers play with {"message": "201 Created"}, which python-gitlab makes the object's attributes.
played = s.play()
s = p.pipelineschedules.get(sid)
pl = p.pipelines.get(s.last_pipeline['id'])
vars = [(v.key, v.value) for v in pl.variables.list()]
s.take_ownership()
owner = s.owner['username']
s.delete()
out({'played': played, 'listed': listed, 'zone': s.cron_timezone, 'cron': s.cron, 'next': s.next_run_at[11:16], 'vars': vars, 'source': pl.source, 'svars': [(v['key'], v['value']) for v in s.attributes['variables']], 'owner': owner, 'after': [x.id for x in p.pipelineschedules.list()]})
`)
    assert.deepEqual(r, {
      played: { message: '201 Created' },
      listed: ['Nightly'],
      zone: 'America/New_York',
      cron: '0 2 * * *',
      // 02:00 in New York in December (EST, UTC-5).
      next: '07:00',
      vars: [['NIGHTLY', 'yes']],
      source: 'schedule',
      svars: [['NIGHTLY', 'yes']],
      owner: 'root',
      after: [],
    })
  })

  it('releases: create (the tag from ref) with links, list, get, save, links create/save/list/delete, delete', async () => {
    const r = await py(`
p = gl.projects.get('compat/app')
created = p.releases.create({'tag_name': 'rel-1.0', 'ref': 'main', 'name': 'One', 'description': 'First',
  'assets': {'links': [{'name': 'bin', 'url': 'https://dl.example.com/bin', 'link_type': 'package'}]}})
listed = [x.tag_name for x in p.releases.list()]
r = p.releases.get('rel-1.0')
r.description = 'Edited'
r.save()
r = p.releases.get('rel-1.0')
link = r.links.create({'name': 'docs', 'url': 'https://docs.example.com', 'link_type': 'runbook'})
link.name = 'manual'
link.save()
links = sorted((l.name, l.link_type) for l in r.links.list())
r.links.delete(link.id)
left = [l.name for l in r.links.list()]
p.releases.delete('rel-1.0')
out({'created': [created.tag_name, created.name, created.assets['links'][0]['url']], 'listed': listed, 'description': r.description,
  'commit': r.commit['id'] == p.commits.get('main').id, 'links': links, 'left': left, 'after': [x.tag_name for x in p.releases.list()],
  'tag': p.tags.get('rel-1.0').name})
`)
    assert.deepEqual(r, {
      created: ['rel-1.0', 'One', 'https://dl.example.com/bin'],
      listed: ['rel-1.0'],
      description: 'Edited',
      commit: true,
      links: [
        ['bin', 'package'],
        ['manual', 'runbook'],
      ],
      left: ['bin'],
      after: [],
      tag: 'rel-1.0',
    })
  })

  it('pipeline triggers from curl: multipart form as GitLab documents it, and the webhook URL', async () => {
    const t = await wharf.api('POST', `/api/v4/projects/${ci.id}/triggers`, { description: 'curl' })
    assert.equal(t.status, 201, t.describe)
    const form = await run('curl', [
      '-sS',
      '-f',
      '-X',
      'POST',
      '-F',
      `token=${t.json.token}`,
      '-F',
      'ref=main',
      '-F',
      'variables[FROM]=curl',
      `${wharf.url}/api/v4/projects/${ci.id}/trigger/pipeline`,
    ])
    assert.equal(form.code, 0, describeResult(form))
    const fromForm = JSON.parse(form.stdout) as { id: number; source: string }
    assert.equal(fromForm.source, 'trigger')
    const vars = await wharf.api('GET', `/api/v4/projects/${ci.id}/pipelines/${fromForm.id}/variables`)
    assert.deepEqual(
      vars.json.map((v: { key: string; value: string }) => [v.key, v.value]),
      [['FROM', 'curl']],
    )
    const hook = await run('curl', [
      '-sS',
      '-f',
      '-X',
      'POST',
      `${wharf.url}/api/v4/projects/${ci.id}/ref/main/trigger/pipeline?token=${t.json.token}`,
    ])
    assert.equal(hook.code, 0, describeResult(hook))
    assert.equal(JSON.parse(hook.stdout).ref, 'main')
  })
})

describe('python-gitlab (library): CI templates and Markdown', { timeout: 120_000 }, () => {
  it('gitlabciymls list and get, and gl.markdown', async () => {
    const r = await py(`
templates = [t.key for t in gl.gitlabciymls.list(get_all=True)]
docker = gl.gitlabciymls.get('Docker')
out({'templates': templates, 'docker': [docker.name, 'docker:dind' in docker.content], 'md': gl.markdown('# Hi <b>x</b>', gfm=True)})
`)
    assert.deepEqual(r, {
      templates: ['Docker', 'Docker-Multiarch', 'Go', 'Nodejs', 'Python'],
      docker: ['Docker', true],
      md: '<h1>Hi &lt;b&gt;x&lt;/b&gt;</h1>\n',
    })
  })
})

describe('python-gitlab (library): repository', { timeout: 300_000 }, () => {
  it('files, commits with actions, tree, compare, archive, branches, tags and protected refs after a real git push', async () => {
    const files = await CiProject.create(wharf, 'compat/files')
    await files.push({ 'README.md': 'hello\n', '.gitlab-ci.yml': 'build:\n  script: [echo build]\n' })
    const r = await py(`
import io, tarfile
p = gl.projects.get('compat/files')
first = p.commits.list(ref_name='main')[0].id
p.files.create({'file_path': 'docs/a.md', 'branch': 'main', 'content': 'one', 'author_email': 'bot@example.com', 'author_name': 'Bot', 'commit_message': 'add a'})
f = p.files.get(file_path='docs/a.md', ref='main')
created = f.decode().decode()
f.content = 'two'
f.save(branch='main', commit_message='update a')
raw = p.files.raw(file_path='docs/a.md', ref='main').decode()
try:
    p.files.create({'file_path': 'docs/a.md', 'branch': 'main', 'content': 'x', 'commit_message': 'again'}); dup = None
except gitlab.exceptions.GitlabCreateError as e:
    dup = [e.response_code, 'already exists' in e.error_message]
c = p.commits.create({'branch': 'main', 'commit_message': 'many', 'actions': [
    {'action': 'create', 'file_path': 'run.sh', 'content': 'echo hi', 'execute_filemode': True},
    {'action': 'move', 'previous_path': 'docs/a.md', 'file_path': 'a.md'},
    {'action': 'update', 'file_path': 'README.md', 'content': 'bye'},
]})
commit = p.commits.get(c.id)
diff = sorted(d['new_path'] for d in commit.diff(get_all=True))
history = [x.title for x in p.commits.list(ref_name='main', get_all=True)]
tree = sorted(x['path'] for x in p.repository_tree(recursive=True, get_all=True))
cmp = p.repository_compare(first, 'main')
names = tarfile.open(fileobj=io.BytesIO(p.repository_archive(sha='main'))).getnames()
p.branches.create({'branch': 'feature', 'ref': 'main'})
p.files.delete(file_path='a.md', branch='feature', commit_message='rm a')
p.tags.create({'tag_name': 'v1', 'ref': 'main', 'message': 'first release'})
tag = p.tags.get('v1')
p.protectedbranches.create({'name': 'main', 'push_access_level': 40, 'merge_access_level': 40})
p.protectedtags.create({'name': 'v*', 'create_access_level': 40})
protected = [[x.name for x in p.protectedbranches.list()], [x.name for x in p.protectedtags.list()], p.branches.get('main').protected]
commit.statuses.create({'state': 'running', 'name': 'ext/ci', 'target_url': 'https://ci.example.com/1'})
commit.statuses.create({'state': 'success', 'name': 'ext/ci'})
statuses = [[x.name, x.status] for x in commit.statuses.list()]
lint_ok = p.ci_lint.create({'content': 'build:\\n  script: [echo]\\n'})
lint_bad = p.ci_lint.create({'content': 'build:\\n  script: [echo]\\n  colour: red\\n'})
lint_ref = p.ci_lint.get()
p.protectedbranches.delete('main')
p.protectedtags.delete('v*')
p.branches.delete('feature')
p.tags.delete('v1')
out({'created': created, 'raw': raw, 'dup': dup, 'diff': diff, 'history': history, 'tree': tree, 'cmp': [len(cmp['commits']), cmp['commit']['id'] == c.id],
     'pipeline': c.id in [x.sha for x in p.pipelines.list(get_all=True)], 'version': list(gl.version()), 'statuses': statuses, 'lint': [lint_ok.valid, lint_bad.valid, len(lint_bad.errors) > 0, lint_ref.valid], 'archive': sorted(n.split('/', 1)[1] for n in names if '/' in n), 'tag': [tag.name, tag.message], 'protected': protected,
     'after': [[b.name for b in p.branches.list()], [t.name for t in p.tags.list()], p.protectedbranches.list()]})
`)
    assert.deepEqual(r, {
      created: 'one',
      raw: 'two',
      dup: [400, true],
      diff: ['README.md', 'a.md', 'run.sh'],
      history: ['many', 'update a', 'add a', r.history[3]],
      tree: ['.gitlab-ci.yml', 'README.md', 'a.md', 'run.sh'],
      cmp: [3, true],
      pipeline: true,
      version: [pkg.version, 'wharf'],
      statuses: [['ext/ci', 'success']],
      lint: [true, false, true, true],
      archive: ['.gitlab-ci.yml', 'README.md', 'a.md', 'run.sh'],
      tag: ['v1', 'first release\n'],
      protected: [['main'], ['v*'], true],
      after: [['main'], [], []],
    })
  })
})

describe('python-gitlab (CLI)', { timeout: 120_000 }, () => {
  it('current-user, user, group and project reads', async () => {
    assert.equal((await cli(['current-user', 'get'])).username, 'root')
    assert.ok((await cli(['user', 'list'])).some((u: { username: string }) => u.username === 'alice'))
    assert.ok((await cli(['group', 'list'])).some((g: { full_path: string }) => g.full_path === 'compat'))
    assert.equal((await cli(['project', 'get', '--id', 'compat/app'])).path_with_namespace, 'compat/app')
  })

  it('project variables, triggers, pipelines and registry from the command line', async () => {
    await cli(['project-variable', 'create', '--project-id', String(ci.id), '--key', 'CLI_VAR', '--value', 'x'])
    assert.deepEqual(
      (await cli(['project-variable', 'list', '--project-id', String(ci.id)])).map((v: { key: string }) => v.key),
      ['CLI_VAR'],
    )
    await cli(['project-variable', 'delete', '--project-id', String(ci.id), '--key', 'CLI_VAR'])
    assert.deepEqual(await cli(['project-variable', 'list', '--project-id', String(ci.id)]), [])
    const pl = await cli(['project-pipeline', 'create', '--project-id', String(ci.id), '--ref', 'main'])
    assert.equal(pl.ref, 'main')
    assert.ok((await cli(['project-pipeline', 'list', '--project-id', String(ci.id)])).some((p: { id: number }) => p.id === pl.id))
    await cli(['project-pipeline', 'cancel', '--project-id', String(ci.id), '--id', String(pl.id)])
    await cli(['project-pipeline', 'delete', '--project-id', String(ci.id), '--id', String(pl.id)])
    const repos = await cli(['project-registry-repository', 'list', '--project-id', String(ci.id)])
    assert.deepEqual(
      repos.map((r: { path: string }) => r.path),
      ['compat/app'],
    )
    const tags = await cli(['project-registry-tag', 'list', '--project-id', String(ci.id), '--repository-id', String(repos[0].id)])
    assert.deepEqual(
      tags.map((t: { name: string }) => t.name),
      ['v1'],
    )
  })

  it('members, triggers, jobs and runners from the command line', async () => {
    const id = String(ci.id)
    assert.ok((await cli(['project-member-all', 'list', '--project-id', id])).some((m: { username: string }) => m.username === 'root'))
    const t = await cli(['project-trigger', 'create', '--project-id', id, '--description', 'cli'])
    assert.ok((await cli(['project-trigger', 'list', '--project-id', id])).some((x: { id: number }) => x.id === t.id))
    await cli(['project-trigger', 'delete', '--project-id', id, '--id', String(t.id)])
    assert.ok(!(await cli(['project-trigger', 'list', '--project-id', id])).some((x: { id: number }) => x.id === t.id))
    const jobs = await cli(['project-job', 'list', '--project-id', id])
    assert.ok(jobs.length > 0 && jobs.every((j: { name: string }) => ['build', 'test'].includes(j.name)), JSON.stringify(jobs))
    assert.ok(Array.isArray(await cli(['runner', 'list'])))
  })
})
