// Packaging: what `npm pack` ships (everything the server needs at run time, nothing of the tests),
// the tarball's `wharf` running on its own, the systemd unit and the sample config file.
import { after, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { freePort, projectNode, repoRoot } from '../helpers/wharf.ts'
import { DEFAULTS } from '../../src/config/schema.ts'
import { SETTINGS } from '../../src/config/load.ts'

const bareEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('WHARF_') && k !== 'NODE_TEST_CONTEXT'))

function npm(args: string[], cwd = repoRoot): string {
  const r = spawnSync('npm', args, { cwd, env: bareEnv, encoding: 'utf8', timeout: 120_000 })
  assert.equal(r.status, 0, `npm ${args.join(' ')}: ${r.stderr}`)
  return r.stdout
}

async function walk(dir: string): Promise<string[]> {
  const out: string[] = []
  for (const e of await readdir(path.join(repoRoot, dir), { withFileTypes: true })) {
    const rel = `${dir}/${e.name}`
    if (e.isDirectory()) out.push(...(await walk(rel)))
    else out.push(rel)
  }
  return out
}

/** Test-only files under src/: unit tests, their fixtures and their helper. */
const testOnly = (f: string) => f.endsWith('.test.ts') || f.includes('/fixtures/') || f === 'src/ci/config/test-support.ts'

/** One real `npm pack` (its prepack compiles src/ to dist/) into a temp dir, shared by the tests below. */
let packing: Promise<{ dir: string; tarball: string; shipped: Set<string> }> | undefined
after(async () => {
  if (packing) await rm((await packing).dir, { recursive: true, force: true })
})
function packed() {
  packing ??= (async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'wharf-pack-'))
    const [pack] = JSON.parse(npm(['pack', '--json', '--pack-destination', dir])) as Array<{
      filename: string
      files: Array<{ path: string }>
    }>
    return { dir, tarball: path.join(dir, pack!.filename), shipped: new Set(pack!.files.map((f) => f.path)) }
  })()
  return packing
}

it('npm pack ships the compiled server, bin, README and packaging files, and no tests, fixtures, screenshots or benchmarks', async () => {
  const { dir, tarball, shipped } = await packed()
  const unwanted = [...shipped].filter(
    (f) =>
      /^(src|test|bench|scripts|docs\/screenshots)\//.test(f) ||
      /\.test\.|fixtures|test-support/.test(f) ||
      /\.(ts|png|jpe?g|tgz)$/.test(f) ||
      f.startsWith('.'),
  )
  assert.deepEqual(unwanted, [])
  const sources = (await walk('src')).filter((f) => !testOnly(f) && !f.endsWith('README.md') && !f.endsWith('.d.ts'))
  assert.ok(sources.length > 100)
  const expected = sources.map((f) => f.replace(/^src\//, 'dist/').replace(/\.ts$/, '.js'))
  const missing = [
    ...expected,
    'bin/wharf.js',
    'bin/docker-credential-wharf.js',
    'package.json',
    'README.md',
    'packaging/wharf.service',
    'packaging/wharf.yaml',
  ].filter((f) => !shipped.has(f))
  assert.deepEqual(missing, [])
  // No shipped module imports a file left out (a runtime helper put next to the tests, say).
  const root = path.join(dir, 'unpacked')
  await mkdir(root)
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', root], { encoding: 'utf8' })
  assert.equal(untar.status, 0, untar.stderr)
  const broken: string[] = []
  for (const f of [...shipped].filter((f) => f.startsWith('dist/') && f.endsWith('.js'))) {
    const text = await readFile(path.join(root, 'package', f), 'utf8')
    for (const m of text.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(f), m[1]!))
      if (!shipped.has(target)) broken.push(`${f} -> ${target}`)
    }
  }
  assert.deepEqual(broken, [])
})

