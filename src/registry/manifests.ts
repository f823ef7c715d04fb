import type { Kysely } from 'kysely'
import { digestOf, type Digest, type ParsedDigest } from '../core/digest.ts'
import { WharfError } from '../core/errors.ts'
import { parseRepoName, parseTag, type RepoName } from '../core/names.ts'
import { nowIso } from '../metadata/db.ts'
import type { Database, Manifest, RegistryTagRule } from '../metadata/schema.ts'
import { parseManifest, type ParsedManifest } from './manifest-parse.ts'
import { INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPES } from './media-types.ts'
import type { InvalidTag, Reference } from './oci-path.ts'
import { tagsToDelete, type CleanupRules, type TagAge } from './cleanup.ts'
import { CleanupPolicies, type PlannedTag } from './cleanup-policies.ts'
import * as q from './queries.ts'
import { TagProtection, tagRefusal, undeletableTags } from './tag-protection.ts'
import { checkRepositoryRules, RepositoryProtection, repositoryRefusal } from './repository-protection.ts'
import { Quotas } from './quotas.ts'
import type { CiFacts } from './ci-facts.ts'

const EMPTY_CONFIG_TYPE = 'application/vnd.oci.empty.v1+json'

/** A tag pushed (pointed at a manifest) or deleted: webhooks' registry events listen to these. */
export interface TagEvent {
  action: 'push' | 'delete'
  repository: string
  tag: string
  digest: string | null
  mediaType: string | null
  /** The manifest and the blobs it references, in bytes (a push only). */
  size: number | null
  /** Who did it (a username, a deploy token's or CI job's name), when known. */
  actor: string | null
}

/**
 * The caller's access level for tag protection rules, asked only when a rule applies. Without one
 * (Wharf's own callers) push and delete levels do not apply; immutable tags always do.
 */
export type CallerLevel = () => Promise<number>

/** Who pushes a manifest: the token's subject, and the CI job when a job token pushes. */
export interface PushOrigin {
  actor?: string | undefined
  jobId?: number | undefined
}

export interface Page<T> {
  items: T[]
  /** The `last` value for the next page, when there is one. */
  next?: string
}

/** Manifests, tags and the discovery endpoints (spec: #pulling-manifests, #pushing-manifests, #content-discovery). */
export class Manifests {
  private readonly db: Kysely<Database>
  private readonly pageMax: number
  private readonly tagListeners = new Set<(e: TagEvent) => void>()
  /** Projects' cleanup policies (GitLab's container_expiration_policy). */
  readonly policies: CleanupPolicies
  /** Projects' tag protection rules, enforced here on every tag push and delete. */
  readonly protection: TagProtection
  /** Projects' repository protection rules, enforced here, by the /v2 upload routes and by cleanup. */
  readonly repositoryProtection: RepositoryProtection
  /** Projects' registry quotas (hard and soft). */
  readonly quotas: Quotas
  private ci: CiFacts | undefined

  constructor(db: Kysely<Database>, opts: { pageMax: number }) {
    this.db = db
    this.pageMax = opts.pageMax
    this.repositoryProtection = new RepositoryProtection(db)
    this.policies = new CleanupPolicies(db, this.repositoryProtection)
    this.protection = new TagProtection(db)
    this.quotas = new Quotas(db)
  }

  /** CI plugs in what job pushes and CI-aware cleanup need to know (without it, jobs are recorded by name only). */
  setCiFacts(ci: CiFacts): void {
    this.ci = ci
    this.policies.setCiFacts(ci)
  }

  async get(name: RepoName, ref: Reference, accept: string | undefined): Promise<Manifest> {
    const row =
      ref.kind === 'tag' ? await q.manifestByTag(this.db, name, ref.tag) : await q.manifestByDigest(this.db, name, ref.digest.digest)
    if (!row) throw await this.unknown(name, ref)
    // A digest names exact bytes; only tag requests are negotiated (as distribution does).
    if (ref.kind === 'digest' || acceptable(accept, row.media_type)) return row
    if (INDEX_TYPES.has(row.media_type) && [...MANIFEST_TYPES].some((t) => acceptable(accept, t))) {
      // A client that cannot read an index gets the linux/amd64 image, as Docker Hub and distribution do.
      const child = defaultPlatformChild(row)
      const found = child && (await q.manifestByDigest(this.db, name, child))
      if (found && acceptable(accept, found.media_type)) return found
    }
    throw new WharfError('MANIFEST_UNKNOWN', `manifest is ${row.media_type}, which the Accept header does not allow`, {
      mediaType: row.media_type,
    })
  }

