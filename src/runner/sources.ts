/**
 * Gets the job's sources into the project directory with the git CLI on the runner's host, as
 * gitlab-runner's get_sources stage does: init, fetch the refspecs the server sent (depth from
 * `git_info.depth` or GIT_DEPTH), check out `git_info.sha` detached. The job token goes to git
 * through a credential helper reading the environment: it is never in a URL, an argument or the
 * repository's config. GIT_STRATEGY `none`/`empty` skip it; GIT_CHECKOUT=false skips checkout.
 */
import { mkdir, rm } from 'node:fs/promises'
import type { GitInfo } from './protocol.ts'
import { JOB_TOKEN_USERNAME } from './protocol.ts'
import { runProcess } from './proc.ts'

export interface SourcesOptions {
  git: GitInfo
  /** Job token, for the credential helper. */
  token: string
  /** Where the runner fetches from (no credentials in it). */
  fetchUrl: string
  /** The `origin` URL left in the repository for the job (no credentials). */
  originUrl: string
  projectDir: string
  /** GIT_STRATEGY, GIT_DEPTH, GIT_CHECKOUT, GIT_SUBMODULE_STRATEGY... from the job's variables. */
  vars: (key: string) => string | undefined
  out: (text: string) => void
  notice: (text: string) => void
  warn: (text: string) => void
  signal?: AbortSignal
}

export class SourcesError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number) {
    super(message)
    this.name = 'SourcesError'
    this.exitCode = exitCode
  }
}

/** The repo URL without credentials (`https://gitlab-ci-token:TOKEN@host/p.git` → `https://host/p.git`). */
export function stripCredentials(url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//')
  }
}

/** `repoUrl`'s path on another base URL (the runner's or the clone URL). */
export function rebaseUrl(repoUrl: string, base: string): string {
  const repo = new URL(stripCredentials(repoUrl))
  const b = new URL(base)
  const prefix = b.pathname.replace(/\/+$/, '')
  return `${b.origin}${prefix}${repo.pathname}${repo.search}`
}

const HELPER = `!f() { echo username=${JOB_TOKEN_USERNAME}; echo "password=$WHARF_RUNNER_GIT_TOKEN"; }; f`

export async function getSources(o: SourcesOptions): Promise<void> {
  const strategy = (o.vars('GIT_STRATEGY') || 'fetch').toLowerCase()
  await mkdir(o.projectDir, { recursive: true })
  if (strategy === 'none' || strategy === 'empty') {
    if (strategy === 'empty') {
      await rm(o.projectDir, { recursive: true, force: true })
      await mkdir(o.projectDir, { recursive: true })
    }
    o.notice('Skipping Git repository setup')
    return
  }
  const depthVar = o.vars('GIT_DEPTH')
  const depth = depthVar !== undefined && /^\d+$/.test(depthVar) ? Number(depthVar) : o.git.depth
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    WHARF_RUNNER_GIT_TOKEN: o.token,
    GIT_TERMINAL_PROMPT: '0',
    GIT_ASKPASS: '',
    SSH_ASKPASS: '',
    LC_ALL: 'C',
  }
  const git = async (args: string[], quiet = false) => {
    const r = await runProcess('git', ['-c', 'credential.helper=', '-c', `credential.helper=${HELPER}`, ...args], {
      cwd: o.projectDir,
      env,
      onOutput: (b) => {
        if (!quiet) o.out(b.toString('utf8'))
      },
      ...(o.signal ? { signal: o.signal } : {}),
    })
    return r
  }
  const must = async (args: string[], what: string) => {
    const r = await git(args)
    if (r.code !== 0) throw new SourcesError(`${what} failed: exit code ${r.code}`, r.code)
  }

  if (depth > 0) o.notice(`Fetching changes with git depth set to ${depth}...`)
  else o.notice('Fetching changes...')
  await must(['init', '-q', o.projectDir], 'git init')
  o.out(`Initialized empty Git repository in ${o.projectDir}/.git/\n`)
  o.notice('Created fresh repository.')
  await must(['remote', 'add', 'origin', o.fetchUrl], 'git remote add')
  const refspecs = o.git.refspecs.length ? o.git.refspecs : ['+refs/heads/*:refs/remotes/origin/*', '+refs/tags/*:refs/tags/*']
  const depthArgs = depth > 0 ? ['--depth', String(depth)] : []
  const fetched = await git(['fetch', '-q', 'origin', '--prune', ...refspecs, ...depthArgs])
  const have = async () => (await git(['cat-file', '-e', `${o.git.sha}^{commit}`], true)).code === 0
  if (fetched.code !== 0 || !(await have())) {
    // The refspecs may not name the commit (a deleted branch, a pipeline ref): ask for the sha itself.
    const bySha = await git(['fetch', '-q', 'origin', o.git.sha, ...depthArgs])
    if (bySha.code !== 0 || !(await have()))
      throw new SourcesError(`cannot fetch ${o.git.sha} from the repository`, bySha.code || fetched.code || 1)
  }
  await must(['remote', 'set-url', 'origin', o.originUrl], 'git remote set-url')
  if ((o.vars('GIT_CHECKOUT') ?? 'true').toLowerCase() === 'false') {
    o.notice('Skipping Git checkout')
  } else {
    o.notice(`Checking out ${o.git.sha.slice(0, 8)} as detached HEAD (ref is ${o.git.ref})...`)
    await must(['-c', 'advice.detachedHead=false', 'checkout', '-f', '-q', o.git.sha], 'git checkout')
  }
  const submodules = (o.vars('GIT_SUBMODULE_STRATEGY') ?? 'none').toLowerCase()
  if (submodules === 'normal' || submodules === 'recursive') {
    o.notice(`Updating/initializing submodules${submodules === 'recursive' ? ' recursively' : ''}...`)
    await must(['submodule', 'sync', ...(submodules === 'recursive' ? ['--recursive'] : [])], 'git submodule sync')
    await must(['submodule', 'update', '--init', ...(submodules === 'recursive' ? ['--recursive'] : [])], 'git submodule update')
  } else {
    o.notice('Skipping Git submodules setup')
  }
}
