import { Type } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam, StringEnum } from '../api/schemas.ts'
import { atLeast } from '../auth/roles.ts'
import { WharfError } from '../core/errors.ts'
import type { TypedApp } from '../core/typed-app.ts'
import type { Project, Release, ReleaseLink, User } from '../metadata/schema.ts'
import type { Projects } from '../projects/index.ts'
import { RELEASE_LINK_TYPES } from './config/index.ts'
import type { Pipelines } from './pipelines.ts'
import { RELEASE_ORDER } from './release-queries.ts'
import { RELEASE_LIMITS, type LinkInput, type Releases } from './releases.ts'

// /api/v4/projects/:id/releases and .../assets/links in GitLab's paths, shapes and permissions:
// whoever sees the project reads (members down to Guest on a private one); Developers create, edit
// and delete. `:tag_name` is URL-encoded when it holds a `/`, as on GitLab.

export interface ReleaseRouteDeps {
  projects: Projects
  pipelines: Pipelines
  releases: Releases
  publicUrl: string
}

const TagParams = Type.Object({ id: Type.String(), tag_name: Type.String({ minLength: 1, maxLength: 255 }) })
const LinkParams = Type.Object({ id: Type.String(), tag_name: Type.String({ minLength: 1, maxLength: 255 }), link_id: Type.Integer() })
const ListQuery = Type.Object({
  ...PageQuery,
  order_by: Type.Optional(StringEnum(RELEASE_ORDER)),
  sort: Type.Optional(StringEnum(['asc', 'desc'] as const)),
})
const Name = Type.String({ maxLength: RELEASE_LIMITS.name })
const Description = Type.String({ maxLength: RELEASE_LIMITS.description })
const When = Type.String({ format: 'date-time' })
const LinkName = Type.String({ minLength: 1, maxLength: 255 })
const LinkUrl = Type.String({ minLength: 1, maxLength: 2048 })
const AssetPath = Type.String({ minLength: 1, maxLength: 1024 })
const LinkType = StringEnum(RELEASE_LINK_TYPES)
const LinkFields = {
  name: LinkName,
  url: LinkUrl,
  filepath: Type.Optional(AssetPath),
  direct_asset_path: Type.Optional(AssetPath),
  link_type: Type.Optional(LinkType),
}
const CreateBody = Body({
  tag_name: Type.String({ minLength: 1, maxLength: 255 }),
  name: Type.Optional(Name),
  description: Type.Optional(Description),
  ref: Type.Optional(Type.String({ minLength: 1, maxLength: 255 })),
  tag_message: Type.Optional(Type.String({ maxLength: 10_000 })),
  released_at: Type.Optional(When),
  assets: Type.Optional(Body({ links: Type.Optional(Type.Array(Body(LinkFields), { maxItems: RELEASE_LIMITS.links })) })),
})
const UpdateBody = Body({ name: Type.Optional(Name), description: Type.Optional(Description), released_at: Type.Optional(When) })
const CreateLinkBody = Body(LinkFields)
const UpdateLinkBody = Body({
  name: Type.Optional(LinkName),
  url: Type.Optional(LinkUrl),
  filepath: Type.Optional(AssetPath),
  direct_asset_path: Type.Optional(AssetPath),
  link_type: Type.Optional(LinkType),
})

type LinkBody = { name?: string; url?: string; filepath?: string; direct_asset_path?: string; link_type?: LinkInput['linkType'] }
const linkInput = (b: LinkBody): Partial<LinkInput> => ({
  ...(b.name !== undefined ? { name: b.name } : {}),
  ...(b.url !== undefined ? { url: b.url } : {}),
  ...((b.direct_asset_path ?? b.filepath) !== undefined ? { directAssetPath: b.direct_asset_path ?? b.filepath } : {}),
  ...(b.link_type !== undefined ? { linkType: b.link_type } : {}),
})

