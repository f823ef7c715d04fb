// Releases (GitLab's releases API and the `release:` keyword). A release belongs to a tag; creating
// one for a tag that does not exist yet creates the tag from `ref` first, as the caller, through
// the repository editor (protected tags apply, and the tag starts its pipeline as a push would).
// A job's `release:` is Wharf's release-cli: when the job succeeds, the server creates the release
// with the permissions of the job's user; when it cannot, the job fails with the reason in its log.
import type { FastifyBaseLogger } from 'fastify'
import type { Kysely } from 'kysely'
import type { Principal } from '../auth/principals.ts'
import { ACCESS_LEVELS } from '../auth/roles.ts'
import { isWharfError, WharfError } from '../core/errors.ts'
import { RepositoryEditor, type EditContext } from '../git/editor.ts'
import type { GitHosting } from '../git/service.ts'
import type { TagInfo } from '../git/repos.ts'
import type { CiJob, Database, Project, Release, ReleaseLink } from '../metadata/schema.ts'
import type { ProjectAccess } from '../projects/index.ts'
import * as projectQueries from '../projects/queries.ts'
import type { Users } from '../users/index.ts'
import { expandAllVariables, expandVariables, type CiRelease, type ReleaseLinkType } from './config/index.ts'
import type { JobDefinition } from './pipelines.ts'
import type { JobVariable } from './predefined.ts'
import * as rq from './release-queries.ts'

export const RELEASE_LIMITS = {
  /** GitLab's limits on a release's name and description. */
  name: 255,
  description: 1_000_000,
  /** Links one release may have (GitLab's default max_links). */
  links: 50,
} as const

/** GitLab's direct_asset_path grammar: an absolute path of word characters, dots and dashes. */
const ASSET_PATH = /^\/(?:[-.\w]+\/?)*[\da-zA-Z]+$/
const LINK_URL = /^(https?|ftp):\/\/[^\s]+$/i

export interface LinkInput {
  name: string
  url: string
  directAssetPath?: string | null | undefined
  linkType?: ReleaseLinkType | undefined
}

export interface ReleaseInput {
  tagName: string
  name?: string | undefined
  description?: string | undefined
  ref?: string | undefined
  tagMessage?: string | undefined
  releasedAt?: string | undefined
  links?: LinkInput[] | undefined
}

/** What the job's log says about its release: made, or why not (the job then fails). */
export type JobReleaseOutcome = { ok: true; line: string } | { ok: false; line: string }

export class Releases {
  private readonly db: Kysely<Database>
  private readonly git: GitHosting
  private readonly editor: RepositoryEditor
  private readonly projectAccess: ProjectAccess

  constructor(deps: { db: Kysely<Database>; git: GitHosting; users: Users; projectAccess: ProjectAccess; publicUrl: string }) {
    this.db = deps.db
    this.git = deps.git
    this.projectAccess = deps.projectAccess
    this.editor = new RepositoryEditor({ git: deps.git, users: deps.users, publicUrl: deps.publicUrl })
  }

  page(projectId: number, f: Parameters<typeof rq.pageReleases>[2], page: { limit: number; offset: number }) {
    return rq.pageReleases(this.db, projectId, f, page)
  }

  async find(projectId: number, tagName: string): Promise<Release> {
    const r = await rq.findRelease(this.db, projectId, tagName)
    if (!r) throw new WharfError('NOT_FOUND', 'Release Not Found', { tag_name: tagName })
    return r
  }

  /** The tag's commit and annotation, or undefined when the tag is gone. */
  tag(projectId: number, tagName: string): Promise<TagInfo | undefined> {
    return this.git.repos.tag(projectId, tagName)
  }

  links(releaseIds: number[]): Promise<ReleaseLink[]> {
    return rq.releaseLinks(this.db, releaseIds)
  }

