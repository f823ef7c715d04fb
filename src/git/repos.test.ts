import assert from 'node:assert/strict'
import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { runGit } from './exec.ts'
import { ZERO_SHA, type RefUpdate } from './refs.ts'
import { GitRepos, parseIdent } from './repos.ts'

async function reposIn(t: TestContext): Promise<GitRepos> {
  const root = await mkdtemp(join(tmpdir(), 'wharf-git-'))
  t.after(() => rm(root, { recursive: true, force: true }))
  const repos = new GitRepos(join(root, 'git'))
  await repos.init()
  return repos
}

/** Writes a commit with exactly these files straight into a bare repository (plumbing, no work tree). */
async function commit(
  gitDir: string,
  files: Record<string, string>,
  opts: { message: string; parents?: string[]; ref?: string; date?: string; author?: string },
): Promise<string> {
  const index = join(gitDir, `index-${Math.random().toString(36).slice(2)}`)
  const env = { GIT_INDEX_FILE: index }
  for (const [path, content] of Object.entries(files)) {
    const blob = (await runGit(['hash-object', '-w', '--stdin'], { gitDir, input: content })).stdout.toString().trim()
    await runGit(['update-index', '--add', '--cacheinfo', `100644,${blob},${path}`], { gitDir, env })
  }
  const tree = (await runGit(['write-tree'], { gitDir, env })).stdout.toString().trim()
  await rm(index, { force: true })
  const date = opts.date ?? '1700000000 +0000'
  const [name, email] = (opts.author ?? 'Ann Author <ann@example.com>').split(/ <|>/)
  const sha = (
    await runGit(['commit-tree', tree, ...(opts.parents ?? []).flatMap((p) => ['-p', p]), '-m', opts.message], {
      gitDir,
      env: {
        GIT_AUTHOR_NAME: name!,
        GIT_AUTHOR_EMAIL: email!,
        GIT_AUTHOR_DATE: date,
        GIT_COMMITTER_NAME: 'Cy Committer',
        GIT_COMMITTER_EMAIL: 'cy@example.com',
        GIT_COMMITTER_DATE: date,
      },
    })
  ).stdout
    .toString()
    .trim()
  if (opts.ref) await runGit(['update-ref', opts.ref, sha], { gitDir })
  return sha
}

describe('GitRepos layout', () => {
  it('creates a bare repository on first use, at <root>/<id>.git with HEAD on main', async (t) => {
    const repos = await reposIn(t)
    const dir = await repos.ensure(7)
    assert.equal(dir, join(repos.root, '7.git'))
    assert.equal((await readFile(join(dir, 'HEAD'), 'utf8')).trim(), 'ref: refs/heads/main')
    assert.equal((await runGit(['rev-parse', '--is-bare-repository'], { gitDir: dir })).stdout.toString().trim(), 'true')
    assert.deepEqual(await repos.list(), [7])
    assert.equal(repos.pathInfoFor(7), '/7.git')
  })

  it('creates each repository once under concurrent first use', async (t) => {
    const repos = await reposIn(t)
    const dirs = await Promise.all(Array.from({ length: 8 }, () => repos.ensure(3, '3:a')))
    assert.equal(new Set(dirs).size, 1)
    assert.deepEqual(await readdir(join(repos.root, '.wharf', 'tmp')), [])
  })

  it('never builds a path from anything but a positive integer', async (t) => {
    const repos = await reposIn(t)
    for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 60]) assert.throws(() => repos.pathFor(bad), { code: 'BAD_REQUEST' })
  })

  it('moves a repository stamped for another project aside (reused ids never inherit code)', async (t) => {
    const repos = await reposIn(t)
    const dir = await repos.ensure(5, '5:2024-01-01')
    await commit(dir, { a: 'old secret' }, { message: 'old', ref: 'refs/heads/main' })
    // Same owner, even from a new instance (a restart): kept.
    const again = new GitRepos(repos.root)
    await again.ensure(5, '5:2024-01-01')
    assert.ok(await again.resolveRef(5, 'main'))
    // A new project that got id 5: a fresh repository, the old one kept in orphans/.
    await again.ensure(5, '5:2025-06-01')
    assert.equal(await again.resolveRef(5, 'main'), undefined)
    const orphans = await readdir(join(repos.root, '.wharf', 'orphans'))
    assert.equal(orphans.length, 1)
    assert.match(orphans[0]!, /^5-.*\.git$/)
    assert.equal((await readFile(join(repos.pathFor(5), 'wharf-project'), 'utf8')).trim(), '5:2025-06-01')
  })

  it('installs an executable post-receive hook that spools its input', async (t) => {
    const repos = await reposIn(t)
    const hook = join(repos.hooksDir, 'post-receive')
    assert.ok(((await stat(hook)).mode & 0o111) !== 0)
    const out = repos.spoolFile()
    await runGit(['version'], {}) // git is there
    const { execFile } = await import('node:child_process')
    await new Promise<void>((resolve, reject) => {
      const c = execFile(hook, [], { env: { PATH: process.env.PATH, WHARF_PUSH_LOG: out } }, (e) => (e ? reject(e) : resolve()))
      c.stdin!.end(`${ZERO_SHA} ${'a'.repeat(40)} refs/heads/main\n`)
    })
    assert.equal(await readFile(out, 'utf8'), `${ZERO_SHA} ${'a'.repeat(40)} refs/heads/main\n`)
  })
})

