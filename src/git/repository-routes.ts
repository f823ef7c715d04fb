import { createHash } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { pageOf, PageQuery, setPageHeaders } from '../api/pagination.ts'
import { Body, IdParam, StringEnum } from '../api/schemas.ts'
import { WharfError } from '../core/errors.ts'
import type { Project } from '../metadata/schema.ts'
import type { Projects } from '../projects/service.ts'
import type { Users } from '../users/index.ts'
import { commitJson as commitJsonOf, readableRepository, writableRepository } from './api-access.ts'
import {
  archive,
  ARCHIVE_FORMATS,
  commitStats,
  compare,
  diff,
  fileInfo,
  listTree,
  logPage,
  streamBlob,
  type ArchiveFormat,
  type DiffEntry,
  type FileInfo,
} from './browse.ts'
import { FILE_ACTIONS, type FileAction } from './commits.ts'
import { RepositoryEditor, type EditContext } from './editor.ts'
import { checkTreePath } from './refs.ts'
import type { CommitInfo } from './repos.ts'
import type { GitHosting } from './service.ts'

// GitLab's repository API beyond branch and tag listings (registered inside gitApiRoutes, with its
// auth hook, error bodies and pagination headers):
//   GET  /projects/:id/repository/tree                      GET /projects/:id/repository/compare
//   GET|HEAD /projects/:id/repository/files/:file_path[/raw]  POST|PUT|DELETE …/files/:file_path
//   GET|POST /projects/:id/repository/commits               GET …/commits/:sha[/diff]
//   GET  /projects/:id/repository/archive[.format]          POST /projects/:id/repository/{branches,tags}
//   GET|DELETE /projects/:id/repository/tags/:tag_name      DELETE …/branches/:branch
// Reads need Reporter (or a public/internal project), writes Developer; the logic is in browse.ts,
// commits.ts and editor.ts.

export interface RepositoryRouteOptions {
  git: GitHosting
  projects: Projects
  users: Users
  publicUrl: string
}

/** JSON bodies carrying file contents may be larger than the API's default 1 MiB. */
export const FILE_BODY_LIMIT = 16 << 20

const Encoding = StringEnum(['text', 'base64'] as const, { description: 'how `content` is encoded (text by default)' })
const Author = {
  author_email: Type.Optional(Type.String({ maxLength: 255 })),
  author_name: Type.Optional(Type.String({ maxLength: 255 })),
}
const FileParams = Type.Object({ id: Type.String(), file_path: Type.String({ minLength: 1 }) })
const RefQuery = Type.Object({ ref: Type.String({ minLength: 1 }) })
const RawQuery = Type.Object({ ref: Type.Optional(Type.String({ minLength: 1 })), lfs: Type.Optional(Type.Boolean()) })
const FileWrite = {
  // python-gitlab repeats the path of the URL in the body.
  file_path: Type.Optional(Type.String()),
  branch: Type.String({ minLength: 1 }),
  start_branch: Type.Optional(Type.String({ minLength: 1 })),
  commit_message: Type.String({ minLength: 1 }),
  content: Type.String(),
  encoding: Type.Optional(Encoding),
  execute_filemode: Type.Optional(Type.Boolean()),
  ...Author,
}
const FileCreateBody = Body(FileWrite)
const FileUpdateBody = Body({ ...FileWrite, last_commit_id: Type.Optional(Type.String()) })
const FileDeleteFields = {
  file_path: Type.Optional(Type.String()),
  branch: Type.Optional(Type.String({ minLength: 1 })),
  start_branch: Type.Optional(Type.String({ minLength: 1 })),
  commit_message: Type.Optional(Type.String({ minLength: 1 })),
  last_commit_id: Type.Optional(Type.String()),
  ...Author,
}
// python-gitlab sends a DELETE's attributes in the query string, gitbeaker in the body; GitLab reads both.
const FileDeleteBody = Body(FileDeleteFields)
const FileDeleteQuery = Type.Object(FileDeleteFields)

