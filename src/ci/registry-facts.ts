import type { Kysely } from 'kysely'
import type { GitHosting } from '../git/service.ts'
import { refPatternMatches } from '../git/protected-refs.ts'
import type { Database } from '../metadata/schema.ts'
import type { CiFacts, JobOrigin } from '../registry/ci-facts.ts'
import * as q from './queries.ts'

/** What the registry's tag history and CI-aware cleanup ask CI: a job's pipeline and ref, branches, protected branches' latest pipelines. */
export class RegistryCiFacts implements CiFacts {
  private readonly db: Kysely<Database>
  private readonly git: GitHosting

  constructor(db: Kysely<Database>, git: GitHosting) {
    this.db = db
    this.git = git
  }

  async job(jobId: number): Promise<JobOrigin | undefined> {
    const row = await q.jobPipelineRef(this.db, jobId)
    return row && { pipelineId: row.id, ref: row.ref, refIsTag: row.tag === 1 }
  }

  async branches(projectId: number): Promise<Set<string> | undefined> {
    const out = await this.git.repos.git(projectId, ['for-each-ref', '--format=%(refname:lstrip=2)', 'refs/heads/'])
    return new Set(out.stdout.toString('utf8').split('\n').filter(Boolean))
  }

  async latestProtectedBranchPipelines(projectId: number): Promise<Array<{ branch: string; pipelineId: number }>> {
    const rules = (await this.git.protectedRefs.rules(projectId)).filter((r) => r.kind === 'branch')
    if (rules.length === 0) return []
    return (await q.latestSuccessfulPipelinePerBranch(this.db, projectId))
      .filter((p) => rules.some((r) => refPatternMatches(r.name, p.ref)))
      .map((p) => ({ branch: p.ref, pipelineId: p.id }))
  }
}