it('the package installed under node_modules runs: wharf prints its version, checks its config and serves the web UI', async (t) => {
  const { tarball } = await packed()
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-installed-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  // npm's layout without a registry (no network in tests): the package in node_modules/wharf, its
  // dependencies beside it (the repository's own). Node does not strip types under node_modules.
  const modules = path.join(dir, 'node_modules')
  await mkdir(path.join(modules, 'wharf'), { recursive: true })
  const untar = spawnSync('tar', ['-xzf', tarball, '-C', path.join(modules, 'wharf'), '--strip-components=1'], { encoding: 'utf8' })
  assert.equal(untar.status, 0, untar.stderr)
  for (const e of await readdir(path.join(repoRoot, 'node_modules'))) {
    if (e !== 'wharf') await symlink(path.join(repoRoot, 'node_modules', e), path.join(modules, e))
  }
  const pkg = path.join(modules, 'wharf')
  const wharf = (args: string[]) =>
    spawnSync(projectNode, ['bin/wharf.js', ...args], { cwd: pkg, env: bareEnv, encoding: 'utf8', timeout: 60_000 })

  const { version } = JSON.parse(await readFile(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string }
  for (const args of [['--version'], ['version']]) {
    const r = wharf(args)
    assert.equal(r.status, 0, r.stderr)
    assert.equal(r.stdout, `wharf ${version}\n`)
  }
  const check = wharf(['verify-config', '--config', 'packaging/wharf.yaml'])
  assert.equal(check.status, 0, check.stderr)
  // The credential helper's entry runs the compiled helper too (docker calls it by its bin name).
  const helper = spawnSync(projectNode, ['bin/docker-credential-wharf.js', 'version'], {
    cwd: pkg,
    env: bareEnv,
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(helper.status, 0, helper.stderr)
  assert.equal(helper.stdout, `docker-credential-wharf ${version}\n`)

  // The CI config planner's worker thread is loaded by URL, not import: it must resolve in dist/ too.
  const planScript = path.join(dir, 'plan.mjs')
  await writeFile(
    planScript,
    `const { ConfigPlanner } = await import(${JSON.stringify(path.join(pkg, 'dist', 'ci', 'config-planner.js'))});
const planner = new ConfigPlanner();
const ctx = { source: 'push', refName: 'main', refType: 'branch', sha: 'c0ffee', beforeSha: 'decaf', files: ['.gitlab-ci.yml'], variables: {} };
const plan = await planner.plan('build:\\n  script: make\\n', ctx, async () => undefined);
// The built-in CI templates are read from dist/ci/templates (include:template).
const templated = await planner.plan('include:\\n  - template: Docker.gitlab-ci.yml\\n', { ...ctx, files: ['.gitlab-ci.yml', 'Dockerfile'], variables: { CI_COMMIT_BRANCH: 'main' } }, async () => undefined);
await planner.close();
console.log(plan.status, plan.jobs.map((j) => j.name).join());
console.log(templated.status, templated.jobs?.map((j) => j.name).join() ?? templated.errors);
`,
  )
  const plan = spawnSync(projectNode, [planScript], { cwd: dir, env: bareEnv, encoding: 'utf8', timeout: 60_000 })
  assert.equal(plan.status, 0, plan.stderr)
  assert.equal(plan.stdout, 'created build\ncreated docker-build\n')

  const port = await freePort()
  const server = spawn(projectNode, ['bin/wharf.js', 'serve', '--listen', `127.0.0.1:${port}`, '--data', path.join(dir, 'data')], {
    cwd: pkg,
    env: bareEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  server.stdout.on('data', (c: Buffer) => (log += c.toString()))
  server.stderr.on('data', (c: Buffer) => (log += c.toString()))
  const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)))
  t.after(() => server.kill('SIGKILL'))
  const deadline = Date.now() + 30_000
  let ready: Response | undefined
  while (Date.now() < deadline && server.exitCode === null) {
    ready = await fetch(`http://127.0.0.1:${port}/-/readiness`).catch(() => undefined)
    if (ready?.status === 200) break
    await new Promise((r) => setTimeout(r, 200))
  }
  assert.equal(ready?.status, 200, log)
  const page = await fetch(`http://127.0.0.1:${port}/`)
  assert.equal(page.status, 200)
  assert.match(page.headers.get('content-type') ?? '', /text\/html/)
  const html = await page.text()
  const script = html.match(/<script[^>]+src="([^"]+)"/)?.[1]
  assert.ok(script, html)
  const asset = await fetch(new URL(script, `http://127.0.0.1:${port}/`))
  assert.equal(asset.status, 200, `${script}: the web UI's files are shipped`)
  server.kill('SIGTERM')
  assert.equal(await exited, 0, log)
})

it('the systemd unit passes systemd-analyze verify and outlasts the shutdown grace', async () => {
  const unit = path.join(repoRoot, 'packaging', 'wharf.service')
  const r = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8', timeout: 60_000 })
  assert.equal(r.status, 0, r.stderr)
  assert.equal(r.stderr.trim(), '', 'no warnings')
  const text = await readFile(unit, 'utf8')
  const directive = (name: string) => text.match(new RegExp(`^${name}=(.*)$`, 'm'))?.[1]
  assert.equal(directive('User'), 'wharf')
  assert.equal(directive('ExecStart'), '/usr/bin/env wharf serve --config /etc/wharf/wharf.yaml')
  assert.equal(directive('ReadWritePaths'), '/var/lib/wharf')
  assert.equal(directive('ProtectSystem'), 'strict')
  assert.equal(directive('NoNewPrivileges'), 'yes')
  assert.equal(directive('KillSignal'), 'SIGTERM')
  const stop = Number(directive('TimeoutStopSec')?.replace(/s$/, ''))
  assert.ok(stop > DEFAULTS.shutdownGraceSeconds, `TimeoutStopSec ${stop} must exceed the ${DEFAULTS.shutdownGraceSeconds} s grace`)
})

it('the sample config is accepted by verify-config and mentions every setting', async () => {
  const sample = path.join(repoRoot, 'packaging', 'wharf.yaml')
  const r = spawnSync(projectNode, ['src/cli/main.ts', 'verify-config', '--config', sample], {
    cwd: repoRoot,
    env: bareEnv,
    encoding: 'utf8',
    timeout: 60_000,
  })
  assert.equal(r.status, 0, r.stderr)
  const shown = JSON.parse(r.stdout) as { data: string; shutdownGraceSeconds: number }
  assert.equal(shown.data, '/var/lib/wharf')
  const text = await readFile(sample, 'utf8')
  // Each setting's last name appears as a YAML key, set or commented out.
  const absent = SETTINGS.filter((s) => !new RegExp(`^[ #]*${s.key.split('.').at(-1)}:`, 'm').test(text)).map((s) => s.key)
  assert.deepEqual(absent, [])
})
