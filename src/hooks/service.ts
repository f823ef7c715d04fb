import { randomUUID } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import type { Kysely } from 'kysely'
import { WharfError } from '../core/errors.ts'
import type { Sealer } from '../core/sealing.ts'
import type { Database, Webhook, WebhookDelivery } from '../metadata/schema.ts'
import { resolveTarget, type OutboundPolicy, type Target } from './outbound.ts'
import * as q from './queries.ts'
import type { HookOwner, Trigger } from './queries.ts'

export type { HookOwner, Trigger } from './queries.ts'

/** X-Gitlab-Event per trigger; registry events are Wharf's own (GitLab has none). */
export const EVENT_HEADER: Record<Trigger, string> = {
  push_events: 'Push Hook',
  tag_push_events: 'Tag Push Hook',
  pipeline_events: 'Pipeline Hook',
  job_events: 'Job Hook',
  registry_events: 'Registry Hook',
}
export const TRIGGERS = Object.keys(EVENT_HEADER) as Trigger[]

export interface WebhookOptions {
  outbound: OutboundPolicy
  /** A delivery with no complete response this long failed (GitLab: 10 s). */
  timeoutMs: number
  /** Attempts before a delivery is given up. */
  maxAttempts: number
  /** Wait before the second attempt; doubles each time, at most an hour. */
  retryBaseMs: number
  /** Deliveries in flight at once. */
  concurrency: number
  /** Sent as X-Gitlab-Instance. */
  instanceUrl: string
  userAgent: string
}

type Log = { warn(obj: object, msg: string): void; info(obj: object, msg: string): void }

export const DEFAULT_WEBHOOK_OPTIONS = { timeoutMs: 10_000, maxAttempts: 5, retryBaseMs: 10_000, concurrency: 4 } as const

export interface HookInput {
  url?: string | undefined
  name?: string | undefined
  description?: string | undefined
  token?: string | undefined
  push_events?: boolean | undefined
  push_events_branch_filter?: string | undefined
  tag_push_events?: boolean | undefined
  pipeline_events?: boolean | undefined
  job_events?: boolean | undefined
  registry_events?: boolean | undefined
  enable_ssl_verification?: boolean | undefined
}

/** What an event source hands over: which project, what happened, the payload, a key unique to the event. */
export interface HookEvent {
  projectId: number
  /** The project's namespace and every group above it (their hooks hear the project's events). */
  groupIds: number[]
  trigger: Trigger
  eventKey: string
  payload: object
  /** A push's branch, matched against push_events_branch_filter. */
  branch?: string | undefined
}

const RESPONSE_BODY_LIMIT = 16 * 1024
const RETENTION_MS = 7 * 86_400_000
const TICK_MS = 1000
/**
 * Deliveries are claimed row by row (a conditional update), so every node sends; a claim older than
 * the send timeout plus this grace (address resolution, recording the attempt) belongs to a sender
 * that died, and its delivery is sent again. Checked this often.
 */
const STALE_CLAIM_GRACE_MS = 60_000
const STALE_CLAIM_CHECK_MS = 30_000

const nowIso = () => new Date().toISOString()
const flag = (b: boolean | undefined) => (b === undefined ? undefined : b ? 1 : 0)

/** Project and group webhooks: settings, queued deliveries, and the sender that works through them. */
export class Webhooks {
  private readonly inflight = new Set<Promise<void>>()
  private timer: NodeJS.Timeout | undefined
  private ticking = false
  private closed = false
  private started = false
  private lastPrune = 0
  private lastStaleCheck = 0
  private log: Log | undefined
  private readonly db: Kysely<Database>
  private readonly sealer: Sealer
  readonly opts: WebhookOptions

  constructor(db: Kysely<Database>, sealer: Sealer, opts: WebhookOptions) {
    this.db = db
    this.sealer = sealer
    this.opts = opts
  }

  // ---- settings ----

  list(owner: HookOwner, page: { limit: number; offset: number }) {
    return q.pageHooks(this.db, owner, page)
  }

  async get(owner: HookOwner, id: number): Promise<Webhook> {
    const hook = await q.findHook(this.db, owner, id)
    if (!hook) throw new WharfError('NOT_FOUND', '404 Not Found', {})
    return hook
  }

  async create(owner: HookOwner, input: HookInput): Promise<Webhook> {
    if (!input.url) throw new WharfError('BAD_REQUEST', 'url is missing', { field: 'url' })
    await resolveTarget(input.url, this.opts.outbound)
    return q.insertHook(this.db, {
      ...('projectId' in owner ? { project_id: owner.projectId, group_id: null } : { project_id: null, group_id: owner.groupId }),
      url: input.url,
      token_sealed: input.token ? this.sealer.seal(input.token) : null,
      created_at: nowIso(),
      ...this.settings(input),
    })
  }