  /** Listens to tags pushed and deleted (after they are committed); returns the unsubscribe function. */
  onTagChange(l: (e: TagEvent) => void): () => void {
    this.tagListeners.add(l)
    return () => this.tagListeners.delete(l)
  }

  private tagChanged(e: TagEvent): void {
    for (const l of this.tagListeners) l(e)
  }

  async put(
    name: RepoName,
    ref: Reference,
    body: Buffer,
    contentType: string | undefined,
    origin: PushOrigin = {},
    callerLevel?: CallerLevel,
  ): Promise<{ digest: Digest; subject?: string; warning?: string }> {
    const actor = origin.actor
    const parsed = parseManifest(body, contentType)
    const digest = digestOf(ref.kind === 'digest' ? ref.digest.algorithm : 'sha256', body)
    if (ref.kind === 'digest' && digest !== ref.digest.digest) {
      throw new WharfError('DIGEST_INVALID', 'manifest digest does not match the reference', { digest: ref.digest.digest, actual: digest })
    }
    // The project's repository and tag rules and its quota, read together (one round trip).
    const policy = await q.pushPolicy(this.db, name)
    // Asked once, and only when a rule applies (it costs a look-up).
    let asked: Promise<number> | undefined
    const levelOnce = callerLevel && (() => (asked ??= callerLevel()))
    await checkRepositoryRules(policy.repositoryRules, name, 'push', levelOnce)
    const job = ref.kind === 'tag' && origin.jobId !== undefined ? await this.ci?.job(origin.jobId) : undefined
    const rules = ref.kind === 'tag' ? policy.tagRules : []
    // Asked before the transaction: the level comes from other tables and must not wait on it.
    const level = rules.length > 0 && levelOnce ? await levelOnce() : Number.POSITIVE_INFINITY
    await this.db.transaction().execute(async (trx) => {
      if (ref.kind === 'tag' && rules.length > 0) {
        // Read in the transaction, so two pushes cannot both see an immutable tag as new.
        const refusal = tagRefusal(rules, ref.tag, { action: 'push', existing: await q.tagDigest(trx, name, ref.tag), digest }, level)
        if (refusal) throw new WharfError('DENIED', refusal, { tag: ref.tag })
      }
      const blobDigests = parsed.blobs.map((b) => b.digest)
      let { repositoryId, sizes } = await q.repositoryBlobSizes(trx, name, blobDigests)
      if (repositoryId === undefined) {
        repositoryId = await q.ensureRepository(trx, name)
        sizes = await q.linkedBlobSizes(trx, repositoryId, blobDigests)
      }
      for (const b of parsed.blobs) {
        const size = sizes.get(b.digest)
        if (size === undefined)
          throw new WharfError('MANIFEST_BLOB_UNKNOWN', 'manifest references a blob unknown to this repository', { digest: b.digest })
        if (size !== b.size)
          throw new WharfError('MANIFEST_INVALID', 'manifest invalid: descriptor size does not match the blob', {
            digest: b.digest,
            size: b.size,
            actual: size,
          })
      }
      const children = await q.existingManifestDigests(
        trx,
        repositoryId,
        parsed.manifests.map((m) => m.digest),
      )
      for (const m of parsed.manifests) {
        if (!children.has(m.digest))
          throw new WharfError('MANIFEST_BLOB_UNKNOWN', 'index references a manifest unknown to this repository', { digest: m.digest })
      }
      await q.storeManifest(
        trx,
        manifestRecord(repositoryId, digest, parsed, body),
        ref.kind === 'tag'
          ? {
              repository_id: repositoryId,
              tag: ref.tag,
              digest,
              actor: actor ?? null,
              job_id: origin.jobId ?? null,
              pipeline_id: job?.pipelineId ?? null,
              ref: job?.ref ?? null,
              ref_is_tag: job ? (job.refIsTag ? 1 : 0) : null,
              pushed_at: nowIso(),
            }
          : undefined,
      )
    })
    if (ref.kind === 'tag') {
      const size = body.length + parsed.blobs.reduce((n, b) => n + b.size, 0) + parsed.manifests.reduce((n, m) => n + m.size, 0)
      this.tagChanged({ action: 'push', repository: name, tag: ref.tag, digest, mediaType: parsed.mediaType, size, actor: actor ?? null })
    }
    // Over the project's soft quota the push still lands, with a warning; the usage is read now, after the commit.
    const warning = await this.quotas.softWarning(policy.quota)
    return { digest, ...(parsed.subject ? { subject: parsed.subject.digest } : {}), ...(warning ? { warning } : {}) }
  }

