import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, StringEnum } from '../api/schemas.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Groups, Projects } from '../projects/index.ts'
import type { Webhook, WebhookDelivery } from '../metadata/schema.ts'
import { samplePayload } from './samples.ts'
import { TRIGGERS, type HookOwner, type Webhooks } from './service.ts'

// GitLab's project and group webhooks (/projects/:id/hooks: maintainers; /groups/:id/hooks: owners),
// plus the recent deliveries (GitLab's webhook events: GET .../hooks/:hook_id/events, resend) and
// test deliveries (POST .../hooks/:hook_id/test/:trigger). The secret token is write-only.

export interface HookRouteDeps {
  hooks: Webhooks
  projects: Projects
  groups: Groups
  publicUrl: string
}

const HookFields = {
  url: Type.String({ minLength: 1, maxLength: 2048 }),
  name: Type.Optional(Type.String({ maxLength: 255 })),
  description: Type.Optional(Type.String({ maxLength: 2048 })),
  token: Type.Optional(Type.String({ maxLength: 255, description: 'sent as X-Gitlab-Token; never shown again' })),
  push_events: Type.Optional(Type.Boolean()),
  push_events_branch_filter: Type.Optional(Type.String({ maxLength: 255 })),
  tag_push_events: Type.Optional(Type.Boolean()),
  pipeline_events: Type.Optional(Type.Boolean()),
  job_events: Type.Optional(Type.Boolean()),
  registry_events: Type.Optional(Type.Boolean({ description: 'image tags pushed and deleted (Wharf extension)' })),
  enable_ssl_verification: Type.Optional(Type.Boolean()),
}
const CreateBody = Body(HookFields)
const UpdateBody = Body({ ...HookFields, url: Type.Optional(HookFields.url) })
const HookParams = Type.Object({ id: Type.String(), hook_id: Type.Integer() })
const TestParams = Type.Object({ id: Type.String(), hook_id: Type.Integer(), trigger: StringEnum(TRIGGERS) })
const EventParams = Type.Object({ id: Type.String(), hook_id: Type.Integer(), event_id: Type.Integer() })
const ListQuery = Type.Object({ ...PageQuery })

const Bool = Type.Boolean()
export const HookEntity = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  name: Type.String(),
  description: Type.String(),
  project_id: Type.Optional(Type.Integer()),
  group_id: Type.Optional(Type.Integer()),
  push_events: Bool,
  push_events_branch_filter: Type.String(),
  tag_push_events: Bool,
  pipeline_events: Bool,
  job_events: Bool,
  registry_events: Bool,
  merge_requests_events: Bool,
  issues_events: Bool,
  note_events: Bool,
  wiki_page_events: Bool,
  enable_ssl_verification: Bool,
  alert_status: Type.String(),
  disabled_until: Type.Null(),
  created_at: Type.String(),
})

const DeliveryEntity = Type.Object({
  id: Type.Integer(),
  url: Type.String(),
  trigger: Type.String(),
  status: Type.String(),
  attempts: Type.Integer(),
  request_headers: Type.Record(Type.String(), Type.String()),
  request_data: Type.Unknown(),
  response_headers: Type.Unknown(),
  response_body: Type.Union([Type.Null(), Type.String()]),
  response_status: Type.Union([Type.Null(), Type.Integer()]),
  execution_duration: Type.Union([Type.Null(), Type.Number()]),
  internal_error_message: Type.Union([Type.Null(), Type.String()]),
  created_at: Type.String(),
  updated_at: Type.String(),
})

export function hookJson(h: Webhook) {
  return {
    id: h.id,
    url: h.url,
    name: h.name,
    description: h.description,
    ...(h.project_id !== null ? { project_id: h.project_id } : { group_id: h.group_id! }),
    push_events: h.push_events === 1,
    push_events_branch_filter: h.push_events_branch_filter,
    tag_push_events: h.tag_push_events === 1,
    pipeline_events: h.pipeline_events === 1,
    job_events: h.job_events === 1,
    registry_events: h.registry_events === 1,
    // Events of GitLab features Wharf does not have: never sent.
    merge_requests_events: false,
    issues_events: false,
    note_events: false,
    wiki_page_events: false,
    enable_ssl_verification: h.enable_ssl_verification === 1,
    alert_status: 'executable',
    disabled_until: null,
    created_at: h.created_at,
  }
}

function deliveryJson(h: Webhook, d: WebhookDelivery, hooks: Webhooks) {
  return {
    id: d.id,
    url: h.url,
    trigger: d.trigger,
    status: d.status,
    attempts: d.attempts,
    request_headers: {
      'Content-Type': 'application/json',
      'X-Gitlab-Event': hooks.eventHeader(d.trigger),
      'X-Gitlab-Event-UUID': d.uuid,
      ...(h.token_sealed ? { 'X-Gitlab-Token': '[REDACTED]' } : {}),
    },
    request_data: JSON.parse(d.payload) as unknown,
    response_headers: d.response_headers ? (JSON.parse(d.response_headers) as unknown) : null,
    response_body: d.response_body,
    response_status: d.response_status,
    execution_duration: d.duration_ms === null ? null : d.duration_ms / 1000,
    internal_error_message: d.error,
    created_at: d.created_at,
    updated_at: d.updated_at,
  }
}