  async update(owner: HookOwner, id: number, input: HookInput): Promise<Webhook> {
    const hook = await this.get(owner, id)
    if (input.url !== undefined) await resolveTarget(input.url, this.opts.outbound)
    const set = {
      ...this.settings(input),
      ...(input.url !== undefined ? { url: input.url } : {}),
      ...(input.token !== undefined ? { token_sealed: input.token ? this.sealer.seal(input.token) : null } : {}),
    }
    if (Object.keys(set).length) await q.updateHook(this.db, hook.id, set)
    return this.get(owner, id)
  }

  async remove(owner: HookOwner, id: number): Promise<void> {
    const hook = await this.get(owner, id)
    await q.deleteHook(this.db, hook.id)
  }

  private settings(input: HookInput) {
    const out: Record<string, string | number> = {}
    for (const [k, v] of Object.entries({
      name: input.name,
      description: input.description,
      push_events_branch_filter: input.push_events_branch_filter,
      push_events: flag(input.push_events),
      tag_push_events: flag(input.tag_push_events),
      pipeline_events: flag(input.pipeline_events),
      job_events: flag(input.job_events),
      registry_events: flag(input.registry_events),
      enable_ssl_verification: flag(input.enable_ssl_verification),
    }))
      if (v !== undefined) out[k] = v
    return out
  }

  // ---- deliveries ----

  eventHeader(trigger: string): string {
    return EVENT_HEADER[trigger as Trigger] ?? trigger
  }

  deliveries(hook: Webhook, page: { limit: number; offset: number }) {
    return q.pageDeliveries(this.db, hook.id, page)
  }

  async resend(hook: Webhook, deliveryId: number): Promise<void> {
    const d = await q.findDelivery(this.db, hook.id, deliveryId)
    if (!d) throw new WharfError('NOT_FOUND', '404 Not Found', {})
    await q.resend(this.db, d.id, nowIso())
    this.wake()
  }

  /** Queues a test delivery of `trigger` with a sample payload (GitLab's "Test" button). */
  async test(hook: Webhook, trigger: Trigger, payload: object): Promise<void> {
    await q.insertDelivery(this.db, {
      hookId: hook.id,
      eventKey: `test:${randomUUID()}`,
      uuid: randomUUID(),
      trigger,
      payload: JSON.stringify(payload),
      at: nowIso(),
    })
    this.wake()
  }

  /** True when some hook of the project or its groups wants this trigger (event sources skip the work otherwise). */
  async wanted(projectId: number, groupIds: number[], trigger: Trigger): Promise<boolean> {
    return (await q.hooksFor(this.db, projectId, groupIds, trigger)).length > 0
  }

  /**
   * Queues one delivery per interested hook, in the caller's transaction when given. Only rows are
   * written: sending happens later, so an event source (a push) never waits on a receiver.
   */
  async enqueue(e: HookEvent, db: Kysely<Database> | Parameters<typeof q.insertDelivery>[0] = this.db): Promise<number> {
    const hooks = (await q.hooksFor(db, e.projectId, e.groupIds, e.trigger)).filter(
      (h) => e.branch === undefined || branchMatches(h.push_events_branch_filter, e.branch),
    )
    const at = nowIso()
    const payload = JSON.stringify(e.payload)
    for (const h of hooks)
      await q.insertDelivery(db, { hookId: h.id, eventKey: e.eventKey, uuid: randomUUID(), trigger: e.trigger, payload, at })
    if (hooks.length) this.wake()
    return hooks.length
  }

  // ---- the sender ----

  /** Starts sending queued deliveries (those a crashed sender left half-sent are due again). */
  async start(log?: Log): Promise<void> {
    this.log = log
    await this.requeueStale()
    this.started = true
    this.timer = setInterval(() => this.wake(), TICK_MS)
    this.timer.unref()
    this.wake()
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await Promise.allSettled([...this.inflight])
  }

  /** Sends what is due, up to the concurrency; called on a timer and whenever something is queued. */
  wake(): void {
    if (!this.started || this.closed || this.ticking) return
    this.ticking = true
    this.tick()
      .catch((err: unknown) => this.log?.warn({ err }, 'webhook sender failed'))
      .finally(() => {
        this.ticking = false
      })
  }