  /**
   * Stores a manifest fetched by the pull-through cache. Unlike a push, its blobs and children need
   * not be present yet (they are fetched when pulled); the bytes are still validated, and must hash
   * to `expected` when the upstream named a digest.
   */
  async cache(
    name: RepoName,
    tag: string | undefined,
    body: Buffer,
    contentType: string | undefined,
    expected: ParsedDigest | undefined,
  ): Promise<Digest> {
    const parsed = parseManifest(body, contentType)
    const digest = digestOf(expected?.algorithm ?? 'sha256', body)
    if (expected && digest !== expected.digest)
      throw new WharfError('DIGEST_INVALID', 'upstream manifest does not match its digest', { digest: expected.digest, actual: digest })
    await this.db.transaction().execute(async (trx) => {
      const repositoryId = await q.ensureRepository(trx, name)
      const manifestId = await q.upsertManifest(trx, manifestRecord(repositoryId, digest, parsed, body))
      if (tag !== undefined) await q.upsertTag(trx, repositoryId, tag, manifestId)
    })
    return digest
  }

  /** By tag: removes that tag only. By digest: removes the manifest and the tags pointing at it. */
  async delete(name: RepoName, ref: Reference, actor?: string, callerLevel?: CallerLevel): Promise<void> {
    await this.repositoryProtection.check(name, 'delete', callerLevel)
    const rules = await this.protection.forRepository(name)
    if (rules.length > 0) {
      const tags = ref.kind === 'tag' ? [ref.tag] : await q.tagsOnManifest(this.db, name, ref.digest.digest)
      await this.refuseDeletes(rules, tags, callerLevel)
    }
    const deleted =
      ref.kind === 'tag' ? await q.deleteTag(this.db, name, ref.tag) : await q.deleteManifest(this.db, name, ref.digest.digest)
    if (!deleted) throw await this.unknown(name, ref)
    if (ref.kind === 'tag')
      this.tagChanged({ action: 'delete', repository: name, tag: ref.tag, digest: null, mediaType: null, size: null, actor: actor ?? null })
  }

  async tags(name: RepoName, last: string | undefined, n: number | undefined): Promise<Page<string>> {
    const repositoryId = await q.findRepositoryId(this.db, name)
    if (repositoryId === undefined) throw new WharfError('NAME_UNKNOWN', 'repository name not known to registry', { name })
    return this.page(n, (limit) => q.listTags(this.db, repositoryId, last, limit))
  }

  /** Repository names in lexical order; `visible` filters out what the caller may not read. */
  async catalog(last: string | undefined, n: number | undefined, visible?: (name: string) => boolean): Promise<Page<string>> {
    if (!visible) return this.page(n, (limit) => q.listRepositories(this.db, last, limit))
    return this.page(n, async (limit) => {
      const out: string[] = []
      let after = last
      // Read ahead in batches until enough visible names are found or the table ends.
      for (;;) {
        const batch = await q.listRepositories(this.db, after, Math.max(limit * 2, 100))
        out.push(...batch.filter(visible))
        if (out.length >= limit || batch.length < Math.max(limit * 2, 100)) return out.slice(0, limit)
        after = batch.at(-1)
      }
    })
  }

