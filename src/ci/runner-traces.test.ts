import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { describe, it, type TestContext } from 'node:test'
import { openTestDb } from '../../test/helpers/database.ts'
import { createProjects } from '../projects/index.ts'
import { deleteRepositoriesUnder } from '../registry/index.ts'
import { Users } from '../users/index.ts'
import { mintJobToken } from './job-tokens.ts'
import * as q from './queries.ts'
import { createFsDriver } from '../storage/fs-driver.ts'
import { MASK, TraceMasker, TraceStore } from './traces.ts'

/** Feeds `text` to a masker in chunks cut at `cuts`, the way a runner's PATCHes would split it. */
function maskInChunks(m: TraceMasker, text: string, cuts: number[]): string {
  const buf = Buffer.from(text)
  let tail: Buffer = Buffer.alloc(0)
  const out: Buffer[] = []
  let prev = 0
  for (const c of [...cuts, buf.length]) {
    const r = m.process(tail, buf.subarray(prev, c))
    out.push(r.out)
    tail = r.tail
    prev = c
  }
  out.push(m.flush(tail))
  return Buffer.concat(out).toString()
}

describe('TraceMasker', () => {
  const secret = 'hunter2-hunter2-XYZ'
  const text = `login with ${secret} ok\nagain:${secret}\n`
  const expected = `login with ${MASK} ok\nagain:${MASK}\n`

  it('masks a secret wherever the chunks are cut, including through the secret itself', () => {
    const m = new TraceMasker([secret])
    for (let a = 0; a <= text.length; a++) {
      assert.equal(maskInChunks(m, text, [a]), expected, `one cut at ${a}`)
      for (let b = a; b <= text.length; b += 3) assert.equal(maskInChunks(m, text, [a, b]), expected, `cuts at ${a}, ${b}`)
    }
  })

  it('masks byte by byte too', () => {
    const m = new TraceMasker([secret])
    assert.equal(
      maskInChunks(
        m,
        text,
        Array.from({ length: text.length }, (_, i) => i),
      ),
      expected,
    )
  })

  it('prefers the longer of two secrets that start at the same place, and handles UTF-8 values', () => {
    const m = new TraceMasker(['abcdefgh', 'abcdefghijkl', 'pässwörd-ü'])
    assert.equal(maskInChunks(m, 'x abcdefghijkl y abcdefgh z pässwörd-ü!', [5, 21, 33]), `x ${MASK} y ${MASK} z ${MASK}!`)
  })

  it('masks job tokens by their pattern, even when the token is not known', () => {
    const token = mintJobToken()
    const m = new TraceMasker([])
    assert.equal(maskInChunks(m, `curl -H "JOB-TOKEN: ${token}" x\n`, [20, 40]), `curl -H "JOB-TOKEN: ${MASK}" x\n`)
  })

  it('holds back only what may begin a secret', () => {
    const m = new TraceMasker(['12345678'])
    const r = m.process(Buffer.alloc(0), Buffer.from('hello world'))
    assert.equal(r.out.toString(), 'hello world')
    assert.equal(r.tail.length, 0)
    const r2 = m.process(Buffer.alloc(0), Buffer.from('count 1234'))
    assert.equal(r2.out.toString(), 'count ')
    assert.equal(r2.tail.toString(), '1234')
    const r3 = m.process(Buffer.alloc(0), Buffer.from('see glcbt-abc'))
    assert.equal(r3.out.toString(), 'see ')
    assert.equal(new TraceMasker([], []).process(Buffer.alloc(0), Buffer.from('abc')).out.toString(), 'abc')
  })
})

