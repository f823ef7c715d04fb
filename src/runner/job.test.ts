import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { loadRunnerConfig } from './config.ts'
import { formatDuration } from './job-failure.ts'
import { jobVariables, projectDirName } from './job.ts'
import type { JobResponse } from './protocol.ts'
import { ShellExecutor } from './shell-executor.ts'
import { variable, variableValue } from './script.ts'
import { rebaseUrl, stripCredentials } from './sources.ts'

function job(vars: JobResponse['variables']): JobResponse {
  return {
    id: 7,
    token: 'glcbt-token',
    allow_git_fetch: true,
    job_info: {
      id: 7,
      name: 'build',
      stage: 'build',
      project_id: 3,
      project_name: 'app',
      time_in_queue_seconds: 1.5,
      project_jobs_running_on_instance_runners_count: '0',
    },
    git_info: {
      repo_url: 'http://gitlab-ci-token:glcbt-token@wharf.example:5000/g/app.git',
      ref: 'main',
      sha: 'a'.repeat(40),
      before_sha: '0'.repeat(40),
      ref_type: 'branch',
      refspecs: [],
      depth: 20,
    },
    runner_info: { timeout: 3600 },
    variables: vars,
    steps: [],
    image: { name: '' },
    services: [],
    artifacts: [],
    cache: [],
    credentials: [],
    dependencies: [],
    features: { trace_sections: true, token_mask_prefixes: [], failure_reasons: [] },
  }
}

describe('job setup', () => {
  it('derives a safe project directory from CI_PROJECT_PATH', () => {
    assert.equal(projectDirName(job([variable('CI_PROJECT_PATH', 'group/sub/app')])), 'group/sub/app')
    assert.equal(projectDirName(job([variable('CI_PROJECT_PATH', '../../etc/./x')])), 'etc/x')
    assert.equal(projectDirName(job([])), 'project-3')
  })

  it('the runner sets CI_PROJECT_DIR and, with clone_url, the URLs jobs use to reach Wharf', () => {
    const runner = loadRunnerConfig(
      { url: 'http://127.0.0.1:5000', token: 'glrt-x', executor: 'shell', 'clone-url': 'http://172.18.0.1:5000' },
      {},
    ).runners[0]!
    const ex = new ShellExecutor(runner)
    const paths = ex.paths('/b/runner-1/7', 'g/app')
    const vars = jobVariables(
      job([variable('CI_PROJECT_DIR', '/builds/g/app'), variable('CI_SERVER_URL', 'http://wharf.example:5000'), variable('MINE', 'x')]),
      runner,
      ex,
      paths,
      1,
    )
    const get = (k: string) => variableValue(vars, k)
    assert.equal(get('CI_PROJECT_DIR'), '/b/runner-1/7/g/app')
    assert.equal(get('CI_SERVER_URL'), 'http://172.18.0.1:5000')
    assert.equal(get('CI_API_V4_URL'), 'http://172.18.0.1:5000/api/v4')
    assert.equal(get('CI_SERVER_HOST'), '172.18.0.1')
    assert.equal(get('CI_REPOSITORY_URL'), 'http://gitlab-ci-token:glcbt-token@172.18.0.1:5000/g/app.git')
    assert.equal(get('MINE'), 'x')
    assert.equal(get('CI_SHARED_ENVIRONMENT'), 'true')
  })

  it('repository URLs: credentials stripped, path moved onto another base', () => {
    assert.equal(stripCredentials('https://gitlab-ci-token:secret@host/g/p.git'), 'https://host/g/p.git')
    assert.equal(rebaseUrl('http://u:p@public.example/g/p.git', 'http://127.0.0.1:5000/'), 'http://127.0.0.1:5000/g/p.git')
  })

  it('formats durations as Go does', () => {
    assert.equal(formatDuration(3), '3s')
    assert.equal(formatDuration(3723), '1h2m3s')
    assert.equal(formatDuration(3600), '1h0m0s')
  })
})