  async referrers(name: RepoName, subject: ParsedDigest, artifactType: string | undefined) {
    const repositoryId = await q.findRepositoryId(this.db, name)
    const rows = repositoryId === undefined ? [] : await q.referrers(this.db, repositoryId, subject.digest, artifactType)
    return {
      schemaVersion: 2,
      mediaType: MEDIA_TYPES.ociIndex,
      manifests: rows.map((r) => ({
        mediaType: r.media_type,
        digest: r.digest,
        size: Number(r.size),
        ...(r.artifact_type ? { artifactType: r.artifact_type } : {}),
        ...(r.annotations ? { annotations: JSON.parse(r.annotations) as Record<string, string> } : {}),
      })),
    }
  }

  private async page(n: number | undefined, fetch: (limit: number) => Promise<string[]>): Promise<Page<string>> {
    const limit = Math.min(n ?? this.pageMax, this.pageMax)
    if (limit === 0) return { items: [] }
    const rows = await fetch(limit + 1)
    if (rows.length <= limit) return { items: rows }
    const items = rows.slice(0, limit)
    return { items, next: items.at(-1)! }
  }

  /** The 404 for a reference with no manifest: NAME_UNKNOWN when the repository itself does not exist. */
  async unknown(name: RepoName, ref: Reference | InvalidTag): Promise<WharfError> {
    if ((await q.findRepositoryId(this.db, name)) === undefined)
      return new WharfError('NAME_UNKNOWN', 'repository name not known to registry', { name })
    const detail = ref.kind === 'digest' ? { digest: ref.digest.digest } : { tag: ref.kind === 'tag' ? ref.tag : ref.text.slice(0, 200) }
    return new WharfError('MANIFEST_UNKNOWN', 'manifest unknown to registry', detail)
  }

  // ---- REST API (src/registry/api-routes.ts): a project's repositories and tags ----

  /** Repositories holding images at the project path or below it (`ns/proj`, `ns/proj/api`, ...). */
  /** A page of the repositories of a project (its own image and those below its path), by name. */
  pageRepositoriesUnder(projectPath: string, limit: number, offset: number) {
    return q.pageRepositoriesUnder(this.db, projectPath, limit, offset)
  }

  /** The tag names (by name) of each repository. */
  async tagsOf(repositoryIds: number[]): Promise<Map<number, string[]>> {
    const out = new Map<number, string[]>(repositoryIds.map((id) => [id, []]))
    for (const t of await q.tagsOf(this.db, repositoryIds)) out.get(t.repository_id)!.push(t.name)
    return out
  }

  findRepository(id: number) {
    return q.findRepository(this.db, id)
  }

  async tagPage(repositoryId: number, limit: number, offset: number): Promise<{ names: string[]; total: number }> {
    return { names: await q.tagPage(this.db, repositoryId, limit, offset), total: await q.countTags(this.db, repositoryId) }
  }

  /** A tag with its manifest digest, config digest and total size (manifest, config and layers). */
  async tagDetail(repositoryId: number, tag: string) {
    const row = await q.tagWithManifest(this.db, repositoryId, tag)
    if (!row) throw new WharfError('NOT_FOUND', 'Tag Not Found', { tag })
    const total = Number(row.size) + (await q.manifestTotalSize(this.db, repositoryId, row.manifest_id))
    return {
      name: row.name,
      digest: row.digest,
      mediaType: row.media_type,
      configDigest: row.config_digest,
      totalSize: total,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      platforms: indexPlatforms(row.content),
    }
  }

  /** Total compressed size of the distinct blobs each repository's tagged manifests reference (one query). */
  repositorySizes(repositoryIds: number[]) {
    return q.repositorySizes(this.db, repositoryIds)
  }

