// `wharf login` (the device flow) run as a user would, for the tests that approve it in a browser
// session: the credential helper goes to `binDir`, its store and docker's config to the given env.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { projectNode, repoRoot } from './wharf.ts'

export interface WharfLogin {
  /** The link that carries the code (`(or open <url>)`), once printed. */
  complete: Promise<string>
  exited: Promise<number>
  output(): string
}

/** The environment of a user with no docker login: the helper on PATH, private docker config and store under `home`. */
export function loginEnv(home: string, binDir: string, dockerHost: string): Record<string, string> {
  return {
    HOME: home,
    XDG_CONFIG_HOME: path.join(home, '.config'),
    DOCKER_CONFIG: path.join(home, '.docker'),
    DOCKER_HOST: dockerHost,
    REGISTRY_AUTH_FILE: path.join(home, 'auth.json'),
    PATH: `${binDir}${path.delimiter}${process.env.PATH ?? ''}`,
  }
}

export function wharfLogin(url: string, binDir: string, env: Record<string, string>): WharfLogin {
  const child = spawn(projectNode, [path.join(repoRoot, 'src', 'cli', 'main.ts'), 'login', url, '--bin-dir', binDir, '--store', 'file'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let out = ''
  let onLink: (url: string) => void = () => {}
  const complete = new Promise<string>((resolve) => {
    onLink = resolve
  })
  const take = (c: Buffer) => {
    out += c.toString()
    const m = /\(or open (\S+)\)/.exec(out)
    if (m) onLink(m[1]!)
  }
  child.stdout.on('data', take)
  child.stderr.on('data', take)
  return { complete, output: () => out, exited: new Promise((resolve) => child.on('close', (code) => resolve(code ?? -1))) }
}
