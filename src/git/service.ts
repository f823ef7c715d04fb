import { randomUUID } from 'node:crypto'
import { readdir, readFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import type { Credentials } from '../auth/credentials.ts'
import { principalName, type Principal } from '../auth/principals.ts'
import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import { isPostgres } from '../metadata/db.ts'
import type { Database, Executor, Project } from '../metadata/schema.ts'
import { findProject, findProjectByPath } from '../projects/queries.ts'
import type { ProjectAccess } from '../projects/index.ts'
import { gitAccess, type GitAccess } from './access.ts'
import {
  acknowledgePushUpdate,
  claimPushEvent,
  countPushes,
  deleteDonePushEvents,
  insertPushEvent,
  listPushes,
  markPushEventDone,
  pendingPushEvents,
  PUSH_ACTION,
  recordPushEventFailure,
  releasePushEvent,
} from './queries.ts'
import { parseRefUpdates, type RefAction, type RefType } from './refs.ts'
import type { RefUpdate } from './refs.ts'
import { ADMIN_LEVEL, hookRules, ProtectedRefs } from './protected-refs.ts'
import { GitRepos } from './repos.ts'

/** What one push changed: delivered to every `onPush` listener once the push is complete. */
export interface PushEvent {
  /** The recorded event (push_events): delivered again until its listeners succeed. */
  id: number
  /**
   * Updates a listener already acknowledged in an earlier delivery (see PushAck): a listener that
   * acknowledges starts after them.
   */
  handled: number
  projectId: number
  /** The project's full path at the time of the push. */
  projectPath: string
  /** Who pushed (a user, or later a CI job). */
  principal: Principal
  /** Every ref the push created, moved or deleted, in the order git reported them. */
  updates: RefUpdate[]
  /** ISO 8601, when the push finished. */
  at: string
}

/** One ref update of a past push, as recorded. */
export interface PushRecord {
  id: number
  at: string
  actor: string
  userId: number | null
  ref: string
  type: RefType
  name: string
  action: RefAction
  before: string
  after: string
  commitCount: number
  commitTitle: string | null
}

/**
 * Marks `event.updates[index]` handled, in the caller's transaction (the one that stores what the
 * update produced), so that a redelivered event never produces it twice. Updates are
 * acknowledged in order; one already acknowledged throws CONFLICT, rolling the caller back.
 */
export type PushAck = (db: Executor, index: number) => Promise<void>

export type PushListener = (event: PushEvent, ack: PushAck) => void | Promise<void>

/**
 * How long a push's response waits for listeners (so a client that finished pushing finds the
 * pipeline already created); slower listeners go on in the background.
 */
export const LISTENER_WAIT_MS = 10_000
/**
 * How long a node's claim on delivering an event lasts (see publish): beyond the listeners' usual
 * time, so another node's sweep delivers it again only when this node died with it.
 */
const DELIVERY_CLAIM_MS = 5 * 60 * 1000
/** Later than any claim's end: every claim counts as ended. */
const LAST_INSTANT = '9999-12-31T23:59:59.999Z'
/** Failed deliveries of one event before it is given up (logged with its last error). */
export const PUSH_EVENT_ATTEMPTS = 10
/** Events redelivered per sweep. */
const REDELIVERY_BATCH = 100
/** Done events are kept this long (for inspection), then deleted. */
const DONE_EVENT_RETENTION_MS = 24 * 3600 * 1000
/** Beside each spool file: who pushed to which project (see pushSpool). */
const PUSHER_SUFFIX = '.pusher.json'
/** Beside each spool file: the protection rules the pre-receive hook applies to this pusher. */
const RULES_SUFFIX = '.rules'
/** A pusher file a node is recovering is renamed to `<pusher file><CLAIM_INFIX><uuid>`: one node wins the rename. */
const CLAIM_INFIX = '.claimed-'
/**
 * While a push runs, its node touches the pusher file this often; one untouched for SPOOL_STALE_MS
 * is a push whose node died (several nodes share the spool directory on the shared git root).
 */
const SPOOL_TOUCH_MS = 30_000
const SPOOL_STALE_MS = 4 * SPOOL_TOUCH_MS

/** Git hosting: which project a URL names, who may fetch or push, and the events pushes raise. */
export class GitHosting {
  readonly repos: GitRepos
  readonly db: Kysely<Database>
  readonly protectedRefs: ProtectedRefs
  private readonly projectAccess: ProjectAccess
  private readonly credentials: Credentials
  private readonly listeners = new Set<PushListener>()
  /** Events being delivered now: a sweep leaves them alone. */
  private readonly inFlight = new Set<number>()
  /** Pushes running on this node: their pusher files are kept fresh, so no node recovers them. */
  private readonly livePushes = new Map<string, NodeJS.Timeout>()

  constructor(deps: { repos: GitRepos; db: Kysely<Database>; projectAccess: ProjectAccess; credentials: Credentials }) {
    this.repos = deps.repos
    this.projectAccess = deps.projectAccess
    this.db = deps.db
    this.protectedRefs = new ProtectedRefs(this.db)
    this.credentials = deps.credentials
  }

  /** The server stops: pushes it ran no longer keep their spool files fresh (see recoverSpooled). */
  close(): void {
    for (const t of this.livePushes.values()) clearInterval(t)
    this.livePushes.clear()
  }

  /** Subscribes to push events; returns the unsubscribe function. A listener's error is logged, never fails a push. */
  onPush(listener: PushListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Basic credentials of a git request: passwords, PATs, deploy tokens and (registered with Credentials) job tokens. */
  authenticate(username: string, secret: string, address: string): Promise<Principal> {
    return this.credentials.authenticate(username, secret, address)
  }

  /** The project at a full path (any letter case). */
  findProject(fullPath: string): Promise<Project | undefined> {
    return findProjectByPath(this.db, fullPath)
  }

  findProjectById(id: number): Promise<Project | undefined> {
    return findProject(this.db, id)
  }

  /** The project's repository, created on first use (and never another project's: see GitRepos.ensure). */
  repository(project: Project): Promise<string> {
    return this.repos.ensure(project.id, GitRepos.ownerOf(project))
  }

  async access(p: Principal, project: Project | undefined): Promise<GitAccess> {
    return gitAccess(p, project && (await this.projectAccess.projectFacts(p, project)))
  }

  /**
   * The file the post-receive hook writes one push's ref updates to. Who pushes to which project
   * is written beside it first, so that updates a crash left unread are recorded at the next start.
   */
  async pushSpool(project: Project, principal: Principal): Promise<string> {
    const file = this.repos.spoolFile()
    const pusher = `${file}${PUSHER_SUFFIX}`
    // Live before the file exists: a recovery sweep of this process never takes it.
    const touch = setInterval(() => {
      const now = new Date()
      void utimes(pusher, now, now).catch(() => {})
    }, SPOOL_TOUCH_MS).unref()
    this.livePushes.set(file, touch)
    await writeFile(pusher, JSON.stringify({ projectId: project.id, principal }))
    await writeFile(
      this.pushRulesFile(file),
      hookRules(await this.protectedRefs.rules(project.id), await this.protectionLevel(principal, project)),
    )
    return file
  }

  /** The file (beside a push's spool file) with the protection rules its pre-receive hook applies. */
  pushRulesFile(spoolFile: string): string {
    return `${spoolFile}${RULES_SUFFIX}`
  }

  /** A principal's level for protection rules: administrators are above owners (GitLab's "Admins"). */
  async protectionLevel(principal: Principal, project: Project): Promise<number> {
    if (principal.kind === 'user' && principal.isAdmin) return ADMIN_LEVEL
    return (await this.projectAccess.levelOnProject(principal, project)) ?? 0
  }

  /**
   * Records the pushes whose spooled ref updates a crash left unread (the refs were updated; their
   * pipelines then come from redeliverPending). Called at start, before serving pushes, and with
   * every redelivery sweep. Pushes this process runs are never taken. On SQLite there is one node,
   * so every other push is a dead one; on PostgreSQL several nodes may share the spool directory
   * (on the shared git root), and only pushes whose pusher file went untouched for SPOOL_STALE_MS
   * are taken (their node died), each by one node: the one whose rename of the pusher file succeeds.
   */
  async recoverSpooled(log: FastifyBaseLogger): Promise<number> {
    let recovered = 0
    const names = new Set(await readdir(this.repos.spoolDir))
    const now = Date.now()
    const singleNode = !isPostgres(this.db)
    const stale = async (path: string) => {
      if (singleNode) return true
      const st = await stat(path).catch(() => undefined)
      return st !== undefined && now - st.mtimeMs > SPOOL_STALE_MS
    }
    for (const name of names) {
      if (this.livePushes.has(join(this.repos.spoolDir, name.split('.')[0]!))) continue
      const file = join(this.repos.spoolDir, name)
      const claimed = name.includes(`${PUSHER_SUFFIX}${CLAIM_INFIX}`)
      if (!name.endsWith(PUSHER_SUFFIX) && !claimed) {
        // Read with its pusher file below; without one (long enough to rule out a push starting or a
        // recovery under way), there is nothing to record it as.
        const spoolOf = name.endsWith(RULES_SUFFIX) ? name.slice(0, -RULES_SUFFIX.length) : name
        const pushers = [...names].some((n) => n.startsWith(`${spoolOf}${PUSHER_SUFFIX}`))
        if (!pushers && (await stale(file))) await rm(file, { force: true })
        continue
      }
      // A running push (fresh pusher file), or a recovery another node is making (a fresh claim).
      if (!(await stale(file))) continue
      const spool = file.slice(0, file.indexOf(PUSHER_SUFFIX))
      const claim = `${spool}${PUSHER_SUFFIX}${CLAIM_INFIX}${randomUUID()}`
      try {
        await rename(file, claim)
        const at = new Date()
        await utimes(claim, at, at)
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue // another node claimed it
        throw e
      }
      try {
        const { projectId, principal } = JSON.parse(await readFile(claim, 'utf8')) as { projectId: number; principal: Principal }
        const project = await findProject(this.db, projectId)
        const event = project && (await this.recordPush(project, principal, spool, log))
        if (event) {
          log.info(
            { project: event.projectPath, pushEvent: event.id, updates: event.updates.map((u) => `${u.action} ${u.ref}`) },
            'push recovered',
          )
          recovered++
        }
      } catch (err) {
        log.error({ err, file }, 'cannot recover spooled push')
      } finally {
        await rm(spool, { force: true })
        await rm(this.pushRulesFile(spool), { force: true })
        await rm(claim, { force: true })
      }
    }
    return recovered
  }

  /**
   * Reads the ref updates the post-receive hook spooled for one push, records the push event
   * (before the spooled file goes), records the push (audit log, default branch) and delivers the
   * event. Never throws: a failure here must not fail a push whose refs are already updated.
   */
  async completePush(
    project: Project,
    principal: Principal,
    spoolFile: string,
    address: string,
    log: FastifyBaseLogger,
  ): Promise<PushEvent | undefined> {
    let event: PushEvent | undefined
    try {
      event = await this.recordPush(project, principal, spoolFile, log)
    } catch (err) {
      log.error({ err, project: project.full_path }, 'cannot record push event')
    } finally {
      clearInterval(this.livePushes.get(spoolFile))
      this.livePushes.delete(spoolFile)
      await rm(spoolFile, { force: true })
      await rm(`${spoolFile}${PUSHER_SUFFIX}`, { force: true })
      await rm(this.pushRulesFile(spoolFile), { force: true })
    }
    if (!event) return undefined
    await this.announce(project, principal, event, address, log)
    return event
  }

  /**
   * Ref updates Wharf made itself (commits, branches and tags created through the API): recorded
   * and delivered exactly as a push's, so pipelines, audit rows and push events follow alike.
   */
  async recordRefUpdates(
    project: Project,
    principal: Principal,
    updates: RefUpdate[],
    address: string,
    log: FastifyBaseLogger,
  ): Promise<PushEvent> {
    const at = new Date().toISOString()
    const id = await insertPushEvent(this.db, {
      projectId: project.id,
      projectPath: project.full_path,
      principal: JSON.stringify(principal),
      updates: JSON.stringify(updates),
      at,
    })
    const event: PushEvent = { id, handled: 0, projectId: project.id, projectPath: project.full_path, principal, updates, at }
    await this.announce(project, principal, event, address, log)
    return event
  }

  /** What follows a recorded push: the default branch, the audit rows, the log line and the listeners. */
  private async announce(project: Project, principal: Principal, event: PushEvent, address: string, log: FastifyBaseLogger): Promise<void> {
    const { updates } = event
    try {
      const head = await this.repos.repairDefaultBranch(project.id, updates)
      if (head) log.info({ project: project.full_path, branch: head }, 'default branch set')
      for (const u of updates) {
        const detail = {
          ref: u.ref,
          type: u.type,
          name: u.name,
          action: u.action,
          before: u.oldSha,
          after: u.newSha,
          ...(await this.pushFacts(project.id, u)),
          ...(principal.kind === 'user' ? { userId: principal.userId } : {}),
        }
        await this.credentials.audit(principalName(principal), PUSH_ACTION, address, detail, `project:${project.id}`)
      }
    } catch (err) {
      log.error({ err, project: project.full_path }, 'cannot record push')
    }
    log.info({ project: project.full_path, updates: updates.map((u) => `${u.action} ${u.ref}`) }, 'push received')
    await this.publish(event, log)
  }

  /** The hook's file as a recorded event; undefined when no ref was updated (no hook ran, or the push failed). */
  private async recordPush(
    project: Project,
    principal: Principal,
    spoolFile: string,
    log: FastifyBaseLogger,
  ): Promise<PushEvent | undefined> {
    let text: string
    try {
      text = await readFile(spoolFile, 'utf8')
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw e
    }
    const { updates, rejected } = parseRefUpdates(text)
    if (rejected.length) log.warn({ rejected }, 'ignored malformed ref update lines')
    if (updates.length === 0) return undefined
    const at = new Date().toISOString()
    const id = await insertPushEvent(this.db, {
      projectId: project.id,
      projectPath: project.full_path,
      principal: JSON.stringify(principal),
      updates: JSON.stringify(updates),
      at,
    })
    return { id, handled: 0, projectId: project.id, projectPath: project.full_path, principal, updates, at }
  }

  /**
   * Delivers an event to every listener, waiting for them at most LISTENER_WAIT_MS. Once they all
   * succeed the event is done; a failure is logged and counted, and the event is delivered again
   * by `redeliverPending` (up to PUSH_EVENT_ATTEMPTS times). False when another node is delivering it.
   */
  async publish(event: PushEvent, log: FastifyBaseLogger): Promise<boolean> {
    // Several nodes sweep the same events: the one whose claim succeeds delivers. On SQLite this
    // process is the only node and never reaches here for an event it is delivering (inFlight), so a
    // claim still on the row is a dead process's (killed mid-delivery): it is taken at once.
    const now = Date.now()
    const claimsEndedBy = isPostgres(this.db) ? new Date(now).toISOString() : LAST_INSTANT
    if (!(await claimPushEvent(this.db, event.id, claimsEndedBy, new Date(now + DELIVERY_CLAIM_MS).toISOString()))) return false
    this.inFlight.add(event.id)
    const ack: PushAck = async (db, index) => {
      if (!(await acknowledgePushUpdate(db, event.id, index))) {
        throw new WharfError('CONFLICT', `update ${index} of push event ${event.id} was already handled`, { id: event.id, index })
      }
    }
    const runs = [...this.listeners].map(async (l): Promise<string | undefined> => {
      try {
        await l(event, ack)
        return undefined
      } catch (err) {
        log.error({ err, project: event.projectPath, pushEvent: event.id }, 'push listener failed')
        return err instanceof Error ? err.message : String(err)
      }
    })
    const all = Promise.all(runs)
      .then(async (errors) => {
        const failed = errors.filter((e) => e !== undefined)
        const at = new Date().toISOString()
        if (failed.length === 0) return markPushEventDone(this.db, event.id, at)
        const attempts = await recordPushEventFailure(this.db, event.id, failed.join('; ').slice(0, 2000), PUSH_EVENT_ATTEMPTS, at)
        if (attempts >= PUSH_EVENT_ATTEMPTS) log.error({ project: event.projectPath, pushEvent: event.id, attempts }, 'push event given up')
      })
      .then(() => releasePushEvent(this.db, event.id))
      .catch((err: unknown) => log.error({ err, pushEvent: event.id }, 'cannot record push event delivery'))
      .finally(() => this.inFlight.delete(event.id))
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<void>((r) => (timer = setTimeout(r, LISTENER_WAIT_MS).unref()))
    await Promise.race([all, timeout])
    clearTimeout(timer)
    return true
  }

  /**
   * Delivers again the events whose listeners failed or never ran (a crash between the push and
   * its pipeline): called at start-up and periodically. Also forgets events done long ago.
   */
  async redeliverPending(log: FastifyBaseLogger): Promise<number> {
    // Pushes another node died in the middle of become events first (with one node, its start did this).
    await this.recoverSpooled(log)
    let delivered = 0
    for (const row of await pendingPushEvents(this.db, REDELIVERY_BATCH)) {
      if (this.inFlight.has(row.id)) continue
      const event: PushEvent = {
        id: row.id,
        handled: row.handled,
        projectId: row.project_id,
        projectPath: row.project_path,
        principal: JSON.parse(row.principal) as Principal,
        updates: JSON.parse(row.updates) as RefUpdate[],
        at: row.at,
      }
      if (!(await this.publish(event, log))) continue
      log.info({ project: event.projectPath, pushEvent: event.id, attempts: row.attempts }, 'delivered push event again')
      delivered++
    }
    await deleteDonePushEvents(this.db, new Date(Date.now() - DONE_EVENT_RETENTION_MS).toISOString())
    return delivered
  }

  /** Recorded ref updates of a project's pushes, newest first (one entry per ref), and how many there are. */
  async pushHistory(projectId: number, opts: { limit: number; offset: number }): Promise<{ total: number; entries: PushRecord[] }> {
    const [total, rows] = await Promise.all([countPushes(this.db, projectId), listPushes(this.db, projectId, opts)])
    const entries = rows.flatMap((r): PushRecord[] => {
      const d = JSON.parse(r.detail ?? '{}') as Partial<PushRecord>
      if (!d.ref || !d.action) return []
      return [
        {
          id: r.id,
          at: r.at,
          actor: r.actor,
          userId: d.userId ?? null,
          ref: d.ref,
          type: d.type ?? 'other',
          name: d.name ?? d.ref,
          action: d.action,
          before: d.before ?? '',
          after: d.after ?? '',
          commitCount: d.commitCount ?? 0,
          commitTitle: d.commitTitle ?? null,
        },
      ]
    })
    return { total, entries }
  }

  private async pushFacts(projectId: number, u: RefUpdate): Promise<{ commitCount: number; commitTitle: string | null }> {
    if (u.action === 'delete') return { commitCount: 0, commitTitle: null }
    const [count, info] = await Promise.all([
      this.repos.commitCount(projectId, u),
      this.repos.commitInfo(projectId, u.newSha).catch(() => undefined),
    ])
    return { commitCount: count, commitTitle: info?.title ?? null }
  }
}
