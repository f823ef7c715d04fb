import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { GitRepos } from '../git/repos.ts'
import type { CommitStatus, Database, Project } from '../metadata/schema.ts'
import { countCommitStatuses, listCommitStatuses, upsertCommitStatus, type CommitStatusFilter } from './queries.ts'

// Commit statuses from external systems (another CI, a deploy tool), as GitLab's: a named state
// on a commit (and ref), posted again under the same name to move it on.

export const COMMIT_STATES = ['pending', 'running', 'success', 'failed', 'canceled', 'skipped'] as const
export type CommitState = (typeof COMMIT_STATES)[number]
const FINAL: ReadonlySet<string> = new Set(['success', 'failed', 'canceled', 'skipped'])

export interface CommitStatusInput {
  state: CommitState
  ref?: string | undefined
  name?: string | undefined
  targetUrl?: string | undefined
  description?: string | undefined
  coverage?: number | undefined
}

export class CommitStatuses {
  private readonly db: Kysely<Database>
  private readonly repos: GitRepos
  constructor(db: Kysely<Database>, repos: GitRepos) {
    this.db = db
    this.repos = repos
  }

  /** Records (or moves on) the status `name` of a commit; NOT_FOUND when the commit is not in the repository. */
  async post(project: Project, sha: string, input: CommitStatusInput, authorId: number | null): Promise<CommitStatus> {
    const commit = /^[0-9a-f]{40,64}$/.test(sha) ? await this.repos.commitInfo(project.id, sha) : undefined
    if (!commit) throw new WharfError('NOT_FOUND', 'Commit Not Found', { sha: sha.slice(0, 80) })
    // Without a ref, the first branch holding the commit, as GitLab picks it.
    const ref = input.ref ?? (await this.branchContaining(project.id, commit.id)) ?? ''
    const now = new Date().toISOString()
    return upsertCommitStatus(this.db, {
      project_id: project.id,
      sha: commit.id,
      ref,
      name: input.name ?? 'default',
      status: input.state,
      description: input.description ?? null,
      target_url: input.targetUrl ?? null,
      coverage: input.coverage ?? null,
      author_id: authorId,
      created_at: now,
      started_at: input.state === 'pending' ? null : now,
      finished_at: FINAL.has(input.state) ? now : null,
    })
  }

  async page(
    projectId: number,
    sha: string,
    f: CommitStatusFilter,
    page: { limit: number; offset: number },
  ): Promise<{ rows: CommitStatus[]; total: number }> {
    const [rows, total] = await Promise.all([
      listCommitStatuses(this.db, projectId, sha, f, page),
      countCommitStatuses(this.db, projectId, sha, f),
    ])
    return { rows, total }
  }

  private async branchContaining(projectId: number, sha: string): Promise<string | undefined> {
    const out = await this.repos.git(projectId, [
      'for-each-ref',
      '--count=1',
      '--format=%(refname:lstrip=2)',
      `--contains=${sha}`,
      'refs/heads/',
    ])
    return out.stdout.toString('utf8').trim() || undefined
  }
}
