import type { Kysely } from 'kysely'
import * as ciq from '../ci/queries.ts'
import type { Pipelines } from '../ci/pipelines.ts'
import type { GitHosting, PushEvent } from '../git/service.ts'
import { principalName } from '../auth/principals.ts'
import type { Database, Project, User } from '../metadata/schema.ts'
import * as pq from '../projects/queries.ts'
import type { ProjectAccess } from '../projects/index.ts'
import * as uq from '../users/queries.ts'
import type { Manifests, TagEvent } from '../registry/manifests.ts'
import { jobPayload, pipelinePayload, pushPayload, registryPayload, userPayload, type ProjectContext } from './payloads.ts'
import * as q from './queries.ts'
import type { Webhooks } from './service.ts'

// Where webhook events come from: pushes (the durable push events: redelivery queues nothing twice),
// pipeline changes (every job or pipeline transition goes through Pipelines.advance; the last
// reported statuses are kept per pipeline, so each change is reported once, in order), and the
// registry's tag changes. Each source only queues rows; the sender delivers them later.

export interface HookSources {
  db: Kysely<Database>
  hooks: Webhooks
  projectAccess: ProjectAccess
  publicUrl: string
  registryHost: string
  git?: GitHosting | undefined
  pipelines?: Pipelines | undefined
  manifests: Manifests
  log: { warn(obj: object, msg: string): void }
}

interface Snapshot {
  pipeline: string
  jobs: Record<string, string>
}

/** Subscribes the webhooks to every event source; returns the unsubscribe function. */
export function connectHookSources(s: HookSources): () => void {
  const offs: Array<() => void> = []
  const context = async (project: Project): Promise<{ ctx: ProjectContext; groupIds: number[] }> => {
    const chain = await s.projectAccess.namespaceChain(project.namespace_id)
    const defaultBranch = (await s.git?.repos.defaultBranch(project.id)) ?? null
    return {
      ctx: { project, chain: [...chain].reverse(), publicUrl: s.publicUrl, defaultBranch },
      groupIds: chain.filter((n) => n.kind === 'group').map((n) => n.id),
    }
  }
  const wants = async (projectId: number, triggers: q.Trigger[]): Promise<{ project: Project; groupIds: number[] } | undefined> => {
    const project = await pq.findProject(s.db, projectId)
    if (!project) return undefined
    const chain = await s.projectAccess.namespaceChain(project.namespace_id)
    const groupIds = chain.filter((n) => n.kind === 'group').map((n) => n.id)
    for (const t of triggers) if (await s.hooks.wanted(project.id, groupIds, t)) return { project, groupIds }
    return undefined
  }
  const user = async (id: number | null): Promise<User | undefined> => (id === null ? undefined : uq.findUser(s.db, id))

  if (s.git) {
    const git = s.git
    // A failure is thrown back to the push event, which is then delivered again (enqueueing is idempotent).
    offs.push(
      git.onPush(async (e: PushEvent) => {
        if (!(await wants(e.projectId, ['push_events', 'tag_push_events']))) return
        const project = (await pq.findProject(s.db, e.projectId))!
        const { ctx, groupIds } = await context(project)
        const who = e.principal.kind === 'user' ? await uq.findUser(s.db, e.principal.userId) : undefined
        for (const [i, u] of e.updates.entries()) {
          if (u.type !== 'branch' && u.type !== 'tag') continue
          const kind = u.type === 'tag' ? 'tag_push' : 'push'
          const commits = await git.repos.newCommits(project.id, u, 20)
          const total = commits.length < 20 ? commits.length : await git.repos.commitCount(project.id, u)
          const payload = pushPayload(ctx, {
            kind,
            ref: u.ref,
            before: u.oldSha,
            after: u.newSha,
            commits,
            totalCommits: total,
            user: who,
            actorName: principalName(e.principal),
          })
          await s.hooks.enqueue({
            projectId: project.id,
            groupIds,
            trigger: kind === 'tag_push' ? 'tag_push_events' : 'push_events',
            eventKey: `push:${e.id}:${i}`,
            payload,
            branch: kind === 'push' ? u.name : undefined,
          })
        }
      }),
    )
  }

  if (s.pipelines) {
    const changed = async (pipelineId: number): Promise<void> => {
      const pipeline = await ciq.findPipeline(s.db, pipelineId)
      if (!pipeline) return
      const wanted = await wants(pipeline.project_id, ['pipeline_events', 'job_events'])
      if (!wanted) return
      const { ctx, groupIds } = await context(wanted.project)
      const commit = await s.git?.repos.commitInfo(wanted.project.id, pipeline.sha).catch(() => undefined)
      const by = userPayload(await user(pipeline.user_id))
      // One transaction: the statuses reported and the deliveries queued for them go together.
      await s.db.transaction().execute(async (trx) => {
        const p = (await ciq.findPipeline(trx, pipelineId))!
        const jobs = await ciq.pipelineJobs(trx, pipelineId)
        const before: Snapshot = JSON.parse((await q.pipelineStates(trx, pipelineId)) ?? '{"pipeline":"","jobs":{}}')
        const after: Snapshot = { pipeline: p.status, jobs: Object.fromEntries(jobs.map((j) => [String(j.id), j.status])) }
        for (const j of jobs) {
          if (before.jobs[String(j.id)] === j.status || j.status === 'created') continue
          await s.hooks.enqueue(
            {
              projectId: p.project_id,
              groupIds,
              trigger: 'job_events',
              eventKey: `job:${j.id}:${j.status}`,
              payload: jobPayload(ctx, p, j, commit, by),
            },
            trx,
          )
        }
        if (before.pipeline !== p.status) {
          await s.hooks.enqueue(
            {
              projectId: p.project_id,
              groupIds,
              trigger: 'pipeline_events',
              eventKey: `pipeline:${p.id}:${p.status}:${p.updated_at}`,
              payload: pipelinePayload(ctx, p, jobs, commit, by),
            },
            trx,
          )
        }
        await q.savePipelineStates(trx, pipelineId, JSON.stringify(after))
      })
    }
    // Changes of one pipeline are reported in order; different pipelines go on independently.
    const chains = new Map<number, Promise<void>>()
    offs.push(
      s.pipelines.onChange((pipelineId: number) => {
        const next = (chains.get(pipelineId) ?? Promise.resolve())
          .then(() => changed(pipelineId))
          .catch((err: unknown) => s.log.warn({ err, pipeline: pipelineId }, 'cannot queue pipeline webhooks'))
          .finally(() => {
            if (chains.get(pipelineId) === next) chains.delete(pipelineId)
          })
        chains.set(pipelineId, next)
      }),
    )
  }

  offs.push(
    s.manifests.onTagChange((e: TagEvent) => {
      void (async () => {
        const project = await q.projectWithRegistryHooks(s.db, pq.projectPathsOf(e.repository))
        if (!project) return
        const { ctx, groupIds } = await context(project)
        const payload = registryPayload(ctx, { ...e, registryHost: s.registryHost })
        const key = `registry:${e.action}:${e.repository}:${e.tag}:${e.digest ?? ''}:${Date.now()}`
        await s.hooks.enqueue({ projectId: project.id, groupIds, trigger: 'registry_events', eventKey: key, payload })
      })().catch((err: unknown) => s.log.warn({ err, repository: e.repository }, 'cannot queue registry webhooks'))
    }),
  )

  return () => {
    for (const off of offs) off()
  }
}
