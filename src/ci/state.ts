// The pipeline/job state machine as plain data (GitLab's semantics), tested without HTTP or SQL.

/**
 * `waiting_for_resource`: ready, but another job of its `resource_group` holds the resource;
 * `scheduled`: a delayed job waiting out its `start_in`.
 */
export const JOB_STATUSES = [
  'created',
  'waiting_for_resource',
  'pending',
  'running',
  'success',
  'failed',
  'canceled',
  'skipped',
  'manual',
  'scheduled',
] as const
export type JobStatus = (typeof JOB_STATUSES)[number]
export const PIPELINE_STATUSES = [
  'created',
  'waiting_for_resource',
  'pending',
  'running',
  'success',
  'failed',
  'canceled',
  'skipped',
  'manual',
  'scheduled',
] as const
export type PipelineStatus = (typeof PIPELINE_STATUSES)[number]
export type When = 'on_success' | 'on_failure' | 'always' | 'manual' | 'delayed'

export const FINISHED: ReadonlySet<JobStatus> = new Set(['success', 'failed', 'canceled', 'skipped'])
export const ACTIVE: ReadonlySet<JobStatus> = new Set(['pending', 'running'])

export interface JobNode {
  id: number
  name: string
  stageIdx: number
  status: JobStatus
  when: When
  allowFailure: boolean
  /** null: wait for every job of earlier stages; []: start at once; names: a DAG edge to each. */
  needs: string[] | null
}

/** A prerequisite no longer holds its dependants back. A blocking manual job (allow_failure false) does. */
function settled(j: JobNode): boolean {
  return FINISHED.has(j.status) || (j.status === 'manual' && j.allowFailure)
}

/** Failed for the purpose of its dependants: failed without allow_failure, or canceled. */
function blocksSuccess(j: JobNode): boolean {
  return (j.status === 'failed' && !j.allowFailure) || j.status === 'canceled'
}

function prerequisites(job: JobNode, all: JobNode[]): JobNode[] {
  if (job.needs === null) return all.filter((j) => j.stageIdx < job.stageIdx)
  const wanted = new Set(job.needs)
  return all.filter((j) => wanted.has(j.name))
}

/**
 * Decides what each `created` job becomes now that others have moved: pending (to the queue),
 * manual (waiting for a person), scheduled (a delayed job waiting out its `start_in`), skipped,
 * or unchanged while prerequisites are still running.
 * Applies repeatedly until nothing changes, since a skip can release later jobs.
 */
export function advance(input: readonly JobNode[]): Map<number, JobStatus> {
  const jobs = input.map((j) => ({ ...j }))
  const changes = new Map<number, JobStatus>()
  for (let changed = true; changed; ) {
    changed = false
    for (const job of jobs) {
      if (job.status !== 'created') continue
      const pre = prerequisites(job, jobs)
      if (!pre.every(settled)) continue
      const failedBefore = pre.some(blocksSuccess)
      let next: JobStatus
      switch (job.when) {
        case 'on_success':
          next = failedBefore ? 'skipped' : 'pending'
          break
        case 'on_failure':
          next = failedBefore ? 'pending' : 'skipped'
          break
        case 'always':
          next = 'pending'
          break
        case 'manual':
          next = failedBefore ? 'skipped' : 'manual'
          break
        case 'delayed':
          next = failedBefore ? 'skipped' : 'scheduled'
          break
      }
      job.status = next
      changes.set(job.id, next)
      changed = true
    }
  }
  return changes
}

/** The pipeline's status from its jobs' (GitLab's composite status). */
export function pipelineStatus(jobs: ReadonlyArray<Pick<JobNode, 'status' | 'allowFailure'>>): PipelineStatus {
  if (jobs.length === 0) return 'skipped'
  const has = (s: JobStatus) => jobs.some((j) => j.status === s)
  if (has('running')) return 'running'
  const started = jobs.some(
    (j) =>
      j.status !== 'created' &&
      j.status !== 'pending' &&
      j.status !== 'waiting_for_resource' &&
      j.status !== 'skipped' &&
      j.status !== 'manual' &&
      j.status !== 'scheduled',
  )
  if (has('pending')) return started ? 'running' : 'pending'
  if (has('waiting_for_resource')) return started ? 'running' : 'waiting_for_resource'
  // A delayed job holds the pipeline as `scheduled` until its time comes (or someone plays it).
  if (has('scheduled')) return 'scheduled'
  // A blocking manual job holds the pipeline until someone plays it.
  if (jobs.some((j) => j.status === 'manual' && !j.allowFailure)) return 'manual'
  if (has('created')) return started ? 'running' : 'created'
  if (jobs.some((j) => j.status === 'failed' && !j.allowFailure)) return 'failed'
  if (has('canceled')) return 'canceled'
  if (jobs.every((j) => j.status === 'skipped' || (j.status === 'manual' && j.allowFailure))) return 'skipped'
  return 'success'
}

/** A `strategy: depend` bridge's status for its downstream pipeline's: running until it is finished. */
export function bridgeStatus(downstream: PipelineStatus): JobStatus {
  switch (downstream) {
    case 'success':
    case 'failed':
    case 'canceled':
    case 'skipped':
      return downstream
    default:
      return 'running'
  }
}
