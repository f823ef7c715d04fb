/**
 * Builds the shell script of a job stage, as gitlab-runner's bash shell does: errexit and (where
 * the shell has it) pipefail, the job's variables exported (non-raw values expanded, file-type
 * variables written to files whose path becomes the value), `cd` into the project directory,
 * then each command echoed in green as `$ command` before it runs. The text is POSIX sh, so
 * the same script runs under bash or busybox sh; the first failing command stops it with its
 * exit status.
 */
import type { JobVariable } from './protocol.ts'
import { ANSI } from './trace.ts'

/** A variable name a POSIX shell can export. */
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/

export function isExportableName(key: string): boolean {
  return NAME.test(key)
}

/** Single-quotes `s` for sh: `it's` → `'it'\''s'`. */
export function shellQuote(s: string): string {
  return `'${s.replaceAll("'", `'\\''`)}'`
}

/**
 * Expands `$NAME`, `${NAME}` and `$$` (a literal `$`) in `value` from `lookup`, as gitlab-runner
 * expands variable values: an unknown name becomes empty, no recursion.
 */
export function expandValue(value: string, lookup: (key: string) => string | undefined): string {
  return value.replace(
    /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g,
    (m, braced: string | undefined, bare: string | undefined) => {
      if (m === '$$') return '$'
      return lookup((braced ?? bare)!) ?? ''
    },
  )
}

/**
 * The job's variables with later definitions winning and non-raw values expanded against the
 * others (raw ones and file contents stay as sent).
 */
export function resolveVariables(vars: readonly JobVariable[]): JobVariable[] {
  const byKey = new Map<string, JobVariable>()
  for (const v of vars) {
    byKey.delete(v.key) // keep the last definition, in its position
    byKey.set(v.key, v)
  }
  const raw = new Map([...byKey].map(([k, v]) => [k, v.value]))
  return [...byKey.values()].map((v) => (v.raw ? v : { ...v, value: expandValue(v.value, (k) => (k === v.key ? undefined : raw.get(k))) }))
}

/** Looks a variable up by key (the last definition wins). */
export function variableValue(vars: readonly JobVariable[], key: string): string | undefined {
  for (let i = vars.length - 1; i >= 0; i--) if (vars[i]!.key === key) return vars[i]!.value
  return undefined
}

export function variable(key: string, value: string, extra: Partial<JobVariable> = {}): JobVariable {
  return { key, value, public: true, masked: false, file: false, raw: true, ...extra }
}

export interface StageScript {
  variables: readonly JobVariable[]
  /** Directory where file-type variables are written (created by the script). */
  tmpDir: string
  /** The project directory the commands run in. */
  workDir: string
  commands: readonly string[]
  /** Green notices printed before the commands (`Running after script...`). */
  notices?: readonly string[]
  /** Extra trace: `set -o xtrace` (CI_DEBUG_TRACE). */
  xtrace?: boolean
}

/** One line echoed in green, POSIX printf with the escape bytes inside single quotes. */
function notice(text: string): string {
  return `printf '%s\\n' ${shellQuote(`${ANSI.boldGreen}${text}${ANSI.reset}`)}`
}

/** The echo line for a command: multi-line commands show their first line, as GitLab does. */
export function commandEcho(command: string): string {
  const trimmed = command.trim()
  const nl = trimmed.indexOf('\n')
  return nl === -1 ? `$ ${trimmed}` : `$ ${trimmed.slice(0, nl)} # collapsed multi-line command`
}

export function buildStageScript(s: StageScript): string {
  const out: string[] = [
    // SIGTERM ends the script with status 1 instead of a signal death (cancel, timeout).
    "trap 'exit 1' TERM",
    'case "$(set -o)" in *pipefail*) set -o pipefail;; esac',
    'set -o errexit',
    'set +o noclobber',
  ]
  if (s.xtrace) out.push('set -o xtrace')
  let madeTmp = false
  for (const v of s.variables) {
    if (!isExportableName(v.key)) continue
    if (v.file) {
      if (!madeTmp) {
        out.push(`mkdir -p ${shellQuote(s.tmpDir)}`)
        madeTmp = true
      }
      const path = `${s.tmpDir}/${v.key}`
      out.push(`printf '%s' ${shellQuote(v.value)} > ${shellQuote(path)}`)
      out.push(`export ${v.key}=${shellQuote(path)}`)
    } else {
      out.push(`export ${v.key}=${shellQuote(v.value)}`)
    }
  }
  out.push(`cd ${shellQuote(s.workDir)}`)
  for (const n of s.notices ?? []) out.push(notice(n))
  for (const c of s.commands) {
    const command = c.trim()
    if (command === '') {
      out.push('')
      continue
    }
    out.push(notice(commandEcho(command)))
    out.push(command)
  }
  out.push('exit 0', '')
  return out.join('\n')
}

/**
 * `sh -c` program that runs a script file with bash when the image has it, else sh (gitlab-runner's
 * shell detection), for containers whose shell is not known in advance.
 */
export function detectShellCommand(scriptPath: string): string[] {
  const q = shellQuote(scriptPath)
  return [
    'sh',
    '-c',
    `if [ -x /usr/local/bin/bash ]; then exec /usr/local/bin/bash ${q}; elif [ -x /usr/bin/bash ]; then exec /usr/bin/bash ${q}; elif [ -x /bin/bash ]; then exec /bin/bash ${q}; else exec sh ${q}; fi`,
  ]
}