  /** Deletes exactly this tag. Other tags on the same manifest stay (the seed's registry deleted them all). */
  async deleteTagOnly(repository: { id: number; name: string }, tag: string, actor?: string, callerLevel?: CallerLevel): Promise<void> {
    await this.repositoryProtection.check(repository.name, 'delete', callerLevel)
    const rules = await this.protection.forRepository(repository.name)
    if (rules.length > 0) await this.refuseDeletes(rules, [tag], callerLevel)
    if (!(await q.deleteTagById(this.db, repository.id, tag))) throw new WharfError('NOT_FOUND', 'Tag Not Found', { tag })
    this.tagChanged({ action: 'delete', repository: repository.name, tag, digest: null, mediaType: null, size: null, actor: actor ?? null })
  }

  /**
   * GitLab's bulk tag delete: the tags the rules select (cleanup.ts), deleted in one transaction,
   * except those protection rules keep from a caller at `level`; how many went and how many stayed for that.
   */
  async deleteTagsMatching(
    repository: { id: number; name: string },
    rules: CleanupRules,
    level: number,
  ): Promise<{ deleted: number; protected: number }> {
    await this.repositoryProtection.check(repository.name, 'delete', async () => level)
    const protection = await this.protection.forRepository(repository.name)
    return this.db.transaction().execute(async (trx) => {
      const plan = bulkPlan(await q.tagAges(trx, repository.id), rules, protection, level)
      const deleted = await q.deleteTagsByName(
        trx,
        repository.id,
        plan.delete.map((t) => t.name),
      )
      return { deleted, protected: plan.keep.length }
    })
  }

  /** What deleteTagsMatching would do for a caller at `level`: the tags it deletes and those protection keeps, with why. */
  async previewTagsMatching(
    repository: { id: number; name: string },
    rules: CleanupRules,
    level: number,
  ): Promise<{ delete: PlannedTag[]; keep: PlannedTag[] }> {
    const plan = bulkPlan(await q.tagAges(this.db, repository.id), rules, await this.protection.forRepository(repository.name), level)
    const refusal = repositoryRefusal(await this.repositoryProtection.forRepository(repository.name), repository.name, 'delete', level)
    if (refusal) return { delete: [], keep: [...plan.delete, ...plan.keep].map((t) => ({ name: t.name, reason: refusal })) }
    return plan
  }

  private async refuseDeletes(rules: Awaited<ReturnType<TagProtection['forRepository']>>, tags: string[], callerLevel?: CallerLevel) {
    const level = callerLevel ? await callerLevel() : Number.POSITIVE_INFINITY
    for (const tag of tags) {
      const refusal = tagRefusal(rules, tag, { action: 'delete' }, level)
      if (refusal) throw new WharfError('DENIED', refusal, { tag })
    }
  }

  /**
   * Points a tag back at a manifest the repository still holds (a previous digest from its history):
   * a push of that manifest under the tag, so protection rules, quotas and the history apply as for
   * any push.
   */
  async retag(
    repository: { id: number; name: string },
    tag: string,
    digest: string,
    origin: PushOrigin,
    callerLevel: CallerLevel,
  ): Promise<void> {
    const row = await q.manifestByDigest(this.db, repository.name, digest)
    if (!row) throw new WharfError('NOT_FOUND', `manifest ${digest} is not in ${repository.name} any more`, { digest })
    const ref: Reference = { kind: 'tag', tag: parseTag(tag) }
    await this.put(parseRepoName(repository.name), ref, Buffer.from(row.content), row.media_type, origin, callerLevel)
  }

  /** A tag's pushes, newest first: who or which job pointed it at which digest, and when. */
  async tagHistory(repositoryId: number, tag: string, page: { limit: number; offset: number }) {
    const [rows, total] = await Promise.all([
      q.tagPushes(this.db, repositoryId, tag, page.limit, page.offset),
      q.countTagPushes(this.db, repositoryId, tag),
    ])
    return { rows, total }
  }

  /** Storage used by the repositories at or below a path (a project's or group's), or by all: deduplicated bytes (queries.ts). */
  storageUsed(path?: string): Promise<number> {
    return q.storageUsed(this.db, path)
  }

