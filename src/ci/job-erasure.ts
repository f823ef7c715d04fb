// GitLab's job erase: a finished job loses its log and artifacts and stays listed, marked erased.
import { WharfError } from '../core/errors.ts'
import { nowIso } from '../metadata/db.ts'
import type { CiJob } from '../metadata/schema.ts'
import type { Artifacts } from './artifacts.ts'
import type { Pipelines } from './pipelines.ts'
import type { TraceStore } from './traces.ts'

/** GitLab's `COMPLETED_STATUSES`: a job in any other state may still write its log. */
const FINISHED = ['success', 'failed', 'canceled', 'skipped'] as const

export class JobErasure {
  private readonly deps: { pipelines: Pipelines; traces: TraceStore; artifacts: Artifacts }

  constructor(deps: { pipelines: Pipelines; traces: TraceStore; artifacts: Artifacts }) {
    this.deps = deps
  }

  /** Erases a finished job that has a log or artifacts (else FORBIDDEN, GitLab's "Job is not erasable!"). */
  async erase(job: CiJob): Promise<CiJob> {
    const { pipelines, traces, artifacts } = this.deps
    const hasLog = (await traces.size(job.id)) > 0
    const hasArtifacts = (await artifacts.forJobs([job.id])).length > 0
    if (!(FINISHED as readonly string[]).includes(job.status) || !(hasLog || hasArtifacts))
      throw new WharfError('FORBIDDEN', 'Job is not erasable!', { status: job.status })
    await artifacts.removeAll(job.id)
    await traces.erase(job.id)
    await pipelines.markErased(job.id, nowIso())
    return (await pipelines.findJob(job.id))!
  }
}