  /**
   * Creates a release of `tagName` (the tag from `ref` when it does not exist yet). CONFLICT when the
   * tag has a release; BAD_REQUEST for a missing tag without `ref`, or bad links.
   */
  async create(project: Project, input: ReleaseInput, ctx: EditContext, jobId: number | null = null): Promise<Release> {
    const links = input.links ?? []
    checkLinks(links)
    checkTexts(input)
    if (await rq.findRelease(this.db, project.id, input.tagName))
      throw new WharfError('CONFLICT', 'Release already exists', { tag_name: input.tagName })
    let tag = await this.git.repos.tag(project.id, input.tagName)
    if (!tag) {
      if (input.ref === undefined) throw new WharfError('BAD_REQUEST', 'Ref is not specified', { tag_name: input.tagName })
      await this.editor.createTag(project, input.tagName, input.ref, input.tagMessage || undefined, ctx)
      tag = await this.git.repos.tag(project.id, input.tagName)
    }
    if (!tag?.commit) throw new WharfError('BAD_REQUEST', `tag ${input.tagName} does not point at a commit`, { tag_name: input.tagName })
    const sha = tag.commit.id
    const authorId = ctx.principal.kind === 'user' ? ctx.principal.userId : null
    const now = new Date().toISOString()
    const release = await this.db.transaction().execute(async (trx) => {
      const row = await rq.insertRelease(trx, {
        project_id: project.id,
        tag_name: input.tagName,
        name: input.name || input.tagName,
        description: input.description ?? '',
        sha,
        author_id: authorId,
        job_id: jobId,
        released_at: input.releasedAt === undefined ? now : new Date(input.releasedAt).toISOString(),
      })
      if (!row) throw new WharfError('CONFLICT', 'Release already exists', { tag_name: input.tagName })
      for (const l of links)
        await rq.insertReleaseLink(trx, {
          release_id: row.id,
          name: l.name,
          url: l.url,
          direct_asset_path: l.directAssetPath ?? null,
          link_type: l.linkType ?? 'other',
        })
      return row
    })
    return release
  }

  async update(release: Release, set: { name?: string | undefined; description?: string | undefined; releasedAt?: string | undefined }) {
    checkTexts(set)
    await rq.updateRelease(this.db, release.id, {
      ...(set.name !== undefined ? { name: set.name || release.tag_name } : {}),
      ...(set.description !== undefined ? { description: set.description } : {}),
      ...(set.releasedAt !== undefined ? { released_at: new Date(set.releasedAt).toISOString() } : {}),
    })
    return this.find(release.project_id, release.tag_name)
  }

  /** Deletes the release and its links; the tag stays, as on GitLab. */
  remove(release: Release): Promise<void> {
    return rq.deleteRelease(this.db, release.id)
  }

  pageLinks(release: Release, page: { limit: number; offset: number }) {
    return rq.pageReleaseLinks(this.db, release.id, page)
  }

  async link(release: Release, id: number): Promise<ReleaseLink> {
    const l = await rq.findReleaseLink(this.db, release.id, id)
    if (!l) throw new WharfError('NOT_FOUND', 'Link Not Found', { id })
    return l
  }

  async addLink(release: Release, input: LinkInput): Promise<ReleaseLink> {
    checkLinks([input])
    if ((await rq.pageReleaseLinks(this.db, release.id, { limit: 0, offset: 0 })).total >= RELEASE_LIMITS.links)
      throw new WharfError('BAD_REQUEST', `a release can have at most ${RELEASE_LIMITS.links} links`, {})
    await this.checkUnique(release, input.name, input.url, 0)
    return rq.insertReleaseLink(this.db, {
      release_id: release.id,
      name: input.name,
      url: input.url,
      direct_asset_path: input.directAssetPath ?? null,
      link_type: input.linkType ?? 'other',
    })
  }

  async updateLink(release: Release, link: ReleaseLink, set: Partial<LinkInput>): Promise<ReleaseLink> {
    checkLinks([{ ...{ name: link.name, url: link.url }, ...set }])
    await this.checkUnique(release, set.name, set.url, link.id)
    await rq.updateReleaseLink(this.db, link.id, {
      ...(set.name !== undefined ? { name: set.name } : {}),
      ...(set.url !== undefined ? { url: set.url } : {}),
      ...(set.directAssetPath !== undefined ? { direct_asset_path: set.directAssetPath } : {}),
      ...(set.linkType !== undefined ? { link_type: set.linkType } : {}),
    })
    return this.link(release, link.id)
  }

  async removeLink(link: ReleaseLink): Promise<void> {
    await rq.deleteReleaseLink(this.db, link.id)
  }

  private async checkUnique(release: Release, name: string | undefined, url: string | undefined, exceptId: number): Promise<void> {
    const clash = await rq.clashingLink(this.db, release.id, name, url, exceptId)
    if (!clash) return
    const what = clash.name === name ? 'name' : 'url'
    throw new WharfError('BAD_REQUEST', `${what} has already been taken`, { [what]: what === 'name' ? name : url })
  }

