import { describe, it } from 'node:test'
import assert from 'node:assert/strict'
import type { CallResult, PatchTraceResult } from './client.ts'
import { PrepareError } from './executor.ts'
import { JobControl } from './job-control.ts'
import { failureOf, StageFailure, stopFailure, type StopReason } from './job-failure.ts'
import type { JobResponse, UpdateJobRequest } from './protocol.ts'
import { SourcesError } from './sources.ts'

/** The server's side of a running job: answers keep-alives with the job's status, takes trace appends. */
class FakeServer {
  status = 'running'
  updateStatus = 200
  updates: UpdateJobRequest[] = []
  async updateJob(_id: number, update: UpdateJobRequest): Promise<CallResult> {
    this.updates.push(update)
    return { status: this.updateStatus, jobStatus: this.status, text: '' }
  }
  async patchTrace(_id: number, _token: string, start: number, bytes: Uint8Array): Promise<PatchTraceResult> {
    return { status: 202, jobStatus: this.status, text: '', stored: start + bytes.length, updateInterval: undefined }
  }
}

const job = { id: 7, token: 'glcbt-x', variables: [], runner_info: { timeout: 120 } } as unknown as JobResponse
const silent = { info() {}, warn() {}, error() {}, debug() {} }

function control(server: FakeServer, shutdown = new AbortController().signal): JobControl {
  return new JobControl({ client: server, log: silent, outputLimitBytes: 1 << 20, shutdown, heartbeatMs: 5 }, job)
}

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !cond(); i++) await new Promise((r) => setTimeout(r, 5))
  assert.ok(cond(), 'condition not reached')
}

describe('job failures', () => {
  it('maps every stop to one GitLab failure reason', () => {
    const table: Record<StopReason, [string, string]> = {
      timeout: ['job_execution_timeout', 'execution took longer than 2m0s seconds'],
      canceled: ['job_canceled', 'canceled'],
      canceling: ['job_canceled', 'canceled'],
      shutdown: ['runner_system_failure', 'the runner was stopped'],
      rejected: ['runner_system_failure', 'the server no longer accepts updates for this job'],
    }
    for (const [reason, [failure, message]] of Object.entries(table)) {
      const f = stopFailure(reason as StopReason, 120)
      assert.deepEqual([f.reason, f.message, f.exitCode], [failure, message, undefined], reason)
    }
  })

  it("maps a stage's error to its reason; anything else is the runner's own failure", () => {
    assert.deepEqual(pick(failureOf(new SourcesError('git fetch failed: exit code 128', 128))), ['script_failure', 128, true])
    assert.deepEqual(pick(failureOf(new PrepareError('no such image', 'image_pull_failure'))), ['image_pull_failure', undefined, true])
    assert.deepEqual(pick(failureOf(new StageFailure('exit code 3', 'script_failure', 3))), ['script_failure', 3, true])
    assert.deepEqual(pick(failureOf(new TypeError('x is undefined'))), ['runner_system_failure', undefined, false])
  })
})

function pick(r: ReturnType<typeof failureOf>): unknown[] {
  return [r.failure.reason, r.failure.exitCode, r.expected]
}

describe('job control', () => {
  it('a graceful cancel lets after_script run; a hard cancel then stops it too', async (t) => {
    const server = new FakeServer()
    const c = control(server)
    t.after(() => c.dispose())
    await until(() => server.updates.length > 0)
    assert.equal(c.stopReason, undefined)
    server.status = 'canceling'
    await until(() => c.signal.aborted)
    assert.deepEqual([c.stopReason, c.hardSignal.aborted], ['canceling', false])
    server.status = 'canceled'
    await until(() => c.hardSignal.aborted)
    assert.equal(c.stopFailure()?.reason, 'job_canceled')
    assert.throws(
      () => c.throwIfStopped(),
      (e: Error) => e instanceof StageFailure && e.reason === 'job_canceled',
    )
  })

  it('the first stop wins: a refused keep-alive, then the runner stopping', async (t) => {
    const server = new FakeServer()
    const shutdown = new AbortController()
    const c = control(server, shutdown.signal)
    t.after(() => c.dispose())
    server.updateStatus = 403
    await until(() => c.stopReason !== undefined)
    shutdown.abort()
    assert.deepEqual(
      [c.stopReason, c.hardSignal.aborted, c.stopFailure()?.message],
      ['rejected', true, 'the server no longer accepts updates for this job'],
    )
  })

  it('stops at once when the runner is already stopping, and dispose ends the keep-alive', async () => {
    const shutdown = new AbortController()
    shutdown.abort()
    const server = new FakeServer()
    const c = control(server, shutdown.signal)
    assert.equal(c.stopFailure()?.message, 'the runner was stopped')
    c.dispose()
    const n = server.updates.length
    await new Promise((r) => setTimeout(r, 50))
    assert.equal(server.updates.length, n, 'no keep-alive after dispose')
  })
})