export async function releaseRoutes(app: TypedApp, deps: ReleaseRouteDeps): Promise<void> {
  const { projects, pipelines, releases, publicUrl } = deps

  /** The project, if the caller sees it (and has `role` when given). */
  const releaseProject = async (req: FastifyRequest, id: string, role?: 'developer'): Promise<Project> => {
    const { project, level } = await projects.projectFor(req.principal, id)
    if (role && !atLeast(level, role))
      throw new WharfError('FORBIDDEN', `this needs the ${role} role in ${project.full_path}`, { needs: role })
    return project
  }

  const userJson = (u: User | undefined) =>
    u ? { id: u.id, username: u.username, name: u.name, state: u.state, avatar_url: null, web_url: `${publicUrl}/${u.username}` } : null
  const webUrl = (project: Project) => `${publicUrl}/${project.full_path}`
  const linkJson = (project: Project, r: Release, l: ReleaseLink) => ({
    id: l.id,
    name: l.name,
    url: l.url,
    direct_asset_url:
      l.direct_asset_path === null
        ? l.url
        : `${webUrl(project)}/-/releases/${encodeURIComponent(r.tag_name)}/downloads${l.direct_asset_path}`,
    link_type: l.link_type,
  })
  const releaseJson = async (project: Project, r: Release, links: ReleaseLink[]) => {
    const tag = await releases.tag(project.id, r.tag_name)
    const c = tag?.commit
    const archive = (format: string) => ({
      format,
      url: `${publicUrl}/api/v4/projects/${project.id}/repository/archive.${format}?sha=${encodeURIComponent(r.tag_name)}`,
    })
    const sources = ['zip', 'tar.gz', 'tar'].map(archive)
    return {
      tag_name: r.tag_name,
      name: r.name,
      description: r.description,
      created_at: r.created_at,
      released_at: r.released_at,
      upcoming_release: Date.parse(r.released_at) > Date.now(),
      author: userJson(await pipelines.user(r.author_id)),
      commit: c
        ? {
            id: c.id,
            short_id: c.shortId,
            title: c.title,
            message: c.message,
            created_at: c.committedDate,
            parent_ids: c.parentIds,
            author_name: c.authorName,
            author_email: c.authorEmail,
            authored_date: c.authoredDate,
            committer_name: c.committerName,
            committer_email: c.committerEmail,
            committed_date: c.committedDate,
            web_url: `${webUrl(project)}/-/commit/${c.id}`,
          }
        : null,
      milestones: [],
      commit_path: `/${project.full_path}/-/commit/${r.sha}`,
      tag_path: `/${project.full_path}/-/tags/${encodeURIComponent(r.tag_name)}`,
      assets: {
        count: sources.length + links.length,
        sources,
        links: links.map((l) => linkJson(project, r, l)),
      },
      evidences: [],
      _links: { self: `${webUrl(project)}/-/releases/${encodeURIComponent(r.tag_name)}` },
    }
  }
  const oneRelease = async (project: Project, r: Release) => releaseJson(project, r, await releases.links([r.id]))

  app.get(
    '/projects/:id/releases',
    {
      schema: { summary: 'List releases, newest first', tags: ['releases'], params: IdParam, querystring: ListQuery },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await releaseProject(req, req.params.id)
      const page = pageOf(req.query)
      const { rows, total } = await releases.page(
        project.id,
        { orderBy: req.query.order_by ?? 'released_at', sort: req.query.sort ?? 'desc' },
        page,
      )
      setPageHeaders(req, reply, publicUrl, page, total)
      const links = await releases.links(rows.map((r) => r.id))
      return Promise.all(
        rows.map((r) =>
          releaseJson(
            project,
            r,
            links.filter((l) => l.release_id === r.id),
          ),
        ),
      )
    },
  )
  app.get(
    '/projects/:id/releases/:tag_name',
    { schema: { summary: 'Get a release', tags: ['releases'], params: TagParams }, config: { public: true } },
    async (req) => {
      const project = await releaseProject(req, req.params.id)
      return oneRelease(project, await releases.find(project.id, req.params.tag_name))
    },
  )
  app.post(
    '/projects/:id/releases',
    {
      schema: {
        summary: 'Create a release (and its tag from ref when missing; developer)',
        tags: ['releases'],
        params: IdParam,
        body: CreateBody,
      },
    },
    async (req, reply) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const b = req.body
      const r = await releases.create(
        project,
        {
          tagName: b.tag_name,
          name: b.name,
          description: b.description,
          ref: b.ref,
          tagMessage: b.tag_message,
          releasedAt: b.released_at,
          links: (b.assets?.links ?? []).map((l) => ({ name: l.name, url: l.url, ...linkInput(l) })),
        },
        { principal: req.principal, address: req.ip, log: req.log },
      )
      return reply.code(201).send(await oneRelease(project, r))
    },
  )
  app.put(
    '/projects/:id/releases/:tag_name',
    { schema: { summary: 'Edit a release (developer)', tags: ['releases'], params: TagParams, body: UpdateBody } },
    async (req) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const r = await releases.find(project.id, req.params.tag_name)
      const b = req.body ?? {}
      return oneRelease(project, await releases.update(r, { name: b.name, description: b.description, releasedAt: b.released_at }))
    },
  )
  app.delete(
    '/projects/:id/releases/:tag_name',
    { schema: { summary: 'Delete a release; the tag stays (developer)', tags: ['releases'], params: TagParams } },
    async (req) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const r = await releases.find(project.id, req.params.tag_name)
      const json = await oneRelease(project, r)
      await releases.remove(r)
      // GitLab answers 200 with the deleted release.
      return json
    },
  )

  app.get(
    '/projects/:id/releases/:tag_name/assets/links',
    {
      schema: { summary: "List a release's links", tags: ['releases'], params: TagParams, querystring: Type.Object(PageQuery) },
      config: { public: true },
    },
    async (req, reply) => {
      const project = await releaseProject(req, req.params.id)
      const r = await releases.find(project.id, req.params.tag_name)
      const page = pageOf(req.query)
      const { rows, total } = await releases.pageLinks(r, page)
      setPageHeaders(req, reply, publicUrl, page, total)
      return rows.map((l) => linkJson(project, r, l))
    },
  )
  app.get(
    '/projects/:id/releases/:tag_name/assets/links/:link_id',
    { schema: { summary: "Get a release's link", tags: ['releases'], params: LinkParams }, config: { public: true } },
    async (req) => {
      const project = await releaseProject(req, req.params.id)
      const r = await releases.find(project.id, req.params.tag_name)
      return linkJson(project, r, await releases.link(r, req.params.link_id))
    },
  )
  app.post(
    '/projects/:id/releases/:tag_name/assets/links',
    { schema: { summary: 'Add a link to a release (developer)', tags: ['releases'], params: TagParams, body: CreateLinkBody } },
    async (req, reply) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const r = await releases.find(project.id, req.params.tag_name)
      const b = req.body
      const l = await releases.addLink(r, { name: b.name, url: b.url, ...linkInput(b) })
      return reply.code(201).send(linkJson(project, r, l))
    },
  )
  app.put(
    '/projects/:id/releases/:tag_name/assets/links/:link_id',
    { schema: { summary: "Edit a release's link (developer)", tags: ['releases'], params: LinkParams, body: UpdateLinkBody } },
    async (req) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const r = await releases.find(project.id, req.params.tag_name)
      const l = await releases.link(r, req.params.link_id)
      return linkJson(project, r, await releases.updateLink(r, l, linkInput(req.body ?? {})))
    },
  )
  app.delete(
    '/projects/:id/releases/:tag_name/assets/links/:link_id',
    { schema: { summary: "Delete a release's link (developer)", tags: ['releases'], params: LinkParams } },
    async (req) => {
      const project = await releaseProject(req, req.params.id, 'developer')
      const r = await releases.find(project.id, req.params.tag_name)
      const l = await releases.link(r, req.params.link_id)
      await releases.removeLink(l)
      return linkJson(project, r, l)
    },
  )
}
