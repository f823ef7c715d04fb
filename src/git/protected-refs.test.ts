import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import type { ProtectedRef } from '../metadata/schema.ts'
import { hookRules, MESSAGES, PRE_RECEIVE, refPatternMatches, refusal } from './protected-refs.ts'

const rule = (kind: 'branch' | 'tag', name: string, push: number, force = false): ProtectedRef => ({
  id: 1,
  project_id: 1,
  kind,
  name,
  push_level: push,
  merge_level: 40,
  allow_force_push: force ? 1 : 0,
  created_at: '',
})

test('patterns: * matches anything (slashes too), everything else literally', () => {
  assert.equal(refPatternMatches('release/*', 'release/1.0'), true)
  assert.equal(refPatternMatches('release/*', 'release/a/b'), true)
  assert.equal(refPatternMatches('*-stable', '1-0-stable'), true)
  assert.equal(refPatternMatches('main', 'main2'), false)
  assert.equal(refPatternMatches('v1.0', 'v1x0'), false, 'a dot is not a wildcard')
})

test('refusal: push levels, force pushes, deletions, tags', () => {
  const rules = [rule('branch', 'main', 40), rule('branch', 'dev/*', 30, true), rule('branch', 'frozen', 0), rule('tag', 'v*', 40)]
  const b = (name: string, action: 'create' | 'update' | 'delete') => ({ type: 'branch' as const, name, action })
  const t = (name: string, action: 'create' | 'update' | 'delete') => ({ type: 'tag' as const, name, action })
  assert.equal(refusal(rules, 30, b('main', 'update'), false), MESSAGES.push)
  assert.equal(refusal(rules, 40, b('main', 'update'), false), undefined)
  assert.equal(refusal(rules, 40, b('main', 'update'), true), MESSAGES.force)
  assert.equal(refusal(rules, 30, b('dev/x', 'update'), true), undefined)
  assert.equal(refusal(rules, 60, b('frozen', 'update'), false), MESSAGES.push, 'no one: administrators included')
  assert.equal(refusal(rules, 60, b('main', 'delete'), false), MESSAGES.deleteBranch, 'never by a push')
  assert.equal(refusal(rules, 40, b('main', 'delete'), false, true), undefined, 'maintainers through the API')
  assert.equal(refusal(rules, 30, b('dev/x', 'delete'), false, true), MESSAGES.deleteBranch)
  assert.equal(refusal(rules, 30, b('feature', 'update'), true), undefined)
  assert.equal(refusal(rules, 30, t('v1', 'create'), false), MESSAGES.createTag)
  assert.equal(refusal(rules, 40, t('v1', 'create'), false), undefined)
  assert.equal(refusal(rules, 60, t('v1', 'update'), false), MESSAGES.changeTag)
  assert.equal(refusal(rules, 30, t('x1', 'create'), false), undefined)
})

test('the pre-receive hook applies hookRules as refusal does, in a real repository', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-hook-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const env = {
    ...process.env,
    GIT_CONFIG_NOSYSTEM: '1',
    HOME: dir,
    GIT_AUTHOR_NAME: 'A',
    GIT_AUTHOR_EMAIL: 'a@x',
    GIT_COMMITTER_NAME: 'A',
    GIT_COMMITTER_EMAIL: 'a@x',
  }
  const git = (...args: string[]) => execFileSync('git', ['-C', dir, ...args], { env, encoding: 'utf8' }).trim()
  git('init', '-q')
  git('commit', '-q', '--allow-empty', '-m', 'one')
  const one = git('rev-parse', 'HEAD')
  git('commit', '-q', '--allow-empty', '-m', 'two')
  const two = git('rev-parse', 'HEAD')
  const hook = join(dir, 'pre-receive')
  await writeFile(hook, PRE_RECEIVE, { mode: 0o755 })
  const rulesFile = join(dir, 'rules')
  const zero = '0'.repeat(40)
  const run = (level: number, line: string) => {
    const rules = [rule('branch', 'main', 40), rule('branch', 'dev/*', 30, true), rule('tag', 'v*', 40)]
    execFileSync('sh', ['-c', `cat > "${rulesFile}"`], { input: hookRules(rules, level) })
    const r = spawnSync(hook, [], {
      cwd: dir,
      env: { ...env, GIT_DIR: join(dir, '.git'), WHARF_PUSH_RULES: rulesFile },
      input: `${line}\n`,
      encoding: 'utf8',
    })
    return { code: r.status, stderr: r.stderr }
  }
  assert.equal(run(40, `${one} ${two} refs/heads/main`).code, 0)
  assert.match(run(30, `${one} ${two} refs/heads/main`).stderr, /not allowed to push code to protected branches/)
  assert.match(run(40, `${two} ${one} refs/heads/main`).stderr, /force push/)
  assert.equal(run(30, `${two} ${one} refs/heads/dev/x`).code, 0)
  assert.match(run(60, `${two} ${zero} refs/heads/main`).stderr, /only delete protected branches/)
  assert.match(run(30, `${zero} ${two} refs/tags/v1`).stderr, /create this tag/)
  assert.equal(run(40, `${zero} ${two} refs/tags/v1`).code, 0)
  assert.match(run(60, `${one} ${two} refs/tags/v1`).stderr, /change existing tags/)
  assert.equal(run(30, `${one} ${two} refs/heads/feature`).code, 0)
  // No rules file (a push with nothing protected): everything passes.
  const free = spawnSync(hook, [], {
    cwd: dir,
    env: { ...env, WHARF_PUSH_RULES: '' },
    input: `${one} ${two} refs/heads/main\n`,
    encoding: 'utf8',
  })
  assert.equal(free.status, 0)
})
