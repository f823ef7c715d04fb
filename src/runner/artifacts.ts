/**
 * Job artifacts, done by the runner on the host: the dependencies' archives are downloaded
 * (`GET /jobs/:id/artifacts` with the job's token) and extracted into the project directory
 * before the script; at the end the job's `artifacts` (paths, exclude, untracked, when) are
 * zipped and uploaded (`POST /jobs/:id/artifacts`, multipart `file`, artifact_format zip).
 * Report artifacts sent as `gzip` are a gzip stream of the matched files; `raw` sends one file.
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { pipeline } from 'node:stream/promises'
import { createGzip } from 'node:zlib'
import { collectPaths, createZip, extractZip } from './archive.ts'
import type { RunnerClient } from './client.ts'
import type { Artifact, Dependency } from './protocol.ts'
import type { JobTrace } from './trace.ts'

export class ArtifactsError extends Error {
  readonly reason: string
  constructor(message: string, reason: string) {
    super(message)
    this.name = 'ArtifactsError'
    this.reason = reason
  }
}

export interface ArtifactsContext {
  client: Pick<RunnerClient, 'downloadArtifacts' | 'uploadArtifacts'>
  jobId: number
  jobToken: string
  projectDir: string
  /** Scratch directory for archives (removed with the job). */
  scratchDir: string
  trace: JobTrace
  signal?: AbortSignal
}

export async function downloadDependencies(ctx: ArtifactsContext, dependencies: readonly Dependency[]): Promise<void> {
  await mkdir(ctx.scratchDir, { recursive: true })
  for (const dep of dependencies) {
    if (!dep.artifacts_file?.filename) continue
    ctx.trace.line(`Downloading artifacts for ${dep.name} (${dep.id})...`)
    const file = path.join(ctx.scratchDir, `dependency-${dep.id}.zip`)
    const r = await ctx.client.downloadArtifacts(dep.id, dep.token || ctx.jobToken, file, ctx.signal)
    if (r.status !== 200) {
      const what = r.status === 404 ? 'not found' : r.status === 403 ? 'forbidden' : `status ${r.status}`
      throw new ArtifactsError(
        `Downloading artifacts from coordinator... ${what}  id=${dep.id} responseStatus=${r.status}`,
        r.status === 404 ? 'missing_dependency_failure' : 'runner_system_failure',
      )
    }
    ctx.trace.line(`Downloading artifacts from coordinator... ok        id=${dep.id} responseStatus=200 OK`)
    try {
      const n = await extractZip(file, ctx.projectDir)
      ctx.trace.line(`Extracted ${n} file(s) from the artifacts of ${dep.name}`)
    } catch (e) {
      throw new ArtifactsError(`cannot extract the artifacts of ${dep.name} (${dep.id}): ${(e as Error).message}`, 'runner_system_failure')
    } finally {
      await rm(file, { force: true })
    }
  }
}

/**
 * One gzip member per file, concatenated (gzip readers see one stream). Directories add nothing
 * (their files are entries of their own); a file that cannot be read fails the whole archive,
 * named in the error, rather than being left out of an upload that still reports success.
 */
async function* gzipMembers(projectDir: string, entries: readonly string[]): AsyncGenerator<Buffer> {
  for (const e of entries) {
    const file = path.join(projectDir, e)
    try {
      if ((await stat(file)).isDirectory()) continue
      const gz = createGzip()
      const feeding = pipeline(createReadStream(file), gz)
      // Awaited below; a read error also ends the loop over gz first.
      feeding.catch(() => undefined)
      for await (const chunk of gz) yield chunk as Buffer
      await feeding
    } catch (err) {
      throw new Error(`${e}: cannot be added to the gzip archive: ${(err as Error).message}`, { cause: err })
    }
  }
}

export function artifactWanted(a: Pick<Artifact, 'when'>, success: boolean): boolean {
  const when = a.when || 'on_success'
  return when === 'always' || (success ? when === 'on_success' : when === 'on_failure')
}

/**
 * Uploads the artifacts that apply to this outcome. Returns false when an upload failed (the
 * job then fails); "no files" is only a warning, as in GitLab.
 */
export async function uploadArtifacts(
  ctx: ArtifactsContext,
  artifacts: readonly Artifact[],
  success: boolean,
  untracked: () => Promise<string[]>,
): Promise<boolean> {
  let ok = true
  for (const a of artifacts) {
    if (!artifactWanted(a, success)) continue
    ctx.trace.line('Uploading artifacts...')
    const extra = a.untracked ? await untracked() : []
    const { entries, unmatched, invalid, counts } = await collectPaths(ctx.projectDir, a.paths ?? [], a.exclude ?? [], extra)
    for (const p of invalid) ctx.trace.warn(`${p}: artifact path is not a subpath of project directory`)
    for (const p of unmatched)
      ctx.trace.warn(`${p}: no matching files. Ensure that the artifact path is relative to the working directory (${ctx.projectDir})`)
    if (a.untracked) ctx.trace.line(`Uploading untracked files: ${extra.length} found`)
    for (const [p, n] of counts) ctx.trace.line(`${p}: found ${n} matching artifact files and directories`)
    if (entries.length === 0) {
      ctx.trace.error('No files to upload')
      continue
    }
    await mkdir(ctx.scratchDir, { recursive: true })
    const format = a.artifact_format || 'zip'
    const file = path.join(
      ctx.scratchDir,
      `artifacts-${a.artifact_type || 'archive'}.${format === 'zip' ? 'zip' : format === 'gzip' ? 'gz' : 'bin'}`,
    )
    try {
      if (format === 'gzip') {
        await pipeline(gzipMembers(ctx.projectDir, entries), createWriteStream(file))
      } else if (format === 'raw') {
        await pipeline(createReadStream(path.join(ctx.projectDir, entries[0]!)), createWriteStream(file))
      } else {
        await createZip(ctx.projectDir, entries, file)
      }
      const type = a.artifact_type || 'archive'
      const filename =
        format === 'zip'
          ? `${a.name || 'artifacts'}.zip`
          : format === 'gzip'
            ? `${path.basename(entries[0]!)}.gz`
            : path.basename(entries[0]!)
      const r = await ctx.client.uploadArtifacts(
        ctx.jobId,
        ctx.jobToken,
        { file, filename, artifactFormat: format, artifactType: type, expireIn: a.expire_in },
        ctx.signal,
      )
      if (r.status === 201) {
        ctx.trace.line(`Uploading artifacts as "${type}" to coordinator... 201 Created  id=${ctx.jobId} responseStatus=201 Created`)
      } else {
        const why = r.status === 413 ? 'too large archive' : `status ${r.status}`
        ctx.trace.error(
          `Uploading artifacts as "${type}" to coordinator... ${why}  id=${ctx.jobId} responseStatus=${r.status}${r.text ? ` ${r.text.slice(0, 200)}` : ''}`,
        )
        ok = false
      }
    } catch (e) {
      ctx.trace.error(`Uploading artifacts to coordinator... error: ${(e as Error).message}`)
      ok = false
    } finally {
      await rm(file, { force: true })
    }
  }
  return ok
}
