import { after, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import yazl from 'yazl'
import { collectPaths, createZip, extractZip, globMatcher, normalizePattern } from './archive.ts'

const dir = mkdtempSync(path.join(tmpdir(), 'wharf-archive-'))
after(() => rmSync(dir, { recursive: true, force: true }))

function tree(root: string, files: Record<string, string>) {
  for (const [f, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(root, f)), { recursive: true })
    writeFileSync(path.join(root, f), content)
  }
}

describe('artifact paths', () => {
  it('globs as GitLab Runner (doublestar): * and ? in a segment, ** as a segment across them, classes, alternatives, dotfiles', () => {
    const cases: [string, string, boolean][] = [
      ['*.txt', 'a.txt', true],
      ['*.txt', 'd/a.txt', false],
      ['*.txt', '.hidden.txt', true],
      ['**/*.txt', 'a.txt', true],
      ['**/*.txt', 'd/e/a.txt', true],
      ['**/*.txt', '.cache/a.txt', true],
      ['out/**', 'out/x/y', true],
      ['a/**/b', 'a/b', true],
      ['a/**/b', 'a/x/y/b', true],
      // `**` that is not a whole segment is a `*`: it does not cross a `/`.
      ['out/x**', 'out/xab', true],
      ['out/x**', 'out/xa/b', false],
      ['?.o', 'x.o', true],
      ['?.o', 'xy.o', false],
      ['d?e', 'd/e', false],
      ['[a-c].o', 'b.o', true],
      ['[a-c].o', 'd.o', false],
      ['[!a-c].o', 'd.o', true],
      ['[!a-c].o', 'b.o', false],
      ['[^a-c].o', 'b.o', false],
      ['{a,b}/?.o', 'b/x.o', true],
      ['{a,b}/?.o', 'c/x.o', false],
      ['a.b', 'axb', false],
      // No picomatch-only syntax: a leading ! and extglobs are literal, as in doublestar.
      ['!a', 'b', false],
      ['+(a)', 'a', false],
    ]
    for (const [glob, path, want] of cases) assert.equal(globMatcher(glob)(path), want, `${glob} vs ${path}`)
    assert.throws(() => normalizePattern('../etc'), /not a subpath/)
    assert.throws(() => normalizePattern('/etc'), /not a subpath/)
    assert.equal(normalizePattern('./out//bin/'), 'out/bin')
  })

  it('collects directories recursively, globs, exclusions and reports unmatched patterns', async () => {
    const root = path.join(dir, 'collect')
    tree(root, {
      'out/bin/app': 'x',
      'out/bin/app.o': 'o',
      'out/readme.txt': 't',
      'src/main.c': 'c',
      'logs/a.log': 'l',
      'logs/sub/b.log': 'l',
    })
    const r = await collectPaths(root, ['out/', '**/*.log', 'missing/', '../escape'], ['**/*.o', 'logs/sub'])
    assert.deepEqual(r.entries, ['logs/a.log', 'out', 'out/bin', 'out/bin/app', 'out/readme.txt'])
    assert.deepEqual(r.unmatched, ['missing/'])
    assert.deepEqual(r.invalid, ['../escape'])
    assert.deepEqual(r.counts, [
      ['out/', 5],
      ['**/*.log', 2],
    ])
  })

  it('zips and extracts files, modes and symlinks', async () => {
    const src = path.join(dir, 'zip-src')
    tree(src, { 'out/app.sh': '#!/bin/sh\necho hi\n', 'out/data/x.txt': 'x' })
    symlinkSync('app.sh', path.join(src, 'out/link'))
    const { chmodSync } = await import('node:fs')
    chmodSync(path.join(src, 'out/app.sh'), 0o755)
    const zip = path.join(dir, 'a.zip')
    const { entries } = await collectPaths(src, ['out'])
    assert.equal(await createZip(src, entries, zip), 3)
    const dest = path.join(dir, 'zip-dest')
    tree(dest, { 'out/app.sh': 'old' })
    await extractZip(zip, dest)
    assert.equal(readFileSync(path.join(dest, 'out/app.sh'), 'utf8'), '#!/bin/sh\necho hi\n')
    const { statSync } = await import('node:fs')
    assert.equal(statSync(path.join(dest, 'out/app.sh')).mode & 0o777, 0o755)
    assert.equal(readFileSync(path.join(dest, 'out/data/x.txt'), 'utf8'), 'x')
    assert.equal(readlinkSync(path.join(dest, 'out/link')), 'app.sh')
  })

  it('refuses entries and links that leave the target directory', async () => {
    // yazl refuses such names, so write a harmless name of the same length and patch the bytes.
    const cases: [string, string, string, number | undefined][] = [
      ['ab/evil.txt', '../evil.txt', 'evil', undefined],
      ['ok/ab/cd/evil.txt', 'ok/../../evil.txt', 'evil', undefined],
      ['link', 'link', '../../etc', 0o120777],
    ]
    for (const [placeholder, name, content, mode] of cases) {
      const z = new yazl.ZipFile()
      const chunks: Buffer[] = []
      z.outputStream.on('data', (c: Buffer) => chunks.push(c))
      const done = new Promise((r) => z.outputStream.on('end', r))
      z.addBuffer(Buffer.from(content), placeholder, mode === undefined ? {} : { mode })
      z.end()
      await done
      const bytes = Buffer.concat(chunks)
      const from = Buffer.from(placeholder)
      const to = Buffer.from(name)
      for (let i = bytes.indexOf(from); i !== -1; i = bytes.indexOf(from, i + 1)) to.copy(bytes, i)
      const zipFile = path.join(dir, `evil-${Math.random().toString(36).slice(2)}.zip`)
      writeFileSync(zipFile, bytes)
      const dest = path.join(dir, `evil-dest-${Math.random().toString(36).slice(2)}`)
      mkdirSync(dest)
      await assert.rejects(extractZip(zipFile, dest), /outside the target directory|invalid relative path/, name)
      assert.ok(!existsSync(path.join(dir, 'evil.txt')))
    }
  })
})
