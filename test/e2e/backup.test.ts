// End-to-end: `wharf backup create` against a live server's data directory while skopeo pushes
// images and git pushes branches, then `wharf backup restore` into an empty directory and a fresh
// server on it. Every push acknowledged before the backup started must be there, and whatever
// the restored server lists (tags, branches) must be whole: pulls byte-identical, clones intact.
import { after, before, describe, it } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { createHash, randomBytes } from 'node:crypto'
import { mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { gzipSync } from 'node:zlib'
import { projectNode, repoRoot, startWharf, type Wharf } from '../helpers/wharf.ts'
import { describeResult, run, type RunResult } from '../helpers/run.ts'
import { gitClient, type Creds, type GitClient } from '../helpers/git.ts'
import { registerCredentials } from '../helpers/registry.ts'

let source: Wharf
let restored: Wharf | undefined
let client: GitClient
let work: string
let fresh: string | undefined

const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`

async function ok(r: Promise<RunResult>): Promise<RunResult> {
  const res = await r
  assert.equal(res.code, 0, describeResult(res))
  return res
}

/** skopeo copy, with the credentials on whichever side is the registry. */
const skopeoCopy = (src: string, dst: string, creds: Creds, ...extra: string[]) =>
  run(
    'skopeo',
    [
      '--insecure-policy',
      'copy',
      '--src-tls-verify=false',
      '--dest-tls-verify=false',
      src.startsWith('docker://') ? '--src-creds' : '--dest-creds',
      `${creds.username}:${creds.password}`,
      ...extra,
      src,
      dst,
    ],
    { timeoutMs: 60_000 },
  )

/** An OCI layout holding one small image with a random layer: every push brings new blobs. */
async function uniqueImage(name: string): Promise<{ layout: string; manifestDigest: string }> {
  const layout = path.join(work, 'layouts', name)
  const blobs = path.join(layout, 'blobs', 'sha256')
  await mkdir(blobs, { recursive: true })
  const put = async (b: Buffer) => {
    const d = sha(b)
    await writeFile(path.join(blobs, d.slice(7)), b)
    return { digest: d, size: b.length }
  }
  const layer = await put(gzipSync(randomBytes(96 * 1024)))
  const config = await put(
    Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        rootfs: { type: 'layers', diff_ids: [layer.digest] },
        config: { Labels: { name } },
      }),
    ),
  )
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', ...layer }],
    }),
  )
  const m = await put(manifest)
  await writeFile(path.join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}')
  await writeFile(
    path.join(layout, 'index.json'),
    JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { mediaType: 'application/vnd.oci.image.manifest.v1+json', ...m, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
      ],
    }),
  )
  return { layout, manifestDigest: m.digest }
}

/** Every file of an OCI layout's blobs directory by digest (what a pull wrote). */
async function layoutBlobs(layout: string): Promise<Map<string, Buffer>> {
  const dir = path.join(layout, 'blobs', 'sha256')
  const out = new Map<string, Buffer>()
  for (const n of await readdir(dir)) out.set(`sha256:${n}`, await readFile(path.join(dir, n)))
  return out
}

/** Runs the CLI with stdin/stdout bound to files (the tar stream), stderr captured. */
function cli(args: string[], io: { stdin?: string; stdout?: string }): Promise<{ code: number | null; stderr: string }> {
  return (async () => {
    const inFd = io.stdin ? await open(io.stdin, 'r') : undefined
    const outFd = io.stdout ? await open(io.stdout, 'wx') : undefined
    try {
      return await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
        const child = spawn(projectNode, [path.join('src', 'cli', 'main.ts'), ...args], {
          cwd: repoRoot,
          env: { PATH: process.env.PATH, HOME: work },
          stdio: [inFd ? inFd.fd : 'ignore', outFd ? outFd.fd : 'ignore', 'pipe'],
        })
        let stderr = ''
        child.stderr!.on('data', (b: Buffer) => (stderr += b.toString('utf8')))
        child.on('error', reject)
        child.on('close', (code) => resolve({ code, stderr }))
      })
    } finally {
      await inFd?.close()
      await outFd?.close()
    }
  })()
}

interface ImagePush {
  tag: string
  manifestDigest: string
  layout: string
  ackedAt: number
}
interface GitPush {
  branch: string
  commit: string
  ackedAt: number
}

before(async () => {
  client = await gitClient('wharf-e2e-backup-')
  work = client.work
  source = await startWharf()
})

after(async () => {
  await restored?.stop()
  await source?.stop()
  await client?.dispose()
  if (fresh) await rm(fresh, { recursive: true, force: true })
})

describe('wharf backup', { timeout: 120_000 }, () => {
  it('backs up a serving instance during image and git pushes; the restore serves every acknowledged push whole', async (t) => {
    const root: Creds = { username: 'root', password: source.rootPassword }
    await source.createProject('team/app', 'private')
    const pat = await source.api('POST', '/api/v4/user/personal_access_tokens', {
      name: 'before-backup',
      scopes: ['api', 'read_registry', 'write_registry', 'read_repository', 'write_repository'],
    })
    assert.equal(pat.status, 201, pat.describe)
    const token: string = pat.json.token
    const patCreds: Creds = { username: 'root', password: token }
    const repoUrl = (w: Wharf) => `${w.url}/team/app.git`
    const image = (w: Wharf, tag: string) => `docker://${w.host}/team/app/img:${tag}`

    const images: ImagePush[] = []
    const branches: GitPush[] = []
    const pushImage = async (tag: string) => {
      const { layout, manifestDigest } = await uniqueImage(tag)
      await ok(skopeoCopy(`oci:${layout}:latest`, image(source, tag), patCreds, '--preserve-digests'))
      images.push({ tag, manifestDigest, layout, ackedAt: Date.now() })
    }
    const repo = path.join(work, 'repo')
    await ok(client.git(['init', '--quiet', '--initial-branch=main', repo]))
    const pushBranch = async (branch: string) => {
      await writeFile(path.join(repo, 'file.txt'), `${branch} ${randomBytes(8).toString('hex')}\n`)
      await ok(client.git(['add', 'file.txt'], { cwd: repo }))
      await ok(client.git(['commit', '--quiet', '-m', branch], { cwd: repo }))
      const commit = (await ok(client.git(['rev-parse', 'HEAD'], { cwd: repo }))).stdout.trim()
      await ok(client.git(['push', '--quiet', repoUrl(source), `HEAD:refs/heads/${branch}`], { cwd: repo, creds: root }))
      branches.push({ branch, commit, ackedAt: Date.now() })
    }

    // Before the backup.
    await pushBranch('main')
    await pushImage('before-1')
    await pushImage('before-2')

    // During: one image pusher and one git pusher keep going until the backup is done.
    let backupDone = false
    const loop = async (push: (i: number) => Promise<void>) => {
      for (let i = 0; !backupDone || i < 2; i++) await push(i)
    }
    const pushers = Promise.all([loop((i) => pushImage(`during-${i}`)), loop((i) => pushBranch(`during-${i}`))])
    // Let a push or two land first, so the backup starts with pushes in flight.
    while (images.length < 3 || branches.length < 2) await new Promise((r) => setTimeout(r, 50))
    const archive = path.join(work, 'backup.tar')
    const backupStart = Date.now()
    const created = await cli(['backup', 'create', '--data', source.dataDir, '--tar', '-'], { stdout: archive })
    backupDone = true
    await pushers
    assert.equal(created.code, 0, created.stderr)
    assert.match(created.stderr, /database snapshot at /)
    const ackedBefore = <T extends { ackedAt: number }>(pushes: T[]): T[] => pushes.filter((p) => p.ackedAt < backupStart)
    assert.ok(ackedBefore(images).length >= 3 && ackedBefore(branches).length >= 2)

    // Restore into an empty directory; a non-empty one is refused.
    fresh = await mkdtemp(path.join(tmpdir(), 'wharf-e2e-restore-'))
    const data = path.join(fresh, 'data')
    const restore = await cli(['backup', 'restore', '--data', data, '--tar', '-'], { stdin: archive })
    assert.equal(restore.code, 0, restore.stderr)
    const again = await cli(['backup', 'restore', '--data', data, '--tar', '-'], { stdin: archive })
    assert.equal(again.code, 1)
    assert.match(again.stderr, /is not empty/)

    // A fresh server on it: WHARF_ROOT_PASSWORD only applies to a new database, so the source's root password must be the one that works.
    restored = await startWharf({ dataDir: data, rootPassword: 'not-the-restored-password' })
    const w = restored
    registerCredentials(w.url, root)
    const signIn = await w.api(
      'POST',
      '/oauth/token',
      { grant_type: 'password', username: 'root', password: source.rootPassword },
      { token: null },
    )
    assert.equal(signIn.status, 200, signIn.describe)
    const me = await w.api('GET', '/api/v4/user', undefined, { token })
    assert.equal(me.status, 200, me.describe)
    assert.equal(me.json.username, 'root')

    // Images: every tag the restored server lists pulls byte-identical to what was pushed, and every push acknowledged before the backup is among them.
    const tags = await ok(
      run('skopeo', [
        '--insecure-policy',
        'list-tags',
        '--tls-verify=false',
        '--creds',
        `root:${token}`,
        `docker://${w.host}/team/app/img`,
      ]),
    )
    const listed = JSON.parse(tags.stdout).Tags as string[]
    for (const p of ackedBefore(images))
      assert.ok(listed.includes(p.tag), `${p.tag} was acknowledged before the backup but is missing from ${listed.join(', ')}`)
    const byTag = new Map(images.map((p) => [p.tag, p]))
    for (const tag of listed) {
      const pushed = byTag.get(tag)
      assert.ok(pushed, `the restored server lists ${tag}, which was never pushed`)
      const pulled = path.join(work, 'pulled', tag)
      await mkdir(pulled, { recursive: true })
      await ok(skopeoCopy(image(w, tag), `oci:${pulled}:latest`, patCreds))
      const index = JSON.parse(await readFile(path.join(pulled, 'index.json'), 'utf8'))
      assert.equal(index.manifests[0].digest, pushed.manifestDigest, tag)
      const want = await layoutBlobs(pushed.layout)
      const got = await layoutBlobs(pulled)
      assert.deepEqual([...got.keys()].sort(), [...want.keys()].sort(), tag)
      for (const [d, b] of got) assert.ok(b.equals(want.get(d)!), `${tag}: blob ${d} differs`)
    }

    // Git: the same for branches; a clone (with the pre-backup token) is complete and passes fsck.
    const remote = (await ok(client.git(['ls-remote', '--heads', repoUrl(w)], { creds: patCreds }))).stdout
    const heads = new Map(
      remote
        .trim()
        .split('\n')
        .map((l) => {
          const [id, ref] = l.split('\t')
          return [ref!.replace('refs/heads/', ''), id!] as const
        }),
    )
    for (const p of ackedBefore(branches))
      assert.ok(heads.has(p.branch), `branch ${p.branch} was acknowledged before the backup but is missing`)
    t.diagnostic(
      `images: ${images.length} pushed, ${ackedBefore(images).length} before the backup, ${listed.length} restored; branches: ${branches.length} pushed, ${ackedBefore(branches).length} before, ${heads.size} restored`,
    )
    const pushedBranches = new Map(branches.map((p) => [p.branch, p.commit]))
    for (const [branch, id] of heads) assert.equal(id, pushedBranches.get(branch), `branch ${branch}`)
    const clone = path.join(work, 'clone')
    await ok(client.git(['clone', '--quiet', '--mirror', repoUrl(w), clone], { creds: patCreds }))
    await ok(client.git(['--git-dir', clone, 'fsck', '--strict']))
    for (const [branch, id] of heads)
      assert.equal((await ok(client.git(['--git-dir', clone, 'rev-parse', `refs/heads/${branch}`]))).stdout.trim(), id)
  })
})