  /** Resolves once every queued delivery was delivered or given up (tests). */
  async idle(): Promise<void> {
    while ((await q.countOpenDeliveries(this.db)) > 0 || this.inflight.size > 0) {
      this.wake()
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  private async tick(): Promise<void> {
    const free = this.opts.concurrency - this.inflight.size
    if (free <= 0) return
    const now = nowIso()
    for (const d of await q.dueDeliveries(this.db, now, free)) {
      if (!(await q.claimDelivery(this.db, d.id, now))) continue
      const p: Promise<void> = this.send(d).finally(() => {
        this.inflight.delete(p)
        this.wake()
      })
      this.inflight.add(p)
    }
    if (Date.now() - this.lastStaleCheck > STALE_CLAIM_CHECK_MS) await this.requeueStale()
    if (Date.now() - this.lastPrune > 3_600_000) {
      this.lastPrune = Date.now()
      await q.pruneDeliveries(this.db, new Date(Date.now() - RETENTION_MS).toISOString())
    }
  }

  private async requeueStale(): Promise<void> {
    this.lastStaleCheck = Date.now()
    const n = await q.requeueStaleSending(
      this.db,
      nowIso(),
      new Date(Date.now() - this.opts.timeoutMs - STALE_CLAIM_GRACE_MS).toISOString(),
    )
    if (n) this.log?.info({ deliveries: n }, 'webhook deliveries whose sender stopped are due again')
  }

  private async send(d: WebhookDelivery): Promise<void> {
    const hook = await q.findHookById(this.db, d.hook_id)
    if (!hook) return // deleted meanwhile; its deliveries went with it
    const started = Date.now()
    let outcome: { status?: number; headers?: string; body?: string; error?: string }
    try {
      // Checked again at each attempt: the name may resolve elsewhere now.
      const target = await resolveTarget(hook.url, this.opts.outbound)
      const headers: Record<string, string> = {
        'Content-Type': 'application/json',
        'User-Agent': this.opts.userAgent,
        'X-Gitlab-Event': EVENT_HEADER[d.trigger as Trigger] ?? d.trigger,
        'X-Gitlab-Event-UUID': d.uuid,
        'X-Gitlab-Webhook-UUID': d.uuid,
        'X-Gitlab-Instance': this.opts.instanceUrl,
        'Idempotency-Key': d.uuid,
      }
      if (hook.token_sealed) headers['X-Gitlab-Token'] = this.sealer.open(hook.token_sealed)
      const res = await post(target, headers, d.payload, this.opts.timeoutMs, hook.enable_ssl_verification === 1)
      outcome = { status: res.status, headers: JSON.stringify(res.headers), body: res.body }
      if (res.status < 200 || res.status > 299) outcome.error = `the receiver answered ${res.status}`
    } catch (e) {
      outcome = { error: e instanceof Error ? e.message : String(e) }
    }
    const attempts = d.attempts + 1
    const ok = outcome.error === undefined
    const giveUp = !ok && attempts >= this.opts.maxAttempts
    const now = Date.now()
    await q.recordAttempt(this.db, d.id, {
      status: ok ? 'delivered' : giveUp ? 'failed' : 'pending',
      attempts,
      next_attempt_at: new Date(now + (ok || giveUp ? 0 : Math.min(this.opts.retryBaseMs * 2 ** (attempts - 1), 3_600_000))).toISOString(),
      response_status: outcome.status ?? null,
      response_headers: outcome.headers ?? null,
      response_body: outcome.body ?? null,
      error: outcome.error ?? null,
      duration_ms: now - started,
      updated_at: new Date(now).toISOString(),
    })
    if (!ok)
      this.log?.info(
        { hook: hook.id, delivery: d.id, attempts, error: outcome.error },
        giveUp ? 'webhook delivery given up' : 'webhook delivery failed; will retry',
      )
  }
}

/** GitLab's push_events_branch_filter: empty matches all; `*` wildcards; otherwise the exact name. */
export function branchMatches(filter: string, branch: string): boolean {
  if (!filter) return true
  if (!filter.includes('*')) return filter === branch
  const re = new RegExp(
    `^${filter
      .split('*')
      .map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  )
  return re.test(branch)
}

interface PostResult {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: string
}

/** One POST to the checked address (never a fresh lookup), no redirects followed, the whole exchange within `timeoutMs`. */
function post(target: Target, headers: Record<string, string>, body: string, timeoutMs: number, verifyTls: boolean): Promise<PostResult> {
  return new Promise((resolve, reject) => {
    const secure = target.url.protocol === 'https:'
    const req = (secure ? https : http).request(
      {
        method: 'POST',
        hostname: target.url.hostname.replace(/^\[|\]$/g, ''),
        port: target.url.port || (secure ? 443 : 80),
        path: `${target.url.pathname}${target.url.search}`,
        headers: { ...headers, 'Content-Length': String(Buffer.byteLength(body)) },
        lookup: (_host, opts, cb) => {
          if ((opts as { all?: boolean }).all)
            (cb as unknown as (e: null, a: Array<{ address: string; family: number }>) => void)(null, [
              { address: target.address, family: target.family },
            ])
          else cb(null, target.address, target.family)
        },
        rejectUnauthorized: verifyTls,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (c: Buffer) => {
          if (size < RESPONSE_BODY_LIMIT) chunks.push(c.subarray(0, RESPONSE_BODY_LIMIT - size))
          size += c.length
        })
        res.on('end', () => {
          clearTimeout(timer)
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
        })
        res.on('error', (e) => {
          clearTimeout(timer)
          reject(e)
        })
      },
    )
    const timer = setTimeout(() => req.destroy(new Error(`no response within ${timeoutMs / 1000} s`)), timeoutMs)
    req.on('error', (e) => {
      clearTimeout(timer)
      reject(e)
    })
    req.end(body)
  })
}
