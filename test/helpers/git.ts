// The real git CLI with an isolated config. Credentials are answered to git's prompt through
// GIT_ASKPASS after Wharf's 401 challenge, as a credential helper would: they never appear in a
// remote URL or on a command line.
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { run, type RunResult } from './run.ts'

export interface Creds {
  username: string
  password: string
}

export interface GitClient {
  /** The client's temp dir (HOME for git, and the default working directory). */
  work: string
  git(args: string[], opts?: { cwd?: string; creds?: Creds }): Promise<RunResult>
  dispose(): Promise<void>
}

export async function gitClient(prefix = 'wharf-e2e-git-'): Promise<GitClient> {
  const work = await mkdtemp(path.join(tmpdir(), prefix))
  const askpass = path.join(work, 'askpass.sh')
  await writeFile(
    askpass,
    '#!/bin/sh\ncase "$1" in\n  Username*) printf "%s\\n" "$E2E_GIT_USER" ;;\n  *) printf "%s\\n" "$E2E_GIT_PASS" ;;\nesac\n',
  )
  await chmod(askpass, 0o700)
  return {
    work,
    git: (args, opts = {}) =>
      run('git', args, {
        cwd: opts.cwd ?? work,
        timeoutMs: 30_000,
        env: {
          HOME: work,
          XDG_CONFIG_HOME: path.join(work, '.config'),
          GIT_CONFIG_NOSYSTEM: '1',
          GIT_AUTHOR_NAME: 'E2E Dev',
          GIT_AUTHOR_EMAIL: 'dev@example.com',
          GIT_COMMITTER_NAME: 'E2E Dev',
          GIT_COMMITTER_EMAIL: 'dev@example.com',
          ...(opts.creds
            ? { GIT_ASKPASS: askpass, GIT_TERMINAL_PROMPT: '0', E2E_GIT_USER: opts.creds.username, E2E_GIT_PASS: opts.creds.password }
            : { GIT_ASKPASS: undefined, SSH_ASKPASS: undefined, GIT_TERMINAL_PROMPT: '0' }),
        },
      }),
    dispose: () => rm(work, { recursive: true, force: true }),
  }
}
