import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { advance, pipelineStatus, type JobNode, type JobStatus } from './state.ts'

let nextId = 1
function job(name: string, stageIdx: number, extra: Partial<JobNode> = {}): JobNode {
  return { id: nextId++, name, stageIdx, status: 'created', when: 'on_success', allowFailure: false, needs: null, ...extra }
}

function statuses(jobs: JobNode[]): Record<string, JobStatus> {
  const changes = advance(jobs)
  return Object.fromEntries(jobs.map((j) => [j.name, changes.get(j.id) ?? j.status]))
}

describe('advance', () => {
  it('only the first stage starts; later stages wait', () => {
    const jobs = [job('build', 0), job('test', 1), job('deploy', 2)]
    assert.deepEqual(statuses(jobs), { build: 'pending', test: 'created', deploy: 'created' })
  })

  it('a stage starts when every job of earlier stages succeeded', () => {
    const jobs = [job('a', 0, { status: 'success' }), job('b', 0, { status: 'running' }), job('c', 1)]
    assert.deepEqual(statuses(jobs), { a: 'success', b: 'running', c: 'created' })
    jobs[1]!.status = 'success'
    assert.deepEqual(statuses(jobs), { a: 'success', b: 'success', c: 'pending' })
  })

  it('a failure skips dependants, runs on_failure and always jobs, and allow_failure does not block', () => {
    const jobs = [
      job('build', 0, { status: 'failed' }),
      job('lint', 0, { status: 'failed', allowFailure: true }),
      job('test', 1),
      job('notify', 1, { when: 'on_failure' }),
      job('cleanup', 2, { when: 'always' }),
    ]
    assert.deepEqual(statuses(jobs), { build: 'failed', lint: 'failed', test: 'skipped', notify: 'pending', cleanup: 'created' })
  })

  it('allow_failure alone does not fail dependants; on_failure jobs are then skipped', () => {
    const jobs = [job('lint', 0, { status: 'failed', allowFailure: true }), job('test', 1), job('rescue', 1, { when: 'on_failure' })]
    assert.deepEqual(statuses(jobs), { lint: 'failed', test: 'pending', rescue: 'skipped' })
  })

  it('needs form a DAG across stages; needs: [] starts at once', () => {
    const jobs = [
      job('build-a', 0, { status: 'success' }),
      job('build-b', 0, { status: 'running' }),
      job('test-a', 1, { needs: ['build-a'] }),
      job('test-b', 1, { needs: ['build-b'] }),
      job('lint', 2, { needs: [] }),
      job('deploy', 2),
    ]
    assert.deepEqual(statuses(jobs), {
      'build-a': 'success',
      'build-b': 'running',
      'test-a': 'pending',
      'test-b': 'created',
      lint: 'pending',
      deploy: 'created',
    })
  })

  it('a blocking manual job holds later stages; a non-blocking one does not', () => {
    const blocking = [job('build', 0, { status: 'success' }), job('approve', 1, { when: 'manual' }), job('deploy', 2)]
    assert.deepEqual(statuses(blocking), { build: 'success', approve: 'manual', deploy: 'created' })
    const optional = [job('build', 0, { status: 'success' }), job('extra', 1, { when: 'manual', allowFailure: true }), job('deploy', 2)]
    assert.deepEqual(statuses(optional), { build: 'success', extra: 'manual', deploy: 'pending' })
  })

  it('skips cascade through later stages in one call', () => {
    const jobs = [job('a', 0, { status: 'failed' }), job('b', 1), job('c', 2), job('d', 3, { when: 'always' })]
    assert.deepEqual(statuses(jobs), { a: 'failed', b: 'skipped', c: 'skipped', d: 'pending' })
  })

  it('a delayed job is scheduled once it could start and holds its dependants until it ran', () => {
    const jobs = [job('build', 0, { status: 'success' }), job('deploy', 1, { when: 'delayed' }), job('smoke', 2)]
    assert.deepEqual(statuses(jobs), { build: 'success', deploy: 'scheduled', smoke: 'created' })
    const failed = [job('build', 0, { status: 'failed' }), job('deploy', 1, { when: 'delayed' })]
    assert.deepEqual(statuses(failed), { build: 'failed', deploy: 'skipped' })
  })

  it('canceled counts as a failure for dependants', () => {
    const jobs = [job('a', 0, { status: 'canceled' }), job('b', 1)]
    assert.deepEqual(statuses(jobs), { a: 'canceled', b: 'skipped' })
  })
})

describe('pipelineStatus', () => {
  const s = (...list: Array<[JobStatus, boolean?]>) =>
    pipelineStatus(list.map(([status, allowFailure]) => ({ status, allowFailure: allowFailure ?? false })))
  it('derives the composite status', () => {
    assert.equal(s(['pending'], ['created']), 'pending')
    assert.equal(s(['success'], ['pending']), 'running')
    assert.equal(s(['running'], ['created']), 'running')
    assert.equal(s(['success'], ['success']), 'success')
    assert.equal(s(['success'], ['failed', true]), 'success')
    assert.equal(s(['failed'], ['skipped']), 'failed')
    assert.equal(s(['canceled'], ['success']), 'canceled')
    assert.equal(s(['skipped'], ['skipped']), 'skipped')
    assert.equal(s(['success'], ['manual']), 'manual')
    assert.equal(s(['success'], ['manual', true]), 'success')
    assert.equal(s(['success'], ['scheduled']), 'scheduled')
    assert.equal(s(['success'], ['scheduled'], ['pending']), 'running')
    assert.equal(s(), 'skipped')
  })
})

it('a job waiting for its resource group keeps the pipeline waiting_for_resource, or running once something started', () => {
  assert.equal(pipelineStatus([{ status: 'waiting_for_resource', allowFailure: false }]), 'waiting_for_resource')
  assert.equal(
    pipelineStatus([
      { status: 'success', allowFailure: false },
      { status: 'waiting_for_resource', allowFailure: false },
    ]),
    'running',
  )
})