  /**
   * A succeeding job's `release:`: created as the job's user, who must still be a Developer of the
   * project (GitLab's create_release). Never throws: what went wrong is the outcome's line.
   */
  async fromJob(job: CiJob, userPrincipal: Principal | undefined, log: FastifyBaseLogger): Promise<JobReleaseOutcome | undefined> {
    const planned = JSON.parse(job.definition) as Partial<JobDefinition>
    if (!planned.release) return undefined
    const def = expandRelease(planned.release, job, planned)
    try {
      const project = await projectQueries.findProject(this.db, job.project_id)
      if (!project) return { ok: false, line: 'release: the project is gone' }
      if (userPrincipal?.kind !== 'user') return { ok: false, line: "release: the job's user cannot create releases (blocked or deleted)" }
      const level = userPrincipal.isAdmin
        ? ACCESS_LEVELS.owner
        : await this.projectAccess.projectLevel({ id: userPrincipal.userId }, project)
      if ((level ?? 0) < ACCESS_LEVELS.developer)
        return { ok: false, line: `release: ${userPrincipal.username} needs the developer role in ${project.full_path} to create releases` }
      const r = await this.create(
        project,
        {
          tagName: def.tagName,
          name: def.name ?? undefined,
          description: def.description,
          ref: def.ref ?? planned.sha,
          tagMessage: def.tagMessage ?? undefined,
          releasedAt: def.releasedAt ?? undefined,
          links: def.links.map((l) => ({
            name: l.name,
            url: l.url,
            directAssetPath: l.directAssetPath,
            linkType: l.linkType,
          })),
        },
        { principal: userPrincipal, address: '127.0.0.1', log },
        job.id,
      )
      return { ok: true, line: `Created release ${r.tag_name} (${r.name}) as ${userPrincipal.username}` }
    } catch (e) {
      if (!isWharfError(e)) throw e
      return { ok: false, line: `release: ${e.message}` }
    }
  }
}

/**
 * `release:` with the job's variables expanded, as release-cli sees them in the job: predefined
 * ones (CI_COMMIT_TAG, CI_PIPELINE_IID, CI_ENVIRONMENT_*) and the job's YAML variables.
 */
function expandRelease(r: CiRelease, job: CiJob, planned: Partial<JobDefinition>): CiRelease {
  const base = Object.fromEntries((JSON.parse(job.variables) as JobVariable[]).map((v) => [v.key, v.value]))
  const raw = new Set(planned.rawVariables ?? [])
  const yaml = expandAllVariables(
    Object.fromEntries(Object.entries(planned.variables ?? {}).map(([k, value]) => [k, { value, expand: !raw.has(k) }])),
    base,
  )
  const vars = { ...base, ...yaml }
  const x = (v: string) => expandVariables(v, vars)
  const maybe = (v: string | null) => (v === null ? null : x(v))
  return {
    tagName: x(r.tagName),
    tagMessage: maybe(r.tagMessage),
    name: maybe(r.name),
    description: x(r.description),
    ref: maybe(r.ref),
    releasedAt: maybe(r.releasedAt),
    links: r.links.map((l) => ({ ...l, name: x(l.name), url: x(l.url) })),
  }
}

function checkTexts(t: { name?: string | undefined; description?: string | undefined; releasedAt?: string | undefined }): void {
  if (t.name !== undefined && t.name.length > RELEASE_LIMITS.name)
    throw new WharfError('BAD_REQUEST', `name is too long (maximum is ${RELEASE_LIMITS.name} characters)`, {})
  if (t.description !== undefined && t.description.length > RELEASE_LIMITS.description)
    throw new WharfError('BAD_REQUEST', `description is too long (maximum is ${RELEASE_LIMITS.description} characters)`, {})
  if (t.releasedAt !== undefined && Number.isNaN(Date.parse(t.releasedAt)))
    throw new WharfError('BAD_REQUEST', 'released_at is invalid', { released_at: t.releasedAt })
}

function checkLinks(links: LinkInput[]): void {
  if (links.length > RELEASE_LIMITS.links)
    throw new WharfError('BAD_REQUEST', `a release can have at most ${RELEASE_LIMITS.links} links`, {})
  const names = new Set<string>()
  const urls = new Set<string>()
  for (const l of links) {
    if (!l.name.trim()) throw new WharfError('BAD_REQUEST', "name can't be blank", {})
    if (!LINK_URL.test(l.url))
      throw new WharfError('BAD_REQUEST', 'url is blocked: Only allowed schemes are http, https, ftp', { url: l.url })
    if (l.directAssetPath != null && !ASSET_PATH.test(l.directAssetPath))
      throw new WharfError('BAD_REQUEST', 'direct_asset_path is invalid: an absolute path such as /binaries/app-linux', {})
    if (names.has(l.name)) throw new WharfError('BAD_REQUEST', 'name has already been taken', { name: l.name })
    if (urls.has(l.url)) throw new WharfError('BAD_REQUEST', 'url has already been taken', { url: l.url })
    names.add(l.name)
    urls.add(l.url)
  }
}
