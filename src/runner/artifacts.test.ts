import assert from 'node:assert/strict'
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { describe, it, type TestContext } from 'node:test'
import { gunzipSync } from 'node:zlib'
import { uploadArtifacts, type ArtifactsContext } from './artifacts.ts'
import type { ArtifactUpload, CallResult } from './client.ts'
import type { Artifact } from './protocol.ts'
import { JobTrace } from './trace.ts'

// The coordinator is a process boundary: it is stood in for by a recorder of what was uploaded.
async function context(t: TestContext, files: Record<string, string | { symlink: string }>) {
  const dir = await mkdtemp(path.join(tmpdir(), 'wharf-artifacts-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const projectDir = path.join(dir, 'project')
  for (const [name, content] of Object.entries(files)) {
    const p = path.join(projectDir, name)
    await mkdir(path.dirname(p), { recursive: true })
    if (typeof content === 'string') await writeFile(p, content)
    else await symlink(content.symlink, p)
  }
  const uploads: Array<{ upload: ArtifactUpload; bytes: Buffer }> = []
  const trace = new JobTrace({
    transport: {
      patchTrace: async (_id, _token, _start, bytes) => ({
        status: 202,
        text: '',
        jobStatus: 'running',
        stored: _start + bytes.length,
        updateInterval: undefined,
      }),
    },
    jobId: 7,
    jobToken: 'job-token',
    secrets: [],
    outputLimitBytes: 1 << 20,
  })
  t.after(() => trace.finish())
  const ctx: ArtifactsContext = {
    client: {
      uploadArtifacts: async (_jobId, _token, upload): Promise<CallResult> => {
        uploads.push({ upload, bytes: await readFile(upload.file) })
        return { status: 201, text: '', jobStatus: undefined }
      },
      downloadArtifacts: async () => assert.fail('no download expected'),
    },
    jobId: 7,
    jobToken: 'job-token',
    projectDir,
    scratchDir: path.join(dir, 'scratch'),
    trace,
  }
  return { ctx, uploads, trace }
}

const junit: Artifact = {
  name: 'junit',
  untracked: false,
  paths: ['reports/'],
  exclude: [],
  when: 'always',
  artifact_type: 'junit',
  artifact_format: 'gzip',
  expire_in: '',
}

describe('uploadArtifacts (gzip reports)', () => {
  it('a directory of reports becomes one gzip stream of all its files', async (t) => {
    const { ctx, uploads } = await context(t, { 'reports/a.xml': '<a/>\n', 'reports/b.xml': '<b/>\n' })
    assert.equal(await uploadArtifacts(ctx, [junit], true, async () => []), true)
    assert.equal(uploads.length, 1)
    assert.equal(uploads[0]!.upload.artifactFormat, 'gzip')
    assert.equal(gunzipSync(uploads[0]!.bytes).toString(), '<a/>\n<b/>\n')
  })

  it('a file that cannot be read fails the upload with a message naming it, and nothing is sent', async (t) => {
    const { ctx, uploads, trace } = await context(t, {
      'reports/a.xml': '<a/>\n',
      'reports/b.xml': { symlink: 'gone.xml' },
      'reports/c.xml': '<c/>\n',
    })
    assert.equal(await uploadArtifacts(ctx, [junit], true, async () => []), false)
    assert.equal(uploads.length, 0, 'no partial archive is uploaded')
    assert.match(trace.text(), /reports\/b\.xml/)
    assert.match(trace.text(), /ENOENT/)
  })
})