describe('GitRepos reads', () => {
  async function fixture(t: TestContext) {
    const repos = await reposIn(t)
    const dir = await repos.ensure(1)
    const c1 = await commit(
      dir,
      { '.gitlab-ci.yml': 'test:\n  script: [true]\n', 'src/a.ts': 'a', 'src/b.ts': 'b', 'docs/x.md': 'x' },
      { message: 'First\n\nbody line\n', ref: 'refs/heads/main', date: '1700000000 +0130', author: 'Ann Author <ann@example.com>' },
    )
    const c2 = await commit(
      dir,
      { '.gitlab-ci.yml': 'test:\n  script: [false]\n', 'src/a.ts': 'a2', 'docs/x.md': 'x', 'new/y.txt': 'y' },
      { message: 'Second', parents: [c1], ref: 'refs/heads/main', date: '1700003600 -0500' },
    )
    const f1 = await commit(
      dir,
      { 'f.txt': 'f' },
      { message: 'Feature', parents: [c1], ref: 'refs/heads/feature/one', date: '1700007200 +0000' },
    )
    await runGit(['update-ref', 'refs/tags/light', c1], { gitDir: dir })
    await runGit(['tag', '-a', '-m', 'Release 1\n\nnotes', 'v1.0', c2], {
      gitDir: dir,
      env: { GIT_COMMITTER_NAME: 'T', GIT_COMMITTER_EMAIL: 't@e', GIT_COMMITTER_DATE: '1700009000 +0000' },
    })
    // A tag and a branch with the same short name: branches win, as in GitLab's ref lookup.
    await runGit(['update-ref', 'refs/tags/feature/one', c2], { gitDir: dir })
    return { repos, dir, c1, c2, f1 }
  }

  it('resolves branches, tags, full refs and object names', async (t) => {
    const { repos, c1, c2, f1 } = await fixture(t)
    assert.equal(await repos.resolveRef(1, 'main'), c2)
    assert.equal(await repos.resolveRef(1, 'refs/heads/main'), c2)
    assert.equal(await repos.resolveRef(1, 'light'), c1)
    assert.equal(await repos.resolveRef(1, 'v1.0'), c2, 'annotated tags peel to their commit')
    assert.equal(await repos.resolveRef(1, 'feature/one'), f1)
    assert.equal(await repos.resolveRef(1, 'refs/tags/feature/one'), c2)
    assert.equal(await repos.resolveRef(1, c1), c1)
    assert.equal(await repos.resolveRef(1, 'nope'), undefined)
    assert.equal(await repos.resolveRef(1, 'f'.repeat(40)), undefined)
    await assert.rejects(repos.resolveRef(1, '--upload-pack=evil'), { code: 'BAD_REQUEST' })
    await assert.rejects(repos.resolveRef(1, 'main^{tree}'), { code: 'BAD_REQUEST' })
  })

  it('reads files at a commit, and nothing for directories or missing paths', async (t) => {
    const { repos, c1, c2 } = await fixture(t)
    assert.equal((await repos.readFile(1, c1, '.gitlab-ci.yml'))!.toString(), 'test:\n  script: [true]\n')
    assert.equal((await repos.readFile(1, c2, '.gitlab-ci.yml'))!.toString(), 'test:\n  script: [false]\n')
    assert.equal(await repos.readFile(1, c1, 'src'), undefined)
    assert.equal(await repos.readFile(1, c1, 'missing.yml'), undefined)
    assert.equal(await repos.readFile(1, c1, 'new/y.txt'), undefined)
    await assert.rejects(repos.readFile(1, c1, 'src/a.ts', 0), { code: 'BAD_REQUEST' })
    await assert.rejects(repos.readFile(1, 'main', 'src/a.ts'), { code: 'BAD_REQUEST' })
    await assert.rejects(repos.readFile(1, c1, '../x'), { code: 'BAD_REQUEST' })
  })

  it('lists files and what changed between commits', async (t) => {
    const { repos, c1, c2 } = await fixture(t)
    assert.deepEqual(await repos.listFiles(1, c1), ['.gitlab-ci.yml', 'docs/x.md', 'src/a.ts', 'src/b.ts'])
    assert.deepEqual((await repos.changedFiles(1, c1, c2)).sort(), ['.gitlab-ci.yml', 'new/y.txt', 'src/a.ts', 'src/b.ts'])
    assert.deepEqual(await repos.changedFiles(1, ZERO_SHA, c1), await repos.listFiles(1, c1), 'a new branch: every file')
    assert.deepEqual(await repos.changedFiles(1, null, c1), await repos.listFiles(1, c1))
    assert.deepEqual(await repos.changedFiles(1, 'e'.repeat(40), c1), await repos.listFiles(1, c1), 'an unknown before: every file')
  })

  it('describes commits with GitLab-style dates in the author and committer offsets', async (t) => {
    const { repos, c1, c2 } = await fixture(t)
    const info = (await repos.commitInfo(1, c1))!
    assert.deepEqual(info, {
      id: c1,
      shortId: c1.slice(0, 8),
      treeId: info.treeId,
      parentIds: [],
      title: 'First',
      message: 'First\n\nbody line\n',
      authorName: 'Ann Author',
      authorEmail: 'ann@example.com',
      authoredDate: '2023-11-14T23:43:20.000+01:30',
      committerName: 'Cy Committer',
      committerEmail: 'cy@example.com',
      committedDate: '2023-11-14T23:43:20.000+01:30',
    })
    assert.deepEqual((await repos.commitInfo(1, c2))!.parentIds, [c1])
    assert.equal((await repos.commitInfo(1, c2))!.committedDate, '2023-11-14T18:13:20.000-05:00')
    assert.equal(await repos.commitInfo(1, 'd'.repeat(40)), undefined)
  })

  it('lists branches by name and tags newest first, with HEAD as the default', async (t) => {
    const { repos, c1, c2, f1 } = await fixture(t)
    const { rows: branches, total } = await repos.branches(1)
    assert.equal(total, 2)
    assert.deepEqual(
      branches.map((b) => [b.name, b.commit.id, b.default]),
      [
        ['feature/one', f1, false],
        ['main', c2, true],
      ],
    )
    const tags = (await repos.tags(1)).rows
    const v1 = tags.find((x) => x.name === 'v1.0')!
    assert.equal(v1.commit!.id, c2)
    assert.notEqual(v1.target, c2, 'an annotated tag targets its tag object')
    assert.equal(v1.message, 'Release 1\n\nnotes\n')
    const light = tags.find((x) => x.name === 'light')!
    assert.deepEqual([light.target, light.commit!.id, light.message], [c1, c1, null])
    assert.equal(tags.at(-1)!.name, 'light', 'the oldest commit last')
    assert.equal(await repos.defaultBranch(1), 'main')
    // Pages: the total counts every match, the rows are the page's.
    assert.deepEqual(await repos.branches(1, { limit: 1, offset: 1 }).then((p) => [p.total, p.rows.map((b) => b.name)]), [2, ['main']])
    assert.deepEqual(await repos.branches(1, { search: 'FEAT', limit: 20, offset: 0 }).then((p) => [p.total, p.rows.map((b) => b.name)]), [
      1,
      ['feature/one'],
    ])
    assert.deepEqual(await repos.tags(1, { limit: 1, offset: tags.length - 1 }).then((p) => [p.total, p.rows.map((x) => x.name)]), [
      tags.length,
      ['light'],
    ])
    assert.equal((await repos.branch(1, 'main'))?.default, true)
    assert.equal(await repos.branch(1, 'nope'), undefined)
  })

  it('counts the commits a ref update brought', async (t) => {
    const { repos, dir, c1, c2, f1 } = await fixture(t)
    const u = (ref: string, oldSha: string, newSha: string, action: RefUpdate['action']): RefUpdate => ({
      ref,
      name: ref,
      type: 'branch',
      oldSha,
      newSha,
      action,
    })
    assert.equal(await repos.commitCount(1, u('refs/heads/main', c1, c2, 'update')), 1)
    const c3 = await commit(dir, { z: 'z' }, { message: 'Third', parents: [f1], ref: 'refs/heads/topic' })
    assert.equal(await repos.commitCount(1, u('refs/heads/topic', ZERO_SHA, c3, 'create')), 1, 'only commits no other ref has')
    assert.equal(await repos.commitCount(1, u('refs/heads/gone', c2, ZERO_SHA, 'delete')), 0)
  })

  it('has no default branch while empty, and picks one after the first push', async (t) => {
    const repos = await reposIn(t)
    const dir = await repos.ensure(2)
    assert.equal(await repos.defaultBranch(2), undefined)
    assert.deepEqual(await repos.branches(2), { rows: [], total: 0 })
    assert.deepEqual(await repos.tags(2), { rows: [], total: 0 })
    const c = await commit(dir, { a: 'a' }, { message: 'x', ref: 'refs/heads/develop' })
    const picked = await repos.repairDefaultBranch(2, [
      { ref: 'refs/heads/develop', name: 'develop', type: 'branch', oldSha: ZERO_SHA, newSha: c, action: 'create' },
    ])
    assert.equal(picked, 'develop')
    assert.equal(await repos.defaultBranch(2), 'develop')
    assert.equal(await repos.repairDefaultBranch(2, []), undefined, 'a valid HEAD stays')
  })
})

describe('parseIdent', () => {
  it('keeps the offset of the signature', () => {
    assert.deepEqual(parseIdent('A B <a@b> 0 +0000'), { name: 'A B', email: 'a@b', date: '1970-01-01T00:00:00.000+00:00' })
    assert.deepEqual(parseIdent('<e> 3600 -0130'), { name: '', email: 'e', date: '1969-12-31T23:30:00.000-01:30' })
  })
})