async function store(t: TestContext) {
  const dir = await mkdtemp(join(tmpdir(), 'wharf-trace-'))
  t.after(() => rm(dir, { recursive: true, force: true }))
  const db = await openTestDb(dir)
  t.after(() => db.destroy())
  const { projects, groups } = createProjects(db, deleteRepositoriesUnder)
  const users = new Users(db)
  const root = await users.createUser({ username: 'root', password: 'rootpassword', isAdmin: true })
  const group = await groups.createGroup(root, { path: 'g' })
  const project = await projects.createProject(root, { namespaceId: group.id, path: 'p' })
  const p = await q.insertPipeline(db, {
    projectId: project.id,
    iid: 1,
    ref: 'main',
    tag: false,
    sha: 'a'.repeat(40),
    beforeSha: '0'.repeat(40),
    source: 'push',
    status: 'running',
    userId: root.id,
    yamlErrors: null,
    variables: '[]',
  })
  const job = await q.insertJob(db, {
    pipelineId: p.id,
    projectId: project.id,
    name: 'j',
    stage: 'test',
    stageIdx: 0,
    when: 'on_success',
    allowFailure: false,
    needs: null,
    definition: {},
    variables: [],
    userId: root.id,
  })
  return { traces: new TraceStore(db, createFsDriver(join(dir, 'ci'))), jobId: job.id, dir }
}

describe('TraceStore', () => {
  it('appends by offset: retries are skipped, gaps refused, overlaps add only the new bytes', async (t) => {
    const s = await store(t)
    const m = new TraceMasker([], [])
    assert.deepEqual(await s.traces.append(s.jobId, 0, [Buffer.from('hello ')], m), { ok: true, received: 6 })
    assert.deepEqual(await s.traces.append(s.jobId, 0, [Buffer.from('hello ')], m), { ok: true, received: 6 }, 'a retried chunk')
    assert.deepEqual(await s.traces.append(s.jobId, 10, [Buffer.from('x')], m), { ok: false, received: 6 }, 'a gap')
    assert.deepEqual(await s.traces.append(s.jobId, 3, Readable.from([Buffer.from('lo '), Buffer.from('world')]), m), {
      ok: true,
      received: 11,
    })
    await s.traces.finish(s.jobId, m)
    assert.equal(await readFile(join(s.dir, 'ci', s.traces.path(s.jobId)), 'utf8'), 'hello world')
  })

  it('drops bytes an unrecorded append left behind (crash between write and record)', async (t) => {
    const s = await store(t)
    const m = new TraceMasker([], [])
    await s.traces.append(s.jobId, 0, [Buffer.from('abc')], m)
    await writeFile(join(s.dir, 'ci', s.traces.path(s.jobId)), 'abcGARBAGE')
    await s.traces.append(s.jobId, 3, [Buffer.from('def')], m)
    assert.equal(await readFile(join(s.dir, 'ci', s.traces.path(s.jobId)), 'utf8'), 'abcdef')
  })

  it('never writes a secret split across two appends, and flushes the tail with a final line', async (t) => {
    const s = await store(t)
    const m = new TraceMasker(['s3cr3t-value'])
    await s.traces.append(s.jobId, 0, [Buffer.from('token=s3cr')], m)
    const mid = await readFile(join(s.dir, 'ci', s.traces.path(s.jobId)), 'utf8')
    assert.ok(!mid.includes('s3cr'), 'the possible start of a secret is held back')
    await s.traces.append(s.jobId, 10, [Buffer.from('3t-value done')], m)
    await s.traces.finish(s.jobId, m, 'ERROR: bye')
    assert.equal(await readFile(join(s.dir, 'ci', s.traces.path(s.jobId)), 'utf8'), `token=${MASK} done\nERROR: bye\n`)
    const st = await s.traces.state(s.jobId)
    assert.equal(st.received, 23)
    const { size, stream } = await s.traces.read(s.jobId, 6)
    assert.equal(size, Buffer.byteLength(`token=${MASK} done\nERROR: bye\n`))
    let got = ''
    for await (const c of stream!) got += String(c)
    assert.equal(got, `${MASK} done\nERROR: bye\n`)
  })
})