export async function hookRoutes(app: TypedApp, deps: HookRouteDeps): Promise<void> {
  const { hooks, projects, groups } = deps

  for (const scope of ['projects', 'groups'] as const) {
    const tag = scope === 'projects' ? 'project hooks' : 'group hooks'
    const role = scope === 'projects' ? 'maintainer' : 'owner'
    const who = scope === 'projects' ? 'maintainer' : 'owner'
    /** The hooks' owner behind `:id`, when the caller has the role; else 404/403 as for the project or group. */
    const ownerOf = async (req: FastifyRequest): Promise<HookOwner & { projectId?: number; groupId?: number }> => {
      const id = (req.params as { id: string }).id
      if (scope === 'projects') return { projectId: (await projects.projectFor(req.principal, id, role)).project.id }
      return { groupId: (await groups.groupFor(req.principal, id, role)).group.id }
    }
    const base = `/${scope}/:id/hooks`

    app.get(
      base,
      {
        schema: {
          summary: `List webhooks (${who})`,
          tags: [tag],
          params: Type.Object({ id: Type.String() }),
          querystring: ListQuery,
          'x-response': { 200: Type.Array(HookEntity) },
        },
      },
      async (req, reply) => {
        const owner = await ownerOf(req)
        const page = pageOf(req.query)
        const { rows, total } = await hooks.list(owner, page)
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map(hookJson)
      },
    )

    app.get(
      `${base}/:hook_id`,
      { schema: { summary: `Get a webhook (${who})`, tags: [tag], params: HookParams, 'x-response': { 200: HookEntity } } },
      async (req) => {
        return hookJson(await hooks.get(await ownerOf(req), req.params.hook_id))
      },
    )

    app.post(
      base,
      {
        schema: {
          summary: `Add a webhook (${who}); local-network targets are refused unless allowed`,
          tags: [tag],
          params: Type.Object({ id: Type.String() }),
          body: CreateBody,
          'x-response': { 201: HookEntity },
        },
      },
      async (req, reply) => {
        const hook = await hooks.create(await ownerOf(req), req.body)
        return reply.code(201).send(hookJson(hook))
      },
    )

    app.put(
      `${base}/:hook_id`,
      {
        schema: {
          summary: `Edit a webhook (${who})`,
          tags: [tag],
          params: HookParams,
          body: UpdateBody,
          'x-response': { 200: HookEntity },
        },
      },
      async (req) => {
        return hookJson(await hooks.update(await ownerOf(req), req.params.hook_id, req.body))
      },
    )

    app.delete(
      `${base}/:hook_id`,
      { schema: { summary: `Delete a webhook (${who})`, tags: [tag], params: HookParams } },
      async (req, reply) => {
        await hooks.remove(await ownerOf(req), req.params.hook_id)
        return reply.code(204).send()
      },
    )

    app.post(
      `${base}/:hook_id/test/:trigger`,
      {
        schema: {
          summary: `Send a test delivery of an event kind (${who})`,
          tags: [tag],
          params: TestParams,
          'x-response': { 201: Type.Object({ message: Type.String() }) },
        },
      },
      async (req, reply) => {
        const params = req.params
        const owner = await ownerOf(req)
        const hook = await hooks.get(owner, params.hook_id)
        await hooks.test(hook, params.trigger, samplePayload(params.trigger, deps.publicUrl))
        return reply.code(201).send({ message: '201 Created' })
      },
    )

    app.get(
      `${base}/:hook_id/events`,
      {
        schema: {
          summary: `Recent deliveries of a webhook, newest first, with the receiver's response (${who})`,
          tags: [tag],
          params: HookParams,
          querystring: ListQuery,
          'x-response': { 200: Type.Array(DeliveryEntity) },
        },
      },
      async (req, reply) => {
        const hook = await hooks.get(await ownerOf(req), req.params.hook_id)
        const page = pageOf(req.query)
        const { rows, total } = await hooks.deliveries(hook, page)
        setPageHeaders(req, reply, deps.publicUrl, page, total)
        return rows.map((d) => deliveryJson(hook, d, hooks))
      },
    )

    app.post(
      `${base}/:hook_id/events/:event_id/resend`,
      {
        schema: {
          summary: `Deliver a recent event again (${who})`,
          tags: [tag],
          params: EventParams,
          'x-response': { 201: Type.Object({ message: Type.String() }) },
        },
      },
      async (req, reply) => {
        const params = req.params
        const hook = await hooks.get(await ownerOf(req), params.hook_id)
        await hooks.resend(hook, params.event_id)
        return reply.code(201).send({ message: '201 Created' })
      },
    )
  }
}
