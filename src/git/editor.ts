import type { FastifyBaseLogger } from 'fastify'
import type { Principal } from '../auth/principals.ts'
import { WharfError } from '../core/errors.ts'
import type { Project } from '../metadata/schema.ts'
import type { Users } from '../users/index.ts'
import { refusal } from './protected-refs.ts'
import { commitFiles, createRef, deleteRef, writeTagObject, type CommitRequest, type CommitResult, type Identity } from './commits.ts'
import type { RefUpdate } from './refs.ts'
import type { GitHosting } from './service.ts'

/** Who made a change and from where, for the commit's identity, the audit rows and the push event. */
export interface EditContext {
  principal: Principal
  address: string
  log: FastifyBaseLogger
}

/** What a caller asks to commit; author and committer default to the signed-in user. */
export type CommitInput = Omit<CommitRequest, 'author' | 'committer'> & {
  authorName?: string | undefined
  authorEmail?: string | undefined
}

/**
 * Changes to a repository made through Wharf rather than a push: commits of file actions, branches
 * and tags. Each ref update is announced like a push's (GitHosting.recordRefUpdates), so pipelines
 * start and the audit log and push events follow. Callers check the caller may write first.
 */
export class RepositoryEditor {
  private readonly git: GitHosting
  private readonly users: Users
  private readonly noreplyDomain: string

  constructor(deps: { git: GitHosting; users: Users; publicUrl: string }) {
    this.git = deps.git
    this.users = deps.users
    this.noreplyDomain = `users.noreply.${new URL(deps.publicUrl).hostname}`
  }

  async commit(project: Project, input: CommitInput, ctx: EditContext): Promise<CommitResult> {
    const [exists] = await this.git.repos.batchCheck(project.id, [`refs/heads/${input.branch}`])
    const startGiven = input.startSha !== undefined || (input.startBranch !== undefined && input.startBranch !== input.branch)
    await this.checkProtection(
      project,
      { type: 'branch', name: input.branch, action: exists ? 'update' : 'create' },
      Boolean(exists && input.force && startGiven),
      ctx,
    )
    const me = await this.identity(ctx.principal)
    const author = { name: input.authorName ?? me.name, email: input.authorEmail ?? me.email }
    const result = await commitFiles(this.git.repos, project.id, { ...input, author, committer: me })
    await this.announce(project, [result.update], ctx)
    return result
  }

  /** Creates a branch at a ref (branch, tag or commit); BAD_REQUEST when the ref does not resolve or the branch exists. */
  async createBranch(project: Project, name: string, ref: string, ctx: EditContext): Promise<void> {
    const target = await this.git.repos.resolveRef(project.id, ref)
    if (!target) throw new WharfError('BAD_REQUEST', 'Invalid reference name: ref', { ref })
    await this.checkProtection(project, { type: 'branch', name, action: 'create' }, false, ctx)
    await this.announce(project, [await createRef(this.git.repos, project.id, 'branch', name, target)], ctx)
  }

  /** Deletes a branch other than the default one; NOT_FOUND when there is none. */
  async deleteBranch(project: Project, name: string, ctx: EditContext): Promise<void> {
    if ((await this.git.repos.defaultBranch(project.id)) === name)
      throw new WharfError('FORBIDDEN', 'The default branch of a project cannot be deleted.', { branch: name })
    if (await this.git.repos.branch(project.id, name))
      await this.checkProtection(project, { type: 'branch', name, action: 'delete' }, false, ctx)
    const update = await deleteRef(this.git.repos, project.id, 'branch', name)
    if (!update) throw new WharfError('NOT_FOUND', 'Branch Not Found', { branch: name })
    await this.announce(project, [update], ctx)
  }

  /** Creates a tag at a ref, annotated when there is a message. */
  async createTag(project: Project, name: string, ref: string, message: string | undefined, ctx: EditContext): Promise<void> {
    const commit = await this.git.repos.resolveRef(project.id, ref)
    if (!commit) throw new WharfError('BAD_REQUEST', 'Target ref is invalid', { ref })
    await this.checkProtection(project, { type: 'tag', name, action: 'create' }, false, ctx)
    const target = message
      ? await writeTagObject(this.git.repos, project.id, name, commit, message, await this.identity(ctx.principal))
      : commit
    await this.announce(project, [await createRef(this.git.repos, project.id, 'tag', name, target)], ctx)
  }

  async deleteTag(project: Project, name: string, ctx: EditContext): Promise<void> {
    if (await this.git.repos.tag(project.id, name)) await this.checkProtection(project, { type: 'tag', name, action: 'delete' }, false, ctx)
    const update = await deleteRef(this.git.repos, project.id, 'tag', name)
    if (!update) throw new WharfError('NOT_FOUND', 'No such tag', { tag: name })
    await this.announce(project, [update], ctx)
  }

  /** FORBIDDEN when the project's protection rules refuse this update to the caller. */
  private async checkProtection(
    project: Project,
    u: Pick<RefUpdate, 'type' | 'name' | 'action'>,
    force: boolean,
    ctx: EditContext,
  ): Promise<void> {
    const rules = await this.git.protectedRefs.rules(project.id)
    if (rules.length === 0) return
    const why = refusal(rules, await this.git.protectionLevel(ctx.principal, project), u, force, true)
    if (why) throw new WharfError('FORBIDDEN', why, { ref: u.name })
  }

  private async identity(p: Principal): Promise<Identity> {
    const user = await this.users.actor(p)
    // git needs an address; users without one get a per-user no-reply address, as GitLab's.
    return { name: user.name.trim() || user.username, email: user.email ?? `${user.username}@${this.noreplyDomain}` }
  }

  private async announce(project: Project, updates: RefUpdate[], ctx: EditContext): Promise<void> {
    await this.git.recordRefUpdates(project, ctx.principal, updates, ctx.address, ctx.log)
  }
}