  /** Deletes a repository with all its tags and manifests; blobs are left to garbage collection. */
  async deleteRepository(repository: { id: number; name: string }, callerLevel?: CallerLevel): Promise<void> {
    await this.repositoryProtection.check(repository.name, 'delete', callerLevel)
    const repositoryId = repository.id
    if (!(await q.deleteRepositoryById(this.db, repositoryId))) throw new WharfError('NOT_FOUND', 'Repository Not Found', {})
  }
}

/** The tags a bulk delete selects (cleanup.ts), split into those it deletes and those protection rules keep from a caller at `level`. */
function bulkPlan(
  tags: readonly TagAge[],
  rules: CleanupRules,
  protection: RegistryTagRule[],
  level: number,
): { delete: PlannedTag[]; keep: PlannedTag[] } {
  const selected = tagsToDelete(tags, rules)
  const kept = undeletableTags(protection, selected, level)
  const why = [
    `matches name_regex_delete '${rules.nameRegexDelete}'`,
    ...(rules.nameRegexKeep ? [`not name_regex_keep '${rules.nameRegexKeep}'`] : []),
    ...(rules.keepN ? [`is not among the ${rules.keepN} newest`] : []),
    ...(rules.olderThan ? [`is older than ${rules.olderThan}`] : []),
  ].join(', ')
  return {
    delete: selected.filter((t) => !kept.has(t)).map((name) => ({ name, reason: why })),
    keep: [...kept].map((name) => ({ name, reason: 'protected: a tag protection rule keeps it from you' })),
  }
}

/** True when an Accept header (possibly several, comma-joined) admits the media type. No header admits all. */
export function acceptable(accept: string | undefined, mediaType: string): boolean {
  if (!accept || accept.trim() === '') return true
  for (const part of accept.split(',')) {
    const t = part.split(';')[0]!.trim().toLowerCase()
    if (t === mediaType || t === '*/*' || t === 'application/*') return true
  }
  return false
}

function manifestRecord(repositoryId: number, digest: string, parsed: ParsedManifest, body: Buffer): q.ManifestRecord {
  const configType = parsed.config?.mediaType
  return {
    repositoryId,
    digest,
    mediaType: parsed.mediaType,
    // spec (referrers): without artifactType, an image manifest's artifact type is its config's media type.
    artifactType: parsed.artifactType ?? (configType && configType !== EMPTY_CONFIG_TYPE ? configType : null),
    size: body.length,
    configDigest: parsed.config?.digest ?? null,
    subjectDigest: parsed.subject?.digest ?? null,
    annotations: parsed.annotations ? JSON.stringify(parsed.annotations) : null,
    content: body,
    references: [
      ...parsed.blobs.map((b) => ({ digest: b.digest, kind: 'blob' as const })),
      ...parsed.manifests.map((m) => ({ digest: m.digest, kind: 'manifest' as const })),
    ],
  }
}

/** The linux/amd64 child of an index, which clients that cannot read an index get (as from Docker Hub). */
export function defaultPlatformChild(row: Pick<Manifest, 'content'>): string | undefined {
  const doc = JSON.parse(Buffer.from(row.content).toString('utf8')) as {
    manifests?: Array<{ digest: string; platform?: { os?: string; architecture?: string } }>
  }
  return doc.manifests?.find((m) => m.platform?.os === 'linux' && m.platform?.architecture === 'amd64')?.digest
}

/** For an index / manifest list: its children's platforms ('os/arch[/variant]'), in order, without duplicates; else undefined. */
export function indexPlatforms(content: Uint8Array): string[] | undefined {
  let doc: { manifests?: Array<{ platform?: { os?: string; architecture?: string; variant?: string } }> }
  try {
    doc = JSON.parse(Buffer.from(content).toString('utf8'))
  } catch {
    return undefined
  }
  if (!Array.isArray(doc.manifests)) return undefined
  const out: string[] = []
  for (const m of doc.manifests) {
    const p = m.platform
    // Attestation manifests (buildx) carry unknown/unknown: not a platform.
    if (!p?.os || !p.architecture || p.os === 'unknown') continue
    const name = [p.os, p.architecture, p.variant].filter(Boolean).join('/')
    if (!out.includes(name)) out.push(name)
  }
  return out
}