const TreeQuery = Type.Object({
  ...PageQuery,
  ref: Type.Optional(Type.String({ minLength: 1 })),
  path: Type.Optional(Type.String()),
  recursive: Type.Optional(Type.Boolean()),
})
const CommitsQuery = Type.Object({
  ...PageQuery,
  ref_name: Type.Optional(Type.String({ minLength: 1 })),
  path: Type.Optional(Type.String({ minLength: 1 })),
  since: Type.Optional(Type.String()),
  until: Type.Optional(Type.String()),
  first_parent: Type.Optional(Type.Boolean()),
  with_stats: Type.Optional(Type.Boolean()),
  all: Type.Optional(Type.Boolean()),
  trailers: Type.Optional(Type.Boolean()),
})
const ShaParams = Type.Object({ id: Type.String(), sha: Type.String({ minLength: 1 }) })
const CommitQuery = Type.Object({ stats: Type.Optional(Type.Boolean()) })
const CommitAction = Type.Object(
  {
    action: StringEnum(FILE_ACTIONS),
    file_path: Type.String({ minLength: 1 }),
    previous_path: Type.Optional(Type.String({ minLength: 1 })),
    content: Type.Optional(Type.String()),
    encoding: Type.Optional(Encoding),
    last_commit_id: Type.Optional(Type.String()),
    execute_filemode: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
)
const CreateCommitBody = Body({
  branch: Type.String({ minLength: 1 }),
  commit_message: Type.String({ minLength: 1 }),
  start_branch: Type.Optional(Type.String({ minLength: 1 })),
  start_sha: Type.Optional(Type.String()),
  actions: Type.Array(CommitAction, { minItems: 1 }),
  force: Type.Optional(Type.Boolean()),
  stats: Type.Optional(Type.Boolean()),
  ...Author,
})
const CompareQuery = Type.Object({
  from: Type.String({ minLength: 1 }),
  to: Type.String({ minLength: 1 }),
  straight: Type.Optional(Type.Boolean()),
  from_project_id: Type.Optional(Type.Integer()),
})
const ArchiveParams = Type.Object({ id: Type.String(), format: Type.String() })
const ArchiveQuery = Type.Object({ sha: Type.Optional(Type.String({ minLength: 1 })), path: Type.Optional(Type.String({ minLength: 1 })) })
const BranchFields = { branch: Type.Optional(Type.String({ minLength: 1 })), ref: Type.Optional(Type.String({ minLength: 1 })) }
const BranchParams = Type.Object({ id: Type.String(), branch: Type.String({ minLength: 1 }) })
const TagFields = {
  tag_name: Type.Optional(Type.String({ minLength: 1 })),
  ref: Type.Optional(Type.String({ minLength: 1 })),
  message: Type.Optional(Type.String()),
}
const TagParams = Type.Object({ id: Type.String(), tag_name: Type.String({ minLength: 1 }) })

export async function repositoryRoutes(app: FastifyInstance, opts: RepositoryRouteOptions): Promise<void> {
  const { git, projects } = opts
  const publicUrl = opts.publicUrl.replace(/\/$/, '')
  const editor = new RepositoryEditor({ git, users: opts.users, publicUrl })
  const readable = (req: FastifyRequest) => readableRepository(git, projects, req)
  const writable = (req: FastifyRequest) => writableRepository(git, projects, req)
  const commitJson = (project: Project, c: CommitInfo) => commitJsonOf(publicUrl, project, c)
  const ctx = (req: FastifyRequest): EditContext => ({ principal: req.principal, address: req.ip, log: req.log })
  const signalOf = (reply: FastifyReply) => {
    const ac = new AbortController()
    reply.raw.once('close', () => ac.abort())
    return ac.signal
  }

  /** A ref (branch, tag or full commit id) to its commit; 404 as GitLab when it names nothing. */
  async function commitOf(project: Project, ref: string | undefined, what = 'Commit'): Promise<string> {
    const name = ref ?? (await git.repos.defaultBranch(project.id))
    const sha =
      name === undefined
        ? undefined
        : await git.repos
            .resolveRef(project.id, name)
            .catch((e: unknown) => (e instanceof WharfError && e.code === 'BAD_REQUEST' ? undefined : Promise.reject(e)))
    if (!sha) throw new WharfError('NOT_FOUND', `${what} Not Found`, { ref: ref ?? null })
    return sha
  }

  async function fileAt(project: Project, ref: string | undefined, path: string): Promise<FileInfo> {
    checkTreePath(path)
    const info = await fileInfo(git.repos, project.id, await commitOf(project, ref), path)
    if (!info) throw new WharfError('NOT_FOUND', 'File Not Found', { file_path: path })
    return info
  }

  function fileHeaders(reply: FastifyReply, ref: string, f: FileInfo): void {
    reply.header('X-Gitlab-Blob-Id', f.blobId)
    reply.header('X-Gitlab-Commit-Id', f.commitId)
    reply.header('X-Gitlab-Encoding', 'base64')
    reply.header('X-Gitlab-Execute-Filemode', String(f.executeFilemode))
    reply.header('X-Gitlab-File-Name', encodeURIComponent(f.fileName))
    reply.header('X-Gitlab-File-Path', encodeURIComponent(f.filePath))
    reply.header('X-Gitlab-Last-Commit-Id', f.lastCommitId)
    reply.header('X-Gitlab-Ref', encodeURIComponent(ref))
    reply.header('X-Gitlab-Size', String(f.size))
  }

  const fileSummary = {
    summary: 'A file in the repository: metadata and base64 content (HEAD: metadata as X-Gitlab-* headers)',
    tags: ['repository'],
    params: FileParams,
    querystring: RefQuery,
  }
  app.get('/projects/:id/repository/files/:file_path', { schema: fileSummary, config: { public: true } }, async (req, reply) => {
    const { project } = await readable(req)
    const { file_path: path } = req.params as Static<typeof FileParams>
    const { ref } = req.query as Static<typeof RefQuery>
    const f = await fileAt(project, ref, path)
    const content = await git.repos.readFile(project.id, f.commitId, path)
    if (!content) throw new WharfError('NOT_FOUND', 'File Not Found', { file_path: path })
    const sha256 = createHash('sha256').update(content).digest('hex')
    fileHeaders(reply, ref, f)
    reply.header('X-Gitlab-Content-Sha256', sha256)
    return {
      file_name: f.fileName,
      file_path: f.filePath,
      size: f.size,
      encoding: 'base64',
      content_sha256: sha256,
      ref,
      blob_id: f.blobId,
      commit_id: f.commitId,
      last_commit_id: f.lastCommitId,
      execute_filemode: f.executeFilemode,
      content: content.toString('base64'),
    }
  })
  app.head('/projects/:id/repository/files/:file_path', { schema: fileSummary, config: { public: true } }, async (req, reply) => {
    const { project } = await readable(req)
    const { file_path: path } = req.params as Static<typeof FileParams>
    const { ref } = req.query as Static<typeof RefQuery>
    const f = await fileAt(project, ref, path)
    // Hashed as a stream: a HEAD never holds a large file in memory.
    const hash = createHash('sha256')
    for await (const chunk of await streamBlob(git.repos, project.id, f.blobId, signalOf(reply))) hash.update(chunk as Buffer)
    fileHeaders(reply, ref, f)
    reply.header('X-Gitlab-Content-Sha256', hash.digest('hex'))
    return reply.code(200).send()
  })

  app.get(
    '/projects/:id/repository/files/:file_path/raw',
    {
      schema: {
        summary: 'A file in the repository, raw (streamed); ref defaults to the default branch',
        tags: ['repository'],
        params: FileParams,
        querystring: RawQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const { file_path: path } = req.params as Static<typeof FileParams>
      const { ref } = req.query as Static<typeof RawQuery>
      const f = await fileAt(project, ref, path)
      const stream = await streamBlob(git.repos, project.id, f.blobId, signalOf(reply))
      fileHeaders(reply, ref ?? f.commitId, f)
      // GitLab sends text as text/plain; a NUL early in the file means binary, as git decides.
      const first = (await peek(stream)) ?? Buffer.alloc(0)
      reply.header('Content-Type', first.subarray(0, 8000).includes(0) ? 'application/octet-stream' : 'text/plain; charset=utf-8')
      reply.header('Content-Length', String(f.size))
      reply.header(
        'Content-Disposition',
        `inline; filename="${f.fileName.replace(/["\\\r\n]/g, '_')}"; filename*=UTF-8''${encodeURIComponent(f.fileName)}`,
      )
      reply.header('X-Content-Type-Options', 'nosniff')
      return reply.send(stream)
    },
  )

  async function decode(content: string, encoding: 'text' | 'base64' | undefined): Promise<Buffer> {
    if (encoding !== 'base64') return Buffer.from(content, 'utf8')
    if (!/^[A-Za-z0-9+/\s]*=*\s*$/.test(content)) throw new WharfError('BAD_REQUEST', 'content is not valid base64', {})
    return Buffer.from(content, 'base64')
  }

  const writeSchema = (summary: string, body: typeof FileCreateBody | typeof FileUpdateBody) => ({
    summary,
    tags: ['repository'],
    params: FileParams,
    body,
  })
  app.post(
    '/projects/:id/repository/files/:file_path',
    { schema: writeSchema('Create a file (a commit on a branch)', FileCreateBody), bodyLimit: FILE_BODY_LIMIT },
    async (req, reply) => {
      const { project } = await writable(req)
      const { file_path: path } = req.params as Static<typeof FileParams>
      const b = req.body as Static<typeof FileCreateBody>
      const content = await decode(b.content, b.encoding)
      await editor.commit(
        project,
        {
          branch: b.branch,
          startBranch: b.start_branch,
          message: b.commit_message,
          authorName: b.author_name,
          authorEmail: b.author_email,
          actions: [{ action: 'create', filePath: path, content, executeFilemode: b.execute_filemode }],
        },
        ctx(req),
      )
      return reply.code(201).send({ file_path: path, branch: b.branch })
    },
  )
  app.put(
    '/projects/:id/repository/files/:file_path',
    {
      schema: writeSchema('Update a file (a commit on a branch); last_commit_id refuses a file changed since', FileUpdateBody),
      bodyLimit: FILE_BODY_LIMIT,
    },
    async (req) => {
      const { project } = await writable(req)
      const { file_path: path } = req.params as Static<typeof FileParams>
      const b = req.body as Static<typeof FileUpdateBody>
      const content = await decode(b.content, b.encoding)
      await editor.commit(
        project,
        {
          branch: b.branch,
          startBranch: b.start_branch,
          message: b.commit_message,
          authorName: b.author_name,
          authorEmail: b.author_email,
          actions: [{ action: 'update', filePath: path, content, executeFilemode: b.execute_filemode, lastCommitId: b.last_commit_id }],
        },
        ctx(req),
      )
      return { file_path: path, branch: b.branch }
    },
  )
  app.delete(
    '/projects/:id/repository/files/:file_path',
    {
      schema: {
        summary: 'Delete a file (a commit on a branch); attributes in the body or the query string',
        tags: ['repository'],
        params: FileParams,
        querystring: FileDeleteQuery,
        body: FileDeleteBody,
      },
    },
    async (req, reply) => {
      const { project } = await writable(req)
      const { file_path: path } = req.params as Static<typeof FileParams>
      const b = { ...(req.query as Static<typeof FileDeleteQuery>), ...(req.body as Static<typeof FileDeleteBody>) }
      if (!b.branch) throw new WharfError('BAD_REQUEST', 'branch is missing', {})
      if (!b.commit_message) throw new WharfError('BAD_REQUEST', 'commit_message is missing', {})
      await editor.commit(
        project,
        {
          branch: b.branch,
          startBranch: b.start_branch,
          message: b.commit_message,
          authorName: b.author_name,
          authorEmail: b.author_email,
          actions: [{ action: 'delete', filePath: path, lastCommitId: b.last_commit_id }],
        },
        ctx(req),
      )
      return reply.code(204).send()
    },
  )

  app.get(
    '/projects/:id/repository/tree',
    {
      schema: {
        summary: 'List a directory of the repository (recursive: everything below it)',
        tags: ['repository'],
        params: IdParam,
        querystring: TreeQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const q = req.query as Static<typeof TreeQuery>
      const page = pageOf(q)
      const path = (q.path ?? '').replace(/^\/+|\/+$/g, '')
      // An empty repository has an empty tree, as GitLab answers.
      if (q.ref === undefined && (await git.repos.defaultBranch(project.id)) === undefined) {
        setPageHeaders(req, reply, publicUrl, page, 0)
        return []
      }
      const listed = await listTree(git.repos, project.id, await commitOf(project, q.ref, 'Tree'), path, q.recursive ?? false, page)
      if (!listed) throw new WharfError('NOT_FOUND', 'Tree Not Found', { path })
      setPageHeaders(req, reply, publicUrl, page, listed.total)
      return listed.rows
    },
  )

  async function commitDetail(project: Project, c: CommitInfo, withStats: boolean) {
    return {
      ...commitJson(project, c),
      ...(withStats ? { stats: await commitStats(git.repos, project.id, c.id) } : {}),
      status: null,
      last_pipeline: null,
      project_id: project.id,
    }
  }

  app.get(
    '/projects/:id/repository/commits',
    {
      schema: {
        summary: 'List commits of a ref (the default branch when none), newest first',
        tags: ['repository'],
        params: IdParam,
        querystring: CommitsQuery,
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const q = req.query as Static<typeof CommitsQuery>
      const page = pageOf(q)
      if (q.ref_name === undefined && (await git.repos.defaultBranch(project.id)) === undefined) {
        setPageHeaders(req, reply, publicUrl, page, 0)
        return []
      }
      const from = await commitOf(project, q.ref_name)
      const { rows, total } = await logPage(
        git.repos,
        project.id,
        { from, path: q.path, since: q.since, until: q.until, firstParent: q.first_parent },
        page,
      )
      setPageHeaders(req, reply, publicUrl, page, total)
      return Promise.all(rows.map(async (c) => (q.with_stats ? commitDetail(project, c, true) : commitJson(project, c))))
    },
  )

  app.get(
    '/projects/:id/repository/commits/:sha',
    {
      schema: {
        summary: 'A commit (by id, branch or tag), with its stats',
        tags: ['repository'],
        params: ShaParams,
        querystring: CommitQuery,
      },
      config: { public: true },
    },
    async (req) => {
      const { project } = await readable(req)
      const sha = await commitOf(project, (req.params as Static<typeof ShaParams>).sha)
      const c = await git.repos.commitInfo(project.id, sha)
      if (!c) throw new WharfError('NOT_FOUND', 'Commit Not Found', {})
      return commitDetail(project, c, (req.query as Static<typeof CommitQuery>).stats ?? true)
    },
  )

  const diffJson = (d: DiffEntry) => ({
    diff: d.diff,
    new_path: d.newPath,
    old_path: d.oldPath,
    a_mode: d.aMode,
    b_mode: d.bMode,
    new_file: d.newFile,
    renamed_file: d.renamedFile,
    deleted_file: d.deletedFile,
    generated_file: null,
  })
  app.get(
    '/projects/:id/repository/commits/:sha/diff',
    {
      schema: {
        summary: "A commit's diff against its first parent",
        tags: ['repository'],
        params: ShaParams,
        querystring: Type.Object(PageQuery),
      },
      config: { public: true },
    },
    async (req, reply) => {
      const { project } = await readable(req)
      const sha = await commitOf(project, (req.params as Static<typeof ShaParams>).sha)
      const c = await git.repos.commitInfo(project.id, sha)
      if (!c) throw new WharfError('NOT_FOUND', 'Commit Not Found', {})
      // A root commit is compared with git's empty tree.
      const base =
        c.parentIds[0] ??
        (await git.repos.git(project.id, ['hash-object', '-t', 'tree', '--stdin'], { input: '' })).stdout.toString('utf8').trim()
      const all = await diff(git.repos, project.id, base, c.id)
      const page = pageOf(req.query as { page?: number; per_page?: number })
      setPageHeaders(req, reply, publicUrl, page, all.length)
      return all.slice(page.offset, page.offset + page.limit).map(diffJson)
    },
  )

  app.post(
    '/projects/:id/repository/commits',
    {
      schema: {
        summary: 'Create a commit of file actions (create, update, delete, move, chmod)',
        tags: ['repository'],
        params: IdParam,
        body: CreateCommitBody,
      },
      bodyLimit: FILE_BODY_LIMIT,
    },
    async (req, reply) => {
      const { project } = await writable(req)
      const b = req.body as Static<typeof CreateCommitBody>
      const actions: FileAction[] = []
      for (const a of b.actions) {
        actions.push({
          action: a.action,
          filePath: a.file_path,
          previousPath: a.previous_path,
          content: a.content === undefined ? undefined : await decode(a.content, a.encoding),
          executeFilemode: a.execute_filemode,
          lastCommitId: a.last_commit_id,
        })
      }
      const { sha } = await editor.commit(
        project,
        {
          branch: b.branch,
          startBranch: b.start_branch,
          startSha: b.start_sha,
          force: b.force,
          message: b.commit_message,
          authorName: b.author_name,
          authorEmail: b.author_email,
          actions,
        },
        ctx(req),
      )
      const c = await git.repos.commitInfo(project.id, sha)
      return reply.code(201).send(await commitDetail(project, c!, b.stats ?? true))
    },
  )

  app.get(
    '/projects/:id/repository/compare',
    {
      schema: {
        summary: 'Compare two refs: the commits of `to` not in `from` and the diff',
        tags: ['repository'],
        params: IdParam,
        querystring: CompareQuery,
      },
      config: { public: true },
    },
    async (req) => {
      const { project } = await readable(req)
      const q = req.query as Static<typeof CompareQuery>
      if (q.from_project_id !== undefined && q.from_project_id !== project.id)
        throw new WharfError('BAD_REQUEST', 'comparing across projects is not supported', {})
      const [from, to] = [await commitOf(project, q.from, 'Ref'), await commitOf(project, q.to, 'Ref')]
      const result = await compare(git.repos, project.id, from, to, q.straight ?? false)
      const last = result.commits.at(-1)
      return {
        commit: last ? commitJson(project, last) : null,
        commits: result.commits.map((c) => commitJson(project, c)),
        diffs: result.diffs.map(diffJson),
        compare_timeout: false,
        compare_same_ref: from === to,
        web_url: `${publicUrl}/${project.full_path}/-/compare/${from}...${to}`,
      }
    },
  )

  async function sendArchive(req: FastifyRequest, reply: FastifyReply, format: string) {
    const { project } = await readable(req)
    if (!(format in ARCHIVE_FORMATS))
      throw new WharfError('NOT_FOUND', `unknown archive format ${format.slice(0, 20)}; use ${Object.keys(ARCHIVE_FORMATS).join(', ')}`, {})
    const q = req.query as Static<typeof ArchiveQuery>
    const sha = await commitOf(project, q.sha)
    const path = q.path?.replace(/^\/+|\/+$/g, '')
    if (path) {
      checkTreePath(path)
      const [hit] = await git.repos.batchCheck(project.id, [`${sha}:${path}`])
      if (!hit) throw new WharfError('NOT_FOUND', 'Path Not Found', { path })
    }
    const name = `${project.path}-${q.sha && !/^[0-9a-f]{40,64}$/.test(q.sha) ? `${q.sha.replace(/[^A-Za-z0-9._-]+/g, '-')}-` : ''}${sha}${path ? `-${path.replace(/[^A-Za-z0-9._-]+/g, '-')}` : ''}`
    const stream = await archive(git.repos, project.id, sha, format as ArchiveFormat, name, path || undefined, signalOf(reply))
    reply.header('Content-Type', ARCHIVE_FORMATS[format as ArchiveFormat])
    reply.header('Content-Disposition', `attachment; filename="${name}.${format}"`)
    return reply.send(stream)
  }
  const archiveSchema = {
    summary: 'The repository at a ref as an archive (tar.gz, tgz, tar, zip), streamed',
    tags: ['repository'],
    querystring: ArchiveQuery,
  }
  app.get('/projects/:id/repository/archive', { schema: { ...archiveSchema, params: IdParam }, config: { public: true } }, (req, reply) =>
    sendArchive(req, reply, 'tar.gz'),
  )
  app.get(
    '/projects/:id/repository/archive.:format',
    { schema: { ...archiveSchema, params: ArchiveParams }, config: { public: true } },
    (req, reply) => sendArchive(req, reply, (req.params as Static<typeof ArchiveParams>).format),
  )

  // Branches and tags: GitLab reads their attributes from the query string or the body.
  const BranchBody = Body(BranchFields)
  app.post(
    '/projects/:id/repository/branches',
    {
      schema: {
        summary: 'Create a branch at a ref',
        tags: ['repository'],
        params: IdParam,
        querystring: Type.Object(BranchFields),
        body: BranchBody,
      },
    },
    async (req, reply) => {
      const { project, canPush } = await writable(req)
      const b = { ...(req.query as Static<typeof BranchBody>), ...(req.body as Static<typeof BranchBody>) }
      if (!b.branch) throw new WharfError('BAD_REQUEST', 'branch is missing', {})
      if (!b.ref) throw new WharfError('BAD_REQUEST', 'ref is missing', {})
      await editor.createBranch(project, b.branch, b.ref, ctx(req))
      const created = await git.repos.branch(project.id, b.branch)
      return reply.code(201).send({
        name: created!.name,
        merged: false,
        protected: await git.protectedRefs.isProtected(project.id, 'branch', created!.name),
        default: created!.default,
        developers_can_push: false,
        developers_can_merge: false,
        can_push: canPush,
        web_url: `${publicUrl}/${project.full_path}/-/tree/${created!.name}`,
        commit: commitJson(project, created!.commit),
      })
    },
  )
  app.delete(
    '/projects/:id/repository/branches/:branch',
    { schema: { summary: 'Delete a branch (not the default one)', tags: ['repository'], params: BranchParams } },
    async (req, reply) => {
      const { project } = await writable(req)
      await editor.deleteBranch(project, (req.params as Static<typeof BranchParams>).branch, ctx(req))
      return reply.code(204).send()
    },
  )

  const TagBody = Body(TagFields)
  app.post(
    '/projects/:id/repository/tags',
    {
      schema: {
        summary: 'Create a tag at a ref (annotated when given a message)',
        tags: ['repository'],
        params: IdParam,
        querystring: Type.Object(TagFields),
        body: TagBody,
      },
    },
    async (req, reply) => {
      const { project } = await writable(req)
      const b = { ...(req.query as Static<typeof TagBody>), ...(req.body as Static<typeof TagBody>) }
      if (!b.tag_name) throw new WharfError('BAD_REQUEST', 'tag_name is missing', {})
      if (!b.ref) throw new WharfError('BAD_REQUEST', 'ref is missing', {})
      await editor.createTag(project, b.tag_name, b.ref, b.message || undefined, ctx(req))
      return reply.code(201).send(await tagJson(project, b.tag_name))
    },
  )
  app.get(
    '/projects/:id/repository/tags/:tag_name',
    { schema: { summary: 'A repository tag', tags: ['repository'], params: TagParams }, config: { public: true } },
    async (req) => {
      const { project } = await readable(req)
      return tagJson(project, (req.params as Static<typeof TagParams>).tag_name)
    },
  )
  app.delete(
    '/projects/:id/repository/tags/:tag_name',
    { schema: { summary: 'Delete a tag', tags: ['repository'], params: TagParams } },
    async (req, reply) => {
      const { project } = await writable(req)
      await editor.deleteTag(project, (req.params as Static<typeof TagParams>).tag_name, ctx(req))
      return reply.code(204).send()
    },
  )

  async function tagJson(project: Project, name: string) {
    const t = await git.repos.tag(project.id, name)
    if (!t) throw new WharfError('NOT_FOUND', 'Tag Not Found', { tag: name })
    return {
      name: t.name,
      message: t.message ?? '',
      target: t.target,
      commit: t.commit ? commitJson(project, t.commit) : null,
      release: null,
      protected: await git.protectedRefs.isProtected(project.id, 'tag', t.name),
      created_at: null,
    }
  }
}

/** Waits for a stream's first chunk and puts it back, so headers can depend on it. */
async function peek(stream: NodeJS.ReadableStream & { unshift(chunk: Buffer): void }): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const onReadable = () => {
      cleanup()
      const chunk = (stream as unknown as { read(): Buffer | null }).read()
      if (chunk) stream.unshift(chunk)
      resolve(chunk ?? undefined)
    }
    const onEnd = () => {
      cleanup()
      resolve(undefined)
    }
    const onError = (e: Error) => {
      cleanup()
      reject(e)
    }
    const cleanup = () => {
      stream.off('readable', onReadable)
      stream.off('end', onEnd)
      stream.off('error', onError)
    }
    stream.on('readable', onReadable)
    stream.on('end', onEnd)
    stream.on('error', onError)
  })
}
