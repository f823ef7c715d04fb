/**
 * The job cache, kept by the runner on its host (gitlab-runner's local cache without a shared
 * store): one zip per project and key at `<cache_dir>/<project path>/<key>/cache.zip`. Before
 * the script, `pull` and `pull-push` caches are extracted (the key, then `fallback_keys`, then
 * CACHE_FALLBACK_KEY); after it, `push` and `pull-push` caches are archived when `when` matches
 * the outcome. A cache never fails a job: problems are warnings.
 */
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import path from 'node:path'
import { collectPaths, createZip, extractZip } from './archive.ts'
import type { Cache } from './protocol.ts'
import { expandValue } from './script.ts'
import type { JobTrace } from './trace.ts'

export interface CacheContext {
  cacheDir: string
  projectPath: string
  projectDir: string
  trace: JobTrace
  vars: (key: string) => string | undefined
}

/** A cache key as a directory name, or undefined when GitLab would refuse it. */
export function sanitizeCacheKey(key: string): string | undefined {
  const k = key.trim()
  if (k === '' || k === '.' || k === '..' || k.includes('/') || k.includes('\\') || /%2f|%5c/i.test(k) || k.includes('\0')) return undefined
  return k
}

export function cacheFile(ctx: Pick<CacheContext, 'cacheDir' | 'projectPath'>, key: string): string {
  return path.join(ctx.cacheDir, ctx.projectPath, key, 'cache.zip')
}

const keyOf = (c: Cache, ctx: CacheContext) => expandValue(c.key || 'default', ctx.vars)

export async function restoreCaches(ctx: CacheContext, caches: readonly Cache[]): Promise<void> {
  for (const c of caches) {
    if (c.policy === 'push') continue
    const candidates = [keyOf(c, ctx), ...(c.fallback_keys ?? []).map((k) => expandValue(k, ctx.vars))]
    const global = ctx.vars('CACHE_FALLBACK_KEY')
    if (global) candidates.push(global)
    let restored = false
    for (const raw of candidates) {
      const key = sanitizeCacheKey(raw)
      if (!key) {
        ctx.trace.warn(`cache key ${JSON.stringify(raw)} is not valid (it may not contain "/" or be "." or ".."); skipping it`)
        continue
      }
      ctx.trace.line(`Checking cache for ${key}...`)
      const file = cacheFile(ctx, key)
      if (!(await stat(file).catch(() => undefined))) {
        ctx.trace.warn(`${path.relative(ctx.cacheDir, file)}: no such file`)
        continue
      }
      try {
        await extractZip(file, ctx.projectDir)
        ctx.trace.line(`Successfully extracted cache`)
        restored = true
        break
      } catch (e) {
        ctx.trace.warn(`Failed to extract cache: ${(e as Error).message}`)
      }
    }
    if (!restored && candidates.length) ctx.trace.line('Failed to extract cache')
  }
}

export async function saveCaches(
  ctx: CacheContext,
  caches: readonly Cache[],
  success: boolean,
  untracked: () => Promise<string[]>,
): Promise<void> {
  for (const c of caches) {
    if (c.policy === 'pull') {
      ctx.trace.line(`Not uploading cache ${keyOf(c, ctx)} due to policy`)
      continue
    }
    const when = c.when || 'on_success'
    if (!(when === 'always' || (success ? when === 'on_success' : when === 'on_failure'))) continue
    const key = sanitizeCacheKey(keyOf(c, ctx))
    if (!key) {
      ctx.trace.warn(`cache key ${JSON.stringify(keyOf(c, ctx))} is not valid; not creating the cache`)
      continue
    }
    ctx.trace.line(`Creating cache ${key}...`)
    const extra = c.untracked ? await untracked() : []
    const { entries, unmatched, counts } = await collectPaths(ctx.projectDir, c.paths ?? [], [], extra)
    for (const [p, n] of counts) ctx.trace.line(`${p}: found ${n} matching artifact files and directories`)
    for (const p of unmatched)
      ctx.trace.warn(`${p}: no matching files. Ensure that the artifact path is relative to the working directory (${ctx.projectDir})`)
    if (entries.length === 0) {
      ctx.trace.warn('No files to cache')
      continue
    }
    const file = cacheFile(ctx, key)
    await mkdir(path.dirname(file), { recursive: true })
    const tmp = `${file}.${process.pid}.${Date.now()}.tmp`
    try {
      await createZip(ctx.projectDir, entries, tmp)
      await rename(tmp, file)
      ctx.trace.line('Created cache')
    } catch (e) {
      ctx.trace.warn(`Failed to create cache: ${(e as Error).message}`)
      await rm(tmp, { force: true })
    }
  }
}
